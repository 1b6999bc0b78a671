//! Explaining one HPA decision in numbers: per metric the current value, target, ratio,
//! tolerance band and proposal; then stabilization, rate limits and the min/max clamp;
//! the final recommendation with the conditions `kubectl describe hpa` would show.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use promhpa_core::quantity::Quantity;
use serde::Serialize;

use crate::calc::{ControllerConfig, Observed, Pod, PodSample};
use crate::controller::{reconcile, Condition, ControllerState, MetricsInput, Outcome, TickInput};
use crate::simulate::{synth_pods, synthetic_observation};
use crate::spec::{HorizontalPodAutoscaler, MetricSpec, SelectPolicy};

/// A metric's fetched value, in the units of its target: utilization in percent for
/// Utilization targets, the per-pod average for Pods and AverageValue resource targets,
/// the value (External: the sum of the series) for Object and External metrics.
pub type FetchedValue = Result<f64, String>;

/// What was fetched for one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// One number in the units of the target (see [`FetchedValue`]), reported by every pod
    /// alike for per-pod metrics.
    Value(f64),
    /// Per-pod samples in milli-units (Resource, ContainerResource and Pods metrics), as the
    /// metrics APIs return them: usage for resources, the metric for Pods.
    PerPod(BTreeMap<String, PodSample>),
}

impl From<f64> for Measured {
    fn from(v: f64) -> Self {
        Measured::Value(v)
    }
}

/// Everything an explanation reads.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    pub hpa: HorizontalPodAutoscaler,
    /// `spec.replicas` of the scale target.
    pub current_replicas: i32,
    /// `status.replicas` of the scale target (default: `current_replicas`).
    pub status_replicas: Option<i32>,
    /// The pods the scale target's selector matches; `None`: `current_replicas` Running,
    /// Ready pods with a 1000m request for each resource the metrics name.
    pub pods: Option<Vec<Pod>>,
    /// One value per metric of the (defaulted) spec, in order.
    pub values: Vec<Result<Measured, String>>,
    pub config: ControllerConfig,
    /// The controller's memory; `None` means it remembers no recent recommendation.
    pub state: Option<ControllerState>,
    pub now_ms: i64,
    /// A selector problem of the scale target (condition reason and message).
    pub selector_error: Option<(String, String)>,
}

/// One metric, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricExplanation {
    /// The line `kubectl describe hpa` prints for this metric, left of the values.
    pub describe_name: String,
    /// The name the controller uses in events (`cpu resource utilization (...)`).
    pub metric_name: String,
    /// Current value as `kubectl describe hpa` shows it, `<unknown>` when not fetched.
    pub current: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    pub tolerance_band: [f64; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_tolerance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed_replicas: Option<i32>,
    /// How the proposal was computed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to check when the metric could not be fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The pods not counted as ready with a metric, by class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<crate::calc::PodClasses>,
}

/// A named condition row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub name: String,
    pub namespace: String,
    pub reference: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub current_replicas: i32,
    pub metrics: Vec<MetricExplanation>,
    /// The max over the valid metrics, before normalization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combined_recommendation: Option<i32>,
    /// Stabilization, rate limits and clamp, in words.
    pub normalization: Vec<String>,
    pub desired_replicas: i32,
    /// One sentence: what happens and why.
    pub decision: String,
    pub conditions: Vec<ConditionRow>,
}

