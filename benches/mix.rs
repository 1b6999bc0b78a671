//! Mixed load bench: promhpa against the bare backend it sits in front of.
//!
//! A real Prometheus (HTTPS, test CA) scrapes 200 pods' `http_requests_in_flight` and 50
//! queues' `queue_messages_ready`; the `promhpa` binary serves them with delegated
//! authentication and authorization on, as behind the aggregator: the bench's client
//! presents a front-proxy certificate (`--requestheader-client-ca-file`) with
//! `X-Remote-User`/`X-Remote-Group` of the HPA controller, and authorization is a
//! SubjectAccessReview whose answers promhpa caches (a stand-in answers the few reviews;
//! their count is printed).
//!
//! Matrix (default): for each request kind — `pods/*` by a label selector matching 20
//! pods, matching 200 pods, one pod by name, an external metric — with identical requests
//! (coalescing may merge them) and all-different ones (a distinct metric label selector
//! per request, so every request is its own backend query), at concurrency 1, 16 and 64:
//! throughput, p50 and p99 of promhpa and of the same PromQL sent straight to Prometheus
//! over HTTPS, their ratios and promhpa's added p99. Before and after each promhpa run the
//! bench scrapes promhpa's `/metrics` and prints the per-stage breakdown (mean and p99
//! estimated from `promhpa_request_stage_duration_seconds` deltas). One more row opens a
//! new connection per request, so the TLS handshake stage is seen.
//!
//! CPU: promhpa's own CPU time (utime + stime of `/proc/<pid>/stat`) per metric request,
//! for one pod by name and for 20 pods by selector, at concurrency 1 and 16; beside it the
//! CPU time of a bare relay of the same queries built on the same libraries
//! (`support::floor`), the least relaying costs on this machine, and Prometheus' own.
//!
//! Soak (`SOAK=600`, seconds): a steady mixed rate (`SOAK_RATE`, default 200 req/s) for
//! that long, printing promhpa's resident memory at the start and every minute.
//!
//! ```sh
//! cargo bench -p promhpa --bench mix                 # matrix and CPU, a few minutes
//! REQUESTS=4000 CPU_REQUESTS=10000 cargo bench -p promhpa --bench mix
//! PARTS=cpu cargo bench -p promhpa --bench mix       # only the CPU part (or PARTS=matrix)
//! SOAK=600 cargo bench -p promhpa --bench mix        # only the soak
//! ```
//! Other variables: `CONCURRENCY` (`1,16,64`), `KINDS` (`sel20,sel200,name,external`).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

const PODS: usize = 200;
const QUEUES: usize = 50;
/// The identity the aggregator passes for the HPA controller.
const HPA_USER: &str = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
const HPA_GROUPS: &str = "system:serviceaccounts";
/// Requests that visit every object the all-different requests name (pods by name cycle
/// through the 200 pods), so promhpa's authorization cache holds each.
const WARM_DIFFERENT: usize = 250;
const STAGES: [&str; 8] = [
    "tls_handshake",
    "auth",
    "route",
    "object_lookup",
    "render",
    "backend",
    "decode",
    "encode",
];

const RULES: &str = r#"rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'queue_messages_ready{namespace!="",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum by (queue) (<<.Series>>{<<.LabelMatchers>>})'
"#;

fn exposition(_: u64) -> String {
    let mut s = String::from("# TYPE http_requests_in_flight gauge\n");
    for i in 0..PODS {
        s.push_str(&format!(
            "http_requests_in_flight{{endpoint=\"/predict\",namespace=\"default\",pod=\"web-{i:03}\"}} {}\n",
            i % 17
        ));
    }
    s.push_str("# TYPE queue_messages_ready gauge\n");
    for i in 0..QUEUES {
        s.push_str(&format!(
            "queue_messages_ready{{namespace=\"default\",queue=\"q-{i:03}\"}} {}\n",
            i * 3
        ));
    }
    s
}

fn objects() -> String {
    let mut o = String::new();
    for i in 0..PODS {
        o.push_str(&format!(
            "- {{apiVersion: v1, kind: Pod, metadata: {{name: web-{i:03}, namespace: default, labels: {{app: web, group: g{:02}}}}}}}\n",
            i / 20
        ));
    }
    o
}

