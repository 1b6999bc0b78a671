//! `explain` and `simulate` against a real Prometheus over HTTPS (test CA), with a scale
//! target whose selector comes from the object file.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

// Pods selected by the Deployment's selector (app=web): web-a, web-b and other-c (whose
// name does not start with `web-`); web-d carries another label and is not the target's.
const EXPOSITION: &str = "# TYPE queue_depth gauge
queue_depth{namespace=\"shop\",pod=\"web-a\"} 6
queue_depth{namespace=\"shop\",pod=\"web-b\"} 9
queue_depth{namespace=\"shop\",pod=\"other-c\"} 3
queue_depth{namespace=\"shop\",pod=\"web-d\"} 100
# TYPE pod_cpu_cores gauge
pod_cpu_cores{namespace=\"shop\",pod=\"web-a\",container=\"app\"} 0.15
pod_cpu_cores{namespace=\"shop\",pod=\"web-a\",container=\"sidecar\"} 0.05
pod_cpu_cores{namespace=\"shop\",pod=\"web-b\",container=\"app\"} 0.4
pod_cpu_cores{namespace=\"shop\",pod=\"other-c\",container=\"app\"} 0.6
pod_cpu_cores{namespace=\"shop\",pod=\"web-d\",container=\"app\"} 9
# TYPE pod_memory_bytes gauge
pod_memory_bytes{namespace=\"shop\",pod=\"web-a\",container=\"app\"} 209715200
pod_memory_bytes{namespace=\"shop\",pod=\"web-a\",container=\"sidecar\"} 20971520
pod_memory_bytes{namespace=\"shop\",pod=\"web-b\",container=\"app\"} 314572800
pod_memory_bytes{namespace=\"shop\",pod=\"other-c\",container=\"app\"} 104857600
pod_memory_bytes{namespace=\"shop\",pod=\"web-d\",container=\"app\"} 999
";

const RULES: &str = r#"rules:
- seriesQuery: 'queue_depth{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
resourceRules:
  cpu:
    containerQuery: 'sum by (<<.GroupBy>>) (pod_cpu_cores{<<.LabelMatchers>>})'
    nodeQuery: 'sum by (<<.GroupBy>>) (node_cpu_cores{<<.LabelMatchers>>})'
    resources:
      overrides:
        namespace: {resource: "namespace"}
        pod: {resource: "pod"}
        node: {resource: "node"}
    containerLabel: container
  memory:
    containerQuery: 'sum by (<<.GroupBy>>) (pod_memory_bytes{<<.LabelMatchers>>})'
    nodeQuery: 'sum by (<<.GroupBy>>) (node_memory_bytes{<<.LabelMatchers>>})'
    resources:
      overrides:
        namespace: {resource: "namespace"}
        pod: {resource: "pod"}
        node: {resource: "node"}
    containerLabel: container
"#;

// web-e is Pending (no metrics yet): the controller counts it as unready. The other pods
// carry no status, as in a hand-written file, and are taken as Running and Ready.
const OBJECTS: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec:
    selector: {matchLabels: {app: web}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-a, namespace: shop, labels: {app: web}}
  spec:
    containers:
    - {name: app, resources: {requests: {cpu: 250m, memory: 256Mi}}}
    - {name: sidecar, resources: {requests: {memory: 64Mi}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-b, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: app, resources: {requests: {cpu: 250m, memory: 256Mi}}}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: other-c, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: app, resources: {requests: {cpu: 250m, memory: 256Mi}}}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-e, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: app, resources: {requests: {cpu: 250m, memory: 256Mi}}}]}
  status: {phase: Pending}
- {apiVersion: v1, kind: Pod, metadata: {name: web-d, namespace: shop, labels: {app: batch}}}
"#;

const HPA: &str = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 20
  metrics:
  - type: Pods
    pods:
      metric: {name: queue_depth}
      target: {type: AverageValue, averageValue: "5"}
"#;

// The same target with a cpu metric served from resourceRules.
const HPA_CPU: &str = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 20
  metrics:
  - type: Pods
    pods:
      metric: {name: queue_depth}
      target: {type: AverageValue, averageValue: "5"}
  - type: Resource
    resource: {name: cpu, target: {type: AverageValue, averageValue: 200m}}
  - type: Resource
    resource: {name: memory, target: {type: Utilization, averageUtilization: 50}}
  - type: ContainerResource
    containerResource:
      name: cpu
      container: app
      target: {type: Utilization, averageUtilization: 100}
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn explain_and_simulate_against_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate("hpa-ca", "hpa").expect("pki");
    let target = ScrapeTarget::start(EXPOSITION).expect("target");
    let prom = Prometheus::start_https(&pki, &[target.port]).expect("prometheus");
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    let client = PromClient::new(pc).expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Wait for a few scrapes.
    let start = Instant::now();
    let first_ms = loop {
        let v = runtime.block_on(client.query("count(queue_depth)", now_ms()));
        if let Ok(QueryValue::Vector(v)) = v {
            if v.first().is_some_and(|s| s.value == 4.0) {
                break now_ms();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no data in prometheus: {}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(4));

    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let rules = write("rules.yaml", RULES);
    let objects = write("objects.yaml", OBJECTS);
    let hpa = write("hpa.yaml", HPA);
    let backend_args = vec![
        format!("--prometheus-url={}", prom.url()),
        format!("--prometheus-ca-file={}", pki.ca_cert.display()),
        format!("--config={}", rules.display()),
        format!("--objects={}", objects.display()),
    ];

    // explain: (6 + 9 + 3) / 3 = 6 per ready pod against 5 -> ratio 1.2; scaling up with
    // the Pending pod counted at 0 gives 18 / 4 = 4.5, ratio 0.9: the direction flips, so
    // the controller keeps 3.
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "-o", "json", "--replicas", "3", "-f"])
        .arg(&hpa)
        .args(&backend_args)
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("pods matching app=web, 4 found (3 without status"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["metrics"][0]["current"], "6", "{stdout}");
    assert_eq!(v["metrics"][0]["proposedReplicas"], 3, "{stdout}");
    let formula = v["metrics"][0]["formula"].as_str().unwrap_or_default();
    assert!(formula.contains("1 unready pods counted at 0"), "{formula}");
    assert_eq!(v["metrics"][0]["pods"]["unready"][0], "web-e", "{stdout}");
    assert_eq!(v["desiredReplicas"], 3, "{stdout}");

    // Resource metrics from resourceRules, per pod and container, against the pods'
    // requests; the Pending pod counts at 0 in the second pass of each:
    // - cpu AverageValue: 200m, 400m, 600m -> 400m vs 200m; (1200m / 4) / 200m = 1.5 -> 6
    // - memory Utilization: 620Mi of 832Mi = 74% vs 50%; 620Mi of 1088Mi = 56% -> 1.12 -> 5
    // - container app cpu: 1150m of 750m = 153% vs 100%; 1150m of 1000m -> 1.15 -> 5
    let hpa_cpu = write("hpa-cpu.yaml", HPA_CPU);
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "-o", "json", "--replicas", "3", "-f"])
        .arg(&hpa_cpu)
        .args(&backend_args)
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["metrics"][1]["current"], "400m", "{stdout}");
    assert_eq!(v["metrics"][1]["proposedReplicas"], 6, "{stdout}");
    assert_eq!(v["metrics"][2]["current"], "74%", "{stdout}");
    assert_eq!(v["metrics"][2]["proposedReplicas"], 5, "{stdout}");
    assert_eq!(v["metrics"][3]["current"], "153%", "{stdout}");
    assert_eq!(v["metrics"][3]["proposedReplicas"], 5, "{stdout}");
    assert_eq!(v["desiredReplicas"], 6, "{stdout}");

    // A container the metrics do not list fails the metric as the controller reports it.
    let hpa_sidecar = write(
        "hpa-sidecar.yaml",
        &HPA_CPU.replace("container: app", "container: proxy"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "-o", "json", "--replicas", "3", "-f"])
        .arg(&hpa_sidecar)
        .args(&backend_args)
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["metrics"][3]["current"], "<unknown>", "{stdout}");
    let err = v["metrics"][3]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("container proxy not present in metrics for pod shop/"),
        "{err}"
    );

    // Without the CA, the fetch fails and says why, as the HPA would show it.
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "-o", "json", "--replicas", "3", "-f"])
        .arg(&hpa)
        .args(
            backend_args
                .iter()
                .filter(|a| !a.starts_with("--prometheus-ca-file")),
        )
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["metrics"][0]["current"], "<unknown>", "{stdout}");
    assert_eq!(v["desiredReplicas"], 3, "{stdout}");

    // simulate over the scraped span: the metric is the selected pods' average, 6.
    let from = (first_ms / 1000 + 1).to_string();
    let to = (now_ms() / 1000 - 1).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["simulate", "--step", "1s", "--from", &from, "--to", &to])
        .args(["--replicas", "3", "-f"])
        .arg(&hpa)
        .args(&backend_args)
        .output()
        .expect("run simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (metric, actual) = (col("metric"), col("actual_replicas"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 3, "{stdout}");
    for r in &rows {
        assert_eq!(r[metric], "6", "{stdout}");
        assert_eq!(r[actual], "3", "{stdout}");
    }
}
