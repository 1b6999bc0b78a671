//! Golden tests: for every rule file in `rules/` and every rule snippet in the seed guides,
//! requests and the exact PromQL prometheus-adapter would send for them (with promhpa's
//! documented escaping of regex metacharacters).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::{FileShape, RenderError, Rule, RuleSet};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

fn load(name: &str) -> RuleSet {
    let path = rules_dir().join(name);
    RuleSet::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sel(s: &str) -> LabelSelector {
    s.parse().unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}

/// The rule that serves `metric` from `series`, as the API server would pick it.
fn rule_for<'a>(rules: &'a [Rule], series: &str, metric: &str) -> &'a Rule {
    rules
        .iter()
        .find(|r| r.metric_name_for(series).as_deref() == Some(metric))
        .unwrap_or_else(|| panic!("no rule serves {series} as {metric}"))
}

fn custom(
    rule: &Rule,
    series: &str,
    ns: Option<&str>,
    res: &GroupResource,
    objs: &[&str],
    selector: &str,
) -> String {
    rule.render_custom(series, ns, res, &names(objs), &sel(selector))
        .unwrap_or_else(|e| panic!("{}: {e}", rule.path()))
}

#[test]
fn every_file_in_rules_dir_loads_without_warnings() {
    let mut count = 0;
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let set = RuleSet::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            set.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            set.warnings
        );
        assert!(
            !set.custom.is_empty() || !set.external.is_empty() || set.resource.is_some(),
            "{} has no rules",
            path.display()
        );
        for rule in set.rules() {
            rule.sample_query()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        count += 1;
    }
    assert!(
        count >= 7,
        "expected the rule files in rules/, found {count}"
    );
}

#[test]
fn istio_requests_per_second() {
    let set = load("istio-requests.yaml");
    let r = rule_for(&set.custom, "istio_requests_total", "requests_per_second");
    let s = "istio_requests_total";
    // one pod
    assert_eq!(
        custom(r, s, Some("test"), &pods(), &["podinfo-7d9f-abcde"], ""),
        r#"sum(rate(istio_requests_total{namespace="test",pod="podinfo-7d9f-abcde"}[2m])) by (pod)"#
    );
    // several pods
    assert_eq!(
        custom(
            r,
            s,
            Some("test"),
            &pods(),
            &["podinfo-1", "podinfo-2", "podinfo-3"],
            ""
        ),
        r#"sum(rate(istio_requests_total{namespace="test",pod=~"podinfo-1|podinfo-2|podinfo-3"}[2m])) by (pod)"#
    );
    // the namespace itself (cluster-scoped resource): no namespace matcher, grouped by it
    assert_eq!(
        custom(
            r,
            s,
            None,
            &GroupResource::new("", "namespaces"),
            &["test"],
            ""
        ),
        r#"sum(rate(istio_requests_total{namespace="test"}[2m])) by (namespace)"#
    );
    // metric selectors of every operator, in key order, before namespace and pod
    assert_eq!(
        custom(
            r,
            s,
            Some("test"),
            &pods(),
            &["p"],
            "response_code=200,method!=POST,source_app in (loadtester,web),reporter notin (source),destination_service,!grpc_response_status"
        ),
        concat!(
            r#"sum(rate(istio_requests_total{destination_service!="",grpc_response_status="","#,
            r#"method!="POST",reporter!~"source",response_code="200",source_app=~"loadtester|web","#,
            r#"namespace="test",pod="p"}[2m])) by (pod)"#
        )
    );
    // a resource the rule has no label for
    let err = r
        .render_custom(
            s,
            Some("test"),
            &GroupResource::new("apps", "deployments"),
            &names(&["web"]),
            &sel(""),
        )
        .unwrap_err();
    assert!(
        matches!(err, RenderError::NoLabelForResource { .. }),
        "{err}"
    );
}

