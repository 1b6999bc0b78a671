//! Discovery at scale: one rule whose `seriesQuery` matches 1,000,000 series, relisted
//! through the Prometheus client from a local server that streams the `/api/v1/series`
//! answer as it generates it (so the server holds no copy). Prints the relist time and the
//! process's resident memory, before and at its peak.
//!
//! `cargo bench -p promhpa --bench relist` (SERIES changes the count).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::objects::StaticObjects;
use promhpa_apiserver::Registry;
use promhpa_prom::{PromClient, PromConfig};
use promhpa_rules::RuleSet;

/// A `/proc/self/status` figure in MiB (`VmRSS`, `VmHWM`).
fn proc_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Answers every request with `series` series of 20 metric names, six labels each,
/// written in chunks as they are generated.
fn serve(series: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            );
            let mut chunk = String::from("{\"status\":\"success\",\"data\":[");
            let flush = |chunk: &mut String, conn: &mut std::net::TcpStream| {
                let _ = write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len());
                chunk.clear();
            };
            for i in 0..series {
                if i > 0 {
                    chunk.push(',');
                }
                chunk.push_str(&format!(
                    "{{\"__name__\":\"http_requests_total_{}\",\"namespace\":\"ns-{}\",\"pod\":\"web-{i}\",\"instance\":\"10.{}.{}.{}:8080\",\"job\":\"kubernetes-pods\",\"code\":\"{}\"}}",
                    i % 20,
                    i % 50,
                    (i >> 16) & 255,
                    (i >> 8) & 255,
                    i & 255,
                    200 + (i % 5)
                ));
                if chunk.len() >= 64 * 1024 {
                    flush(&mut chunk, &mut conn);
                }
            }
            chunk.push_str("]}");
            flush(&mut chunk, &mut conn);
            let _ = conn.write_all(b"0\r\n\r\n");
        }
    });
    port
}

const RULES: &str = r#"rules:
- seriesQuery: '{__name__=~"http_requests_total_.*",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name:
    matches: "^http_requests_total_(.*)$"
    as: "http_requests_per_second_${1}"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

fn main() {
    let series: usize = std::env::var("SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = serve(series);
    let mut config = PromConfig::new(format!("http://127.0.0.1:{port}"));
    config.query_timeout = Duration::from_secs(120);
    let client = Arc::new(PromClient::new(config).unwrap());
    let rules = Arc::new(RuleSet::from_yaml(RULES, "relist.yaml").unwrap());
    let lookup = Arc::new(StaticObjects::from_text("[]", "none").unwrap());
    let registry = runtime.block_on(async {
        Registry::new(
            rules,
            client,
            lookup,
            Arc::new(SelfMetrics::default()),
            Duration::from_secs(600),
        )
    });
    let before = proc_mib("VmRSS:");
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let errors = runtime.block_on(registry.relist());
        times.push(start.elapsed());
        assert!(errors.is_empty(), "{errors:?}");
        // 20 metrics, each for pods and for namespaces.
        assert_eq!(registry.snapshot().custom.len(), 40);
    }
    times.sort();
    println!(
        "{series} series, 20 metrics: relist median {:.2} s (fastest {:.2} s, slowest {:.2} s); resident {:.1} MiB before, {:.1} MiB at the peak",
        times[1].as_secs_f64(),
        times[0].as_secs_f64(),
        times[2].as_secs_f64(),
        before,
        proc_mib("VmHWM:")
    );
}
