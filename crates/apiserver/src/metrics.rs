//! promhpa's own metrics, served on `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promhpa_core::timing::{CallTimings, Histogram as AtomicHistogram, PromApi};

use crate::apiserver_metrics::{ApiRequestMetrics, Counted, RequestLine};

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The stages of serving a metric request, in the order a request passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The TLS handshake of a new connection (once per connection, not per request).
    TlsHandshake,
    /// Authentication and authorization (every request but health probes).
    Auth,
    /// From the handler's start: path and query parsing, resource mapping and the
    /// registry's rule for the metric.
    Route,
    /// The names of the objects a label selector matches (`pods/*` requests).
    ObjectLookup,
    /// The rule's `metricsQuery` template rendered to PromQL.
    Render,
    /// Waiting for the backend's answer (a query shared with an identical request, or one
    /// answered from the result cache, included), its decoding excluded.
    Backend,
    /// Decoding the backend's response (only for the request that asked the backend).
    Decode,
    /// Samples matched to objects and the answer encoded as JSON.
    Encode,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 8] = [
        Stage::TlsHandshake,
        Stage::Auth,
        Stage::Route,
        Stage::ObjectLookup,
        Stage::Render,
        Stage::Backend,
        Stage::Decode,
        Stage::Encode,
    ];

    /// The value of the `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::TlsHandshake => "tls_handshake",
            Stage::Auth => "auth",
            Stage::Route => "route",
            Stage::ObjectLookup => "object_lookup",
            Stage::Render => "render",
            Stage::Backend => "backend",
            Stage::Decode => "decode",
            Stage::Encode => "encode",
        }
    }
}

/// Upper bounds of the stage histogram's buckets (25µs to 1s), in nanoseconds.
const STAGE_BUCKETS: [u64; 15] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// A histogram of one stage, updated without a lock.
type StageHistogram = AtomicHistogram<{ STAGE_BUCKETS.len() }>;

/// Times the consecutive stages of one request: each [`StageClock::lap`] records the time
/// since the previous lap (or the start) under a stage. One `Instant::now()` per lap.
pub struct StageClock<'a> {
    metrics: &'a SelfMetrics,
    last: Instant,
}

impl<'a> StageClock<'a> {
    /// A clock whose first stage starts now.
    pub fn start(metrics: &'a SelfMetrics) -> StageClock<'a> {
        StageClock {
            metrics,
            last: Instant::now(),
        }
    }

    /// The stage that started at the last lap ended now.
    pub fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        self.metrics.observe_stage(stage, now - self.last);
        self.last = now;
    }

