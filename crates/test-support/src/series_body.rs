//! A `/api/v1/series` answer shaped like a large cluster's, for discovery benches, written
//! piece by piece so that a server can stream hundreds of megabytes without holding them.
//!
//! 50 metric names of five kinds, each with the labels its exporter gives it, in the order
//! Prometheus answers (by name, labels sorted by label name):
//!
//! - cAdvisor (`container_*`, job `kubelet`): `container`, `endpoint`, `id`, `image`,
//!   `instance`, `job`, `namespace`, `node`, `pod`, `service` for each of two containers, and
//!   a pod-level series without `container` and `image` (8 labels), so two label sets
//!   alternate within each of these names;
//! - kube-state-metrics (`kube_pod_*`): the eight common labels and `uid` (9);
//! - request counters (`http_requests_total`, `grpc_server_handled_total`, ...): the eight
//!   common labels, `code` and `method` (10), 4 codes × 3 methods per pod;
//! - histograms (`*_bucket`): the eight common labels and `le` (9), 12 buckets per pod;
//! - plain application metrics (`up`, `go_goroutines`, ...): the eight common labels.
//!
//! The eight common labels are `container`, `endpoint`, `instance`, `job`, `namespace`,
//! `node`, `pod` and `service`, with values of the usual lengths
//! (`checkout-api-7c9d8f6b4d-x2k4p`, `ip-10-0-12-34.eu-west-1.compute.internal`, ...).
//! Series are spread evenly over the names; each pod of a name gets its variants (containers,
//! codes and methods, buckets), and pods are numbered on, so no two series are the same.

/// What labels a metric name's series have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cadvisor,
    KubeState,
    Requests,
    Histogram,
    Plain,
}

/// The 50 metric names and their kinds.
pub const METRICS: [(&str, Kind); 50] = [
    ("apiserver_request_duration_seconds_bucket", Kind::Histogram),
    ("apiserver_request_total", Kind::Requests),
    ("container_cpu_cfs_periods_total", Kind::Cadvisor),
    ("container_cpu_cfs_throttled_seconds_total", Kind::Cadvisor),
    ("container_cpu_usage_seconds_total", Kind::Cadvisor),
    ("container_fs_reads_bytes_total", Kind::Cadvisor),
    ("container_fs_writes_bytes_total", Kind::Cadvisor),
    ("container_memory_cache", Kind::Cadvisor),
    ("container_memory_rss", Kind::Cadvisor),
    ("container_memory_working_set_bytes", Kind::Cadvisor),
    ("container_network_receive_bytes_total", Kind::Cadvisor),
    ("container_network_transmit_bytes_total", Kind::Cadvisor),
    ("envoy_cluster_upstream_rq_total", Kind::Requests),
    ("go_gc_duration_seconds_count", Kind::Plain),
    ("go_goroutines", Kind::Plain),
    ("go_memstats_heap_inuse_bytes", Kind::Plain),
    ("grpc_server_handled_total", Kind::Requests),
    ("grpc_server_handling_seconds_bucket", Kind::Histogram),
    (
        "http_client_request_duration_seconds_bucket",
        Kind::Histogram,
    ),
    ("http_client_requests_total", Kind::Requests),
    ("http_request_duration_seconds_bucket", Kind::Histogram),
    ("http_request_size_bytes_sum", Kind::Requests),
    ("http_requests_total", Kind::Requests),
    ("http_response_size_bytes_sum", Kind::Requests),
    ("http_server_requests_seconds_count", Kind::Requests),
    ("http_server_requests_seconds_sum", Kind::Requests),
    (
        "istio_request_duration_milliseconds_bucket",
        Kind::Histogram,
    ),
    ("istio_requests_total", Kind::Requests),
    ("jvm_memory_used_bytes", Kind::Plain),
    ("jvm_threads_live_threads", Kind::Plain),
    ("kube_pod_container_info", Kind::KubeState),
    ("kube_pod_container_resource_limits", Kind::KubeState),
    ("kube_pod_container_resource_requests", Kind::KubeState),
    ("kube_pod_container_status_restarts_total", Kind::KubeState),
    ("kube_pod_container_status_running", Kind::KubeState),
    ("kube_pod_info", Kind::KubeState),
    ("kube_pod_labels", Kind::KubeState),
    ("kube_pod_owner", Kind::KubeState),
    ("kube_pod_status_phase", Kind::KubeState),
    ("kube_pod_status_ready", Kind::KubeState),
    (
        "nginx_ingress_controller_request_duration_seconds_bucket",
        Kind::Histogram,
    ),
    ("nginx_ingress_controller_requests", Kind::Requests),
    ("process_cpu_seconds_total", Kind::Plain),
    ("process_open_fds", Kind::Plain),
    ("process_resident_memory_bytes", Kind::Plain),
    (
        "rest_client_request_duration_seconds_bucket",
        Kind::Histogram,
    ),
    ("rest_client_requests_total", Kind::Requests),
    ("scrape_duration_seconds", Kind::Plain),
    ("up", Kind::Plain),
    ("workqueue_queue_duration_seconds_bucket", Kind::Histogram),
];