fn describe_name(m: &MetricSpec) -> String {
    match m.kind.as_str() {
        "Resource" => match &m.resource {
            Some(r) if r.target.average_value.is_some() => format!("resource {} on pods", r.name),
            Some(r) => format!("resource {} on pods  (as a percentage of request)", r.name),
            None => "resource".into(),
        },
        "ContainerResource" => match &m.container_resource {
            Some(r) if r.target.average_value.is_some() => {
                format!(
                    "resource {} of container \"{}\" on pods",
                    r.name, r.container
                )
            }
            Some(r) => format!(
                "resource {} of container \"{}\" on pods  (as a percentage of request)",
                r.name, r.container
            ),
            None => "container resource".into(),
        },
        "Pods" => match &m.pods {
            Some(p) => format!("\"{}\" on pods", p.metric.name),
            None => "pods".into(),
        },
        "Object" => match &m.object {
            Some(o) => format!(
                "\"{}\" on {}/{} (target {}value)",
                o.metric.name,
                o.described_object.kind,
                o.described_object.name,
                if o.target.kind == "AverageValue" {
                    "average "
                } else {
                    ""
                }
            ),
            None => "object".into(),
        },
        "External" => match &m.external {
            Some(e) => format!(
                "\"{}\" (target {}value)",
                e.metric.name,
                if e.target.average_value.is_some() {
                    "average "
                } else {
                    ""
                }
            ),
            None => "external".into(),
        },
        other => format!("{other} (unknown metric source type)"),
    }
}

fn target_text(m: &MetricSpec) -> String {
    let t = match m.kind.as_str() {
        "Resource" => m.resource.as_ref().map(|r| &r.target),
        "ContainerResource" => m.container_resource.as_ref().map(|r| &r.target),
        "Pods" => m.pods.as_ref().map(|r| &r.target),
        "Object" => m.object.as_ref().map(|r| &r.target),
        "External" => m.external.as_ref().map(|r| &r.target),
        _ => None,
    };
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let is_resource = matches!(m.kind.as_str(), "Resource" | "ContainerResource");
    if let Some(v) = &t.average_value {
        return v.to_string();
    }
    if is_resource {
        return t
            .average_utilization
            .map(|u| format!("{u}%"))
            .unwrap_or_else(|| "<auto>".into());
    }
    t.value
        .as_ref()
        .map(Quantity::to_string)
        .unwrap_or_else(|| "<unknown>".into())
}

fn check_hint(m: &MetricSpec, ns: &str) -> String {
    match m.kind.as_str() {
        "Resource" | "ContainerResource" => format!(
            "does metrics.k8s.io answer for these pods (`kubectl top pods -n {ns}`, `kubectl get --raw /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods`): is metrics-server running, or do the rule file's resourceRules queries return series for them? Do all containers set a request for the resource?"
        ),
        "Pods" => {
            let n = m.pods.as_ref().map(|p| p.metric.name.as_str()).unwrap_or("");
            format!(
                "`kubectl get --raw \"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/*/{n}\"`; does a rule expose {n} for pods, and does its query return series for these pods?"
            )
        }
        "Object" => {
            let (n, kind, obj) = m
                .object
                .as_ref()
                .map(|o| (o.metric.name.as_str(), o.described_object.kind.to_lowercase(), o.described_object.name.as_str()))
                .unwrap_or_default();
            format!(
                "`kubectl get --raw \"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/{kind}s/{obj}/{n}\"`; does a rule expose {n} for that object?"
            )
        }
        "External" => {
            let (n, sel) = m
                .external
                .as_ref()
                .map(|e| (e.metric.name.as_str(), e.metric.selector.as_ref().map(|s| s.to_string()).unwrap_or_default()))
                .unwrap_or_default();
            let q = if sel.is_empty() { String::new() } else { format!("?labelSelector={sel}") };
            format!(
                "`kubectl get --raw \"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{n}{q}\"`; does an externalRules entry expose {n}, and do its series carry the selector's labels?"
            )
        }
        _ => "the metric `type` must be one of Resource, ContainerResource, Pods, Object, External".into(),
    }
}

