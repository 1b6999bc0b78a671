//! A generator of realistic demo traffic for the embedded backend: two Deployments whose
//! pods export a request-latency histogram, in-flight requests, request counters (plain and
//! Istio-style), GPU utilisation, cAdvisor's CPU and memory series (per container, and per
//! node for the root cgroup `id="/"`, as the kubelet reports them), and a
//! replica-recommendation gauge, under a load that
//! rises and falls over a ten-minute cycle. Deterministic: the same ticks give the same
//! samples.

use std::fmt::Write as _;

/// The demo rule file (`demo/rules.yaml`): the rules that serve the demo traffic's metrics.
pub const RULES: &str = include_str!("../../../demo/rules.yaml");

/// The demo object set (`demo/objects.yaml`): the Deployments, pods and nodes the demo
/// traffic comes from.
pub const OBJECTS: &str = include_str!("../../../demo/objects.yaml");

/// Prometheus client libraries' default histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const CYCLE_S: f64 = 600.0;

/// The demo's nodes; pods are spread over them in turn.
pub const NODES: [&str; 2] = ["demo-node-1", "demo-node-2"];

/// CPU cores and memory a node uses beyond its pods (kubelet, runtime, system daemons).
const NODE_OVERHEAD_CORES: f64 = 0.15;
const NODE_OVERHEAD_MIB: f64 = 900.0;

struct Pod {
    namespace: &'static str,
    deployment: &'static str,
    name: String,
    /// Share of its Deployment's traffic.
    weight: f64,
    gpu: bool,
    node: &'static str,
}

#[derive(Default, Clone)]
struct PodCounters {
    requests_ok: f64,
    requests_err: f64,
    buckets: [f64; 12],
    latency_sum: f64,
    cpu_seconds: f64,
}

/// The demo workload and its accumulated counters.
pub struct DemoTraffic {
    pods: Vec<Pod>,
    counters: Vec<PodCounters>,
    /// CPU seconds of each node's root cgroup (its pods and its own overhead).
    node_cpu_seconds: Vec<f64>,
    start_ms: i64,
    last_ms: i64,
}

