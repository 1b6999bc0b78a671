//! The request metrics of Kubernetes' generic API server, which prometheus-adapter's
//! `/metrics` carries and its users' alerts and dashboards read: `apiserver_request_total`,
//! `apiserver_request_duration_seconds` and `apiserver_current_inflight_requests`.
//!
//! Requests are labelled as prometheus-adapter's routes label them (k8s.io/apiserver's
//! `endpoints/metrics` as called by custom-metrics-apiserver's installer for
//! custom.metrics.k8s.io and external.metrics.k8s.io, by the generic installer for
//! metrics.k8s.io, and by the health checks' handler):
//!
//! | path under the group's version | verb | resource, subresource | scope | component |
//! | --- | --- | --- | --- | --- |
//! | custom: `{resource}/{name}/{metric}` | LIST | `*`, `*` | cluster | custom-metrics |
//! | custom: `namespaces/{ns}/{resource}/{name}/{metric}`, `namespaces/{ns}/metrics/{metric}` | GET | `*`, `*` | resource | custom-metrics |
//! | external: `namespaces/{ns}/{metric}` | LIST | `*`, `*` | cluster | external-metrics |
//! | metrics.k8s.io: `nodes`, `pods` | LIST | `nodes` or `pods`, empty | cluster | apiserver |
//! | metrics.k8s.io: `namespaces/{ns}/pods` | LIST | `pods`, empty | namespace | apiserver |
//! | metrics.k8s.io: `nodes/{name}`, `namespaces/{ns}/pods/{name}` | GET | `nodes` or `pods`, empty | resource | apiserver |
//! | `/healthz`, `/livez`, `/readyz` | GET | empty, the path | empty | empty |
//!
//! A GET with `watch` set (any value but `0` or `false`) is a WATCH, and a custom metric
//! whose name is one the generic server takes for a connect subresource (`log`, `exec`,
//! `attach`, `portforward`, `proxy`) is a CONNECT. Labels come from these fixed routes, never
//! from the path, so a request cannot add a series. Requests no route serves (404s of paths
//! that match none, discovery, `/metrics`, `/openapi`, `/version`, `/debug`) and those
//! refused before routing (authentication, authorization, methods other than GET and HEAD;
//! the health endpoints answer those methods but do not count them)
//! are not counted, as the generic API server counts none of them.
//!
//! Counting is lock-free: a counter per route, verb, `dry_run` value and common status
//! code, and a histogram per route, verb and `dry_run` value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;
use promhpa_core::timing::Histogram;

/// The routes requests are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRoute {
    Healthz,
    Livez,
    Readyz,
    /// custom.metrics.k8s.io v1beta1, objects without a namespace.
    CustomClusterV1beta1,
    CustomClusterV1beta2,
    /// custom.metrics.k8s.io v1beta1, objects in a namespace or the namespace itself.
    CustomNamespacedV1beta1,
    CustomNamespacedV1beta2,
    External,
    /// metrics.k8s.io: every node.
    Nodes,
    /// metrics.k8s.io: one node.
    Node,
    /// metrics.k8s.io: the pods of every namespace.
    PodsAllNamespaces,
    /// metrics.k8s.io: the pods of one namespace.
    Pods,
    /// metrics.k8s.io: one pod.
    Pod,
}

/// The labels of a route but `verb`, `dry_run` and `code`.
struct RouteLabels {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    subresource: &'static str,
    scope: &'static str,
    component: &'static str,
}

const CUSTOM: &str = "custom.metrics.k8s.io";
const EXTERNAL: &str = "external.metrics.k8s.io";
const RESOURCE: &str = "metrics.k8s.io";

impl ApiRoute {
    /// Every route, in the order of their slots.
    const ALL: [ApiRoute; 13] = [
        ApiRoute::Healthz,
        ApiRoute::Livez,
        ApiRoute::Readyz,
        ApiRoute::CustomClusterV1beta1,
        ApiRoute::CustomClusterV1beta2,
        ApiRoute::CustomNamespacedV1beta1,
        ApiRoute::CustomNamespacedV1beta2,
        ApiRoute::External,
        ApiRoute::Nodes,
        ApiRoute::Node,
        ApiRoute::PodsAllNamespaces,
        ApiRoute::Pods,
        ApiRoute::Pod,
    ];