    /// The next stage starts now; the time since the last lap was recorded elsewhere.
    pub fn restart(&mut self) {
        self.last = Instant::now();
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), Histogram>,
    /// By rule, then outcome.
    backend: BTreeMap<String, BTreeMap<&'static str, Histogram>>,
    relist: Histogram,
    relist_failures: u64,
    /// Unix seconds of the end of the last relist in which every rule succeeded (0: none).
    relist_success_seconds: f64,
    relist_series: u64,
    registry_custom: u64,
    registry_external: u64,
    dropped_values: BTreeMap<String, u64>,
    broken_rules: Vec<String>,
    /// Whether the last reload of the rule file succeeded (1 before any).
    reload_failed: bool,
    /// Unix time of the last successful load or reload of the rule file.
    reload_success_seconds: f64,
    reloads: BTreeMap<&'static str, u64>,
    open_connections: u64,
    connections_closed: BTreeMap<String, u64>,
    requests_rejected: BTreeMap<String, u64>,
    stale_values_served: BTreeMap<&'static str, u64>,
    stale_values_remembered: (u64, u64),
    /// Per rule (by path): the last relist's outcome.
    rule_relists: BTreeMap<String, RuleRelist>,
    /// Value requests forwarded to another metrics server, by API and the code answered.
    forwarded: BTreeMap<(&'static str, u16), u64>,
    /// Calls to the other metrics server without a usable answer, by API and call.
    forward_failures: BTreeMap<(&'static str, &'static str), u64>,
}

/// What the last relists said about one rule.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRelist {
    /// Unix seconds of the last relist that asked about this rule.
    pub last_relist_seconds: f64,
    /// Unix seconds of the last relist in which its discovery succeeded (0: never).
    pub last_success_seconds: f64,
    /// The error of the last relist, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Counters and histograms describing the server's own behaviour.
#[derive(Debug)]
pub struct SelfMetrics {
    inner: Mutex<Inner>,
    /// By [`Stage`], in the order of [`Stage::ALL`]; outside the lock, as every request
    /// records several.
    stages: [StageHistogram; Stage::ALL.len()],
    /// The generic API server's request metrics, as prometheus-adapter exports them.
    api: ApiRequestMetrics,
    /// The calls of the Prometheus clients made with [`SelfMetrics::prometheus_calls`].
    prometheus_calls: Arc<CallTimings>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics {
            inner: Mutex::default(),
            stages: [const { StageHistogram::new(&STAGE_BUCKETS) }; Stage::ALL.len()],
            api: ApiRequestMetrics::default(),
            prometheus_calls: Arc::default(),
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl SelfMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One served HTTP request on `route` with status `code`.
    pub fn observe_request(&self, route: &'static str, code: u16, seconds: f64) {
        self.lock()
            .requests
            .entry((route, code))
            .or_default()
            .observe(seconds);
    }

    /// One request (or connection, for the TLS handshake) spent `took` in `stage`.
    pub fn observe_stage(&self, stage: Stage, took: Duration) {
        self.stages[stage as usize].observe(took);
    }

    /// One request of a route the generic API server's request metrics count, answered
    /// `code` after `took` (`None`: refused at the in-flight limit, counted without a
    /// duration).
    pub fn observe_api_request(
        &self,
        counted: Counted,
        line: RequestLine,
        code: u16,
        took: Option<Duration>,
    ) {
        self.api.observe(counted, line, code, took);
    }

    /// `in_use` seats of `--max-requests-inflight` are taken, one of them just now.
    pub fn inflight_taken(&self, in_use: usize) {
        self.api.inflight_taken(in_use);
    }

    /// A second of the in-flight limit ended with `in_use` seats taken.
    pub fn inflight_second_ended(&self, in_use: usize) {
        self.api.inflight_second_ended(in_use);
    }

    /// Where Prometheus clients count the time of their calls
    /// (`prometheus_adapter_prometheus_client_request_duration_seconds`).
    pub fn prometheus_calls(&self) -> Arc<CallTimings> {
        self.prometheus_calls.clone()
    }

    /// One backend query made for `rule` with `outcome` (`success` or an error kind).
    pub fn observe_backend(&self, rule: &str, outcome: &'static str, seconds: f64) {
        let mut i = self.lock();
        // The rule's name is copied only the first time it is seen.
        if !i.backend.contains_key(rule) {
            i.backend.insert(rule.to_string(), BTreeMap::new());
        }
        if let Some(by_outcome) = i.backend.get_mut(rule) {
            by_outcome.entry(outcome).or_default().observe(seconds);
        }
    }

    /// One discovery relist.
    pub fn observe_relist(&self, seconds: f64, series: u64, ok: bool) {
        let mut i = self.lock();
        i.relist.observe(seconds);
        i.relist_series = series;
        if ok {
            i.relist_success_seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
        } else {
            i.relist_failures += 1;
        }
    }

    /// One relist of every rule in `paths` (`rules[0]`, `externalRules[2]`); an error of
    /// `errors` belongs to the rule whose path it starts with (`rules[0]: ...`). Rules not
    /// in `paths` (gone with a reload) are forgotten.
    pub fn record_rule_relists<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        errors: &[String],
    ) {
        self.record_rule_discoveries(paths, errors, true);
    }

    /// As [`SelfMetrics::record_rule_relists`] for the rules a targeted lookup asked about;
    /// the others keep what their last discovery recorded.
    pub fn record_rule_lookups<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        errors: &[String],
    ) {
        self.record_rule_discoveries(paths, errors, false);
    }

    /// Why the last discovery of the rule at `path` failed, while none has succeeded since.
    pub fn rule_discovery_error(&self, path: &str) -> Option<String> {
        let i = self.lock();
        let error = i.rule_relists.get(path)?.last_error.as_deref()?;
        let cause = error
            .strip_prefix(path)
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(error);
        Some(cause.to_string())
    }

