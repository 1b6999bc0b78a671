//! [`ObjectLookup`] over watch caches started on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_core::selector::LabelSelector;
use promhpa_core::{BoxFuture, GroupResource, LookupError, ObjectLookup, ResourceMapping};
use tokio::task::JoinHandle;

use crate::cache::ObjectCache;
use crate::discovery::Discovery;

/// A cache's resource and the field selector of its list and watch.
type CacheKey = (GroupResource, Option<&'static str>);

/// Object lookup against a Kubernetes API server: resources resolved through
/// [`Discovery`], objects answered from a metadata-only [`ObjectCache`] per resource, each
/// started the first time its resource is asked for. Once a cache has synced, requests
/// read memory only.
pub struct KubeObjectLookup {
    client: kube::Client,
    discovery: Arc<Discovery>,
    /// By resource and field selector: the resource metrics API's running pods have a
    /// cache of their own.
    caches: Mutex<HashMap<CacheKey, Arc<ObjectCache>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sync_timeout: Duration,
    /// Where the watches and the discovery refresh run: the runtime the lookup was made on,
    /// not that of the request that first needs a cache (a serving thread, which stops
    /// with the server).
    runtime: tokio::runtime::Handle,
}

impl KubeObjectLookup {
    /// A lookup whose first request for a resource waits at most `sync_timeout` for its
    /// cache to fill. Must be made inside a tokio runtime, which runs its caches.
    pub fn new(client: kube::Client, discovery: Arc<Discovery>, sync_timeout: Duration) -> Self {
        KubeObjectLookup {
            client,
            discovery,
            caches: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            sync_timeout,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// A lookup of `client`'s cluster with the timings `serve` uses: API discovery answers
    /// kept 10 s and refreshed every `rediscover` (prometheus-adapter's
    /// `--discovery-interval`, 10 minutes by default), a watch cache given 30 s to sync.
    pub fn for_cluster(client: kube::Client, rediscover: Duration) -> Self {
        let discovery = Arc::new(Discovery::new(client.clone(), Duration::from_secs(10)));
        KubeObjectLookup::new(client, discovery, Duration::from_secs(30))
            .with_periodic_discovery(rediscover)
    }

    /// Also refreshes discovery every `every` in the background.
    pub fn with_periodic_discovery(self, every: Duration) -> Self {
        let task = self
            .runtime
            .spawn(self.discovery.clone().run_periodic(every));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        self
    }

    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    /// The cache of `mapping`'s resource, started now if it is not running yet.
    pub fn cache(&self, mapping: &ResourceMapping) -> Arc<ObjectCache> {
        self.cache_with(mapping, None)
    }

    /// The cache of `mapping`'s objects that the field selector `fields` selects, started
    /// now if it is not running yet.
    fn cache_with(
        &self,
        mapping: &ResourceMapping,
        fields: Option<&'static str>,
    ) -> Arc<ObjectCache> {
        let key = (mapping.group_resource.clone(), fields);
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = caches.get(&key) {
            return cache.clone();
        }
        let cache = Arc::new(ObjectCache::with_fields(mapping.clone(), fields));
        caches.insert(key, cache.clone());
        let task = self.runtime.spawn(cache.clone().run(self.client.clone()));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        cache
    }

    /// Starts the caches of `resources` (as written in rules: `pods`, `deployments.apps`)
    /// without waiting for them, so the first metric request finds them filled. Names that
    /// do not resolve are returned.
    pub async fn warm(&self, resources: &[&str]) -> Vec<String> {
        let mut unknown = Vec::new();
        for name in resources {
            match self.discovery.resolve(name).await {
                Ok(mapping) => {
                    self.cache(&mapping);
                }
                Err(_) => unknown.push((*name).to_string()),
            }
        }
        unknown
    }

    /// Resources whose caches are running.
    pub fn cached_resources(&self) -> Vec<GroupResource> {
        let mut out: Vec<_> = self
            .caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|(resource, _)| resource.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Drop for KubeObjectLookup {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl ObjectLookup for KubeObjectLookup {
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<ResourceMapping, LookupError>> {
        Box::pin(self.discovery.resolve(resource))
    }

    fn names<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>> {
        Box::pin(self.cached_names(group_resource, None, namespace, selector))
    }

    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>> {
        Box::pin(async move {
            let pods = GroupResource::new("", "pods");
            self.cached_names(&pods, Some(RUNNING_PODS), namespace, selector)
                .await
        })
    }

    fn labels<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        names: &'a [String],
    ) -> BoxFuture<'a, BTreeMap<String, BTreeMap<String, String>>> {
        let labels = self.cached_labels(group_resource, namespace, names);
        Box::pin(async move { labels })
    }
}

impl KubeObjectLookup {
    /// The labels of `names` from a cache of `group_resource` already running (the running
    /// pods' first, for pods), without starting one.
    fn cached_labels(
        &self,
        group_resource: &GroupResource,
        namespace: Option<&str>,
        names: &[String],
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let cache = {
            let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
            caches
                .get(&(group_resource.clone(), Some(RUNNING_PODS)))
                .or_else(|| caches.get(&(group_resource.clone(), None)))
                .cloned()
        };
        match cache {
            Some(cache) => {
                let namespace = if cache.mapping().namespaced {
                    namespace
                } else {
                    None
                };
                cache.labels(namespace, names)
            }
            None => BTreeMap::new(),
        }
    }
}

/// The field selector of the pods the resource metrics API reports.
const RUNNING_PODS: &str = "status.phase=Running";

impl KubeObjectLookup {
    /// Names from the cache of `group_resource` (selected by `fields`), once it has synced.
    async fn cached_names(
        &self,
        group_resource: &GroupResource,
        fields: Option<&'static str>,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<Vec<String>, LookupError> {
        let info = self.discovery.get(group_resource).await?;
        let has = |verb: &str| info.verbs.iter().any(|v| v == verb);
        let watchable = info.verbs.is_empty() || (has("list") && has("watch"));
        if !watchable {
            return Err(LookupError::Unavailable(format!(
                "{group_resource} cannot be listed and watched"
            )));
        }
        let cache = self.cache_with(&info.mapping, fields);
        match cache.wait_synced(self.sync_timeout).await {
            Ok(()) => {}
            Err(Some(cause)) => {
                return Err(LookupError::Unavailable(format!(
                    "listing {group_resource} failed: {cause}"
                )))
            }
            Err(None) => {
                return Err(LookupError::Unavailable(format!(
                    "cache of {group_resource} has not synced within {:?}",
                    self.sync_timeout
                )))
            }
        }
        let namespace = if info.mapping.namespaced {
            namespace
        } else {
            None
        };
        Ok(cache.names(namespace, selector))
    }
}
