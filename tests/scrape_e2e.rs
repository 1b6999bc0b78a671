//! End to end without Prometheus: the `promhpa` binary scrapes an HTTP target itself
//! (`--scrape-config`), loads an exposition file (`--load-exposition`), and serves the
//! repository's P95 latency rules to `kubectl get --raw`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promhpa_core::quantity::Quantity;
use promhpa_test_support::{free_port, ScrapeTarget, TestPki};
use serde_json::Value;

/// Cumulative bucket counts per scrape for two pods; the counters grow linearly, so the
/// P95 of the rate is the P95 of these shapes: 0.5 for inference-a (rank 95 ends the
/// `le="0.5"` bucket) and 1 for inference-b (rank 95 falls in `+Inf`, which reports the
/// highest finite bound).
fn histogram(n: u64) -> String {
    let mut s = String::from("# TYPE http_request_duration_seconds histogram\n");
    for (pod, counts) in [
        ("inference-a", [50, 80, 95, 99, 100]),
        ("inference-b", [10, 40, 70, 90, 100]),
    ] {
        for (le, c) in ["0.1", "0.25", "0.5", "1", "+Inf"].iter().zip(counts) {
            s.push_str(&format!(
                "http_request_duration_seconds_bucket{{endpoint=\"/predict\",namespace=\"default\",pod=\"{pod}\",le=\"{le}\"}} {}\n",
                c * n
            ));
        }
    }
    s
}

const IN_FLIGHT: &str = "# TYPE http_requests_in_flight gauge\n\
http_requests_in_flight{endpoint=\"/predict\",namespace=\"default\",pod=\"inference-a\"} 4\n\
http_requests_in_flight{endpoint=\"/predict\",namespace=\"default\",pod=\"inference-b\"} 9\n";

const OBJECTS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: inference-a, namespace: default, labels: {app: inference}}}
- {apiVersion: v1, kind: Pod, metadata: {name: inference-b, namespace: default, labels: {app: inference}}}
"#;

fn tempdir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("promhpa-scrape-e2e-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Promhpa {
    child: Child,
    log: PathBuf,
}

impl Promhpa {
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

fn kubectl(kubeconfig: &Path, cache: &Path, path: &str) -> Output {
    Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .arg("--request-timeout=30s")
        .args(["get", "--raw", path])
        .output()
        .unwrap()
}

fn values_by_pod(list: &Value) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["describedObject"]["name"].as_str().unwrap().to_string(),
                        i["value"]
                            .as_str()
                            .unwrap()
                            .parse::<Quantity>()
                            .unwrap()
                            .as_f64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn serves_scraped_targets_without_prometheus() {
    let dir = tempdir();
    let pki = TestPki::generate("scrape-e2e-ca", "scrape-e2e").unwrap();
    let target = ScrapeTarget::start_with(Arc::new(histogram)).unwrap();
    let closed = free_port().unwrap();
    let scrape = dir.join("scrape.yaml");
    std::fs::write(
        &scrape,
        format!(
            "targets:\n\
             - url: http://127.0.0.1:{}/metrics\n  interval: 1s\n  timeout: 1s\n  labels: {{team: inference}}\n\
             - url: http://127.0.0.1:{closed}/metrics\n  interval: 1s\n  timeout: 500ms\n",
            target.port
        ),
    )
    .unwrap();
    let in_flight = dir.join("in-flight.prom");
    std::fs::write(&in_flight, IN_FLIGHT).unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/seed-p95-latency.yaml");

    let port = free_port().unwrap();
    let log = dir.join("promhpa.log");
    let server = Promhpa {
        child: Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .arg("serve")
            .arg(format!("--scrape-config={}", scrape.display()))
            .arg(format!("--load-exposition={}", in_flight.display()))
            .arg(format!("--config={}", rules.display()))
            .arg(format!("--objects={}", objects.display()))
            .arg("--insecure-skip-delegated-auth")
            .arg("--metrics-relist-interval=1s")
            .arg("--metrics-max-age=10m")
            .arg(format!("--tls-cert-file={}", pki.server_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.server_key.display()
            ))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: promhpa\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\nusers:\n- name: test\n  user: {{token: test-token}}\ncontexts:\n- name: test\n  context: {{cluster: promhpa, user: test}}\ncurrent-context: test\n",
            pki.ca_cert.display()
        ),
    )
    .unwrap();
    let cache = dir.join("kube-cache");

    let p95 =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_request_duration_p95";
    let start = Instant::now();
    let values = loop {
        let out = kubectl(&kubeconfig, &cache, p95);
        if out.status.success() {
            let list: Value = serde_json::from_slice(&out.stdout).unwrap();
            let v = values_by_pod(&list);
            if v.len() == 2 {
                break v;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no p95 from the scraped target: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(values[0].0, "inference-a");
    assert!((values[0].1 - 0.5).abs() < 1e-3, "{values:?}");
    assert_eq!(values[1].0, "inference-b");
    assert!((values[1].1 - 1.0).abs() < 1e-3, "{values:?}");

    // The exposition file loaded at start serves the in-flight rule.
    let out = kubectl(
        &kubeconfig,
        &cache,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_in_flight",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        values_by_pod(&list),
        vec![
            ("inference-a".to_string(), 4.0),
            ("inference-b".to_string(), 9.0)
        ]
    );

    // The target that is down is logged by URL and does not stop serving.
    let log = server.log();
    assert!(
        log.contains("scrape failed") && log.contains(&format!("127.0.0.1:{closed}")),
        "{log}"
    );
    assert!(kubectl(&kubeconfig, &cache, "/readyz").status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
