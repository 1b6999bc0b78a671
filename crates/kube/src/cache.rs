//! A metadata-only watch cache of one resource, kept by kube's watcher: LIST (paginated),
//! then WATCH from the list's resourceVersion; a watch that ends is resumed from the last
//! version seen, a watch that expired (410 Gone) is replaced by a new LIST, errors back off
//! as client-go's reflector does (0.8 s doubling to 30 s, until the cache is current again).
//! Only each object's namespace, name and labels are kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use promhpa_core::selector::LabelSelector;
use promhpa_core::ResourceMapping;
use tokio::sync::watch;

/// Page size of the LIST that fills the cache.
pub const LIST_PAGE_SIZE: u32 = 500;
/// How long the server keeps one watch open before the cache resumes it.
pub const WATCH_TIMEOUT_SECONDS: u32 = 290;

type Labels = BTreeMap<String, String>;
type Meta = PartialObjectMeta<DynamicObject>;

/// Objects by namespace (empty for cluster-scoped ones), then by name, so a request reads
/// only its namespace and gets names already sorted.
#[derive(Default)]
struct Store {
    objects: HashMap<String, BTreeMap<String, Labels>>,
}

impl Store {
    fn insert(&mut self, object: Meta) {
        let m = object.metadata;
        self.objects
            .entry(m.namespace.unwrap_or_default())
            .or_default()
            .insert(m.name.unwrap_or_default(), m.labels.unwrap_or_default());
    }

    fn remove(&mut self, object: &Meta) {
        let m = &object.metadata;
        let namespace = m.namespace.as_deref().unwrap_or_default();
        if let Some(names) = self.objects.get_mut(namespace) {
            names.remove(m.name.as_deref().unwrap_or_default());
            if names.is_empty() {
                self.objects.remove(namespace);
            }
        }
    }
}

/// What a cache has seen, for observing that the request path does not LIST.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Complete LISTs (the first one and each after an expired watch).
    pub lists: AtomicUsize,
    /// Objects added, changed or deleted by watch events.
    pub events: AtomicUsize,
}

/// How far a cache has come: filling, filled once (then kept current, or stale while the
/// watch fails), or failing to fill, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncState {
    Filling,
    Synced,
    /// The LIST that would fill the cache for the first time failed (403 for a resource
    /// the lister may not read, say); it is retried with back-off.
    Failing(String),
}

/// The cache of one resource kind, filled by [`ObjectCache::run`].
pub struct ObjectCache {
    mapping: ResourceMapping,
    /// The field selector of its LIST and WATCH (`status.phase=Running`), if any.
    fields: Option<&'static str>,
    store: RwLock<Store>,
    synced_tx: watch::Sender<SyncState>,
    pub stats: CacheStats,
}

/// The delay before the watcher tries again after an error: 0.8 s, doubling to 30 s, back
/// to 0.8 s once two minutes passed without an error (client-go's reflector backs off so).
/// kube's own stream back-off starts over at every attempt's first event, so a LIST that
/// keeps failing would be retried every second; and a reset on events alone would let a
/// watch that fails right after each LIST relist every 0.8 s.
#[derive(Debug, Default)]
pub(crate) struct RetryDelay {
    delay: Duration,
    last_error: Option<std::time::Instant>,
}

impl RetryDelay {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(30);
    const RESET_AFTER: Duration = Duration::from_secs(120);

    /// The delay after one more error.
    pub(crate) fn next(&mut self) -> Duration {
        self.next_at(std::time::Instant::now())
    }

    fn next_at(&mut self, now: std::time::Instant) -> Duration {
        let quiet = self
            .last_error
            .is_none_or(|t| now.saturating_duration_since(t) >= Self::RESET_AFTER);
        self.delay = if quiet {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        self.last_error = Some(now);
        self.delay
    }
}

impl ObjectCache {
    pub fn new(mapping: ResourceMapping) -> Self {
        ObjectCache::with_fields(mapping, None)
    }

    /// A cache of the objects the server selects by `fields` (a field selector such as
    /// `status.phase=Running`), kept current as they enter and leave the selection.
    pub fn with_fields(mapping: ResourceMapping, fields: Option<&'static str>) -> Self {
        ObjectCache {
            mapping,
            fields,
            store: RwLock::new(Store::default()),
            synced_tx: watch::channel(SyncState::Filling).0,
            stats: CacheStats::default(),
        }
    }

