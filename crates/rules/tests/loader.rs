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
    assert_eq!(
        prom.joined_url().as_deref(),
        Some("http://prometheus.monitoring.svc:9090")
    );
    let no_url = promhpa_rules::PrometheusSettings {
        url: None,
        ..prom.clone()
    };
    assert_eq!(no_url.joined_url(), None);
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
    // What prometheus-adapter refuses to start with: unknown keys, wrong types, more than
    // one capture group without `as`, a resource template without `.Resource`.
    let text = r#"rules:
- seriesQuerry: 'x{pod!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'x{pod!=""}'
  resources:
    overrides:
      pod: {resource: pod}
    namespaced: "yes please"
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: ['not', 'a', 'string']
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'x'
- seriesQuery: 'x{pod!=""}'
  name: {matches: '^(a)_(b)$'}
  resources: {template: 'kube_<<.Group>>'}
  metricsQuery: 'x'
"#;
    let errs = errors(text);
    let e = find(&errs, "rules[0].seriesQuerry");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("did you mean \"seriesQuery\""));
    let e = find(&errs, "rules[1].resources.namespaced");
    assert_eq!(e.line, 8);
    assert!(e.message.contains("expected a boolean"), "{e}");
    let e = find(&errs, "rules[2].seriesQuery");
    assert_eq!(e.line, 10);
    assert!(e.message.contains("expected a string, got a list"), "{e}");
    let e = find(&errs, "rules[3].name.as");
    assert!(e.message.contains("2 capture groups"), "{e}");
    find(&errs, "rules[3].resources.template");
    // every message carries the file name and line when displayed
    assert!(e
        .to_string()
        .starts_with("test.yaml:14: rules[3].name.as: "));
}

#[test]
fn broken_rules_are_reported_and_the_others_served() {
    // What prometheus-adapter starts with and fails on at query time.
    let text = r#"rules:
- seriesQuery: 'ok_total{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'rate(x[5m])'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'x{namespace!="",pod!=""}'
  seriesFilters:
  - is: "([unclosed"
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'y{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
      pod_name: {resource: pods}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatcher>>})'
- seriesQuery: 'z{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: '<<upper .Series>>'
- seriesQuery: 'w{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
- seriesQuery: 'v{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>} by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'q{ns!=""}'
  resources: {overrides: {ns: {resource: namespace}}}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}'
