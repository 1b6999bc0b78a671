//! MetricRule objects served beside the rule file: each in its own namespace only, never
//! over a metric of the file.
#![allow(clippy::unwrap_used)]

mod common;
use common::get;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::{router, AppState, Registry, StaticObjects};
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::objects::parse_metric_rules;
use promhpa_rules::RuleSet;

const OBJECTS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: team-a}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: team-b}}
"#;

const FILE: &str = r#"rules:
- seriesQuery: 'jobs{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const RULE_OBJECTS: &str = r#"
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: requests, namespace: team-a}
spec:
  seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_total$', as: '${1}_per_second'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 10'
---
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: jobs-too, namespace: team-a}
spec:
  seriesQuery: 'jobs{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 1000'
---
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: queue, namespace: team-b}
spec:
  api: external
  seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
---
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: broken, namespace: team-b}
spec:
  seriesQuery: 'jobs{namespace!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>)'
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn rule_objects_serve_their_namespace_only_and_never_over_the_file() {
    let backend = Arc::new(EmbeddedBackend::default());
    for (name, ns, v) in [
        ("jobs", "team-a", 1.0),
        ("jobs", "team-b", 2.0),
        ("http_requests_total", "team-a", 3.0),
        ("http_requests_total", "team-b", 4.0),
        ("queue_depth", "team-a", 5.0),
        ("queue_depth", "team-b", 6.0),
    ] {
        backend
            .append(
                &Labels::from_pairs([("__name__", name), ("namespace", ns), ("pod", "web-1")]),
                now_ms() - 1000,
                v,
            )
            .unwrap();
    }
    let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let registry = Arc::new(Registry::new(
        Arc::new(RuleSet::from_yaml(FILE, "rules.yaml").unwrap()),
        backend.clone(),
        lookup.clone(),
        metrics.clone(),
        Duration::from_secs(600),
    ));
    assert!(registry.relist().await.is_empty());
    let objects = parse_metric_rules(RULE_OBJECTS, "objects").unwrap();
    assert!(objects[3].rule.is_err());
    registry.set_objects(&objects).await;
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics,
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    let value = |path: String| {
        let app = app.clone();
        async move {
            let (code, body) = get(&app, &path).await;
            (
                code,
                body["items"][0]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let custom = |ns: &str, metric: &str| {
        format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/web-1/{metric}")
    };

    // team-a's rule answers in team-a, with team-a's series only
    assert_eq!(
        value(custom("team-a", "http_requests_per_second")).await,
        (StatusCode::OK, "30".into())
    );
    // and nowhere else
    assert_eq!(
        value(custom("team-b", "http_requests_per_second")).await.0,
        StatusCode::NOT_FOUND
    );
    // the file's rule keeps its metric in every namespace, whatever an object says
    assert_eq!(
        value(custom("team-a", "jobs")).await,
        (StatusCode::OK, "1".into())
    );
    assert_eq!(
        value(custom("team-b", "jobs")).await,
        (StatusCode::OK, "2".into())
    );
    // team-b's external rule, in team-b only
    let external =
        |ns: &str| format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/queue_depth");
    assert_eq!(
        value(external("team-b")).await,
        (StatusCode::OK, "6".into())
    );
    assert_eq!(value(external("team-a")).await.0, StatusCode::NOT_FOUND);

    // what each object serves, for its status
    let reports = registry.object_reports();
    assert_eq!(
        reports["team-a/requests"].metrics,
        vec!["pods/http_requests_per_second".to_string()]
    );
    assert!(reports["team-a/jobs-too"].metrics.is_empty());
    assert_eq!(
        reports["team-a/jobs-too"].shadowed,
        vec!["pods/jobs".to_string()]
    );
    assert_eq!(
        reports["team-b/queue"].metrics,
        vec!["queue_depth".to_string()]
    );
    assert!(!reports.contains_key("team-b/broken"));

    // a relist keeps them; removing an object removes its metrics
    assert!(registry.relist().await.is_empty());
    assert_eq!(
        value(custom("team-a", "http_requests_per_second")).await.0,
        StatusCode::OK
    );
    registry.set_objects(&objects[2..]).await;
    assert_eq!(
        value(custom("team-a", "http_requests_per_second")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        value(external("team-b")).await,
        (StatusCode::OK, "6".into())
    );
}

/// Status writes, recorded.
#[derive(Default)]
struct Recorded {
    writes: std::sync::Mutex<Vec<(String, String, serde_json::Value)>>,
}

impl promhpa_apiserver::rule_objects::StatusWriter for Recorded {
    fn write_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        status: &'a serde_json::Value,
    ) -> promhpa_core::backend::BoxFuture<
        'a,
        Result<(), promhpa_apiserver::rule_objects::StatusWriteError>,
    > {
        Box::pin(async move {
            self.writes.lock().unwrap().push((
                namespace.to_string(),
                name.to_string(),
                status.clone(),
            ));
            Ok(())
        })
    }
}

fn as_json_items(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n")
        .map(|doc| promhpa_core::yaml::from_str(doc).unwrap())
        .collect()
}

#[tokio::test]
async fn status_follows_the_objects_created_updated_made_invalid_and_deleted() {
    let backend = Arc::new(EmbeddedBackend::default());
    for (name, ns) in [
        ("http_requests_total", "team-a"),
        ("jobs", "team-a"),
        ("queue_depth", "team-b"),
    ] {
        backend
            .append(
                &Labels::from_pairs([("__name__", name), ("namespace", ns), ("pod", "web-1")]),
                now_ms() - 1000,
                3.0,
            )
            .unwrap();
    }
    let registry = Arc::new(Registry::new(
        Arc::new(RuleSet::from_yaml(FILE, "rules.yaml").unwrap()),
        backend,
        Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap()),
        Arc::new(SelfMetrics::default()),
        Duration::from_secs(600),
    ));
    registry.relist().await;
    let writer = Arc::new(Recorded::default());
    let mut controller =
        promhpa_apiserver::rule_objects::RuleObjects::new(registry.clone(), writer.clone());
    let items = as_json_items(RULE_OBJECTS);
    let last = |ns: &str, name: &str| {
        writer
            .writes
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(n, o, _)| n == ns && o == name)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_default()
    };

    // created
    controller.update(&items).await;
    let s = last("team-a", "requests");
    assert_eq!(s["conditions"][0]["type"], "Ready");
    assert_eq!(s["conditions"][0]["status"], "True", "{s}");
    assert_eq!(s["metricNames"], "pods/http_requests_per_second", "{s}");
    let s = last("team-a", "jobs-too");
    assert!(
        s["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not serving pods/jobs"),
        "{s}"
    );
    let s = last("team-b", "broken");
    assert_eq!(s["conditions"][0]["status"], "False", "{s}");
    assert_eq!(s["conditions"][0]["reason"], "Invalid");
    assert!(
        s["conditions"][0]["message"].as_str().unwrap().contains(
            "spec.metricsQuery: MetricRule team-b/broken serves namespace \"team-b\" only"
        ),
        "{s}"
    );
    // nothing changed: nothing written
    let writes = writer.writes.lock().unwrap().len();
    controller.write_statuses().await;
    assert_eq!(writer.writes.lock().unwrap().len(), writes);

    // updated to be invalid: its metric is no longer served, the others are untouched
    let mut changed = items.clone();
    changed[0]["spec"]["metricsQuery"] = serde_json::json!("sum(<<.Series>>)");
    changed[0]["metadata"]["generation"] = serde_json::json!(2);
    controller.update(&changed).await;
    let s = last("team-a", "requests");
    assert_eq!(s["conditions"][0]["status"], "False", "{s}");
    assert_eq!(s["observedGeneration"], 2);
    assert!(!registry.object_reports().contains_key("team-a/requests"));
    assert_eq!(
        registry.object_reports()["team-b/queue"].metrics,
        vec!["queue_depth"]
    );

    // deleted
    controller.update(&changed[1..]).await;
    assert!(registry.snapshot().namespaces["team-a"]
        .custom_objects
        .iter()
        .all(|n| n != "requests"));
}