/// How the controller's second pass treats pods without metrics and unready pods, when it
/// runs one (`calcPlainMetricReplicas` / `calcResourceReplicas`); empty when it does not.
fn rebalance_text(p: &crate::calc::Proposal) -> String {
    let Some(c) = p.pods else {
        return String::new();
    };
    let scale_up = p.ratio > 1.0;
    let mut parts = Vec::new();
    if c.missing > 0 && p.ratio != 1.0 {
        let fill = if scale_up {
            "0".to_string()
        } else if p.utilization.is_some() {
            format!("max(100%, {}%) of their request", p.target)
        } else {
            "the target".to_string()
        };
        parts.push(format!(
            "{} pods without metrics counted at {fill}",
            c.missing
        ));
    }
    if c.unready > 0 && scale_up {
        parts.push(format!("{} unready pods counted at 0", c.unready));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "second pass with {} (kept at the current count if that lands within tolerance or reverses the direction)",
        parts.join(" and ")
    )
}

fn band(lo: f64, hi: f64) -> [f64; 2] {
    [1.0 - lo, 1.0 + hi]
}

/// Explain what the controller would decide for `input`.
pub fn explain(input: &ExplainInput) -> Explanation {
    let hpa = &input.hpa;
    let spec = &hpa.spec;
    let ns = hpa
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let metrics = spec.effective_metrics();
    let pods = input
        .pods
        .clone()
        .unwrap_or_else(|| synth_pods(spec, input.current_replicas));
    let observed: Vec<Observed> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match input.values.get(i) {
            Some(Ok(Measured::Value(v))) => synthetic_observation(m, *v, &pods, input.now_ms),
            Some(Ok(Measured::PerPod(samples))) => Observed::Pods(samples.clone()),
            Some(Err(e)) => Observed::Error(e.clone()),
            None => Observed::Error("no value was fetched for this metric".into()),
        })
        .collect();
    let mut state = input.state.clone().unwrap_or(ControllerState {
        recommendations: Some(Vec::new()),
        ..ControllerState::default()
    });
    state.scaled_to_zero |= hpa.scaled_to_zero();
    let tick = TickInput {
        spec_replicas: input.current_replicas,
        status_replicas: input.status_replicas.unwrap_or(input.current_replicas),
        pods: &pods,
        metrics: MetricsInput::Observed(&observed),
        now_ms: input.now_ms,
        selector_error: input.selector_error.clone(),
    };
    let out = reconcile(spec, &input.config, &mut state, &tick);
    let tol = out.tolerances;
    let mut rows = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let mut row = MetricExplanation {
            describe_name: describe_name(m),
            metric_name: crate::calc::metric_name(m),
            current: "<unknown>".into(),
            target: target_text(m),
            ratio: None,
            tolerance_band: band(tol.scale_down, tol.scale_up),
            within_tolerance: None,
            proposed_replicas: None,
            formula: None,
            error_reason: None,
            error: None,
            check: None,
            pods: None,
        };
        match out.metrics.get(i) {
            Some(Ok(p)) => {
                row.current = match p.utilization {
                    Some(u) => format!("{u}%"),
                    None => Quantity::from_milli(p.current_milli).to_string(),
                };
                row.ratio = Some(p.ratio);
                let within = tol.is_within(p.ratio);
                row.within_tolerance = Some(within);
                row.proposed_replicas = Some(p.replicas);
                let counts = p.pods.unwrap_or_default();
                let rebalanced = rebalance_text(p);
                let ignored = if counts.ignored > 0 {
                    format!("; {} failed or deleting pods ignored", counts.ignored)
                } else {
                    String::new()
                };
                // Unready pods count at 0 only when scaling up; otherwise they are left out.
                let unready = if counts.unready > 0 && p.ratio <= 1.0 {
                    format!("; {} unready pods left out", counts.unready)
                } else {
                    String::new()
                };
                let ready = p.pods.map_or(out.current_replicas as usize, |c| c.ready);
                row.pods = p.pod_classes.clone();
                let ready_pods = if ready == 1 {
                    "1 ready pod".to_string()
                } else {
                    format!("{ready} ready pods")
                };
                row.formula = Some(if out.current_replicas == 0 {
                    format!(
                        "from zero replicas: ceil({:.3}) = {} (no tolerance band at zero)",
                        p.ratio, p.replicas
                    )
                } else if within && rebalanced.is_empty() {
                    format!(
                        "ratio {:.3} is within [{:.2}, {:.2}]: keep {}",
                        p.ratio, row.tolerance_band[0], row.tolerance_band[1], out.current_replicas
                    )
                } else if p.utilization.is_none() && p.pods.is_none() && p.is_average {
                    format!(
                        "ceil({:.3} x {}) = {}",
                        p.ratio,
                        replicas(out.current_replicas),
                        p.replicas
                    )
                } else if !rebalanced.is_empty() {
                    format!(
                        "ratio {:.3} over {ready_pods}; {rebalanced}{unready}{ignored}: {}",
                        p.ratio, p.replicas
                    )
                } else {
                    format!(
                        "ceil({:.3} x {ready_pods}) = {}{unready}{ignored}",
                        p.ratio, p.replicas
                    )
                });
            }
            Some(Err(f)) => {
                row.error_reason = Some(f.reason.clone());
                row.error = Some(f.message.clone());
                row.check = Some(check_hint(m, &ns));
            }
            None => {}
        }
        rows.push(row);
    }
    let normalization = normalization_lines(input, &out);
    let decision = decision_text(&out);
    let conditions = [
        "AbleToScale",
        "ScalingActive",
        "ScalingLimited",
        "ScaledToZero",
    ]
    .iter()
    .filter(|k| **k != "ScaledToZero" || involves_zero(input, &out))
    .filter_map(|k| {
        out.conditions.get(*k).map(|c: &Condition| ConditionRow {
            kind: (*k).to_string(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: prospective_message(c, out.desired_replicas),
        })
    })
    .collect();
    let reference = spec
        .scale_target_ref
        .as_ref()
        .map(|r| format!("{}/{}", r.kind, r.name))
        .unwrap_or_default();
    Explanation {
        name: hpa.metadata.name.clone(),
        namespace: ns,
        reference,
        min_replicas: spec.min_replicas(),
        max_replicas: spec.max_replicas,
        current_replicas: input.current_replicas,
        metrics: rows,
        combined_recommendation: out.raw_recommendation,
        normalization,
        desired_replicas: out.desired_replicas,
        decision,
        conditions,
    }
}

