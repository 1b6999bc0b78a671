//! The history `simulate` replays, read from a metrics backend: one range query per
//! metric (rendered from the rule file the way `serve` renders it for the HPA's request),
//! and the replica count that produced it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use promhpa_hpa::simulate::{fetch_series, ActualReplicas, Series};
use promhpa_hpa::spec::{HorizontalPodAutoscaler, MetaLabelSelector};
use promhpa_rules::RuleSet;

use super::backend::BackendFlags;
use promhpa_hpa::target::ScaleTarget;

fn request(metric: &str, ns: &str, external: bool) -> super::query::Args {
    // With no series given, the one the serving rule names in its seriesQuery is used.
    super::query::Args {
        config: PathBuf::new(),
        metric: metric.to_string(),
        series: None,
        resource: None,
        namespace: Some(ns.to_string()),
        names: Vec::new(),
        metric_selector: None,
        external,
        selector: None,
    }
}

fn selector_text(s: Option<&MetaLabelSelector>) -> Option<String> {
    s.map(|s| s.to_string()).filter(|s| !s.is_empty())
}

/// One PromQL per metric of `hpa`, each giving a single series in the target's units: the
/// rule's query for the scale target's pods (averaged), the described object, or the
/// external series with the HPA's selector (summed). The pods are those of the object file
/// now; pods that existed only in the past are not included.
pub fn metric_queries(
    flags: &BackendFlags,
    hpa: &HorizontalPodAutoscaler,
) -> anyhow::Result<Vec<String>> {
    let rules = flags.load_rules()?;
    let ns = hpa
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let objects = flags.objects_text()?;
    let mut out = Vec::new();
    for m in hpa.spec.effective_metrics() {
        let q = match m.kind.as_str() {
            "Pods" => {
                let Some(p) = &m.pods else {
                    bail!("Pods metric without a `pods` section")
                };
                let Some((text, source)) = &objects else {
                    bail!("rendering the query of pods metric {} needs the pods: pass --objects FILE, or --query", p.metric.name);
                };
                let scale_target = ScaleTarget::from_objects(text, source, hpa)?;
                let target = &scale_target.reference;
                let names = scale_target.pod_names();
                if names.is_empty() {
                    bail!(
                        "no pods of {} {} in namespace {ns} in the objects",
                        target.kind,
                        target.name
                    );
                }
                let mut r = request(&p.metric.name, &ns, false);
                r.resource = Some("pods".into());
                r.names = names;
                r.metric_selector = selector_text(p.metric.selector.as_ref());
                format!("avg({})", super::query::render(&rules, &r)?)
            }
            "Object" => {
                let Some(o) = &m.object else {
                    bail!("Object metric without an `object` section")
                };
                let d = &o.described_object;
                let group = d.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
                let kind = d.kind.to_ascii_lowercase();
                let mut r = request(&o.metric.name, &ns, false);
                r.resource = Some(if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                });
                r.names = vec![d.name.clone()];
                r.metric_selector = selector_text(o.metric.selector.as_ref());
                format!("sum({})", super::query::render(&rules, &r)?)
            }
            "External" => {
                let Some(x) = &m.external else {
                    bail!("External metric without an `external` section")
                };
                let mut r = request(&x.metric.name, &ns, true);
                r.selector = selector_text(x.metric.selector.as_ref());
                format!("sum({})", super::query::render(&rules, &r)?)
            }
            "Resource" | "ContainerResource" => {
                let Some((text, source)) = &objects else {
                    bail!("rendering the query of a {} metric needs the scale target's pods: pass --objects FILE, or --query", m.kind);
                };
                resource_query(&rules, &m, &ScaleTarget::from_objects(text, source, hpa)?)?
            }
            other => bail!("invalid metric source type \"{other}\""),
        };
        out.push(q);
    }
    Ok(out)
}

