//! How soon a metric whose first sample just arrived is served: promhpa runs against a real
//! Prometheus (HTTPS, test CA) with a one-minute relist (the chart's
//! `--metrics-relist-interval=1m`); a new series appears on the scrape target; once Prometheus has it, the first request for the metric is timed
//! until it answers 200 (the registry looks the unknown name up on the request instead of
//! waiting for the next relist). Repeated for RUNS new metrics (default 10).
//!
//! `cargo bench -p promhpa --bench first_sample`
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const RULES: &str = "rules:\n- seriesQuery: '{__name__=~\"^job_queue_.*\",namespace!=\"\",pod!=\"\"}'\n  resources:\n    overrides:\n      namespace: {resource: namespace}\n      pod: {resource: pod}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n";

fn body(metrics: usize) -> String {
    let mut s = String::new();
    for m in 0..metrics {
        s.push_str(&format!(
            "job_queue_{m}{{namespace=\"default\",pod=\"worker-0\"}} {m}\n"
        ));
    }
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let pki = TestPki::generate("first-sample-ca", "bench").unwrap();
    let target = ScrapeTarget::start(&body(1)).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    let client = PromClient::new(pc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let objects = dir.path().join("objects.yaml");
    std::fs::write(
        &objects,
        "- {apiVersion: v1, kind: Pod, metadata: {name: worker-0, namespace: default}}\n",
    )
    .unwrap();
    let (mut child, port) = support::start_promhpa(
        &prom,
        &pki,
        &rules,
        &objects,
        &["--metrics-relist-interval=1m"],
    );
    let http = support::client(&pki);
    let url = |m: usize| {
        format!("https://127.0.0.1:{port}/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/job_queue_{m}")
    };
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(url(0)).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "promhpa never served job_queue_0"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The next (19 s or more) relist is far off; give discovery a second to settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut times = Vec::new();
    for m in 1..=runs {
        target.set_body(&body(m + 1));
        let q = format!("count(job_queue_{m})");
        loop {
            if let Ok(QueryValue::Vector(v)) = client.query(&q, now_ms()).await {
                if !v.is_empty() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        loop {
            let r = http.get(url(m)).send().await.unwrap();
            if r.status().is_success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "job_queue_{m} never served"
            );
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{runs} new metrics, first request after Prometheus has the sample: median {:.1} ms, slowest {:.1} ms (with a one-minute relist interval)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    let _ = child.kill();
    let _ = child.wait();
}
