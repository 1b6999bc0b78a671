//! `metrics.k8s.io` from `resourceRules` over the embedded evaluator and a static object
//! file: discovery, pod and node lists and single objects, selectors, units, and the 404s.
#![allow(clippy::unwrap_used)]

mod common;
use common::get;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::{router, AppState, Registry, StaticObjects};
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::RuleSet;
use serde_json::Value;

const RULES: &str = r#"
resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[1m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,id="/"}[1m])) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id="/"}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 1m
"#;

// web-3 exists but has no samples; batch-1 is in another namespace.
const OBJECTS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop, labels: {app: web}}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-2, namespace: shop, labels: {app: web}}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-3, namespace: shop, labels: {app: web}}}
- {apiVersion: v1, kind: Pod, metadata: {name: batch-1, namespace: jobs, labels: {app: batch}}}
- {apiVersion: v1, kind: Node, metadata: {name: node-a, labels: {zone: a}}}
- {apiVersion: v1, kind: Node, metadata: {name: node-b, labels: {zone: b}}}
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Two minutes of cAdvisor samples every 15 s: CPU counters growing at `cores` per second
/// and working-set gauges.
fn load(backend: &EmbeddedBackend, now: i64) {
    // (namespace, pod, container, node, cores, bytes)
    let series = [
        ("shop", "web-1", "app", "node-a", 0.25, 134_217_728.0),
        ("shop", "web-1", "proxy", "node-a", 0.05, 33_554_432.0),
        ("shop", "web-2", "app", "node-b", 0.5, 268_435_456.0),
        ("jobs", "batch-1", "main", "node-b", 1.0, 1_000_000.0),
    ];
    two_minutes(backend, now, |i| {
        let mut text = String::new();
        for (ns, pod, c, node, cores, bytes) in series {
            let l = format!("namespace=\"{ns}\",pod=\"{pod}\",container=\"{c}\",node=\"{node}\"");
            text.push_str(&format!(
                "container_cpu_usage_seconds_total{{{l}}} {}\ncontainer_memory_working_set_bytes{{{l}}} {bytes}\n",
                cores * 15.0 * i
            ));
        }
        for (node, cores, bytes) in [
            ("node-a", 0.3, 2_147_483_648.0),
            ("node-b", 1.5, 4_294_967_296.0),
        ] {
            text.push_str(&format!(
                "container_cpu_usage_seconds_total{{node=\"{node}\",id=\"/\"}} {}\ncontainer_memory_working_set_bytes{{node=\"{node}\",id=\"/\"}} {bytes}\n",
                cores * 15.0 * i
            ));
        }
        text
    });
}

/// Two minutes of samples every 15 s up to `now`; `exposition(i)` gives the i-th scrape.
fn two_minutes(backend: &EmbeddedBackend, now: i64, exposition: impl Fn(f64) -> String) {
    let mut t = now - 120_000;
    let mut i = 0.0;
    while t <= now {
        backend
            .ingest_exposition(&exposition(i), t, &Labels::empty())
            .unwrap();
        t += 15_000;
        i += 1.0;
    }
}