impl DemoTraffic {
    /// Demo pods in namespace `default`: Deployment `web` (3 pods) and Deployment
    /// `inference` (2 pods, with GPUs). Traffic starts at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        let mut pods = Vec::new();
        for (i, w) in [0.45, 0.35, 0.2].iter().enumerate() {
            pods.push(Pod {
                namespace: "default",
                deployment: "web",
                name: format!("web-7c9d8f6b5-{}", ["x2k4p", "m8q7z", "t5r9w"][i]),
                weight: *w,
                gpu: false,
                node: NODES[i % NODES.len()],
            });
        }
        for (i, w) in [0.6, 0.4].iter().enumerate() {
            pods.push(Pod {
                namespace: "default",
                deployment: "inference",
                name: format!("inference-5f4b7d9c8-{}", ["a1b2c", "d3e4f"][i]),
                weight: *w,
                gpu: true,
                node: NODES[(i + 1) % NODES.len()],
            });
        }
        let counters = vec![PodCounters::default(); pods.len()];
        DemoTraffic {
            pods,
            counters,
            node_cpu_seconds: vec![0.0; NODES.len()],
            start_ms,
            last_ms: start_ms,
        }
    }

    /// Memory (MiB) a pod's container works with at a load factor.
    fn memory_mib(pod: &Pod, load: f64) -> f64 {
        let rps = Self::base_rps(pod.deployment) * load * pod.weight;
        if pod.deployment == "web" {
            96.0 + rps
        } else {
            2048.0 + 40.0 * rps
        }
    }

    /// Names of the demo pods with their namespace and Deployment.
    pub fn pods(&self) -> Vec<(String, String, String)> {
        self.pods
            .iter()
            .map(|p| {
                (
                    p.namespace.to_string(),
                    p.deployment.to_string(),
                    p.name.clone(),
                )
            })
            .collect()
    }

    /// Load factor in [0.2, 1.8] at `t_ms`: a ten-minute wave.
    fn load(&self, t_ms: i64) -> f64 {
        let secs = (t_ms - self.start_ms) as f64 / 1000.0;
        1.0 + 0.8 * (2.0 * std::f64::consts::PI * secs / CYCLE_S).sin()
    }

    /// Requests per second a Deployment receives at full load factor 1.
    fn base_rps(deployment: &str) -> f64 {
        if deployment == "web" {
            120.0
        } else {
            12.0
        }
    }

    /// CPU cores a pod of a Deployment uses serving `rps` requests per second.
    fn cpu_cores(deployment: &str, rps: f64) -> f64 {
        if deployment == "web" {
            0.01 + rps * 0.002
        } else {
            0.2 + rps * 0.05
        }
    }

    /// The container of a Deployment's pods.
    fn container(deployment: &str) -> &'static str {
        if deployment == "web" {
            "app"
        } else {
            "model"
        }
    }

    /// Mean latency (seconds) of a pod at a load factor: queueing makes it grow with load.
    fn mean_latency(deployment: &str, load: f64) -> f64 {
        let base = if deployment == "web" { 0.04 } else { 0.18 };
        base / (2.0 - load.min(1.9))
    }

    /// Advances the counters to `t_ms` in one-second steps (earlier times are ignored).
    pub fn advance(&mut self, t_ms: i64) {
        while self.last_ms + 1000 <= t_ms {
            self.last_ms += 1000;
            let load = self.load(self.last_ms);
            for n in &mut self.node_cpu_seconds {
                *n += NODE_OVERHEAD_CORES;
            }
            for (pod, c) in self.pods.iter().zip(self.counters.iter_mut()) {
                let rps = Self::base_rps(pod.deployment) * load * pod.weight;
                let errors = rps * 0.002 * load;
                c.requests_ok += rps - errors;
                c.requests_err += errors;
                let cores = Self::cpu_cores(pod.deployment, rps);
                c.cpu_seconds += cores;
                if let Some(n) = NODES.iter().position(|n| *n == pod.node) {
                    self.node_cpu_seconds[n] += cores;
                }
                let mean = Self::mean_latency(pod.deployment, load);
                // Exponentially distributed latencies: P(X <= le) = 1 - exp(-le / mean).
                for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                    c.buckets[i] += rps * (1.0 - (-le / mean).exp());
                }
                c.buckets[11] += rps;
                c.latency_sum += rps * mean;
            }
        }
    }

    /// The pods' metrics at `t_ms` (after [`DemoTraffic::advance`]) in the text exposition
    /// format, as one scrape of all pods would see them (with `namespace` and `pod` labels).
    pub fn exposition(&self, t_ms: i64) -> String {
        let load = self.load(t_ms);
        let mut out = String::new();
        let _ = writeln!(out, "# HELP http_request_duration_seconds Request latency.");
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        for (pod, c) in self.pods.iter().zip(&self.counters) {
            let l = format!(
                "namespace=\"{}\",pod=\"{}\",endpoint=\"/predict\"",
                pod.namespace, pod.name
            );
            for (i, count) in c.buckets.iter().enumerate() {
                let le = match LATENCY_BUCKETS.get(i) {
                    Some(b) => format!("{b}"),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}",
                    count.floor()
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{l}}} {}",
                c.latency_sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{l}}} {}",
                c.buckets[11].floor()
            );
        }
        let _ = writeln!(out, "# TYPE http_requests_in_flight gauge");
        for pod in &self.pods {
            let rps = Self::base_rps(pod.deployment) * load * pod.weight;
            let inflight = (rps * Self::mean_latency(pod.deployment, load)).round();
            let _ = writeln!(
                out,
                "http_requests_in_flight{{namespace=\"{}\",pod=\"{}\",endpoint=\"/predict\"}} {inflight}",
                pod.namespace, pod.name
            );
        }
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for (pod, c) in self.pods.iter().zip(&self.counters) {
            for (code, v) in [("200", c.requests_ok), ("500", c.requests_err)] {
                let _ = writeln!(
                    out,
                    "http_requests_total{{namespace=\"{}\",pod=\"{}\",code=\"{code}\"}} {}",
                    pod.namespace,
                    pod.name,
                    v.floor()
                );
            }
        }
        let _ = writeln!(out, "# TYPE istio_requests_total counter");
        for (pod, c) in self.pods.iter().zip(&self.counters) {
            let _ = writeln!(
                out,
                "istio_requests_total{{namespace=\"{}\",pod=\"{}\",destination_workload=\"{}\",response_code=\"200\",reporter=\"destination\"}} {}",
                pod.namespace,
                pod.name,
                pod.deployment,
                c.requests_ok.floor()
            );
        }
        let _ = writeln!(out, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge");
        for pod in self.pods.iter().filter(|p| p.gpu) {
            let util = (45.0 * load * (0.8 + pod.weight)).clamp(0.0, 100.0).round();
            let _ = writeln!(
                out,
                "DCGM_FI_DEV_GPU_UTIL{{namespace=\"{}\",pod=\"{}\",gpu=\"0\",modelName=\"NVIDIA A10G\"}} {util}",
                pod.namespace, pod.name
            );
        }
        let _ = writeln!(out, "# TYPE container_cpu_usage_seconds_total counter");
        for (pod, c) in self.pods.iter().zip(&self.counters) {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\",node=\"{}\"}} {}",
                pod.namespace,
                pod.name,
                Self::container(pod.deployment),
                pod.node,
                c.cpu_seconds
            );
        }
        for (node, cpu) in NODES.iter().zip(&self.node_cpu_seconds) {
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{id=\"/\",node=\"{node}\"}} {cpu}"
            );
        }
        let _ = writeln!(out, "# TYPE container_memory_working_set_bytes gauge");
        for pod in &self.pods {
            let mib = Self::memory_mib(pod, load);
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\",container=\"{}\",node=\"{}\"}} {}",
                pod.namespace,
                pod.name,
                Self::container(pod.deployment),
                pod.node,
                (mib * 1024.0 * 1024.0).round()
            );
        }
        for node in NODES {
            let mib = NODE_OVERHEAD_MIB
                + self
                    .pods
                    .iter()
                    .filter(|p| p.node == node)
                    .map(|p| Self::memory_mib(p, load))
                    .sum::<f64>();
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{id=\"/\",node=\"{node}\"}} {}",
                (mib * 1024.0 * 1024.0).round()
            );
        }
        let _ = writeln!(out, "# TYPE inferno_desired_replicas gauge");
        let desired = (2.0 * load).ceil().max(1.0);
        let _ = writeln!(
            out,
            "inferno_desired_replicas{{variant_name=\"inference\",exported_namespace=\"default\"}} {desired}"
        );
        out
    }
}

