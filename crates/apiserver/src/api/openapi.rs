//! The OpenAPI documents: v2 at `/openapi/v2`, and v3 per group version under
//! `/openapi/v3`, describing the metric value lists served (and the metrics.k8s.io types
//! when the rule file has `resourceRules`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::request::{json, not_found};
use crate::state::AppState;
use crate::types::{CUSTOM_GROUP, EXTERNAL_GROUP, RESOURCE_GROUP};

/// `/openapi/v2`: one document of every path and definition served.
pub(super) async fn v2(State(state): State<AppState>) -> Response {
    let resource = state.registry.rules().resource.is_some();
    json(&serde_json::json!({
        "swagger": "2.0",
        "info": {"title": "promhpa", "version": env!("CARGO_PKG_VERSION")},
        "paths": openapi_paths(None, resource),
        "definitions": all_definitions(resource),
    }))
}

/// `/openapi/v3`: where the document of each group version is.
pub(super) async fn v3(State(state): State<AppState>) -> Response {
    let resource = state.registry.rules().resource.is_some();
    let mut paths = serde_json::Map::new();
    for gv in openapi_group_versions(resource) {
        paths.insert(
            format!("apis/{gv}"),
            serde_json::json!({"serverRelativeURL": format!("/openapi/v3/apis/{gv}")}),
        );
    }
    json(&serde_json::json!({ "paths": paths }))
}

/// `/openapi/v3/apis/{group}/{version}`: the document of one group version.
pub(super) async fn v3_group(State(state): State<AppState>, req: Request<Body>) -> Response {
    let resource = state.registry.rules().resource.is_some();
    let gv = req
        .uri()
        .path()
        .trim_start_matches("/openapi/v3/apis/")
        .to_string();
    if !openapi_group_versions(resource).contains(&gv) {
        return not_found(req).await;
    }
    json(&serde_json::json!({
        "openapi": "3.0.0",
        "info": {"title": "promhpa", "version": env!("CARGO_PKG_VERSION")},
        "paths": openapi_paths(Some(&gv), resource),
        "components": {"schemas": all_definitions(resource)},
    }))
}

/// The metrics.k8s.io types, for servers with `resourceRules`.
fn resource_definitions() -> serde_json::Value {
    let usage = serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}});
    let meta = serde_json::json!({"type": "object", "properties": {
        "name": {"type": "string"}, "namespace": {"type": "string"},
        "creationTimestamp": {"type": "string", "format": "date-time"}}});
    let gvk = |kind: &str| serde_json::json!([{"group": RESOURCE_GROUP, "version": "v1beta1", "kind": kind}]);
    let pod = serde_json::json!({"type": "object", "x-kubernetes-group-version-kind": gvk("PodMetrics"),
        "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": meta,
        "timestamp": {"type": "string", "format": "date-time"}, "window": {"type": "string"},
        "containers": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "usage": usage}}}}});
    let node = serde_json::json!({"type": "object", "x-kubernetes-group-version-kind": gvk("NodeMetrics"),
        "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": meta,
        "timestamp": {"type": "string", "format": "date-time"}, "window": {"type": "string"}, "usage": usage}});
    let list = |kind: &str, item: &serde_json::Value| {
        serde_json::json!({"type": "object",
        "x-kubernetes-group-version-kind": gvk(kind),
        "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"},
        "metadata": {"type": "object"}, "items": {"type": "array", "items": item}}})
    };
    serde_json::json!({
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList": list("PodMetricsList", &pod),
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics": pod,
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetricsList": list("NodeMetricsList", &node),
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics": node,
    })
}

