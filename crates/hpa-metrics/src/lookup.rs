//! An object lookup for one HPA's scale target: its pods answered from what was already read
//! of them, everything else asked of the lookup it wraps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use promhpa_core::selector::LabelSelector;
use promhpa_hpa::calc::PodPhase;
use promhpa_hpa::target::ScaleTarget;

/// An object lookup that answers for the scale target's pods from what was already read of
/// them, and asks `inner` for everything else: explaining one HPA needs no cluster-wide
/// pod cache (nor the permission to list every namespace's pods).
pub struct TargetPodsLookup {
    namespace: String,
    pods: BTreeMap<String, BTreeMap<String, String>>,
    /// Those of `pods` in phase Running (or given without a status).
    running: BTreeSet<String>,
    inner: Arc<dyn promhpa_core::lookup::ObjectLookup>,
}

impl TargetPodsLookup {
    pub fn new(target: &ScaleTarget, inner: Arc<dyn promhpa_core::lookup::ObjectLookup>) -> Self {
        TargetPodsLookup {
            namespace: target.namespace.clone(),
            pods: target.pod_labels.clone(),
            running: target
                .pods
                .iter()
                .filter(|p| p.phase == PodPhase::Running)
                .map(|p| p.name.clone())
                .collect(),
            inner,
        }
    }
}

impl TargetPodsLookup {
    /// Whether a question about `group_resource` in `namespace` is about the target's pods.
    fn answers_for(
        &self,
        group_resource: &promhpa_core::GroupResource,
        namespace: Option<&str>,
    ) -> bool {
        group_resource.group.is_empty()
            && group_resource.resource == "pods"
            && namespace == Some(self.namespace.as_str())
    }
}

impl promhpa_core::lookup::ObjectLookup for TargetPodsLookup {
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> promhpa_core::BoxFuture<
        'a,
        Result<promhpa_core::lookup::ResourceMapping, promhpa_core::LookupError>,
    > {
        self.inner.resolve(resource)
    }

    fn names<'a>(
        &'a self,
        group_resource: &'a promhpa_core::GroupResource,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> promhpa_core::BoxFuture<'a, Result<Vec<String>, promhpa_core::LookupError>> {
        if !self.answers_for(group_resource, namespace) {
            return self.inner.names(group_resource, namespace, selector);
        }
        let names: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, labels)| selector.matches(labels))
            .map(|(name, _)| name.clone())
            .collect();
        Box::pin(async move { Ok(names) })
    }

    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> promhpa_core::BoxFuture<'a, Result<Vec<String>, promhpa_core::LookupError>> {
        if namespace != Some(self.namespace.as_str()) {
            return self.inner.running_pods(namespace, selector);
        }
        let names: Vec<String> = self
            .pods
            .iter()
            .filter(|(name, labels)| self.running.contains(*name) && selector.matches(labels))
            .map(|(name, _)| name.clone())
            .collect();
        Box::pin(async move { Ok(names) })
    }

    fn labels<'a>(
        &'a self,
        group_resource: &'a promhpa_core::GroupResource,
        namespace: Option<&'a str>,
        names: &'a [String],
    ) -> promhpa_core::BoxFuture<'a, BTreeMap<String, BTreeMap<String, String>>> {
        if !self.answers_for(group_resource, namespace) {
            return self.inner.labels(group_resource, namespace, names);
        }
        let labels = names
            .iter()
            .filter_map(|n| self.pods.get(n).map(|l| (n.clone(), l.clone())))
            .collect();
        Box::pin(async move { labels })
    }
}
