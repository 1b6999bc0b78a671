//! Loading the three file shapes and reporting every problem with its path and line.
#![allow(clippy::unwrap_used)]

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::{ConfigError, FileShape, RuleKind, RuleSet};

fn errors(text: &str) -> Vec<ConfigError> {
    match RuleSet::from_yaml(text, "test.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors,
    }
}

fn find<'a>(errs: &'a [ConfigError], path: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}: {errs:#?}"))
}

const ADAPTER: &str = r#"rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources:
    namespaced: false
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>, id="/"}[3m])) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id="/"}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 3m
"#;

#[test]
fn adapter_config_loads_all_sections() {
    let set = RuleSet::from_yaml(ADAPTER, "a.yaml").unwrap();
    assert_eq!(set.shape, FileShape::AdapterConfig);
    assert_eq!(set.custom.len(), 1);
    assert_eq!(set.external.len(), 1);
    assert_eq!(set.custom[0].path(), "rules[0]");
    assert_eq!(set.custom[0].line(), 2);
    assert_eq!(set.external[0].path(), "externalRules[0]");
    assert_eq!(set.external[0].kind(), RuleKind::External);
    assert!(!set.external[0].namespaced());
    assert!(set.custom[0].namespaced());
    let res = set.resource.as_ref().unwrap();
    assert_eq!(res.window_ms, Some(180_000));
    assert_eq!(
        res.cpu
            .render_container_query("shop", &["web-1".into(), "web-2".into()])
            .unwrap(),
        r#"sum(rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"web-1|web-2"}[3m])) by (pod,container)"#
    );
    assert_eq!(
        res.memory.render_node_query(&["node-a".into()]).unwrap(),
        r#"sum(container_memory_working_set_bytes{node="node-a",id="/"}) by (node)"#
    );
}

#[test]
fn name_mapping_follows_go_expand() {
    let set = RuleSet::from_yaml(ADAPTER, "a.yaml").unwrap();
    let r = &set.custom[0];
    assert_eq!(
        r.metric_name_for("http_requests_total").as_deref(),
        Some("http_requests_per_second")
    );
    assert_eq!(r.metric_name_for("http_requests"), None);
    // no matches: $0 of `.*`
    assert_eq!(
        set.external[0].metric_name_for("queue_depth").as_deref(),
        Some("queue_depth")
    );

    let with = |matches: &str, as_: &str| {
        let text = format!(
            "rules:\n- seriesQuery: 'x{{pod!=\"\"}}'\n  resources: {{template: '<<.Resource>>'}}\n  name: {{matches: '{matches}', as: '{as_}'}}\n  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n"
        );
        RuleSet::from_yaml(&text, "t").map(|s| s.custom[0].clone())
    };
    let r = with(
        "^(?P<base>.*)_seconds_(?P<kind>total|count)$",
        "${base}_$kind",
    )
    .unwrap();
    assert_eq!(
        r.metric_name_for("io_seconds_total").as_deref(),
        Some("io_total")
    );
    // `$1x` names group "1x", which does not exist: empty, as in Go
    let r = with("^(.*)_total$", "$1x").unwrap();
    assert_eq!(r.metric_name_for("a_total").as_deref(), Some(""));
    let r = with("^(.*)_total$", "$$1-${1}").unwrap();
    assert_eq!(r.metric_name_for("a_total").as_deref(), Some("$1-a"));
    let r = with("_total", "").unwrap();
    assert_eq!(r.metric_name_for("a_total_x").as_deref(), Some("_total"));
    let err = with("^(.*)_(.*)$", "").unwrap_err();
    assert!(err.errors[0].message.contains("2 capture groups"), "{err}");
    assert_eq!(err.errors[0].path, "rules[0].name.as");
}

#[test]
fn series_filters_apply_before_naming() {
    let text = r#"rules:
- seriesQuery: '{__name__=~"^container_.*",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^container_.*_seconds_total$"
  - is: "^container_"
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)'
"#;
    let set = RuleSet::from_yaml(text, "t").unwrap();
    let r = &set.custom[0];
    assert_eq!(
        r.metric_name_for("container_network_receive_bytes_total")
            .as_deref(),
        Some("network_receive_bytes")
    );
    assert_eq!(r.metric_name_for("container_cpu_usage_seconds_total"), None);
    assert_eq!(r.metric_name_for("container_memory_usage_bytes"), None);
}