/// A condition message in the tense of a prediction: the controller writes its messages
/// after acting, an explanation is read before it has.
fn prospective_message(c: &Condition, desired: i32) -> String {
    match c.reason.as_str() {
        "SucceededRescale" => format!(
            "the HPA controller would update the target scale to {desired} (not done yet: this is a prediction)"
        ),
        "ScaledToZero" if c.status == "True" => {
            "the HPA controller scales the workload to zero, or did: it keeps computing metrics while the target is at zero".to_string()
        }
        _ => c.message.clone(),
    }
}

/// Whether zero replicas play a part in this decision (then the `ScaledToZero` condition is
/// worth showing; otherwise the controller merely rewrites it as False on every rescale).
fn involves_zero(input: &ExplainInput, out: &Outcome) -> bool {
    input.hpa.spec.min_replicas() == 0
        || out.current_replicas == 0
        || out.desired_replicas == 0
        || input.hpa.scaled_to_zero()
}

/// `1 replica`, `3 replicas`.
pub fn replicas(n: i32) -> String {
    if n == 1 {
        "1 replica".to_string()
    } else {
        format!("{n} replicas")
    }
}

/// Why a target at zero replicas is or is not autoscaled (KEP-2021).
fn zero_lines(input: &ExplainInput, out: &Outcome) -> Vec<String> {
    use crate::calc::ZeroReplicas;
    let spec = &input.hpa.spec;
    let mut v = Vec::new();
    let object_or_external = spec
        .metrics
        .iter()
        .any(|m| m.kind == "Object" || m.kind == "External");
    let condition =
        input.hpa.scaled_to_zero() || input.state.as_ref().is_some_and(|s| s.scaled_to_zero);
    if out.current_replicas == 0 {
        let disabled = out
            .conditions
            .get("ScalingActive")
            .is_some_and(|c| c.reason == "ScalingDisabled");
        let line = match (input.config.zero_replicas, disabled) {
            (ZeroReplicas::Condition, true) => "at zero without the ScaledToZero condition: the target was scaled to zero by hand (or by something other than this HPA), which disables the HPA until replicas are set above zero".to_string(),
            (ZeroReplicas::Condition, false) => "at zero with ScaledToZero True: the controller scaled the target to zero and keeps reading its Object/External metrics; from zero a metric proposes ceil(value / target), without the tolerance band".to_string(),
            (ZeroReplicas::GateOff, _) => "at zero with the HPAScaleToZero gate off: the HPA is disabled until replicas are set above zero".to_string(),
            (ZeroReplicas::Legacy, true) => "at zero with minReplicas above 0: the HPA is disabled until replicas are set above zero (controller up to 1.35)".to_string(),
            (ZeroReplicas::Legacy, false) => "at zero with minReplicas 0: the metrics decide as for any replica count (controller up to 1.35)".to_string(),
        };
        v.push(line);
    } else if out.desired_replicas == 0 && out.rescale {
        v.push(if out.conditions.get("ScaledToZero").is_some_and(|c| c.status == "True") {
            "scale to zero: the controller sets ScaledToZero True and scales back up when an Object/External metric asks for it".to_string()
        } else if input.config.zero_replicas == ZeroReplicas::Condition && !object_or_external {
            "scale to zero without an Object or External metric: ScaledToZero is not set, so once at zero the HPA is disabled until replicas are set by hand".to_string()
        } else {
            "scale to zero".to_string()
        });
    } else if condition && input.config.zero_replicas == ZeroReplicas::Condition {
        v.push("ScaledToZero is True on the HPA although the target runs: the next rescale sets it False".to_string());
    }
    v
}

