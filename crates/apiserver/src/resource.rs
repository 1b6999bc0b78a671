//! `metrics.k8s.io` (v1beta1): the CPU and memory of pods and nodes from the rule file's
//! `resourceRules`, as `kubectl top` and the HPA's Resource metrics read them. Served only
//! when the rule file has `resourceRules`.
//!
//! Pods are the ones the object lookup knows (listed by namespace and label selector); the
//! container query gives usage per pod and container, the node query per node. Usage is in
//! milli-units truncated toward zero, NaN and negative values as zero; a pod or node the
//! queries return nothing for is left out of lists, and a GET of it is 404.

use std::collections::BTreeMap;
use std::time::Instant;

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

use crate::api::{json, not_found, now_ms, parse_selector, query_params, with_route, AppState};
use crate::error::ApiError;
use crate::types::{
    rfc3339, ApiGroup, ApiResource, ApiResourceList, GroupVersionForDiscovery, ListMeta,
};

pub const RESOURCE_GROUP: &str = "metrics.k8s.io";
const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

#[derive(Debug, Clone, Serialize)]
struct ObjectMeta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: String,
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
/// zero for NaN and negative values.
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
    let start = Instant::now();
    let (result, shared) = state
        .coalescer
        .query(&state.backend, promql, now_ms())
        .await;
    let outcome = match &result {
        Ok(_) if shared => "shared",
        Ok(_) => "success",
        Err(BackendError::Unavailable { .. }) => "unavailable",
        Err(BackendError::Query { .. }) => "rejected",
        Err(_) => "error",
    };
    state
        .metrics
        .observe_backend(rule.path(), outcome, start.elapsed().as_secs_f64());
    match result {
        Ok(QueryValue::Vector(v)) => Ok(v),
        Ok(other) => Err(ApiError::Internal(format!(
            "{}: the query returned a {} instead of a vector; query: {promql}",
            rule.path(),
            other.type_name()
        ))),
        Err(BackendError::Unavailable { address, message }) => Err(ApiError::Unavailable(format!(
            "unable to fetch resource metrics: backend {address} unavailable: {message}"
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

/// The metrics of pods `names` of `namespace`, in the order of `names`, leaving out pods
/// without any sample.
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
    // pod -> container -> resource -> milli; pod -> earliest sample time.
    let mut usage: BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, i64>>> =
        BTreeMap::new();
    let mut stamps: BTreeMap<String, i64> = BTreeMap::new();
    for (resource, rule) in rules_of(rules) {
        let promql = rule
            .render_container_query(namespace, names)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", rule.path())))?;
        let Some(pod_label) = rule.resources().label_for_resource(&pods) else {
            return Err(ApiError::Internal(format!(
                "{}: no label holds pod names",
                rule.path()
            )));
        };
        for s in query(state, rule, &promql).await? {
            let (Some(pod), Some(container)) = (
                s.labels.get(&pod_label),
                s.labels.get(rule.container_label()),
            ) else {
                continue;
            };
            if !names.contains(pod) {
                continue;
            }
            let slot = usage
                .entry(pod.clone())
                .or_default()
                .entry(container.clone())
                .or_default()
                .entry(resource)
                .or_insert(0);
            *slot = slot.saturating_add(usage_milli(s.value));
            let t = stamps.entry(pod.clone()).or_insert(s.timestamp_ms);
            *t = (*t).min(s.timestamp_ms);
        }
    }
    let created = rfc3339(now_ms());
    let window = window(rules);
    Ok(names
        .iter()
        .filter_map(|name| {
            let containers = usage.remove(name)?;
            Some(PodMetrics {
                kind: "PodMetrics",
                api_version: API_VERSION,
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: Some(namespace.to_string()),
                    creation_timestamp: created.clone(),
                },
                timestamp: rfc3339(stamps.get(name).copied().unwrap_or_else(now_ms)),
                window: window.clone(),
                containers: containers
                    .into_iter()
                    .map(|(c, u)| ContainerMetrics {
                        name: c,
                        usage: u.into_iter().map(|(r, m)| (r, quantity(r, m))).collect(),
                    })
                    .collect(),
            })
        })
        .collect())
}

/// The metrics of nodes `names`, in their order, leaving out nodes without any sample.
async fn node_metrics(
    state: &AppState,
    rules: &ResourceRules,
    names: &[String],
) -> Result<Vec<NodeMetrics>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let nodes = GroupResource::new("", "nodes");
    let mut usage: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
    let mut stamps: BTreeMap<String, i64> = BTreeMap::new();
    for (resource, rule) in rules_of(rules) {
        let promql = rule
            .render_node_query(names)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", rule.path())))?;
        let Some(node_label) = rule.resources().label_for_resource(&nodes) else {
            return Err(ApiError::Internal(format!(
                "{}: no label holds node names",
                rule.path()
            )));
        };
        for s in query(state, rule, &promql).await? {
            let Some(node) = s.labels.get(&node_label) else {
                continue;
            };
            if !names.contains(node) {
                continue;
            }
            let slot = usage
                .entry(node.clone())
                .or_default()
                .entry(resource)
                .or_insert(0);
            *slot = slot.saturating_add(usage_milli(s.value));
            let t = stamps.entry(node.clone()).or_insert(s.timestamp_ms);
            *t = (*t).min(s.timestamp_ms);
        }
    }
    let created = rfc3339(now_ms());
    let window = window(rules);
    Ok(names
        .iter()
        .filter_map(|name| {
            let u = usage.remove(name)?;
            Some(NodeMetrics {
                kind: "NodeMetrics",
                api_version: API_VERSION,
                metadata: ObjectMeta {
                    name: name.clone(),
                    namespace: None,
                    creation_timestamp: created.clone(),
                },
                timestamp: rfc3339(stamps.get(name).copied().unwrap_or_else(now_ms)),
                window: window.clone(),
                usage: u.into_iter().map(|(r, m)| (r, quantity(r, m))).collect(),
            })
        })
        .collect())
}

fn list<T: Serialize>(kind: &'static str, items: Vec<T>) -> Response {
    json(&MetricsList {
        kind,
        api_version: API_VERSION,
        metadata: ListMeta {},
        items,
    })
}

async fn names(
    state: &AppState,
    resource: &str,
    namespace: Option<&str>,
    selector: &LabelSelector,
) -> Result<Vec<String>, ApiError> {
    state
        .lookup
        .names(&GroupResource::new("", resource), namespace, selector)
        .await
        .map_err(lookup_error)
}

/// A single object: 404 when the object does not exist, and when it exists without
/// metrics, in the words of the API server.
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
        Err(ApiError::not_found(format!(
            "{resource} \"{name}\" not found"
        )))
    }
}

