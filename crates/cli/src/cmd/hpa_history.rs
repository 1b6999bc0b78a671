//! The history `simulate` replays ([`promhpa_hpa_metrics::history`]), with the rule file,
//! the objects and the backend given by the backend flags.

use anyhow::Context;
use promhpa_hpa::simulate::{ActualReplicas, Series};
use promhpa_hpa::spec::HorizontalPodAutoscaler;
use promhpa_hpa_metrics::history;

use promhpa_options::BackendFlags;

/// One PromQL per metric of `hpa` ([`history::metric_queries`]), from the rule file and the
/// object file of `flags`.
pub fn metric_queries(
    flags: &BackendFlags,
    hpa: &HorizontalPodAutoscaler,
) -> anyhow::Result<Vec<String>> {
    let rules = flags.load_rules()?;
    let objects = flags.objects_text()?;
    let objects = objects.as_ref().map(|(t, s)| (t.as_str(), s.as_str()));
    let mut note = |n: &str| eprintln!("note: {n}");
    Ok(history::metric_queries(&rules, objects, hpa, &mut note)?)
}

/// Range-query every metric and the replica count (a query, or a constant) over
/// `(start, end, step)` in milliseconds, from the backend of `flags`.
pub fn fetch_history(
    flags: &BackendFlags,
    queries: &[String],
    replicas: Result<&str, f64>,
    range: (i64, i64, i64),
) -> anyhow::Result<(Vec<Series>, ActualReplicas)> {
    let mut flags = flags.clone();
    let rules = flags.load_rules()?;
    flags.adopt_rule_file_prometheus(&rules);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let backend = flags.build_backend(None)?;
        Ok(history::fetch_history(&*backend, queries, replicas, range).await?)
    })
}
