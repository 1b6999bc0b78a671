//! Per-metric replica proposals (`replica_calculator.go`): pod classification, the
//! utilization and plain-average ratios with their rebalancing of missing and unready pods,
//! and the Object/External formulas.

use std::collections::{BTreeMap, BTreeSet};

use promhpa_core::quantity::Quantity;
use serde::Serialize;

use crate::spec::{MetricSpec, MetricTarget};

pub use promhpa_core::pod::PodPhase;

/// The status of a pod condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// A pod matched by the scale target's selector. Times are milliseconds on the same clock
/// as the reconcile's `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub name: String,
    pub phase: PodPhase,
    /// Status of the Ready condition; `None` when the pod has no Ready condition.
    pub ready: Option<ConditionStatus>,
    /// Last transition time of the Ready condition.
    pub ready_since_ms: i64,
    pub start_time_ms: Option<i64>,
    pub deleting: bool,
    /// Per-container requests, in spec order (regular and restartable init containers).
    pub containers: Vec<Container>,
    /// When the pod sets pod-level requests (PodLevelResources) for cpu, memory or huge
    /// pages: its requests as Kubernetes' `PodRequests` works them out (its containers'
    /// aggregated, the pod-level ones in their place, overhead added). Empty otherwise.
    pub pod_requests: BTreeMap<String, Quantity>,
}

impl Pod {
    /// The pod's request for `resource` in milli-units, as the controller works it out
    /// (`calculateRequests`): the named container's; without a container, the pod-level
    /// requests when the pod sets them, else the sum over its regular and restartable init
    /// containers, every one of which must request the resource.
    pub fn request_milli(&self, resource: &str, container: Option<&str>) -> Result<i64, String> {
        if container.is_none() && !self.pod_requests.is_empty() {
            return self
                .pod_requests
                .get(resource)
                .map(Quantity::milli_value)
                .ok_or_else(|| {
                    format!(
                        "missing pod-level request for {resource} in Pod {}",
                        self.name
                    )
                });
        }
        let mut total: i64 = 0;
        for c in &self.containers {
            if container.is_none_or(|n| n == c.name) {
                let Some(q) = c.requests.get(resource) else {
                    return Err(format!(
                        "missing request for {resource} in container {} of Pod {}",
                        c.name, self.name
                    ));
                };
                total = total.saturating_add(q.milli_value());
            }
            if container == Some(c.name.as_str()) {
                return Ok(total);
            }
        }
        match container {
            Some(c) => Err(format!("container {c} not found in Pod {}", self.name)),
            None => Ok(total),
        }
    }
}

/// A container's name and resource requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub requests: BTreeMap<String, Quantity>,
}

/// One per-pod metric sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodSample {
    pub milli: i64,
    pub timestamp_ms: i64,
    pub window_ms: i64,
}

/// What the metrics APIs returned for one metric spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Per-pod samples (Resource, ContainerResource, Pods metrics).
    Pods(BTreeMap<String, PodSample>),
    /// The value of an Object metric, in milli-units.
    Object(i64),
    /// External metric values, in milli-units; the HPA sums them.
    External(Vec<i64>),
    /// The metric could not be fetched.
    Error(String),
    /// Nothing was fetched (a metric source type the controller does not know).
    Nothing,
}

/// Controller flags that affect the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerConfig {
    pub tolerance: f64,
    pub cpu_initialization_period_ms: i64,
    pub initial_readiness_delay_ms: i64,
    pub downscale_stabilization_ms: i64,
    /// How the controller treats a scale target at zero replicas.
    pub zero_replicas: ZeroReplicas,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            tolerance: 0.1,
            cpu_initialization_period_ms: 300_000,
            initial_readiness_delay_ms: 30_000,
            downscale_stabilization_ms: 300_000,
            zero_replicas: ZeroReplicas::default(),
        }
    }
}

/// The controller generation's handling of zero replicas (KEP-2021, `HPAScaleToZero`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroReplicas {
    /// Kubernetes 1.36 and later with the `HPAScaleToZero` gate on (the default from 1.37):
    /// scaling to zero on an Object or External metric sets the `ScaledToZero` condition,
    /// and only while it is set does the controller compute metrics for a target at zero.
    /// A target at zero without it was scaled down by hand, which disables the HPA.
    #[default]
    Condition,
    /// Kubernetes 1.36 and later with the gate off: a target at zero always disables the
    /// HPA, and the condition is neither read nor written.
    GateOff,
    /// Kubernetes up to 1.35: a target at zero disables the HPA unless `minReplicas` is 0,
    /// in which case the metrics decide as for any other count.
    Legacy,
}