/// A kind of metric request: its name in the output and its path, with `nonce` making it
/// differ from every other request (a metric label selector no series has, so the answer
/// stays the same while the PromQL differs).
#[derive(Clone, Copy)]
struct Kind {
    key: &'static str,
    title: &'static str,
    path: fn(Option<usize>) -> String,
}

const CUSTOM: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default";

fn nonce_param(nonce: Option<usize>, sep: &str) -> String {
    nonce
        .map(|n| format!("{sep}metricLabelSelector=nonce%21%3Dr{n}"))
        .unwrap_or_default()
}

const KINDS: [Kind; 4] = [
    Kind {
        key: "sel20",
        title: "pods/* 20 pods",
        path: |n| {
            // Different requests also ask for different groups of 20 pods.
            let group = n.map_or(3, |n| n % (PODS / 20));
            format!(
                "{CUSTOM}/pods/*/http_requests_in_flight?labelSelector=group%3Dg{group:02}{}",
                nonce_param(n, "&")
            )
        },
    },
    Kind {
        key: "sel200",
        title: "pods/* 200 pods",
        path: |n| {
            format!(
                "{CUSTOM}/pods/*/http_requests_in_flight?labelSelector=app%3Dweb{}",
                nonce_param(n, "&")
            )
        },
    },
    Kind {
        key: "name",
        title: "one pod by name",
        path: |n| {
            let pod = n.map_or(7, |n| n % PODS);
            format!(
                "{CUSTOM}/pods/web-{pod:03}/http_requests_in_flight{}",
                nonce_param(n, "?")
            )
        },
    },
    Kind {
        key: "external",
        title: "external metric",
        path: |n| {
            let queue = n.map_or(3, |n| n % QUEUES);
            let nonce = n.map(|n| format!("%2Cnonce%21%3Dr{n}")).unwrap_or_default();
            format!("{EXTERNAL}/queue_messages_ready?labelSelector=queue%3Dq-{queue:03}{nonce}")
        },
    },
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Throughput and sorted latencies of one run.
/// One row of the matrix: the bare backend's run `b` beside promhpa's `o`, and their ratios.
fn print_row(title: &str, requests_kind: &str, concurrency: usize, b: &Run, o: &Run) {
    println!(
        "{:<16} {:<9} {:>4} | {:>8.0} {:>7.2} {:>7.2} | {:>8.0} {:>7.2} {:>7.2} | {:>5.2} {:>5.2} {:>5.2} | {:>+8.2}",
        title,
        requests_kind,
        concurrency,
        b.rate,
        ms(b.p(0.5)),
        ms(b.p(0.99)),
        o.rate,
        ms(o.p(0.5)),
        ms(o.p(0.99)),
        o.rate / b.rate,
        ms(o.p(0.5)) / ms(b.p(0.5)),
        ms(o.p(0.99)) / ms(b.p(0.99)),
        ms(o.p(0.99)) - ms(b.p(0.99)),
    );
}

/// The stage breakdown of the `requests` sent between two scrapes of promhpa's histogram.
fn print_stages(before: &BTreeMap<String, Hist>, after: &BTreeMap<String, Hist>, requests: usize) {
    println!(
        "    stages (mean/p99): {}",
        stage_breakdown(before, after, requests)
    );
}

struct Run {
    rate: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn p(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// `requests` GETs of `urls` (the i-th request asks `urls[i % len]`), `concurrency` at a
/// time. Every answer must be a 200.
async fn run(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    requests: usize,
    concurrency: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let url = &urls[i % urls.len()];
                let t = Instant::now();
                let resp = client.get(url).send().await.unwrap();
                let status = resp.status();
                let body = resp.bytes().await.unwrap();
                assert!(
                    status.is_success(),
                    "{url}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    Run { rate, latencies }
}

/// One histogram of the stage family: cumulative buckets (upper bound, count), sum, count.
#[derive(Clone, Default)]
struct Hist {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

/// promhpa's `promhpa_request_stage_duration_seconds`, by stage.
async fn scrape_stages(client: &reqwest::Client, base: &str) -> BTreeMap<String, Hist> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out: BTreeMap<String, Hist> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("promhpa_request_stage_duration_seconds_") else {
            continue;
        };
        let (series, value) = rest.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap();
        let (part, labels) = series.split_once('{').unwrap();
        let label = |name: &str| {
            labels
                .trim_end_matches('}')
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        let h = out.entry(label("stage").unwrap()).or_default();
        match part {
            "bucket" => {
                let le = label("le").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                h.buckets.push((le, value));
            }
            "sum" => h.sum = value,
            "count" => h.count = value,
            _ => {}
        }
    }
    out
}

/// The `q` quantile of a histogram's buckets, interpolated within its bucket as
/// `histogram_quantile` does (the highest finite bound when it falls in `+Inf`).
fn quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> f64 {
    let rank = q * count;
    let mut lower = (0.0, 0.0);
    for &(le, cum) in buckets {
        if cum >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let width = cum - lower.1;
            let into = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return lower.0 + (le - lower.0) * into;
        }
        lower = (le, cum);
    }
    lower.0
}

fn micros(seconds: f64) -> String {
    if seconds >= 0.001 {
        format!("{:.2}ms", seconds * 1e3)
    } else {
        format!("{:.0}µs", seconds * 1e6)
    }
}

/// The stages observed between two scrapes: per stage, observations per request, mean
/// and estimated p99.
fn stage_breakdown(
    before: &BTreeMap<String, Hist>,
    after: &BTreeMap<String, Hist>,
    requests: usize,
) -> String {
    let mut parts = Vec::new();
    for stage in STAGES {
        let (Some(a), b) = (
            after.get(stage),
            before.get(stage).cloned().unwrap_or_default(),
        ) else {
            continue;
        };
        let count = a.count - b.count;
        if count <= 0.0 {
            continue;
        }
        let buckets: Vec<(f64, f64)> = a
            .buckets
            .iter()
            .enumerate()
            .map(|(i, (le, c))| (*le, c - b.buckets.get(i).map_or(0.0, |x| x.1)))
            .collect();
        let mean = (a.sum - b.sum) / count;
        let per_request = count / requests as f64;
        let times = if (per_request - 1.0).abs() < 0.02 {
            String::new()
        } else {
            format!(" ×{per_request:.2}")
        };
        parts.push(format!(
            "{stage}{times} {}/{}",
            micros(mean),
            micros(quantile(&buckets, count, 0.99))
        ));
    }
    parts.join(", ")
}

/// The PromQL promhpa sends for `path`, from its `/debug/promhpa/query`.
async fn promql_of(client: &reqwest::Client, base: &str, path: &str) -> String {
    let url = format!(
        "{base}/debug/promhpa/query?path={}",
        url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&client.get(url).send().await.unwrap().bytes().await.unwrap())
            .unwrap();
    v["promql"]
        .as_str()
        .unwrap_or_else(|| panic!("no promql for {path}: {v}"))
        .to_string()
}

/// The promhpa URLs and the Prometheus URLs of the same queries, for `count` requests of
/// `kind` (identical ones: a single URL each).
async fn urls(
    client: &reqwest::Client,
    base: &str,
    prom: &str,
    kind: Kind,
    different: Option<usize>,
) -> (Arc<Vec<String>>, Arc<Vec<String>>) {
    let paths: Vec<String> = match different {
        None => vec![(kind.path)(None)],
        Some(n) => (0..n).map(|i| (kind.path)(Some(i))).collect(),
    };
    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for chunk in paths.chunks(16) {
        let asks: Vec<_> = chunk
            .iter()
            .map(|p| {
                let (client, base, p) = (client.clone(), base.to_string(), p.clone());
                tokio::spawn(async move { promql_of(&client, &base, &p).await })
            })
            .collect();
        for (p, ask) in chunk.iter().zip(asks) {
            let q = ask.await.unwrap();
            ours.push(format!("{base}{p}"));
            bare.push(format!(
                "{prom}/api/v1/query?query={}",
                url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            ));
        }
    }
    (Arc::new(ours), Arc::new(bare))
}

/// A process's CPU time so far (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = cpu_ticks_split(pid);
    user + system
}

/// A process's CPU time so far in user space and in the kernel, in clock ticks.
fn cpu_ticks_split(pid: u32) -> (u64, u64) {
    support::cpu_ticks_in(std::path::Path::new(&format!("/proc/{pid}/stat")))
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` field in kB, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let kb = promhpa_test_support::process::status_kib(&pid.to_string(), field).unwrap();
    kb as f64 / 1024.0
}

/// Resident memory split into heap and other anonymous memory (`RssAnon`) and mapped files,
/// the binary's code included (`RssFile`), and the process's thread count.
fn memory_detail(pid: u32) -> String {
    let threads =
        promhpa_test_support::process::status_kib(&pid.to_string(), "Threads:").unwrap_or(0);
    format!(
        "{:>9.1} {:>9.1} {:>7}",
        status_mib(pid, "RssAnon:"),
        status_mib(pid, "RssFile:"),
        threads
    )
}

struct Bench {
    /// promhpa's clients: over one kept connection, and one connection per request.
    ours: reqwest::Client,
    ours_fresh: reqwest::Client,
    /// Prometheus' clients, likewise.
    bare: reqwest::Client,
    bare_fresh: reqwest::Client,
    base: String,
    prom: String,
    pid: u32,
    /// Prometheus' process, whose CPU time per query is the reference.
    prom_pid: u32,
    /// A bare relay to Prometheus on promhpa's libraries, the least a relay costs.
    floor: support::floor::Floor,
}

/// An HTTPS client trusting the test CA; for promhpa, with the front-proxy certificate
/// and the HPA controller's identity headers. `fresh`: a new connection per request.
fn client(pki: &TestPki, front_proxy: bool, fresh: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30));
    if front_proxy {
        let mut pem = std::fs::read(&pki.client_cert).unwrap();
        pem.push(b'\n');
        pem.extend(std::fs::read(&pki.client_key).unwrap());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("X-Remote-User", HPA_USER.parse().unwrap());
        headers.insert("X-Remote-Group", HPA_GROUPS.parse().unwrap());
        b = b
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .default_headers(headers);
    }
    if fresh {
        b = b.pool_max_idle_per_host(0).http1_only();
    }
    b.build().unwrap()
}

impl Bench {
    async fn matrix(&self, kinds: &[Kind], concurrency: &[usize], requests: usize) {
        println!(
            "\n## Matrix: {requests} requests per run; promhpa vs the same PromQL sent to Prometheus (HTTPS, one HTTP/2 connection each); load average {}",
            load_average()
        );
        println!(
            "{:<16} {:<9} {:>4} | {:>8} {:>7} {:>7} | {:>8} {:>7} {:>7} | {:>5} {:>5} {:>5} | {:>8}",
            "kind",
            "requests",
            "conc",
            "prom/s",
            "p50",
            "p99",
            "promhpa/s",
            "p50",
            "p99",
            "thr×",
            "p50×",
            "p99×",
            "+p99 ms"
        );
        for kind in kinds {
            for different in [false, true] {
                let (ours, bare) = urls(
                    &self.ours,
                    &self.base,
                    &self.prom,
                    *kind,
                    different.then_some(requests),
                )
                .await;
                // Warm both sides' connections, and promhpa's authorization cache for
                // every object the requests name.
                let warm = if different { WARM_DIFFERENT } else { 50 };
                run(&self.bare, &bare, warm, 16).await;
                run(&self.ours, &ours, warm, 16).await;
                for &c in concurrency {
                    let b = run(&self.bare, &bare, requests, c).await;
                    let before = scrape_stages(&self.ours, &self.base).await;
                    let o = run(&self.ours, &ours, requests, c).await;
                    let after = scrape_stages(&self.ours, &self.base).await;
                    let requests_kind = if different { "different" } else { "identical" };
                    print_row(kind.title, requests_kind, c, &b, &o);
                    print_stages(&before, &after, requests);
                }
            }
        }
        // A new connection (TCP and TLS handshake) for every request, one at a time.
        let n = (requests / 4).max(50);
        let (ours, bare) = urls(&self.ours, &self.base, &self.prom, KINDS[2], None).await;
        let b = run(&self.bare_fresh, &bare, n, 1).await;
        let before = scrape_stages(&self.ours, &self.base).await;
        let o = run(&self.ours_fresh, &ours, n, 1).await;
        let after = scrape_stages(&self.ours, &self.base).await;
        print_row("pod, new conn.", "identical", 1, &b, &o);
        print_stages(&before, &after, n);
        println!("load average after the matrix: {}", load_average());
    }

    async fn cpu(&self, requests: usize) {
        let hz = clock_ticks_per_second();
        println!(
            "\n## promhpa CPU per metric request: {requests} requests per run, CLK_TCK {hz}; load average {}",
            load_average()
        );
        println!("promhpa: its CPU per request, and of that the part in user space and in the kernel (system calls, wake-ups)");
        println!("relay: the CPU per request of a bare relay of the same queries on promhpa's libraries (HTTP/2 and TLS in, its direct client out; no routing, auth, render, decode or encode)");
        println!("Prometheus: its CPU per query, sent by promhpa (\"for promhpa\") and sent alone (\"alone\")");
        println!(
            "{:<16} {:<9} {:>4} | {:>9} {:>8} {:>10} {:>8} {:>8} | {:>8} | {:>11} {:>9} | {:>8}",
            "kind",
            "requests",
            "conc",
            "req/s",
            "cpu s",
            "cpu ms/req",
            "user",
            "kernel",
            "relay",
            "for promhpa",
            "alone",
            "promhpa÷"
        );
        let per_request = |ticks: u64| ticks as f64 / hz * 1e3 / requests as f64;
        for kind in [KINDS[2], KINDS[0]] {
            for different in [true, false] {
                let (ours, bare) = urls(
                    &self.ours,
                    &self.base,
                    &self.prom,
                    kind,
                    different.then_some(requests),
                )
                .await;
                for c in [1, 16] {
                    run(&self.ours, &ours, WARM_DIFFERENT, 16).await;
                    let (before, prom_before) =
                        (cpu_ticks_split(self.pid), cpu_ticks(self.prom_pid));
                    let o = run(&self.ours, &ours, requests, c).await;
                    let after = cpu_ticks_split(self.pid);
                    let (user, system) = (after.0 - before.0, after.1 - before.1);
                    let ticks = user + system;
                    let prom_ticks = cpu_ticks(self.prom_pid) - prom_before;
                    let prom_before = cpu_ticks(self.prom_pid);
                    run(&self.bare, &bare, requests, c).await;
                    let alone = per_request(cpu_ticks(self.prom_pid) - prom_before);
                    let relayed = self.floor.urls(&self.prom, &bare);
                    run(&self.bare, &relayed, WARM_DIFFERENT, 16).await;
                    let relay_before = self.floor.cpu_ticks();
                    run(&self.bare, &relayed, requests, c).await;
                    let relay = per_request(self.floor.cpu_ticks() - relay_before);
                    println!(
                        "{:<16} {:<9} {:>4} | {:>9.0} {:>8.2} {:>10.3} {:>8.3} {:>8.3} | {:>8.3} | {:>11.3} {:>9.3} | {:>8.2}",
                        kind.title,
                        if different { "different" } else { "identical" },
                        c,
                        o.rate,
                        ticks as f64 / hz,
                        per_request(ticks),
                        per_request(user),
                        per_request(system),
                        relay,
                        per_request(prom_ticks),
                        alone,
                        per_request(ticks) / alone
                    );
                }
            }
        }
        println!("load average after: {}", load_average());
    }

    async fn soak(&self, seconds: u64, rate: u64) {
        println!(
            "\n## Soak: {rate} req/s for {seconds} s, the four kinds in turn, every request different; load average {}",
            load_average()
        );
        let idle = rss_mib(self.pid);
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let skipped = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
        let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
        let start = Instant::now();
        let mut next_report = Duration::from_secs(60);
        let mut first: Option<f64> = None;
        let mut peak: f64 = 0.0;
        let mut n = 0usize;
        println!(
            "{:>6} {:>10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "s",
            "requests",
            "failed",
            "skipped",
            "p99 ms",
            "RSS MiB",
            "anon MiB",
            "file MiB",
            "threads"
        );
        let pid = self.pid;
        let row = |elapsed: Duration, p99: &str, rss: f64| {
            println!(
                "{:>6} {:>10} {:>8} {:>7} {:>9} {:>9.1} {}",
                elapsed.as_secs(),
                done.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                skipped.load(Ordering::Relaxed),
                p99,
                rss,
                memory_detail(pid)
            )
        };
        row(Duration::ZERO, "", idle);
        while start.elapsed() < Duration::from_secs(seconds) {
            tick.tick().await;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let url = format!("{}{}", self.base, (KINDS[n % KINDS.len()].path)(Some(n)));
            n += 1;
            let client = self.ours.clone();
            let (counted, failures, record) = (done.clone(), failed.clone(), latencies.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    record.lock().unwrap().push(t.elapsed());
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                counted.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
            let elapsed = start.elapsed();
            // The first reading under load, after ten seconds of it.
            if first.is_none() && elapsed >= Duration::from_secs(10) {
                let rss = rss_mib(self.pid);
                first = Some(rss);
                row(elapsed, "", rss);
            }
            if elapsed >= next_report {
                next_report += Duration::from_secs(60);
                let rss = rss_mib(self.pid);
                peak = peak.max(rss);
                let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
                lat.sort();
                let p99 = if lat.is_empty() {
                    String::new()
                } else {
                    format!("{:.2}", ms(percentile(&lat, 0.99)))
                };
                row(elapsed, &p99, rss);
            }
        }
        let _ = in_flight.acquire_many(64).await;
        let end = rss_mib(self.pid);
        peak = peak.max(end);
        let first = first.unwrap_or(end);
        println!(
            "RSS: {idle:.1} MiB idle before, {first:.1} MiB after 10 s of load, {end:.1} MiB at the end ({:+.1} %), peak {peak:.1} MiB; {} requests, {} failed, {} not sent (64 in flight); load average {}",
            (end - first) / first * 100.0,
            done.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            skipped.load(Ordering::Relaxed),
            load_average()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize = env_or("REQUESTS", 1000);
    let cpu_requests: usize = env_or("CPU_REQUESTS", 4000);
    let soak: u64 = env_or("SOAK", 0);
    let soak_rate: u64 = env_or("SOAK_RATE", 200);
    let parts = env_list("PARTS", "matrix,cpu");
    let concurrency: Vec<usize> = env_list("CONCURRENCY", "1,16,64")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let wanted = env_list("KINDS", "sel20,sel200,name,external");
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|k| wanted.iter().any(|w| w == k.key))
        .collect();

    let pki = TestPki::generate("bench-ca", "front-proxy").unwrap();
    let target = ScrapeTarget::start_with(Arc::new(exposition)).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let reviews = support::review::ReviewServer::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let objects_file = dir.path().join("objects.yaml");
    std::fs::write(&objects_file, objects()).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    reviews.kubeconfig(&pki, &kubeconfig);
    let (mut child, port) = support::start_promhpa_with(
        &prom,
        &pki,
        &rules,
        &objects_file,
        &[
            &format!("--kubeconfig={}", kubeconfig.display()),
            "--authentication-skip-lookup",
            &format!("--requestheader-client-ca-file={}", pki.ca_cert.display()),
            "--requestheader-allowed-names=front-proxy",
            "--authorization-webhook-cache-authorized-ttl=10m",
            "--metrics-relist-interval=30s",
        ],
    );
    let bench = Bench {
        ours: client(&pki, true, false),
        ours_fresh: client(&pki, true, true),
        bare: client(&pki, false, false),
        bare_fresh: client(&pki, false, true),
        base: format!("https://127.0.0.1:{port}"),
        prom: prom.url(),
        pid: child.id(),
        prom_pid: prom.pid(),
        floor: support::floor::Floor::start(&pki, &prom.url()),
    };
    // Ready once every kind is served with all its objects.
    let start = Instant::now();
    for kind in KINDS {
        let url = format!("{}{}", bench.base, (kind.path)(None));
        loop {
            if let Ok(r) = bench.ours.get(&url).send().await {
                if r.status().is_success() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                    let want = match kind.key {
                        "sel20" => 20,
                        "sel200" => PODS,
                        _ => 1,
                    };
                    if v["items"].as_array().map(Vec::len) == Some(want) {
                        break;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "promhpa never served {url}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    println!(
        "promhpa pid {}, Prometheus {}; {} pods, {} queues",
        bench.pid,
        prom.url(),
        PODS,
        QUEUES
    );
    if soak > 0 {
        bench.soak(soak, soak_rate).await;
    } else {
        if parts.iter().any(|p| p == "matrix") {
            bench.matrix(&kinds, &concurrency, requests).await;
        }
        if parts.iter().any(|p| p == "cpu") {
            bench.cpu(cpu_requests).await;
        }
    }
    println!(
        "subject access reviews asked by promhpa (its cache answers the rest): {}",
        reviews.reviews()
    );
    let _ = child.kill();
    let _ = child.wait();
}
