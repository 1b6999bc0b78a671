//! A scale target as the HPA controller reads it: its `scale` subresource (selector and
//! replica counts) and the full Pod objects the selector matches (phase, readiness, start
//! time, container requests). Answers are returned as JSON for `promhpa_hpa::objects`, so
//! pods and HPAs are read as dynamic objects (their JSON kept as sent) rather than decoded
//! into k8s-openapi's types and encoded again.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::cache::LIST_PAGE_SIZE;
use crate::discovery::ResourceMap;
use crate::KubeError;

fn json<T: Serialize>(path: &str, object: &T) -> Result<Value, KubeError> {
    serde_json::to_value(object).map_err(|e| KubeError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// The API of `kind` in `namespace` (`apiVersion` as the `scaleTargetRef` gives it), with
/// the plural resource name from discovery.
fn scale_target_api(
    client: &kube::Client,
    map: &ResourceMap,
    api_version: &str,
    kind: &str,
    namespace: &str,
) -> Result<Api<DynamicObject>, KubeError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let info = map.for_kind(group, kind).ok_or_else(|| KubeError::NoKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })?;
    let version = if version.is_empty() {
        info.mapping.version.as_str()
    } else {
        version
    };
    let resource = ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
        plural: info.mapping.group_resource.resource.clone(),
    };
    Ok(Api::namespaced_with(client.clone(), namespace, &resource))
}

/// `GET …/{name}/scale`: the autoscaling/v1 `Scale` object.
pub async fn get_scale(
    client: &kube::Client,
    map: &ResourceMap,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, KubeError> {
    let api = scale_target_api(client, map, api_version, kind, namespace)?;
    let path = format!("{}/{name}/scale", api.resource_url());
    let scale = api
        .get_scale(name)
        .await
        .map_err(|e| KubeError::request(&path, e))?;
    json(&path, &scale)
}

/// The full Pod objects of `namespace` matching `selector` (query-string form), every page.
pub async fn list_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Value>, KubeError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ApiResource::erase::<Pod>(&()));
    let path = api.resource_url().to_string();
    let mut params = ListParams::default().labels(selector).limit(LIST_PAGE_SIZE);
    let mut pods = Vec::new();
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| KubeError::request(&path, e))?;
        for pod in &page.items {
            pods.push(json(&path, pod)?);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(pods),
        }
    }
}

fn hpas(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<HorizontalPodAutoscaler>(&());
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// `GET` the autoscaling/v2 HorizontalPodAutoscaler `name` of `namespace`.
pub async fn get_hpa(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Value, KubeError> {
    let api = hpas(client, namespace);
    let path = format!("{}/{name}", api.resource_url());
    let hpa = api
        .get(name)
        .await
        .map_err(|e| KubeError::request(&path, e))?;
    json(&path, &hpa)
}

/// The autoscaling/v2 HorizontalPodAutoscalers of `namespace`.
pub async fn list_hpas(client: &kube::Client, namespace: &str) -> Result<Vec<Value>, KubeError> {
    let api = hpas(client, namespace);
    let path = api.resource_url().to_string();
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::request(&path, e))?;
    list.items.iter().map(|hpa| json(&path, hpa)).collect()
}
