//! Discovery at scale: one rule whose `seriesQuery` matches 1,000,000 series of 50 metric
//! names with 8 to 10 labels each (`promhpa_test_support::series_body`), relisted through
//! the Prometheus client from a local server that writes the `/api/v1/series` answer as fast
//! as it can while it generates it (256 KiB chunks; the server holds no copy of the body).
//!
//! Prints, as medians of RUNS relists: the server's own time to write the whole body (first
//! byte to last byte handed to the kernel), the time the same body takes to arrive through
//! reqwest without decoding, promhpa's relist time (request to registry updated), and the CPU
//! time promhpa's threads and the server's used for a relist (which a busy machine changes
//! less than the times); and the process's resident memory before the first relist and at
//! its peak.
//!
//! `cargo bench -p promhpa --bench relist` (SERIES changes the count, RUNS the repetitions).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::objects::StaticObjects;
use promhpa_apiserver::Registry;
use promhpa_prom::{PromClient, PromConfig};
use promhpa_rules::RuleSet;
use promhpa_test_support::series_body::{self, SeriesBody};

/// A `/proc/self/status` figure in MiB (`VmRSS`, `VmHWM`).
fn proc_mib(field: &str) -> f64 {
    promhpa_test_support::process::status_kib("self", field)
        .map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// User plus system CPU time of `/proc/<of>/stat` (`self`, `thread-self`), in seconds of
/// 1/100 s ticks.
fn cpu_secs(of: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{of}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// What the server measured for one answer: its time to write it, the CPU time its thread
/// used meanwhile, and the body's size.
struct Sent {
    time: Duration,
    cpu: f64,
    body_bytes: usize,
}

/// Answers every request with a body of `series` series in chunked encoding, and reports
/// each answer on the returned channel.
fn serve(series: usize) -> (u16, mpsc::Receiver<Sent>) {
    const CHUNK: usize = 256 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // One buffer for every chunk: an 8-digit hex size line (leading zeros are allowed),
        // the data, then CRLF; written with one call.
        let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let start = Instant::now();
            let cpu = cpu_secs("thread-self");
            let mut ok = conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                )
                .is_ok();
            let mut body = SeriesBody::new(series);
            let mut body_bytes = 0;
            while ok {
                buf.clear();
                buf.extend_from_slice(b"00000000\r\n");
                let more = body.fill(&mut buf, CHUNK);
                let len = buf.len() - 10;
                if len == 0 {
                    break;
                }
                body_bytes += len;
                let size = format!("{len:08x}");
                buf[..8].copy_from_slice(size.as_bytes());
                buf.extend_from_slice(b"\r\n");
                ok = conn.write_all(&buf).is_ok();
                if !more {
                    break;
                }
            }
            ok = ok && conn.write_all(b"0\r\n\r\n").is_ok();
            let time = start.elapsed();
            let cpu = cpu_secs("thread-self") - cpu;
            if ok {
                let _ = tx.send(Sent {
                    time,
                    cpu,
                    body_bytes,
                });
            }
        }
    });
    (port, rx)
}

const RULES: &str = r#"rules:
- seriesQuery: '{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name:
    matches: "^(.*)$"
    as: "${1}"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let series = env("SERIES", 1_000_000);
    let runs = env("RUNS", 5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (port, sent) = serve(series);
    let url = format!("http://127.0.0.1:{port}");
    let mut config = PromConfig::new(url.clone());
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

    // The body through reqwest alone: what taking it in costs without decoding it.
    let http = reqwest::Client::new();
    let mut transfer = Vec::new();
    let mut server = Vec::new();
    let mut body_bytes = 0;
    let mut chunks = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let received = runtime.block_on(async {
            let mut resp = http
                .get(format!("{url}/api/v1/series"))
                .send()
                .await
                .unwrap();
            let mut n = 0;
            chunks = 0;
            while let Some(chunk) = resp.chunk().await.unwrap() {
                n += chunk.len();
                chunks += 1;
            }
            n
        });
        transfer.push(start.elapsed());
        let s = sent.recv().unwrap();
        assert_eq!(received, s.body_bytes);
        body_bytes = s.body_bytes;
        server.push(s.time);
    }

    let mut relist = Vec::new();
    let mut server_during_relist = Vec::new();
    let mut promhpa_cpu = Vec::new();
    let mut server_cpu = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let cpu = cpu_secs("self");
        let errors = runtime.block_on(registry.relist());
        relist.push(start.elapsed());
        let cpu = cpu_secs("self") - cpu;
        assert!(errors.is_empty(), "{errors:?}");
        // Every metric name, for pods and for namespaces.
        assert_eq!(
            registry.snapshot().custom.len(),
            2 * series_body::metric_names(series)
        );
        let s = sent.recv().unwrap();
        server_during_relist.push(s.time);
        // The process's CPU time less the server thread's.
        promhpa_cpu.push(Duration::from_secs_f64((cpu - s.cpu).max(0.0)));
        server_cpu.push(Duration::from_secs_f64(s.cpu.max(0.0)));
    }
    let peak = proc_mib("VmHWM:");
    let fastest = relist.iter().min().copied().unwrap_or_default();
    let slowest = relist.iter().max().copied().unwrap_or_default();
    println!(
        "{series} series of {} metric names ({} distinct label sets), body {:.1} MB",
        series_body::metric_names(series),
        series_body::distinct_series(series),
        body_bytes as f64 / 1e6
    );
    println!(
        "server writes the body:        {} (median of {runs}; {} while promhpa relists)",
        secs(median(server)),
        secs(median(server_during_relist))
    );
    println!(
        "reqwest receives it, no decode: {} (in {chunks} chunks of {:.0} KiB on average)",
        secs(median(transfer)),
        body_bytes as f64 / chunks.max(1) as f64 / 1024.0
    );
    println!(
        "promhpa relist:                {} (fastest {}, slowest {})",
        secs(median(relist)),
        secs(fastest),
        secs(slowest)
    );
    println!(
        "CPU time per relist:           promhpa {}, the server {} (medians, 10 ms ticks)",
        secs(median(promhpa_cpu)),
        secs(median(server_cpu))
    );
    println!("resident: {before:.1} MiB before, {peak:.1} MiB at the peak");
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average: {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}