/// An embedded backend fed by demo traffic: five minutes of history before now, then one
/// scrape every five seconds, in a background thread that lives as long as the process.
pub fn demo_backend() -> std::sync::Arc<crate::EmbeddedBackend> {
    use crate::Labels;
    use promhpa_core::time::now_ms;
    let backend = std::sync::Arc::new(crate::EmbeddedBackend::default());
    let now = now_ms();
    let start = now - 300_000;
    let mut traffic = DemoTraffic::new(start);
    let mut t = start;
    while t <= now {
        traffic.advance(t);
        if let Err(e) = backend.ingest_exposition(&traffic.exposition(t), t, &Labels::empty()) {
            tracing::warn!(error = %e, "demo ingest failed");
        }
        t += 5_000;
    }
    let feed = backend.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        let t = now_ms();
        traffic.advance(t);
        if let Err(e) = feed.ingest_exposition(&traffic.exposition(t), t, &Labels::empty()) {
            tracing::warn!(error = %e, "demo ingest failed");
        }
    });
    backend
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmbeddedBackend, Labels, Value};

    #[test]
    fn the_demo_backend_starts_with_five_minutes_of_history() {
        let backend = demo_backend();
        assert!(backend.series_count() > 0);
        let now = promhpa_core::time::now_ms();
        let v = backend
            .query_value("count_over_time(DCGM_FI_DEV_GPU_UTIL[5m])", now)
            .unwrap();
        let Value::Vector(v) = v else { panic!("{v:?}") };
        assert!(!v.is_empty());
        assert!(v.iter().all(|s| s.v >= 60.0), "{v:?}");
    }

    #[test]
    fn demo_feeds_the_seed_queries() {
        let backend = EmbeddedBackend::default();
        let mut demo = DemoTraffic::new(0);
        let mut t = 0;
        while t <= 180_000 {
            demo.advance(t);
            backend
                .ingest_exposition(&demo.exposition(t), t, &Labels::empty())
                .unwrap();
            t += 15_000;
        }
        let p95 = backend
            .query_value(
                "histogram_quantile(0.95, sum by (le, pod) (rate(http_request_duration_seconds_bucket{endpoint=\"/predict\"}[1m])))",
                t - 15_000,
            )
            .unwrap();
        let Value::Vector(v) = p95 else {
            panic!("{p95:?}")
        };
        assert_eq!(v.len(), 5);
        assert!(v.iter().all(|s| s.v > 0.0 && s.v < 10.0), "{v:?}");
        for q in [
            "sum by (pod) (http_requests_in_flight{endpoint=\"/predict\"})",
            "sum(rate(istio_requests_total{pod!=\"\",namespace!=\"\"}[2m])) by (pod)",
            "DCGM_FI_DEV_GPU_UTIL",
            "inferno_desired_replicas{variant_name=\"inference\"}",
            "sum by (pod, container) (rate(container_cpu_usage_seconds_total[3m]))",
            "container_memory_working_set_bytes",
            "sum by (node) (rate(container_cpu_usage_seconds_total{id=\"/\"}[3m]))",
            "container_memory_working_set_bytes{id=\"/\",node=\"demo-node-2\"}",
        ] {
            let Value::Vector(v) = backend.query_value(q, t - 15_000).unwrap() else {
                panic!("{q}")
            };
            assert!(!v.is_empty(), "{q} is empty");
        }
    }
}
