//! Rules reading from different backends: discovery and queries go to the rule's backend,
//! the same query sent to two backends is never shared or cached as one, and a reload
//! keeps the clients of unchanged `backends` entries.
#![allow(clippy::unwrap_used)]

mod common;
use common::get;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use promhpa_apiserver::backends::{BackendRef, Backends, Connect};
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::{router, AppState, Registry, StaticObjects};
use promhpa_core::backend::Backend;
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::{BackendSpec, RuleSet};

fn rules(second_url: &str) -> String {
    format!(
        r#"
backends:
- name: second
  url: {second_url}
  headers: {{X-Scope-OrgID: team-a}}
externalRules:
- seriesQuery: 'queue_depth{{queue!=""}}'
  resources: {{namespaced: false}}
  name: {{matches: "^queue_depth$", as: "main_queue_depth"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
- seriesQuery: 'queue_depth{{queue!=""}}'
  resources: {{namespaced: false}}
  name: {{matches: "^queue_depth$", as: "second_queue_depth"}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
  backend: second
- seriesQuery: '{{__name__=~"only_.*",queue!=""}}'
  resources: {{namespaced: false}}
  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}})'
  backend: second
"#
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn backend(text: &str) -> Arc<EmbeddedBackend> {
    let b = Arc::new(EmbeddedBackend::default());
    b.ingest_exposition(text, now_ms() - 1000, &Labels::empty())
        .unwrap();
    b
}

struct Setup {
    app: axum::Router,
    registry: Arc<Registry>,
    connects: Arc<Mutex<Vec<String>>>,
}

fn setup() -> Setup {
    let main = backend("queue_depth{queue=\"a\"} 5\n");
    let second = backend("queue_depth{queue=\"a\"} 7\nonly_second{queue=\"a\"} 11\n");
    let connects = Arc::new(Mutex::new(Vec::new()));
    let log = connects.clone();
    let connect: Connect = Arc::new(move |spec: &BackendSpec| {
        log.lock().unwrap().push(spec.url.clone());
        if spec.url.contains("unreachable") {
            return Err("no route to host".into());
        }
        Ok(second.clone() as Arc<dyn Backend>)
    });
    let rules = RuleSet::from_yaml(&rules("https://second:9090"), "rules.yaml").unwrap();
    let backends =
        Backends::build(BackendRef::new(main), &rules.backends, Some(&connect), None).unwrap();
    let lookup = Arc::new(StaticObjects::from_text("[]", "objects.yaml").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let registry = Arc::new(
        Registry::new(
            Arc::new(rules),
            backends,
            lookup.clone(),
            metrics.clone(),
            Duration::from_secs(600),
        )
        .with_connector(connect),
    );
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics,
        guard: None,
        coalescer: Arc::new(
            promhpa_apiserver::coalesce::Coalescer::default()
                .with_result_ttl(Duration::from_secs(60)),
        ),
        forward: None,
    });
    Setup {
        app,
        registry,
        connects,
    }
}

async fn value(app: &axum::Router, metric: &str) -> (StatusCode, serde_json::Value) {
    let (code, body) = get(
        app,
        &format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/x/{metric}"),
    )
    .await;
    (code, body)
}

#[tokio::test]
async fn each_rule_reads_its_own_backend() {
    let s = setup();
    s.registry.relist().await;
    let (_, list) = get(&s.app, "/apis/external.metrics.k8s.io/v1beta1").await;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"main_queue_depth"), "{list}");
    assert!(names.contains(&"second_queue_depth"), "{list}");
    assert!(
        names.contains(&"only_second"),
        "discovered through the second backend: {list}"
    );
    // The same PromQL, sent to two backends with a result cache on: two answers.
    let (code, main) = value(&s.app, "main_queue_depth").await;
    assert_eq!(code, StatusCode::OK, "{main}");
    assert_eq!(main["items"][0]["value"], "5", "{main}");
    let (code, second) = value(&s.app, "second_queue_depth").await;
    assert_eq!(code, StatusCode::OK, "{second}");
    assert_eq!(second["items"][0]["value"], "7", "{second}");
    let (_, only) = value(&s.app, "only_second").await;
    assert_eq!(only["items"][0]["value"], "11", "{only}");
    // The debug view says where each rule reads from.
    let (_, rules) = get(&s.app, "/debug/promhpa/rules").await;
    let ext = rules["externalRules"].as_array().unwrap();
    assert!(
        ext[0]["backend"].as_str().unwrap().starts_with("default ("),
        "{rules}"
    );
    assert!(
        ext[1]["backend"].as_str().unwrap().starts_with("second ("),
        "{rules}"
    );
    assert_eq!(rules["backends"].as_array().unwrap().len(), 2, "{rules}");
}

#[tokio::test]
async fn a_reload_reconnects_only_changed_backends() {
    let s = setup();
    s.registry.relist().await;
    assert_eq!(s.connects.lock().unwrap().len(), 1);
    // Same backends, rules moved around: the client is kept.
    let same =
        RuleSet::from_yaml(&format!("# moved\n{}", rules("https://second:9090")), "r").unwrap();
    s.registry.reload(same).await.unwrap();
    assert_eq!(s.connects.lock().unwrap().len(), 1);
    // A changed URL: a new client.
    let changed = RuleSet::from_yaml(&rules("https://second-2:9090"), "r").unwrap();
    s.registry.reload(changed).await.unwrap();
    assert_eq!(
        *s.connects.lock().unwrap(),
        vec!["https://second:9090", "https://second-2:9090"]
    );
    let (_, second) = value(&s.app, "second_queue_depth").await;
    assert_eq!(second["items"][0]["value"], "7", "{second}");
    // A backend that cannot be connected: the reload is refused, the running rules stay.
    let bad = RuleSet::from_yaml(&rules("https://unreachable:9090"), "r").unwrap();
    let err = s.registry.reload(bad).await.unwrap_err().to_string();
    assert!(
        err.contains("backend \"second\"") && err.contains("no route to host"),
        "{err}"
    );
    assert_eq!(
        s.registry
            .backends()
            .get(Some("second"))
            .unwrap()
            .client
            .address(),
        "embedded"
    );
    let (code, _) = value(&s.app, "second_queue_depth").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn without_a_connector_a_reload_cannot_add_backends() {
    let plain = RuleSet::from_yaml(
        "externalRules:\n- seriesQuery: 'queue_depth{queue!=\"\"}'\n  metricsQuery: 'sum(<<.Series>>)'\n",
        "r",
    )
    .unwrap();
    let registry = Registry::new(
        Arc::new(plain),
        backend("queue_depth{queue=\"a\"} 5\n"),
        Arc::new(StaticObjects::from_text("[]", "o").unwrap()),
        Arc::new(SelfMetrics::default()),
        Duration::from_secs(600),
    );
    let with_backends = RuleSet::from_yaml(&rules("https://second:9090"), "r").unwrap();
    let err = registry
        .reload(with_backends)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend \"second\""), "{err}");
}
