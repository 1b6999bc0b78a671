//! The reconcile of one HPA (`horizontal.go`): the min/max branches, combining metrics,
//! legacy and behavior normalization, and the controller's memory between reconciles.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::calc::{
    compute_metric, ControllerConfig, MetricFailure, MetricInput, Observed, Pod, Proposal,
    Tolerances, ZeroReplicas,
};
use crate::spec::{EffectiveRules, HpaSpec, PolicyType, SelectPolicy};

/// A remembered raw recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub replicas: i32,
    pub at_ms: i64,
}

/// A remembered scale event (`replicas` is the size of the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub replicas: i32,
    pub at_ms: i64,
    pub outdated: bool,
}

/// What the controller remembers about one HPA between reconciles.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerState {
    /// `None` until the first reconcile, which seeds `(spec.replicas, now)`.
    pub recommendations: Option<Vec<Recommendation>>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
    /// The HPA's `ScaledToZero` condition is `True`: the controller itself scaled the
    /// target to zero (kept in the HPA's status, so it survives controller restarts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaled_to_zero: bool,
}

/// One HPA status condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Where the combined metric recommendation comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsInput<'a> {
    /// What the metrics APIs returned, one entry per `spec.metrics[i]`.
    Observed(&'a [Observed]),
    /// An already combined recommendation (skips the metric arithmetic).
    Raw(i32),
}

/// The inputs of one reconcile.
#[derive(Debug, Clone)]
pub struct TickInput<'a> {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub pods: &'a [Pod],
    pub metrics: MetricsInput<'a>,
    pub now_ms: i64,
    /// A problem with the scale target's selector, as the controller's condition reason
    /// and message (`InvalidSelector`, `AmbiguousSelector`); it blocks scaling on metrics.
    pub selector_error: Option<(String, String)>,
}

/// What one reconcile decided, with the intermediate numbers an explanation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub current_replicas: i32,
    pub desired_replicas: i32,
    /// Whether the controller would write a new replica count.
    pub rescale: bool,
    /// The reason of the SuccessfulRescale event, when rescaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescale_reason: Option<String>,
    /// Per-metric proposals or failures, in spec order (serialized as `{"proposal": ...}`
    /// or `{"failure": ...}`).
    #[serde(serialize_with = "serialize_metrics")]
    pub metrics: Vec<Result<Proposal, MetricFailure>>,
    /// The combined recommendation before normalization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_recommendation: Option<i32>,
    /// The recommendation after stabilization, before rate limits and min/max.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stabilized: Option<i32>,
    pub tolerances: Tolerances,
    pub conditions: BTreeMap<String, Condition>,
    /// The error the reconcile returns (metrics could not all be computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn serialize_metrics<S: serde::Serializer>(
    metrics: &[Result<Proposal, MetricFailure>],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::{SerializeMap, SerializeSeq};
    struct One<'a>(&'a Result<Proposal, MetricFailure>);
    impl Serialize for One<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            match self.0 {
                Ok(p) => m.serialize_entry("proposal", p)?,
                Err(f) => m.serialize_entry("failure", f)?,
            }
            m.end()
        }
    }
    let mut seq = s.serialize_seq(Some(metrics.len()))?;
    for r in metrics {
        seq.serialize_element(&One(r))?;
    }
    seq.end()
}