#[test]
fn resources_map_in_both_directions() {
    let set = RuleSet::from_yaml(ADAPTER, "a.yaml").unwrap();
    let r = &set.custom[0];
    let labels = ["pod", "namespace", "instance"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut found = r.resources_for_labels(&labels);
    found.sort();
    assert_eq!(
        found,
        vec![
            GroupResource::new("", "namespaces"),
            GroupResource::new("", "pods")
        ]
    );
    assert_eq!(
        r.label_for_resource(&GroupResource::new("", "pods"))
            .as_deref(),
        Some("pod")
    );
    assert_eq!(
        r.label_for_resource(&GroupResource::new("apps", "deployments")),
        None
    );
}

#[test]
fn helm_values_shape_with_chart_defaults_and_prometheus() {
    let text = r#"prometheus:
  url: http://prometheus.monitoring.svc
  port: 9090
  path: ""
replicas: 2
rules:
  custom:
  - seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  external:
  - seriesQuery: 'queue_depth{namespace!=""}'
    resources: {overrides: {namespace: {resource: namespace}}}
    metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
"#;
    let set = RuleSet::from_yaml(text, "values.yaml").unwrap();
    assert_eq!(set.shape, FileShape::HelmValues);
    let prom = set.prometheus.clone().unwrap();
    assert_eq!(
        prom.url.as_deref(),
        Some("http://prometheus.monitoring.svc")
    );
    assert_eq!(prom.port, Some(9090));
    // the chart's six default rules come first (rules.default is true unless set false)
    assert_eq!(set.custom.len(), 7);
    assert_eq!(set.custom[0].path(), "rules.default[0]");
    assert_eq!(set.custom[6].path(), "rules.custom[0]");
    assert_eq!(set.external[0].path(), "rules.external[0]");

    let no_defaults = text.replace("rules:\n  custom:", "rules:\n  default: false\n  custom:");
    let set = RuleSet::from_yaml(&no_defaults, "values.yaml").unwrap();
    assert_eq!(set.custom.len(), 1);
}

#[test]
fn configmap_shape_maps_lines_into_the_manifest() {
    let text = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: adapter-config
data:
  config.yaml: |
    rules:
    - seriesQuery: 'x_total{namespace!="",pod!=""}'
      resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
      metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"#;
    let set = RuleSet::from_yaml(text, "cm.yaml").unwrap();
    assert_eq!(set.shape, FileShape::ConfigMap);
    assert_eq!(set.custom.len(), 1);
    let bad = text.replace("metricsQuery:", "metricQuery:");
    let errs = errors(&bad);
    let e = find(&errs, "rules[0].metricQuery");
    assert_eq!(e.line, 10, "{e}");
    assert!(e.message.contains("did you mean \"metricsQuery\""), "{e}");

    let other = "apiVersion: v1\nkind: ConfigMap\ndata:\n  other.yaml: x\n";
    let errs = errors(other);
    assert!(errs[0].message.contains("no \"config.yaml\""), "{errs:?}");
}

#[test]
fn every_error_is_reported_at_once_with_path_and_line() {
    let text = r#"rules:
- seriesQuerry: 'x{pod!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'rate(x[5m])'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'x{pod!=""}'
  seriesFilters:
  - is: "([unclosed"
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>} by (<<.GroupBy>>)'
- seriesQuery: 'x{pod!=""}'
  resources:
    overrides:
      pod: {resource: pod}
      pod_name: {resource: pods}
    namespaced: "yes please"
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatcher>>})'
- seriesQuery: ['not', 'a', 'string']
  resources: {template: '<<.Resource>>'}
  metricsQuery: '<<if .Series>>x'
- seriesQuery: 'x{pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: '<<upper .Series>>'
externalRules:
- seriesQuery: 'y{ns!=""}'
  resources: {overrides: {ns: {resource: namespace}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}'
"#;
    let errs = errors(text);
    let e = find(&errs, "rules[0].seriesQuerry");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("did you mean \"seriesQuery\""));
    assert_eq!(find(&errs, "rules[0].seriesQuery").line, 2);
    let e = find(&errs, "rules[1].seriesQuery");
    assert_eq!(e.line, 4);
    assert!(e.message.contains("not a series selector"), "{e}");
    let e = find(&errs, "rules[2].seriesFilters[0].is");
    assert_eq!(e.line, 9);
    assert!(e.message.contains("invalid regular expression"), "{e}");
    let e = find(&errs, "rules[2].metricsQuery");
    assert_eq!(e.line, 11);
    assert!(e.message.contains("invalid PromQL"), "{e}");
    let e = find(&errs, "rules[3].resources.overrides.pod_name");
    assert_eq!(e.line, 16);
    assert!(e.message.contains("both map to resource \"pods\""), "{e}");
    let e = find(&errs, "rules[3].resources.namespaced");
    assert!(e.message.contains("expected a boolean"), "{e}");
    let e = find(&errs, "rules[3].metricsQuery");
    assert!(e.message.contains("unknown field \".LabelMatcher\""), "{e}");
    let e = find(&errs, "rules[4].seriesQuery");
    assert_eq!(e.line, 19);
    assert!(e.message.contains("expected a string, got a list"), "{e}");
    let e = find(&errs, "rules[4].metricsQuery");
    assert!(e.message.contains("missing <<end>>"), "{e}");
    let e = find(&errs, "rules[5].metricsQuery");
    assert!(e.message.contains("function \"upper\" not defined"), "{e}");
    let e = find(&errs, "externalRules[0].metricsQuery");
    assert_eq!(e.line, 28);
    // the rendered form helps find the mistake
    assert!(e.message.contains("max(y{ns=\"default\"}"), "{e}");
    // every message carries the file name and line when displayed
    assert!(e
        .to_string()
        .starts_with("test.yaml:28: externalRules[0].metricsQuery: "));
}

