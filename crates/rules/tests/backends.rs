//! The rule file's `backends` section and rules naming a backend.

use promhpa_rules::RuleSet;

const RULE: &str = r#"
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;

fn load(text: &str) -> Result<RuleSet, String> {
    RuleSet::from_yaml(text, "config.yaml").map_err(|e| e.to_string())
}

fn refused(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn backends_are_read_with_every_setting() {
    let set = load(
        r#"
backends:
- name: mimir-team-a
  url: https://mimir.monitoring.svc/prometheus/
  caFile: /etc/ca.crt
  headers:
    X-Scope-OrgID: team-a
- name: thanos
  url: https://thanos:10902
  certFile: /etc/tls.crt
  keyFile: /etc/tls.key
  tlsServerName: thanos.monitoring.svc
  bearerTokenFile: /var/run/token
  queryParameters:
    dedup: "true"
    partial_response: "false"
- name: vm
  url: http://vm:8428
  basicAuth: {username: promhpa, passwordFile: /etc/vm-password}
rules:
- seriesQuery: 'a{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  backend: thanos
- seriesQuery: 'b{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  backend: default
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  backend: mimir-team-a
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.backends.len(), 3);
    let mimir = &set.backends[0];
    assert_eq!(mimir.name, "mimir-team-a");
    assert_eq!(mimir.url, "https://mimir.monitoring.svc/prometheus");
    assert_eq!(
        mimir.headers,
        vec![("X-Scope-OrgID".to_string(), "team-a".to_string())]
    );
    assert_eq!(mimir.ca_file.as_deref(), Some("/etc/ca.crt"));
    let thanos = &set.backends[1];
    assert_eq!(
        thanos.query_parameters,
        vec![
            ("dedup".to_string(), "true".to_string()),
            ("partial_response".to_string(), "false".to_string())
        ]
    );
    assert_eq!(thanos.cert_file.as_deref(), Some("/etc/tls.crt"));
    assert_eq!(thanos.key_file.as_deref(), Some("/etc/tls.key"));
    assert_eq!(
        thanos.tls_server_name.as_deref(),
        Some("thanos.monitoring.svc")
    );
    assert_eq!(thanos.bearer_token_file.as_deref(), Some("/var/run/token"));
    assert_eq!(
        set.backends[2].basic_auth,
        Some(("promhpa".to_string(), "/etc/vm-password".to_string()))
    );
    assert_eq!(set.custom[0].backend(), Some("thanos"));
    assert_eq!(
        set.custom[1].backend(),
        None,
        "`default` is the flags' backend"
    );
    assert_eq!(set.external[0].backend(), Some("mimir-team-a"));
    // Moving an entry keeps its connection.
    let mut moved = thanos.clone();
    moved.line += 3;
    assert!(thanos.same_connection(&moved));
    assert!(!thanos.same_connection(mimir));
}

#[test]
fn a_rule_naming_an_undefined_backend_refuses_the_file() {
    let e = refused(&format!(
        "backends:\n- name: thanos\n  url: https://thanos:10902\nrules:{RULE}  backend: thanso\n"
    ));
    assert!(
        e.contains("rules[0].backend")
            && e.contains("backend \"thanso\" is not defined")
            && e.contains("did you mean \"thanos\""),
        "{e}"
    );
    let e = refused(&format!("rules:{RULE}  backend: thanos\n"));
    assert!(e.contains("has no `backends` section"), "{e}");
}

#[test]
fn bad_backends_are_refused_with_their_line() {
    for (text, wants) in [
        ("- url: https://x", "every backend needs a name"),
        ("- name: default\n  url: https://x", "\"default\" is the backend the command-line flags describe"),
        ("- name: Thanos\n  url: https://x", "is not a valid name"),
        ("- name: a\n  url: https://x\n- name: a\n  url: https://y", "already used by the backend on line 2"),
        ("- name: a", "every backend needs a url"),
        ("- name: a\n  url: thanos:9090", "expected an absolute URL"),
        ("- name: a\n  url: https://x?dedup=true", "under `queryParameters`"),
        ("- name: a\n  url: https://x\n  queryParameters: {query: up}", "set by promhpa on each call"),
        ("- name: a\n  url: https://x\n  headers: {Authorization: Bearer x}", "credentials do not belong"),
        ("- name: a\n  url: https://x\n  headers: {\"X Org\": a}", "not a valid HTTP header name"),
        ("- name: a\n  url: https://x\n  certFile: /c", "certFile needs keyFile"),
        ("- name: a\n  url: http://x\n  caFile: /c", "applies to https URLs only"),
        ("- name: a\n  url: https://x\n  caFile: /c\n  insecureSkipTLSVerify: true", "exclude each other"),
        ("- name: a\n  url: https://x\n  bearerTokenFile: /t\n  basicAuth: {username: u, passwordFile: /p}", "exclude each other"),
        ("- name: a\n  url: https://x\n  basicAuth: {username: u}", "needs both username and passwordFile"),
        ("- name: a\n  url: https://x\n  tenant: a", "unknown field \"tenant\""),
    ] {
        let e = refused(&format!("backends:\n{text}\nrules:{RULE}"));
        assert!(e.contains(wants), "{text}\n=> {e}");
        assert!(e.contains("config.yaml:"), "{e}");
    }
}

#[test]
fn a_file_with_only_backends_has_no_rules() {
    let e = refused("backends:\n- name: a\n  url: https://x\n");
    assert!(e.contains("no rules"), "{e}");
}

#[test]
fn helm_values_rules_cannot_name_a_backend() {
    let e = refused(
        r#"
rules:
  default: false
  custom:
  - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
    resources: {template: "<<.Resource>>"}
    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    backend: thanos
"#,
    );
    assert!(e.contains("only rules of a rule file"), "{e}");
}
