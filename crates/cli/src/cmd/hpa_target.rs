//! An HPA and its scale target read from the cluster of `--kubeconfig` (or in-cluster
//! credentials): the reading is `promhpa_kube::hpa`'s, what the controller makes of it
//! `promhpa_hpa::target`'s; here are the credentials and the warnings.

use anyhow::Context;
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa::target::{status_line, ScaleTarget};
use promhpa_kube::client::ClusterAccess;

/// The API server of `cluster`.
pub fn cluster_api(cluster: &ClusterAccess) -> anyhow::Result<promhpa_kube::Client> {
    let hint = match &cluster.kubeconfig {
        Some(path) => format!(
            "loading Kubernetes credentials from --kubeconfig {}",
            path.display()
        ),
        None => {
            "loading Kubernetes credentials; pass --kubeconfig, or give the objects with --objects"
                .to_string()
        }
    };
    cluster.client().context(hint)
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
    Ok((hpa, status_line(&v, promhpa_core::time::now_ms())))
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
