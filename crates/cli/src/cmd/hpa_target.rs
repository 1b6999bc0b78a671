//! An HPA's scale target as the controller sees it, read from an object file (`--objects`,
//! `--demo`) or from the cluster (`--kubeconfig`, or in-cluster credentials): the reading is
//! `promhpa_kube::hpa`'s, what the controller makes of it `promhpa_hpa::target`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use promhpa_core::selector::LabelSelector;
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa::target::{status_line, ScaleTarget};
use promhpa_kube::client::ClusterAccess;

/// The API server of `cluster`.
pub fn cluster_api(cluster: &ClusterAccess) -> anyhow::Result<promhpa_kube::Client> {
    cluster.client().context(
        "loading Kubernetes credentials; pass --kubeconfig, or give the objects with --objects",
    )
}

/// The HPA `name` of `namespace` from the cluster, and a line on its status (what the
/// controller last reported).
pub async fn hpa_from_cluster(
    cluster: &ClusterAccess,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(HorizontalPodAutoscaler, String)> {
    let api = cluster_api(cluster)?;
    let (hpa, v) = promhpa_kube::hpa::read_hpa(&api, namespace, name).await?;
    Ok((hpa, status_line(&v, super::backend::now_ms())))
}

/// The target `hpa` scales, read from the cluster the way the controller reads it.
pub async fn target_from_cluster(
    cluster: &ClusterAccess,
    hpa: &HorizontalPodAutoscaler,
) -> anyhow::Result<ScaleTarget> {
    let api = cluster_api(cluster)?;
    let read = promhpa_kube::hpa::read_scale_target(&api, hpa).await?;
    if let Some(e) = read.unchecked {
        eprintln!("warning: not checking for other HPAs selecting these pods: {e}");
    }
    Ok(read.target)
}

/// An object lookup that answers for the scale target's pods from what was already read of
/// them, and asks `inner` for everything else: explaining one HPA needs no cluster-wide
/// pod cache (nor the permission to list every namespace's pods).
pub struct TargetPodsLookup {
    namespace: String,
    pods: BTreeMap<String, BTreeMap<String, String>>,
    inner: Arc<dyn promhpa_core::lookup::ObjectLookup>,
}

impl TargetPodsLookup {
    pub fn new(target: &ScaleTarget, inner: Arc<dyn promhpa_core::lookup::ObjectLookup>) -> Self {
        TargetPodsLookup {
            namespace: target.namespace.clone(),
            pods: target.pod_labels.clone(),
            inner,
        }
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
        let ours = group_resource.group.is_empty()
            && group_resource.resource == "pods"
            && namespace == Some(self.namespace.as_str());
        if !ours {
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
}
