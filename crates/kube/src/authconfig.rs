//! Following `kube-system/extension-apiserver-authentication`: the client CA and the
//! request-header settings the API server publishes, applied to a
//! [`DelegatingAuthenticator`] when they change (CA rotation without a restart).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use promhpa_auth::authn::AuthnSources;
use promhpa_auth::configmap::{
    merge_sources, sources_from_configmap, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE,
};
use promhpa_auth::DelegatingAuthenticator;

use crate::KubeError;

fn configmaps(client: &kube::Client) -> Api<ConfigMap> {
    Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE)
}

async fn read_configmap(client: &kube::Client) -> Result<BTreeMap<String, String>, KubeError> {
    let api = configmaps(client);
    let path = format!("{}/{CONFIGMAP_NAME}", api.resource_url());
    let cm = api
        .get(CONFIGMAP_NAME)
        .await
        .map_err(|e| KubeError::request(&path, e))?;
    Ok(cm.data.unwrap_or_default())
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

/// The CA files of `--client-ca-file` and `--requestheader-client-ca-file` with what the
/// configmap says, so that either changing re-applies both (flags win per authenticator).
#[derive(Default)]
pub struct AuthnState {
    flags: RwLock<AuthnSources>,
    configmap: RwLock<Option<BTreeMap<String, String>>>,
}

impl AuthnState {
    pub fn new(flags: AuthnSources) -> AuthnState {
        AuthnState {
            flags: RwLock::new(flags),
            configmap: RwLock::new(None),
        }
    }

    fn flags(&self) -> AuthnSources {
        match self.flags.read() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_flags(&self, flags: AuthnSources) {
        match self.flags.write() {
            Ok(mut f) => *f = flags,
            Err(p) => *p.into_inner() = flags,
        }
    }

    fn set_configmap(&self, data: BTreeMap<String, String>) {
        match self.configmap.write() {
            Ok(mut c) => *c = Some(data),
            Err(p) => *p.into_inner() = Some(data),
        }
    }

    /// Apply the flags' CAs and the configmap's (when read) to `authenticator`.
    fn reapply(&self, authenticator: &DelegatingAuthenticator) -> Result<(), KubeError> {
        let data = match self.configmap.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        match data {
            Some(d) => apply(&d, authenticator, &self.flags(), CONFIGMAP_NAME),
            None => {
                authenticator.set_sources(self.flags());
                Ok(())
            }
        }
    }
}

/// The files' contents (CA bundles are small): a rotation that keeps size and mtime is
/// still seen.
fn fingerprint(paths: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).ok()).collect()
}

/// Re-read the `--client-ca-file` and `--requestheader-client-ca-file` files when they
/// change (looked at every `interval`) and apply them; a file that does not load (yet) is
/// logged and the previous CAs kept.
pub fn follow_ca_files(
    flags: promhpa_auth::AuthnFlags,
    state: Arc<AuthnState>,
    authenticator: Arc<DelegatingAuthenticator>,
    interval: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let paths: Vec<PathBuf> = [&flags.client_ca_file, &flags.requestheader_client_ca_file]
        .into_iter()
        .flatten()
        .filter(|p| !p.as_os_str().is_empty())
        .cloned()
        .collect();
    if paths.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut seen = fingerprint(&paths);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&paths);
            if now == seen {
                continue;
            }
            match flags.load() {
                Ok(sources) => {
                    seen = now;
                    state.set_flags(sources);
                    match state.reapply(&authenticator) {
                        Ok(()) => tracing::info!("client CA files changed; using the new CAs"),
                        Err(e) => tracing::warn!(error = %e, "applying the new client CA files"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "client CA files changed but do not load yet; keeping the previous CAs")
                }
            }
        }
    }))
}

/// Loads the configmap (an error unless `tolerate_lookup_failure`, as
/// `--authentication-tolerate-lookup-failure`), then watches it forever, applying every
/// change; a change that cannot be read or is invalid is logged and the previous settings
/// kept (dropping to no CA at all would refuse every proxied request until the next good
/// change).
pub async fn follow_authentication_config(
    client: kube::Client,
    authenticator: Arc<DelegatingAuthenticator>,
    state: Arc<AuthnState>,
    tolerate_lookup_failure: bool,
) -> Result<tokio::task::JoinHandle<()>, KubeError> {
    match read_configmap(&client).await {
        Ok(data) => {
            let flags = state.flags();
            apply(&data, &authenticator, &flags, CONFIGMAP_NAME)?;
            state.set_configmap(data);
        }
        Err(e) if tolerate_lookup_failure => {
            tracing::warn!(error = %e, "reading {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}; continuing with the flags' settings");
            authenticator.set_sources(state.flags());
        }
        Err(e) => return Err(e),
    }
    let api = configmaps(&client);
    let path = format!("{}/{CONFIGMAP_NAME}", api.resource_url());
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
    let mut events = watcher::watcher(api, config).boxed();
    Ok(tokio::spawn(async move {
        let mut delay = crate::cache::RetryDelay::default();
        while let Some(event) = events.next().await {
            let cm = match event {
                Ok(Event::Apply(cm) | Event::InitApply(cm)) => cm,
                Ok(_) => continue,
                Err(e) => {
                    let wait = delay.next();
                    tracing::warn!(error = %e, retry_in = ?wait, "watching {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let data = cm.data.unwrap_or_default();
            match apply(&data, &authenticator, &state.flags(), &path) {
                Ok(()) => state.set_configmap(data),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring invalid {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}")
                }
            }
        }
    }))
}
