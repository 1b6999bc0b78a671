//! End to end: a real Prometheus over HTTPS (test CA) scraping the seeds' metrics, the
//! `promhpa` binary serving them with the repository's rule files, and `kubectl get --raw`
//! as the client.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, BackendError, QueryValue};
use promhpa_core::quantity::Quantity;
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{free_port, Prometheus, ScrapeTarget, TestPki};
use serde_json::Value;

mod common;
use common::{now_ms, serve_args, tempfile_dir, Kubectl, Promhpa};

/// The tests here pick free ports and start servers on them; running them one at a time
/// keeps one test's server from taking a port another test just picked.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// The seeds' series; counters grow by a fixed amount per scrape.
fn exposition(n: u64) -> String {
    let mut s = String::new();
    let buckets = [
        ("inference-a", [50, 80, 95, 99, 100]),
        ("inference-b", [10, 40, 70, 90, 100]),
    ];
    s.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (pod, counts) in buckets {
        for (le, c) in ["0.1", "0.25", "0.5", "1", "+Inf"].iter().zip(counts) {
            s.push_str(&format!(
                "http_request_duration_seconds_bucket{{endpoint=\"/predict\",namespace=\"default\",pod=\"{pod}\",le=\"{le}\"}} {}\n",
                c * n
            ));
        }
    }
    s.push_str("# TYPE http_requests_in_flight gauge\n");
    for (pod, v) in [
        ("inference-a", "3"),
        ("inference-b", "12"),
        ("inference-c", "NaN"),
    ] {
        s.push_str(&format!(
            "http_requests_in_flight{{endpoint=\"/predict\",namespace=\"default\",pod=\"{pod}\"}} {v}\n"
        ));
    }
    s.push_str("# TYPE istio_requests_total counter\n");
    for (pod, per) in [("inference-a", 10), ("inference-b", 30)] {
        s.push_str(&format!(
            "istio_requests_total{{namespace=\"default\",pod=\"{pod}\",response_code=\"200\"}} {}\n",
            per * n
        ));
    }
    s.push_str("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n");
    for (gpu, v) in [("0", 80), ("1", 60)] {
        s.push_str(&format!(
            "DCGM_FI_DEV_GPU_UTIL{{exported_namespace=\"gpu\",exported_pod=\"trainer-0\",gpu=\"{gpu}\"}} {v}\n"
        ));
    }
    s.push_str("# TYPE inferno_desired_replicas gauge\n");
    s.push_str("inferno_desired_replicas{variant_name=\"vllme-deployment\",exported_namespace=\"llm-d-sim\",namespace=\"inferno-autoscaler-system\"} 3\n");
    s.push_str("inferno_desired_replicas{variant_name=\"other\",exported_namespace=\"llm-d-sim\",namespace=\"inferno-autoscaler-system\"} 5\n");
    s
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: inference-a, namespace: default, labels: {app: inference}}}
- {apiVersion: v1, kind: Pod, metadata: {name: inference-b, namespace: default, labels: {app: inference}}}
- {apiVersion: v1, kind: Pod, metadata: {name: inference-c, namespace: default, labels: {app: inference}}}
- {apiVersion: v1, kind: Pod, metadata: {name: db-0, namespace: default, labels: {app: db}}}
- {apiVersion: v1, kind: Pod, metadata: {name: trainer-0, namespace: gpu, labels: {app: trainer}}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: vllme-deployment, namespace: llm-d-sim}}
"#;

fn repo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

/// One rule file made of the repository's seed, Istio and DCGM rule files.
fn combined_rules(dir: &Path) -> PathBuf {
    let mut rules = Vec::new();
    let mut external = Vec::new();
    for f in [
        "seed-p95-latency.yaml",
        "istio-requests.yaml",
        "dcgm-gpu-utilization.yaml",
        "seed-inferno-desired-replicas.yaml",
    ] {
        let text = std::fs::read_to_string(repo_rules().join(f)).unwrap();
        let v: serde_json::Value = promhpa_core::yaml::from_str(&text).unwrap();
        if let Some(r) = v.get("rules").and_then(|r| r.as_array()) {
            rules.extend(r.iter().cloned());
        }
        if let Some(r) = v.get("externalRules").and_then(|r| r.as_array()) {
            external.extend(r.iter().cloned());
        }
    }
    let m = serde_json::json!({"rules": rules, "externalRules": external});
    let path = dir.join("rules.yaml");
    std::fs::write(&path, promhpa_core::yaml::to_string(&m).unwrap()).unwrap();
    path
}