/// The names of a PodMetrics' containers, in order.
fn container_names(pod: &Value) -> Vec<&str> {
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn app(rules: &str) -> axum::Router {
    let backend = Arc::new(EmbeddedBackend::default());
    load(&backend, now_ms());
    app_with(rules, OBJECTS, backend)
}

/// The router over `backend`, with `rules` and the objects of `objects`.
fn app_with(
    rules: &str,
    objects: &str,
    backend: Arc<dyn promhpa_core::backend::Backend>,
) -> axum::Router {
    let rules = Arc::new(RuleSet::from_yaml(rules, "rules.yaml").unwrap());
    let lookup = Arc::new(StaticObjects::from_text(objects, "objects.yaml").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let registry = Arc::new(Registry::new(
        rules,
        backend,
        lookup.clone(),
        metrics.clone(),
        Duration::from_secs(600),
    ));
    router(AppState {
        registry,
        lookup,
        metrics,
        guard: None,
        coalescer: Default::default(),
        forward: None,
    })
}

/// A CPU quantity in milli-CPU; `rate()` over float samples may land a hair below the
/// exact figure, and usage is truncated to the milli-CPU as prometheus-adapter does.
fn cpu_milli(v: &Value) -> i64 {
    let s = v.as_str().unwrap();
    s.strip_suffix('m')
        .map(|m| m.parse().unwrap())
        .unwrap_or_else(|| s.parse::<i64>().unwrap() * 1000)
}

fn assert_cpu(v: &Value, want: i64) {
    let got = cpu_milli(v);
    assert!(got == want || got == want - 1, "{v} is not {want}m");
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pods_and_nodes_from_resource_rules() {
    let app = app(RULES);
    let (code, groups) = get(&app, "/apis").await;
    assert_eq!(code, StatusCode::OK);
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "metrics.k8s.io"));
    let (_, list) = get(&app, "/apis/metrics.k8s.io/v1beta1").await;
    let resources: Vec<(&str, &str, bool)> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        resources,
        [
            ("nodes", "NodeMetrics", false),
            ("pods", "PodMetrics", true)
        ]
    );

    // Pods of a namespace: web-3 has no samples and is left out; usage per container.
    let (code, pods) = get(&app, "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods").await;
    assert_eq!(code, StatusCode::OK, "{pods}");
    assert_eq!(pods["kind"], "PodMetricsList");
    assert_eq!(pods["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(names(&pods), ["web-1", "web-2"]);
    let web1 = &pods["items"][0];
    assert_eq!(web1["kind"], "PodMetrics");
    assert_eq!(web1["metadata"]["namespace"], "shop");
    // The pod's labels, as prometheus-adapter copies them.
    assert_eq!(
        web1["metadata"]["labels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(web1["window"], "1m0s");
    assert!(web1["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(web1["containers"][0]["name"], "app");
    assert_cpu(&web1["containers"][0]["usage"]["cpu"], 250);
    assert_eq!(web1["containers"][0]["usage"]["memory"], "128Mi");
    assert_eq!(web1["containers"][1]["name"], "proxy");
    assert_cpu(&web1["containers"][1]["usage"]["cpu"], 50);
    assert_eq!(web1["containers"][1]["usage"]["memory"], "32Mi");

    // A label selector, every namespace, a single pod.
    let (_, sel) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%3Dbatch",
    )
    .await;
    assert_eq!(names(&sel), Vec::<String>::new());
    let (_, all) = get(&app, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(names(&all), ["batch-1", "web-1", "web-2"]);
    assert_eq!(
        all["items"][0]["containers"][0]["usage"]["memory"],
        "1000000"
    );
    let (code, one) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-2",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{one}");
    assert_eq!(one["kind"], "PodMetrics");
    assert_cpu(&one["containers"][0]["usage"]["cpu"], 500);
    assert_eq!(one["containers"][0]["usage"]["memory"], "256Mi");

    // Nodes, all and by selector and by name.
    let (_, nodes) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(nodes["kind"], "NodeMetricsList");
    assert_eq!(names(&nodes), ["node-a", "node-b"]);
    assert_cpu(&nodes["items"][0]["usage"]["cpu"], 300);
    assert_eq!(nodes["items"][0]["usage"]["memory"], "2Gi");
    let (_, zone_b) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db",
    )
    .await;
    assert_eq!(names(&zone_b), ["node-b"]);
    assert_eq!(
        zone_b["items"][0]["metadata"]["labels"],
        serde_json::json!({"zone": "b"})
    );
    let (code, node) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes/node-b").await;
    assert_eq!(code, StatusCode::OK);
    assert_cpu(&node["usage"]["cpu"], 1500);
    assert_eq!(node["usage"]["memory"], "4Gi");

    // 404s as Status objects: no such pod, a pod without metrics, an unserved version.
    let (code, st) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/nope",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["message"], "pods \"nope\" not found");
    let (code, st) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-3",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("podmetrics.metrics.k8s.io \"shop/web-3\" not found"),
        "{st}"
    );
    assert_eq!(st["details"]["group"], "metrics.k8s.io");
    assert_eq!(st["details"]["kind"], "podmetrics");

    // Field selectors on metadata.name and metadata.namespace, as metrics-server takes.
    let (_, by_name) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dweb-2",
    )
    .await;
    assert_eq!(names(&by_name), ["web-2"]);
    let (_, not_shop) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace!%3Dshop",
    )
    .await;
    assert_eq!(names(&not_shop), ["batch-1"]);
    let (code, st) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dnode-a",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        st["message"].as_str().unwrap().contains("spec.nodeName"),
        "{st}"
    );
    let (code, _) = get(&app, "/apis/metrics.k8s.io/v1/nodes").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, st) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3D%3D%3D",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{st}");
}

