//! End to end: the rule file of a running promhpa, mounted the way Kubernetes mounts a
//! ConfigMap (a `..data` symlink swapped atomically), changes under concurrent requests
//! against a real Prometheus over HTTPS; SIGHUP reloads it too.
#![allow(clippy::unwrap_used)]

mod common;
use common::{now_ms, tempfile_dir, wait_for, Kubectl, Promhpa};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

const RULES_A: &str = "rules:\n- seriesQuery: 'jobs_waiting{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n";
const RULES_B: &str = "rules:\n- seriesQuery: 'jobs_done{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n- seriesQuery: 'jobs_waiting{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 1000'\n";

/// Publish `text` as the mounted ConfigMap's `rules.yaml`: a new timestamped directory,
/// then an atomic swap of the `..data` symlink, as the kubelet does.
fn publish(mount: &Path, generation: u32, text: &str) {
    let data = mount.join(format!("..gen_{generation}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("rules.yaml"), text).unwrap();
    let tmp = mount.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, mount.join("..data")).unwrap();
    let link = mount.join("rules.yaml");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("..data/rules.yaml", &link).unwrap();
    }
}

fn metrics_text(kubectl: &Kubectl) -> String {
    String::from_utf8_lossy(&kubectl.raw("/metrics").stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_file_reloads_under_load_without_a_failed_or_mixed_answer() {
    let dir = tempfile_dir("reload");
    let pki = TestPki::generate("reload-ca", "reload").unwrap();
    let target = ScrapeTarget::start(
        "jobs_waiting{namespace=\"batch\",pod=\"worker-1\"} 3\njobs_done{namespace=\"batch\",pod=\"worker-1\"} 5\n",
    )
    .unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    let client = PromClient::new(pc).unwrap();
    let start = Instant::now();
    while !matches!(
        client.query("jobs_waiting", now_ms()).await,
        Ok(QueryValue::Vector(v)) if !v.is_empty()
    ) {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mount = dir.join("config");
    std::fs::create_dir_all(&mount).unwrap();
    publish(&mount, 1, RULES_A);
    let objects = dir.join("objects.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: worker-1, namespace: batch}\n",
    )
    .unwrap();
    let mut server = Promhpa::start(
        &[
            format!("--prometheus-url={}", prom.url()),
            format!("--prometheus-ca-file={}", pki.ca_cert.display()),
            format!("--config={}", mount.join("rules.yaml").display()),
            format!("--objects={}", objects.display()),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
            "--config-reload-interval=200ms".into(),
            "--insecure-skip-delegated-auth".into(),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);

    // Clients ask all the time; every answer must be a value of the old or the new rules.
    let url = format!(
        "https://127.0.0.1:{}/apis/custom.metrics.k8s.io/v1beta1/namespaces/batch/pods/worker-1/jobs_waiting",
        server.port
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, ca, stop, answers) = (url.clone(), ca.clone(), stop.clone(), answers.clone());
        load.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .add_root_certificate(ca)
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let resp = http.get(&url).send().unwrap();
                let status = resp.status();
                let body: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
                let got = if status.is_success() {
                    body["items"][0]["value"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string()
                } else {
                    format!("{status}: {body}")
                };
                answers.lock().unwrap().push(got);
            }
        }));
    }
    let value = || {
        kubectl
            .json("/apis/custom.metrics.k8s.io/v1beta1/namespaces/batch/pods/worker-1/jobs_waiting")
            ["items"][0]["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(value(), "3");

    // The ConfigMap changes: the new rules are served within seconds, without a restart.
    publish(&mount, 2, RULES_B);
    wait_for("the new rules", &server, || value() == "3k");
    let done = kubectl
        .json("/apis/custom.metrics.k8s.io/v1beta1/namespaces/batch/pods/worker-1/jobs_done");
    assert_eq!(done["items"][0]["value"], "5", "{done}");

    // A change that does not load leaves the running rules and says so on /metrics.
    publish(&mount, 3, "rules:\n- seriesQuerry: 'x'\n");
    wait_for("the failed reload", &server, || {
        metrics_text(&kubectl).contains("\npromhpa_config_last_reload_successful 0\n")
    });
    assert_eq!(value(), "3k");
    assert!(
        server
            .log()
            .contains("rules[0].seriesQuerry: unknown field"),
        "{}",
        server.log()
    );

    // Fixed again, then SIGHUP: reloaded, and the process keeps running.
    publish(&mount, 4, RULES_A);
    wait_for("the fixed rules", &server, || value() == "3");
    let reloads = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("promhpa_config_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = reloads(&metrics_text(&kubectl));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the SIGHUP reload", &server, || {
        reloads(&metrics_text(&kubectl)) > before
    });
    assert!(
        server.running(),
        "SIGHUP ended the process: {}",
        server.log()
    );

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let answers = answers.lock().unwrap();
    assert!(answers.len() > 20, "only {} answers", answers.len());
    let wrong: Vec<&String> = answers.iter().filter(|a| *a != "3" && *a != "3k").collect();
    assert!(wrong.is_empty(), "answers during reloads: {wrong:?}");
    assert!(answers.iter().any(|a| a == "3k") && answers.iter().any(|a| a == "3"));
}