#[test]
fn empty_and_non_yaml_files_are_errors() {
    for text in ["", "   \n", "# only a comment\n", "~\n"] {
        let errs = errors(text);
        assert!(errs[0].message.contains("empty"), "{text:?}: {errs:?}");
    }
    let errs = errors("rules: [\n  - {a: 1\n");
    assert!(errs[0].message.contains("not valid YAML"), "{errs:?}");
    assert!(errs[0].line >= 1);
    let errs = errors("- just\n- a list\n");
    assert!(errs[0].message.contains("got a list"), "{errs:?}");
    let errs = errors("rules: 3\n");
    assert!(errs[0].message.contains("expected a list"), "{errs:?}");
    let errs = errors("rules:\n- seriesQuery: 'x{a=\"b\"}'\n");
    assert!(find(&errs, "rules[0].metricsQuery")
        .message
        .contains("missing metricsQuery"));
    let errs = errors("foo: 1\n");
    assert!(
        find(&errs, "foo").message.contains("unknown field"),
        "{errs:?}"
    );
}

#[test]
fn warnings_explain_requests_that_will_fail() {
    let text = r#"rules:
- seriesQuery: 'http_requests_in_flight{pod!=""}'
  resources: {overrides: {pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
    let set = RuleSet::from_yaml(text, "t").unwrap();
    assert_eq!(set.warnings.len(), 1);
    assert!(set.warnings[0]
        .message
        .contains("no label is mapped to namespaces"));
    let err = set.custom[0]
        .render_custom(
            "http_requests_in_flight",
            Some("shop"),
            &GroupResource::new("", "pods"),
            &["a".into()],
            &LabelSelector::everything(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule rules[0] has no label for resource \"namespaces\""
    );
}

#[test]
fn multi_document_manifests_use_the_adapter_configmap() {
    let text = r#"---
apiVersion: v1
kind: ServiceAccount
metadata: {name: adapter}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: adapter}
data:
  config.yaml: |
    rules:
      custom:
      - seriesQuery: 'x_total{namespace!="",pod!=""}'
        resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
        metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
      default: false
"#;
    // the ConfigMap carries the Helm-values shape here
    let set = RuleSet::from_yaml(text, "all.yaml").unwrap();
    assert_eq!(set.shape, FileShape::ConfigMap);
    assert_eq!(set.custom.len(), 1);
    assert_eq!(set.custom[0].path(), "rules.custom[0]");
    // lines point into the whole file
    let errs = errors(&text.replace("seriesQuery: 'x_total", "seriesQuery: 'rate(x_total"));
    assert_eq!(find(&errs, "rules.custom[0].seriesQuery").line, 13);
}

#[test]
fn rule_sets_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<promhpa_rules::Rule>();
    assert_send_sync::<ConfigError>();
}

#[test]
fn adapter_keys_in_helm_values_are_errors() {
    let text = "rules:\n  default: false\nexternalRules:\n- seriesQuery: 'x{a!=\"\"}'\n  metricsQuery: 'x'\n";
    let errs = errors(text);
    let e = find(&errs, "externalRules");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("rules.external"), "{e}");
}

#[test]
fn namespaced_on_custom_rules_is_flagged() {
    let text = r#"rules:
- seriesQuery: 'x{namespace!="",pod!=""}'
  resources:
    overrides: {namespace: {resource: namespace}, pod: {resource: pod}}
    namespaced: false
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
    let set = RuleSet::from_yaml(text, "t").unwrap();
    assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
    assert_eq!(set.warnings[0].path, "rules[0].resources.namespaced");
    assert!(set.warnings[0]
        .message
        .contains("only applies to externalRules"));
}
