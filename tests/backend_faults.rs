//! The `promhpa` binary under load while its backend fails: a REAL Prometheus (HTTPS, test
//! CA) stopped with SIGSTOP, resumed, killed and restarted; and a local stand-in that
//! answers truncated JSON, something that is not JSON, cuts its answers short, or accepts
//! and never answers. Every request carries `timeout=2s`, as the aggregator forwards its
//! own deadline. Throughout: promhpa never exits, every answer is a MetricValueList or a
//! Kubernetes Status (503 naming the backend while it fails) and arrives within the
//! request's deadline, and the first request once the backend is back succeeds.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promhpa_test_support::{free_port, wait_for_port, Prometheus, ScrapeTarget, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXPOSITION: &str = "# TYPE http_requests_in_flight gauge\n\
http_requests_in_flight{namespace=\"default\",pod=\"web-a\"} 3\n\
http_requests_in_flight{namespace=\"default\",pod=\"web-b\"} 5\n";

const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const OBJECTS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: web-a, namespace: default, labels: {app: web}}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-b, namespace: default, labels: {app: web}}}
"#;

/// The HPA's request, with the deadline the aggregator would forward.
const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dweb&timeout=2s";
const DEADLINE: Duration = Duration::from_secs(2);
/// Room for scheduling on a busy machine on top of the deadline.
const SLACK: Duration = Duration::from_secs(2);