impl std::str::FromStr for ZeroReplicas {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "condition" => Ok(ZeroReplicas::Condition),
            "gate-off" => Ok(ZeroReplicas::GateOff),
            "legacy" => Ok(ZeroReplicas::Legacy),
            other => Err(format!(
                "unknown zero-replicas mode {other:?}: condition (Kubernetes 1.36+ with HPAScaleToZero, the 1.37 default), gate-off (1.36+ without it) or legacy (up to 1.35)"
            )),
        }
    }
}

/// Tolerances in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Tolerances {
    /// `(1 - down) <= r <= (1 + up)`.
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// A metric proposal: what one metric alone asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub replicas: i32,
    /// The name the controller uses for this metric in events and conditions.
    pub metric_name: String,
    /// The usage ratio (current / target) of the first pass.
    pub ratio: f64,
    /// Integer percentage of request (Utilization targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<i32>,
    /// The reported current value in milli-units (average, or the object/external value).
    pub current_milli: i64,
    /// Whether the reported value is an average per pod.
    pub is_average: bool,
    /// The target in milli-units, or the utilization percentage for Utilization targets.
    pub target: i64,
    /// How many pods fell in each class (Resource/Pods metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodCounts>,
    /// Which pods were not counted as ready with a metric, when any was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_classes: Option<PodClasses>,
}

/// The pods `groupPods` did not count as ready with a metric, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodClasses {
    /// Pending pods, and for cpu pods not (yet) ready by the controller's rules.
    pub unready: Vec<String>,
    /// Pods the metrics API returned no sample for.
    pub missing: Vec<String>,
    /// Failed pods and pods being deleted.
    pub ignored: Vec<String>,
}

/// Counts of the pod classes (`groupPods`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCounts {
    pub ready: usize,
    pub unready: usize,
    pub missing: usize,
    pub ignored: usize,
}

/// Why a metric produced no proposal: the condition reason and the error text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricFailure {
    pub reason: String,
    /// The condition's message after "the HPA was unable to compute the replica count: ",
    /// and the text of the event of `reason`.
    pub message: String,
    /// The error the controller returns for the metric (`failed to get pods metric value:
    /// ...`), which "invalid metrics ..., first error is: " quotes.
    pub error: String,
    pub metric_name: String,
}

/// Everything a per-metric computation reads.
pub struct MetricInput<'a> {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub pods: &'a [Pod],
    pub now_ms: i64,
    pub config: &'a ControllerConfig,
    pub tolerances: Tolerances,
}

struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn group_pods(
    pods: &[Pod],
    metrics: &BTreeMap<String, PodSample>,
    resource: &str,
    input: &MetricInput,
) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: BTreeSet::new(),
        missing: BTreeSet::new(),
        ignored: BTreeSet::new(),
    };
    for pod in pods {
        if pod.deleting || pod.phase == PodPhase::Failed {
            g.ignored.insert(pod.name.clone());
            continue;
        }
        if pod.phase == PodPhase::Pending {
            g.unready.insert(pod.name.clone());
            continue;
        }
        let Some(sample) = metrics.get(&pod.name) else {
            g.missing.insert(pod.name.clone());
            continue;
        };
        if resource == "cpu" {
            let unready = match (pod.ready, pod.start_time_ms) {
                (None, _) | (_, None) => true,
                (Some(status), Some(start)) => {
                    // Only a Ready condition that is False counts against the pod; Unknown
                    // (an unreachable node) does not.
                    let not_ready = status == ConditionStatus::False;
                    if input.now_ms
                        < start.saturating_add(input.config.cpu_initialization_period_ms)
                    {
                        not_ready
                            || sample.timestamp_ms
                                < pod.ready_since_ms.saturating_add(sample.window_ms)
                    } else {
                        not_ready
                            && start + input.config.initial_readiness_delay_ms > pod.ready_since_ms
                    }
                }
            };
            if unready {
                g.unready.insert(pod.name.clone());
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

impl Groups {
    fn classes(&self) -> Option<PodClasses> {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        (!self.unready.is_empty() || !self.missing.is_empty() || !self.ignored.is_empty()).then(
            || PodClasses {
                unready: list(&self.unready),
                missing: list(&self.missing),
                ignored: list(&self.ignored),
            },
        )
    }

    fn counts(&self) -> PodCounts {
        PodCounts {
            ready: self.ready,
            unready: self.unready.len(),
            missing: self.missing.len(),
            ignored: self.ignored.len(),
        }
    }
}

fn pod_requests(
    pods: &[Pod],
    resource: &str,
    container: Option<&str>,
) -> Result<BTreeMap<String, i64>, String> {
    pods.iter()
        .map(|pod| Ok((pod.name.clone(), pod.request_milli(resource, container)?)))
        .collect()
}

/// `GetResourceUtilizationRatio`: (ratio, utilization %, raw average).
fn utilization_ratio(
    metrics: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let mut m_total: i64 = 0;
    let mut r_total: i64 = 0;
    let mut n: i64 = 0;
    for (name, value) in metrics {
        if let Some(req) = requests.get(name) {
            m_total = m_total.saturating_add(*value);
            r_total = r_total.saturating_add(*req);
            n += 1;
        }
    }
    if r_total == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let util = m_total.saturating_mul(100).wrapping_div(r_total) as i32;
    Ok((f64::from(util) / f64::from(target), util, m_total / n))
}

/// `GetMetricUsageRatio`: (ratio, integer average).
fn usage_ratio(metrics: &BTreeMap<String, i64>, target: i64) -> (f64, i64) {
    let sum = metrics.values().fold(0i64, |a, v| a.saturating_add(*v));
    let avg = if metrics.is_empty() {
        0
    } else {
        sum / metrics.len() as i64
    };
    (avg as f64 / target as f64, avg)
}

fn ceil_i32(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else if c <= f64::from(i32::MIN) {
        i32::MIN
    } else if c.is_nan() {
        0
    } else {
        c as i32
    }
}

/// The shared skeleton of `GetResourceReplicas` and `calcPlainMetricReplicas`.
enum Kind<'a> {
    Utilization {
        requests: &'a BTreeMap<String, i64>,
        target: i32,
    },
    Plain {
        target: i64,
    },
}

struct Calculated {
    replicas: i32,
    ratio: f64,
    utilization: Option<i32>,
    average: i64,
    counts: PodCounts,
    classes: Option<PodClasses>,
}

fn pods_replicas(
    input: &MetricInput,
    samples: &BTreeMap<String, PodSample>,
    resource: &str,
    kind: Kind,
) -> Result<Calculated, String> {
    let current = input.spec_replicas;
    if input.pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(input.pods, samples, resource, input);
    let mut metrics: BTreeMap<String, i64> =
        samples.iter().map(|(k, v)| (k.clone(), v.milli)).collect();
    for name in groups.ignored.iter().chain(groups.unready.iter()) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio_of = |m: &BTreeMap<String, i64>| -> Result<(f64, Option<i32>, i64), String> {
        match &kind {
            Kind::Utilization { requests, target } => {
                let (r, u, a) = utilization_ratio(m, requests, *target)?;
                Ok((r, Some(u), a))
            }
            Kind::Plain { target } => {
                let (r, a) = usage_ratio(m, *target);
                Ok((r, None, a))
            }
        }
    };
    let (ratio, utilization, average) = ratio_of(&metrics)?;
    let done = |replicas: i32| Calculated {
        replicas,
        ratio,
        utilization,
        average,
        counts: groups.counts(),
        classes: groups.classes(),
    };
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if input.tolerances.is_within(ratio) {
            return Ok(done(current));
        }
        return Ok(done(ceil_i32(ratio * groups.ready as f64)));
    }
    if !groups.missing.is_empty() {
        if ratio < 1.0 {
            for name in &groups.missing {
                let fill = match &kind {
                    Kind::Utilization { requests, target } => {
                        let req = requests.get(name).copied().unwrap_or(0);
                        req.saturating_mul(i64::from((*target).max(100))) / 100
                    }
                    Kind::Plain { target } => *target,
                };
                metrics.insert(name.clone(), fill);
            }
        } else if ratio > 1.0 {
            for name in &groups.missing {
                metrics.insert(name.clone(), 0);
            }
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&metrics)?;
    if input.tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(done(current));
    }
    let new_replicas = ceil_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok(done(current));
    }
    Ok(done(new_replicas))
}

