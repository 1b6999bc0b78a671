//! An HPA's scale target as the controller sees it, read from an object file (`--objects`,
//! `--demo`) or from the cluster (`--kubeconfig`, or in-cluster credentials); what the
//! controller makes of it is `promhpa_hpa::target`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use promhpa_core::selector::LabelSelector;
use promhpa_hpa::objects::scale_from_subresource;
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa::target::{hpa_namespace, meta, status_line, ScaleTarget};
use promhpa_kube::client::ClusterAccess;
use serde_json::Value;

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
    let v = promhpa_kube::scale::get_hpa(&api, namespace, name)
        .await
        .with_context(|| format!("reading HorizontalPodAutoscaler {namespace}/{name}"))?;
    let text = serde_json::to_string(&v)?;
    let hpa = promhpa_hpa::spec::parse_manifest(&text)
        .with_context(|| format!("HorizontalPodAutoscaler {namespace}/{name}"))?;
    Ok((hpa, status_line(&v, super::backend::now_ms())))
}

/// The target `hpa` scales, read from the cluster the way the controller reads it.
pub async fn target_from_cluster(
    cluster: &ClusterAccess,
    hpa: &HorizontalPodAutoscaler,
) -> anyhow::Result<ScaleTarget> {
    use promhpa_kube::scale::{get_scale, list_hpas, list_pods};
    let api = cluster_api(cluster)?;
    let namespace = hpa_namespace(hpa);
    let reference = hpa.spec.scale_target_ref.clone().unwrap_or_default();
    let map = promhpa_kube::discovery::discover(&api)
        .await
        .context("API discovery")?;
    let what = format!("{} {}/{}", reference.kind, namespace, reference.name);
    let raw = get_scale(
        &api,
        &map,
        &reference.api_version,
        &reference.kind,
        &namespace,
        &reference.name,
    )
    .await
    .with_context(|| {
        format!("the HPA cannot read the scale of {what} (condition AbleToScale False, reason FailedGetScale)")
    })?;
    let scale = scale_from_subresource(&raw).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if let Some(target) = ScaleTarget::invalid_selector(hpa, &scale, "the cluster") {
        return Ok(target);
    }
    let selector = scale.selector.clone().unwrap_or_default();
    let objects = list_pods(&api, &namespace, &selector)
        .await
        .with_context(|| format!("listing the pods of {what} ({selector})"))?;
    let mut target = ScaleTarget::from_scale(hpa, scale, selector, &objects, "the cluster")?;
    let others = match list_hpas(&api, &namespace).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("warning: not checking for other HPAs selecting these pods: {e}");
            return Ok(target);
        }
    };
    let mut selectors = Vec::new();
    for other in &others {
        let Some(name) = meta(other, "name").filter(|n| *n != hpa.metadata.name) else {
            continue;
        };
        let Some(r) = other.get("spec").and_then(|s| s.get("scaleTargetRef")) else {
            continue;
        };
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let Ok(raw) = get_scale(
            &api,
            &map,
            field("apiVersion"),
            field("kind"),
            &namespace,
            field("name"),
        )
        .await
        else {
            continue;
        };
        let Some(sel) = scale_from_subresource(&raw)
            .ok()
            .and_then(|s| s.selector)
            .and_then(|s| s.parse::<LabelSelector>().ok())
        else {
            continue;
        };
        selectors.push((name.to_string(), sel));
    }
    target.selector_error = target.ambiguous_selector(
        &hpa.metadata.name,
        selectors.iter().map(|(name, sel)| (name.as_str(), sel)),
    );
    Ok(target)
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
