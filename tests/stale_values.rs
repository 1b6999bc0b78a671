//! `--stale-value-max-age` with the `promhpa` binary in front of a REAL Prometheus (HTTPS,
//! test CA): a value is served, Prometheus is killed, and the same request still gets the
//! last answer (with a `Warning` header, counted on `/metrics`) until that answer is older
//! than the maximum age; then it is a 503 naming the backend and the time of the last
//! successful answer. A request never answered before gets the plain 503 meanwhile.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use promhpa_test_support::{free_port, wait_for_port, Prometheus, ScrapeTarget, TestPki};

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
const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dweb&timeout=2s";
/// The same metric for a request that was never answered (another selector).
const OTHER_PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-a/http_requests_in_flight?timeout=2s";
const MAX_AGE: Duration = Duration::from_secs(4);

struct Promhpa {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Promhpa {
    fn start(pki: &TestPki, dir: &Path, prom: &Prometheus) -> Promhpa {
        let rules = dir.join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap();
        let objects = dir.join("objects.yaml");
        std::fs::write(&objects, OBJECTS).unwrap();
        let port = free_port().unwrap();
        let log = dir.join(format!("promhpa-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .arg("serve")
            .arg(format!("--prometheus-url={}", prom.url()))
            .arg(format!("--prometheus-ca-file={}", pki.ca_cert.display()))
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
            .arg("--metrics-relist-interval=10m")
            .arg("--metrics-max-age=1h")
            .arg(format!("--stale-value-max-age={}s", MAX_AGE.as_secs()))
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
}

impl Drop for Promhpa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    code: u16,
    warning: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {}",
                self.code,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn ask(client: &reqwest::Client, url: &str) -> Answer {
    let resp = client.get(url).send().await.unwrap();
    let code = resp.status().as_u16();
    let warning = resp
        .headers()
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = resp.bytes().await.unwrap().to_vec();
    Answer {
        code,
        warning,
        body,
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_value_is_served_while_prometheus_is_down_until_it_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate("promhpa-test-ca", "client").unwrap();
    let target = ScrapeTarget::start(EXPOSITION).unwrap();
    let mut prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let server = Promhpa::start(&pki, dir.path(), &prom);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", server.port);
    let url = format!("{base}{PATH}");

    // Until Prometheus has scraped both pods and discovery has found the series.
    let start = Instant::now();
    loop {
        let a = ask(&client, &url).await;
        if a.code == 200 && a.json()["items"].as_array().is_some_and(|i| i.len() == 2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never served; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The last answer before the backend goes away.
    let asked = Instant::now();
    let asked_wall = SystemTime::now();
    let last = ask(&client, &url).await;
    let answered_wall = SystemTime::now();
    assert_eq!(last.code, 200);
    assert_eq!(last.warning, None);
    prom.kill();
    let backend = format!("127.0.0.1:{}", prom.port);

    // Within the maximum age: the same answer, byte for byte (the samples' own
    // timestamps), with a Warning; at least the first request after the kill gets it.
    let mut stale = 0;
    let too_old = loop {
        let a = ask(&client, &url).await;
        match a.code {
            200 => {
                assert_eq!(a.body, last.body, "a stale answer is the last answer");
                let warning = a.warning.clone().unwrap_or_default();
                assert!(
                    warning.starts_with(
                        "299 - \"promhpa: the metrics backend failed; this is the answer of "
                    ),
                    "{warning}"
                );
                stale += 1;
            }
            503 => break a,
            other => panic!(
                "unexpected {other}: {}\n{}",
                String::from_utf8_lossy(&a.body),
                server.log()
            ),
        }
        assert!(
            asked.elapsed() < MAX_AGE + Duration::from_secs(20),
            "still served after {:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(stale > 0, "no stale value served; log:\n{}", server.log());
    // Served only while younger than the maximum age.
    assert!(
        asked.elapsed() >= MAX_AGE,
        "503 after only {:?}",
        asked.elapsed()
    );

    // Past it: a 503 naming the backend and the time of the last answer.
    let status = too_old.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "ServiceUnavailable");
    let message = status["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&backend), "{message}");
    assert!(
        message.contains("older than --stale-value-max-age=4s"),
        "{message}"
    );
    let when = message
        .split("the last successful answer to this request was at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no time of the last answer: {message}"));
    let when_ms = promhpa_core::time::parse_rfc3339_ms(when)
        .unwrap_or_else(|| panic!("not a time: {when} in {message}"));
    // RFC 3339 to the second.
    assert!(
        when_ms >= unix_ms(asked_wall) - 1000 && when_ms <= unix_ms(answered_wall),
        "{when} is not when the last answer was given"
    );

    // A request never answered has nothing to fall back on.
    let other = ask(&client, &format!("{base}{OTHER_PATH}")).await;
    assert_eq!(other.code, 503);
    let message = other.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(&backend), "{message}");
    assert!(message.contains("no earlier answer"), "{message}");

    // Counted, and logged.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("promhpa_stale_values_served_total{api=\"custom\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no stale-value counter:\n{metrics}"));
    assert_eq!(served, stale);
    assert!(
        metrics.contains("promhpa_stale_values_served_total{api=\"external\"} 0"),
        "{metrics}"
    );
    assert!(
        server
            .log()
            .contains("serving the last answer to this request"),
        "{}",
        server.log()
    );
}
