//! `metrics.k8s.io` (v1beta1): the CPU and memory of pods and nodes from the rule file's
//! `resourceRules`, as `kubectl top` and the HPA's Resource metrics read them. Served only
//! when the rule file has `resourceRules`.
//!
//! Pods are the ones the object lookup knows (listed by namespace and label selector); the
//! container query gives usage per pod and container, the node query per node. Usage is in
//! milli-units truncated toward zero, negative values as zero; NaN and ±Inf samples are
//! skipped. A pod or node the queries return nothing for is left out of lists, and a GET of
//! it is 404.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use promhpa_core::backend::{BackendError, QueryValue, Sample};
use promhpa_core::duration::format_go_duration_ms;
use promhpa_core::lookup::{GroupResource, LookupError};
use promhpa_core::path::segments;
use promhpa_core::quantity::{Format, Quantity};
use promhpa_core::selector::LabelSelector;
use promhpa_rules::{ResourceRule, ResourceRules};
use serde::Serialize;

use crate::answer::{now_ms, observed_query, remembered, request_key};
use crate::apiserver_metrics::Counted;
use crate::error::ApiError;
use crate::request::{counted_as, json, not_found, parse_selector, query_params, with_route};
use crate::state::AppState;
use crate::table::{Column, Item, Output};
use crate::types::{
    rfc3339, ApiGroup, ApiResource, ApiResourceList, GroupVersionForDiscovery, ListMeta,
    StatusDetails,
};

pub use crate::types::RESOURCE_GROUP;
const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

#[derive(Debug, Clone, Serialize)]
struct ObjectMeta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: String,
    /// The pod's or node's labels, as prometheus-adapter copies them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
struct ContainerMetrics {
    name: String,
    usage: BTreeMap<&'static str, Quantity>,
}

#[derive(Debug, Clone, Serialize)]
struct PodMetrics {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ObjectMeta,
    timestamp: String,
    window: String,
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Clone, Serialize)]
struct NodeMetrics {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ObjectMeta,
    timestamp: String,
    window: String,
    usage: BTreeMap<&'static str, Quantity>,
}

#[derive(Debug, Clone, Serialize)]
struct MetricsList<T> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ListMeta,
    items: Vec<T>,
}

fn group_version() -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: API_VERSION.to_string(),
        version: VERSION.to_string(),
    }
}

/// The `APIGroup` document of metrics.k8s.io.
pub fn resource_group() -> ApiGroup {
    ApiGroup {
        kind: "APIGroup",
        api_version: "v1",
        name: RESOURCE_GROUP.into(),
        versions: vec![group_version()],
        preferred_version: group_version(),
    }
}

fn resource_list() -> ApiResourceList {
    let resource = |name: &str, kind: &'static str, namespaced: bool| ApiResource {
        name: name.to_string(),
        singular_name: String::new(),
        namespaced,
        kind,
        verbs: vec!["get", "list"],
    };
    ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: API_VERSION.to_string(),
        resources: vec![
            resource("nodes", "NodeMetrics", false),
            resource("pods", "PodMetrics", true),
        ],
    }
}

/// A usage in milli-units as the resource metrics API reports it: truncated toward zero,
/// zero for NaN and negative values (non-finite samples are skipped before this).
pub fn usage_milli(value: f64) -> i64 {
    let m = (value * 1000.0).trunc();
    if m.is_nan() || m < 0.0 {
        0
    } else {
        m.min(i64::MAX as f64) as i64
    }
}

fn quantity(resource: &str, milli: i64) -> Quantity {
    let q = Quantity::from_milli(milli);
    if resource == "memory" {
        q.with_format(Format::BinarySi)
    } else {
        q
    }
}

fn lookup_error(e: LookupError) -> ApiError {
    match e {
        LookupError::Unavailable(m) => ApiError::Unavailable(m),
        LookupError::UnknownResource(r) => {
            ApiError::not_found(format!("the server doesn't have a resource type \"{r}\""))
        }
    }
}