/// `getUsageRatioReplicaCount`: Object/External Value targets.
fn usage_ratio_replica_count(input: &MetricInput, ratio: f64) -> Result<i32, String> {
    if input.spec_replicas != 0 {
        if input.tolerances.is_within(ratio) {
            return Ok(input.spec_replicas);
        }
        if input.pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let ready = input
            .pods
            .iter()
            .filter(|p| p.phase == PodPhase::Running && p.ready == Some(ConditionStatus::True))
            .count();
        Ok(ceil_i32(ratio * ready as f64))
    } else {
        Ok(ceil_i32(ratio))
    }
}

/// Object/External AverageValue: (replicas, ratio, reported average).
fn per_pod_replicas(input: &MetricInput, usage: i64, target: i64) -> (i32, f64, i64) {
    let status = input.status_replicas;
    let ratio = usage as f64 / (target as f64 * f64::from(status));
    let replicas = if input.tolerances.is_within(ratio) {
        status
    } else {
        ceil_i32(usage as f64 / target as f64)
    };
    let avg = (usage as f64 / f64::from(status)).ceil();
    let avg = if avg.is_nan() {
        0
    } else if avg >= i64::MAX as f64 {
        i64::MAX
    } else if avg <= i64::MIN as f64 {
        i64::MIN
    } else {
        avg as i64
    };
    (replicas, ratio, avg)
}

/// The name the controller gives a metric in conditions and events.
pub fn metric_name(spec: &MetricSpec) -> String {
    match spec.kind.as_str() {
        "Resource" => match &spec.resource {
            Some(r) if r.target.average_value.is_none() => {
                format!("{} resource utilization (percentage of request)", r.name)
            }
            Some(r) => format!("{} resource", r.name),
            None => "resource metric".into(),
        },
        "ContainerResource" => match &spec.container_resource {
            Some(r) if r.target.average_value.is_none() => format!(
                "{} container resource utilization (percentage of request)",
                r.name
            ),
            // As the controller names it: the same as a Resource metric's.
            Some(r) => format!("{} resource", r.name),
            None => "container resource metric".into(),
        },
        "Pods" => match &spec.pods {
            Some(p) => format!("pods metric {}", p.metric.name),
            None => "pods metric".into(),
        },
        "Object" => match &spec.object {
            Some(o) if o.target.kind == "AverageValue" => {
                format!(
                    "external metric {}({})",
                    o.metric.name,
                    selector_text(&o.metric)
                )
            }
            Some(o) => format!("{} metric {}", o.described_object.kind, o.metric.name),
            None => "object metric".into(),
        },
        "External" => match &spec.external {
            Some(e) => format!(
                "external metric {}({})",
                e.metric.name,
                selector_text(&e.metric)
            ),
            None => "external metric".into(),
        },
        other => format!("{other} metric"),
    }
}

/// The controller's wording for a metric that could not be fetched.
fn fetch_error_message(spec: &MetricSpec, e: &str) -> String {
    match spec.kind.as_str() {
        "Resource" | "ContainerResource" => {
            let (res, avg) = match (&spec.resource, &spec.container_resource) {
                (Some(r), _) => (r.name.as_str(), r.target.average_value.is_some()),
                (_, Some(r)) => (r.name.as_str(), r.target.average_value.is_some()),
                _ => ("", false),
            };
            let what = if avg { "usage" } else { "utilization" };
            format!("failed to get {res} {what}: unable to get metrics for resource {res}: {e}")
        }
        "Pods" => {
            let n = spec
                .pods
                .as_ref()
                .map(|p| p.metric.name.as_str())
                .unwrap_or("");
            format!("unable to get metric {n}: {e}")
        }
        "Object" => {
            let (n, kind, obj) = spec
                .object
                .as_ref()
                .map(|o| {
                    (
                        o.metric.name.as_str(),
                        o.described_object.kind.as_str(),
                        o.described_object.name.as_str(),
                    )
                })
                .unwrap_or_default();
            format!("unable to get metric {n}: {kind} {obj}: {e}")
        }
        _ => {
            let (n, sel) = spec
                .external
                .as_ref()
                .map(|x| (x.metric.name.as_str(), selector_text(&x.metric)))
                .unwrap_or_default();
            format!("unable to get external metric {n}({sel}): {e}")
        }
    }
}