#[tokio::test]
async fn openapi_documents_describe_the_resource_metrics() {
    let plain = app("rules: []\n");
    let app = app(RULES);
    let (_, v2) = get(&app, "/openapi/v2").await;
    assert!(v2["paths"]["/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"].is_object());
    assert_eq!(
        v2["definitions"]["io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"]
            ["x-kubernetes-group-version-kind"][0]["kind"],
        "PodMetrics"
    );
    let (_, v3) = get(&app, "/openapi/v3").await;
    assert!(
        v3["paths"]["apis/metrics.k8s.io/v1beta1"].is_object(),
        "{v3}"
    );
    let (code, doc) = get(&app, "/openapi/v3/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["paths"]["/apis/metrics.k8s.io/v1beta1/nodes/{name}"].is_object());
    assert!(doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| p.starts_with("/apis/metrics.k8s.io/")));

    // Without resourceRules the documents say nothing of metrics.k8s.io.
    let (_, v2) = get(&plain, "/openapi/v2").await;
    assert!(!v2.to_string().contains("metrics.k8s.io/v1beta1/nodes"));
    let (code, _) = get(&plain, "/openapi/v3/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_resource_rules_the_group_is_not_served() {
    let app = app("rules: []\n");
    let (_, groups) = get(&app, "/apis").await;
    assert!(!groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "metrics.k8s.io"));
    let (code, st) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        st["message"].as_str().unwrap().contains("no resourceRules"),
        "{st}"
    );
}

/// As prometheus-adapter reads them: a series without the container label is a container
/// named "" (the pod is still reported), and a node without both cpu and memory usage is
/// left out (`kubectl top node` shows `<unknown>`, not a usage of 0).
#[tokio::test]
async fn a_missing_container_label_and_a_node_with_one_resource() {
    // The memory rule reads another container label, which no series has; its node query
    // finds node-a only.
    let rules = RULES
        .replacen(
            "containerLabel: container\n  window",
            "containerLabel: container_name\n  window",
            1,
        )
        .replace(
            "sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id=\"/\"})",
            "sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id=\"/\",node=\"node-a\"})",
        );
    let app = app(&rules);
    let (code, pod) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-2",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{pod}");
    let names = container_names(&pod);
    assert_eq!(names, ["", "app"], "{pod}");
    // Each container has both resources (0 where its pod's other container has it), so
    // the HPA does not count the pod as missing either.
    for c in pod["containers"].as_array().unwrap() {
        assert!(
            c["usage"]["cpu"].is_string() && c["usage"]["memory"].is_string(),
            "{pod}"
        );
    }
    assert_eq!(pod["containers"][0]["usage"]["cpu"], "0");
    let (code, nodes) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(code, StatusCode::OK, "{nodes}");
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a"], "{nodes}");
    let (code, st) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes/node-b").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{st}");
    assert_eq!(st["details"]["kind"], "nodemetrics", "{st}");
}