/// One resource query, through the coalescer, recorded in the self-metrics.
async fn query(
    state: &AppState,
    rule: &ResourceRule,
    promql: &str,
) -> Result<Vec<Sample>, ApiError> {
    let backends = state.registry.backends();
    match observed_query(state, backends.default_backend(), rule.path(), promql).await {
        Ok(QueryValue::Vector(v)) => Ok(v),
        Ok(other) => Err(ApiError::Internal(format!(
            "{}: the query returned a {} instead of a vector; query: {promql}",
            rule.path(),
            other.type_name()
        ))),
        Err(BackendError::Unavailable { address, message }) => Err(ApiError::BackendUnavailable(format!(
            "unable to fetch resource metrics: backend {address} unavailable: {message}"
        ))),
        Err(BackendError::Protocol { address, message }) => Err(ApiError::BackendUnavailable(format!(
            "unable to fetch resource metrics: backend {address} unavailable: unexpected response: {message}"
        ))),
        Err(other) => Err(ApiError::Internal(format!(
            "unable to fetch resource metrics ({}): {other}; query: {promql}",
            rule.path()
        ))),
    }
}

fn rules_of(rules: &ResourceRules) -> [(&'static str, &ResourceRule); 2] {
    [("cpu", &rules.cpu), ("memory", &rules.memory)]
}

fn window(rules: &ResourceRules) -> String {
    format_go_duration_ms(rules.window_ms.unwrap_or(0))
}

/// Usage per object (pod or node) and per container (`""` for nodes), with each object's
/// earliest sample time.
#[derive(Debug)]
struct Usage {
    by_object: BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, i64>>>,
    stamps: BTreeMap<String, i64>,
}

/// Runs the cpu and memory queries `render` gives and takes their samples per object named
/// by the label of `objects` (and per container for pods), keeping only `names`. Where a
/// query returns several series for one key (a query that does not aggregate, over two
/// scrape jobs of the same cAdvisor), one is taken as prometheus-adapter takes it: a pod's
/// container gets the last, a node the first.
async fn collect_usage(
    state: &AppState,
    rules: &ResourceRules,
    objects: &GroupResource,
    names: &[String],
    render: impl Fn(&ResourceRule) -> Result<String, promhpa_rules::RenderError>,
) -> Result<Usage, ApiError> {
    let mut usage = Usage {
        by_object: BTreeMap::new(),
        stamps: BTreeMap::new(),
    };
    let per_container = objects.resource == "pods";
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let render = |rule: &ResourceRule| {
        render(rule).map_err(|e| ApiError::Internal(format!("{}: {e}", rule.path())))
    };
    let (cpu_q, memory_q) = (render(&rules.cpu)?, render(&rules.memory)?);
    let (cpu, memory) = tokio::join!(
        query(state, &rules.cpu, &cpu_q),
        query(state, &rules.memory, &memory_q)
    );
    for ((resource, rule), samples) in rules_of(rules).into_iter().zip([cpu?, memory?]) {
        let Some(label) = rule.resources().label_for_resource(objects) else {
            return Err(ApiError::Internal(format!(
                "{}: no label holds {objects} names",
                rule.path()
            )));
        };
        for s in samples {
            let Some(object) = s.labels.get(&label).filter(|o| wanted.contains(o.as_str())) else {
                continue;
            };
            // NaN or ±Inf is no measurement: the object is reported without it.
            if !s.value.is_finite() {
                continue;
            }
            // A series without the container label is a container named "", as
            // prometheus-adapter reads it: the pod is still reported.
            let container = if per_container {
                s.labels
                    .get(rule.container_label())
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let slot = usage
                .by_object
                .entry(object.clone())
                .or_default()
                .entry(container)
                .or_default()
                .entry(resource);
            let taken = match slot {
                Entry::Vacant(v) => {
                    v.insert(usage_milli(s.value));
                    true
                }
                Entry::Occupied(mut o) if per_container => {
                    o.insert(usage_milli(s.value));
                    true
                }
                Entry::Occupied(_) => false,
            };
            // A pod's time is its earliest sample's, as the adapter takes it; a node's
            // that of the samples it reports.
            if taken || per_container {
                let t = usage.stamps.entry(object.clone()).or_insert(s.timestamp_ms);
                *t = (*t).min(s.timestamp_ms);
            }
        }
    }
    Ok(usage)
}

fn quantities(u: BTreeMap<&'static str, i64>) -> BTreeMap<&'static str, Quantity> {
    u.into_iter().map(|(r, m)| (r, quantity(r, m))).collect()
}

/// A container without a resource that another container of its pod has gets 0 for it, as
/// prometheus-adapter fills it: the HPA counts a pod as missing a resource as soon as one
/// container lacks it, so cpu in one container and memory in another (a series without the
/// container label, say) would otherwise leave the pod without both. A resource no
/// container has stays absent.
fn fill_within_pod(containers: &mut BTreeMap<String, BTreeMap<&'static str, i64>>) {
    let present: Vec<&'static str> = containers
        .values()
        .flat_map(|u| u.keys().copied())
        .collect();
    for usage in containers.values_mut() {
        for r in &present {
            usage.entry(r).or_insert(0);
        }
    }
}

/// The metrics of pods `names` of `namespace`, in the order of `names`, leaving out pods
/// without a sample of both cpu and memory, as prometheus-adapter does: a pod whose scrape
/// stopped has no memory sample at once but a cpu rate that fades over its window, and is
/// counted as missing by the HPA rather than reported with that fading cpu alone.
async fn pod_metrics(
    state: &AppState,
    rules: &ResourceRules,
    namespace: &str,
    names: &[String],
) -> Result<Vec<PodMetrics>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let pods = GroupResource::new("", "pods");
    let mut usage = collect_usage(state, rules, &pods, names, |r| {
        r.render_container_query(namespace, names)
    })
    .await?;
    let mut labels = state.lookup.labels(&pods, Some(namespace), names).await;
    let created = rfc3339(now_ms());
    let window = window(rules);
    Ok(names
        .iter()
        .filter_map(|name| {
            let mut containers = usage.by_object.remove(name)?;
            let has = |r: &str| containers.values().any(|u| u.contains_key(r));
            if !(has("cpu") && has("memory")) {
                return None;
            }
            fill_within_pod(&mut containers);
            Some(PodMetrics {
                kind: "PodMetrics",
                api_version: API_VERSION,
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: Some(namespace.to_string()),
                    creation_timestamp: created.clone(),
                    labels: labels.remove(name).unwrap_or_default(),
                },
                timestamp: rfc3339(usage.stamps.get(name).copied().unwrap_or_else(now_ms)),
                window: window.clone(),
                containers: containers
                    .into_iter()
                    .map(|(c, u)| ContainerMetrics {
                        name: c,
                        usage: quantities(u),
                    })
                    .collect(),
            })
        })
        .collect())
}

/// The metrics of nodes `names`, in their order, leaving out nodes without a sample of
/// both cpu and memory (as prometheus-adapter does: `kubectl top node` shows such a node as
/// `<unknown>` rather than with a usage of 0).
async fn node_metrics(
    state: &AppState,
    rules: &ResourceRules,
    names: &[String],
) -> Result<Vec<NodeMetrics>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let nodes = GroupResource::new("", "nodes");
    let mut usage =
        collect_usage(state, rules, &nodes, names, |r| r.render_node_query(names)).await?;
    let mut labels = state.lookup.labels(&nodes, None, names).await;
    let created = rfc3339(now_ms());
    let window = window(rules);
    Ok(names
        .iter()
        .filter_map(|name| {
            let u = usage.by_object.remove(name)?.remove("")?;
            if !(u.contains_key("cpu") && u.contains_key("memory")) {
                return None;
            }
            Some(NodeMetrics {
                kind: "NodeMetrics",
                api_version: API_VERSION,
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: None,
                    creation_timestamp: created.clone(),
                    labels: labels.remove(name).unwrap_or_default(),
                },
                timestamp: rfc3339(usage.stamps.get(name).copied().unwrap_or_else(now_ms)),
                window: window.clone(),
                usage: quantities(u),
            })
        })
        .collect())
}