struct Promhpa {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Promhpa {
    fn start(pki: &TestPki, dir: &Path, backend: &[String], extra: &[&str]) -> Promhpa {
        let rules = dir.join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap();
        let objects = dir.join("objects.yaml");
        std::fs::write(&objects, OBJECTS).unwrap();
        let port = free_port().unwrap();
        let log = dir.join(format!("promhpa-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .arg("serve")
            .args(backend)
            .arg(format!("--config={}", rules.display()))
            .arg(format!("--objects={}", objects.display()))
            .arg(format!("--tls-cert-file={}", pki.server_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.server_key.display()
            ))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--insecure-skip-delegated-auth")
            // One discovery at start; the faults below must not depend on relisting.
            .arg("--metrics-relist-interval=10m")
            .arg("--metrics-max-age=1h")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, Duration::from_secs(30)).unwrap();
        Promhpa { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "promhpa exited; log:\n{}",
            self.log()
        );
    }

    fn rss_kib(&self) -> u64 {
        promhpa_test_support::process::status_kib(&self.child.id().to_string(), "VmRSS:")
            .unwrap_or(0)
    }
}

impl Drop for Promhpa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(pki: &TestPki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One answer as the client saw it.
#[derive(Debug, Clone)]
struct Answer {
    phase: &'static str,
    code: u16,
    kind: String,
    reason: String,
    message: String,
    retry_after: Option<String>,
    elapsed: Duration,
}

async fn ask(client: &reqwest::Client, url: &str, phase: &'static str) -> Answer {
    let start = Instant::now();
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{phase}: no answer at all: {e}"));
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.bytes().await.unwrap();
    let elapsed = start.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{phase}: answer {code} is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    if text("kind") == "Status" {
        assert_eq!(v["code"].as_u64(), Some(u64::from(code)), "{phase}: {v}");
    }
    Answer {
        phase,
        code,
        kind: text("kind"),
        reason: text("reason"),
        message: text("message"),
        retry_after,
        elapsed,
    }
}

/// Requests from `workers` clients in a loop while `run` is set, under the current phase.
struct Load {
    run: Arc<AtomicBool>,
    phase: Arc<Mutex<&'static str>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &reqwest::Client, url: &str, workers: usize) -> Load {
        let run = Arc::new(AtomicBool::new(true));
        let phase = Arc::new(Mutex::new("start"));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (run, phase, answers) = (run.clone(), phase.clone(), answers.clone());
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    while run.load(Ordering::SeqCst) {
                        let p = *phase.lock().unwrap();
                        let a = ask(&client, &url, p).await;
                        answers.lock().unwrap().push(a);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Load {
            run,
            phase,
            answers,
            tasks,
        }
    }

    fn phase(&self, p: &'static str) {
        *self.phase.lock().unwrap() = p;
    }

    async fn stop(self) -> Vec<Answer> {
        self.run.store(false, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let answers = self.answers.lock().unwrap().clone();
        answers
    }
}

/// Every answer is a value or a Status, in time; while the backend fails it is a 503 that
/// names it, and each failing phase got at least one such 503.
/// Phases right after Prometheus was frozen or restarted. A scrape that Prometheus resumes
/// after its deadline has passed fails, and Prometheus then marks the target's series stale
/// until the next scrape: for that moment it truly has no value, and promhpa says so.
const RECOVERING: [&str; 2] = ["resumed", "restarted"];

/// A NotFound that carries Prometheus' own empty answer.
fn prometheus_had_nothing(a: &Answer) -> bool {
    a.code == 404 && a.reason == "NotFound" && a.message.contains("returned no series")
}

/// The first answers once Prometheus is back: served within a few scrape intervals, and
/// until then only Prometheus' own empty answer (never an error of promhpa's).
async fn served_again(client: &reqwest::Client, url: &str, phase: &'static str, server: &Promhpa) {
    let start = Instant::now();
    loop {
        let answer = ask(client, url, phase).await;
        if answer.code == 200 {
            return;
        }
        assert!(
            prometheus_had_nothing(&answer) && start.elapsed() < Duration::from_secs(10),
            "{answer:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check(answers: &[Answer], backend: &str, failing: &[&str]) {
    assert!(!answers.is_empty());
    for a in answers {
        assert!(
            a.elapsed <= DEADLINE + SLACK,
            "{}: answered after {:?}: {a:?}",
            a.phase,
            a.elapsed
        );
        match (a.code, a.kind.as_str()) {
            (200, "MetricValueList") => {}
            (503, "Status") => {
                assert_eq!(a.reason, "ServiceUnavailable", "{a:?}");
                assert!(a.message.contains(backend), "{a:?}");
            }
            (429, "Status") => {
                assert_eq!(a.reason, "TooManyRequests", "{a:?}");
                assert_eq!(a.retry_after.as_deref(), Some("1"), "{a:?}");
            }
            (404, "Status") if RECOVERING.contains(&a.phase) && prometheus_had_nothing(a) => {}
            _ => panic!("{}: unexpected answer {a:?}", a.phase),
        }
    }
    for phase in failing {
        let unavailable = answers
            .iter()
            .filter(|a| a.phase == *phase && a.code == 503)
            .count();
        assert!(unavailable > 0, "no 503 while {phase}");
    }
}

async fn wait_until_served(client: &reqwest::Client, url: &str, server: &Promhpa) {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never served; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_stopped_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate("promhpa-test-ca", "client").unwrap();
    let target = ScrapeTarget::start(EXPOSITION).unwrap();
    let mut prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut server = Promhpa::start(
        &pki,
        dir.path(),
        &[
            format!("--prometheus-url={}", prom.url()),
            format!("--prometheus-ca-file={}", pki.ca_cert.display()),
        ],
        &[],
    );
    let client = client(&pki);
    let url = format!("https://127.0.0.1:{}{PATH}", server.port);
    // Until Prometheus has scraped and discovery has found the series.
    wait_until_served(&client, &url, &server).await;
    let rss_before = server.rss_kib();
    let backend = format!("127.0.0.1:{}", prom.port);

    let load = Load::start(&client, &url, 6);
    load.phase("healthy");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    load.phase("stopped");
    signal(prom.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(prom.pid(), "CONT");
    load.phase("resumed");
    served_again(&client, &url, "first after resume", &server).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    load.phase("killed");
    prom.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    prom.restart().unwrap();
    // Prometheus listens before its storage is open; it is back once it says it is ready.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let direct = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let start = Instant::now();
    while !direct
        .get(format!("{}/-/ready", prom.url()))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.phase("restarted");
    served_again(&client, &url, "first after restart", &server).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let answers = load.stop().await;

    server.assert_running();
    check(&answers, &backend, &["stopped", "killed"]);
    // The log says when the backend stopped answering and when it answered again.
    let log = server.log();
    assert!(log.contains("backend unreachable"), "{log}");
    assert!(log.contains("backend answers again"), "{log}");
    for phase in ["healthy", "resumed", "restarted"] {
        assert!(
            answers.iter().any(|a| a.phase == phase && a.code == 200),
            "nothing served while {phase}"
        );
    }
    let rss_after = server.rss_kib();
    eprintln!(
        "{} requests; server RSS {} MiB before the faults, {} MiB after",
        answers.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}

/// How the stand-in answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Mode {
    Good = 0,
    /// Valid HTTP, JSON cut in the middle.
    Truncated = 1,
    /// 200 with an HTML page.
    NotJson = 2,
    /// Headers promise more than is sent before the connection closes.
    CutShort = 3,
    /// Accepts, reads, never answers.
    Silent = 4,
}

const SERIES: &str = r#"{"status":"success","data":[{"__name__":"http_requests_in_flight","namespace":"default","pod":"web-a"},{"__name__":"http_requests_in_flight","namespace":"default","pod":"web-b"}]}"#;

fn vector(now: f64) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"pod":"web-a"}},"value":[{now},"3"]}},{{"metric":{{"pod":"web-b"}},"value":[{now},"5"]}}]}}}}"#
    )
}

