//! Resource mapping from API discovery: which names (`po`, `pod`, `pods`, `Pod`,
//! `deployments.apps`, CRDs) mean which group, version, resource and kind.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use promhpa_core::{GroupResource, LookupError, ResourceMapping};
use tokio::time::Instant;

use crate::KubeError;

/// One resource as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub mapping: ResourceMapping,
    pub singular: String,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
}

/// A snapshot of the API server's resources, in discovery's priority order (the core group
/// first, then groups as the server lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceMap {
    resources: Vec<ResourceInfo>,
}

impl ResourceMap {
    pub fn new(resources: Vec<ResourceInfo>) -> Self {
        ResourceMap { resources }
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Resolves a resource as written by a user: plural, singular, short name or kind
    /// (case-insensitive), optionally qualified with its group (`deployments.apps`) or
    /// version and group (`deployments.v1.apps`). Plural names win over singular names,
    /// those over short names, those over kinds; within each, the first group in priority
    /// order wins.
    pub fn resolve(&self, name: &str) -> Option<&ResourceInfo> {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return None;
        }
        if let Some(found) = self.find(&name, None, None) {
            return Some(found);
        }
        let (resource, qualifier) = name.split_once('.')?;
        if let Some(found) = self.find(resource, Some(qualifier), None) {
            return Some(found);
        }
        let (version, group) = qualifier.split_once('.')?;
        self.find(resource, Some(group), Some(version))
    }

    /// The resource whose kind is `kind` (exactly, as a `scaleTargetRef` names it) in
    /// `group`.
    pub fn for_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.mapping.group_resource.group == group && r.mapping.kind == kind)
    }

    /// The resource with exactly this group and plural name.
    pub fn get(&self, group_resource: &GroupResource) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| &r.mapping.group_resource == group_resource)
    }

    fn find(
        &self,
        name: &str,
        group: Option<&str>,
        version: Option<&str>,
    ) -> Option<&ResourceInfo> {
        let candidates = || {
            self.resources.iter().filter(move |r| {
                group.is_none_or(|g| r.mapping.group_resource.group == g)
                    && version.is_none_or(|v| r.mapping.version == v)
            })
        };
        candidates()
            .find(|r| r.mapping.group_resource.resource == name)
            .or_else(|| candidates().find(|r| r.singular == name))
            .or_else(|| candidates().find(|r| r.short_names.iter().any(|s| s == name)))
            .or_else(|| candidates().find(|r| r.mapping.kind.to_ascii_lowercase() == name))
    }
}

fn push_resources(out: &mut Vec<ResourceInfo>, group: &str, version: &str, list: APIResourceList) {
    for r in list.resources {
        if r.name.contains('/') {
            continue; // subresources
        }
        let singular = if r.singular_name.is_empty() {
            r.kind.to_ascii_lowercase()
        } else {
            r.singular_name
        };
        out.push(ResourceInfo {
            mapping: ResourceMapping {
                group_resource: GroupResource::new(group, r.name),
                version: version.to_string(),
                kind: r.kind,
                namespaced: r.namespaced,
            },
            singular,
            short_names: r.short_names.unwrap_or_default(),
            verbs: r.verbs,
        });
    }
}

/// Reads the whole resource map from the API server: `/api`, `/apis` and each group's
/// preferred version. A group whose version document cannot be read (an unavailable
/// aggregated API) is left out rather than failing discovery.
pub async fn discover(client: &kube::Client) -> Result<ResourceMap, KubeError> {
    let mut resources = Vec::new();
    let core = client
        .list_core_api_versions()
        .await
        .map_err(|e| KubeError::request("/api", e))?;
    let core_version = core
        .versions
        .into_iter()
        .next()
        .unwrap_or_else(|| "v1".to_string());
    let list = client
        .list_core_api_resources(&core_version)
        .await
        .map_err(|e| KubeError::request(&format!("/api/{core_version}"), e))?;
    push_resources(&mut resources, "", &core_version, list);
    let groups = client
        .list_api_groups()
        .await
        .map_err(|e| KubeError::request("/apis", e))?;
    for group in groups.groups {
        let Some(preferred) = group
            .preferred_version
            .or_else(|| group.versions.into_iter().next())
        else {
            continue;
        };
        match client
            .list_api_group_resources(&preferred.group_version)
            .await
        {
            Ok(list) => push_resources(&mut resources, &group.name, &preferred.version, list),
            Err(e) => {
                let e = KubeError::request(&format!("/apis/{}", preferred.group_version), e);
                tracing::warn!(group = %group.name, error = %e, "skipping api group in discovery")
            }
        }
    }
    Ok(ResourceMap::new(resources))
}

/// The current resource map, refreshed periodically ([`Discovery::run_periodic`]) and
/// when a name is not found (at most once per `min_refresh_interval`), so that resources
/// installed after start (CRDs) resolve without a restart.
pub struct Discovery {
    client: kube::Client,
    map: RwLock<Arc<ResourceMap>>,
    last_refresh: Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
    min_refresh_interval: Duration,
}

impl Discovery {
    pub fn new(client: kube::Client, min_refresh_interval: Duration) -> Self {
        Discovery {
            client,
            map: RwLock::new(Arc::new(ResourceMap::default())),
            last_refresh: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            min_refresh_interval,
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<ResourceMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads discovery again and replaces the snapshot.
    pub async fn refresh(&self) -> Result<Arc<ResourceMap>, KubeError> {
        let _one_at_a_time = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<Arc<ResourceMap>, KubeError> {
        let started = Instant::now();
        let map = Arc::new(discover(&self.client).await?);
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map.clone();
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
        Ok(map)
    }

    /// Refreshes every `every`, forever; errors are logged and the previous map kept.
    pub async fn run_periodic(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "refreshing api discovery");
            }
        }
    }

    fn may_refresh(&self) -> bool {
        let last = *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
        last.is_none_or(|t| t.elapsed() >= self.min_refresh_interval)
    }

    /// Resolves `name` in the snapshot, refreshing discovery once on a miss.
    pub async fn resolve(&self, name: &str) -> Result<ResourceMapping, LookupError> {
        if let Some(found) = self.snapshot().resolve(name) {
            return Ok(found.mapping.clone());
        }
        self.refresh_on_miss().await?;
        self.snapshot()
            .resolve(name)
            .map(|r| r.mapping.clone())
            .ok_or_else(|| LookupError::UnknownResource(name.to_string()))
    }

    /// The resource with exactly `group_resource`, refreshing discovery once on a miss.
    pub async fn get(&self, group_resource: &GroupResource) -> Result<ResourceInfo, LookupError> {
        if let Some(found) = self.snapshot().get(group_resource) {
            return Ok(found.clone());
        }
        self.refresh_on_miss().await?;
        self.snapshot()
            .get(group_resource)
            .cloned()
            .ok_or_else(|| LookupError::UnknownResource(group_resource.to_string()))
    }

    async fn refresh_on_miss(&self) -> Result<(), LookupError> {
        // Concurrent misses wait for one refresh instead of each starting their own.
        let _one_at_a_time = self.refreshing.lock().await;
        if !self.may_refresh() {
            return Ok(());
        }
        match self.refresh_locked().await {
            Ok(_) => Ok(()),
            Err(e) if self.snapshot().is_empty() => Err(LookupError::Unavailable(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "refreshing api discovery after a miss");
                Ok(())
            }
        }
    }
}