/// What the Table of pod or node metrics shows of one: its name, its usage summed over its
/// containers, its window.
trait Tabled: Serialize {
    fn name(&self) -> &str;
    fn usage(&self) -> BTreeMap<&'static str, Quantity>;
    fn window(&self) -> &str;
}

impl Tabled for PodMetrics {
    fn name(&self) -> &str {
        &self.metadata.name
    }
    fn usage(&self) -> BTreeMap<&'static str, Quantity> {
        let mut sum: BTreeMap<&'static str, Quantity> = BTreeMap::new();
        for (resource, q) in self.containers.iter().flat_map(|c| c.usage.iter()) {
            let total = match sum.get(resource) {
                Some(t) => t.checked_add(q).unwrap_or(*t),
                None => *q,
            };
            sum.insert(resource, total);
        }
        sum
    }
    fn window(&self) -> &str {
        &self.window
    }
}

impl Tabled for NodeMetrics {
    fn name(&self) -> &str {
        &self.metadata.name
    }
    fn usage(&self) -> BTreeMap<&'static str, Quantity> {
        self.usage.clone()
    }
    fn window(&self) -> &str {
        &self.window
    }
}

/// The answer for `items` in the form asked: the object (`one`) or the list, or the Table
/// `kubectl get` shows, as metrics-server and prometheus-adapter print it: a column per
/// resource the first item has (`cpu`, `memory`), then `Window`.
fn answer<T: Tabled>(output: Output, kind: &'static str, items: Vec<T>, one: bool) -> Response {
    let (api_version, include) = match output {
        Output::Object if one => {
            return match items.first() {
                Some(item) => json(item),
                None => ApiError::Internal("no object to answer".into()).into_response(),
            }
        }
        Output::Object => {
            return json(&MetricsList {
                kind,
                api_version: API_VERSION,
                metadata: ListMeta {},
                items,
            })
        }
        Output::Table {
            api_version,
            include,
        } => (api_version, include),
    };
    let resources: Vec<&'static str> = items
        .first()
        .map(|i| i.usage().into_keys().collect())
        .unwrap_or_default();
    let columns = (!items.is_empty()).then(|| {
        let mut columns = vec![Column {
            name: "Name",
            kind: "string",
            format: "name",
            description: "Name of the resource",
            priority: 0,
        }];
        columns.extend(resources.iter().map(|r| Column {
            name: r,
            kind: "string",
            format: "quantity",
            description: "",
            priority: 0,
        }));
        columns.push(Column {
            name: "Window",
            kind: "string",
            format: "duration",
            description: "",
            priority: 0,
        });
        columns
    });
    let mut rows = Vec::with_capacity(items.len());
    for item in &items {
        let usage = item.usage();
        let mut cells = vec![item.name().into()];
        cells.extend(resources.iter().map(|r| {
            usage
                .get(r)
                .copied()
                .unwrap_or_else(Quantity::zero)
                .to_string()
                .into()
        }));
        cells.push(item.window().into());
        let object = match serde_json::to_value(item) {
            Ok(v) => v,
            Err(e) => return ApiError::Internal(format!("encoding response: {e}")).into_response(),
        };
        rows.push(Item { cells, object });
    }
    json(&crate::table::table(api_version, include, columns, rows))
}

