//! The request path without IO: render a rule's `metricsQuery` for 100 pods, map 100
//! samples to objects and encode the `MetricValueList` (v1beta1 and v1beta2) as JSON; and
//! what counting one request in the generic API server's request metrics costs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::http::Method;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use promhpa_apiserver::apiserver_metrics::{Counted, RequestLine};
use promhpa_apiserver::types::*;
use promhpa_core::quantity::Quantity;
use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::RuleSet;

const RULES: &str = r#"
rules:
- seriesQuery: 'http_request_duration_seconds_bucket{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name:
    matches: "^(.*)_seconds_bucket$"
    as: "${1}_p95"
  metricsQuery: 'histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (le, <<.GroupBy>>))'
"#;

fn bench(c: &mut Criterion) {
    let rules = RuleSet::from_yaml(RULES, "bench").unwrap();
    let rule = &rules.custom[0];
    let pods = GroupResource::new("", "pods");
    let names: Vec<String> = (0..100).map(|i| format!("inference-{i:03}")).collect();
    let selector = LabelSelector::everything();
    c.bench_function("render_custom_100_pods", |b| {
        b.iter(|| {
            rule.render_custom(
                "http_request_duration_seconds_bucket",
                Some("default"),
                &pods,
                black_box(&names),
                &selector,
            )
            .unwrap()
        })
    });
    let described = |n| ObjectReference {
        kind: "Pod",
        namespace: "default",
        name: n,
        api_version: "v1",
    };
    c.bench_function("encode_v1beta1_100_items", |b| {
        b.iter(|| {
            let items: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, n)| MetricValueV1Beta1 {
                    described_object: described(n),
                    metric_name: "http_request_duration_p95",
                    timestamp: rfc3339(1_700_000_000_000 + i as i64).into(),
                    window: Some(60),
                    value: Quantity::from_f64_milli(0.123 * i as f64).unwrap(),
                    selector: None,
                })
                .collect();
            serde_json::to_vec(&MetricValueList {
                kind: "MetricValueList",
                api_version: "custom.metrics.k8s.io/v1beta1".into(),
                metadata: ListMeta {},
                items,
            })
            .unwrap()
        })
    });
    c.bench_function("encode_v1beta2_100_items", |b| {
        b.iter(|| {
            let items: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, n)| MetricValueV1Beta2 {
                    described_object: described(n),
                    metric: MetricIdentifier {
                        name: "http_request_duration_p95",
                        selector: None,
                    },
                    timestamp: rfc3339(1_700_000_000_000 + i as i64).into(),
                    window_seconds: Some(60),
                    value: Quantity::from_f64_milli(0.123 * i as f64).unwrap(),
                })
                .collect();
            serde_json::to_vec(&MetricValueList {
                kind: "MetricValueList",
                api_version: "custom.metrics.k8s.io/v1beta2".into(),
                metadata: ListMeta {},
                items,
            })
            .unwrap()
        })
    });
    // What counting a value request in the generic API server's request metrics adds to
    // it: its query read for `watch` and `dryRun`, its route found from the segments its
    // handler decoded, and the count and duration recorded.
    let metrics = promhpa_apiserver::metrics::SelfMetrics::default();
    let segs = [
        "v1beta2",
        "namespaces",
        "shop",
        "pods",
        "*",
        "http_requests",
    ];
    c.bench_function("count_api_request", |b| {
        b.iter(|| {
            let line = RequestLine::of(&Method::GET, Some(black_box("labelSelector=app%3Dweb")));
            let counted = Counted::custom(black_box(&segs)).unwrap();
            metrics.observe_api_request(counted, line, 200, Some(Duration::from_micros(150)));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
