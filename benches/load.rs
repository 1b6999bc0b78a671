//! Load bench: a real Prometheus (HTTPS, test CA) with 100 pods' in-flight gauges, the
//! `promhpa` binary in front of it, and a bounded number of concurrent requests for
//! `pods/*` (100 pods) over HTTPS. Prints throughput and latency percentiles of promhpa and
//! of the same PromQL asked of Prometheus directly, so the adapter's overhead can be read off.
//!
//! `cargo bench -p promhpa --bench load` (REQUESTS and CONCURRENCY environment variables
//! change the load; every request goes to 127.0.0.1).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

fn body(_: u64) -> String {
    let mut s = String::from("# TYPE http_requests_in_flight gauge\n");
    for i in 0..100 {
        s.push_str(&format!(
            "http_requests_in_flight{{endpoint=\"/predict\",namespace=\"default\",pod=\"web-{i:03}\"}} {}\n",
            i % 17
        ));
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(
    client: &reqwest::Client,
    url: &str,
    requests: usize,
    concurrency: usize,
) -> (f64, Vec<Duration>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let t = Instant::now();
                let resp = client.get(&url).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn report(name: &str, rate: f64, lat: &[Duration]) {
    println!(
        "{name:<28} {rate:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        percentile(lat, 0.5).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let concurrency: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pki = TestPki::generate("bench-ca", "bench").unwrap();
    let target = ScrapeTarget::start_with(Arc::new(body)).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n- seriesQuery: 'http_requests_in_flight{namespace!=\"\",pod!=\"\"}'\n  resources:\n    overrides:\n      namespace: {resource: namespace}\n      pod: {resource: pod}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n",
    )
    .unwrap();
    let objects = dir.path().join("objects.yaml");
    let mut o = String::new();
    for i in 0..100 {
        o.push_str(&format!(
            "- {{apiVersion: v1, kind: Pod, metadata: {{name: web-{i:03}, namespace: default, labels: {{app: web}}}}}}\n"
        ));
    }
    std::fs::write(&objects, o).unwrap();
    let (mut child, port) = support::start_promhpa(
        &prom,
        &pki,
        &rules,
        &objects,
        &["--metrics-relist-interval=2s"],
    );
    let client = support::client(&pki);
    let url = format!(
        "https://127.0.0.1:{port}/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dweb"
    );
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                let v: serde_json::Value =
                    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                if v["items"].as_array().map(Vec::len) == Some(100) {
                    break;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "promhpa never served 100 pods"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let pods: Vec<String> = (0..100).map(|i| format!("web-{i:03}")).collect();
    let promql = format!(
        "sum by (pod) (http_requests_in_flight{{namespace=\"default\",pod=~\"{}\"}})",
        pods.join("|")
    );
    let direct = format!(
        "{}/api/v1/query?query={}",
        prom.url(),
        url::form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>()
    );
    println!("{requests} requests, {concurrency} concurrent, 100 pods per request");
    let (rate, lat) = run(&client, &direct, requests, concurrency).await;
    report("prometheus /api/v1/query", rate, &lat);
    let (rate, lat) = run(&client, &url, requests, concurrency).await;
    report("promhpa pods/* (v1beta2)", rate, &lat);
    let disc = format!("https://127.0.0.1:{port}/apis/custom.metrics.k8s.io/v1beta1");
    let (rate, lat) = run(&client, &disc, requests, concurrency).await;
    report("promhpa discovery", rate, &lat);
    let _ = child.kill();
    let _ = child.wait();
}