/// Names of the objects of `resource` matching `selector`; pods are those in phase Running,
/// as metrics-server and prometheus-adapter list them.
async fn names(
    state: &AppState,
    resource: &str,
    namespace: Option<&str>,
    selector: &LabelSelector,
) -> Result<Vec<String>, ApiError> {
    let names = if resource == "pods" {
        state.lookup.running_pods(namespace, selector).await
    } else {
        state
            .lookup
            .names(&GroupResource::new("", resource), namespace, selector)
            .await
    };
    names.map_err(lookup_error)
}

/// A single object: 404 when the object does not exist (a pod that is not running
/// included, as the adapter does not list it), and when it exists without metrics, in
/// the words of the API server.
async fn exists(
    state: &AppState,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    let all = names(state, resource, namespace, &LabelSelector::everything()).await?;
    if all.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            message: format!("{resource} \"{name}\" not found"),
            details: Some(StatusDetails {
                name: name.to_string(),
                group: String::new(),
                kind: resource.to_string(),
            }),
        })
    }
}

/// 404 for an object that exists without metrics, as metrics-server words it
/// (`podmetrics.metrics.k8s.io "default/web-1" not found`), with what promhpa knows of why.
fn no_metrics(resource: &str, namespace: Option<&str>, name: &str) -> ApiError {
    let key = match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    let why = "the resourceRules queries do not return both cpu and memory usage for it";
    ApiError::NotFound {
        message: format!("{resource}metrics.{RESOURCE_GROUP} \"{key}\" not found ({why})"),
        details: Some(StatusDetails {
            name: key,
            group: RESOURCE_GROUP.to_string(),
            kind: format!("{resource}metrics"),
        }),
    }
}