fn cond(status: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// The tolerances for an HPA: per-direction `behavior` overrides, else the controller flag.
pub fn tolerances(spec: &HpaSpec, config: &ControllerConfig) -> Tolerances {
    let pick = |r: Option<&crate::spec::ScalingRules>| {
        r.and_then(|r| r.tolerance.as_ref())
            .map(|q| q.as_f64())
            .unwrap_or(config.tolerance)
    };
    let b = spec.behavior.as_ref();
    Tolerances {
        scale_down: pick(b.and_then(|b| b.scale_down.as_ref())),
        scale_up: pick(b.and_then(|b| b.scale_up.as_ref())),
    }
}

/// Run one reconcile of `spec` at `input.now_ms`, updating `state`.
pub fn reconcile(
    spec: &HpaSpec,
    config: &ControllerConfig,
    state: &mut ControllerState,
    input: &TickInput,
) -> Outcome {
    let now = input.now_ms;
    let current = input.spec_replicas;
    let tol = tolerances(spec, config);
    let mut out = Outcome {
        current_replicas: current,
        desired_replicas: current,
        rescale: false,
        rescale_reason: None,
        metrics: Vec::new(),
        raw_recommendation: None,
        stabilized: None,
        tolerances: tol,
        conditions: BTreeMap::new(),
        error: None,
    };
    out.conditions.insert(
        "AbleToScale".into(),
        cond(
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        ),
    );
    if state.recommendations.is_none() {
        state.recommendations = Some(vec![Recommendation {
            replicas: current,
            at_ms: now,
        }]);
    }
    let min = spec.min_replicas();
    let max = spec.max_replicas;
    let zero = ZeroState::new(spec, config, state);
    let desired;
    let rescale;
    if current == 0 && !zero.computes_metrics_at_zero(min) {
        desired = 0;
        rescale = false;
        out.conditions.insert(
            "ScalingActive".into(),
            cond(
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            ),
        );
    } else if current != 0 && current > max {
        out.rescale_reason = Some("Current number of replicas above Spec.MaxReplicas".into());
        desired = max;
        rescale = desired != current;
    } else if current != 0 && current < min {
        out.rescale_reason = Some("Current number of replicas below Spec.MinReplicas".into());
        desired = min;
        rescale = desired != current;
    } else if let Some((reason, message)) = &input.selector_error {
        out.conditions
            .insert("ScalingActive".into(), cond(false, reason, message.clone()));
        out.error = Some(message.clone());
        return out;
    } else {
        let (proposal, metric) = match &input.metrics {
            MetricsInput::Raw(r) => (*r, "raw recommendation".to_string()),
            MetricsInput::Observed(observed) => {
                match combine(spec, config, tol, input, observed, &mut out) {
                    Some(x) => x,
                    None => return out,
                }
            }
        };
        let mut d = 0;
        if proposal > d {
            d = proposal;
        }
        out.raw_recommendation = Some(d);
        if d > current {
            out.rescale_reason = Some(format!("{metric} above target"));
        } else if d < current {
            out.rescale_reason = Some("All metrics below target".into());
        }
        let mut normalized = match &spec.behavior {
            None => normalize_legacy(config, state, current, d, min, max, now, &mut out),
            Some(b) => {
                let up = b.effective_scale_up();
                let down =
                    b.effective_scale_down((config.downscale_stabilization_ms / 1000) as i32);
                normalize_with_behavior(state, &up, &down, current, d, min, max, now, &mut out)
            }
        };
        // Scaled to zero while minReplicas was 0, then minReplicas raised: back to the floor.
        if current == 0 && min != 0 && zero.condition && normalized < min {
            normalized = min;
            if out.rescale_reason.is_none() {
                out.rescale_reason =
                    Some("Current number of replicas below Spec.MinReplicas".into());
            }
        }
        desired = normalized;
        rescale = desired != current;
    }
    if rescale && zero.tracks_condition() {
        let to_zero = current > 0 && desired == 0 && min == 0 && zero.object_or_external;
        state.scaled_to_zero = to_zero;
        out.conditions.insert(
            "ScaledToZero".into(),
            if to_zero {
                cond(
                    true,
                    "ScaledToZero",
                    "the HPA controller scaled the workload to zero",
                )
            } else {
                cond(
                    false,
                    "NotScaledToZero",
                    "the HPA controller did not scale the workload to zero",
                )
            },
        );
    } else if zero.tracks_condition() && state.scaled_to_zero {
        out.conditions.insert(
            "ScaledToZero".into(),
            cond(
                true,
                "ScaledToZero",
                "the HPA controller scaled the workload to zero",
            ),
        );
    }
    if rescale {
        out.conditions.insert(
            "AbleToScale".into(),
            cond(
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            ),
        );
        if let Some(b) = &spec.behavior {
            let up = b.effective_scale_up();
            let down = b.effective_scale_down((config.downscale_stabilization_ms / 1000) as i32);
            store_scale_event(state, &up, &down, current, desired, now);
        }
        out.desired_replicas = desired;
        out.rescale = true;
    } else {
        out.rescale_reason = None;
        out.desired_replicas = current;
    }
    out
}

/// What the reconcile knows about scaling to and from zero (`HPAScaleToZero`, KEP-2021).
struct ZeroState {
    mode: ZeroReplicas,
    /// `spec.metrics` has an Object or External metric, the only kinds that can be read
    /// while no pod runs.
    object_or_external: bool,
    /// The `ScaledToZero` condition is `True` and this controller reads it.
    condition: bool,
}

impl ZeroState {
    fn new(spec: &HpaSpec, config: &ControllerConfig, state: &ControllerState) -> ZeroState {
        let object_or_external = spec
            .metrics
            .iter()
            .any(|m| m.kind == "Object" || m.kind == "External");
        ZeroState {
            mode: config.zero_replicas,
            object_or_external,
            condition: config.zero_replicas == ZeroReplicas::Condition && state.scaled_to_zero,
        }
    }

    fn tracks_condition(&self) -> bool {
        self.mode == ZeroReplicas::Condition
    }

    /// Whether a target at zero replicas is autoscaled (else the HPA reports
    /// `ScalingDisabled` and leaves it at zero).
    fn computes_metrics_at_zero(&self, min: i32) -> bool {
        match self.mode {
            ZeroReplicas::Legacy => min == 0,
            ZeroReplicas::GateOff => false,
            // Only a target this HPA scaled to zero itself; then either a metric it can
            // still read there, or a raised minReplicas to return to.
            ZeroReplicas::Condition => self.condition && (self.object_or_external || min != 0),
        }
    }
}

/// `computeReplicasForMetrics`: the max over valid metrics, or `None` when scaling is blocked.
fn combine(
    spec: &HpaSpec,
    config: &ControllerConfig,
    tol: Tolerances,
    input: &TickInput,
    observed: &[Observed],
    out: &mut Outcome,
) -> Option<(i32, String)> {
    let metrics = spec.effective_metrics();
    let mi = MetricInput {
        spec_replicas: input.spec_replicas,
        status_replicas: input.status_replicas,
        pods: input.pods,
        now_ms: input.now_ms,
        config,
        tolerances: tol,
    };
    let mut replicas = 0;
    let mut metric = String::new();
    let mut invalid = 0usize;
    let mut first: Option<MetricFailure> = None;
    for (i, m) in metrics.iter().enumerate() {
        let obs = observed.get(i).unwrap_or(&Observed::Nothing);
        let r = compute_metric(m, obs, &mi);
        match &r {
            Err(f) => {
                if invalid == 0 {
                    first = Some(f.clone());
                }
                invalid += 1;
            }
            Ok(p) => {
                if replicas == 0 || p.replicas > replicas {
                    replicas = p.replicas;
                    metric = p.metric_name.clone();
                }
            }
        }
        out.metrics.push(r);
    }
    let err = first.as_ref().map(|f| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            metrics.len(),
            f.error
        )
    });
    if invalid >= metrics.len() || (invalid > 0 && replicas < input.spec_replicas) {
        if let Some(f) = &first {
            out.conditions.insert(
                "ScalingActive".into(),
                cond(
                    false,
                    &f.reason,
                    format!(
                        "the HPA was unable to compute the replica count: {}",
                        f.message
                    ),
                ),
            );
        }
        out.error = err;
        return None;
    }
    out.conditions.insert(
        "ScalingActive".into(),
        cond(
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        ),
    );
    out.error = err;
    Some((replicas, metric))
}

