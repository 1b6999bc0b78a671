//! The [`ObjectLookup`] trait: which Kubernetes objects a request names, and how resource
//! names (`po`, `pods`, `deployment`, `deployments.apps`) map to API resources.
//!
//! Implemented over Kubernetes watch caches (`promhpa-kube`) and over a static
//! object file for tests and the embedded demo.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::backend::BoxFuture;
use crate::selector::LabelSelector;

/// A Kubernetes group and (plural, lowercase) resource, e.g. `apps` + `deployments`.
/// The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for GroupResource {
    /// `resource.group`, or `resource` for the core group — the form Kubernetes prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl FromStr for GroupResource {
    type Err = std::convert::Infallible;
    /// Parses `resource` or `resource.group` (split at the first dot), as `schema.ParseGroupResource`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", s),
        })
    }
}

/// What a resource name resolves to through API discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMapping {
    pub group_resource: GroupResource,
    /// The preferred version, e.g. `v1` for pods, `v1` for `apps` deployments.
    pub version: String,
    /// The kind, e.g. `Pod`, `Deployment`.
    pub kind: String,
    pub namespaced: bool,
}

/// Why an object lookup failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResource(String),
    #[error("object lookup unavailable: {0}")]
    Unavailable(String),
}

/// Which objects exist, and what resource names mean.
pub trait ObjectLookup: Send + Sync {
    /// Resolve a resource as written by a user or a rule (`pod`, `pods`, `po`, `deployment`,
    /// `deployments.apps`, `Deployment`) to its canonical group/resource and kind.
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<ResourceMapping, LookupError>>;

    /// Names of the objects of `group_resource` in `namespace` (`None` for cluster-scoped
    /// resources) whose labels match `selector`, sorted.
    fn names<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>>;

    /// Names of the pods in phase `Running` in `namespace` (all namespaces for `None`)
    /// whose labels match `selector`, sorted: the pods the resource metrics API reports,
    /// as metrics-server and prometheus-adapter list them (`status.phase=Running`), so a
    /// pending pod running only its init containers or a completed one is not reported.
    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>>;

    /// The labels of those of `names` (objects of `group_resource` in `namespace`) that
    /// are known without asking the cluster again, by name: what the resource metrics
    /// API copies into each PodMetrics and NodeMetrics, as prometheus-adapter does. None
    /// are known by default.
    fn labels<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        names: &'a [String],
    ) -> BoxFuture<'a, BTreeMap<String, BTreeMap<String, String>>> {
        let _ = (group_resource, namespace, names);
        Box::pin(async { BTreeMap::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_resource_round_trips() {
        let gr: GroupResource = "pods".parse().unwrap_or_default();
        assert_eq!(gr, GroupResource::new("", "pods"));
        assert_eq!(gr.to_string(), "pods");
        let gr: GroupResource = "widgets.example.com".parse().unwrap_or_default();
        assert_eq!(gr, GroupResource::new("example.com", "widgets"));
        assert_eq!(gr.to_string(), "widgets.example.com");
    }
}