/// How many namespaces a cluster-wide pod list queries at once.
const NAMESPACE_CONCURRENCY: usize = 8;

/// The field selectors metrics-server takes: `metadata.name` and `metadata.namespace`, with
/// `=`, `==` or `!=`, comma-separated.
#[derive(Debug, Clone, Default)]
struct FieldSelector {
    /// (field, value, wanted equal)
    terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    fn parse(text: Option<&str>) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for term in text
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (field, value, eq) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid fieldSelector term \"{term}\": expected FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field} (metadata.name and metadata.namespace are)"
                )));
            }
            terms.push((field.to_string(), value.trim().to_string(), eq));
        }
        Ok(FieldSelector { terms })
    }

    /// `names` of namespace `ns` (`""` for nodes) that the selector keeps.
    fn filter(&self, ns: &str, names: Vec<String>) -> Vec<String> {
        names
            .into_iter()
            .filter(|name| {
                self.terms.iter().all(|(field, value, eq)| {
                    let actual = if field == "metadata.name" {
                        name.as_str()
                    } else {
                        ns
                    };
                    (actual == value) == *eq
                })
            })
            .collect()
    }
}

async fn serve(
    state: &AppState,
    rules: &ResourceRules,
    segs: &[&str],
    params: &BTreeMap<String, String>,
    output: Output,
) -> Result<Response, ApiError> {
    let fields = FieldSelector::parse(params.get("fieldSelector").map(String::as_str))?;
    match segs {
        [VERSION, "nodes"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let names = fields.filter("", names(state, "nodes", None, &selector).await?);
            Ok(answer(
                output,
                "NodeMetricsList",
                node_metrics(state, rules, &names).await?,
                false,
            ))
        }
        [VERSION, "nodes", name] => {
            exists(state, "nodes", None, name).await?;
            let items = node_metrics(state, rules, &[name.to_string()]).await?;
            if items.is_empty() {
                return Err(no_metrics("node", None, name));
            }
            Ok(answer(output, "NodeMetricsList", items, true))
        }
        [VERSION, "pods"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let namespaces = names(state, "namespaces", None, &LabelSelector::everything()).await?;
            // Namespaces are queried a few at a time: a cluster with hundreds of them must
            // answer within the aggregator's timeout.
            let permits = Arc::new(tokio::sync::Semaphore::new(NAMESPACE_CONCURRENCY));
            let mut tasks = tokio::task::JoinSet::new();
            for ns in namespaces {
                let (state, selector, fields) = (state.clone(), selector.clone(), fields.clone());
                let permits = permits.clone();
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let set = state.registry.rules();
                    let Some(rules) = set.resource.as_ref() else {
                        return Ok((ns, None));
                    };
                    let pods =
                        fields.filter(&ns, names(&state, "pods", Some(&ns), &selector).await?);
                    if pods.is_empty() {
                        return Ok((ns, None));
                    }
                    let items = pod_metrics(&state, rules, &ns, &pods).await?;
                    Ok::<_, ApiError>((ns, Some(items)))
                });
            }
            // A namespace that fails is left out and logged, as prometheus-adapter does;
            // only when every namespace with pods to query fails is the list a failure.
            let mut by_namespace = BTreeMap::new();
            let mut failed: Option<ApiError> = None;
            while let Some(done) = tasks.join_next().await {
                match done.map_err(|e| ApiError::Internal(format!("listing pod metrics: {e}")))? {
                    Ok((ns, Some(items))) => {
                        by_namespace.insert(ns, items);
                    }
                    Ok((_, None)) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "listing the pod metrics of a namespace failed; it is left out of the list");
                        failed.get_or_insert(e);
                    }
                }
            }
            if let (true, Some(e)) = (by_namespace.is_empty(), failed) {
                return Err(e);
            }
            Ok(answer(
                output,
                "PodMetricsList",
                by_namespace.into_values().flatten().collect(),
                false,
            ))
        }
        [VERSION, "namespaces", ns, "pods"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let pods = fields.filter(ns, names(state, "pods", Some(ns), &selector).await?);
            Ok(answer(
                output,
                "PodMetricsList",
                pod_metrics(state, rules, ns, &pods).await?,
                false,
            ))
        }
        [VERSION, "namespaces", ns, "pods", name] => {
            exists(state, "pods", Some(ns), name).await?;
            let items = pod_metrics(state, rules, ns, &[name.to_string()]).await?;
            if items.is_empty() {
                return Err(no_metrics("pod", Some(ns), name));
            }
            Ok(answer(output, "PodMetricsList", items, true))
        }
        _ => Err(ApiError::not_found(format!(
            "the server could not find the requested resource /apis/{RESOURCE_GROUP}/{}",
            segs.join("/")
        ))),
    }
}