/// A plain-HTTP stand-in for a backend that misbehaves on demand.
async fn stand_in(mode: Arc<AtomicU8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mode = mode.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                let good = if text.contains("/api/v1/series") {
                    SERIES.to_string()
                } else {
                    vector(now)
                };
                let reply = |body: &str, len: usize, ctype: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"
                    )
                };
                let out = match Mode::from(mode.load(Ordering::SeqCst)) {
                    Mode::Good => reply(&good, good.len(), "application/json"),
                    Mode::Truncated => {
                        let cut = &good[..good.len() / 2];
                        reply(cut, cut.len(), "application/json")
                    }
                    Mode::NotJson => {
                        let page = "<html><body>Welcome to nginx!</body></html>";
                        reply(page, page.len(), "text/html")
                    }
                    Mode::CutShort => {
                        reply(&good[..good.len() / 2], good.len(), "application/json")
                    }
                    Mode::Silent => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                };
                let _ = socket.write_all(out.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

impl From<u8> for Mode {
    fn from(v: u8) -> Mode {
        match v {
            1 => Mode::Truncated,
            2 => Mode::NotJson,
            3 => Mode::CutShort,
            4 => Mode::Silent,
            _ => Mode::Good,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_in_that_answers_garbage_or_never() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate("promhpa-test-ca", "client").unwrap();
    let mode = Arc::new(AtomicU8::new(Mode::Good as u8));
    let port = stand_in(mode.clone()).await;
    let mut server = Promhpa::start(
        &pki,
        dir.path(),
        &[format!("--prometheus-url=http://127.0.0.1:{port}")],
        &["--max-requests-inflight=6"],
    );
    let client = client(&pki);
    let url = format!("https://127.0.0.1:{}{PATH}", server.port);
    wait_until_served(&client, &url, &server).await;
    let backend = format!("127.0.0.1:{port}");

    let load = Load::start(&client, &url, 4);
    load.phase("good");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (fault, phase, back) in [
        (Mode::Truncated, "truncated", "good after truncated"),
        (Mode::NotJson, "not json", "good after not json"),
        (Mode::CutShort, "cut short", "good after cut short"),
        (Mode::Silent, "silent", "good after silent"),
    ] {
        load.phase(phase);
        mode.store(fault as u8, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(if fault == Mode::Silent {
            3000
        } else {
            1000
        }))
        .await;
        mode.store(Mode::Good as u8, Ordering::SeqCst);
        load.phase(back);
        let first = ask(&client, &url, back).await;
        assert_eq!(first.code, 200, "{first:?}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut answers = load.stop().await;

    // Past --max-requests-inflight, while the backend is silent: 429 with Retry-After.
    mode.store(Mode::Silent as u8, Ordering::SeqCst);
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { ask(&client, &url, "burst").await })
        })
        .collect();
    for b in burst {
        answers.push(b.await.unwrap());
    }
    assert!(
        answers.iter().any(|a| a.phase == "burst" && a.code == 429),
        "no 429 past --max-requests-inflight"
    );
    mode.store(Mode::Good as u8, Ordering::SeqCst);
    let last = ask(&client, &url, "after burst").await;
    assert_eq!(last.code, 200, "{last:?}");

    server.assert_running();
    check(
        &answers,
        &backend,
        &["truncated", "not json", "cut short", "silent"],
    );
    let truncated = answers
        .iter()
        .find(|a| a.phase == "truncated" && a.code == 503)
        .unwrap();
    assert!(
        truncated.message.contains("unexpected response"),
        "{truncated:?}"
    );
    let silent = answers
        .iter()
        .find(|a| a.phase == "silent" && a.code == 503)
        .unwrap();
    assert!(silent.message.contains("no answer within"), "{silent:?}");
}