"#;
    let set = RuleSet::from_yaml(text, "test.yaml").unwrap();
    assert!(set.custom[0].broken().is_none());
    assert_eq!(set.custom.len(), 7);
    let find_broken = |path: &str| {
        set.broken
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no broken rule at {path}: {:#?}", set.broken))
    };
    let e = find_broken("rules[1].seriesQuery");
    assert_eq!(e.line, 5);
    assert!(e.message.contains("not a series selector"), "{e}");
    assert!(!set.custom[1].discoverable());
    let e = find_broken("rules[2].seriesFilters[0].is");
    assert_eq!(e.line, 10);
    assert!(e.message.contains("invalid regular expression"), "{e}");
    assert!(!set.custom[2].discoverable());
    let e = find_broken("rules[3].metricsQuery");
    assert!(e.message.contains("unknown field \".LabelMatcher\""), "{e}");
    assert!(set.custom[3].discoverable());
    let w = set
        .warnings
        .iter()
        .find(|w| w.path == "rules[3].resources.overrides.pod_name")
        .unwrap();
    assert!(w.message.contains("both map to resource \"pods\""), "{w}");
    assert!(find_broken("rules[4].metricsQuery")
        .message
        .contains("function \"upper\" not defined"));
    assert!(find_broken("rules[5].metricsQuery")
        .message
        .contains("missing metricsQuery"));
    assert!(find_broken("rules[6].metricsQuery")
        .message
        .contains("invalid PromQL"));
    let e = find_broken("externalRules[0].metricsQuery");
    assert_eq!(e.line, 31);
    // the rendered form helps find the mistake
    assert!(e.message.contains("max(q{ns=\"default\"}"), "{e}");
    assert!(e
        .to_string()
        .starts_with("test.yaml:31: externalRules[0].metricsQuery: "));
    // a request for a broken rule's metric names the rule and the reason
    let err = set.custom[5]
        .render_custom(
            "w",
            Some("shop"),
            &GroupResource::new("", "pods"),
            &["a".into()],
            &LabelSelector::everything(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule rules[5] is broken: metricsQuery: missing metricsQuery (e.g. 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)')"
    );
    assert!(!set.is_clean());
    assert_eq!(
        set.strict_errors().len(),
        set.broken.len() + set.warnings.len()
    );
}

#[test]
fn go_regex_syntax_reads_as_in_go() {
    // A `{` that starts no repetition is a literal in Go's RE2, and `\Q...\E` quotes.
    let text = r#"rules:
- seriesQuery: '{__name__=~"^app_.*",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: '{internal}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^app_(.*)_a{2}$', as: '${1}'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^q_.*",namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  name: {matches: '^\Qq_a.b\E(.*)$', as: 'x${1}'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
    let set = RuleSet::from_yaml(text, "t").unwrap();
    assert!(set.broken.is_empty(), "{:?}", set.broken);
    let r = &set.custom[0];
    assert_eq!(r.metric_name_for("app_x_aa").as_deref(), Some("x"));
    assert_eq!(r.metric_name_for("app_x_a"), None);
    assert_eq!(r.metric_name_for("app_{internal}_aa"), None);
    let q = &set.custom[1];
    assert_eq!(q.metric_name_for("q_a.bc").as_deref(), Some("xc"));
    assert_eq!(q.metric_name_for("q_axbc"), None);
}

#[test]
fn empty_files_serve_nothing_and_non_yaml_files_are_errors() {
    // As prometheus-adapter starts with them (the chart renders an empty config.yaml when
    // its default rules are off): no rules, and a warning saying so.
    for text in ["", "   \n", "# only a comment\n", "~\n", "{}\n"] {
        let set = RuleSet::from_yaml(text, "test.yaml").unwrap();
        assert_eq!(set.rules().count(), 0, "{text:?}");
        assert!(set.resource.is_none(), "{text:?}");
        assert!(
            set.warnings[0].message.contains("holds no rules"),
            "{text:?}: {:?}",
            set.warnings
        );
    }
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: adapter-config}\ndata:\n  config.yaml: \"\"\n";
    assert_eq!(
        RuleSet::from_yaml(cm, "cm.yaml").unwrap().rules().count(),
        0
    );
    // A `rules` mapping without the chart's keys is an adapter config missing its `-`, not
    // Helm values.
    let errs =
        errors("rules:\n  seriesQuery: 'foo{pod!=\"\"}'\n  metricsQuery: sum(<<.Series>>)\n");
    assert!(errs[0].message.contains("expected a list"), "{errs:?}");
    let errs = errors("rules: [\n  - {a: 1\n");
    assert!(errs[0].message.contains("not valid YAML"), "{errs:?}");
    assert!(errs[0].line >= 1);
    let errs = errors("- just\n- a list\n");
    assert!(errs[0].message.contains("got a list"), "{errs:?}");
    let errs = errors("rules: 3\n");
    assert!(errs[0].message.contains("expected a list"), "{errs:?}");
    let set = RuleSet::from_yaml("rules:\n- seriesQuery: 'x{a=\"b\"}'\n", "t").unwrap();
    assert!(set.custom[0]
        .broken()
        .is_some_and(|b| b.contains("missing metricsQuery")));
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
    // Nodes (cluster-scoped) need no namespace label: no warning.
    let nodes = RuleSet::from_yaml(
        "rules:\n- seriesQuery: 'node_load1{node!=\"\"}'\n  resources: {overrides: {node: {resource: node}}}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n",
        "t",
    )
    .unwrap();
    assert!(nodes.warnings.is_empty(), "{:?}", nodes.warnings);
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
    let set = RuleSet::from_yaml(
        &text.replace("seriesQuery: 'x_total", "seriesQuery: 'rate(x_total"),
        "all.yaml",
    )
    .unwrap();
    assert_eq!(set.broken[0].path, "rules.custom[0].seriesQuery");
    assert_eq!(set.broken[0].line, 13);
}

#[test]
fn rule_sets_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<promhpa_rules::Rule>();
    assert_send_sync::<ConfigError>();
}

#[test]
fn keys_the_chart_ignores_are_warnings() {
    let text = "rules:\n  default: false\n  custon: []\nexternalRules:\n- seriesQuery: 'x{a!=\"\"}'\n  metricsQuery: 'x'\nprometheus:\n  url: http://p\n  rules:\n    custom: []\n";
    let set = RuleSet::from_yaml(text, "values.yaml").unwrap();
    assert_eq!(set.shape, FileShape::HelmValues);
    assert!(set.external.is_empty());
    let w = |path: &str| {
        set.warnings
            .iter()
            .find(|w| w.path == path)
            .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", set.warnings))
            .clone()
    };
    let e = w("externalRules");
    assert_eq!(e.line, 4);
    assert!(e.message.contains("rules.external"), "{e}");
    assert!(e.message.contains("ignored"), "{e}");
    assert!(w("rules.custon")
        .message
        .contains("did you mean \"custom\""));
    assert!(w("prometheus.rules")
        .message
        .contains("rules belong at the top level"));
}

