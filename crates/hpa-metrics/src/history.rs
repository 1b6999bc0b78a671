//! The history `simulate` replays, read from a metrics backend: one range query per metric
//! (rendered from the rule file the way `serve` renders it for the HPA's request), and the
//! replica count that produced it.

use promhpa_core::backend::Backend;
use promhpa_core::selector::{LabelSelector, SelectorError};
use promhpa_hpa::simulate::{fetch_series, ActualReplicas, Series};
use promhpa_hpa::spec::{HorizontalPodAutoscaler, MetaLabelSelector, MetricSpec};
use promhpa_hpa::target::{hpa_namespace, ScaleTarget, TargetError};
use promhpa_rules::{NotServed, RenderError, RuleSet, Serving};

/// Why the history of an HPA's metrics cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A metric of the HPA that lacks the section its type needs, or of an unknown type.
    #[error("{0}")]
    Spec(String),
    /// The query of a metric averaged over the scale target's pods, and no objects to find
    /// them in.
    #[error("rendering the query of {0}: pass --objects FILE, or --query")]
    NeedsPods(String),
    /// A resource metric the rule file's `resourceRules` do not serve.
    #[error("{0}: give the metric's query with --query")]
    NoResourceRule(String),
    /// The scale target's pods do not allow the query: none, or requests missing.
    #[error("{0}")]
    Pods(String),
    /// No rule names a series for the metric.
    #[error("{0}; pass --series")]
    NoSeries(NotServed),
    #[error(transparent)]
    NotServed(NotServed),
    #[error("parsing --{flag}")]
    Selector {
        flag: &'static str,
        #[source]
        error: SelectorError,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("rendering {path}")]
    ResourceRender {
        path: String,
        #[source]
        error: RenderError,
    },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Simulate(#[from] promhpa_hpa::Error),
    /// A range query with no samples in the range.
    #[error("{what} {query:?} returned no samples between --from and --to")]
    NoSamples { what: &'static str, query: String },
}

impl From<NotServed> for HistoryError {
    fn from(e: NotServed) -> Self {
        match e {
            NotServed::NoSeries { .. } => HistoryError::NoSeries(e),
            e => HistoryError::NotServed(e),
        }
    }
}

fn selector_text(s: Option<&MetaLabelSelector>) -> Option<String> {
    s.map(|s| s.to_string()).filter(|s| !s.is_empty())
}

fn parse_selector(text: Option<&str>, flag: &'static str) -> Result<LabelSelector, HistoryError> {
    match text {
        None => Ok(LabelSelector::everything()),
        Some(t) => t
            .parse::<LabelSelector>()
            .map_err(|error| HistoryError::Selector { flag, error }),
    }
}

/// The rule serving `metric` in the custom or external section, its notes passed to `note`.
fn serving<'a>(
    rules: &'a RuleSet,
    metric: &str,
    external: bool,
    note: &mut dyn FnMut(&str),
) -> Result<Serving<'a>, HistoryError> {
    let serving = rules.serving_metric(external, metric, None)?;
    for n in serving.notes(rules) {
        note(&n);
    }
    Ok(serving)
}

/// The custom-metrics PromQL for `names` of `resource` (`pods`, `deployments.apps`...).
fn custom_query(
    rules: &RuleSet,
    metric: &str,
    ns: &str,
    resource: &str,
    names: &[String],
    selector: Option<&MetaLabelSelector>,
    note: &mut dyn FnMut(&str),
) -> Result<String, HistoryError> {
    let s = serving(rules, metric, false, note)?;
    let resource = promhpa_rules::request_resource(resource);
    let selector = parse_selector(selector_text(selector).as_deref(), "metric-selector")?;
    Ok(s.rule
        .render_custom(&s.series, Some(ns), &resource, names, &selector)?)
}