const APPS: [&str; 24] = [
    "checkout-api",
    "payments-worker",
    "frontend",
    "catalog-service",
    "search-indexer",
    "orders-api",
    "inventory-sync",
    "notification-dispatcher",
    "auth-gateway",
    "recommendation-engine",
    "cart",
    "shipping-quotes",
    "user-profile",
    "image-resizer",
    "ledger",
    "fraud-scoring",
    "email-sender",
    "reporting-batch",
    "pricing",
    "session-store-proxy",
    "feature-flags",
    "audit-log",
    "webhooks",
    "graphql-edge",
];

const NAMESPACES: [&str; 8] = [
    "shop-prod",
    "payments",
    "platform-services",
    "data-pipelines",
    "identity",
    "growth-experiments",
    "backoffice",
    "edge",
];

const CODES: [&str; 4] = ["200", "201", "404", "500"];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
/// The letters Kubernetes uses in generated names.
const NAME_LETTERS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Kind {
    /// Series per pod.
    fn variants(self) -> usize {
        match self {
            Kind::Cadvisor => 3,
            Kind::KubeState | Kind::Plain => 1,
            Kind::Requests => CODES.len() * METHODS.len(),
            Kind::Histogram => BUCKETS.len(),
        }
    }
}

/// The number of series of metric `index` when `total` are spread over the 50 names.
fn per_name(total: usize, index: usize) -> usize {
    total / METRICS.len() + usize::from(index < total % METRICS.len())
}

/// The distinct (name, label-name set) pairs a body of `total` series holds.
pub fn distinct_series(total: usize) -> usize {
    METRICS
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| match per_name(total, i) {
            0 => 0,
            1 | 2 if *kind == Kind::Cadvisor => 1,
            _ if *kind == Kind::Cadvisor => 2,
            _ => 1,
        })
        .sum()
}

/// The metric names a body of `total` series has series for.
pub fn metric_names(total: usize) -> usize {
    (0..METRICS.len())
        .filter(|&i| per_name(total, i) > 0)
        .count()
}

/// Writes a body of a given number of series in pieces.
pub struct SeriesBody {
    total: usize,
    /// The next series to write: its metric, and its number within that metric.
    metric: usize,
    within: usize,
    written: usize,
    started: bool,
    finished: bool,
    /// The texts of the pod the last series was about, which the next ones are often about
    /// too (one pod's containers, codes and methods, buckets).
    pod: PodText,
}

impl SeriesBody {
    pub fn new(total: usize) -> Self {
        SeriesBody {
            total,
            metric: 0,
            within: 0,
            written: 0,
            started: false,
            finished: false,
            pod: PodText::default(),
        }
    }

