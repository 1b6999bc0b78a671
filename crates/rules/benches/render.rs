//! Rendering cost per request: the part of promhpa's overhead that the rule engine owns.
//!
//! `cargo bench -p promhpa-rules --bench render`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::RuleSet;

const RULES: &str = r#"rules:
- seriesQuery: 'http_request_duration_seconds_bucket{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_bucket$", as: "${1}_p95"}
  metricsQuery: 'histogram_quantile(0.95, sum by (le, <<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[1m])))'
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

fn bench(c: &mut Criterion) {
    let set = RuleSet::from_yaml(RULES, "bench.yaml").expect("bench rules load");
    let custom = &set.custom[0];
    let external = &set.external[0];
    let pods = GroupResource::new("", "pods");
    let names: Vec<String> = (0..100)
        .map(|i| format!("inference-7d9f8c6b5-{i:05}"))
        .collect();
    let selector: LabelSelector = "endpoint=predict,method in (GET,POST)"
        .parse()
        .expect("selector parses");

    c.bench_function("render_custom 100 pods", |b| {
        b.iter(|| {
            custom
                .render_custom(
                    black_box("http_request_duration_seconds_bucket"),
                    Some("ml"),
                    &pods,
                    black_box(&names),
                    &selector,
                )
                .expect("renders")
        })
    });
    c.bench_function("render_external", |b| {
        b.iter(|| {
            external
                .render_external(black_box("queue_depth"), Some("ml"), &selector)
                .expect("renders")
        })
    });
    c.bench_function("metric_name_for", |b| {
        b.iter(|| custom.metric_name_for(black_box("http_request_duration_seconds_bucket")))
    });
    c.bench_function("load rule file", |b| {
        b.iter(|| RuleSet::from_yaml(black_box(RULES), "bench.yaml").expect("loads"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