#[allow(clippy::too_many_arguments)]
fn normalize_legacy(
    config: &ControllerConfig,
    state: &mut ControllerState,
    current: i32,
    raw: i32,
    min: i32,
    max: i32,
    now: i64,
    out: &mut Outcome,
) -> i32 {
    let recs = state.recommendations.get_or_insert_with(Vec::new);
    let cutoff = now.saturating_sub(config.downscale_stabilization_ms);
    let mut best = raw;
    let mut old: Option<usize> = None;
    for (i, r) in recs.iter().enumerate() {
        if r.at_ms < cutoff {
            old = Some(i);
        } else if r.replicas > best {
            best = r.replicas;
        }
    }
    let rec = Recommendation {
        replicas: raw,
        at_ms: now,
    };
    match old {
        Some(i) => recs[i] = rec,
        None => recs.push(rec),
    }
    out.stabilized = Some(best);
    out.conditions.insert(
        "AbleToScale".into(),
        if best != raw {
            cond(true, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
        } else {
            cond(true, "ReadyForNewScale", "recommended size matches current size")
        },
    );
    let up_cap = (2.0 * f64::from(current)).max(4.0) as i32;
    let (max_allowed, why, msg) = if max > up_cap {
        (
            up_cap,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    let (d, why, msg) = if best < min {
        (
            min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    } else if best > max_allowed {
        (max_allowed, why, msg)
    } else {
        (
            best,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    };
    out.conditions
        .insert("ScalingLimited".into(), cond(d != best, why, msg));
    d
}

#[allow(clippy::too_many_arguments)]
fn normalize_with_behavior(
    state: &mut ControllerState,
    up: &EffectiveRules,
    down: &EffectiveRules,
    current: i32,
    raw: i32,
    min: i32,
    max: i32,
    now: i64,
    out: &mut Outcome,
) -> i32 {
    let stab = stabilize(state, up, down, current, raw, now);
    out.stabilized = Some(stab);
    out.conditions.insert(
        "AbleToScale".into(),
        if stab != raw {
            if raw >= current {
                cond(true, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation")
            } else {
                cond(true, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
            }
        } else {
            cond(true, "ReadyForNewScale", "recommended size matches current size")
        },
    );
    let (d, why, msg) = rate_limit(state, up, down, current, stab, min, max, now);
    out.conditions
        .insert("ScalingLimited".into(), cond(d != stab, why, msg));
    d
}

fn stabilize(
    state: &mut ControllerState,
    up: &EffectiveRules,
    down: &EffectiveRules,
    current: i32,
    raw: i32,
    now: i64,
) -> i32 {
    let recs = state.recommendations.get_or_insert_with(Vec::new);
    let up_cutoff = now.saturating_sub(i64::from(up.stabilization_window_seconds) * 1000);
    let down_cutoff = now.saturating_sub(i64::from(down.stabilization_window_seconds) * 1000);
    let mut up_rec = raw;
    let mut down_rec = raw;
    let mut old: Option<usize> = None;
    for (i, r) in recs.iter().enumerate() {
        if r.at_ms > up_cutoff {
            up_rec = up_rec.min(r.replicas);
        }
        if r.at_ms > down_cutoff {
            down_rec = down_rec.max(r.replicas);
        }
        if r.at_ms < up_cutoff && r.at_ms < down_cutoff {
            old = Some(i);
        }
    }
    let mut out = current;
    if out < up_rec {
        out = up_rec;
    }
    if out > down_rec {
        out = down_rec;
    }
    let rec = Recommendation {
        replicas: raw,
        at_ms: now,
    };
    match old {
        Some(i) => recs[i] = rec,
        None => recs.push(rec),
    }
    out
}

fn change_in_period(period_s: i32, events: &[ScaleEvent], now: i64) -> i32 {
    let cutoff = now.saturating_sub(i64::from(period_s) * 1000);
    events
        .iter()
        .filter(|e| e.at_ms > cutoff)
        .fold(0i32, |a, e| a.saturating_add(e.replicas))
}

/// `calculateScaleUpLimitWithScalingRules`.
pub fn scale_up_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &EffectiveRules,
    now: i64,
) -> i32 {
    let (mut acc, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MAX, std::cmp::min),
        SelectPolicy::Max => (i32::MIN, std::cmp::max),
    };
    for p in &rules.policies {
        let start = current
            .saturating_sub(change_in_period(p.period_seconds, up_events, now))
            .saturating_add(change_in_period(p.period_seconds, down_events, now));
        let prop = match p.kind {
            PolicyType::Pods => start.saturating_add(p.value),
            PolicyType::Percent => {
                sat_i32((f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil())
            }
        };
        acc = pick(acc, prop);
    }
    acc
}

/// `calculateScaleDownLimitWithBehaviors`.
pub fn scale_down_limit(
    current: i32,
    up_events: &[ScaleEvent],
    down_events: &[ScaleEvent],
    rules: &EffectiveRules,
    now: i64,
) -> i32 {
    let (mut acc, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MIN, std::cmp::max),
        SelectPolicy::Max => (i32::MAX, std::cmp::min),
    };
    for p in &rules.policies {
        let start = current
            .saturating_sub(change_in_period(p.period_seconds, up_events, now))
            .saturating_add(change_in_period(p.period_seconds, down_events, now));
        let prop = match p.kind {
            PolicyType::Pods => start.saturating_sub(p.value),
            PolicyType::Percent => sat_i32(f64::from(start) * (1.0 - f64::from(p.value) / 100.0)),
        };
        acc = pick(acc, prop);
    }
    acc
}

fn sat_i32(x: f64) -> i32 {
    if x.is_nan() {
        0
    } else if x >= f64::from(i32::MAX) {
        i32::MAX
    } else if x <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        x as i32
    }
}

#[allow(clippy::too_many_arguments)]
fn rate_limit(
    state: &ControllerState,
    up: &EffectiveRules,
    down: &EffectiveRules,
    current: i32,
    d: i32,
    min: i32,
    max: i32,
    now: i64,
) -> (i32, &'static str, &'static str) {
    if d > current {
        let mut l = scale_up_limit(
            current,
            &state.scale_up_events,
            &state.scale_down_events,
            up,
            now,
        );
        if l < current {
            l = current;
        }
        let (allowed, why, msg) = if max > l {
            (
                l,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if d > allowed {
            return (allowed, why, msg);
        }
    } else if d < current {
        let mut l = scale_down_limit(
            current,
            &state.scale_up_events,
            &state.scale_down_events,
            down,
            now,
        );
        if l > current {
            l = current;
        }
        let (allowed, why, msg) = if min < l {
            (
                l,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if d < allowed {
            return (allowed, why, msg);
        }
    }
    (
        d,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

fn store_scale_event(
    state: &mut ControllerState,
    up: &EffectiveRules,
    down: &EffectiveRules,
    old: i32,
    new: i32,
    now: i64,
) {
    let (list, rules, change) = if new > old {
        (&mut state.scale_up_events, up, new.saturating_sub(old))
    } else {
        (&mut state.scale_down_events, down, old.saturating_sub(new))
    };
    let longest = rules
        .policies
        .iter()
        .map(|p| p.period_seconds)
        .max()
        .unwrap_or(0);
    let cutoff = now.saturating_sub(i64::from(longest) * 1000);
    let mut last_old = None;
    for (i, e) in list.iter_mut().enumerate() {
        if e.at_ms < cutoff {
            e.outdated = true;
        }
        if e.outdated {
            last_old = Some(i);
        }
    }
    let ev = ScaleEvent {
        replicas: change,
        at_ms: now,
        outdated: false,
    };
    match last_old {
        Some(i) => list[i] = ev,
        None => list.push(ev),
    }
}
