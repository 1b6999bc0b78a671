//! Following `kube-system/extension-apiserver-authentication`: the client CA and the
//! request-header settings the API server publishes, applied to a
//! [`DelegatingAuthenticator`] when they change (CA rotation without a restart).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use promhpa_auth::authn::AuthnSources;
use promhpa_auth::configmap::{
    merge_sources, sources_from_configmap, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE,
};
use promhpa_auth::DelegatingAuthenticator;

use crate::KubeError;

fn configmaps(client: &kube::Client) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE)
}

/// Reads the configmap once and applies it over `flags` (flags win per authenticator).
pub async fn load_authentication_config(
    client: &kube::Client,
    authenticator: &DelegatingAuthenticator,
    flags: &AuthnSources,
) -> Result<(), KubeError> {
    let api = configmaps(client);
    let path = format!("{}/{CONFIGMAP_NAME}", api.resource_url());
    let cm = api
        .get(CONFIGMAP_NAME)
        .await
        .map_err(|e| KubeError::request(&path, e))?;
    apply(&cm.data.unwrap_or_default(), authenticator, flags, &path)
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
/// change; a change that cannot be read or is invalid is logged and the previous settings
/// kept (dropping to no CA at all would refuse every proxied request until the next good
/// change).
pub async fn follow_authentication_config(
    client: kube::Client,
    authenticator: Arc<DelegatingAuthenticator>,
    flags: AuthnSources,
    tolerate_lookup_failure: bool,
) -> Result<tokio::task::JoinHandle<()>, KubeError> {
    match load_authentication_config(&client, &authenticator, &flags).await {
        Ok(()) => {}
        Err(e) if tolerate_lookup_failure => {
            tracing::warn!(error = %e, "reading {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}; continuing with the flags' settings");
            authenticator.set_sources(flags.clone());
        }
        Err(e) => return Err(e),
    }
    let api = configmaps(&client);
    let path = format!("{}/{CONFIGMAP_NAME}", api.resource_url());
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    Ok(tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let cm = match event {
                Ok(Event::Apply(cm) | Event::InitApply(cm)) => cm,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "watching {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
                    continue;
                }
            };
            let data = cm.data.unwrap_or_default();
            if let Err(e) = apply(&data, &authenticator, &flags, &path) {
                tracing::warn!(error = %e, "ignoring invalid {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
            }
        }
    }))
}