#[test]
fn selector_operators_exactly() {
    let set = load("istio-requests.yaml");
    let r = &set.custom[0];
    let q = |selector: &str| {
        custom(
            r,
            "istio_requests_total",
            Some("ns"),
            &pods(),
            &["p"],
            selector,
        )
    };
    let tail = r#"namespace="ns",pod="p"}[2m])) by (pod)"#;
    let head = "sum(rate(istio_requests_total{";
    assert_eq!(q("a=x"), format!(r#"{head}a="x",{tail}"#));
    assert_eq!(q("a==x"), format!(r#"{head}a="x",{tail}"#));
    assert_eq!(q("a!=x"), format!(r#"{head}a!="x",{tail}"#));
    assert_eq!(q("a in (x)"), format!(r#"{head}a=~"x",{tail}"#));
    assert_eq!(q("a in (y,x)"), format!(r#"{head}a=~"x|y",{tail}"#));
    assert_eq!(q("a notin (x)"), format!(r#"{head}a!~"x",{tail}"#));
    assert_eq!(q("a notin (x,y)"), format!(r#"{head}a!~"x|y",{tail}"#));
    assert_eq!(q("a"), format!(r#"{head}a!="",{tail}"#));
    assert_eq!(q("!a"), format!(r#"{head}a="",{tail}"#));
    // documented improvement: values are regex-escaped inside =~ / !~ (prometheus-adapter
    // passes them through, so `a.b` would also match `axb`)
    assert_eq!(q("a in (v1.2,x)"), format!(r#"{head}a=~"v1\\.2|x",{tail}"#));
    assert_eq!(q("a notin (v1.2)"), format!(r#"{head}a!~"v1\\.2",{tail}"#));
    // but not inside = / != (no regex there)
    assert_eq!(q("a=v1.2"), format!(r#"{head}a="v1.2",{tail}"#));
    // operators PromQL cannot express, and keys that are not Prometheus label names
    let err = r
        .render_custom(
            "istio_requests_total",
            Some("ns"),
            &pods(),
            &names(&["p"]),
            &sel("a>1"),
        )
        .unwrap_err();
    assert!(
        matches!(err, RenderError::UnsupportedOperator { .. }),
        "{err}"
    );
    let err = r
        .render_custom(
            "istio_requests_total",
            Some("ns"),
            &pods(),
            &names(&["p"]),
            &sel("app.kubernetes.io/name=web"),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid label selector key \"app.kubernetes.io/name\""),
        "{err}"
    );
}

#[test]
fn seed_p95_latency_and_in_flight() {
    let set = load("seed-p95-latency.yaml");
    let p95 = rule_for(
        &set.custom,
        "http_request_duration_seconds_bucket",
        "http_request_duration_p95",
    );
    assert_eq!(
        custom(p95, "http_request_duration_seconds_bucket", Some("default"), &pods(), &["inference-0", "inference-1"], ""),
        "histogram_quantile(0.95,\n  sum by (le, pod) (\n    rate(http_request_duration_seconds_bucket{namespace=\"default\",pod=~\"inference-0|inference-1\",endpoint=\"/predict\"}[1m])\n  )\n)\n"
    );
    let inflight = rule_for(
        &set.custom,
        "http_requests_in_flight",
        "http_requests_in_flight",
    );
    assert_eq!(
        custom(
            inflight,
            "http_requests_in_flight",
            Some("default"),
            &pods(),
            &["inference-0"],
            ""
        ),
        r#"sum by (pod) (http_requests_in_flight{namespace="default",pod="inference-0",endpoint="/predict"})"#
    );
    // the other rule does not claim the series
    assert_eq!(p95.metric_name_for("http_requests_in_flight"), None);
}

#[test]
fn seed_inferno_external() {
    let set = load("seed-inferno-desired-replicas.yaml");
    let r = rule_for(
        &set.external,
        "inferno_desired_replicas",
        "inferno_desired_replicas",
    );
    assert!(r.namespaced());
    // selector first, then the namespace label
    assert_eq!(
        r.render_external(
            "inferno_desired_replicas",
            Some("llm-d-sim"),
            &sel("variant_name=vllme-deployment")
        )
        .unwrap(),
        r#"inferno_desired_replicas{variant_name="vllme-deployment",exported_namespace="llm-d-sim"}"#
    );
    assert_eq!(
        r.render_external(
            "inferno_desired_replicas",
            Some("llm-d-sim"),
            &LabelSelector::everything()
        )
        .unwrap(),
        r#"inferno_desired_replicas{exported_namespace="llm-d-sim"}"#
    );
    assert_eq!(
        r.render_external(
            "inferno_desired_replicas",
            None,
            &sel("variant_name in (a,b)")
        )
        .unwrap(),
        r#"inferno_desired_replicas{variant_name=~"a|b"}"#
    );
}

#[test]
fn external_rules_with_namespaced_false_ignore_the_namespace() {
    let text = r#"externalRules:
- seriesQuery: 'kafka_consumergroup_lag{consumergroup!=""}'
  resources:
    namespaced: false
  name: {matches: "^kafka_consumergroup_lag$", as: "kafka_lag"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'queue_messages_ready{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#;
    let set = RuleSet::from_yaml(text, "ext.yaml").unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let lag = rule_for(&set.external, "kafka_consumergroup_lag", "kafka_lag");
    assert!(!lag.namespaced());
    // GroupBy is empty for external metrics, as in prometheus-adapter
    assert_eq!(
        lag.render_external(
            "kafka_consumergroup_lag",
            Some("team-a"),
            &sel("consumergroup=orders,topic!=dlq")
        )
        .unwrap(),
        r#"sum(kafka_consumergroup_lag{consumergroup="orders",topic!="dlq"}) by ()"#
    );
    let ready = rule_for(
        &set.external,
        "queue_messages_ready",
        "queue_messages_ready",
    );
    assert!(ready.namespaced());
    assert_eq!(
        ready
            .render_external("queue_messages_ready", Some("team-a"), &sel("queue=orders"))
            .unwrap(),
        r#"sum(queue_messages_ready{queue="orders",namespace="team-a"})"#
    );
}

#[test]
fn dcgm_gpu_utilization() {
    let set = load("dcgm-gpu-utilization.yaml");
    let r = rule_for(&set.custom, "DCGM_FI_DEV_GPU_UTIL", "gpu_utilization");
    assert_eq!(
        custom(
            r,
            "DCGM_FI_DEV_GPU_UTIL",
            Some("ml"),
            &pods(),
            &["vllm-0", "vllm-1"],
            ""
        ),
        r#"avg(DCGM_FI_DEV_GPU_UTIL{exported_namespace="ml",exported_pod=~"vllm-0|vllm-1"}) by (exported_pod)"#
    );
    assert_eq!(
        custom(
            r,
            "DCGM_FI_DEV_GPU_UTIL",
            Some("ml"),
            &pods(),
            &["vllm-0"],
            "gpu=0"
        ),
        r#"avg(DCGM_FI_DEV_GPU_UTIL{gpu="0",exported_namespace="ml",exported_pod="vllm-0"}) by (exported_pod)"#
    );
    let labels = [
        "exported_namespace",
        "exported_pod",
        "gpu",
        "namespace",
        "pod",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut found = r.resources_for_labels(&labels);
    found.sort();
    assert_eq!(found, vec![GroupResource::new("", "namespaces"), pods()]);
}

#[test]
fn cadvisor_container_metrics() {
    let set = load("cadvisor-containers.yaml");
    let cpu = rule_for(
        &set.custom,
        "container_cpu_usage_seconds_total",
        "cpu_usage",
    );
    assert_eq!(
        custom(
            cpu,
            "container_cpu_usage_seconds_total",
            Some("shop"),
            &pods(),
            &["web-1", "web-2"],
            ""
        ),
        r#"sum(rate(container_cpu_usage_seconds_total{namespace="shop",pod=~"web-1|web-2",container!="POD",container!=""}[5m])) by (pod)"#
    );
    let net = rule_for(
        &set.custom,
        "container_network_receive_bytes_total",
        "network_receive_bytes",
    );
    assert_eq!(
        custom(
            net,
            "container_network_receive_bytes_total",
            Some("shop"),
            &pods(),
            &["web-1"],
            ""
        ),
        r#"sum(rate(container_network_receive_bytes_total{namespace="shop",pod="web-1",container!="POD",container!=""}[5m])) by (pod)"#
    );
    let mem = rule_for(
        &set.custom,
        "container_memory_working_set_bytes",
        "memory_working_set_bytes",
    );
    assert_eq!(
        custom(
            mem,
            "container_memory_working_set_bytes",
            Some("shop"),
            &pods(),
            &["web-1"],
            ""
        ),
        r#"sum(container_memory_working_set_bytes{namespace="shop",pod="web-1",container!="POD",container!=""}) by (pod)"#
    );
    // each series is served by exactly one rule
    for series in [
        "container_cpu_usage_seconds_total",
        "container_network_receive_bytes_total",
        "container_memory_working_set_bytes",
    ] {
        let n = set
            .custom
            .iter()
            .filter(|r| r.metric_name_for(series).is_some())
            .count();
        assert_eq!(n, 1, "{series}");
    }
}

#[test]
fn generic_application_rules_with_a_resource_template() {
    let set = load("generic-application.yaml");
    let total = rule_for(
        &set.custom,
        "http_requests_total",
        "http_requests_per_second",
    );
    // a namespaced non-pod resource through the template
    assert_eq!(
        custom(
            total,
            "http_requests_total",
            Some("shop"),
            &GroupResource::new("apps", "deployments"),
            &["web"],
            ""
        ),
        r#"sum(rate(http_requests_total{namespace="shop",deployment="web"}[5m])) by (deployment)"#
    );
    // a cluster-scoped resource with several names (dots in node names are escaped)
    let gauge = rule_for(&set.custom, "node_queue_depth", "node_queue_depth");
    assert_eq!(
        custom(
            gauge,
            "node_queue_depth",
            None,
            &GroupResource::new("", "nodes"),
            &["ip-10-0-0-1.ec2.internal", "ip-10-0-0-2.ec2.internal"],
            ""
        ),
        r#"sum(node_queue_depth{node=~"ip-10-0-0-1\\.ec2\\.internal|ip-10-0-0-2\\.ec2\\.internal"}) by (node)"#
    );
    let secs = rule_for(&set.custom, "process_cpu_seconds_total", "process_cpu");
    assert_eq!(
        custom(
            secs,
            "process_cpu_seconds_total",
            Some("shop"),
            &pods(),
            &["a"],
            ""
        ),
        r#"sum(rate(process_cpu_seconds_total{namespace="shop",pod="a"}[5m])) by (pod)"#
    );
    // the template maps labels back to built-in resources only; like prometheus-adapter,
    // a `job` label reads as the batch/jobs resource
    let labels = ["namespace", "pod", "deployment", "instance", "job"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut found = gauge.resources_for_labels(&labels);
    found.sort();
    assert_eq!(
        found,
        vec![
            GroupResource::new("", "namespaces"),
            pods(),
            GroupResource::new("apps", "deployments"),
            GroupResource::new("batch", "jobs"),
        ]
    );
}

#[test]
fn resource_metrics_rules() {
    let set = load("resource-metrics.yaml");
    let res = set.resource.unwrap();
    assert_eq!(res.window_ms, Some(180_000));
    assert_eq!(
        res.cpu
            .render_container_query("shop", &names(&["web-1"]))
            .unwrap(),
        r#"sum(rate(container_cpu_usage_seconds_total{namespace="shop",pod="web-1",container!=""}[3m])) by (pod,container)"#
    );
    assert_eq!(
        res.memory
            .render_node_query(&names(&["node-a", "node-b"]))
            .unwrap(),
        r#"sum(container_memory_working_set_bytes{node=~"node-a|node-b",id="/"}) by (node)"#
    );
}

// ------------------------------------------------------------------ the seed guides

/// The fenced code blocks of a markdown-ish text, dedented by their fence's indentation.
fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with("```") {
            match current.take() {
                Some((_, lines)) => blocks.push(lines.join("\n") + "\n"),
                None => current = Some((indent, Vec::new())),
            }
            continue;
        }
        if let Some((fence_indent, lines)) = current.as_mut() {
            let cut = line
                .char_indices()
                .take_while(|(i, c)| *i < *fence_indent && *c == ' ')
                .count();
            lines.push(line[cut..].to_string());
        }
    }
    blocks
}

fn seed_rule_files() -> Vec<(String, String)> {
    let dir = promhpa_test_support::shared_dir().unwrap().join("seeds");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        for block in code_blocks(&text) {
            if block.contains("metricsQuery") {
                out.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    block,
                ));
            }
        }
    }
    out
}

#[test]
fn every_rule_snippet_in_the_seed_guides_loads() {
    let files = seed_rule_files();
    assert!(
        files.len() >= 3,
        "expected rule snippets in the seeds, found {}",
        files.len()
    );
    for (name, text) in &files {
        RuleSet::from_yaml(text, name).unwrap_or_else(|e| panic!("{name}:\n{text}\n{e}"));
    }
}

fn seed(prefix: &str) -> RuleSet {
    let (name, text) = seed_rule_files()
        .into_iter()
        .find(|(n, _)| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no rule snippet in seed {prefix}"));
    RuleSet::from_yaml(&text, &name).unwrap()
}

#[test]
fn seed_000_helm_values_external_rule() {
    let set = seed("000_");
    assert_eq!(set.shape, FileShape::HelmValues);
    let prom = set.prometheus.clone().unwrap();
    assert_eq!(
        prom.url.as_deref(),
        Some("https://kube-prometheus-stack-prometheus.inferno-autoscaler-monitoring.svc.cluster.local")
    );
    assert_eq!(prom.port, Some(9090));
    // `rules.default` is not set, so the chart's default rules are there too
    assert_eq!(set.custom.len(), 6);
    let r = rule_for(
        &set.external,
        "inferno_desired_replicas",
        "inferno_desired_replicas",
    );
    // the guide's `kubectl get --raw .../namespaces/llm-d-sim/inferno_desired_replicas?labelSelector=variant_name%3Dvllme-deployment`
    assert_eq!(
        r.render_external(
            "inferno_desired_replicas",
            Some("llm-d-sim"),
            &sel("variant_name=vllme-deployment")
        )
        .unwrap(),
        r#"inferno_desired_replicas{variant_name="vllme-deployment",exported_namespace="llm-d-sim"}"#
    );
}

#[test]
fn seed_001_rules_as_written() {
    let set = seed("001_");
    assert_eq!(set.custom.len(), 2);
    let p95 = rule_for(
        &set.custom,
        "http_request_duration_seconds_bucket",
        "http_request_duration_p95",
    );
    // no label maps to namespaces: as in prometheus-adapter, namespaced requests fail, and
    // promhpa says so when loading
    assert!(set
        .warnings
        .iter()
        .any(|w| w.message.contains("no label is mapped to namespaces")));
    // and its P95 query aggregates the buckets without `le`, so it would return nothing
    let le = set
        .warnings
        .iter()
        .find(|w| w.message.contains("drops the `le` label"))
        .expect("a warning about histogram_quantile without le");
    assert_eq!(le.path, "rules[0].metricsQuery");
    let err = p95
        .render_custom(
            "http_request_duration_seconds_bucket",
            Some("default"),
            &pods(),
            &names(&["a"]),
            &sel(""),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule rules[0] has no label for resource \"namespaces\""
    );
    assert_eq!(
        custom(p95, "http_request_duration_seconds_bucket", None, &pods(), &["a", "b"], ""),
        "histogram_quantile(0.95,\n  sum by (pod) (\n    rate(http_request_duration_seconds_bucket{pod=~\"a|b\"}[1m])\n  )\n)\n"
    );
    // `name.as` without `name.matches` serves every series under that one name
    let inflight = rule_for(
        &set.custom,
        "http_requests_in_flight",
        "http_requests_in_flight",
    );
    assert_eq!(
        inflight.metric_name_for("anything").as_deref(),
        Some("http_requests_in_flight")
    );
    assert_eq!(
        custom(
            inflight,
            "http_requests_in_flight",
            None,
            &pods(),
            &["a"],
            ""
        ),
        "sum by (pod) (http_requests_in_flight{pod=\"a\"})\n"
    );
}

#[test]
fn seed_003_configmap_istio() {
    let set = seed("003_");
    assert_eq!(set.shape, FileShape::ConfigMap);
    let r = rule_for(&set.custom, "istio_requests_total", "requests_per_second");
    // the guide's query: sum(rate(istio_requests_total{namespace="test",pod=~"podinfo-.*"}[2m])) by (namespace, pod)
    assert_eq!(
        custom(
            r,
            "istio_requests_total",
            Some("test"),
            &pods(),
            &["podinfo-6b7c-x1", "podinfo-6b7c-x2"],
            ""
        ),
        r#"sum(rate(istio_requests_total{namespace="test",pod=~"podinfo-6b7c-x1|podinfo-6b7c-x2"}[2m])) by (pod)"#
    );
    // `matches` is unanchored, as in Go
    assert_eq!(
        r.metric_name_for("istio_requests_total_extra").as_deref(),
        Some("requests_per_second")
    );
}

// ------------------------------------------------- prometheus-adapter's generated defaults

/// The rules prometheus-adapter's config generator writes with label prefix `kube_` and a
/// 1m rate interval, and the queries prometheus-adapter's own registry builds from them.
const GENERATED_DEFAULTS: &str = r#"
rules:
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)_seconds_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: "^container_.*_seconds_total$"}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: [{isNot: "^container_.*_total$"}]
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^container_(.*)$"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)'
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: ".*_total$"}]
  resources: {template: "kube_<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: ".*_seconds_total"}]
  resources: {template: "kube_<<.Resource>>"}
  name: {matches: "^(.*)_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
- seriesQuery: '{kube_namespace!="",__name__!~"^container_.*"}'
  resources: {template: "kube_<<.Resource>>"}
  name: {matches: "^(.*)_seconds_total$"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
"#;

/// (series, metric, group, resource as requested, namespace, names, selector, expected)
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a str,
    &'a str,
);

#[test]
fn generated_default_rules_render_like_prometheus_adapter() {
    let set = RuleSet::from_yaml(GENERATED_DEFAULTS, "defaults.yaml").unwrap();
    let cases: &[Case] = &[
        (
            "container_some_usage",
            "some_usage",
            "",
            "pods",
            "somens",
            &["somepod1", "somepod2"],
            "",
            r#"sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}) by (pod)"#,
        ),
        (
            "container_some_count_total",
            "some_count",
            "",
            "pods",
            "somens",
            &["somepod1", "somepod2"],
            "",
            r#"sum(rate(container_some_count_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)"#,
        ),
        (
            "container_some_time_seconds_total",
            "some_time",
            "",
            "pods",
            "somens",
            &["somepod1", "somepod2"],
            "",
            r#"sum(rate(container_some_time_seconds_total{namespace="somens",pod=~"somepod1|somepod2",container!="POD"}[1m])) by (pod)"#,
        ),
        (
            "ingress_hits_total",
            "ingress_hits",
            "",
            "service",
            "somens",
            &["somesvc"],
            "",
            r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)"#,
        ),
        (
            "ingress_hits_total",
            "ingress_hits",
            "",
            "service",
            "somens",
            &["somesvc"],
            "param1=value1",
            r#"sum(rate(ingress_hits_total{param1="value1",kube_namespace="somens",kube_service="somesvc"}[1m])) by (kube_service)"#,
        ),
        (
            "ingress_hits_total",
            "ingress_hits",
            "extensions",
            "ingress",
            "somens",
            &["someingress"],
            "",
            r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_ingress="someingress"}[1m])) by (kube_ingress)"#,
        ),
        (
            "ingress_hits_total",
            "ingress_hits",
            "",
            "pod",
            "somens",
            &["somepod"],
            "",
            r#"sum(rate(ingress_hits_total{kube_namespace="somens",kube_pod="somepod"}[1m])) by (kube_pod)"#,
        ),
        (
            "service_proxy_packets",
            "service_proxy_packets",
            "",
            "service",
            "somens",
            &["somesvc"],
            "",
            r#"sum(service_proxy_packets{kube_namespace="somens",kube_service="somesvc"}) by (kube_service)"#,
        ),
        (
            "work_queue_wait_seconds_total",
            "work_queue_wait",
            "extensions",
            "deployment",
            "somens",
            &["somedep"],
            "",
            r#"sum(rate(work_queue_wait_seconds_total{kube_namespace="somens",kube_deployment="somedep"}[1m])) by (kube_deployment)"#,
        ),
        (
            "node_gigawatts",
            "node_gigawatts",
            "",
            "node",
            "",
            &["somenode"],
            "",
            r#"sum(node_gigawatts{kube_node="somenode"}) by (kube_node)"#,
        ),
        (
            "volume_claims_total",
            "volume_claims",
            "",
            "persistentvolume",
            "",
            &["somepv"],
            "",
            r#"sum(rate(volume_claims_total{kube_persistentvolume="somepv"}[1m])) by (kube_persistentvolume)"#,
        ),
        (
            "node_fan_seconds_total",
            "node_fan",
            "",
            "node",
            "",
            &["somenode"],
            "",
            r#"sum(rate(node_fan_seconds_total{kube_node="somenode"}[1m])) by (kube_node)"#,
        ),
    ];
    for (series, metric, group, resource, ns, objs, selector, expected) in cases {
        let rule = rule_for(&set.custom, series, metric);
        let ns = (!ns.is_empty()).then_some(*ns);
        let got = custom(
            rule,
            series,
            ns,
            &GroupResource::new(*group, *resource),
            objs,
            selector,
        );
        assert_eq!(&got, expected, "{series} on {resource}");
    }
}