    fn record_rule_discoveries<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        errors: &[String],
        forget_others: bool,
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut i = self.lock();
        let mut seen = std::collections::BTreeSet::new();
        for path in paths {
            seen.insert(path.to_string());
            let error = errors
                .iter()
                .find(|e| e.strip_prefix(path).is_some_and(|r| r.starts_with(": ")))
                .cloned();
            let r = i.rule_relists.entry(path.to_string()).or_default();
            r.last_relist_seconds = now;
            if error.is_none() {
                r.last_success_seconds = now;
            }
            r.last_error = error;
        }
        if forget_others {
            i.rule_relists.retain(|k, _| seen.contains(k));
        }
    }

    /// The last relist of each rule, by path.
    pub fn rule_relists(&self) -> BTreeMap<String, RuleRelist> {
        self.lock().rule_relists.clone()
    }

    /// Current registry size.
    pub fn set_registry_size(&self, custom: usize, external: usize) {
        let mut i = self.lock();
        i.registry_custom = custom as u64;
        i.registry_external = external as u64;
    }

    /// The rules of the loaded file that cannot serve (by position, e.g. `rules[3]`).
    pub fn set_broken_rules(&self, rules: Vec<String>) {
        self.lock().broken_rules = rules;
    }

    /// The rule file was loaded (at start, or reloaded) successfully now.
    pub fn rules_loaded(&self) {
        let mut i = self.lock();
        i.reload_failed = false;
        i.reload_success_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
    }

    /// One reload of the rule file, successful or not.
    pub fn observe_reload(&self, ok: bool) {
        if ok {
            self.rules_loaded();
        }
        let mut i = self.lock();
        if !ok {
            i.reload_failed = true;
        }
        *i.reloads
            .entry(if ok { "success" } else { "failure" })
            .or_default() += 1;
    }

    /// A value that was not served because it was NaN or infinite.
    pub fn dropped_value(&self, metric: &str) {
        *self
            .lock()
            .dropped_values
            .entry(metric.to_string())
            .or_default() += 1;
    }

    /// Connections open now.
    pub fn set_open_connections(&self, n: usize) {
        self.lock().open_connections = n as u64;
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.lock().open_connections
    }

    /// A connection the server closed (a timeout, to make room, or refused at the cap).
    pub fn connection_closed(&self, reason: &str) {
        *self
            .lock()
            .connections_closed
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// A request refused by the serving limits (in-flight cap, body, request timeout).
    pub fn request_rejected(&self, reason: &str) {
        *self
            .lock()
            .requests_rejected
            .entry(reason.to_string())
            .or_default() += 1;
    }

    /// An earlier answer served for a request of `api` because the backend failed.
    pub fn stale_value_served(&self, api: &'static str) {
        *self.lock().stale_values_served.entry(api).or_default() += 1;
    }

    /// Requests whose last answer is remembered for stale values, and the bytes kept.
    pub fn set_stale_values_remembered(&self, requests: usize, bytes: usize) {
        self.lock().stale_values_remembered = (requests as u64, bytes as u64);
    }

    /// A value request of `api` forwarded to another metrics server, answered with `code`.
    pub fn forwarded(&self, api: &'static str, code: u16) {
        *self.lock().forwarded.entry((api, code)).or_default() += 1;
    }

    /// A call (`value` or `discovery`) to the metrics server `api` forwards to that gave no
    /// usable answer.
    pub fn forward_failed(&self, api: &'static str, call: &'static str) {
        *self.lock().forward_failures.entry((api, call)).or_default() += 1;
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let i = self.lock();
        let mut out = String::new();
        out.push_str("# HELP promhpa_http_request_duration_seconds Latency of served HTTP requests by route and status code.\n# TYPE promhpa_http_request_duration_seconds histogram\n");
        for ((route, code), h) in &i.requests {
            h.render(
                &mut out,
                "promhpa_http_request_duration_seconds",
                &format!("route=\"{}\",code=\"{code}\"", esc(route)),
            );
        }
        out.push_str("# HELP promhpa_request_stage_duration_seconds Time metric requests spend in each stage of serving (tls_handshake: per connection; backend excludes decode).\n# TYPE promhpa_request_stage_duration_seconds histogram\n");
        for stage in Stage::ALL {
            self.stages[stage as usize].render(
                &mut out,
                "promhpa_request_stage_duration_seconds",
                &format!("stage=\"{}\"", stage.label()),
            );
        }
        out.push_str("# HELP promhpa_backend_query_duration_seconds Latency of backend queries by rule and outcome.\n# TYPE promhpa_backend_query_duration_seconds histogram\n");
        for (rule, by_outcome) in &i.backend {
            for (outcome, h) in by_outcome {
                h.render(
                    &mut out,
                    "promhpa_backend_query_duration_seconds",
                    &format!("rule=\"{}\",outcome=\"{}\"", esc(rule), esc(outcome)),
                );
            }
        }
        out.push_str("# HELP promhpa_discovery_relist_duration_seconds Duration of discovery relists.\n# TYPE promhpa_discovery_relist_duration_seconds histogram\n");
        i.relist
            .render(&mut out, "promhpa_discovery_relist_duration_seconds", "");
        let _ = writeln!(out, "# HELP promhpa_discovery_relist_failures_total Relists that failed for at least one rule.\n# TYPE promhpa_discovery_relist_failures_total counter\npromhpa_discovery_relist_failures_total {}", i.relist_failures);
        let _ = writeln!(out, "# HELP promhpa_discovery_last_success_timestamp_seconds When the last relist in which every rule succeeded ended (0: none yet).\n# TYPE promhpa_discovery_last_success_timestamp_seconds gauge\npromhpa_discovery_last_success_timestamp_seconds {}", i.relist_success_seconds);
        out.push_str("# HELP promhpa_discovery_rule_last_success_timestamp_seconds When discovery last succeeded for a rule (0: never since start).\n# TYPE promhpa_discovery_rule_last_success_timestamp_seconds gauge\n");
        for (rule, r) in &i.rule_relists {
            let _ = writeln!(
                out,
                "promhpa_discovery_rule_last_success_timestamp_seconds{{rule=\"{}\"}} {}",
                esc(rule),
                r.last_success_seconds
            );
        }
        out.push_str("# HELP promhpa_discovery_rule_failing Whether the last relist failed for a rule (it keeps its previous metrics).\n# TYPE promhpa_discovery_rule_failing gauge\n");
        for (rule, r) in &i.rule_relists {
            let _ = writeln!(
                out,
                "promhpa_discovery_rule_failing{{rule=\"{}\"}} {}",
                esc(rule),
                u8::from(r.last_error.is_some())
            );
        }
        let _ = writeln!(out, "# HELP promhpa_discovery_relist_series Distinct (name, label-name set) pairs seen by the last relist.\n# TYPE promhpa_discovery_relist_series gauge\npromhpa_discovery_relist_series {}", i.relist_series);
        let _ = writeln!(out, "# HELP promhpa_registry_metrics Metrics served, by API.\n# TYPE promhpa_registry_metrics gauge\npromhpa_registry_metrics{{api=\"custom\"}} {}\npromhpa_registry_metrics{{api=\"external\"}} {}", i.registry_custom, i.registry_external);
        let _ = writeln!(out, "# HELP promhpa_config_last_reload_successful Whether the last reload of the rule file succeeded.\n# TYPE promhpa_config_last_reload_successful gauge\npromhpa_config_last_reload_successful {}", u8::from(!i.reload_failed));
        let _ = writeln!(out, "# HELP promhpa_config_last_reload_success_timestamp_seconds When the rule file was last loaded successfully.\n# TYPE promhpa_config_last_reload_success_timestamp_seconds gauge\npromhpa_config_last_reload_success_timestamp_seconds {}", i.reload_success_seconds);
        out.push_str("# HELP promhpa_config_reloads_total Reloads of the rule file, by result.\n# TYPE promhpa_config_reloads_total counter\n");
        for (result, n) in &i.reloads {
            let _ = writeln!(
                out,
                "promhpa_config_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP promhpa_rules_broken Rules of the rule file that load but cannot serve (see the log or `promhpa check`).\n# TYPE promhpa_rules_broken gauge\npromhpa_rules_broken {}", i.broken_rules.len());
        out.push_str("# HELP promhpa_rule_broken A rule that loads but cannot serve; every request for its metrics fails.\n# TYPE promhpa_rule_broken gauge\n");
        for rule in &i.broken_rules {
            let _ = writeln!(out, "promhpa_rule_broken{{rule=\"{}\"}} 1", esc(rule));
        }
        out.push_str("# HELP promhpa_dropped_values_total Values not served because they were NaN or infinite.\n# TYPE promhpa_dropped_values_total counter\n");
        for (m, c) in &i.dropped_values {
            let _ = writeln!(
                out,
                "promhpa_dropped_values_total{{metric=\"{}\"}} {c}",
                esc(m)
            );
        }
        let _ = writeln!(out, "# HELP promhpa_connections_open Client connections open.\n# TYPE promhpa_connections_open gauge\npromhpa_connections_open {}", i.open_connections);
        out.push_str("# HELP promhpa_connections_closed_total Client connections closed by the server, by reason.\n# TYPE promhpa_connections_closed_total counter\n");
        for (r, c) in &i.connections_closed {
            let _ = writeln!(
                out,
                "promhpa_connections_closed_total{{reason=\"{}\"}} {c}",
                esc(r)
            );
        }
        out.push_str("# HELP promhpa_requests_rejected_total Requests refused by the serving limits, by reason.\n# TYPE promhpa_requests_rejected_total counter\n");
        for (r, c) in &i.requests_rejected {
            let _ = writeln!(
                out,
                "promhpa_requests_rejected_total{{reason=\"{}\"}} {c}",
                esc(r)
            );
        }
        out.push_str("# HELP promhpa_stale_values_served_total Earlier answers served because the backend failed (--stale-value-max-age), by API.\n# TYPE promhpa_stale_values_served_total counter\n");
        for api in ["custom", "external", "resource"] {
            let n = i.stale_values_served.get(api).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "promhpa_stale_values_served_total{{api=\"{api}\"}} {n}"
            );
        }
        let (requests, bytes) = i.stale_values_remembered;
        let _ = writeln!(out, "# HELP promhpa_stale_values_remembered Requests whose last answer (or only its time, once too old) is kept for stale values.\n# TYPE promhpa_stale_values_remembered gauge\npromhpa_stale_values_remembered {requests}");
        let _ = writeln!(out, "# HELP promhpa_stale_values_remembered_bytes Bytes of the answers kept for stale values.\n# TYPE promhpa_stale_values_remembered_bytes gauge\npromhpa_stale_values_remembered_bytes {bytes}");
        out.push_str("# HELP promhpa_forwarded_requests_total Requests for metrics no rule serves, forwarded to another metrics server, by API and the code answered.\n# TYPE promhpa_forwarded_requests_total counter\n");
        for ((api, code), n) in &i.forwarded {
            let _ = writeln!(
                out,
                "promhpa_forwarded_requests_total{{api=\"{api}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP promhpa_forward_failures_total Calls to the metrics server forwarded to that gave no usable answer (unreachable, too slow, not JSON), by API and call.\n# TYPE promhpa_forward_failures_total counter\n");
        for ((api, call), n) in &i.forward_failures {
            let _ = writeln!(
                out,
                "promhpa_forward_failures_total{{api=\"{api}\",call=\"{call}\"}} {n}"
            );
        }
        self.api.render(&mut out);
        out.push_str("# HELP prometheus_adapter_prometheus_client_request_duration_seconds Time of the calls to Prometheus that it answered, by API endpoint and server, as prometheus-adapter counts them.\n# TYPE prometheus_adapter_prometheus_client_request_duration_seconds histogram\n");
        for server in self.prometheus_calls.servers() {
            for api in PromApi::ALL {
                let h = server.of(api);
                if h.count() > 0 {
                    h.render(
                        &mut out,
                        "prometheus_adapter_prometheus_client_request_duration_seconds",
                        &format!(
                            "path=\"{}\",server=\"{}\"",
                            api.path(),
                            esc(server.server())
                        ),
                    );
                }
            }
        }
        crate::process::render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_observations() {
        let m = SelfMetrics::default();
        m.observe_request("custom/object", 200, 0.002);
        m.observe_request("custom/object", 200, 0.2);
        m.observe_backend("rules[0]", "success", 0.01);
        m.set_registry_size(3, 1);
        let text = m.render();
        assert!(text.contains(
            "promhpa_http_request_duration_seconds_bucket{route=\"custom/object\",code=\"200\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "promhpa_http_request_duration_seconds_count{route=\"custom/object\",code=\"200\"} 2"
        ));
        assert!(text.contains("promhpa_registry_metrics{api=\"custom\"} 3"));
        assert!(text.contains("rule=\"rules[0]\",outcome=\"success\""));
        assert!(text.contains("promhpa_stale_values_served_total{api=\"external\"} 0"));
        m.stale_value_served("custom");
        assert!(m
            .render()
            .contains("promhpa_stale_values_served_total{api=\"custom\"} 1"));
        m.forwarded("external", 200);
        m.forwarded("external", 200);
        m.forwarded("external", 503);
        m.forward_failed("external", "discovery");
        let text = m.render();
        assert!(text.contains("promhpa_forwarded_requests_total{api=\"external\",code=\"200\"} 2"));
        assert!(text.contains("promhpa_forwarded_requests_total{api=\"external\",code=\"503\"} 1"));
        assert!(
            text.contains("promhpa_forward_failures_total{api=\"external\",call=\"discovery\"} 1")
        );
    }

    /// A sample of the exposition: metric name, labels in order, value.
    type ParsedSample = (String, Vec<(String, String)>, f64);

    /// A label set `{a="x",b="y"}` read as pairs; `None` when it is not valid.
    fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"")?;
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid {
                return None;
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            pairs.push((name.to_string(), value));
            rest = &after[end + 1..];
            rest = match rest.strip_prefix(',') {
                Some(r) => r,
                None if rest.is_empty() => rest,
                None => return None,
            };
        }
        Some(pairs)
    }

    fn parse_value(v: &str) -> Option<f64> {
        match v {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => v.parse().ok(),
        }
    }

    /// Checks the text exposition format: HELP and TYPE once per family and before its
    /// samples, metric and label names and values well formed, and every histogram's
    /// buckets ascending and cumulative up to `+Inf`, which equals `_count`. Returns the
    /// samples.
    fn parse_exposition(text: &str) -> Vec<ParsedSample> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helps = std::collections::BTreeSet::new();
        let mut samples = Vec::new();
        assert!(text.ends_with('\n'), "the exposition ends with a newline");
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, doc) = help.split_once(' ').unwrap_or((help, ""));
                assert!(!doc.is_empty(), "no help text: {line}");
                assert!(helps.insert(name.to_string()), "second HELP: {line}");
                continue;
            }
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "second TYPE: {line}"
                );
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value = parse_value(value).unwrap_or_else(|| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let l = l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                    (
                        n,
                        parse_labels(l).unwrap_or_else(|| panic!("bad labels: {line}")),
                    )
                }
                None => (series, Vec::new()),
            };
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c == '_' || c == ':' || c.is_ascii_alphanumeric())
                    && !name.starts_with(|c: char| c.is_ascii_digit()),
                "bad name: {line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "no TYPE before: {line}");
            assert!(helps.contains(family), "no HELP before: {line}");
            samples.push((name.to_string(), labels, value));
        }
        // Histograms: per label set (without `le`), buckets in ascending order, counts
        // never decreasing, ending at `+Inf` with the `_count`.
        type Buckets = Vec<(f64, f64)>;
        let mut buckets: BTreeMap<(String, Vec<(String, String)>), Buckets> = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (name, labels, value) in &samples {
            if let Some(family) = name.strip_suffix("_bucket") {
                let le = labels.iter().find(|(k, _)| k == "le").unwrap();
                let le = parse_value(&le.1).unwrap_or_else(|| panic!("bad le: {le:?}"));
                let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
                buckets
                    .entry((family.to_string(), rest))
                    .or_default()
                    .push((le, *value));
            } else if let Some(family) = name.strip_suffix("_count") {
                counts.insert((family.to_string(), labels.clone()), *value);
            }
        }
        for (key, b) in &buckets {
            assert!(b.windows(2).all(|w| w[0].0 < w[1].0), "le order: {key:?}");
            assert!(
                b.windows(2).all(|w| w[0].1 <= w[1].1),
                "not cumulative: {key:?}"
            );
            let (le, last) = b[b.len() - 1];
            assert_eq!(le, f64::INFINITY, "{key:?}");
            assert_eq!(Some(&last), counts.get(key), "+Inf and _count: {key:?}");
        }
        samples
    }

    #[test]
    fn request_stages_are_a_valid_histogram_family() {
        let m = SelfMetrics::default();
        m.observe_request("custom/namespaced", 200, 0.003);
        m.observe_backend("rules[0]", "success", 0.002);
        m.dropped_value("weird \"metric\"\\name");
        m.observe_stage(Stage::Decode, Duration::from_micros(30));
        m.observe_stage(Stage::Decode, Duration::from_micros(25));
        m.observe_stage(Stage::Backend, Duration::from_millis(2));
        m.observe_stage(Stage::TlsHandshake, Duration::from_secs(3));
        let mut clock = StageClock::start(&m);
        clock.lap(Stage::Route);
        clock.lap(Stage::Render);
        let text = m.render();
        let samples = parse_exposition(&text);
        let value = |name: &str, stage: &str, le: Option<&str>| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == name
                        && l.iter().any(|(k, v)| k == "stage" && v == stage)
                        && le.is_none_or(|le| l.iter().any(|(k, v)| k == "le" && v == le))
                })
                .map(|s| s.2)
                .unwrap_or_else(|| panic!("no {name} for {stage} {le:?}"))
        };
        let bucket = "promhpa_request_stage_duration_seconds_bucket";
        let count = "promhpa_request_stage_duration_seconds_count";
        let sum = "promhpa_request_stage_duration_seconds_sum";
        // Every stage is there from the start, in 25µs..1s buckets.
        for stage in Stage::ALL {
            assert_eq!(
                samples
                    .iter()
                    .filter(|(n, l, _)| n == bucket
                        && l.iter().any(|(k, v)| k == "stage" && v == stage.label()))
                    .count(),
                STAGE_BUCKETS.len() + 1
            );
        }
        assert_eq!(value(bucket, "decode", Some("0.000025")), 1.0);
        assert_eq!(value(bucket, "decode", Some("0.00005")), 2.0);
        assert_eq!(value(count, "decode", None), 2.0);
        assert!((value(sum, "decode", None) - 0.000055).abs() < 1e-12);
        assert_eq!(value(bucket, "backend", Some("0.001")), 0.0);
        assert_eq!(value(bucket, "backend", Some("0.0025")), 1.0);
        // Above the last bound: only in +Inf.
        assert_eq!(value(bucket, "tls_handshake", Some("1")), 0.0);
        assert_eq!(value(bucket, "tls_handshake", Some("+Inf")), 1.0);
        assert_eq!(value(count, "route", None), 1.0);
        assert_eq!(value(count, "render", None), 1.0);
        assert_eq!(value(count, "object_lookup", None), 0.0);
        assert_eq!(value(count, "encode", None), 0.0);
    }

    #[test]
    fn prometheus_adapters_series_are_a_valid_exposition() {
        use crate::apiserver_metrics::{Counted, RequestLine};
        let m = SelfMetrics::default();
        let get = RequestLine::of(&axum::http::Method::GET, None);
        let external = Counted::external(&["v1beta1", "namespaces", "a", "q"]).unwrap();
        m.observe_api_request(external, get, 200, Some(Duration::from_millis(7)));
        m.observe_api_request(external, get, 429, None);
        let healthz = Counted::health("/healthz").unwrap();
        m.observe_api_request(healthz, get, 200, Some(Duration::from_micros(40)));
        m.inflight_taken(2);
        m.inflight_second_ended(0);
        let calls = m.prometheus_calls();
        let server = calls.server("https://prometheus:9090/a\"b");
        server.observe(PromApi::Query, Duration::from_millis(30));
        server.observe(PromApi::Series, Duration::from_secs(11));
        calls
            .server("https://other")
            .observe(PromApi::Query, Duration::from_millis(1));
        let text = m.render();
        let samples = parse_exposition(&text);
        let count = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == name
                        && l.len() == labels.len()
                        && labels
                            .iter()
                            .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
                })
                .map(|s| s.2)
                .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
        };
        let calls_count = "prometheus_adapter_prometheus_client_request_duration_seconds_count";
        let quoted = "https://prometheus:9090/a\"b";
        assert_eq!(
            count(
                calls_count,
                &[("path", "/api/v1/query"), ("server", quoted)]
            ),
            1.0
        );
        assert_eq!(
            count(
                "prometheus_adapter_prometheus_client_request_duration_seconds_bucket",
                &[("path", "/api/v1/series"), ("server", quoted), ("le", "10")]
            ),
            0.0
        );
        assert_eq!(
            count(
                calls_count,
                &[("path", "/api/v1/query"), ("server", "https://other")]
            ),
            1.0
        );
        // Endpoints not called have no series.
        assert!(!text.contains("query_range"));
        let external_labels = [
            ("component", "external-metrics"),
            ("dry_run", ""),
            ("group", "external.metrics.k8s.io"),
            ("resource", "*"),
            ("scope", "cluster"),
            ("subresource", "*"),
            ("verb", "LIST"),
            ("version", "v1beta1"),
        ];
        let mut with_code = external_labels.to_vec();
        with_code.push(("code", "429"));
        assert_eq!(count("apiserver_request_total", &with_code), 1.0);
        assert_eq!(
            count("apiserver_request_duration_seconds_count", &external_labels),
            1.0
        );
        assert_eq!(
            count(
                "apiserver_current_inflight_requests",
                &[("request_kind", "readOnly")]
            ),
            2.0
        );
    }

    #[test]
    fn the_last_successful_relist_is_a_timestamp() {
        let m = SelfMetrics::default();
        assert!(m
            .render()
            .contains("\npromhpa_discovery_last_success_timestamp_seconds 0\n"));
        m.observe_relist(0.1, 10, false);
        assert!(m
            .render()
            .contains("\npromhpa_discovery_last_success_timestamp_seconds 0\n"));
        m.observe_relist(0.1, 10, true);
        let text = m.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("promhpa_discovery_last_success_timestamp_seconds "))
            .unwrap_or_default();
        let at: f64 = line
            .rsplit(' ')
            .next()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0.0);
        assert!(at > 1.7e9, "{line}");
        assert!(text.contains("promhpa_discovery_relist_failures_total 1"));
    }

    #[test]
    fn each_rules_relist_is_recorded() {
        let m = SelfMetrics::default();
        m.record_rule_relists(
            ["rules[0]", "rules[1]", "externalRules[0]"],
            &["rules[1]: backend unavailable".to_string()],
        );
        let r = m.rule_relists();
        assert_eq!(r.len(), 3);
        assert!(r["rules[0]"].last_success_seconds > 0.0 && r["rules[0]"].last_error.is_none());
        assert_eq!(r["rules[1]"].last_success_seconds, 0.0);
        assert_eq!(
            r["rules[1]"].last_error.as_deref(),
            Some("rules[1]: backend unavailable")
        );
        let text = m.render();
        assert!(text.contains("promhpa_discovery_rule_failing{rule=\"rules[1]\"} 1"));
        assert!(text.contains("promhpa_discovery_rule_failing{rule=\"externalRules[0]\"} 0"));
        assert!(text.contains(
            "promhpa_discovery_rule_last_success_timestamp_seconds{rule=\"rules[1]\"} 0"
        ));
        // A rule gone with a reload is forgotten; a recovered one keeps no error.
        assert_eq!(
            m.rule_discovery_error("rules[1]").as_deref(),
            Some("backend unavailable")
        );
        // A targeted lookup records the rules it asked about and forgets no other.
        m.record_rule_lookups(["rules[0]"], &["rules[0]: timed out".to_string()]);
        assert_eq!(
            m.rule_discovery_error("rules[0]").as_deref(),
            Some("timed out")
        );
        assert_eq!(m.rule_relists().len(), 3);
        m.record_rule_relists(["rules[1]"], &[]);
        let r = m.rule_relists();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["rules[1]"]);
        assert!(r["rules[1]"].last_error.is_none() && r["rules[1]"].last_success_seconds > 0.0);
        assert_eq!(m.rule_discovery_error("rules[1]"), None);
    }
}
