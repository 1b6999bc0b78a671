//! deploy/overlays/monitoring: the alerts pass `promtool check rules` and their unit tests
//! (`promtool test rules`), the PrometheusRule carries exactly those alerts, the Grafana
//! dashboard is well formed with valid PromQL, and every promhpa metric the alerts and the
//! dashboard use is one a running promhpa exposes and the README lists.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{tempfile_dir, Kubectl, Promhpa};
use promhpa_test_support::TestPki;
use serde_json::Value;

fn overlay() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/overlays/monitoring")
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

fn yaml_file(path: &Path) -> Value {
    promhpa_core::yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn alert_exprs() -> Vec<String> {
    yaml_file(&overlay().join("alerts.yaml"))["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(overlay().join("dashboard.json")).unwrap())
        .unwrap()
}

fn dashboard_exprs() -> Vec<String> {
    dashboard()["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

/// The `promhpa_*` names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("promhpa_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alerts_pass_promtool_and_their_unit_tests() {
    let dir = overlay();
    let check = promtool(&["check", "rules", "alerts.yaml"], &dir);
    assert!(check.contains("SUCCESS: 8 rules found"), "{check}");
    let test = promtool(&["test", "rules", "alerts_test.yaml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");
    // The PrometheusRule carries the same groups.
    let rule = yaml_file(&dir.join("prometheusrule.yaml"));
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"],
        yaml_file(&dir.join("alerts.yaml"))["groups"]
    );
}

#[test]
fn the_dashboard_is_well_formed_and_its_queries_parse() {
    let d = dashboard();
    assert_eq!(d["uid"], "promhpa");
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{p}");
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "duplicate id in {title}"
        );
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "{title}"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{title}"
        );
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            assert!(
                !t["expr"].as_str().unwrap_or_default().is_empty(),
                "{title}"
            );
        }
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "job", "pod"]);
    // Every query, with Grafana's variables filled in, is PromQL promtool accepts.
    let dir = tempfile_dir("dashboard-lint");
    let mut rules = String::from("groups:\n- name: dashboard\n  rules:\n");
    for (i, e) in dashboard_exprs().iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$job", "promhpa")
            .replace("$pod", ".*");
        rules.push_str(&format!(
            "  - record: dashboard:query{i}\n    expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    std::fs::write(dir.join("dashboard-rules.yaml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard-rules.yaml"], &dir);
}

#[test]
fn every_metric_used_is_exposed_and_documented() {
    let dir = tempfile_dir("monitoring");
    let pki = TestPki::generate("monitoring-ca", "monitoring").unwrap();
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
    let out = kubectl.raw("/metrics");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let typed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect();
    let exposed = |name: &str| {
        typed.iter().any(|(n, t)| {
            n == name
                || (t == "histogram"
                    && ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n.as_str())))
        })
    };
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let mut used = BTreeSet::new();
    for e in alert_exprs().iter().chain(&dashboard_exprs()) {
        used.extend(metric_names(e));
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(exposed(name), "{name} is not on /metrics:\n{text}");
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(readme.contains(base), "{base} is not listed in the README");
    }
}

#[test]
fn the_overlay_renders_the_scrape_and_its_authorization() {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(overlay())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<Value> = text.split("\n---\n").map(yaml_file_text).collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in\n{text}"))
            .clone()
    };
    let sm = find("ServiceMonitor", "promhpa");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "https");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let role = find("ClusterRole", "promhpa-self-metrics-reader");
    assert_eq!(role["rules"][0]["nonResourceURLs"][0], "/metrics");
    assert_eq!(role["rules"][0]["verbs"][0], "get");
    let binding = find("ClusterRoleBinding", "promhpa-self-metrics-reader");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    let dashboard = find("ConfigMap", "promhpa-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(dashboard["data"]["promhpa.json"]
        .as_str()
        .unwrap()
        .contains("\"uid\": \"promhpa\""));
    find("PrometheusRule", "promhpa");
}

fn yaml_file_text(text: &str) -> Value {
    promhpa_core::yaml::from_str(text).unwrap()
}
