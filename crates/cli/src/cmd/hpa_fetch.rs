//! The metrics API `explain` asks for an HPA's metrics ([`promhpa_hpa_metrics::HpaFetcher`]),
//! built from the backend flags, with the HPA's scale target read from the object file or
//! the cluster.

use std::sync::Arc;
use std::time::Duration;

use promhpa_apiserver::backends::{BackendRef, Backends};
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa::target::ScaleTarget;
use promhpa_hpa_metrics::{HpaFetcher, TargetPodsLookup};
use promhpa_kube::client::ClusterAccess;

use promhpa_options::BackendFlags;

/// Build the metrics API from the backend flags, run discovery once, and read `hpa`'s
/// scale target and its pods (from the object file, or from `cluster`). Must run inside
/// a tokio runtime.
pub async fn hpa_fetcher(
    flags: &BackendFlags,
    hpa: &HorizontalPodAutoscaler,
    cluster: &ClusterAccess,
    max_age: Duration,
) -> anyhow::Result<HpaFetcher> {
    let mut flags = flags.clone();
    let rules = flags.load_rules()?;
    flags.adopt_rule_file_prometheus(&rules);
    if flags.prometheus_url.is_none() && !flags.demo && flags.load_exposition.is_empty() {
        eprintln!(
            "warning: no --prometheus-url: metrics come from the embedded evaluator, which holds no data (pass --prometheus-url, or --load-exposition)"
        );
    }
    let backend = flags.build_backend(None)?;
    let target = match flags.objects_text()? {
        Some((text, source)) => ScaleTarget::from_objects(&text, &source, hpa)?,
        None => super::hpa_target::target_from_cluster(cluster, hpa).await?,
    };
    // serve's default --discovery-interval; a run rarely lasts that long.
    let lookup = flags.build_lookup(cluster, Duration::from_secs(600))?;
    // From the cluster, the target's pods are already read: answer for them from that.
    let lookup: Arc<dyn promhpa_core::lookup::ObjectLookup> =
        if flags.objects.is_none() && !flags.demo {
            Arc::new(TargetPodsLookup::new(&target, lookup))
        } else {
            lookup
        };
    let backends = Backends::build(
        BackendRef::new(backend.clone()),
        &rules.backends,
        Some(&flags.connector(None)?),
        None,
    )?;
    let (fetcher, discovery_errors) =
        HpaFetcher::new(rules, backends, lookup, target, max_age).await;
    for e in discovery_errors {
        eprintln!("warning: metric discovery: {e}");
    }
    Ok(fetcher)
}