fn no_metrics(resource: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "{resource}metrics.{RESOURCE_GROUP} \"{name}\" not found (the resourceRules queries return no {resource} usage for it)"
    ))
}

async fn serve(
    state: &AppState,
    rules: &ResourceRules,
    segs: &[&str],
    params: &BTreeMap<String, String>,
) -> Result<Response, ApiError> {
    match segs {
        [VERSION, "nodes"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let names = names(state, "nodes", None, &selector).await?;
            Ok(list(
                "NodeMetricsList",
                node_metrics(state, rules, &names).await?,
            ))
        }
        [VERSION, "nodes", name] => {
            exists(state, "nodes", None, name).await?;
            let mut items = node_metrics(state, rules, &[name.to_string()]).await?;
            items
                .pop()
                .map(|m| json(&m))
                .ok_or_else(|| no_metrics("node", name))
        }
        [VERSION, "pods"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let mut items = Vec::new();
            for ns in names(state, "namespaces", None, &LabelSelector::everything()).await? {
                let pods = names(state, "pods", Some(&ns), &selector).await?;
                items.extend(pod_metrics(state, rules, &ns, &pods).await?);
            }
            Ok(list("PodMetricsList", items))
        }
        [VERSION, "namespaces", ns, "pods"] => {
            let selector = parse_selector(params, "labelSelector")?;
            let pods = names(state, "pods", Some(ns), &selector).await?;
            Ok(list(
                "PodMetricsList",
                pod_metrics(state, rules, ns, &pods).await?,
            ))
        }
        [VERSION, "namespaces", ns, "pods", name] => {
            exists(state, "pods", Some(ns), name).await?;
            let mut items = pod_metrics(state, rules, ns, &[name.to_string()]).await?;
            items
                .pop()
                .map(|m| json(&m))
                .ok_or_else(|| no_metrics("pod", name))
        }
        _ => Err(ApiError::not_found(format!(
            "the server could not find the requested resource /apis/{RESOURCE_GROUP}/{}",
            segs.join("/")
        ))),
    }
}

/// The handler of every `/apis/metrics.k8s.io` path.
pub async fn handler(State(state): State<AppState>, req: Request) -> Response {
    let Some(rules) = state.registry.rules().resource.clone() else {
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
    let params = query_params(&req);
    let route = if segs.get(1) == Some(&"nodes") {
        "resource/nodes"
    } else {
        "resource/pods"
    };
    with_route(
        route,
        serve(&state, &rules, &segs, &params)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    )
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
}