fn openapi_definitions() -> serde_json::Value {
    let obj_ref = serde_json::json!({"type": "object", "properties": {
        "kind": {"type": "string"}, "namespace": {"type": "string"},
        "name": {"type": "string"}, "apiVersion": {"type": "string"}}});
    serde_json::json!({
        "io.k8s.metrics.pkg.apis.custom_metrics.v1beta1.MetricValueList": {"type": "object",
            "x-kubernetes-group-version-kind": [{"group": CUSTOM_GROUP, "version": "v1beta1", "kind": "MetricValueList"}],
            "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": {"type": "object"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "describedObject": obj_ref, "metricName": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
                "window": {"type": "integer", "format": "int64"}, "value": {"type": "string"}, "selector": {"type": "object"}}}}}},
        "io.k8s.metrics.pkg.apis.custom_metrics.v1beta2.MetricValueList": {"type": "object",
            "x-kubernetes-group-version-kind": [{"group": CUSTOM_GROUP, "version": "v1beta2", "kind": "MetricValueList"}],
            "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": {"type": "object"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "describedObject": obj_ref, "metric": {"type": "object", "properties": {"name": {"type": "string"}, "selector": {"type": "object"}}},
                "timestamp": {"type": "string", "format": "date-time"}, "windowSeconds": {"type": "integer", "format": "int64"}, "value": {"type": "string"}}}}}},
        "io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList": {"type": "object",
            "x-kubernetes-group-version-kind": [{"group": EXTERNAL_GROUP, "version": "v1beta1", "kind": "ExternalMetricValueList"}],
            "properties": {"kind": {"type": "string"}, "apiVersion": {"type": "string"}, "metadata": {"type": "object"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "metricName": {"type": "string"}, "metricLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "timestamp": {"type": "string", "format": "date-time"}, "window": {"type": "integer", "format": "int64"}, "value": {"type": "string"}}}}}}
    })
}

fn openapi_paths(group: Option<&str>, resource_metrics: bool) -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    let op = |def: &str, v3: bool| {
        let schema = if v3 {
            serde_json::json!({"$ref": format!("#/components/schemas/{def}")})
        } else {
            serde_json::json!({"$ref": format!("#/definitions/{def}")})
        };
        let resp = if v3 {
            serde_json::json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
        } else {
            serde_json::json!({"description": "OK", "schema": schema})
        };
        serde_json::json!({"get": {"produces": ["application/json"], "responses": {"200": resp}}})
    };
    let v3 = group.is_some();
    for v in ["v1beta1", "v1beta2"] {
        if group.is_none_or(|g| g == format!("{CUSTOM_GROUP}/{v}")) {
            let def = format!("io.k8s.metrics.pkg.apis.custom_metrics.{v}.MetricValueList");
            for p in [
                "namespaces/{namespace}/{resource}/{name}/{metric}",
                "{resource}/{name}/{metric}",
                "namespaces/{namespace}/metrics/{metric}",
            ] {
                paths.insert(format!("/apis/{CUSTOM_GROUP}/{v}/{p}"), op(&def, v3));
            }
        }
    }
    if group.is_none_or(|g| g == format!("{EXTERNAL_GROUP}/v1beta1")) {
        paths.insert(
            format!("/apis/{EXTERNAL_GROUP}/v1beta1/namespaces/{{namespace}}/{{metric}}"),
            op(
                "io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList",
                v3,
            ),
        );
    }
    let resource_gv = format!("{RESOURCE_GROUP}/v1beta1");
    if resource_metrics && group.is_none_or(|g| g == resource_gv) {
        let def = |kind: &str| format!("io.k8s.metrics.pkg.apis.metrics.v1beta1.{kind}");
        for (p, kind) in [
            ("nodes", "NodeMetricsList"),
            ("nodes/{name}", "NodeMetrics"),
            ("pods", "PodMetricsList"),
            ("namespaces/{namespace}/pods", "PodMetricsList"),
            ("namespaces/{namespace}/pods/{name}", "PodMetrics"),
        ] {
            paths.insert(format!("/apis/{resource_gv}/{p}"), op(&def(kind), v3));
        }
    }
    serde_json::Value::Object(paths)
}

/// The definitions served: the custom and external types, and the resource ones with
/// `resourceRules`.
fn all_definitions(resource_metrics: bool) -> serde_json::Value {
    let mut defs = openapi_definitions();
    if let (true, Some(d), serde_json::Value::Object(r)) = (
        resource_metrics,
        defs.as_object_mut(),
        resource_definitions(),
    ) {
        d.extend(r);
    }
    defs
}

/// The group versions with an OpenAPI v3 document.
fn openapi_group_versions(resource_metrics: bool) -> Vec<String> {
    let mut gvs = vec![
        format!("{CUSTOM_GROUP}/v1beta1"),
        format!("{CUSTOM_GROUP}/v1beta2"),
        format!("{EXTERNAL_GROUP}/v1beta1"),
    ];
    if resource_metrics {
        gvs.push(format!("{RESOURCE_GROUP}/v1beta1"));
    }
    gvs
}