/// A metric's selector as the controller prints it (`%+v` of a `*metav1.LabelSelector`):
/// `&LabelSelector{MatchLabels:map[string]string{queue: worker_tasks,},MatchExpressions:[]LabelSelectorRequirement{},}`,
/// or `nil` when the metric has no selector.
pub fn selector_text(m: &crate::spec::MetricIdentifier) -> String {
    let Some(sel) = &m.selector else {
        return "nil".into();
    };
    let mut labels = String::from("map[string]string{");
    for (k, v) in &sel.match_labels {
        labels.push_str(&format!("{k}: {v},"));
    }
    labels.push('}');
    let mut exprs = String::from("[]LabelSelectorRequirement{");
    for e in &sel.match_expressions {
        exprs.push_str(&format!(
            "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
            e.key,
            e.operator,
            e.values.join(" ")
        ));
    }
    exprs.push('}');
    format!("&LabelSelector{{MatchLabels:{labels},MatchExpressions:{exprs},}}")
}

fn fail(reason: &str, name: &str, message: String) -> MetricFailure {
    MetricFailure {
        reason: reason.into(),
        error: message.clone(),
        message,
        metric_name: name.into(),
    }
}

/// The error `computeReplicasForMetric` returns for a failed metric of `spec`: the
/// condition's message in the words of its source type.
fn returned_error(spec: &MetricSpec, message: &str) -> String {
    match spec.kind.as_str() {
        // computeStatusForObjectMetric adds a layer for an average-value target.
        "Object" => match &spec.object {
            Some(o) if o.target.average_value.is_some() && o.target.value.is_none() => format!(
                "failed to get object metric value: failed to get {} object metric: {message}",
                o.metric.name
            ),
            _ => format!("failed to get object metric value: {message}"),
        },
        "Pods" => format!("failed to get pods metric value: {message}"),
        "Resource" => {
            let res = spec.resource.as_ref().map_or("", |r| r.name.as_str());
            format!("failed to get {res} resource metric value: {message}")
        }
        "ContainerResource" => {
            let c = spec
                .container_resource
                .as_ref()
                .map_or("", |r| r.container.as_str());
            format!("failed to get {c} container metric value: {message}")
        }
        // computeStatusForExternalMetric adds a layer of its own for each target type.
        "External" => {
            let n = spec
                .external
                .as_ref()
                .map_or("", |e| e.metric.name.as_str());
            let middle = match &spec.external {
                Some(e) if e.target.average_value.is_some() => {
                    format!("failed to get {n} external metric: ")
                }
                Some(e) if e.target.value.is_some() => {
                    format!("failed to get external metric {n}: ")
                }
                _ => String::new(),
            };
            format!("failed to get {n} external metric value: {middle}{message}")
        }
        _ => message.to_string(),
    }
}

fn target_milli(t: &Option<Quantity>) -> Option<i64> {
    t.as_ref().map(Quantity::milli_value)
}