/// The history of a Resource or ContainerResource metric in its target's units, from the
/// rule file's `resourceRules` container query for the scale target's pods: the average
/// per-pod usage, or for Utilization targets that average as a percentage of the pods'
/// average request (equal to the controller's sum of usage over sum of requests when the
/// pods share one template).
fn resource_query(
    rules: &RuleSet,
    m: &promhpa_hpa::spec::MetricSpec,
    target: &ScaleTarget,
) -> anyhow::Result<String> {
    let (resource, container, spec_target) = match (&m.resource, &m.container_resource) {
        (Some(r), _) if m.kind == "Resource" => (r.name.as_str(), None, &r.target),
        (_, Some(r)) if m.kind == "ContainerResource" => {
            (r.name.as_str(), Some(r.container.as_str()), &r.target)
        }
        _ => bail!("{} metric without its `{}` section", m.kind, m.kind),
    };
    let Some(rr) = &rules.resource else {
        bail!("{resource} metrics come from metrics.k8s.io; the rule file has no resourceRules: give the metric's query with --query");
    };
    let rule = match resource {
        "cpu" => &rr.cpu,
        "memory" => &rr.memory,
        other => bail!(
            "resourceRules serve cpu and memory, not {other}: give the metric's query with --query"
        ),
    };
    let names = target.pod_names();
    if names.is_empty() {
        bail!("{}", target.describe());
    }
    let q = rule
        .render_container_query(&target.namespace, &names)
        .map_err(|e| anyhow::anyhow!("rendering {}: {e}", rule.path()))?;
    let cl = rule.container_label();
    let q = match container {
        Some(c) => format!(
            "({q}) * on ({cl}) group_left () label_replace(vector(1), \"{cl}\", {}, \"\", \"\")",
            promhpa_core::gofmt::go_quote(c)
        ),
        None => q,
    };
    let pod_label = rule
        .resources()
        .label_for_resource(&promhpa_core::GroupResource::new("", "pods"))
        .unwrap_or_else(|| "pod".into());
    let per_pod = format!("avg(sum by ({pod_label}) ({q}))");
    if spec_target.average_value.is_some() {
        return Ok(per_pod);
    }
    let mut total: i64 = 0;
    for pod in &target.pods {
        if let Some(name) = container {
            if !pod.containers.iter().any(|c| c.name == name) {
                bail!("container {name} not present in pod {}", pod.name);
            }
        } else if let Some(q) = pod.pod_requests.get(resource) {
            total = total.saturating_add(q.milli_value());
            continue;
        }
        for c in pod
            .containers
            .iter()
            .filter(|c| container.is_none_or(|n| n == c.name))
        {
            let Some(q) = c.requests.get(resource) else {
                bail!(
                    "missing request for {resource} in container {} of Pod {}",
                    c.name,
                    pod.name
                );
            };
            total = total.saturating_add(q.milli_value());
        }
    }
    if total <= 0 {
        bail!("the scale target's pods request no {resource}");
    }
    // The pods' average request in the metric's units (cores, bytes), from milli-units.
    Ok(format!(
        "100 * {per_pod} / ({total} / {} / 1000)",
        target.pods.len()
    ))
}

/// Range-query every metric and the replica count (a query, or a constant) over
/// `(start, end, step)` in milliseconds.
pub fn fetch_history(
    flags: &BackendFlags,
    queries: &[String],
    replicas: Result<&str, f64>,
    (start, end, step): (i64, i64, i64),
) -> anyhow::Result<(Vec<Series>, ActualReplicas)> {
    let mut flags = flags.clone();
    let rules = flags.load_rules()?;
    flags.adopt_rule_file_prometheus(&rules);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let backend = flags.build_backend()?;
        let mut metrics = Vec::new();
        for q in queries {
            let s = fetch_series(&*backend, q, start, end, step).await?;
            if s.is_empty() {
                bail!("range query {q:?} returned no samples between --from and --to");
            }
            metrics.push(s);
        }
        let actual = match replicas {
            Ok(q) => {
                let s = fetch_series(&*backend, q, start, end, step).await?;
                if s.is_empty() {
                    bail!("--replicas-query {q:?} returned no samples between --from and --to");
                }
                ActualReplicas::Series(s)
            }
            Err(c) => ActualReplicas::Constant(c),
        };
        Ok((metrics, actual))
    })
}