#[test]
fn empty_helm_sections_are_absent_as_in_the_chart() {
    for section in [
        "resource: {}",
        "resource: []",
        "resource:",
        "custom: []",
        "custom: {}",
        "external: {}",
        "external: []",
        "existing: \"\"",
    ] {
        let text = format!(
            "rules:\n  default: false\n  {section}\n  custom:\n  - seriesQuery: 'x{{namespace!=\"\",pod!=\"\"}}'\n    resources: {{template: '<<.Resource>>'}}\n    metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n"
        );
        // a duplicate `custom` key is its own error; test the empty one alone then
        let text = if section.starts_with("custom") {
            format!("rules:\n  default: false\n  {section}\n")
        } else {
            text
        };
        let set =
            RuleSet::from_yaml(&text, "values.yaml").unwrap_or_else(|e| panic!("{section}: {e}"));
        assert!(set.resource.is_none(), "{section}");
        assert!(set.broken.is_empty(), "{section}: {:?}", set.broken);
        assert!(set.warnings.is_empty(), "{section}: {:?}", set.warnings);
    }
    // `rules: {}` leaves the chart's default rules
    let set = RuleSet::from_yaml("rules: {}\nprometheus: {url: http://p}\n", "v").unwrap();
    assert_eq!(set.custom.len(), 6);
}

#[test]
fn umbrella_chart_values_are_read_under_the_chart_name() {
    let text = r#"grafana:
  enabled: true
prometheus-adapter:
  prometheus:
    url: http://prometheus.monitoring.svc
    port: 9090
  rules:
    default: false
    custom:
    - seriesQuery: 'x_total{namespace!="",pod!=""}'
      resources: {template: '<<.Resource>>'}
      name: {matches: '^(.*)_total$', as: '${1}_per_second'}
      metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
    - seriesQuery: 'y{namespace!="",pod!=""}'
      resources: {template: '<<.Resource>>'}
"#;
    let set = RuleSet::from_yaml(text, "values.yaml").unwrap();
    assert_eq!(set.shape, FileShape::HelmValues);
    assert_eq!(set.custom.len(), 2);
    assert_eq!(set.prometheus.as_ref().and_then(|p| p.port), Some(9090));
    assert_eq!(
        set.broken[0].path,
        "prometheus-adapter.rules.custom[1].metricsQuery"
    );
    assert_eq!(set.broken[0].line, 14);
}

#[test]
fn chart_default_rules_are_labelled_without_user_lines() {
    let text = "rules:\n  custom:\n  - seriesQuery: 'x_total{namespace!=\"\",pod!=\"\"}'\n    resources: {template: '<<.Resource>>'}\n    metricsQuery: 'avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])'\n";
    let set = RuleSet::from_yaml(text, "values.yaml").unwrap();
    assert_eq!(set.custom.len(), 7);
    let d = &set.custom[4];
    assert_eq!(d.path(), "rules.default[4]");
    assert_eq!(d.line(), 0);
    assert_eq!(d.origin(), "rules.default[4] (chart default)");
    // the chart's generic `_total` rule exposes "x" from x_total for pods too; the user's
    // rule does not (it keeps the name), so nothing is shadowed here
    assert!(set.shadowed.is_empty(), "{:?}", set.shadowed);
}

#[test]
fn later_rules_shadow_earlier_ones_and_check_names_them() {
    let text = r#"rules:
  custom:
  - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
    resources: {template: '<<.Resource>>'}
    name: {matches: '^(.*)_total$', as: '$1'}
    metricsQuery: 'avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])'
"#;
    let set = RuleSet::from_yaml(text, "values.yaml").unwrap();
    let s = &set.shadowed[0];
    assert_eq!(s.path, "rules.default[4] (chart default)");
    assert_eq!(s.line, 0);
    assert!(
        s.message
            .contains("rules.custom[0] also exposes \"http_requests\""),
        "{s}"
    );
    assert!(
        s.to_string()
            .starts_with("values.yaml: rules.default[4] (chart default): "),
        "{s}"
    );
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

/// Another Kubernetes object given as the rule file is named once, not field by field.
#[test]
fn another_kubernetes_object_is_said_to_be_one() {
    let e = errors(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec: {maxReplicas: 3}\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, 2);
    assert!(
        e[0].message
            .starts_with("this is a HorizontalPodAutoscaler (autoscaling/v2), not a rule file"),
        "{}",
        e[0].message
    );
}

/// A file that cannot be read is told apart from one whose content is wrong.
#[test]
fn an_unreadable_file_is_not_judged() {
    let dir = std::env::temp_dir().join(format!("promhpa-unreadable-{}", std::process::id()));
    let missing = RuleSet::load(&dir.join("missing.yaml")).err();
    assert!(
        missing.as_ref().is_some_and(|e| e.unreadable()),
        "{missing:?}"
    );
    let wrong = RuleSet::from_yaml("rules: 3\n", "x").err();
    assert!(wrong.as_ref().is_some_and(|e| !e.unreadable()), "{wrong:?}");
}

/// In a ConfigMap, a rule's line is its line in the file, as its errors' lines are.
#[test]
fn a_configmaps_rules_are_placed_by_their_line_in_the_file() {
    let text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  config.yaml: |\n    rules:\n    - seriesQuery: 'up{namespace!=\"\",pod!=\"\"}'\n      resources: {template: '<<.Resource>>'}\n      metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";
    let set = RuleSet::from_yaml(text, "cm.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.custom[0].line(), 6);
}