    fn labels(self) -> RouteLabels {
        let health = |subresource| RouteLabels {
            group: "",
            version: "",
            resource: "",
            subresource,
            scope: "",
            component: "",
        };
        let value = |group, version, scope, component| RouteLabels {
            group,
            version,
            resource: "*",
            subresource: "*",
            scope,
            component,
        };
        let resource = |resource, scope| RouteLabels {
            group: RESOURCE,
            version: "v1beta1",
            resource,
            subresource: "",
            scope,
            component: "apiserver",
        };
        match self {
            ApiRoute::Healthz => health("/healthz"),
            ApiRoute::Livez => health("/livez"),
            ApiRoute::Readyz => health("/readyz"),
            ApiRoute::CustomClusterV1beta1 => value(CUSTOM, "v1beta1", "cluster", "custom-metrics"),
            ApiRoute::CustomClusterV1beta2 => value(CUSTOM, "v1beta2", "cluster", "custom-metrics"),
            ApiRoute::CustomNamespacedV1beta1 => {
                value(CUSTOM, "v1beta1", "resource", "custom-metrics")
            }
            ApiRoute::CustomNamespacedV1beta2 => {
                value(CUSTOM, "v1beta2", "resource", "custom-metrics")
            }
            ApiRoute::External => value(EXTERNAL, "v1beta1", "cluster", "external-metrics"),
            ApiRoute::Nodes => resource("nodes", "cluster"),
            ApiRoute::Node => resource("nodes", "resource"),
            ApiRoute::PodsAllNamespaces => resource("pods", "cluster"),
            ApiRoute::Pods => resource("pods", "namespace"),
            ApiRoute::Pod => resource("pods", "resource"),
        }
    }

    /// The verb of a plain GET (or HEAD) of the route: LIST for a collection (the generic
    /// server's scopes `cluster` and `namespace`), GET otherwise.
    fn verb(self) -> &'static str {
        match self.labels().scope {
            "cluster" | "namespace" => "LIST",
            _ => "GET",
        }
    }
}

/// A request counted under a route: the response of one carries this as an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    route: ApiRoute,
    /// The generic server reports the request as CONNECT (see the module's text).
    connect: bool,
}

/// Subresources the generic server's request metrics report as CONNECT.
const CONNECT_SUBRESOURCES: [&str; 5] = ["log", "exec", "portforward", "attach", "proxy"];

impl Counted {
    fn plain(route: ApiRoute) -> Counted {
        Counted {
            route,
            connect: false,
        }
    }

    /// A health endpoint, by its path.
    pub fn health(path: &str) -> Option<Counted> {
        match path {
            "/healthz" => Some(Counted::plain(ApiRoute::Healthz)),
            "/livez" => Some(Counted::plain(ApiRoute::Livez)),
            "/readyz" => Some(Counted::plain(ApiRoute::Readyz)),
            _ => None,
        }
    }

    /// A value path of custom.metrics.k8s.io, by its decoded segments after the group.
    pub fn custom(segs: &[&str]) -> Option<Counted> {
        custom_route(segs)
    }

    /// This request, if a request with `method` is counted: the health endpoints answer
    /// every method but count only GET and HEAD (the generic API server counts the others
    /// under verbs of their own, which would add series); other routes are served to GET
    /// and HEAD only.
    pub fn asked_with(self, method: &Method) -> Option<Counted> {
        (method == Method::GET || method == Method::HEAD).then_some(self)
    }

    /// A value path of external.metrics.k8s.io, by its decoded segments after the group.
    pub fn external(segs: &[&str]) -> Option<Counted> {
        external_route(segs)
    }

    /// A path of metrics.k8s.io, by its decoded segments after the group.
    pub fn resource(segs: &[&str]) -> Option<Counted> {
        resource_route(segs)
    }

    /// The route of `path` as the handlers read it (segments percent-decoded, empty ones
    /// skipped), for a request answered before it reached its handler (past the in-flight
    /// limit, or out of time). Allocates nothing.
    pub fn of_path<'p>(path: &'p str) -> Option<Counted> {
        if let Some(c) = Counted::health(path) {
            return Some(c);
        }
        let groups: [(&str, ByGroup<'p>); 3] = [
            ("/apis/custom.metrics.k8s.io/", custom_route),
            ("/apis/external.metrics.k8s.io/", external_route),
            ("/apis/metrics.k8s.io/", resource_route),
        ];
        let (rest, by_group) = groups
            .iter()
            .find_map(|(prefix, f)| Some((path.strip_prefix(prefix)?, *f)))?;
        // No route has more segments than this; a path with more has no route.
        let mut segs = [Escaped::new(""); 7];
        let mut n = 0;
        for s in rest.split('/').filter(|s| !s.is_empty()) {
            *segs.get_mut(n)? = Escaped::new(s);
            n += 1;
        }
        by_group(segs.get(..n)?)
    }
}

