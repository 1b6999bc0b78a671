//! MetricRule objects through a stand-in API server: the CRD appearing late, the list, watch
//! events (a change of status alone is no change of the rule) and status writes.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::standin::{Request, Response, StandIn};
use serde_json::json;

const PATH: &str = "/apis/metrics.promhpa.io/v1alpha1/metricrules";

fn object(name: &str, rv: &str, generation: i64, status: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "metrics.promhpa.io/v1alpha1",
        "kind": "MetricRule",
        "metadata": {"name": name, "namespace": "team-a", "resourceVersion": rv, "generation": generation},
        "spec": {"seriesQuery": "x{namespace!=\"\"}", "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>})"},
        "status": status
    })
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Vec<serde_json::Value>>) -> Vec<String> {
    let list = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no list within 30s")
        .unwrap();
    list.iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rule_objects_are_followed_and_their_status_written() {
    let lists = Arc::new(AtomicUsize::new(0));
    let seen = lists.clone();
    let server = StandIn::start(
        Arc::new(move |r: &Request| match (r.method.as_str(), r.base()) {
            ("GET", PATH) if r.is_watch() => Response::Watch {
                lines: [
                    json!({"type": "ADDED", "object": object("b", "11", 1, json!({}))}),
                    // status only, as written by promhpa
                    json!({"type": "MODIFIED", "object": object("a", "12", 1, json!({"metricNames": "pods/x"}))}),
                    json!({"type": "DELETED", "object": object("a", "13", 1, json!({}))}),
                ]
                .iter()
                .map(|e| format!("{e}\n").into_bytes())
                .collect(),
                close: false,
            },
            ("GET", PATH) => {
                // The CRD is installed after promhpa started: the first LIST is a 404.
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Response::status(404, "the server could not find the requested resource");
                }
                Response::json(
                    200,
                    &json!({"apiVersion": "metrics.promhpa.io/v1alpha1", "kind": "MetricRuleList", "metadata": {"resourceVersion": "10"}, "items": [object("a", "10", 1, json!({}))]}),
                )
            }
            ("PATCH", p) if p.ends_with("/metricrules/a/status") => {
                Response::json(200, &object("a", "14", 1, json!({"metricNames": "pods/x"})))
            }
            _ => Response::status(404, "not found"),
        }),
        None,
    )
    .await;
    let (client, _dir) = server.client("    token: t\n");
    let mut rx = promhpa_kube::metric_rules::watch(client.clone());
    assert_eq!(next(&mut rx).await, vec!["a"]);
    assert!(lists.load(Ordering::SeqCst) >= 2, "the 404 was retried");
    assert_eq!(next(&mut rx).await, vec!["a", "b"]);
    // the status-only MODIFIED of "a" sends nothing; its deletion does
    assert_eq!(next(&mut rx).await, vec!["b"]);

    promhpa_kube::metric_rules::write_status(
        &client,
        "team-a",
        "a",
        &json!({"metricNames": "pods/x"}),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let patch = server
        .log()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.base(),
        "/apis/metrics.promhpa.io/v1alpha1/namespaces/team-a/metricrules/a/status"
    );
    assert_eq!(
        patch.header("content-type"),
        Some("application/merge-patch+json")
    );
    let body: serde_json::Value = serde_json::from_slice(&patch.body).unwrap();
    assert_eq!(body, json!({"status": {"metricNames": "pods/x"}}));
}