fn normalization_lines(input: &ExplainInput, out: &Outcome) -> Vec<String> {
    let spec = &input.hpa.spec;
    let mut v = zero_lines(input, out);
    let (Some(raw), Some(stab)) = (out.raw_recommendation, out.stabilized) else {
        if let Some(r) = &out.rescale_reason {
            v.push(format!("{r}: the metrics are not consulted"));
        }
        return v;
    };
    let window_s = input.config.downscale_stabilization_ms / 1000;
    match &spec.behavior {
        None => {
            v.push(format!(
                "no behavior: legacy rules; scale-down stabilization {window_s}s (highest recommendation of the window), scale-up at most max(2 x {}, 4) = {} per sync",
                out.current_replicas,
                (2 * out.current_replicas).max(4)
            ));
        }
        Some(b) => {
            let up = b.effective_scale_up();
            let down = b.effective_scale_down(window_s as i32);
            let pol = |r: &crate::spec::EffectiveRules| {
                if r.select_policy == SelectPolicy::Disabled {
                    return "disabled".to_string();
                }
                let ps: Vec<String> = r
                    .policies
                    .iter()
                    .map(|p| match p.kind {
                        crate::spec::PolicyType::Pods => {
                            format!("{} pods per {}s", p.value, p.period_seconds)
                        }
                        crate::spec::PolicyType::Percent => {
                            format!("{}% per {}s", p.value, p.period_seconds)
                        }
                    })
                    .collect();
                format!(
                    "{} of [{}], window {}s",
                    if r.select_policy == SelectPolicy::Min {
                        "min"
                    } else {
                        "max"
                    },
                    ps.join(", "),
                    r.stabilization_window_seconds
                )
            };
            v.push(format!("behavior scaleUp: {}", pol(&up)));
            v.push(format!("behavior scaleDown: {}", pol(&down)));
        }
    }
    if stab != raw {
        v.push(format!(
            "stabilization: {raw} -> {stab} (recent recommendations)"
        ));
    } else {
        v.push(format!(
            "stabilization: {raw} (no recent recommendation changes it)"
        ));
    }
    if let Some(l) = out.conditions.get("ScalingLimited") {
        if l.status == "True" {
            v.push(format!(
                "limit: {stab} -> {} ({}: {})",
                out.desired_replicas, l.reason, l.message
            ));
            let hint = match l.reason.as_str() {
                "TooManyReplicas" => Some(format!(
                    "maxReplicas ({}) caps the recommendation; raise it if the load is real",
                    spec.max_replicas
                )),
                "TooFewReplicas" => Some(format!(
                    "minReplicas ({}) holds the floor",
                    spec.min_replicas()
                )),
                "ScaleUpLimit" if spec.behavior.is_none() => Some(
                    "without behavior the controller at most doubles (or goes to 4) per sync; later syncs continue".to_string(),
                ),
                "ScaleUpLimit" => Some(
                    "behavior.scaleUp policies limit the rate; later syncs continue".to_string(),
                ),
                "ScaleDownLimit" => Some(
                    "behavior.scaleDown policies limit the rate; later syncs continue".to_string(),
                ),
                _ => None,
            };
            if let Some(h) = hint {
                v.push(format!("  {h}"));
            }
        } else {
            v.push(format!(
                "limit: none (min {}, max {})",
                spec.min_replicas(),
                spec.max_replicas
            ));
        }
    }
    if input.state.is_none() && out.desired_replicas < out.current_replicas {
        v.push(format!(
            "note: assumes no recommendation in the last {window_s}s was higher; a running controller holds scale-down while one was"
        ));
    }
    v
}

