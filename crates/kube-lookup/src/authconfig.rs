//! Following `kube-system/extension-apiserver-authentication`: the client CA and the
//! request-header settings the API server publishes, applied to a
//! [`DelegatingAuthenticator`] when they change (CA rotation without a restart).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use promhpa_auth::authn::AuthnSources;
use promhpa_auth::configmap::{
    merge_sources, sources_from_configmap, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE,
};
use promhpa_auth::DelegatingAuthenticator;
use serde::Deserialize;

use crate::api::KubeApi;
use crate::KubeError;

#[derive(Debug, Default, Deserialize)]
struct ConfigMap {
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: serde_json::Value,
}

fn object_path() -> String {
    format!("/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps/{CONFIGMAP_NAME}")
}

fn watch_path() -> String {
    format!(
        "/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps?watch=1&fieldSelector=metadata.name%3D{CONFIGMAP_NAME}&timeoutSeconds=290"
    )
}

/// Reads the configmap once and applies it over `flags` (flags win per authenticator).
pub async fn load_authentication_config(
    api: &dyn KubeApi,
    authenticator: &DelegatingAuthenticator,
    flags: &AuthnSources,
) -> Result<(), KubeError> {
    let path = object_path();
    let body = api.get(&path, "application/json").await?;
    let cm: ConfigMap = serde_json::from_slice(&body).map_err(|e| KubeError::Decode {
        path: path.clone(),
        message: e.to_string(),
    })?;
    apply(&cm.data, authenticator, flags, &path)
}

fn apply(
    data: &BTreeMap<String, String>,
    authenticator: &DelegatingAuthenticator,
    flags: &AuthnSources,
    path: &str,
) -> Result<(), KubeError> {
    let from_cm = sources_from_configmap(data).map_err(|e| KubeError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    authenticator.set_sources(merge_sources(flags.clone(), from_cm));
    Ok(())
}

/// Loads the configmap (an error unless `tolerate_lookup_failure`, as
/// `--authentication-tolerate-lookup-failure`), then watches it forever, applying every
/// change; an invalid change is logged and the previous settings kept.
pub async fn follow_authentication_config(
    api: Arc<dyn KubeApi>,
    authenticator: Arc<DelegatingAuthenticator>,
    flags: AuthnSources,
    tolerate_lookup_failure: bool,
) -> Result<tokio::task::JoinHandle<()>, KubeError> {
    match load_authentication_config(api.as_ref(), &authenticator, &flags).await {
        Ok(()) => {}
        Err(e) if tolerate_lookup_failure => {
            tracing::warn!(error = %e, "reading {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}; continuing with the flags' settings");
            authenticator.set_sources(flags.clone());
        }
        Err(e) => return Err(e),
    }
    Ok(tokio::spawn(async move {
        loop {
            if let Err(e) = watch_once(api.as_ref(), &authenticator, &flags).await {
                tracing::warn!(error = %e, "watching {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }))
}

async fn watch_once(
    api: &dyn KubeApi,
    authenticator: &DelegatingAuthenticator,
    flags: &AuthnSources,
) -> Result<(), KubeError> {
    let path = watch_path();
    let mut stream = api.watch(&path, "application/json").await?;
    while let Some(line) = stream.next_event().await {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event: Event = serde_json::from_slice(&line).map_err(|e| KubeError::Decode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if event.kind != "ADDED" && event.kind != "MODIFIED" {
            continue;
        }
        // A change that cannot be read is skipped like an invalid one: dropping to no CA at
        // all would refuse every proxied request until the next good change.
        let cm: ConfigMap = match serde_json::from_value(event.object) {
            Ok(cm) => cm,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring undecodable {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
                continue;
            }
        };
        if let Err(e) = apply(&cm.data, authenticator, flags, &path) {
            tracing::warn!(error = %e, "ignoring invalid {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
        }
    }
    Ok(())
}