/// A resource rule whose node part cannot work (no nodeQuery, no label for nodes) or that
/// has no containerLabel loads with a warning, as prometheus-adapter loads it: pod metrics
/// are served (containers named ""), node requests fail naming why.
#[tokio::test]
async fn pod_metrics_survive_a_broken_node_query_and_a_missing_container_label() {
    let rules = RULES
        .replace("    nodeQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,id=\"/\"}) by (<<.GroupBy>>)'\n", "")
        .replace("    containerLabel: container\n  window", "  window");
    let set = RuleSet::from_yaml(&rules, "rules.yaml").unwrap();
    assert!(
        set.resource.is_some(),
        "resource rules refused: {:?}",
        set.broken
    );
    let warnings: Vec<String> = set.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings.iter().any(|w| w.contains(
            "missing nodeQuery; node metrics (kubectl top node) fail, pod metrics are served"
        )),
        "{warnings:?}"
    );
    let app = app(&rules);
    let (code, pod) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{pod}");
    let names = container_names(&pod);
    assert_eq!(names, ["", "app", "proxy"], "{pod}");
    let (code, st) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("missing nodeQuery"),
        "{st}"
    );
}

/// Which pods and which samples are reported, as prometheus-adapter reports them: only
/// running pods (a pending pod running its init containers, a completed or failed one are
/// not listed, and asking for one by name is a 404), only pods with both a cpu and a memory
/// sample, and one sample per container or node where a query that does not aggregate
/// returns several (two scrape jobs of the same cAdvisor).
#[tokio::test]
async fn running_pods_with_both_resources_and_one_sample_each_as_in_the_adapter() {
    let rules = r#"
resourceRules:
  cpu:
    containerQuery: 'rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[1m])'
    nodeQuery: 'rate(node_cpu_usage_seconds_total{<<.LabelMatchers>>}[1m])'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  memory:
    containerQuery: 'container_memory_working_set_bytes{<<.LabelMatchers>>}'
    nodeQuery: 'node_memory_working_set_bytes{<<.LabelMatchers>>}'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  window: 1m
"#;
    let objects = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: run-1, namespace: shop}, status: {phase: Running}}
