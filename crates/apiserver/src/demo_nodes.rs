//! `GET /api/v1/nodes` for `serve --demo`: the Node objects of the demo object set, so that
//! `kubectl top node` (which lists nodes from the core API before asking metrics.k8s.io for
//! their usage) works against the demo as it does against a cluster.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

/// The Node objects of a Kubernetes object file (a `List`, a sequence or documents).
pub fn nodes_of(text: &str) -> Result<Vec<Value>, promhpa_core::yaml::Error> {
    let mut nodes = Vec::new();
    for doc in promhpa_core::yaml::documents::<Value>(text) {
        let value = doc?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => o
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            other => vec![other],
        };
        nodes.extend(
            items
                .into_iter()
                .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Node")),
        );
    }
    Ok(nodes)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The routes: the list and single nodes, as the core API serves them.
pub fn router(nodes: Vec<Value>) -> Router {
    let list = json!({
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": nodes,
    });
    let by_name = nodes;
    Router::new()
        .route(
            "/api/v1/nodes",
            get(move || {
                let list = list.clone();
                async move { json_response(StatusCode::OK, &list) }
            }),
        )
        .route(
            "/api/v1/nodes/{name}",
            get(move |Path(name): Path<String>| {
                let node = by_name
                    .iter()
                    .find(|n| n["metadata"]["name"].as_str() == Some(name.as_str()))
                    .cloned();
                async move {
                    match node {
                        Some(n) => json_response(StatusCode::OK, &n),
                        None => json_response(
                            StatusCode::NOT_FOUND,
                            &json!({
                                "kind": "Status",
                                "apiVersion": "v1",
                                "metadata": {},
                                "status": "Failure",
                                "message": format!("nodes \"{name}\" not found"),
                                "reason": "NotFound",
                                "details": {"name": name, "kind": "nodes"},
                                "code": 404,
                            }),
                        ),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_object_set_has_nodes_its_pods_run_on() {
        let nodes = nodes_of(promhpa_promql_eval::demo::OBJECTS).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["demo-node-1", "demo-node-2"]);
        assert!(nodes
            .iter()
            .all(|n| n["status"]["allocatable"]["cpu"].is_string()));
        for node in promhpa_promql_eval::demo::NODES {
            assert!(names.contains(&node), "{node}");
        }
    }
}
