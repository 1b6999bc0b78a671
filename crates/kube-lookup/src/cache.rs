//! A metadata-only watch cache of one resource: LIST once (paginated), then WATCH from the
//! list's resourceVersion; a watch that ends is resumed from the last version seen, a watch
//! that expired (410 Gone) is replaced by a new LIST.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use promhpa_core::selector::LabelSelector;
use promhpa_core::ResourceMapping;
use serde::Deserialize;
use tokio::sync::watch;

use crate::api::{KubeApi, ACCEPT_METADATA, ACCEPT_METADATA_LIST};
use crate::KubeError;

/// Page size of the LIST that fills the cache.
pub const LIST_PAGE_SIZE: usize = 500;
/// How long the server keeps one watch open before the cache resumes it.
pub const WATCH_TIMEOUT_SECONDS: u64 = 290;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    resource_version: String,
}

#[derive(Debug, Default, Deserialize)]
struct MetaOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: String,
}

#[derive(Debug, Deserialize)]
struct MetaList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<MetaOnly>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: serde_json::Value,
}

type Labels = BTreeMap<String, String>;

/// Objects by namespace (empty for cluster-scoped ones), then by name, so a request reads
/// only its namespace and gets names already sorted.
#[derive(Default)]
struct Store {
    objects: HashMap<String, BTreeMap<String, Labels>>,
    resource_version: String,
}

impl Store {
    fn insert(&mut self, namespace: String, name: String, labels: Labels) {
        self.objects
            .entry(namespace)
            .or_default()
            .insert(name, labels);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        if let Some(names) = self.objects.get_mut(namespace) {
            names.remove(name);
            if names.is_empty() {
                self.objects.remove(namespace);
            }
        }
    }
}

/// How many requests a cache made, for observing that the request path does not LIST.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub lists: AtomicUsize,
    pub watches: AtomicUsize,
    pub events: AtomicUsize,
}

/// The cache of one resource kind, filled by [`ObjectCache::run`].
pub struct ObjectCache {
    mapping: ResourceMapping,
    store: RwLock<Store>,
    synced_tx: watch::Sender<bool>,
    pub stats: CacheStats,
}

impl ObjectCache {
    pub fn new(mapping: ResourceMapping) -> Self {
        ObjectCache {
            mapping,
            store: RwLock::new(Store::default()),
            synced_tx: watch::channel(false).0,
            stats: CacheStats::default(),
        }
    }

    pub fn mapping(&self) -> &ResourceMapping {
        &self.mapping
    }

    /// The collection path across all namespaces, e.g. `/api/v1/pods`, `/apis/apps/v1/deployments`.
    pub fn collection_path(&self) -> String {
        let gr = &self.mapping.group_resource;
        if gr.group.is_empty() {
            format!("/api/{}/{}", self.mapping.version, gr.resource)
        } else {
            format!(
                "/apis/{}/{}/{}",
                gr.group, self.mapping.version, gr.resource
            )
        }
    }

    pub fn is_synced(&self) -> bool {
        *self.synced_tx.borrow()
    }