/// A path segment compared with a literal as the handlers compare it.
trait Segment: Copy {
    fn is(self, literal: &str) -> bool;
}

impl Segment for &str {
    fn is(self, literal: &str) -> bool {
        self == literal
    }
}

/// The route of a value path in one group, by its segments after the group.
type ByGroup<'p> = fn(&[Escaped<'p>]) -> Option<Counted>;

/// A segment as the request has it, percent-escapes and all.
#[derive(Clone, Copy)]
struct Escaped<'a> {
    raw: &'a str,
    /// Whether it has an escape to decode.
    escaped: bool,
}

impl<'a> Escaped<'a> {
    fn new(raw: &'a str) -> Escaped<'a> {
        Escaped {
            raw,
            escaped: raw.contains('%'),
        }
    }
}

impl Segment for Escaped<'_> {
    fn is(self, literal: &str) -> bool {
        if self.escaped {
            percent_encoding::percent_decode_str(self.raw).eq(literal.bytes())
        } else {
            self.raw == literal
        }
    }
}

fn custom_route<S: Segment>(segs: &[S]) -> Option<Counted> {
    let (cluster, namespaced) = match segs.first() {
        Some(v) if v.is("v1beta1") => (
            ApiRoute::CustomClusterV1beta1,
            ApiRoute::CustomNamespacedV1beta1,
        ),
        Some(v) if v.is("v1beta2") => (
            ApiRoute::CustomClusterV1beta2,
            ApiRoute::CustomNamespacedV1beta2,
        ),
        _ => return None,
    };
    let connect = |metric: S| CONNECT_SUBRESOURCES.iter().any(|c| metric.is(c));
    match *segs {
        [_, namespaces, _, metrics, _] if namespaces.is("namespaces") && metrics.is("metrics") => {
            Some(Counted::plain(namespaced))
        }
        [_, namespaces, _, _, _, metric] if namespaces.is("namespaces") => Some(Counted {
            route: namespaced,
            connect: connect(metric),
        }),
        // `namespaces/{name}/{metric}` names the namespace, not a subresource of it.
        [_, resource, _, metric] => Some(Counted {
            route: cluster,
            connect: !resource.is("namespaces") && connect(metric),
        }),
        _ => None,
    }
}

fn external_route<S: Segment>(segs: &[S]) -> Option<Counted> {
    match *segs {
        [v, namespaces, _, _] if v.is("v1beta1") && namespaces.is("namespaces") => {
            Some(Counted::plain(ApiRoute::External))
        }
        _ => None,
    }
}

fn resource_route<S: Segment>(segs: &[S]) -> Option<Counted> {
    let route = match *segs {
        [v, ..] if !v.is("v1beta1") => return None,
        [_, nodes] if nodes.is("nodes") => ApiRoute::Nodes,
        [_, nodes, _] if nodes.is("nodes") => ApiRoute::Node,
        [_, pods] if pods.is("pods") => ApiRoute::PodsAllNamespaces,
        [_, namespaces, _, pods] if namespaces.is("namespaces") && pods.is("pods") => {
            ApiRoute::Pods
        }
        [_, namespaces, _, pods, _] if namespaces.is("namespaces") && pods.is("pods") => {
            ApiRoute::Pod
        }
        _ => return None,
    };
    Some(Counted::plain(route))
}

/// The `dry_run` label: empty without the parameter, `All` when every value is `All` (the
/// only one Kubernetes accepts), `invalid` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DryRun {
    None = 0,
    All = 1,
    Invalid = 2,
}

impl DryRun {
    fn label(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::All => "All",
            DryRun::Invalid => "invalid",
        }
    }
}

/// What a request's method and query string say about its labels: whether it watches, and
/// its `dry_run`. Read before the request is handed on, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine {
    watch: bool,
    dry_run: DryRun,
}

