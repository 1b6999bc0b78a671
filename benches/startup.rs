//! Start-to-ready bench: how long from spawning `promhpa` on the embedded backend until
//! `/readyz` answers 200 over HTTPS, for a few start-up shapes. Prints the median and the
//! slowest of RUNS starts (default 15) per shape.
//!
//! `cargo bench -p promhpa --bench startup`
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use promhpa_test_support::{free_port, TestPki};

/// Time from spawn to the first 200 of `/readyz`.
fn start_once(args: &[String], client: &reqwest::blocking::Client) -> Duration {
    let port = free_port().unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/readyz");
    let elapsed = loop {
        if let Ok(r) = client.get(&url).send() {
            if r.status().is_success() {
                break start.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "promhpa never became ready with {args:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn measure(name: &str, runs: usize, args: &[String], client: &reqwest::blocking::Client) {
    let mut times: Vec<Duration> = (0..runs).map(|_| start_once(args, client)).collect();
    times.sort();
    println!(
        "{name:<58} median {:>6.1} ms   slowest {:>6.1} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

/// 1,000 pods' request-latency histograms (12 buckets each, 14,000 series).
fn histograms(path: &Path) {
    let mut s = String::from("# TYPE http_request_duration_seconds histogram\n");
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    for pod in 0..1000 {
        let l = format!("namespace=\"default\",pod=\"web-{pod:04}\",endpoint=\"/predict\"");
        for (i, le) in les.iter().enumerate() {
            s.push_str(&format!(
                "http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {}\n",
                (i + 1) * 10
            ));
        }
        s.push_str(&format!("http_request_duration_seconds_sum{{{l}}} 12.5\n"));
        s.push_str(&format!("http_request_duration_seconds_count{{{l}}} 120\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let pki = TestPki::generate("startup-ca", "startup").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let expo = dir.path().join("histograms.prom");
    histograms(&expo);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let tls = vec![
        format!("--tls-cert-file={}", pki.server_cert.display()),
        format!("--tls-private-key-file={}", pki.server_key.display()),
    ];
    let embedded = {
        let mut a = tls.clone();
        a.push(format!(
            "--config={}",
            repo.join("rules/seed-p95-latency.yaml").display()
        ));
        a.push(format!(
            "--objects={}",
            repo.join("demo/objects.yaml").display()
        ));
        a.push("--insecure-skip-delegated-auth".into());
        a
    };
    println!("{runs} starts each; release binary on the embedded backend");
    measure("rule file + object file", runs, &embedded, &client);
    let mut loaded = embedded.clone();
    loaded.push(format!("--load-exposition={}", expo.display()));
    measure(
        "... + --load-exposition of 14,000 series (1,000 pods)",
        runs,
        &loaded,
        &client,
    );
    let mut self_signed: Vec<String> = embedded[2..].to_vec();
    self_signed.push(format!("--cert-dir={}", dir.path().join("certs").display()));
    measure(
        "rule file + object file, self-signed cert (first start)",
        1,
        &self_signed,
        &client,
    );
    let mut demo = tls.clone();
    demo.push("--demo".into());
    measure(
        "--demo (backfills five minutes of traffic)",
        runs,
        &demo,
        &client,
    );
}
