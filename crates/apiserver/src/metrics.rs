//! promhpa's own metrics, served on `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

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

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, u16), Histogram>,
    backend: BTreeMap<(String, String), Histogram>,
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
#[derive(Debug, Default)]
pub struct SelfMetrics {
    inner: Mutex<Inner>,
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
    pub fn observe_request(&self, route: &str, code: u16, seconds: f64) {
        self.lock()
            .requests
            .entry((route.to_string(), code))
            .or_default()
            .observe(seconds);
    }

    /// One backend query made for `rule` with `outcome` (`success` or an error kind).
    pub fn observe_backend(&self, rule: &str, outcome: &str, seconds: f64) {
        self.lock()
            .backend
            .entry((rule.to_string(), outcome.to_string()))
            .or_default()
            .observe(seconds);
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
    /// `errors` belongs to the rule whose path it starts with (`rules[0]: ...`).
    pub fn record_rule_relists<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
        errors: &[String],
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
        // Rules gone with a reload are forgotten.
        i.rule_relists.retain(|k, _| seen.contains(k));
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
        out.push_str("# HELP promhpa_backend_query_duration_seconds Latency of backend queries by rule and outcome.\n# TYPE promhpa_backend_query_duration_seconds histogram\n");
        for ((rule, outcome), h) in &i.backend {
            h.render(
                &mut out,
                "promhpa_backend_query_duration_seconds",
                &format!("rule=\"{}\",outcome=\"{}\"", esc(rule), esc(outcome)),
            );
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
        m.record_rule_relists(["rules[1]"], &[]);
        let r = m.rule_relists();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["rules[1]"]);
        assert!(r["rules[1]"].last_error.is_none() && r["rules[1]"].last_success_seconds > 0.0);
    }
}