/// Whether the query parameter name or value `raw` (still escaped) reads `want` once
/// unescaped as Go unescapes a query (`%XX`, and `+` as a space), with ASCII letters of
/// either case when `any_case`.
fn reads(raw: &str, want: &str, any_case: bool) -> bool {
    if !raw.contains(['%', '+']) {
        return if any_case {
            raw.eq_ignore_ascii_case(want)
        } else {
            raw == want
        };
    }
    let decoded = percent_encoding::percent_decode_str(raw);
    !raw.contains('+')
        && if any_case {
            decoded.map(|b| b.to_ascii_lowercase()).eq(want.bytes())
        } else {
            decoded.eq(want.bytes())
        }
}

impl RequestLine {
    /// The request line of `method` with `query`.
    pub fn of(method: &Method, query: Option<&str>) -> RequestLine {
        let mut line = RequestLine {
            watch: false,
            dry_run: DryRun::None,
        };
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return line;
        };
        let mut watch_seen = false;
        for pair in query.split('&') {
            // Go leaves a pair with a semicolon out of the query it reads.
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if reads(key, "dryRun", false) {
                line.dry_run = match line.dry_run {
                    DryRun::None | DryRun::All if reads(value, "All", false) => DryRun::All,
                    _ => DryRun::Invalid,
                };
            } else if !watch_seen && reads(key, "watch", false) {
                // The first value, read as Kubernetes reads a bool parameter.
                watch_seen = true;
                line.watch = !(reads(value, "0", true) || reads(value, "false", true));
            }
        }
        // Only a GET is taken for a WATCH; a HEAD is not.
        line.watch &= method == Method::GET;
        line
    }
}

/// Upper bounds of `apiserver_request_duration_seconds`' buckets, as the generic API server
/// has them (5 ms to 60 s), in nanoseconds.
const DURATION_BUCKETS: [u64; 23] = [
    5_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    400_000_000,
    600_000_000,
    800_000_000,
    1_000_000_000,
    1_250_000_000,
    1_500_000_000,
    2_000_000_000,
    3_000_000_000,
    4_000_000_000,
    5_000_000_000,
    6_000_000_000,
    8_000_000_000,
    10_000_000_000,
    15_000_000_000,
    20_000_000_000,
    30_000_000_000,
    45_000_000_000,
    60_000_000_000,
];

/// The status codes counted without a lock; any other goes to a map.
const CODES: [u16; 13] = [
    200, 400, 401, 403, 404, 405, 406, 413, 429, 500, 502, 503, 504,
];

/// Verbs a route is counted under: its own (GET or LIST), WATCH, CONNECT.
const VERBS: usize = 3;
const DRY_RUNS: usize = 3;
const SLOTS: usize = ApiRoute::ALL.len() * VERBS * DRY_RUNS;

/// The busiest second's in-flight requests, as the generic server's in-flight limit reports
/// them: the most requests holding a seat at once during the last whole second.
#[derive(Debug, Default)]
struct Inflight {
    /// Whether a second was measured (only with an in-flight limit).
    sampled: AtomicBool,
    /// The most seats taken at once since the current second began.
    peak: AtomicU64,
    /// The peak of the last whole second.
    reported: AtomicU64,
}

/// The counters and histograms of the requests counted under a route.
pub struct ApiRequestMetrics {
    /// By slot, then by the index of the code in [`CODES`].
    counts: Box<[[AtomicU64; CODES.len()]]>,
    /// Codes not in [`CODES`], by slot and code.
    other_codes: Mutex<BTreeMap<(usize, u16), u64>>,
    /// By slot.
    durations: Box<[Histogram<{ DURATION_BUCKETS.len() }>]>,
    inflight: Inflight,
}

impl Default for ApiRequestMetrics {
    fn default() -> Self {
        ApiRequestMetrics {
            counts: (0..SLOTS)
                .map(|_| [const { AtomicU64::new(0) }; CODES.len()])
                .collect(),
            other_codes: Mutex::new(BTreeMap::new()),
            durations: (0..SLOTS)
                .map(|_| Histogram::new(&DURATION_BUCKETS))
                .collect(),
            inflight: Inflight::default(),
        }
    }
}

impl std::fmt::Debug for ApiRequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequestMetrics").finish_non_exhaustive()
    }
}