/// One PromQL per metric of `hpa`, each giving a single series in the target's units: the
/// rule's query for the scale target's pods (averaged), the described object, or the
/// external series with the HPA's selector (summed). The pods are those of `objects` (the
/// text of an object file, and its name) now; pods that existed only in the past are not
/// included. What a user should know about the rules chosen is passed to `note`.
pub fn metric_queries(
    rules: &RuleSet,
    objects: Option<(&str, &str)>,
    hpa: &HorizontalPodAutoscaler,
    note: &mut dyn FnMut(&str),
) -> Result<Vec<String>, HistoryError> {
    let ns = hpa_namespace(hpa);
    let mut out = Vec::new();
    for m in hpa.spec.effective_metrics() {
        let q = match m.kind.as_str() {
            "Pods" => {
                let Some(p) = &m.pods else {
                    return Err(HistoryError::Spec(
                        "Pods metric without a `pods` section".into(),
                    ));
                };
                let Some((text, source)) = objects else {
                    return Err(HistoryError::NeedsPods(format!(
                        "pods metric {} needs the pods",
                        p.metric.name
                    )));
                };
                let scale_target = ScaleTarget::from_objects(text, source, hpa)?;
                let target = &scale_target.reference;
                let names = scale_target.pod_names();
                if names.is_empty() {
                    return Err(HistoryError::Pods(format!(
                        "no pods of {} {} in namespace {ns} in the objects",
                        target.kind, target.name
                    )));
                }
                let q = custom_query(
                    rules,
                    &p.metric.name,
                    &ns,
                    "pods",
                    &names,
                    p.metric.selector.as_ref(),
                    note,
                )?;
                format!("avg({q})")
            }
            "Object" => {
                let Some(o) = &m.object else {
                    return Err(HistoryError::Spec(
                        "Object metric without an `object` section".into(),
                    ));
                };
                let d = &o.described_object;
                let group = d.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
                let kind = d.kind.to_ascii_lowercase();
                let resource = if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                };
                let q = custom_query(
                    rules,
                    &o.metric.name,
                    &ns,
                    &resource,
                    std::slice::from_ref(&d.name),
                    o.metric.selector.as_ref(),
                    note,
                )?;
                format!("sum({q})")
            }
            "External" => {
                let Some(x) = &m.external else {
                    return Err(HistoryError::Spec(
                        "External metric without an `external` section".into(),
                    ));
                };
                let s = serving(rules, &x.metric.name, true, note)?;
                let selector = parse_selector(
                    selector_text(x.metric.selector.as_ref()).as_deref(),
                    "selector",
                )?;
                let q = s.rule.render_external(&s.series, Some(&ns), &selector)?;
                format!("sum({q})")
            }
            "Resource" | "ContainerResource" => {
                let Some((text, source)) = objects else {
                    return Err(HistoryError::NeedsPods(format!(
                        "a {} metric needs the scale target's pods",
                        m.kind
                    )));
                };
                resource_query(rules, &m, &ScaleTarget::from_objects(text, source, hpa)?)?
            }
            other => {
                return Err(HistoryError::Spec(format!(
                    "invalid metric source type \"{other}\""
                )))
            }
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
    m: &MetricSpec,
    target: &ScaleTarget,
) -> Result<String, HistoryError> {
    let (resource, container, spec_target) = match (&m.resource, &m.container_resource) {
        (Some(r), _) if m.kind == "Resource" => (r.name.as_str(), None, &r.target),
        (_, Some(r)) if m.kind == "ContainerResource" => {
            (r.name.as_str(), Some(r.container.as_str()), &r.target)
        }
        _ => {
            return Err(HistoryError::Spec(format!(
                "{} metric without its `{}` section",
                m.kind, m.kind
            )))
        }
    };
    let Some(rr) = &rules.resource else {
        return Err(HistoryError::NoResourceRule(format!(
            "{resource} metrics come from metrics.k8s.io; the rule file has no resourceRules"
        )));
    };
    let rule = match resource {
        "cpu" => &rr.cpu,
        "memory" => &rr.memory,
        other => {
            return Err(HistoryError::NoResourceRule(format!(
                "resourceRules serve cpu and memory, not {other}"
            )))
        }
    };
    let names = target.pod_names();
    if names.is_empty() {
        return Err(HistoryError::Pods(target.describe()));
    }
    let q = rule
        .render_container_query(&target.namespace, &names)
        .map_err(|error| HistoryError::ResourceRender {
            path: rule.path().to_string(),
            error,
        })?;
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
        let request = pod
            .request_milli(resource, container)
            .map_err(HistoryError::Pods)?;
        total = total.saturating_add(request);
    }
    if total <= 0 {
        return Err(HistoryError::Pods(format!(
            "the scale target's pods request no {resource}"
        )));
    }
    // The pods' average request in the metric's units (cores, bytes), from milli-units.
    Ok(format!(
        "100 * {per_pod} / ({total} / {} / 1000)",
        target.pods.len()
    ))
}