    pub fn mapping(&self) -> &ResourceMapping {
        &self.mapping
    }

    pub fn is_synced(&self) -> bool {
        *self.synced_tx.borrow() == SyncState::Synced
    }

    /// Waits until the first LIST has filled the cache, at most `timeout`: `Ok` once filled,
    /// at once the error of a LIST that failed while it was never filled, `Err(None)` at the
    /// timeout.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), Option<String>> {
        let mut rx = self.synced_tx.subscribe();
        let state = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| matches!(s, SyncState::Synced | SyncState::Failing(_))),
        )
        .await;
        match state {
            Ok(Ok(s)) => match &*s {
                SyncState::Failing(e) => Err(Some(e.clone())),
                _ => Ok(()),
            },
            _ => Err(None),
        }
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

    /// The labels of those of `names` cached in `namespace` (`None` for cluster-scoped
    /// objects), by name.
    pub fn labels(&self, namespace: Option<&str>, names: &[String]) -> BTreeMap<String, Labels> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let Some(objects) = store.objects.get(namespace.unwrap_or_default()) else {
            return BTreeMap::new();
        };
        names
            .iter()
            .filter_map(|n| objects.get(n).map(|l| (n.clone(), l.clone())))
            .collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        store.objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kube resource of this cache's mapping.
    fn api_resource(&self) -> ApiResource {
        let gr = &self.mapping.group_resource;
        let api_version = if gr.group.is_empty() {
            self.mapping.version.clone()
        } else {
            format!("{}/{}", gr.group, self.mapping.version)
        };
        ApiResource {
            group: gr.group.clone(),
            version: self.mapping.version.clone(),
            api_version,
            kind: self.mapping.kind.clone(),
            plural: gr.resource.clone(),
        }
    }

    /// Keeps the cache current, forever. A relist fills a fresh store that replaces the old
    /// one once complete, so requests never see a half-listed cache.
    pub async fn run(self: Arc<Self>, client: kube::Client) {
        let api: Api<Meta> = Api::all_with(client, &self.api_resource());
        let mut config = watcher::Config::default()
            .page_size(LIST_PAGE_SIZE)
            .timeout(WATCH_TIMEOUT_SECONDS);
        if let Some(fields) = self.fields {
            config = config.fields(fields);
        }
        let mut events = watcher::watcher(api, config).boxed();
        let mut fresh: Option<Store> = None;
        let mut delay = RetryDelay::default();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    let wait = delay.next();
                    tracing::warn!(resource = %self.mapping.group_resource, error = %e, retry_in = ?wait, "watching");
                    // Until the cache is filled once, requests are told why at once.
                    self.synced_tx.send_if_modified(|s| match s {
                        SyncState::Synced => false,
                        _ => {
                            *s = SyncState::Failing(e.to_string());
                            true
                        }
                    });
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            match event {
                Event::Init => fresh = Some(Store::default()),
                Event::InitApply(object) => fresh.get_or_insert_with(Store::default).insert(object),
                Event::InitDone => {
                    let listed = fresh.take().unwrap_or_default();
                    *self.store.write().unwrap_or_else(|e| e.into_inner()) = listed;
                    self.stats.lists.fetch_add(1, Ordering::Relaxed);
                    self.synced_tx.send_replace(SyncState::Synced);
                }
                Event::Apply(object) => {
                    self.stats.events.fetch_add(1, Ordering::Relaxed);
                    self.store
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(object);
                }
                Event::Delete(object) => {
                    self.stats.events.fetch_add(1, Ordering::Relaxed);
                    self.store
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&object);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_as_the_reflector_does_and_start_over_after_two_quiet_minutes() {
        let start = std::time::Instant::now();
        let mut d = RetryDelay::default();
        let waits: Vec<u64> = (0..8)
            .map(|i| d.next_at(start + Duration::from_secs(i)).as_millis() as u64)
            .collect();
        assert_eq!(waits, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        // Errors close together keep the delay up, whatever events came between.
        assert_eq!(d.next_at(start + Duration::from_secs(100)), RetryDelay::MAX);
        // Two minutes without an error: it starts over.
        assert_eq!(
            d.next_at(start + Duration::from_secs(221)),
            Duration::from_millis(800)
        );
    }
}