/// The answer Prometheus itself gives to `promql` now, the reference promhpa's answers are
/// compared with. A busy machine can make one query time out, so a failed one is asked again.
async fn prom_value(client: &PromClient, promql: &str) -> Vec<(String, f64)> {
    let mut tries = 0;
    let value = loop {
        match client.query(promql, now_ms()).await {
            Ok(v) => break v,
            Err(e) if tries < 4 => {
                eprintln!("asking Prometheus for {promql} again after: {e}");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("Prometheus could not answer {promql}: {e}"),
        }
    };
    match value {
        QueryValue::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| (s.labels.get("pod").cloned().unwrap_or_default(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn items_by_name(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn q(v: f64) -> String {
    Quantity::from_f64_milli(v).unwrap().to_string()
}

fn quantity_f64(s: &str) -> f64 {
    s.parse::<Quantity>().unwrap().as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_seeds_through_kubectl() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("promhpa-test-ca", "front-proxy").unwrap();
    let target = ScrapeTarget::start_with(Arc::new(exposition)).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    let client = PromClient::new(pc).unwrap();

    // Wait until Prometheus has enough scrapes for rate() over every series.
    let start = Instant::now();
    loop {
        let ready = match client
            .query("count(rate(istio_requests_total[1m]))", now_ms())
            .await
        {
            Ok(QueryValue::Vector(v)) => v.first().is_some_and(|s| s.value == 2.0),
            Ok(_) | Err(BackendError::Unavailable { .. }) => false,
            Err(e) => panic!("{e}"),
        };
        if ready {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no data in prometheus: {}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let rules = combined_rules(&dir);
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    let mut args = serve_args(&pki, &prom.url(), &rules, &objects);
    args.extend([
        "--metrics-relist-interval=5s".into(),
        "--metrics-max-age=10m".into(),
        // prometheus-adapter flags an existing Deployment passes.
        "--v=4".into(),
        "--logtostderr=true".into(),
        "--requestheader-allowed-names=front-proxy".into(),
        format!("--requestheader-client-ca-file={}", pki.ca_cert.display()),
    ]);
    let server = Promhpa::start(&args, &dir);
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);

    // Discovery.
    let v1 = kubectl.json("/apis/custom.metrics.k8s.io/v1beta1");
    assert_eq!(v1["groupVersion"], "custom.metrics.k8s.io/v1beta1");
    let resources: Vec<(String, bool)> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["kind"], "MetricValueList");
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    for expected in [
        "pods/http_request_duration_p95",
        "pods/http_requests_in_flight",
        "pods/requests_per_second",
        "pods/gpu_utilization",
    ] {
        assert!(
            resources.contains(&(expected.to_string(), true)),
            "{expected} missing from {resources:?}"
        );
    }
    let names: Vec<&String> = resources.iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "discovery listing is sorted");
    let v2 = kubectl.json("/apis/custom.metrics.k8s.io/v1beta2");
    assert_eq!(v2["resources"], v1["resources"]);
    let ext = kubectl.json("/apis/external.metrics.k8s.io/v1beta1");
    assert_eq!(ext["resources"][0]["name"], "inferno_desired_replicas");
    assert_eq!(ext["resources"][0]["kind"], "ExternalMetricValueList");
    let apis = kubectl.json("/apis");
    assert_eq!(apis["kind"], "APIGroupList");

    // P95 latency, v1beta1: the values Prometheus computes for the same PromQL.
    let p95 = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_request_duration_p95?labelSelector=app%3Dinference",
    );
    assert_eq!(p95["kind"], "MetricValueList");
    assert_eq!(p95["apiVersion"], "custom.metrics.k8s.io/v1beta1");
    let expected = prom_value(
        &client,
        "histogram_quantile(0.95, sum by (le, pod) (rate(http_request_duration_seconds_bucket{endpoint=\"/predict\",namespace=\"default\"}[1m])))",
    )
    .await;
    assert_eq!(expected.len(), 2);
    assert_eq!(
        items_by_name(&p95),
        expected
            .iter()
            .map(|(p, v)| (p.clone(), q(*v)))
            .collect::<Vec<_>>()
    );
    let item = &p95["items"][0];
    assert_eq!(item["metricName"], "http_request_duration_p95");
    assert_eq!(item["window"], 60);
    assert_eq!(item["describedObject"]["kind"], "Pod");
    assert_eq!(item["describedObject"]["apiVersion"], "v1");
    assert_eq!(item["describedObject"]["namespace"], "default");
    assert!(item["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(
        item.get("selector").is_some(),
        "v1beta1 always has selector"
    );

    // v1beta2: metric{name}, windowSeconds.
    let p95b = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_request_duration_p95?labelSelector=app%3Dinference",
    );
    assert_eq!(p95b["apiVersion"], "custom.metrics.k8s.io/v1beta2");
    assert_eq!(items_by_name(&p95b), items_by_name(&p95));
    assert_eq!(
        p95b["items"][0]["metric"]["name"],
        "http_request_duration_p95"
    );
    assert_eq!(p95b["items"][0]["windowSeconds"], 60);
    assert!(p95b["items"][0].get("metricName").is_none());

    // In-flight gauge: exact values; the NaN pod is dropped, not sent as a number.
    let inflight = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dinference",
    );
    assert_eq!(
        items_by_name(&inflight),
        vec![
            ("inference-a".to_string(), "3".to_string()),
            ("inference-b".to_string(), "12".to_string())
        ]
    );
    let nan = kubectl.error(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/inference-c/http_requests_in_flight",
    );
    assert!(nan.contains("NotFound") && nan.contains("NaN"), "{nan}");

    // Istio requests per second: the same PromQL asked of Prometheus directly, moments apart.
    let rps = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/requests_per_second?labelSelector=app%3Dinference",
    );
    let expected = prom_value(
        &client,
        "sum(rate(istio_requests_total{namespace=\"default\"}[2m])) by (pod)",
    )
    .await;
    let got = items_by_name(&rps);
    assert_eq!(got.len(), 2);
    for ((pod, value), (epod, evalue)) in got.iter().zip(&expected) {
        assert_eq!(pod, epod);
        let v = quantity_f64(value);
        assert!((v - evalue).abs() <= evalue * 0.1, "{pod}: {v} vs {evalue}");
    }
    assert_eq!(rps["items"][0]["windowSeconds"], 120);

    // DCGM GPU utilisation: average over the pod's GPUs.
    let gpu = kubectl
        .json("/apis/custom.metrics.k8s.io/v1beta1/namespaces/gpu/pods/trainer-0/gpu_utilization");
    assert_eq!(
        items_by_name(&gpu),
        vec![("trainer-0".to_string(), "70".to_string())]
    );

    // External: inferno_desired_replicas selected by variant_name.
    let inferno = kubectl.json(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm-d-sim/inferno_desired_replicas?labelSelector=variant_name%3Dvllme-deployment",
    );
    assert_eq!(inferno["kind"], "ExternalMetricValueList");
    assert_eq!(inferno["items"].as_array().unwrap().len(), 1);
    assert_eq!(inferno["items"][0]["value"], "3");
    assert_eq!(
        inferno["items"][0]["metricName"],
        "inferno_desired_replicas"
    );
    assert_eq!(
        inferno["items"][0]["metricLabels"]["variant_name"],
        "vllme-deployment"
    );
    let all = kubectl.json(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm-d-sim/inferno_desired_replicas",
    );
    assert_eq!(all["items"].as_array().unwrap().len(), 2);

    // Errors, as kubectl shows them.
    let e = kubectl
        .error("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/no_such_metric");
    assert!(
        e.contains("NotFound") && e.contains("no_such_metric") && e.contains("pods"),
        "{e}"
    );
    let e = kubectl.error(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dnothing",
    );
    assert!(
        e.contains("NotFound") && e.contains("no pods objects"),
        "{e}"
    );
    let e = kubectl.error(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/db-0/http_requests_in_flight",
    );
    assert!(
        e.contains("NotFound")
            && e.contains("returned no series")
            && e.contains("http_requests_in_flight{")
            && e.contains("\"pod\""),
        "{e}"
    );
    let e = kubectl.error(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_in_flight?labelSelector=a%20b",
    );
    assert!(
        e.contains("BadRequest") && e.contains("labelSelector"),
        "{e}"
    );
    let e = kubectl
        .error("/apis/external.metrics.k8s.io/v1beta1/namespaces/llm-d-sim/no_such_external");
    assert!(
        e.contains("NotFound") && e.contains("no_such_external"),
        "{e}"
    );

    // Self-metrics and OpenAPI.
    let metrics = kubectl.raw("/metrics");
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains(
            "promhpa_http_request_duration_seconds_count{route=\"custom/namespaced\",code=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "promhpa_backend_query_duration_seconds_count{rule=\"rules[0]\",outcome=\"success\"}"
        ),
        "{text}"
    );
    // Every stage of a request against a real Prometheus over TLS was timed; no guard here.
    for stage in [
        "tls_handshake",
        "route",
        "object_lookup",
        "render",
        "backend",
        "decode",
        "encode",
    ] {
        let count = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "promhpa_request_stage_duration_seconds_count{{stage=\"{stage}\"}} "
                ))
            })
            .and_then(|n| n.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n > 0), "{stage}: {count:?}\n{text}");
    }
    assert!(
        text.contains("promhpa_request_stage_duration_seconds_count{stage=\"auth\"} 0\n"),
        "{text}"
    );
    let openapi = kubectl.json("/openapi/v2");
    assert_eq!(openapi["swagger"], "2.0");
    let v3 = kubectl.json("/openapi/v3");
    let url = v3["paths"]["apis/custom.metrics.k8s.io/v1beta2"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(kubectl.json(&url)["openapi"], "3.0.0");

    // Without the CA file, promhpa stops with a certificate error instead of hanging.
    let no_ca: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--prometheus-ca-file"))
        .cloned()
        .collect();
    let mut bad = Promhpa::start(&no_ca, &dir);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = bad.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "promhpa without the CA kept running: {}",
            bad.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = bad.log();
    assert!(
        log.contains("certificate") && log.contains("--prometheus-ca-file"),
        "{log}"
    );

    // Prometheus gone: 503 naming its address.
    let address = prom.url();
    drop(prom);
    let e = kubectl.error(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dinference",
    );
    assert!(
        e.contains("ServiceUnavailable") && e.contains(&address),
        "{e}"
    );

    // SIGTERM: a clean exit.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "promhpa ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{}", server.log());
}