- {apiVersion: v1, kind: Pod, metadata: {name: pend-1, namespace: shop}, status: {phase: Pending}}
- {apiVersion: v1, kind: Pod, metadata: {name: done-1, namespace: shop}, status: {phase: Succeeded}}
- {apiVersion: v1, kind: Pod, metadata: {name: cpu-only-1, namespace: shop}, status: {phase: Running}}
- {apiVersion: v1, kind: Pod, metadata: {name: dup-1, namespace: shop}, status: {phase: Running}}
- {apiVersion: v1, kind: Node, metadata: {name: node-a}}
"#;
    let backend = Arc::new(EmbeddedBackend::default());
    two_minutes(&backend, now_ms(), |i| {
        let mut text = String::new();
        // (pod, container, job, cores, bytes); cpu-only-1 has no memory series.
        for (pod, c, job, cores, bytes) in [
            ("run-1", "app", "a", 0.1, 1_048_576.0),
            ("pend-1", "init-db", "a", 0.1, 1_048_576.0),
            ("done-1", "main", "a", 0.1, 1_048_576.0),
            ("cpu-only-1", "app", "a", 0.1, f64::NAN),
            ("dup-1", "app", "a", 0.2, 2_097_152.0),
            ("dup-1", "app", "b", 0.3, 3_145_728.0),
        ] {
            let l = format!("namespace=\"shop\",pod=\"{pod}\",container=\"{c}\",job=\"{job}\"");
            text.push_str(&format!(
                "container_cpu_usage_seconds_total{{{l}}} {}\n",
                cores * 15.0 * i
            ));
            if !bytes.is_nan() {
                text.push_str(&format!(
                    "container_memory_working_set_bytes{{{l}}} {bytes}\n"
                ));
            }
        }
        for (job, cores, bytes) in [("a", 1.5, 8_589_934_592.0), ("b", 2.5, 4_294_967_296.0)] {
            let l = format!("node=\"node-a\",job=\"{job}\"");
            text.push_str(&format!(
                    "node_cpu_usage_seconds_total{{{l}}} {}\nnode_memory_working_set_bytes{{{l}}} {bytes}\n",
                    cores * 15.0 * i
                ));
        }
        text
    });
    let app = app_with(rules, objects, backend);

    let (code, pods) = get(&app, "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods").await;
    assert_eq!(code, StatusCode::OK, "{pods}");
    assert_eq!(names(&pods), ["dup-1", "run-1"], "{pods}");
    let (code, all) = get(&app, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(code, StatusCode::OK, "{all}");
    assert_eq!(names(&all), ["dup-1", "run-1"], "{all}");
    for pod in ["pend-1", "done-1"] {
        let (code, st) = get(
            &app,
            &format!("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/{pod}"),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{st}");
        assert_eq!(st["message"], format!("pods \"{pod}\" not found"), "{st}");
    }
    let (code, st) = get(
        &app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/cpu-only-1",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{st}");
    assert_eq!(st["details"]["kind"], "podmetrics", "{st}");

    // Two series for dup-1's container: the last of the answer, not their sum.
    let dup = &pods["items"][0];
    assert_eq!(container_names(dup), ["app"], "{dup}");
    assert_cpu(&dup["containers"][0]["usage"]["cpu"], 300);
    assert_eq!(dup["containers"][0]["usage"]["memory"], "3Mi", "{dup}");
    // Two series for node-a: the first of the answer.
    let (code, node) = get(&app, "/apis/metrics.k8s.io/v1beta1/nodes/node-a").await;
    assert_eq!(code, StatusCode::OK, "{node}");
    assert_cpu(&node["usage"]["cpu"], 1500);
    assert_eq!(node["usage"]["memory"], "8Gi", "{node}");
}

/// A backend that is down: every query fails.
struct Down;

impl promhpa_core::backend::Backend for Down {
    fn address(&self) -> String {
        "prometheus.down".into()
    }
    fn query<'a>(
        &'a self,
        _promql: &'a str,
        _at_ms: i64,
    ) -> promhpa_core::backend::BoxFuture<
        'a,
        Result<promhpa_core::backend::QueryValue, promhpa_core::backend::BackendError>,
    > {
        Box::pin(async {
            Err(promhpa_core::backend::BackendError::Unavailable {
                address: "prometheus.down".into(),
                message: "connection refused".into(),
            })
        })
    }
    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        _end_ms: i64,
        _step_ms: i64,
    ) -> promhpa_core::backend::BoxFuture<
        'a,
        Result<promhpa_core::backend::QueryValue, promhpa_core::backend::BackendError>,
    > {
        self.query(promql, at_ms)
    }
    fn series_names<'a>(
        &'a self,
        _selector: &'a str,
        _since_ms: i64,
    ) -> promhpa_core::backend::BoxFuture<
        'a,
        Result<Vec<promhpa_core::backend::SeriesInfo>, promhpa_core::backend::BackendError>,
    > {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// With the backend down, listing every namespace is the backend's error, as listing one
/// namespace is: namespaces without running pods, which query nothing, do not make it an
/// empty list.
#[tokio::test]
async fn every_namespace_listed_with_the_backend_down_is_its_error() {
    let objects =
        format!("{OBJECTS}- {{apiVersion: v1, kind: Namespace, metadata: {{name: empty}}}}\n");
    let app = app_with(RULES, &objects, Arc::new(Down));
    let (code, one) = get(&app, "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{one}");
    let (code, all) = get(&app, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{all}");
    assert!(
        all["message"]
            .as_str()
            .unwrap()
            .contains("prometheus.down unavailable"),
        "{all}"
    );
    // A namespace without running pods alone is an empty list, whatever the backend.
    let (code, empty) = get(&app, "/apis/metrics.k8s.io/v1beta1/namespaces/empty/pods").await;
    assert_eq!(code, StatusCode::OK, "{empty}");
    assert_eq!(names(&empty), Vec::<String>::new());
}
