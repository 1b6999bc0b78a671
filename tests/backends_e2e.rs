//! End to end: one promhpa reading from three backends at once, each over HTTPS with a CA
//! file: a real Prometheus (the flags' default backend), a real VictoriaMetrics, and the
//! same Prometheus behind a gateway that, like Mimir's or Cortex's, answers only requests of
//! its tenant (`X-Scope-OrgID`), with Thanos-style query parameters on every call.
#![allow(clippy::unwrap_used)]

mod common;
use common::gate::GateProxy;
use common::{serve_args, tempfile_dir, Kubectl, Promhpa};

use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki, VictoriaMetrics};

fn external(metric: &str) -> String {
    format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{metric}")
}

/// The metric's value once it is served (the backends need a scrape or two first).
fn value_when_served(kubectl: &Kubectl, server: &Promhpa, metric: &str) -> String {
    let answer = kubectl.wait_first_item(server, &external(metric));
    match answer["items"][0]["value"].as_str() {
        Some(value) => value.to_string(),
        None => panic!("{metric}: no value in {answer}"),
    }
}

#[test]
fn rules_read_from_prometheus_victoria_metrics_and_a_tenant_gateway_at_once() {
    let dir = tempfile_dir("backends");
    let pki = TestPki::generate("backends-ca", "promhpa").unwrap();
    let for_prometheus = ScrapeTarget::start("queue_depth{queue=\"orders\"} 4\n").unwrap();
    let for_vm = ScrapeTarget::start("jobs_waiting{queue=\"orders\"} 9\n").unwrap();
    let prom = Prometheus::start_https(&pki, &[for_prometheus.port]).unwrap();
    let vm = VictoriaMetrics::start_https(&pki, &[for_vm.port]).unwrap();
    let gateway = GateProxy::start(&pki, prom.url(), "X-Scope-OrgID", "team-a");
    let ca = pki.ca_cert.display().to_string();
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            r#"
backends:
- name: vm
  url: {vm}
  caFile: {ca}
- name: mimir-team-a
  url: {gateway}
  caFile: {ca}
  headers:
    X-Scope-OrgID: team-a
  queryParameters:
    dedup: "true"
    partial_response: "false"
externalRules:
- seriesQuery: 'queue_depth{{queue!=""}}'
  resources: {{namespaced: false}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
- seriesQuery: 'jobs_waiting{{queue!=""}}'
  resources: {{namespaced: false}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
  backend: vm
- seriesQuery: 'queue_depth{{queue!=""}}'
  resources: {{namespaced: false}}
  name: {{matches: "^queue_depth$", as: "tenant_queue_depth"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) * 10'
  backend: mimir-team-a
"#,
            vm = vm.url(),
            gateway = gateway.url(),
        ),
    )
    .unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, "[]\n").unwrap();

    // `check` names each backend and the rules that use one.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["check", &format!("--config={}", rules.display())])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("backend vm: {}", vm.url()))
            && printed.contains("backend mimir-team-a:")
            && printed.contains("header X-Scope-OrgID, dedup=true, partial_response=false")
            && printed.contains("  backend:    vm"),
        "{printed}"
    );

    let mut args = serve_args(&pki, &prom.url(), &rules, &objects);
    args.push("--metrics-relist-interval=2s".into());
    let server = Promhpa::start(&args, &dir);
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);

    // Each metric comes from its rule's backend: jobs_waiting only exists in VictoriaMetrics,
    // tenant_queue_depth only through the gateway.
    assert_eq!(value_when_served(&kubectl, &server, "queue_depth"), "4");
    assert_eq!(value_when_served(&kubectl, &server, "jobs_waiting"), "9");
    assert_eq!(
        value_when_served(&kubectl, &server, "tenant_queue_depth"),
        "40"
    );

    // Every call to the gateway carried the tenant and the query parameters: discovery
    // (/api/v1/series) and queries (/api/v1/query).
    let calls = gateway.requests();
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(call.value, "team-a", "{call:?}");
        assert!(
            call.target.contains("dedup=true") && call.target.contains("partial_response=false"),
            "{call:?}"
        );
    }
    assert!(calls.iter().any(|c| c.target.starts_with("/api/v1/series")));
    assert!(calls.iter().any(|c| c.target.starts_with("/api/v1/query")));

    // The gateway turns the tenant away: that rule's requests fail with a Status naming the
    // gateway, the others are served.
    gateway.expect("team-b");
    let err = kubectl.error(&external("tenant_queue_depth"));
    assert!(
        err.contains(&gateway.url()) && err.contains("401"),
        "{err}\n{}",
        server.log()
    );
    assert_eq!(value_when_served(&kubectl, &server, "jobs_waiting"), "9");
    gateway.expect("team-a");
    assert_eq!(
        value_when_served(&kubectl, &server, "tenant_queue_depth"),
        "40"
    );

    // The debug view says which backend each rule reads from.
    let debug = kubectl.json("/debug/promhpa/rules");
    let backends: Vec<&str> = debug["externalRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["backend"].as_str().unwrap())
        .collect();
    assert_eq!(
        backends,
        vec![
            format!("default ({})", prom.url()),
            format!("vm ({})", vm.url()),
            format!("mimir-team-a ({})", gateway.url()),
        ],
        "{debug}"
    );
    drop(vm);
}
