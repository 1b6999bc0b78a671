//! A scale target as the HPA controller reads it: its `scale` subresource (selector and
//! replica counts) and the full Pod objects the selector matches (phase, readiness, start
//! time, container requests). Answers are returned as JSON for `promhpa_hpa::objects`.

use serde::Deserialize;
use serde_json::Value;

use crate::api::KubeApi;
use crate::cache::{percent_encode, LIST_PAGE_SIZE};
use crate::discovery::ResourceMap;
use crate::KubeError;

const ACCEPT_JSON: &str = "application/json";

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, KubeError> {
    serde_json::from_slice(body).map_err(|e| KubeError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// The path of the `scale` subresource of `kind` `name` (`apiVersion` as the
/// `scaleTargetRef` gives it), with the plural resource name from discovery.
pub fn scale_path(
    map: &ResourceMap,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<String, KubeError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let not_found = || KubeError::NoKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    };
    let info = map.for_kind(group, kind).ok_or_else(not_found)?;
    let version = if version.is_empty() {
        info.mapping.version.as_str()
    } else {
        version
    };
    let resource = &info.mapping.group_resource.resource;
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    Ok(format!(
        "{prefix}/namespaces/{}/{resource}/{}/scale",
        percent_encode(namespace),
        percent_encode(name)
    ))
}

/// `GET …/{name}/scale`: the autoscaling/v1 `Scale` object.
pub async fn get_scale(
    api: &dyn KubeApi,
    map: &ResourceMap,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Value, KubeError> {
    let path = scale_path(map, api_version, kind, namespace, name)?;
    let body = api.get(&path, ACCEPT_JSON).await?;
    decode(&path, &body)
}

/// A list of objects of any kind, as the API returns it.
#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    items: Vec<Value>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(default, rename = "continue")]
    continue_token: String,
}

/// The full Pod objects of `namespace` matching `selector` (query-string form), every page.
pub async fn list_pods(
    api: &dyn KubeApi,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Value>, KubeError> {
    let base = format!(
        "/api/v1/namespaces/{}/pods?labelSelector={}&limit={LIST_PAGE_SIZE}",
        percent_encode(namespace),
        percent_encode(selector)
    );
    let mut pods = Vec::new();
    let mut continue_token = String::new();
    loop {
        let mut path = base.clone();
        if !continue_token.is_empty() {
            path.push_str("&continue=");
            path.push_str(&percent_encode(&continue_token));
        }
        let body = api.get(&path, ACCEPT_JSON).await?;
        let page: PodList = decode(&path, &body)?;
        pods.extend(page.items);
        if page.metadata.continue_token.is_empty() {
            return Ok(pods);
        }
        continue_token = page.metadata.continue_token;
    }
}

/// `GET` the autoscaling/v2 HorizontalPodAutoscaler `name` of `namespace`.
pub async fn get_hpa(api: &dyn KubeApi, namespace: &str, name: &str) -> Result<Value, KubeError> {
    let path = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers/{}",
        percent_encode(namespace),
        percent_encode(name)
    );
    let body = api.get(&path, ACCEPT_JSON).await?;
    decode(&path, &body)
}

/// The autoscaling/v2 HorizontalPodAutoscalers of `namespace`.
pub async fn list_hpas(api: &dyn KubeApi, namespace: &str) -> Result<Vec<Value>, KubeError> {
    let path = format!(
        "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
        percent_encode(namespace)
    );
    let body = api.get(&path, ACCEPT_JSON).await?;
    let list: PodList = decode(&path, &body)?;
    Ok(list.items)
}