fn decision_text(out: &Outcome) -> String {
    if let Some(c) = out.conditions.get("ScalingActive") {
        if c.status == "False" {
            return format!(
                "no scaling: {} ({}); stays at {}",
                c.message,
                c.reason,
                replicas(out.current_replicas)
            );
        }
    }
    if out.rescale {
        format!(
            "would scale from {} to {} (event: \"New size: {}; reason: {}\")",
            out.current_replicas,
            out.desired_replicas,
            out.desired_replicas,
            out.rescale_reason.clone().unwrap_or_default()
        )
    } else {
        format!("no change: stays at {}", replicas(out.current_replicas))
    }
}

/// Up to ten names, then how many more.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// The explanation as text, in the layout of `kubectl describe hpa` followed by the
/// arithmetic behind it.
pub fn render_text(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name:                {}", e.name);
    let _ = writeln!(s, "Namespace:           {}", e.namespace);
    let _ = writeln!(s, "Reference:           {}", e.reference);
    let _ = writeln!(s, "Metrics:             ( current / target )");
    for m in &e.metrics {
        let _ = writeln!(s, "  {}:  {} / {}", m.describe_name, m.current, m.target);
    }
    let _ = writeln!(s, "Min replicas:        {}", e.min_replicas);
    let _ = writeln!(s, "Max replicas:        {}", e.max_replicas);
    let _ = writeln!(
        s,
        "{} pods:     {} current / {} desired",
        e.reference
            .split('/')
            .next()
            .filter(|k| !k.is_empty())
            .unwrap_or("Target"),
        e.current_replicas,
        e.desired_replicas
    );
    let _ = writeln!(s, "Conditions:");
    let w_type = e
        .conditions
        .iter()
        .map(|c| c.kind.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_reason = e
        .conditions
        .iter()
        .map(|c| c.reason.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        s,
        "  {:w_type$}  Status  {:w_reason$}  Message",
        "Type", "Reason"
    );
    let _ = writeln!(
        s,
        "  {:w_type$}  ------  {:w_reason$}  -------",
        "----", "------"
    );
    for c in &e.conditions {
        let _ = writeln!(
            s,
            "  {:w_type$}  {:6}  {:w_reason$}  {}",
            c.kind, c.status, c.reason, c.message
        );
    }
    let _ = writeln!(s, "\nPer metric:");
    for (i, m) in e.metrics.iter().enumerate() {
        let _ = writeln!(s, "  {}. {}", i + 1, m.metric_name);
        let _ = writeln!(s, "     current {} / target {}", m.current, m.target);
        if let Some(r) = m.ratio {
            let _ = writeln!(
                s,
                "     ratio {r:.3}, tolerance band [{:.2}, {:.2}] -> {}",
                m.tolerance_band[0],
                m.tolerance_band[1],
                if m.within_tolerance == Some(true) {
                    "within"
                } else {
                    "outside"
                }
            );
        }
        if let (Some(p), Some(f)) = (m.proposed_replicas, &m.formula) {
            let _ = writeln!(s, "     proposes {}: {f}", replicas(p));
        }
        if let Some(c) = &m.pods {
            for (what, names) in [
                ("unready", &c.unready),
                ("without metrics", &c.missing),
                ("ignored (failed or deleting)", &c.ignored),
            ] {
                if !names.is_empty() {
                    let _ = writeln!(s, "     {what}: {}", name_list(names));
                }
            }
        }
        if let Some(err) = &m.error {
            let _ = writeln!(
                s,
                "     {}: {}",
                m.error_reason.as_deref().unwrap_or("error"),
                err
            );
        }
        if let Some(c) = &m.check {
            let _ = writeln!(s, "     check: {c}");
        }
    }
    let _ = writeln!(s, "\nRecommendation:");
    if let Some(c) = e.combined_recommendation {
        let _ = writeln!(s, "  highest metric proposal: {c}");
    }
    for l in &e.normalization {
        let _ = writeln!(s, "  {l}");
    }
    let _ = writeln!(s, "  desired replicas: {}", e.desired_replicas);
    let _ = writeln!(s, "  {}", e.decision);
    s
}

/// Fetch each metric with `fetch` (for example through a metrics backend), then explain.
pub fn explain_with<F>(
    hpa: HorizontalPodAutoscaler,
    current_replicas: i32,
    config: ControllerConfig,
    now_ms: i64,
    mut fetch: F,
) -> Explanation
where
    F: FnMut(&MetricSpec) -> FetchedValue,
{
    let values = hpa
        .spec
        .effective_metrics()
        .iter()
        .map(|m| fetch(m).map(Measured::Value))
        .collect();
    explain(&ExplainInput {
        hpa,
        current_replicas,
        status_replicas: None,
        pods: None,
        values,
        config,
        state: None,
        now_ms,
        selector_error: None,
    })
}

/// The name a metric is given on the command line (`--values NAME=VALUE`): the resource
/// name for Resource/ContainerResource metrics, the metric name otherwise.
pub fn value_key(m: &MetricSpec) -> String {
    match m.kind.as_str() {
        "Resource" => m.resource.as_ref().map(|r| r.name.clone()),
        "ContainerResource" => m.container_resource.as_ref().map(|r| r.name.clone()),
        "Pods" => m.pods.as_ref().map(|r| r.metric.name.clone()),
        "Object" => m.object.as_ref().map(|r| r.metric.name.clone()),
        "External" => m.external.as_ref().map(|r| r.metric.name.clone()),
        _ => None,
    }
    .unwrap_or_default()
}

/// [`explain_with`] for an asynchronous fetch (a metrics backend): each metric is fetched
/// in spec order, then the decision is explained.
pub async fn explain_with_async<F, Fut>(
    hpa: HorizontalPodAutoscaler,
    current_replicas: i32,
    config: ControllerConfig,
    now_ms: i64,
    mut fetch: F,
) -> Explanation
where
    F: FnMut(MetricSpec) -> Fut,
    Fut: std::future::Future<Output = FetchedValue>,
{
    let mut values = Vec::new();
    for m in hpa.spec.effective_metrics() {
        values.push(fetch(m).await.map(Measured::Value));
    }
    explain(&ExplainInput {
        hpa,
        current_replicas,
        status_replicas: None,
        pods: None,
        values,
        config,
        state: None,
        now_ms,
        selector_error: None,
    })
}
