//! `MetricRule` objects: compiled one by one, held to their namespace.
#![allow(clippy::unwrap_used)]

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::objects::parse_metric_rules;
use promhpa_rules::{RenderError, RuleKind};

const OBJECTS: &str = r#"
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: checkout-latency, namespace: team-a, generation: 3}
spec:
  seriesQuery: 'http_request_duration_seconds_bucket{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_seconds_bucket$', as: '${1}_p95'}
  metricsQuery: 'histogram_quantile(0.95, sum by (le, <<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[2m])))'
---
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: sneaky, namespace: team-a}
spec:
  seriesQuery: 'jobs{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{namespace="team-b"}) by (pod)'
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
metadata: {name: typo, namespace: team-b}
spec:
  seriesQuery: 'x{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricQuery: 'x'
"#;

#[test]
fn objects_compile_alone_and_stay_in_their_namespace() {
    let objects = parse_metric_rules(OBJECTS, "rules.yaml").unwrap();
    assert_eq!(objects.len(), 4);

    let latency = &objects[0];
    assert_eq!(latency.key(), "team-a/checkout-latency");
    assert_eq!(latency.generation, Some(3));
    let rule = latency.rule.as_ref().unwrap();
    assert_eq!(rule.kind(), RuleKind::Custom);
    assert_eq!(rule.pinned_namespace(), Some("team-a"));
    assert_eq!(rule.path(), "MetricRule team-a/checkout-latency");
    assert_eq!(
        rule.discovery_query(),
        r#"http_request_duration_seconds_bucket{namespace!="",pod!="",namespace="team-a"}"#
    );
    let pods = GroupResource::new("", "pods");
    let q = rule
        .render_custom(
            "http_request_duration_seconds_bucket",
            Some("team-a"),
            &pods,
            &["web-1".to_string()],
            &LabelSelector::everything(),
        )
        .unwrap();
    assert_eq!(
        q,
        r#"histogram_quantile(0.95, sum by (le, pod) (rate(http_request_duration_seconds_bucket{namespace="team-a",pod="web-1"}[2m])))"#
    );
    // another namespace is refused, whatever asks
    let err = rule
        .render_custom(
            "http_request_duration_seconds_bucket",
            Some("team-b"),
            &pods,
            &["web-1".to_string()],
            &LabelSelector::everything(),
        )
        .unwrap_err();
    assert!(matches!(err, RenderError::Isolation { .. }), "{err}");
    assert!(err.to_string().contains("serves namespace \"team-a\" only"));

    // a template that names another namespace is invalid, with the field and the reason
    let sneaky = objects[1].rule.as_ref().unwrap_err();
    assert_eq!(sneaky[0].path, "spec.metricsQuery");
    assert!(
        sneaky[0]
            .message
            .contains("must carry the namespace matcher namespace=\"team-a\""),
        "{}",
        sneaky[0].message
    );

    let queue = objects[2].rule.as_ref().unwrap();
    assert_eq!(queue.kind(), RuleKind::External);
    assert_eq!(
        queue
            .render_external("queue_depth", Some("team-b"), &LabelSelector::everything())
            .unwrap(),
        r#"max(queue_depth{namespace="team-b"})"#
    );
    assert!(queue
        .render_external("queue_depth", None, &LabelSelector::everything())
        .is_err());

    // one invalid object does not affect the others
    let typo = objects[3].rule.as_ref().unwrap_err();
    assert!(
        typo.iter()
            .any(|e| e.path == "spec.metricQuery"
                && e.message.contains("did you mean \"metricsQuery\"")),
        "{typo:?}"
    );
}

#[test]
fn objects_need_a_namespace_and_a_namespace_label() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: metrics.promhpa.io/v1alpha1
  kind: MetricRule
  metadata: {name: no-ns}
  spec: {seriesQuery: 'x{pod!=""}', resources: {template: '<<.Resource>>'}, metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'}
- apiVersion: metrics.promhpa.io/v1alpha1
  kind: MetricRule
  metadata: {name: no-label, namespace: team-a}
  spec: {seriesQuery: 'x{pod!=""}', resources: {overrides: {pod: {resource: pod}}}, metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'}
"#;
    let objects = parse_metric_rules(text, "list.json").unwrap();
    assert_eq!(
        objects[0].rule.as_ref().unwrap_err()[0].path,
        "metadata.namespace"
    );
    let e = &objects[1].rule.as_ref().unwrap_err()[0];
    assert_eq!(e.path, "spec.resources");
    assert!(
        e.message.contains("no label is mapped to namespaces"),
        "{e}"
    );
    // other kinds are errors of the file
    assert!(parse_metric_rules(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        "x"
    )
    .is_err());
}