    /// Append the next part of the body to `out` until it holds at least `limit` bytes or
    /// the body is complete; `false` once everything was written.
    pub fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> bool {
        if self.finished {
            return false;
        }
        if !self.started {
            out.extend_from_slice(br#"{"status":"success","data":["#);
            self.started = true;
        }
        while out.len() < limit {
            while self.metric < METRICS.len() && self.within >= per_name(self.total, self.metric) {
                self.metric += 1;
                self.within = 0;
            }
            if self.metric == METRICS.len() {
                out.extend_from_slice(b"]}");
                self.finished = true;
                return true;
            }
            if self.written > 0 {
                out.push(b',');
            }
            let (name, kind) = METRICS[self.metric];
            let pod = (self.within / kind.variants()) as u64;
            if self.pod.of != Some((pod, kind)) {
                self.pod.write(pod, kind);
            }
            write_series(out, name, kind, self.within % kind.variants(), &self.pod);
            self.within += 1;
            self.written += 1;
        }
        true
    }

    /// The whole body at once (for small counts).
    pub fn to_vec(total: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = SeriesBody::new(total);
        while body.fill(&mut out, usize::MAX) {}
        out
    }
}

/// A small deterministic mix of `n`, for names that look random.
fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_letters(out: &mut Vec<u8>, mut seed: u64, count: usize) {
    for _ in 0..count {
        out.push(NAME_LETTERS[(seed % NAME_LETTERS.len() as u64) as usize]);
        seed /= NAME_LETTERS.len() as u64;
    }
}

fn push_hex(out: &mut Vec<u8>, seed: u64, count: usize) {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut x = seed;
    for i in 0..count {
        if i % 16 == 0 {
            x = mix(seed.wrapping_add(i as u64));
        }
        out.push(HEX[(x & 15) as usize]);
        x >>= 4;
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
fn push_uid(out: &mut Vec<u8>, seed: u64) {
    for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        push_hex(out, seed.wrapping_mul(31).wrapping_add(i as u64), len);
    }
}

/// The text of one pod's labels as series of one kind have them, in two pieces around the
/// labels that change from series to series (`le`, `method`), each starting with the
/// previous label value's closing quote.
#[derive(Default)]
struct PodText {
    /// The pod and kind written, if any.
    of: Option<(u64, Kind)>,
    app: &'static str,
    /// `","endpoint":...,"job":"...`, for each cAdvisor series of the pod (one for other
    /// kinds).
    heads: [Vec<u8>; 3],
    /// `","namespace":...,"service":"..."}`
    tail: Vec<u8>,
    /// Scratch space.
    uid: Vec<u8>,
    node: Vec<u8>,
}

impl PodText {
    /// Hold the texts of `pod` for series of `kind`, in the buffers already there.
    fn write(&mut self, pod: u64, kind: Kind) {
        self.of = Some((pod, kind));
        let app = APPS[(pod % APPS.len() as u64) as usize];
        self.app = app;
        let namespace = NAMESPACES[(pod % APPS.len() as u64) as usize % NAMESPACES.len()];
        let node = pod % 400;
        self.uid.clear();
        if kind == Kind::KubeState || kind == Kind::Cadvisor {
            push_uid(&mut self.uid, pod);
        }
        // The kubelet's address on the pod's node, `10.0.12.34`.
        self.node.clear();
        push_decimal(&mut self.node, node / 200 * 16 + 12);
        self.node.push(b'.');
        push_decimal(&mut self.node, node % 200 + 20);
        for (variant, head) in self.heads.iter_mut().enumerate() {
            head.clear();
            match kind {
                Kind::Cadvisor => {
                    head.extend_from_slice(
                        b"\",\"endpoint\":\"https-metrics\",\"id\":\"/kubepods/burstable/pod",
                    );
                    head.extend_from_slice(&self.uid);
                    if variant != 2 {
                        head.push(b'/');
                        push_hex(head, pod * 3 + variant as u64, 64);
                    }
                    if variant == 0 {
                        head.extend_from_slice(b"\",\"image\":\"registry.example.com/shop/");
                        head.extend_from_slice(app.as_bytes());
                        head.extend_from_slice(b":v1.");
                        push_decimal(head, pod % 40);
                        head.extend_from_slice(b".2");
                    } else if variant == 1 {
                        head.extend_from_slice(b"\",\"image\":\"docker.io/istio/proxyv2:1.22.3");
                    }
                    head.extend_from_slice(b"\",\"instance\":\"10.0.");
                    head.extend_from_slice(&self.node);
                    head.extend_from_slice(b":10250\",\"job\":\"kubelet");
                }
                _ if variant > 0 => {}
                // The one kube-state-metrics pod.
                Kind::KubeState => head.extend_from_slice(
                    b"\",\"endpoint\":\"http-metrics\",\"instance\":\"10.8.12.7:8080\",\"job\":\"kube-state-metrics",
                ),
                _ => {
                    head.extend_from_slice(b"\",\"endpoint\":\"http-metrics\",\"instance\":\"10.");
                    push_decimal(head, 64 + (pod >> 16) % 64);
                    head.push(b'.');
                    push_decimal(head, (pod >> 8) & 255);
                    head.push(b'.');
                    push_decimal(head, pod & 255);
                    head.extend_from_slice(b":9090\",\"job\":\"kubernetes-pods");
                }
            }
        }
        let tail = &mut self.tail;
        tail.clear();
        tail.extend_from_slice(b"\",\"namespace\":\"");
        tail.extend_from_slice(namespace.as_bytes());
        tail.extend_from_slice(b"\",\"node\":\"ip-10-0-");
        push_decimal(tail, node / 200 * 16 + 12);
        tail.push(b'-');
        push_decimal(tail, node % 200 + 20);
        tail.extend_from_slice(b".eu-west-1.compute.internal\",\"pod\":\"");
        let seed = mix(pod);
        tail.extend_from_slice(app.as_bytes());
        tail.push(b'-');
        push_letters(tail, seed, 10);
        tail.push(b'-');
        push_letters(tail, seed >> 40, 5);
        tail.extend_from_slice(b"\",\"service\":\"");
        tail.extend_from_slice(match kind {
            Kind::Cadvisor => b"kubelet",
            Kind::KubeState => b"kube-state-metrics",
            _ => app.as_bytes(),
        });
        if kind == Kind::KubeState {
            tail.extend_from_slice(b"\",\"uid\":\"");
            tail.extend_from_slice(&self.uid);
        }
        tail.extend_from_slice(b"\"}");
    }
}

/// One series of metric `name` about `pod`.
fn write_series(out: &mut Vec<u8>, name: &str, kind: Kind, variant: usize, pod: &PodText) {
    out.extend_from_slice(b"{\"__name__\":\"");
    out.extend_from_slice(name.as_bytes());
    if kind == Kind::Requests {
        out.extend_from_slice(b"\",\"code\":\"");
        out.extend_from_slice(CODES[variant / METHODS.len()].as_bytes());
    }
    match (kind, variant) {
        // cAdvisor's pod-level series has no container (nor image).
        (Kind::Cadvisor, 2) => {}
        (Kind::Cadvisor, 1) => out.extend_from_slice(b"\",\"container\":\"istio-proxy"),
        _ => {
            out.extend_from_slice(b"\",\"container\":\"");
            out.extend_from_slice(pod.app.as_bytes());
        }
    }
    out.extend_from_slice(&pod.heads[if kind == Kind::Cadvisor { variant } else { 0 }]);
    if kind == Kind::Histogram {
        out.extend_from_slice(b"\",\"le\":\"");
        out.extend_from_slice(BUCKETS[variant].as_bytes());
    }
    if kind == Kind::Requests {
        out.extend_from_slice(b"\",\"method\":\"");
        out.extend_from_slice(METHODS[variant % METHODS.len()].as_bytes());
    }
    out.extend_from_slice(&pod.tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_promised_shape() {
        for total in [0, 1, 7, 50, 149, 1000] {
            let body = SeriesBody::to_vec(total);
            let text = String::from_utf8(body).unwrap_or_default();
            assert!(
                text.starts_with(r#"{"status":"success","data":["#),
                "{text}"
            );
            assert!(text.ends_with("]}"));
            assert_eq!(text.matches("{\"__name__\"").count(), total);
            assert_eq!(metric_names(total), total.min(50));
        }
        let body = SeriesBody::to_vec(1000);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(r#","method":"POST","namespace":"#));
        assert!(text.contains(r#"{"__name__":"container_memory_rss","endpoint":"https-metrics","id":"/kubepods/burstable/pod"#));
        assert_eq!(distinct_series(1000), 60);
        assert_eq!(distinct_series(50), 50);
    }
}