/// The slot of a request: route, then verb, then `dry_run`.
fn slot(counted: Counted, line: RequestLine) -> usize {
    let verb = if counted.connect {
        2
    } else if line.watch {
        1
    } else {
        0
    };
    (counted.route as usize * VERBS + verb) * DRY_RUNS + line.dry_run as usize
}

/// The labels of slot `i` but `code`, in the exposition's order (sorted by name).
fn slot_labels(i: usize) -> Option<String> {
    let route = *ApiRoute::ALL.get(i / (VERBS * DRY_RUNS))?;
    let verb = match (i / DRY_RUNS) % VERBS {
        0 => route.verb(),
        1 => "WATCH",
        _ => "CONNECT",
    };
    let dry_run = match i % DRY_RUNS {
        0 => DryRun::None,
        1 => DryRun::All,
        _ => DryRun::Invalid,
    };
    let l = route.labels();
    Some(format!(
        "component=\"{}\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{verb}\",version=\"{}\"",
        l.component,
        dry_run.label(),
        l.group,
        l.resource,
        l.scope,
        l.subresource,
        l.version
    ))
}

impl ApiRequestMetrics {
    /// One request counted under its route with `code`; its duration is `took` when it was
    /// served (a request refused at the in-flight limit has none, as in the generic server).
    pub fn observe(&self, counted: Counted, line: RequestLine, code: u16, took: Option<Duration>) {
        let i = slot(counted, line);
        match (CODES.iter().position(|c| *c == code), self.counts.get(i)) {
            (Some(c), Some(counts)) => {
                counts[c].fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                *self
                    .other_codes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((i, code))
                    .or_default() += 1;
            }
        }
        if let (Some(took), Some(h)) = (took, self.durations.get(i)) {
            h.observe(took);
        }
    }

    /// `in_use` seats of the in-flight limit are taken now, one of them just now.
    pub fn inflight_taken(&self, in_use: usize) {
        self.inflight
            .peak
            .fetch_max(in_use as u64, Ordering::Relaxed);
    }

    /// A second ended with `in_use` seats taken: its peak is reported until the next one
    /// ends, and the next one starts from `in_use`.
    pub fn inflight_second_ended(&self, in_use: usize) {
        let peak = self.inflight.peak.swap(in_use as u64, Ordering::Relaxed);
        self.inflight.reported.store(peak, Ordering::Relaxed);
        self.inflight.sampled.store(true, Ordering::Relaxed);
    }