    /// Waits until the first LIST has filled the cache, at most `timeout`.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|synced| *synced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Names of cached objects in `namespace` (all namespaces for `None`) matching
    /// `selector`, sorted and deduplicated.
    pub fn names(&self, namespace: Option<&str>, selector: &LabelSelector) -> Vec<String> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let matching = |names: &BTreeMap<String, Labels>| -> Vec<String> {
            names
                .iter()
                .filter(|(_, labels)| selector.matches(labels))
                .map(|(name, _)| name.clone())
                .collect()
        };
        match namespace {
            Some(ns) => store.objects.get(ns).map(matching).unwrap_or_default(),
            None => {
                let mut names: Vec<String> = store.objects.values().flat_map(matching).collect();
                names.sort();
                names.dedup();
                names
            }
        }
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        store.objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the cache current, forever: LIST, then WATCH, resuming and relisting as needed,
    /// with exponential backoff (0.5s to 30s) after errors.
    pub async fn run(self: Arc<Self>, api: Arc<dyn KubeApi>) {
        let mut backoff = Backoff::default();
        loop {
            match self.list(api.as_ref()).await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(resource = %self.mapping.group_resource, error = %e, "listing");
                    backoff.wait().await;
                    continue;
                }
            }
            loop {
                match self.watch_once(api.as_ref()).await {
                    Ok(0) => backoff.wait().await,
                    Ok(_) => backoff.reset(),
                    Err(KubeError::Gone(_)) => break,
                    Err(e) => {
                        tracing::warn!(resource = %self.mapping.group_resource, error = %e, "watching");
                        backoff.wait().await;
                        if e.status_code().is_some() {
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn list(&self, api: &dyn KubeApi) -> Result<(), KubeError> {
        let base = self.collection_path();
        let mut fresh = Store::default();
        let mut continue_token = String::new();
        let resource_version = loop {
            let mut path = format!("{base}?limit={LIST_PAGE_SIZE}");
            if !continue_token.is_empty() {
                path.push_str("&continue=");
                path.push_str(&percent_encode(&continue_token));
            }
            self.stats.lists.fetch_add(1, Ordering::Relaxed);
            let body = api.get(&path, ACCEPT_METADATA_LIST).await?;
            let page: MetaList = serde_json::from_slice(&body).map_err(|e| KubeError::Decode {
                path: path.clone(),
                message: e.to_string(),
            })?;
            for item in page.items {
                let m = item.metadata;
                fresh.insert(m.namespace, m.name, m.labels);
            }
            if page.metadata.continue_token.is_empty() {
                break page.metadata.resource_version;
            }
            continue_token = page.metadata.continue_token;
        };
        {
            let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
            store.objects = fresh.objects;
            store.resource_version = resource_version;
        }
        self.synced_tx.send_replace(true);
        Ok(())
    }

    /// One watch from the stored resourceVersion until the server ends it; returns how
    /// many events it carried.
    async fn watch_once(&self, api: &dyn KubeApi) -> Result<usize, KubeError> {
        let rv = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .resource_version
            .clone();
        let path = format!(
            "{}?watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECONDS}",
            self.collection_path(),
            percent_encode(&rv)
        );
        self.stats.watches.fetch_add(1, Ordering::Relaxed);
        let mut stream = match api.watch(&path, ACCEPT_METADATA).await {
            Err(e) if e.status_code() == Some(410) => return Err(KubeError::Gone(path)),
            other => other?,
        };
        let mut events = 0;
        while let Some(line) = stream.next_event().await {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: WatchEvent =
                serde_json::from_slice(&line).map_err(|e| KubeError::Decode {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            self.stats.events.fetch_add(1, Ordering::Relaxed);
            events += 1;
            if event.kind == "ERROR" {
                let code = event
                    .object
                    .get("code")
                    .and_then(|c| c.as_u64())
                    .unwrap_or(0);
                let message = event
                    .object
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_string();
                if code == 410 {
                    return Err(KubeError::Gone(path));
                }
                return Err(KubeError::Status {
                    code: u16::try_from(code).unwrap_or(500),
                    path,
                    message,
                });
            }
            let meta: MetaOnly =
                serde_json::from_value(event.object).map_err(|e| KubeError::Decode {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let m = meta.metadata;
            let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
            match event.kind.as_str() {
                "ADDED" | "MODIFIED" => {
                    store.insert(m.namespace, m.name, m.labels);
                }
                "DELETED" => {
                    store.remove(&m.namespace, &m.name);
                }
                _ => {} // BOOKMARK: only the resourceVersion moves
            }
            if !m.resource_version.is_empty() {
                store.resource_version = m.resource_version;
            }
        }
        Ok(events)
    }
}

#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn reset(&mut self) {
        self.failures = 0;
    }

    async fn wait(&mut self) {
        let ms = 500u64.saturating_mul(1 << self.failures.min(6)).min(30_000);
        self.failures = self.failures.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Percent-encodes a query parameter value (continue tokens are base64 with `=`, `+`, `/`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