/// The proposal of one metric spec (`computeReplicasForMetric`).
pub fn compute_metric(
    spec: &MetricSpec,
    observed: &Observed,
    input: &MetricInput,
) -> Result<Proposal, MetricFailure> {
    let name = metric_name(spec);
    let reason = match spec.kind.as_str() {
        "Resource" => "FailedGetResourceMetric",
        "ContainerResource" => "FailedGetContainerResourceMetric",
        "Pods" => "FailedGetPodsMetric",
        "Object" => "FailedGetObjectMetric",
        "External" => "FailedGetExternalMetric",
        other => {
            return Err(fail(
                "InvalidMetricSourceType",
                &name,
                format!("unknown metric source type \"{other}\""),
            ))
        }
    };
    let err = |m: String| {
        let mut f = fail(reason, &name, m);
        f.error = returned_error(spec, &f.message);
        f
    };
    if let Observed::Error(e) = observed {
        return Err(err(fetch_error_message(spec, e)));
    }
    match spec.kind.as_str() {
        "Resource" | "ContainerResource" | "Pods" => {
            let (resource, container, target, is_pods): (
                String,
                Option<&str>,
                &MetricTarget,
                bool,
            ) = match (&spec.resource, &spec.container_resource, &spec.pods) {
                (Some(r), _, _) if spec.kind == "Resource" => {
                    (r.name.clone(), None, &r.target, false)
                }
                (_, Some(r), _) if spec.kind == "ContainerResource" => {
                    (r.name.clone(), Some(r.container.as_str()), &r.target, false)
                }
                (_, _, Some(p)) if spec.kind == "Pods" => (String::new(), None, &p.target, true),
                _ => {
                    return Err(err(format!(
                        "invalid metric source: {} source is missing",
                        spec.kind
                    )))
                }
            };
            let Observed::Pods(samples) = observed else {
                return Err(err(format!(
                    "unable to get metric {name}: no metrics returned"
                )));
            };
            if samples.is_empty() {
                return Err(err(if is_pods {
                    format!(
                        "unable to get metric {name}: no metrics returned from custom metrics API"
                    )
                } else {
                    format!("unable to get metrics for resource {resource}: no metrics returned from resource metrics API")
                }));
            }
            if let Some(avg) = target_milli(&target.average_value) {
                let c = pods_replicas(input, samples, &resource, Kind::Plain { target: avg })
                    .map_err(|m| {
                        err(if is_pods {
                            m
                        } else {
                            format!("failed to get {resource} usage: {m}")
                        })
                    })?;
                return Ok(Proposal {
                    replicas: c.replicas,
                    metric_name: name.clone(),
                    ratio: c.ratio,
                    utilization: None,
                    current_milli: c.average,
                    is_average: true,
                    target: avg,
                    pods: Some(c.counts),
                    pod_classes: c.classes,
                });
            }
            if is_pods {
                return Err(err(
                    "invalid pods metric source: averageValue target is not set".into(),
                ));
            }
            let Some(util) = target.average_utilization else {
                return Err(err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into()));
            };
            let requests = pod_requests(input.pods, &resource, container)
                .map_err(|m| err(format!("failed to get {resource} utilization: {m}")))?;
            let c = pods_replicas(
                input,
                samples,
                &resource,
                Kind::Utilization {
                    requests: &requests,
                    target: util,
                },
            )
            .map_err(|m| err(format!("failed to get {resource} utilization: {m}")))?;
            Ok(Proposal {
                replicas: c.replicas,
                metric_name: name.clone(),
                ratio: c.ratio,
                utilization: c.utilization,
                current_milli: c.average,
                is_average: true,
                target: i64::from(util),
                pods: Some(c.counts),
                pod_classes: c.classes,
            })
        }
        "Object" => {
            let Some(o) = &spec.object else {
                return Err(err("invalid metric source: Object source is missing".into()));
            };
            let Observed::Object(value) = observed else {
                return Err(err(format!(
                    "unable to get metric {}: no value returned",
                    o.metric.name
                )));
            };
            let value = *value;
            match (o.target.kind.as_str(), target_milli(&o.target.value), target_milli(&o.target.average_value)) {
                ("Value", Some(t), _) => {
                    let ratio = value as f64 / t as f64;
                    let replicas = usage_ratio_replica_count(input, ratio)
                        .map_err(err)?;
                    Ok(Proposal { replicas, metric_name: name.clone(), ratio, utilization: None, current_milli: value, is_average: false, target: t, pods: None, pod_classes: None })
                }
                ("AverageValue", _, Some(t)) => {
                    let (replicas, ratio, avg) = per_pod_replicas(input, value, t);
                    Ok(Proposal { replicas, metric_name: name.clone(), ratio, utilization: None, current_milli: avg, is_average: true, target: t, pods: None, pod_classes: None })
                }
                _ => Err(err("invalid object metric source: neither a value target nor an average value target was set".into())),
            }
        }
        _ => {
            let Some(e) = &spec.external else {
                return Err(err(
                    "invalid metric source: External source is missing".into()
                ));
            };
            let Observed::External(values) = observed else {
                return Err(err(format!(
                    "unable to get external metric {}: no metrics returned",
                    e.metric.name
                )));
            };
            if values.is_empty() {
                return Err(err(format!(
                    "unable to get external metric {}/{}: no metrics returned from external metrics API",
                    e.metric.name,
                    selector_text(&e.metric)
                )));
            }
            let usage = values.iter().fold(0i64, |a, v| a.saturating_add(*v));
            if let Some(t) = target_milli(&e.target.average_value) {
                let (replicas, ratio, avg) = per_pod_replicas(input, usage, t);
                return Ok(Proposal {
                    replicas,
                    metric_name: name.clone(),
                    ratio,
                    utilization: None,
                    current_milli: avg,
                    is_average: true,
                    target: t,
                    pods: None,
                    pod_classes: None,
                });
            }
            if let Some(t) = target_milli(&e.target.value) {
                let ratio = usage as f64 / t as f64;
                let replicas = usage_ratio_replica_count(input, ratio).map_err(err)?;
                return Ok(Proposal {
                    replicas,
                    metric_name: name.clone(),
                    ratio,
                    utilization: None,
                    current_milli: usage,
                    is_average: false,
                    target: t,
                    pods: None,
                    pod_classes: None,
                });
            }
            Err(err("invalid external metric source: neither a value target nor an average value target was set".into()))
        }
    }
}