    /// Appends the three families.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP apiserver_request_total Requests to the metrics APIs and health endpoints, labelled as the Kubernetes generic API server labels them, by status code.\n# TYPE apiserver_request_total counter\n");
        let mut counts: Vec<(usize, u16, u64)> = Vec::new();
        for (i, by_code) in self.counts.iter().enumerate() {
            for (c, n) in CODES.iter().zip(by_code) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    counts.push((i, *c, n));
                }
            }
        }
        for ((i, code), n) in self
            .other_codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            counts.push((*i, *code, *n));
        }
        counts.sort_unstable();
        for (i, code, n) in counts {
            if let Some(labels) = slot_labels(i) {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{code}\",{labels}}} {n}"
                );
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Time to answer the requests apiserver_request_total counts (those refused at the in-flight limit aside), labelled as the Kubernetes generic API server labels them.\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (i, h) in self.durations.iter().enumerate() {
            if h.count() == 0 {
                continue;
            }
            if let Some(labels) = slot_labels(i) {
                h.render(out, "apiserver_request_duration_seconds", &labels);
            }
        }
        out.push_str("# HELP apiserver_current_inflight_requests The most requests holding a seat of --max-requests-inflight at once during the last whole second (mutating: always 0, promhpa serves only reads).\n# TYPE apiserver_current_inflight_requests gauge\n");
        if self.inflight.sampled.load(Ordering::Relaxed) {
            let _ = writeln!(
                out,
                "apiserver_current_inflight_requests{{request_kind=\"mutating\"}} 0\napiserver_current_inflight_requests{{request_kind=\"readOnly\"}} {}",
                self.inflight.reported.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(method: Method, query: &str) -> RequestLine {
        RequestLine::of(&method, Some(query))
    }

    #[test]
    fn value_paths_map_to_the_adapters_routes() {
        let custom = |p: &str| {
            let segs: Vec<&str> = p.split('/').collect();
            Counted::custom(&segs)
        };
        let plain = |route| Some(Counted::plain(route));
        assert_eq!(
            custom("v1beta2/namespaces/shop/pods/*/http_requests"),
            plain(ApiRoute::CustomNamespacedV1beta2)
        );
        assert_eq!(
            custom("v1beta1/namespaces/shop/metrics/queue_length"),
            plain(ApiRoute::CustomNamespacedV1beta1)
        );
        assert_eq!(
            custom("v1beta1/nodes/*/load"),
            plain(ApiRoute::CustomClusterV1beta1)
        );
        assert_eq!(
            custom("v1beta2/namespaces/shop/load"),
            plain(ApiRoute::CustomClusterV1beta2)
        );
        // Metric names the generic server reads as connect subresources.
        assert_eq!(
            custom("v1beta2/namespaces/shop/pods/web/proxy"),
            Some(Counted {
                route: ApiRoute::CustomNamespacedV1beta2,
                connect: true
            })
        );
        assert_eq!(
            custom("v1beta1/nodes/a/log"),
            Some(Counted {
                route: ApiRoute::CustomClusterV1beta1,
                connect: true
            })
        );
        assert_eq!(
            custom("v1beta1/namespaces/shop/log"),
            plain(ApiRoute::CustomClusterV1beta1)
        );
        // Discovery, versions not served and shapes no route has are not counted.
        for p in [
            "v1beta1",
            "v1beta3/nodes/*/load",
            "v1beta1/nodes/*",
            "v1beta1/namespaces/shop/services/*/m/x",
            "v1beta1/namespaces/shop/services/m",
        ] {
            assert_eq!(custom(p), None, "{p}");
        }
        assert_eq!(
            Counted::external(&["v1beta1", "namespaces", "shop", "queue"]),
            plain(ApiRoute::External)
        );
        assert_eq!(Counted::external(&["v1beta1"]), None);
        assert_eq!(
            Counted::resource(&["v1beta1", "namespaces", "shop", "pods"]),
            plain(ApiRoute::Pods)
        );
        assert_eq!(Counted::resource(&["v1beta1", "pods", "x"]), None);
        assert_eq!(
            Counted::of_path("/apis/metrics.k8s.io/v1beta1/%6eodes/n1"),
            plain(ApiRoute::Node)
        );
        assert_eq!(
            Counted::of_path("/apis/external.metrics.k8s.io//v1beta1/namespaces/a/q"),
            plain(ApiRoute::External)
        );
        assert_eq!(
            Counted::of_path("/apis/metrics.k8s.io.x/v1beta1/nodes"),
            None
        );
        assert_eq!(
            Counted::of_path("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/%2A/%6Cog"),
            Some(Counted {
                route: ApiRoute::CustomNamespacedV1beta2,
                connect: true
            })
        );
        assert_eq!(
            Counted::of_path("/apis/custom.metrics.k8s.io/v1beta1/a/b/c/d/e/f/g/h"),
            None
        );
        assert_eq!(Counted::of_path("/readyz"), plain(ApiRoute::Readyz));
        assert_eq!(Counted::of_path("/metrics"), None);
    }

    #[test]
    fn watch_and_dry_run_are_read_as_the_generic_server_reads_them() {
        let plain = RequestLine {
            watch: false,
            dry_run: DryRun::None,
        };
        assert_eq!(RequestLine::of(&Method::GET, None), plain);
        assert_eq!(line(Method::GET, "labelSelector=app%3Dweb"), plain);
        assert!(line(Method::GET, "watch=true").watch);
        assert!(line(Method::GET, "watch").watch);
        assert!(line(Method::GET, "%77atch=1").watch);
        assert!(!line(Method::GET, "watch=FALSE").watch);
        assert!(!line(Method::GET, "watch=0&watch=1").watch);
        assert!(!line(Method::HEAD, "watch=true").watch);
        assert!(!line(Method::GET, "watchx=true").watch);
        assert_eq!(line(Method::GET, "dryRun=All").dry_run, DryRun::All);
        assert_eq!(
            line(Method::GET, "dryRun=All&dryRun=%41ll").dry_run,
            DryRun::All
        );
        assert_eq!(
            line(Method::GET, "dryRun=All&dryRun=x").dry_run,
            DryRun::Invalid
        );
        assert_eq!(line(Method::GET, "dryRun=").dry_run, DryRun::Invalid);
        assert_eq!(line(Method::GET, "dryrun=All").dry_run, DryRun::None);
        assert_eq!(line(Method::GET, "xdryRun=All").dry_run, DryRun::None);
    }

    #[test]
    fn requests_are_counted_under_fixed_label_sets() {
        let m = ApiRequestMetrics::default();
        let get = RequestLine::of(&Method::GET, None);
        let namespaced = Counted::plain(ApiRoute::CustomNamespacedV1beta2);
        m.observe(namespaced, get, 200, Some(Duration::from_millis(3)));
        m.observe(namespaced, get, 200, Some(Duration::from_millis(70)));
        m.observe(namespaced, get, 404, Some(Duration::from_millis(1)));
        m.observe(namespaced, get, 418, Some(Duration::from_millis(1)));
        m.observe(
            Counted::plain(ApiRoute::External),
            line(Method::GET, "watch=1"),
            405,
            Some(Duration::from_secs(61)),
        );
        m.observe(Counted::plain(ApiRoute::Pods), get, 429, None);
        let mut out = String::new();
        m.render(&mut out);
        let custom = "component=\"custom-metrics\",dry_run=\"\",group=\"custom.metrics.k8s.io\",resource=\"*\",scope=\"resource\",subresource=\"*\",verb=\"GET\",version=\"v1beta2\"";
        for expected in [
            format!("apiserver_request_total{{code=\"200\",{custom}}} 2\n"),
            format!("apiserver_request_total{{code=\"404\",{custom}}} 1\n"),
            format!("apiserver_request_total{{code=\"418\",{custom}}} 1\n"),
            format!("apiserver_request_duration_seconds_bucket{{{custom},le=\"0.005\"}} 3\n"),
            format!("apiserver_request_duration_seconds_bucket{{{custom},le=\"0.1\"}} 4\n"),
            format!("apiserver_request_duration_seconds_count{{{custom}}} 4\n"),
            "apiserver_request_total{code=\"405\",component=\"external-metrics\",dry_run=\"\",group=\"external.metrics.k8s.io\",resource=\"*\",scope=\"cluster\",subresource=\"*\",verb=\"WATCH\",version=\"v1beta1\"} 1\n".to_string(),
            "apiserver_request_duration_seconds_bucket{component=\"external-metrics\",dry_run=\"\",group=\"external.metrics.k8s.io\",resource=\"*\",scope=\"cluster\",subresource=\"*\",verb=\"WATCH\",version=\"v1beta1\",le=\"60\"} 0\n".to_string(),
            "apiserver_request_total{code=\"429\",component=\"apiserver\",dry_run=\"\",group=\"metrics.k8s.io\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1beta1\"} 1\n".to_string(),
        ] {
            assert!(out.contains(&expected), "{expected} missing from\n{out}");
        }
        // A request refused at the limit has no duration; routes never asked have no series.
        assert!(!out.contains("apiserver_request_duration_seconds_count{component=\"apiserver\""));
        assert!(!out.contains("subresource=\"/healthz\""));
        assert!(!out.contains("apiserver_current_inflight_requests{"));
        // The custom route's 200, 404 and 418, and one series of each other route asked.
        assert_eq!(out.matches("apiserver_request_total{").count(), 5);
    }

    #[test]
    fn in_flight_requests_are_the_peak_of_the_last_whole_second() {
        let m = ApiRequestMetrics::default();
        m.inflight_taken(1);
        m.inflight_taken(3);
        m.inflight_taken(2);
        m.inflight_second_ended(1);
        let gauge = |m: &ApiRequestMetrics| {
            let mut out = String::new();
            m.render(&mut out);
            out.lines()
                .filter(|l| l.starts_with("apiserver_current_inflight_requests{"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            gauge(&m),
            [
                "apiserver_current_inflight_requests{request_kind=\"mutating\"} 0",
                "apiserver_current_inflight_requests{request_kind=\"readOnly\"} 3"
            ]
        );
        // A second without a new request reports the one still in flight.
        m.inflight_second_ended(0);
        assert!(gauge(&m)[1].ends_with(" 1"));
        m.inflight_second_ended(0);
        assert!(gauge(&m)[1].ends_with(" 0"));
    }
}
