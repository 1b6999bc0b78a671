//! An HPA, its scale target and the target's pods, read from a cluster the way the
//! controller reads them; what the controller makes of them is `promhpa_hpa::target`'s.

use promhpa_core::selector::LabelSelector;
use promhpa_hpa::objects::scale_from_subresource;
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa::target::{hpa_namespace, meta, ScaleTarget, TargetError};
use serde_json::Value;

use crate::discovery::{discover, ResourceMap};
use crate::scale::{get_hpa, get_scale, list_hpas, list_pods};
use crate::KubeError;

/// Where a target read from a cluster says it comes from.
const SOURCE: &str = "the cluster";

/// What keeps an HPA or its scale target from being read from a cluster.
#[derive(Debug, thiserror::Error)]
pub enum HpaReadError {
    #[error("reading HorizontalPodAutoscaler {namespace}/{name}")]
    Get {
        namespace: String,
        name: String,
        #[source]
        error: KubeError,
    },
    #[error("HorizontalPodAutoscaler {namespace}/{name}")]
    Manifest {
        namespace: String,
        name: String,
        #[source]
        error: promhpa_hpa::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("API discovery")]
    Discovery(#[source] KubeError),
    #[error("the HPA cannot read the scale of {target} (condition AbleToScale False, reason FailedGetScale)")]
    Scale {
        target: String,
        #[source]
        error: KubeError,
    },
    #[error("{target}: {message}")]
    ScaleObject { target: String, message: String },
    #[error("listing the pods of {target} ({selector})")]
    Pods {
        target: String,
        selector: String,
        #[source]
        error: KubeError,
    },
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The HPA `name` of `namespace`, and the object as the API server sent it (with the
/// controller's `status`).
pub async fn read_hpa(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(HorizontalPodAutoscaler, Value), HpaReadError> {
    let v = get_hpa(client, namespace, name)
        .await
        .map_err(|error| HpaReadError::Get {
            namespace: namespace.to_string(),
            name: name.to_string(),
            error,
        })?;
    let text = serde_json::to_string(&v)?;
    let hpa = promhpa_hpa::spec::parse_manifest(&text).map_err(|error| HpaReadError::Manifest {
        namespace: namespace.to_string(),
        name: name.to_string(),
        error,
    })?;
    Ok((hpa, v))
}

/// A scale target read from a cluster.
#[derive(Debug)]
pub struct ClusterTarget {
    pub target: ScaleTarget,
    /// Why the `AmbiguousSelector` check was skipped: the namespace's HPAs could not be
    /// listed.
    pub unchecked: Option<KubeError>,
}

/// The target `hpa` scales, read the way the controller reads it: its `scale`
/// subresource, the pods its selector matches, and (for `AmbiguousSelector`) the scale
/// targets of the namespace's other HPAs.
pub async fn read_scale_target(
    client: &kube::Client,
    hpa: &HorizontalPodAutoscaler,
) -> Result<ClusterTarget, HpaReadError> {
    let namespace = hpa_namespace(hpa);
    let reference = hpa.spec.scale_target_ref.clone().unwrap_or_default();
    let map = discover(client).await.map_err(HpaReadError::Discovery)?;
    let what = format!("{} {}/{}", reference.kind, namespace, reference.name);
    let raw = get_scale(
        client,
        &map,
        &reference.api_version,
        &reference.kind,
        &namespace,
        &reference.name,
    )
    .await
    .map_err(|error| HpaReadError::Scale {
        target: what.clone(),
        error,
    })?;
    let scale = scale_from_subresource(&raw).map_err(|message| HpaReadError::ScaleObject {
        target: what.clone(),
        message,
    })?;
    if let Some(target) = ScaleTarget::invalid_selector(hpa, &scale, SOURCE) {
        return Ok(ClusterTarget {
            target,
            unchecked: None,
        });
    }
    let selector = scale.selector.clone().unwrap_or_default();
    let objects = list_pods(client, &namespace, &selector)
        .await
        .map_err(|error| HpaReadError::Pods {
            target: what.clone(),
            selector: selector.clone(),
            error,
        })?;
    let mut target = ScaleTarget::from_scale(hpa, scale, selector, &objects, SOURCE)?;
    let others = match other_selectors(client, &map, &namespace, &hpa.metadata.name).await {
        Ok(others) => others,
        Err(e) => {
            return Ok(ClusterTarget {
                target,
                unchecked: Some(e),
            })
        }
    };
    target.selector_error = target.ambiguous_selector(
        &hpa.metadata.name,
        others.iter().map(|(name, sel)| (name.as_str(), sel)),
    );
    Ok(ClusterTarget {
        target,
        unchecked: None,
    })
}

/// The other HPAs of `namespace` with their scale targets' selectors; an HPA whose target
/// or selector cannot be read is left out.
async fn other_selectors(
    client: &kube::Client,
    map: &ResourceMap,
    namespace: &str,
    hpa_name: &str,
) -> Result<Vec<(String, LabelSelector)>, KubeError> {
    let mut out = Vec::new();
    for other in &list_hpas(client, namespace).await? {
        let Some(name) = meta(other, "name").filter(|n| *n != hpa_name) else {
            continue;
        };
        let Some(r) = other.get("spec").and_then(|s| s.get("scaleTargetRef")) else {
            continue;
        };
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let Ok(raw) = get_scale(
            client,
            map,
            field("apiVersion"),
            field("kind"),
            namespace,
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
        out.push((name.to_string(), sel));
    }
    Ok(out)
}
