//! End to end: the series of prometheus-adapter's `/metrics` that alerts and dashboards
//! read, from promhpa serving custom, external and resource metrics from a real Prometheus
//! over HTTPS. Known requests, failing ones among them, are counted in
//! `apiserver_request_total` and `apiserver_request_duration_seconds` under exactly the
//! labels prometheus-adapter's routes give them, discovery and `/metrics` are not, the
//! calls to Prometheus are timed in
//! `prometheus_adapter_prometheus_client_request_duration_seconds`, and `promtool check
//! metrics` accepts the exposition.
#![allow(clippy::unwrap_used)]

mod common;
use common::{serve_args, tempfile_dir, Kubectl, Promhpa};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

const EXPOSITION: &str = "# TYPE queue_depth gauge
queue_depth{namespace=\"shop\",pod=\"web-a\"} 6
queue_depth{namespace=\"shop\",pod=\"web-b\"} 9
# TYPE jobs_waiting gauge
jobs_waiting{queue=\"orders\"} 4
jobs_waiting{queue=\"billing\"} 5
# TYPE pod_cpu_cores gauge
pod_cpu_cores{namespace=\"shop\",pod=\"web-a\",container=\"app\"} 0.25
pod_cpu_cores{namespace=\"shop\",pod=\"web-b\",container=\"app\"} 0.5
# TYPE pod_memory_bytes gauge
pod_memory_bytes{namespace=\"shop\",pod=\"web-a\",container=\"app\"} 104857600
pod_memory_bytes{namespace=\"shop\",pod=\"web-b\",container=\"app\"} 209715200
# TYPE node_cpu_cores gauge
node_cpu_cores{node=\"node-a\"} 1.5
# TYPE node_memory_bytes gauge
node_memory_bytes{node=\"node-a\"} 1073741824
";

// `jobs_waiting_broken` is a query Prometheus refuses when it runs it (both sides of the
// `+` match on no label, with two series each): a 500 from promhpa.
const RULES: &str = r#"rules:
- seriesQuery: 'queue_depth{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'jobs_waiting{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'jobs_waiting{queue!=""}'
  resources: {namespaced: false}
  name: {matches: "^jobs_waiting$", as: "jobs_waiting_broken"}
  metricsQuery: '<<.Series>>{<<.LabelMatchers>>} + ignoring(queue) <<.Series>>{<<.LabelMatchers>>}'
resourceRules:
  cpu:
    containerQuery: 'sum by (<<.GroupBy>>) (pod_cpu_cores{<<.LabelMatchers>>})'
    nodeQuery: 'sum by (<<.GroupBy>>) (node_cpu_cores{<<.LabelMatchers>>})'
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
        node: {resource: node}
    containerLabel: container
  memory:
    containerQuery: 'sum by (<<.GroupBy>>) (pod_memory_bytes{<<.LabelMatchers>>})'
    nodeQuery: 'sum by (<<.GroupBy>>) (node_memory_bytes{<<.LabelMatchers>>})'
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
        node: {resource: node}
    containerLabel: container
"#;

const OBJECTS: &str = r#"apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: v1, kind: Node, metadata: {name: node-a}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-a, namespace: shop, labels: {app: web}}
  spec: {nodeName: node-a, containers: [{name: app}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-b, namespace: shop, labels: {app: web}}
  spec: {nodeName: node-a, containers: [{name: app}]}
"#;

const CUSTOM: &str = "/apis/custom.metrics.k8s.io";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop";
const RESOURCE: &str = "/apis/metrics.k8s.io/v1beta1";

/// The samples of `family` in an exposition, by their label set (the text between the
/// braces).
fn samples(text: &str, family: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{family}{{");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once("} ")?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// How much each sample of `family` grew from `before` to `after`, those that did not left
/// out (a sample new in `after` grew from 0).
fn grown(before: &str, after: &str, family: &str) -> BTreeMap<String, f64> {
    let before = samples(before, family);
    samples(after, family)
        .into_iter()
        .map(|(labels, v)| {
            let was = before.get(&labels).copied().unwrap_or(0.0);
            (labels, v - was)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// The label set of a request of a metrics API's value route, in the exposition's order.
fn route(verb: &str, group: &str, version: &str, resource: &str, scope: &str) -> String {
    let (component, subresource) = match group {
        "custom.metrics.k8s.io" => ("custom-metrics", "*"),
        "external.metrics.k8s.io" => ("external-metrics", "*"),
        _ => ("apiserver", ""),
    };
    format!(
        "component=\"{component}\",dry_run=\"\",group=\"{group}\",resource=\"{resource}\",scope=\"{scope}\",subresource=\"{subresource}\",verb=\"{verb}\",version=\"{version}\""
    )
}

/// `/metrics` as a scraper reads it.
fn scrape(kubectl: &Kubectl) -> String {
    let out = kubectl.raw("/metrics");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_adapters_series_count_requests_and_prometheus_calls_as_it_does() {
    let dir = tempfile_dir("adapter-metrics");
    let pki = TestPki::generate("adapter-metrics-ca", "promhpa").unwrap();
    let target = ScrapeTarget::start(EXPOSITION).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    let mut args = serve_args(&pki, &prom.url(), &rules, &objects);
    args.push("--metrics-relist-interval=2s".into());
    let server = Promhpa::start(&args, &dir);
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    kubectl.wait_first_item(
        &server,
        &format!("{CUSTOM}/v1beta2/namespaces/shop/pods/*/queue_depth"),
    );
    kubectl.wait_first_item(&server, &format!("{EXTERNAL}/jobs_waiting"));
    kubectl.wait_first_item(&server, &format!("{RESOURCE}/namespaces/shop/pods"));

    let before = scrape(&kubectl);
    let ok = |path: &str| {
        let out = kubectl.raw(path);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fails = |path: &str, code: &str| {
        let error = kubectl.error(path);
        assert!(error.contains(code), "{path}: {error}");
    };
    ok(&format!(
        "{CUSTOM}/v1beta2/namespaces/shop/pods/*/queue_depth?labelSelector=app%3Dweb"
    ));
    ok(&format!(
        "{CUSTOM}/v1beta1/namespaces/shop/pods/web-a/queue_depth"
    ));
    fails(
        &format!("{CUSTOM}/v1beta2/namespaces/shop/pods/*/no_such_metric"),
        "NotFound",
    );
    fails(
        &format!("{CUSTOM}/v1beta1/nodes/node-a/queue_depth"),
        "NotFound",
    );
    ok(&format!("{EXTERNAL}/jobs_waiting"));
    ok(&format!(
        "{EXTERNAL}/jobs_waiting?labelSelector=queue%3Dorders"
    ));
    fails(&format!("{EXTERNAL}/jobs_waiting_broken"), "InternalError");
    ok(&format!("{RESOURCE}/namespaces/shop/pods"));
    ok(&format!("{RESOURCE}/nodes/node-a"));
    fails(
        &format!("{RESOURCE}/namespaces/shop/pods/ghost"),
        "NotFound",
    );
    // Discovery, and /metrics itself, are not counted.
    ok("/apis");
    ok(&format!("{CUSTOM}/v1beta2"));
    ok(RESOURCE);
    scrape(&kubectl);
    let after = scrape(&kubectl);

    let custom = "custom.metrics.k8s.io";
    let external = "external.metrics.k8s.io";
    let resource = "metrics.k8s.io";
    let expected: BTreeMap<String, f64> = [
        (route("GET", custom, "v1beta2", "*", "resource"), 200, 1.0),
        (route("GET", custom, "v1beta1", "*", "resource"), 200, 1.0),
        (route("GET", custom, "v1beta2", "*", "resource"), 404, 1.0),
        (route("LIST", custom, "v1beta1", "*", "cluster"), 404, 1.0),
        (route("LIST", external, "v1beta1", "*", "cluster"), 200, 2.0),
        (route("LIST", external, "v1beta1", "*", "cluster"), 500, 1.0),
        (
            route("LIST", resource, "v1beta1", "pods", "namespace"),
            200,
            1.0,
        ),
        (
            route("GET", resource, "v1beta1", "nodes", "resource"),
            200,
            1.0,
        ),
        (
            route("GET", resource, "v1beta1", "pods", "resource"),
            404,
            1.0,
        ),
    ]
    .into_iter()
    .map(|(labels, code, n)| (format!("code=\"{code}\",{labels}"), n))
    .collect();
    assert_eq!(
        grown(&before, &after, "apiserver_request_total"),
        expected,
        "\n{after}"
    );
    // Every series has the generic API server's label names, and only values from its
    // routes: none was made from a path.
    let label_names = |labels: &str| -> Vec<String> {
        labels
            .split("\",")
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, _)| k.to_string())
            .collect()
    };
    for labels in samples(&after, "apiserver_request_total").keys() {
        assert_eq!(
            label_names(labels),
            [
                "code",
                "component",
                "dry_run",
                "group",
                "resource",
                "scope",
                "subresource",
                "verb",
                "version"
            ],
            "{labels}"
        );
        assert!(
            !labels.contains("queue_depth") && !labels.contains("shop"),
            "{labels}"
        );
    }
    // Each request counted is timed once, under its labels but the code.
    let mut timed: BTreeMap<String, f64> = BTreeMap::new();
    for (labels, n) in &expected {
        let without_code = labels.split_once(',').map(|(_, rest)| rest).unwrap();
        *timed.entry(without_code.to_string()).or_default() += n;
    }
    assert_eq!(
        grown(&before, &after, "apiserver_request_duration_seconds_count"),
        timed,
        "\n{after}"
    );
    let buckets: BTreeSet<String> = samples(&after, "apiserver_request_duration_seconds_bucket")
        .keys()
        .filter_map(|l| {
            l.rsplit_once("le=\"")
                .map(|(_, le)| le.trim_end_matches('"').to_string())
        })
        .collect();
    let expected_buckets: BTreeSet<String> = [
        "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2", "3",
        "4", "5", "6", "8", "10", "15", "20", "30", "45", "60", "+Inf",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(buckets, expected_buckets);

    // The calls to Prometheus, queries and relists, are timed under their endpoint and the
    // server as --prometheus-url gives it, in Prometheus' default buckets.
    let calls = samples(
        &after,
        "prometheus_adapter_prometheus_client_request_duration_seconds_count",
    );
    let server_label = format!("server=\"{}\"", prom.url());
    let endpoints: BTreeSet<&str> = calls.keys().map(String::as_str).collect();
    let query = format!("path=\"/api/v1/query\",{server_label}");
    let series = format!("path=\"/api/v1/series\",{server_label}");
    assert_eq!(
        endpoints,
        BTreeSet::from([query.as_str(), series.as_str()]),
        "\n{after}"
    );
    let queries = grown(
        &before,
        &after,
        "prometheus_adapter_prometheus_client_request_duration_seconds_count",
    );
    // At least the refused query and one of each API's values.
    assert!(
        queries.get(&query).is_some_and(|n| *n >= 4.0),
        "{queries:?}"
    );
    assert!(after.contains(&format!(
        "prometheus_adapter_prometheus_client_request_duration_seconds_bucket{{{query},le=\"0.005\"}} "
    )));
    assert!(after.contains(&format!(
        "prometheus_adapter_prometheus_client_request_duration_seconds_bucket{{{series},le=\"10\"}} "
    )));

    // The in-flight limit's busiest second: nothing mutating, ever.
    assert!(
        after.contains("\napiserver_current_inflight_requests{request_kind=\"mutating\"} 0\n"),
        "{after}"
    );
    assert!(
        samples(&after, "apiserver_current_inflight_requests")
            .contains_key("request_kind=\"readOnly\""),
        "{after}"
    );

    // promtool reads the exposition as Prometheus will.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(after.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
