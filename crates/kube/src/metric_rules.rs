//! `MetricRule` objects (`metrics.promhpa.io/v1alpha1`) from the cluster: every object, sent
//! as one list whenever one is created, changed or deleted (LIST, then WATCH, resumed and
//! relisted by kube's watcher), and their status written back.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::KubeError;

/// The API group, version, kind and plural of rule objects.
pub const GROUP: &str = "metrics.promhpa.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "MetricRule";
pub const PLURAL: &str = "metricrules";

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// Follow every MetricRule of the cluster: the returned receiver gets the whole set (as the
/// API serves the objects, `status` included) after the first LIST and after each change.
/// A missing CRD or a refused LIST is logged and retried with backoff.
pub fn watch(client: kube::Client) -> mpsc::Receiver<Vec<Value>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(client, &resource());
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut objects: BTreeMap<(String, String), (Value, String)> = BTreeMap::new();
        let mut fresh: Option<BTreeMap<(String, String), (Value, String)>> = None;
        let mut warned = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cannot list or watch MetricRule objects (is the CRD of deploy/overlays/metric-rules installed, and may promhpa list them?); retrying");
                        warned = true;
                    }
                    continue;
                }
            };
            warned = false;
            let changed = match event {
                Event::Init => {
                    fresh = Some(BTreeMap::new());
                    false
                }
                Event::InitApply(object) => {
                    if let Some((key, value)) = entry(&object) {
                        fresh.get_or_insert_with(BTreeMap::new).insert(key, value);
                    }
                    false
                }
                Event::InitDone => {
                    objects = fresh.take().unwrap_or_default();
                    true
                }
                Event::Apply(object) => match entry(&object) {
                    // A change of status only (as written here) is no change of the rule.
                    Some((key, value)) => {
                        let rule = value.1.clone();
                        objects.insert(key, value).map(|(_, old)| old) != Some(rule)
                    }
                    None => false,
                },
                Event::Delete(object) => entry(&object)
                    .map(|(key, _)| objects.remove(&key).is_some())
                    .unwrap_or(false),
            };
            let list = || objects.values().map(|(v, _)| v.clone()).collect();
            if changed && tx.send(list()).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// An object's key, its JSON, and what identifies its rule (spec and generation).
fn entry(object: &DynamicObject) -> Option<((String, String), (Value, String))> {
    let key = (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    );
    let mut value = serde_json::to_value(object).ok()?;
    // The watcher's objects carry no type meta of their own; the compiler wants it.
    value["apiVersion"] = Value::String(format!("{GROUP}/{VERSION}"));
    value["kind"] = Value::String(KIND.to_string());
    let rule = format!(
        "{}/{}",
        object.metadata.generation.unwrap_or_default(),
        value.get("spec").map(Value::to_string).unwrap_or_default()
    );
    Some((key, (value, rule)))
}

/// Write one object's `status` (a merge patch of the status subresource).
pub async fn write_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &Value,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource());
    let patch = serde_json::json!({ "status": status });
    let path = format!("/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status");
    match tokio::time::timeout(
        timeout,
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(KubeError::request(&path, e)),
        Err(_) => Err(KubeError::Transport {
            path,
            message: format!("no answer within {timeout:?}"),
        }),
    }
}
