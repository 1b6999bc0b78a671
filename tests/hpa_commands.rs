//! `promhpa recommend`, `explain` and `simulate` end to end.

use std::path::PathBuf;
use std::process::Command;

use promhpa_test_support::fixtures::{cadvisor_cpu, php_apache_load_now, PHP_APACHE_HPA};

fn promhpa() -> Command {
    Command::new(env!("CARGO_BIN_EXE_promhpa"))
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

#[test]
fn recommend_check_passes_the_shared_hpa_suite() {
    let dir = promhpa_test_support::shared_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join("conformance/hpa");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("suite")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = promhpa()
        .arg("recommend")
        .arg("--check")
        .args(&files)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().expect("summary line");
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn recommend_check_reports_a_failing_case() {
    let f = tmp(
        "failing-case.yaml",
        "id: F1\nhpa: {minReplicas: 1, maxReplicas: 10, behavior: {}}\nscale: {spec: 1, status: 1}\nsteps:\n- {at: 0s, raw: 100, expect: {desiredReplicas: 4}}\n",
    );
    let out = promhpa()
        .args(["recommend", "--check"])
        .arg(&f)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("F1: at 0s: desiredReplicas: expected 4, got 5"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
    let json = promhpa().arg("recommend").arg(&f).output().expect("run");
    let line = String::from_utf8_lossy(&json.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("json line");
    assert_eq!(v["id"], "F1");
    assert_eq!(v["steps"][0]["desiredReplicas"], 5);
}

const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: shop}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 6\n  metrics:\n  - type: Pods\n    pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 10}}\n";

#[test]
fn explain_prints_text_and_json() {
    let f = tmp("explain-hpa.yaml", HPA);
    let out = promhpa()
        .args(["explain", "-f"])
        .arg(&f)
        .args(["--replicas", "3", "--metric-values", "rps=40", "-o", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["metrics"][0]["proposedReplicas"], 12);
    assert_eq!(v["desiredReplicas"], 6);
    // The published spelling still works, with a warning naming the new one.
    let old = promhpa()
        .args(["explain", "-f"])
        .arg(&f)
        .args(["--replicas", "3", "--values", "rps=40", "-o", "json"])
        .output()
        .expect("run");
    assert!(old.status.success());
    assert_eq!(old.stdout, out.stdout);
    let warning = String::from_utf8_lossy(&old.stderr);
    assert!(
        warning.contains("explain --values is deprecated: use --metric-values"),
        "{warning}"
    );
    let text = promhpa()
        .args(["explain", "-f"])
        .arg(&f)
        .args(["--replicas", "3"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\"rps\" on pods:  <unknown> / 10"), "{text}");
    let bad = promhpa()
        .args(["explain", "-f"])
        .arg(&f)
        .args(["--metric-values", "nope=1"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let twice = promhpa()
        .args(["explain", "-f"])
        .arg(&f)
        .args(["--metric-values", "rps=40,rps=90"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("names \"rps\" twice"));
    // `-f -` reads the manifest from standard input, as kubectl does.
    let mut piped = promhpa()
        .args([
            "explain",
            "-f",
            "-",
            "--replicas",
            "3",
            "--metric-values",
            "rps=40",
        ])
        .args(["-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().expect("stdin");
        stdin.write_all(HPA.as_bytes()).expect("write");
    }
    let piped = piped.wait_with_output().expect("run");
    assert_eq!(piped.stdout, out.stdout);
}

#[test]
fn simulate_writes_csv_and_svg_from_a_data_file() {
    let f = tmp("simulate-hpa.yaml", HPA);
    let mut data = String::from("timestamp,value\n");
    for i in 0..60 {
        let v = if i < 20 { 10 } else { 25 };
        data.push_str(&format!("{},{v}\n", 1_714_521_600 + i * 15));
    }
    let d = tmp("simulate-data.csv", &data);
    let svg = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("simulate.svg");
    let out = promhpa()
        .args(["simulate", "-f"])
        .arg(&f)
        .arg("--data")
        .arg(&d)
        .args(["--replicas", "2", "--step", "15s", "--svg"])
        .arg(&svg)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With --svg the table is written only when asked for.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let svg_text = std::fs::read_to_string(&svg).expect("svg");
    assert!(svg_text.contains(">replicas (pods)</text>"), "{svg_text}");
    assert!(svg_text.contains(">per pod</text>"), "{svg_text}");
    assert!(svg_text.contains("by rps"), "{svg_text}");
    let out = promhpa()
        .args(["simulate", "-f"])
        .arg(&f)
        .arg("--data")
        .arg(&d)
        .args(["--replicas", "2", "--step", "15s", "--csv", "-", "--svg"])
        .arg(&svg)
        .output()
        .expect("run");
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 61);
    // 25 per pod on 2 pods = 50 in total: 5 pods at the target of 10.
    assert!(
        csv.lines()
            .last()
            .expect("row")
            .starts_with("2024-05-01T00:14:45Z,2,5,25,"),
        "{csv}"
    );
    assert!(std::fs::read_to_string(svg).expect("svg").contains("<svg"));
    // One value column per metric, or nothing runs; backend flags have no use with --data.
    let two = tmp(
        "simulate-two.csv",
        "timestamp,rps,other,replicas\n1714521600,10,3,2\n",
    );
    let out = promhpa()
        .args(["simulate", "-f"])
        .arg(&f)
        .arg("--data")
        .arg(&two)
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("has 1 metric (rps), but the history has 2 value columns"),
        "{e}"
    );
    let out = promhpa()
        .args(["simulate", "-f"])
        .arg(&f)
        .arg("--data")
        .arg(&d)
        .args(["--replicas", "2", "--query", "up"])
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(e.contains("--query cannot be combined with --data"), "{e}");
}

const DEMO_HPA: &str = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests_in_flight}
      target: {type: AverageValue, averageValue: "5"}
  - type: Pods
    pods:
      metric: {name: no_such_metric}
      target: {type: AverageValue, averageValue: "5"}
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  - type: External
    external:
      metric: {name: inferno_desired_replicas, selector: {matchLabels: {variant_name: inference}}}
      target: {type: Value, value: "2"}
"#;

#[test]
fn explain_fetches_metrics_from_the_demo_backend() {
    let hpa = tmp("explain-demo-hpa.yaml", DEMO_HPA);
    let out = promhpa()
        .args(["explain", "-o", "json", "--demo", "--replicas", "3", "-f"])
        .arg(&hpa)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The demo Deployment's selector picks its three pods.
    assert!(
        stderr.contains("pods matching app=web, 3 found"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning:"), "{stderr}");
    // A Prometheus flag the demo leaves unused is named, as serve names it.
    let unused = promhpa()
        .args(["explain", "-o", "json", "--demo", "--replicas", "3"])
        .args(["--prometheus-url", "http://127.0.0.1:9", "-f"])
        .arg(&hpa)
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&unused.stderr).contains(
            "warning: --prometheus-url not used: --demo serves from the embedded evaluator"
        ),
        "{}",
        String::from_utf8_lossy(&unused.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let m = v["metrics"].as_array().expect("metrics");
    assert_eq!(m.len(), 4);
    // Fetched through the custom metrics API: a value and a proposal.
    assert_ne!(m[0]["current"], "<unknown>", "{stdout}");
    assert!(m[0]["proposedReplicas"].as_i64().is_some(), "{stdout}");
    // No rule: the API's 404, as the HPA would see it.
    assert_eq!(m[1]["current"], "<unknown>");
    assert_eq!(m[1]["errorReason"], "FailedGetPodsMetric");
    let err = m[1]["error"].as_str().expect("error");
    assert!(
        err.contains("no_such_metric") && err.contains("no rule"),
        "{err}"
    );
    assert!(m[1]["check"].as_str().is_some());
    // CPU from the demo's cAdvisor series against the pods' 100m requests.
    let cpu = m[2]["current"].as_str().expect("current");
    assert!(
        cpu.ends_with('%') && cpu.trim_end_matches('%').parse::<u32>().is_ok(),
        "{stdout}"
    );
    assert!(m[2]["proposedReplicas"].as_i64().is_some(), "{stdout}");
    // External: the external rule with the HPA's selector.
    assert_ne!(m[3]["current"], "<unknown>", "{stdout}");
    assert!(m[3]["proposedReplicas"].as_i64().is_some(), "{stdout}");
}

fn csv_rows(csv: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

#[test]
fn simulate_reads_history_from_the_demo_backend() {
    let hpa = tmp(
        "simulate-demo-hpa.yaml",
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests_in_flight}
      target: {type: AverageValue, averageValue: "1"}
"#,
    );
    // The demo backend holds the five minutes before it starts: replay most of them.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (from, to) = ((now - 240).to_string(), (now - 15).to_string());
    let out = promhpa()
        .args([
            "simulate", "--demo", "--step", "15s", "--from", &from, "--to", &to,
        ])
        .args([
            "--replicas-query",
            "count(http_requests_in_flight{namespace=\"default\",pod=~\"web-.*\"})",
            "-f",
        ])
        .arg(&hpa)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The query is the rule's, for the Deployment's pods, averaged.
    assert!(
        stderr.contains("history query: avg(") && stderr.contains("http_requests_in_flight{"),
        "{stderr}"
    );
    let rows = csv_rows(&stdout);
    assert_eq!(rows.len(), 16, "{stdout}");
    for r in &rows {
        // Three web pods in the demo produced the history.
        assert_eq!(r["actual_replicas"], "3", "{stdout}");
        let sim: i32 = r["simulated_replicas"].parse().expect("replicas");
        assert!((1..=10).contains(&sim), "{stdout}");
        assert_eq!(r["target"], "1");
        let m: f64 = r["metric"].parse().expect("metric value");
        assert!(m >= 0.0, "{stdout}");
    }
}

#[test]
fn simulate_from_a_backend_needs_the_replica_count() {
    let hpa = tmp("simulate-norep-hpa.yaml", DEMO_HPA);
    let out = promhpa()
        .args(["simulate", "--demo", "--from", "0", "--to", "60", "-f"])
        .arg(&hpa)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--replicas-query"), "{stderr}");
}

// The walkthrough's Deployment of seed 002: one pod requesting 200m.
const PHP_APACHE_OBJECTS: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: php-apache, namespace: default}
  spec:
    replicas: 1
    selector: {matchLabels: {run: php-apache}}
- apiVersion: v1
  kind: Pod
  metadata:
    name: php-apache-5d54745f55-kx9mg
    namespace: default
    labels: {run: php-apache, pod-template-hash: 5d54745f55}
  spec:
    containers:
    - name: php-apache
      image: registry.k8s.io/hpa-example
      resources:
        limits: {cpu: 500m}
        requests: {cpu: 200m}
  status:
    phase: Running
    startTime: "2026-01-01T00:00:00Z"
    conditions:
    - {type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:00:05Z"}
"#;

fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn explain_computes_cpu_utilization_from_cadvisor_and_requests() {
    // cAdvisor's counter for the pod, growing 0.6101 CPU-seconds per second over the last
    // five minutes (the load generator of seed 002): 610m of a 200m request is 305%.
    let expo = php_apache_load_now();
    let expo = tmp("php-apache-cadvisor.prom", &expo);
    let hpa = tmp("php-apache-hpa.yaml", PHP_APACHE_HPA);
    let objects = tmp("php-apache-objects.yaml", PHP_APACHE_OBJECTS);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules/resource-metrics.yaml");
    let out = promhpa()
        .arg("explain")
        .arg("-f")
        .arg(&hpa)
        .arg("--config")
        .arg(&rules)
        .arg("--objects")
        .arg(&objects)
        .arg("--load-exposition")
        .arg(&expo)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("current replicas: 1 (spec.replicas of the scale target"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pods matching run=php-apache, 1 found"),
        "{stderr}"
    );
    // 305% against 50%: ceil(6.1 x 1) = 7, held to 4 by the legacy scale-up limit.
    golden("explain-php-apache.txt", &stdout);

    // The pod without its request: the metric fails as the controller reports it.
    let no_request = tmp(
        "php-apache-objects-norequest.yaml",
        &PHP_APACHE_OBJECTS.replace("requests: {cpu: 200m}", "requests: {memory: 64Mi}"),
    );
    let out = promhpa()
        .args(["explain", "-o", "json", "-f"])
        .arg(&hpa)
        .arg("--config")
        .arg(&rules)
        .arg("--objects")
        .arg(&no_request)
        .arg("--load-exposition")
        .arg(&expo)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["metrics"][0]["current"], "<unknown>", "{stdout}");
    let err = v["metrics"][0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains(
            "missing request for cpu in container php-apache of Pod php-apache-5d54745f55-kx9mg"
        ),
        "{err}"
    );
    assert_eq!(v["desiredReplicas"], 1, "{stdout}");
}

#[test]
fn simulate_replays_resource_utilization_from_loaded_cadvisor_data() {
    // Ten minutes of cAdvisor counters for one pod: the app container uses 300m, its
    // sidecar 50m; they request 200m and 50m.
    let t0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let expo = cadvisor_cpu(
        "php-apache-5d54745f55-kx9mg",
        &[("php-apache", 0.3), ("proxy", 0.05)],
        t0,
        41,
    );
    let expo = tmp("simulate-cadvisor.prom", &expo);
    let objects = tmp(
        "simulate-objects.yaml",
        &PHP_APACHE_OBJECTS.replace(
            "        requests: {cpu: 200m}\n",
            "        requests: {cpu: 200m}\n    - name: proxy\n      resources:\n        requests: {cpu: 50m}\n",
        ),
    );
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules/resource-metrics.yaml");
    let container_hpa = PHP_APACHE_HPA.replace(
        "  - type: Resource\n    resource: {name: cpu,",
        "  - type: ContainerResource\n    containerResource: {name: cpu, container: php-apache,",
    );
    let simulate = |name: &str, hpa_text: &str| {
        let hpa = tmp(name, hpa_text);
        let out = promhpa()
            .args(["simulate", "--step", "30s", "--replicas", "1"])
            .args([
                "--from",
                "2026-01-01T00:04:00Z",
                "--to",
                "2026-01-01T00:09:00Z",
            ])
            .arg("-f")
            .arg(&hpa)
            .arg("--config")
            .arg(&rules)
            .arg("--objects")
            .arg(&objects)
            .arg("--load-exposition")
            .arg(&expo)
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stdout}{stderr}");
        (csv_rows(&stdout), stderr)
    };
    // The pod's usage over its request: 350m of 250m.
    let (rows, stderr) = simulate("simulate-resource-hpa.yaml", PHP_APACHE_HPA);
    assert!(
        stderr.contains("history query: 100 * avg(sum by (pod) ("),
        "{stderr}"
    );
    assert_eq!(rows.len(), 11);
    for r in &rows {
        let m: f64 = r["metric"].parse().expect("metric");
        assert!((m - 140.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r["target"], "50");
    }
    // The app container alone: 300m of 200m.
    let (rows, _) = simulate("simulate-container-hpa.yaml", &container_hpa);
    for r in &rows {
        let m: f64 = r["metric"].parse().expect("metric");
        assert!((m - 150.0).abs() < 1e-6, "{r:?}");
    }
    // 150% against 50% on one pod asks for 3 at once; the same demand on 3 pods is 50%,
    // on target, so it stays there.
    for r in &rows {
        assert_eq!(r["simulated_replicas"], "3", "{rows:?}");
    }
}

/// A CI gate over files with nothing in them fails: nothing was checked.
#[test]
fn checks_over_empty_files_fail() {
    let empty = tmp("empty-cases.yaml", "# no cases yet\n");
    let out = promhpa()
        .args(["recommend", "--check"])
        .arg(&empty)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cases found"));
    let out = promhpa()
        .args(["promql", "--test"])
        .arg(&empty)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no eval commands found"));
    // Without --check, a case that cannot be run fails the command too.
    let bad = tmp("bad-case.yaml", "id: x\nfoo: [1]\n");
    let out = promhpa().arg("recommend").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `foo`"));
}