/// Range-query every metric and the replica count (a query, or a constant) over
/// `(start, end, step)` in milliseconds.
pub async fn fetch_history(
    backend: &dyn Backend,
    queries: &[String],
    replicas: Result<&str, f64>,
    (start, end, step): (i64, i64, i64),
) -> Result<(Vec<Series>, ActualReplicas), HistoryError> {
    let mut metrics = Vec::new();
    for q in queries {
        let s = fetch_series(backend, q, start, end, step).await?;
        if s.is_empty() {
            return Err(HistoryError::NoSamples {
                what: "range query",
                query: q.clone(),
            });
        }
        metrics.push(s);
    }
    let actual = match replicas {
        Ok(q) => {
            let s = fetch_series(backend, q, start, end, step).await?;
            if s.is_empty() {
                return Err(HistoryError::NoSamples {
                    what: "--replicas-query",
                    query: q.to_string(),
                });
            }
            ActualReplicas::Series(s)
        }
        Err(c) => ActualReplicas::Constant(c),
    };
    Ok((metrics, actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#;

    const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests_per_second}
      target: {type: AverageValue, averageValue: "10"}
  - type: External
    external:
      metric: {name: queue_depth, selector: {matchLabels: {queue: orders}}}
      target: {type: Value, value: "100"}
"#;

    const OBJECTS: &str = r#"
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec: {replicas: 2, selector: {matchLabels: {app: web}}}
- kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
- kind: Pod
  metadata: {name: web-2, namespace: shop, labels: {app: web}}
"#;

    #[test]
    fn each_metric_has_one_query_for_the_targets_pods_or_the_external_series() {
        let rules = RuleSet::from_yaml(RULES, "rules.yaml").expect("rules");
        let hpa = promhpa_hpa::spec::parse_manifest(HPA).expect("hpa");
        let mut notes = Vec::new();
        let queries = metric_queries(&rules, Some((OBJECTS, "objects.yaml")), &hpa, &mut |n| {
            notes.push(n.to_string())
        })
        .expect("queries");
        assert_eq!(
            queries,
            vec![
                r#"avg(sum(rate(http_requests_total{namespace="shop",pod=~"web-1|web-2"}[2m])) by (pod))"#
                    .to_string(),
                r#"sum(sum(queue_depth{queue="orders",namespace="shop"}))"#.to_string(),
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_pods_metric_without_objects_asks_for_them() {
        let rules = RuleSet::from_yaml(RULES, "rules.yaml").expect("rules");
        let hpa = promhpa_hpa::spec::parse_manifest(HPA).expect("hpa");
        let e = metric_queries(&rules, None, &hpa, &mut |_| {}).expect_err("no objects");
        assert_eq!(
            e.to_string(),
            "rendering the query of pods metric http_requests_per_second needs the pods: pass --objects FILE, or --query"
        );
    }
}