/// The handler of every `/apis/metrics.k8s.io` path.
pub async fn handler(State(state): State<AppState>, req: Request) -> Response {
    let set = state.registry.rules();
    let Some(rules) = set.resource.as_ref() else {
        return ApiError::not_found(format!(
            "the server could not find the requested resource: {RESOURCE_GROUP} is not served, as the rule file has no resourceRules"
        ))
        .into_response();
    };
    let segs = segments(req.uri().path(), "/apis/metrics.k8s.io");
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] => return json(&resource_group()),
        [VERSION] => return json(&resource_list()),
        [v, ..] if *v != VERSION => {
            return ApiError::not_found(format!(
                "the server could not find the requested resource: version \"{v}\" of {RESOURCE_GROUP} is not served (v1beta1 is)"
            ))
            .into_response()
        }
        _ => {}
    }
    if segs.len() < 2 {
        return not_found(req).await;
    }
    counted_as(
        Counted::resource(&segs),
        values(&state, rules, &segs, req).await,
    )
}

/// The answer to a path of metrics.k8s.io's version split into `segs`, with `rules`.
async fn values(state: &AppState, rules: &ResourceRules, segs: &[&str], req: Request) -> Response {
    let params = query_params(&req);
    let route = if segs.get(1) == Some(&"nodes") {
        "resource/nodes"
    } else {
        "resource/pods"
    };
    let kind = if route == "resource/nodes" {
        "nodes.metrics.k8s.io"
    } else {
        "pods.metrics.k8s.io"
    };
    if let Err(e) = crate::request::refuse_watch(&params, kind) {
        return e.into_response();
    }
    let output = match crate::table::output(&req, &params) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    // A Table is not remembered as a stale value: the key names the request, not its form.
    let key = match output {
        Output::Object => request_key(state, &req, &params),
        Output::Table { .. } => None,
    };
    let result = serve(state, rules, segs, &params, output).await;
    with_route(route, remembered(state, "resource", key, result).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_truncated_and_never_negative() {
        assert_eq!(usage_milli(0.1529), 152);
        assert_eq!(usage_milli(1.0), 1000);
        assert_eq!(usage_milli(f64::NAN), 0);
        assert_eq!(usage_milli(-0.5), 0);
        assert_eq!(usage_milli(f64::INFINITY), i64::MAX);
    }

    #[test]
    fn memory_prints_in_binary_units() {
        assert_eq!(quantity("memory", 134_217_728_000).to_string(), "128Mi");
        assert_eq!(quantity("memory", 1_000_000).to_string(), "1k");
        assert_eq!(quantity("cpu", 152).to_string(), "152m");
    }

    async fn body(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(name: &str, containers: &[(&str, i64, i64)]) -> PodMetrics {
        PodMetrics {
            kind: "PodMetrics",
            api_version: API_VERSION,
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("shop".into()),
                creation_timestamp: "2026-12-06T10:00:00Z".into(),
                labels: BTreeMap::new(),
            },
            timestamp: "2026-12-06T09:59:30Z".into(),
            window: "5m0s".into(),
            containers: containers
                .iter()
                .map(|(c, cpu, mem)| ContainerMetrics {
                    name: c.to_string(),
                    usage: [
                        ("cpu", quantity("cpu", *cpu)),
                        ("memory", quantity("memory", *mem * 1000)),
                    ]
                    .into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn tables_sum_each_pods_containers_and_carry_what_is_asked() {
        use crate::table::Include;
        let pods = || {
            vec![
                pod("web-1", &[("app", 100, 64 << 20), ("proxy", 50, 16 << 20)]),
                pod("web-2", &[("app", 1500, 1 << 30)]),
            ]
        };
        let table = |include| Output::Table {
            api_version: "meta.k8s.io/v1",
            include,
        };
        let t = body(answer(
            table(Include::Metadata),
            "PodMetricsList",
            pods(),
            false,
        ))
        .await;
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        let columns: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap_or_else(|| panic!("{t}"))
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Name", "cpu", "memory", "Window"]);
        assert_eq!(t["columnDefinitions"][1]["format"], "quantity");
        assert_eq!(
            t["rows"][0]["cells"],
            serde_json::json!(["web-1", "150m", "80Mi", "5m0s"])
        );
        assert_eq!(
            t["rows"][1]["cells"],
            serde_json::json!(["web-2", "1500m", "1Gi", "5m0s"])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "shop");
        assert!(t["rows"][0]["object"].get("containers").is_none(), "{t}");
        let t = body(answer(
            table(Include::Object),
            "PodMetricsList",
            pods(),
            false,
        ))
        .await;
        assert_eq!(t["rows"][1]["object"]["kind"], "PodMetrics");
        assert_eq!(t["rows"][1]["object"]["containers"][0]["name"], "app");
        let t = body(answer(table(Include::None), "PodMetricsList", pods(), true)).await;
        assert!(t["rows"][0]["object"].is_null(), "{t}");
        // No rows: no columns either, as Kubernetes answers.
        let t = body(answer(
            table(Include::Metadata),
            "PodMetricsList",
            Vec::<PodMetrics>::new(),
            false,
        ))
        .await;
        assert!(
            t["columnDefinitions"].is_null() && t["rows"].is_null(),
            "{t}"
        );
        // Without a Table the object or the list itself.
        let o = body(answer(Output::Object, "PodMetricsList", pods(), true)).await;
        assert_eq!(o["kind"], "PodMetrics");
        let o = body(answer(Output::Object, "PodMetricsList", pods(), false)).await;
        assert_eq!(o["kind"], "PodMetricsList");
        assert_eq!(o["items"].as_array().map(Vec::len), Some(2));
    }
}