#[test]
fn demo_serves_the_embedded_backend() {
    let _serial = serial();
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("demo-ca", "demo").unwrap();
    let server = Promhpa::start(
        &[
            "serve".to_string(),
            "--demo".to_string(),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    let list = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_in_flight",
    );
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{list}");
    for item in items {
        let v = quantity_f64(item["value"].as_str().unwrap());
        assert!(v.is_finite() && v >= 0.0, "{item}");
    }
    // The built-in rules count as loaded at start, though there is no file to reload.
    let metrics = String::from_utf8_lossy(&kubectl.raw("/metrics").stdout).into_owned();
    let loaded_at = metrics
        .lines()
        .find_map(|l| l.strip_prefix("promhpa_config_last_reload_success_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(loaded_at > 1.0e9, "{metrics}");
}

#[test]
fn helm_values_prometheus_settings_are_used() {
    let _serial = serial();
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("helm-ca", "helm").unwrap();
    let closed = free_port().unwrap();
    let values = dir.join("values.yaml");
    std::fs::write(
        &values,
        format!(
            "prometheus:\n  url: https://127.0.0.1\n  port: {closed}\n  path: /prom\nrules:\n  default: false\n  custom:\n  - seriesQuery: 'up{{namespace!=\"\",pod!=\"\"}}'\n    resources:\n      overrides:\n        namespace: {{resource: namespace}}\n        pod: {{resource: pod}}\n    metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{{<<.LabelMatchers>>}})'\n"
        ),
    )
    .unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, "apiVersion: v1\nkind: List\nitems: []\n").unwrap();
    let server = Promhpa::start(
        &[
            format!("--config={}", values.display()),
            format!("--objects={}", objects.display()),
            "--insecure-skip-delegated-auth".to_string(),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    let start = Instant::now();
    // The server runs; the backend it was given is the values file's Prometheus, which is down.
    let expected = format!("https://127.0.0.1:{closed}/prom");
    loop {
        let out = kubectl.raw("/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/pods/x/up");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("ServiceUnavailable") || err.contains("NotFound") {
            assert!(server.log().contains(&expected), "{}", server.log());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{err}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn without_cluster_credentials_serving_refuses_to_start() {
    let dir = tempfile_dir("e2e");
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, "apiVersion: v1\nkind: List\nitems: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .arg(format!(
            "--config={}",
            repo_rules().join("seed-p95-latency.yaml").display()
        ))
        .arg(format!("--objects={}", objects.display()))
        .arg("--secure-port=0")
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KUBECONFIG")
        .env("HOME", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("delegated authentication")
            && stderr.contains("--insecure-skip-delegated-auth"),
        "{stderr}"
    );
}

#[test]
fn delegated_auth_guards_requests_when_cluster_credentials_are_given() {
    let _serial = serial();
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("auth-ca", "alice").unwrap();
    // A cluster that is not there: TokenReview and SubjectAccessReview cannot be asked.
    let closed = free_port().unwrap();
    let cluster = dir.join("cluster-kubeconfig");
    std::fs::write(
        &cluster,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{closed}\n    certificate-authority: {}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            pki.ca_cert.display()
        ),
    )
    .unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    let server = Promhpa::start(
        &[
            format!("--kubeconfig={}", cluster.display()),
            "--authentication-skip-lookup".to_string(),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--objects={}", objects.display()),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    // Health probes need no identity.
    kubectl.wait_for_raw(&server, "/healthz", "/healthz never answered", |_| Some(()));
    // A bearer token that cannot be reviewed: 401.
    let e = kubectl.error("/apis/custom.metrics.k8s.io/v1beta1");
    assert!(e.contains("Unauthorized"), "{e}");
    // A client certificate from the client CA authenticates; authorization cannot be asked.
    let with_cert = dir.join("kubeconfig-cert");
    std::fs::write(
        &with_cert,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: p\n  context: {{cluster: p, user: alice}}\ncurrent-context: p\n",
            server.port,
            pki.ca_cert.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", with_cert.display()))
        .arg(format!("--cache-dir={}", dir.join("cache2").display()))
        .args(["get", "--raw", "/apis/custom.metrics.k8s.io/v1beta1"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!e.contains("Unauthorized"), "{e}");
    assert!(
        e.contains("InternalError") || e.contains("Forbidden"),
        "{e}"
    );
}

/// cAdvisor's series for two pods: CPU counters growing `cores` CPU-seconds per scrape
/// interval of one second, working sets constant.
fn cadvisor(n: u64) -> String {
    let mut s = String::from("# TYPE container_cpu_usage_seconds_total counter\n");
    let series = [
        ("inference-a", "model", "node-a", 0.4, 536_870_912u64),
        ("inference-a", "proxy", "node-a", 0.1, 67_108_864),
        ("inference-b", "model", "node-b", 0.8, 1_073_741_824),
    ];
    for (pod, c, node, cores, _) in series {
        s.push_str(&format!(
            "container_cpu_usage_seconds_total{{namespace=\"default\",pod=\"{pod}\",container=\"{c}\",node=\"{node}\"}} {}\n",
            cores * n as f64
        ));
    }
    s.push_str("# TYPE container_memory_working_set_bytes gauge\n");
    for (pod, c, node, _, bytes) in series {
        s.push_str(&format!(
            "container_memory_working_set_bytes{{namespace=\"default\",pod=\"{pod}\",container=\"{c}\",node=\"{node}\"}} {bytes}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_k8s_io_from_resource_rules_through_kubectl() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("resource-ca", "front-proxy").unwrap();
    let target = ScrapeTarget::start_with(Arc::new(cadvisor)).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    let client = PromClient::new(pc).unwrap();
    let rules = repo_rules().join("resource-metrics.yaml");
    let cpu_query = "sum(rate(container_cpu_usage_seconds_total{namespace=\"default\",container!=\"\"}[3m])) by (pod)";
    let start = Instant::now();
    while prom_value(&client, cpu_query).await.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no data in prometheus: {}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    let server = Promhpa::start(&serve_args(&pki, &prom.url(), &rules, &objects), &dir);
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    let groups = kubectl.json("/apis");
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "metrics.k8s.io"),
        "{groups}"
    );
    // rate() over 3m still grows while Prometheus has less than 3m of samples: bracket the
    // served figure between Prometheus' own answers just before and just after.
    let before = prom_value(&client, cpu_query).await[0].1;
    let list = kubectl.json("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods");
    let after = prom_value(&client, cpu_query).await[0].1;
    assert_eq!(list["kind"], "PodMetricsList");
    // Pods of the namespace without cAdvisor series (inference-c, db-0) are left out.
    let items = list["items"].as_array().unwrap();
    let pods: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["inference-a", "inference-b"], "{list}");
    assert_eq!(list["items"][0]["window"], "3m0s");
    // CPU: Prometheus' own rate for the same containers (each truncated to the milli-CPU).
    let served: f64 = items[0]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| quantity_f64(c["usage"]["cpu"].as_str().unwrap()))
        .sum();
    assert!(
        served >= before - 0.002 && served <= after,
        "served {served} cores, Prometheus {before}..{after}: {list}"
    );
    let by_container: Vec<(&str, &str)> = items[0]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["usage"]["memory"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_container, [("model", "512Mi"), ("proxy", "64Mi")]);
    let one = kubectl.json("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/inference-b");
    assert_eq!(one["kind"], "PodMetrics");
    assert_eq!(one["containers"][0]["usage"]["memory"], "1Gi");
    let err = kubectl.error("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/db-0");
    assert!(
        err.contains("podmetrics.metrics.k8s.io \"default/db-0\" not found"),
        "{err}"
    );

    // kubectl top reads the same API.
    let out = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubectl.kubeconfig.display()))
        .arg(format!("--cache-dir={}", kubectl.cache.display()))
        .args(["top", "pod", "-n", "default", "--containers"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("inference-a") && l.contains("model") && l.contains("512Mi")),
        "{stdout}"
    );
}

/// A rule file with a working rule and one prometheus-adapter loads but cannot serve.
fn file_with_a_broken_rule(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n- seriesQuery: 'jobs_waiting{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n- seriesQuery: 'jobs_running{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n",
    )
    .unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: worker-1, namespace: batch}\n",
    )
    .unwrap();
    let exposition = dir.join("jobs.prom");
    std::fs::write(
        &exposition,
        "jobs_waiting{namespace=\"batch\",pod=\"worker-1\"} 3\njobs_running{namespace=\"batch\",pod=\"worker-1\"} 2\n",
    )
    .unwrap();
    (rules, objects, exposition)
}

#[test]
fn a_broken_rule_is_reported_and_every_other_rule_served() {
    let _serial = serial();
    let dir = tempfile_dir("e2e");
    let pki = TestPki::generate("broken-ca", "broken").unwrap();
    let (rules, objects, exposition) = file_with_a_broken_rule(&dir);
    let server = Promhpa::start(
        &[
            format!("--config={}", rules.display()),
            format!("--objects={}", objects.display()),
            format!("--load-exposition={}", exposition.display()),
            "--insecure-skip-delegated-auth".to_string(),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    let base = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/batch/pods/worker-1";
    let list = kubectl.json(&format!("{base}/jobs_waiting"));
    assert_eq!(list["items"][0]["value"], "3", "{list}");
    let err = kubectl.error(&format!("{base}/jobs_running"));
    assert!(
        err.contains("ServiceUnavailable")
            && err.contains("rule rules[1] is broken: metricsQuery: missing metricsQuery"),
        "{err}"
    );
    let metrics = String::from_utf8_lossy(&kubectl.raw("/metrics").stdout).into_owned();
    assert!(metrics.contains("\npromhpa_rules_broken 1\n"), "{metrics}");
    assert!(
        metrics.contains("promhpa_rule_broken{rule=\"rules[1]\"} 1"),
        "{metrics}"
    );
    let log = server.log();
    assert!(
        log.lines().any(|l| l.starts_with('E'))
            && log.contains("rules[1].metricsQuery: missing metricsQuery"),
        "{log}"
    );

    // --strict-rules refuses the same file before serving anything
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .arg(format!("--config={}", rules.display()))
        .arg(format!("--objects={}", objects.display()))
        .arg("--insecure-skip-delegated-auth")
        .arg("--strict-rules")
        .arg("--secure-port=0")
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--strict-rules")
            && stderr.contains("rules[1].metricsQuery: missing metricsQuery"),
        "{stderr}"
    );
}
