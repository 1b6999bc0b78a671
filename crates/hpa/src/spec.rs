//! The autoscaling/v2 `HorizontalPodAutoscaler` spec as users write it (camelCase YAML/JSON).

use std::collections::BTreeMap;

use promhpa_core::quantity::Quantity;
use promhpa_core::yaml;
use serde::{Deserialize, Serialize};

/// A full `HorizontalPodAutoscaler` object (`apiVersion`, `kind`, `metadata`, `spec`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscaler {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: HpaSpec,
    /// The status the controller last wrote, when the object came from a cluster; only its
    /// conditions are read (`ScaledToZero` decides whether a target at zero is autoscaled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HpaStatus>,
}

/// The parts of `status` the algorithm reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HpaStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatusCondition>,
}

/// One `status.conditions` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

impl HorizontalPodAutoscaler {
    /// Whether the HPA carries `ScaledToZero: True`: the controller scaled its target to zero
    /// and keeps autoscaling it there.
    pub fn scaled_to_zero(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.kind == "ScaledToZero" && c.status == "True")
        })
    }
}

/// The parts of `metadata` the HPA algorithm and its explanations use.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `spec` of an autoscaling/v2 HorizontalPodAutoscaler.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HpaSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<ScaleTargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Behavior>,
}

impl HpaSpec {
    /// `minReplicas`, defaulted to 1 as the API server does.
    pub fn min_replicas(&self) -> i32 {
        self.min_replicas.unwrap_or(1)
    }

    /// The metrics, defaulted as the API server does: an empty list means cpu at 80 %.
    pub fn effective_metrics(&self) -> Vec<MetricSpec> {
        if self.metrics.is_empty() {
            vec![MetricSpec {
                kind: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        kind: "Utilization".into(),
                        average_utilization: Some(80),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]
        } else {
            self.metrics.clone()
        }
    }
}

/// `scaleTargetRef`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// One entry of `spec.metrics`. `type` is kept as written so that an unknown source type is
/// reported the way the controller reports it (InvalidMetricSourceType) instead of failing
/// to parse.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricSource {
    pub name: String,
    pub container: String,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSource {
    #[serde(default)]
    pub described_object: ScaleTargetRef,
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// `metric: {name, selector}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricIdentifier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<MetaLabelSelector>,
}

/// A `metav1.LabelSelector` (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetaLabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl std::fmt::Display for MetaLabelSelector {
    /// The query-string form (`queue=worker_tasks,env in (a,b)`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator.as_str() {
                "In" => format!("{} in ({})", e.key, e.values.join(",")),
                "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
                "Exists" => e.key.clone(),
                "DoesNotExist" => format!("!{}", e.key),
                other => format!("{} {other} ({})", e.key, e.values.join(",")),
            });
        }
        f.write_str(&parts.join(","))
    }
}

/// `target: {type, value, averageValue, averageUtilization}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// `spec.behavior`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// `behavior.scaleUp` / `behavior.scaleDown` as written (fields may be absent).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<ScalingPolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Quantity>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// One `policies` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub kind: PolicyType,
    pub value: i32,
    pub period_seconds: i32,
}

/// Scaling rules with every default filled in (`pkg/apis/autoscaling/v2/defaults.go`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRules {
    pub stabilization_window_seconds: i32,
    pub select_policy: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

impl Behavior {
    /// `scaleUp` defaulted: window 0, Max, `[Pods 4/15s, Percent 100/15s]`.
    pub fn effective_scale_up(&self) -> EffectiveRules {
        let r = self.scale_up.clone().unwrap_or_default();
        EffectiveRules {
            stabilization_window_seconds: r.stabilization_window_seconds.unwrap_or(0),
            select_policy: r.select_policy.unwrap_or(SelectPolicy::Max),
            policies: r.policies.unwrap_or_else(|| {
                vec![
                    ScalingPolicy {
                        kind: PolicyType::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                    ScalingPolicy {
                        kind: PolicyType::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                ]
            }),
        }
    }

    /// `scaleDown` defaulted: window from the controller flag, Max, `[Percent 100/15s]`.
    pub fn effective_scale_down(&self, downscale_window_seconds: i32) -> EffectiveRules {
        let r = self.scale_down.clone().unwrap_or_default();
        EffectiveRules {
            stabilization_window_seconds: r
                .stabilization_window_seconds
                .unwrap_or(downscale_window_seconds),
            select_policy: r.select_policy.unwrap_or(SelectPolicy::Max),
            policies: r.policies.unwrap_or_else(|| {
                vec![ScalingPolicy {
                    kind: PolicyType::Percent,
                    value: 100,
                    period_seconds: 15,
                }]
            }),
        }
    }
}

/// A field the API server refuses, and why, in its words (`spec.maxReplicas`,
/// `Invalid value: 0: must be greater than 0`).
type Refusal = (String, String);

fn invalid(field: String, value: impl std::fmt::Display, detail: &str) -> Refusal {
    (field, format!("Invalid value: {value}: {detail}"))
}

fn required(field: String, detail: &str) -> Refusal {
    let cause = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    (field, cause)
}

fn forbidden(field: String, detail: &str) -> Refusal {
    (field, format!("Forbidden: {detail}"))
}

/// `IsValidPathSegmentName`: what a kind, an object name or a metric name may not be.
fn path_segment(field: String, value: &str, out: &mut Vec<Refusal>) {
    let quoted = format!("{value:?}");
    if value == "." || value == ".." {
        out.push(invalid(field, &quoted, &format!("may not be '{value}'")));
        return;
    }
    for c in ['/', '%'] {
        if value.contains(c) {
            out.push(invalid(
                field.clone(),
                &quoted,
                &format!("may not contain '{c}'"),
            ));
        }
    }
}

/// `ValidateCrossVersionObjectReference`.
fn object_reference(r: &ScaleTargetRef, at: &str, out: &mut Vec<Refusal>) {
    for (name, value) in [("kind", &r.kind), ("name", &r.name)] {
        if value.is_empty() {
            out.push(required(format!("{at}.{name}"), ""));
        } else {
            path_segment(format!("{at}.{name}"), value, out);
        }
    }
}

fn metric_identifier(m: &MetricIdentifier, at: &str, out: &mut Vec<Refusal>) {
    if m.name.is_empty() {
        out.push(required(format!("{at}.name"), "must specify a metric name"));
    } else {
        path_segment(format!("{at}.name"), &m.name, out);
    }
}

/// `validateMetricTarget`.
fn metric_target(t: &MetricTarget, at: &str, out: &mut Vec<Refusal>) {
    match t.kind.as_str() {
        "Utilization" | "Value" | "AverageValue" => {}
        // The API server adds that "" is none of the three; once is enough.
        "" => out.push(required(
            format!("{at}.type"),
            "must specify a metric target type",
        )),
        other => out.push(invalid(
            format!("{at}.type"),
            format!("{other:?}"),
            "must be either Utilization, Value, or AverageValue",
        )),
    }
    let positive = |q: &Quantity| q.milli_value() > 0;
    if let Some(v) = t.value.as_ref().filter(|v| !positive(v)) {
        out.push(invalid(
            format!("{at}.value"),
            format!("\"{v}\""),
            "must be positive",
        ));
    }
    if let Some(v) = t.average_value.as_ref().filter(|v| !positive(v)) {
        out.push(invalid(
            format!("{at}.averageValue"),
            format!("\"{v}\""),
            "must be positive",
        ));
    }
    if let Some(u) = t.average_utilization.filter(|u| *u < 1) {
        out.push(invalid(
            format!("{at}.averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
}

/// `validateResourceSource` and `validateContainerResourceSource`: a raw value or a
/// utilization, not both.
fn resource_target(t: &MetricTarget, at: &str, out: &mut Vec<Refusal>) {
    metric_target(t, &format!("{at}.target"), out);
    match (&t.average_utilization, &t.average_value) {
        (None, None) => out.push(required(
            format!("{at}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        )),
        (Some(_), Some(_)) => out.push(forbidden(
            format!("{at}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        )),
        _ => {}
    }
}

/// `validateMetricSpec`, for a type the API server knows; an unknown `type` is left to the
/// controller's InvalidMetricSourceType, as promhpa reports it.
fn metric_spec(m: &MetricSpec, at: &str, out: &mut Vec<Refusal>) {
    if m.kind.is_empty() {
        out.push(required(
            format!("{at}.type"),
            "must specify a metric source type",
        ));
        return;
    }
    let mut present = Vec::new();
    if let Some(o) = &m.object {
        present.push("object");
        if present.len() == 1 {
            let at = format!("{at}.object");
            object_reference(&o.described_object, &format!("{at}.describedObject"), out);
            metric_identifier(&o.metric, &format!("{at}.metric"), out);
            metric_target(&o.target, &format!("{at}.target"), out);
            if o.target.value.is_none() && o.target.average_value.is_none() {
                out.push(required(
                    format!("{at}.target.averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
    }
    if let Some(e) = &m.external {
        present.push("external");
        if present.len() == 1 {
            let at = format!("{at}.external");
            metric_identifier(&e.metric, &format!("{at}.metric"), out);
            metric_target(&e.target, &format!("{at}.target"), out);
            match (&e.target.value, &e.target.average_value) {
                (None, None) => out.push(required(
                    format!("{at}.target.averageValue"),
                    "must set either a target value for metric or a per-pod target",
                )),
                (Some(_), Some(_)) => out.push(forbidden(
                    format!("{at}.target.value"),
                    "may not set both a target value for metric and a per-pod target",
                )),
                _ => {}
            }
        }
    }
    if let Some(p) = &m.pods {
        present.push("pods");
        if present.len() == 1 {
            let at = format!("{at}.pods");
            metric_identifier(&p.metric, &format!("{at}.metric"), out);
            metric_target(&p.target, &format!("{at}.target"), out);
            if p.target.average_value.is_none() {
                out.push(required(
                    format!("{at}.target.averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
    }
    if let Some(r) = &m.resource {
        present.push("resource");
        if present.len() == 1 {
            let at = format!("{at}.resource");
            if r.name.is_empty() {
                out.push(required(
                    format!("{at}.name"),
                    "must specify a resource name",
                ));
            }
            resource_target(&r.target, &at, out);
        }
    }
    if let Some(r) = &m.container_resource {
        present.push("containerResource");
        if present.len() == 1 {
            let at = format!("{at}.containerResource");
            if r.name.is_empty() {
                out.push(required(
                    format!("{at}.name"),
                    "must specify a resource name",
                ));
            }
            if r.container.is_empty() {
                out.push(required(
                    format!("{at}.container"),
                    "must specify a container",
                ));
            }
            resource_target(&r.target, &at, out);
        }
    }
    let expected = match m.kind.as_str() {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        _ => return,
    };
    if !present.contains(&expected) {
        out.push(required(
            format!("{at}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for other in present.into_iter().filter(|p| *p != expected) {
            out.push(forbidden(
                format!("{at}.{other}"),
                "must populate the given metric source only",
            ));
        }
    }
}

/// `validateScalingRules`.
fn scaling_rules(r: &ScalingRules, at: &str, out: &mut Vec<Refusal>) {
    if let Some(w) = r.stabilization_window_seconds {
        if w < 0 {
            out.push(invalid(
                format!("{at}.stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        }
        if w > 3600 {
            out.push(invalid(
                format!("{at}.stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    let Some(policies) = &r.policies else { return };
    if policies.is_empty() {
        out.push(required(
            format!("{at}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{at}.policies[{i}]");
        if p.value <= 0 {
            out.push(invalid(
                format!("{at}.value"),
                p.value,
                "must be greater than zero",
            ));
        }
        if p.period_seconds <= 0 {
            out.push(invalid(
                format!("{at}.periodSeconds"),
                p.period_seconds,
                "must be greater than zero",
            ));
        }
        if p.period_seconds > 1800 {
            out.push(invalid(
                format!("{at}.periodSeconds"),
                p.period_seconds,
                "must be less than or equal to 1800",
            ));
        }
    }
}

/// What the API server checks of an HPA's spec before it stores it
/// (`validateHorizontalPodAutoscalerSpec`, after defaulting), in its order and words.
/// `minReplicas: 0` is taken as with the HPAScaleToZero gate on: it needs an Object or
/// External metric. `scale_target_ref` says whether the spec must name its target (a whole
/// object must; a bare spec need not).
fn refusals(spec: &HpaSpec, prefix: &str, scale_target_ref: bool) -> Vec<Refusal> {
    let mut out = Vec::new();
    if let Some(min) = spec.min_replicas.filter(|m| *m < 0) {
        out.push(invalid(
            format!("{prefix}minReplicas"),
            min,
            "must be greater than or equal to 0",
        ));
    }
    if spec.max_replicas < 1 {
        out.push(invalid(
            format!("{prefix}maxReplicas"),
            spec.max_replicas,
            "must be greater than 0",
        ));
    }
    if spec.min_replicas.is_some_and(|m| spec.max_replicas < m) {
        out.push(invalid(
            format!("{prefix}maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    match &spec.scale_target_ref {
        Some(r) => object_reference(r, &format!("{prefix}scaleTargetRef"), &mut out),
        None if scale_target_ref => object_reference(
            &ScaleTargetRef::default(),
            &format!("{prefix}scaleTargetRef"),
            &mut out,
        ),
        None => {}
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        metric_spec(m, &format!("{prefix}metrics[{i}]"), &mut out);
    }
    let object_or_external = spec
        .metrics
        .iter()
        .any(|m| m.kind == "Object" || m.kind == "External");
    if spec.min_replicas == Some(0) && !object_or_external {
        out.push(forbidden(
            format!("{prefix}metrics"),
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    if let Some(b) = &spec.behavior {
        if let Some(r) = &b.scale_up {
            scaling_rules(r, &format!("{prefix}behavior.scaleUp"), &mut out);
        }
        if let Some(r) = &b.scale_down {
            scaling_rules(r, &format!("{prefix}behavior.scaleDown"), &mut out);
        }
    }
    out
}

/// The first of [`refusals`] as an error; the others are counted in it.
fn check_spec(
    spec: &HpaSpec,
    prefix: &str,
    scale_target_ref: bool,
    context: &str,
) -> Result<(), crate::Error> {
    let mut all = refusals(spec, prefix, scale_target_ref).into_iter();
    let Some((field, mut cause)) = all.next() else {
        return Ok(());
    };
    let more = all.count();
    if more > 0 {
        let s = if more == 1 { "" } else { "s" };
        cause.push_str(&format!(" (and {more} more error{s})"));
    }
    Err(crate::Error::Object {
        kind: "HorizontalPodAutoscaler",
        context: context.to_string(),
        field,
        cause,
    })
}

/// Read an HPA from YAML or JSON: the one `HorizontalPodAutoscaler` object of a (possibly
/// multi-document) manifest, or a bare `spec`. `autoscaling/v2` and `v2beta2` are read as
/// they are; `autoscaling/v1` is converted as the API server converts it
/// (`targetCPUUtilizationPercentage` becomes a cpu Utilization metric). Every document is
/// read, so that a second HPA or a broken document after the first is an error rather than
/// left out.
pub fn parse_manifest(text: &str) -> Result<HorizontalPodAutoscaler, crate::Error> {
    let context = |i: usize| format!("manifest document {}", i + 1);
    let mut found: Option<(usize, HorizontalPodAutoscaler)> = None;
    for (i, doc) in yaml::documents::<serde_json::Value>(text)
        .into_iter()
        .enumerate()
    {
        let mut value = doc.map_err(|e| crate::Error::Yaml {
            context: context(i),
            cause: e.to_string(),
        })?;
        let kind = value.get("kind").and_then(serde_json::Value::as_str);
        let hpa = kind == Some("HorizontalPodAutoscaler")
            || (kind.is_none() && value.get("spec").is_some());
        let bare_spec = kind.is_none() && value.get("maxReplicas").is_some();
        if !(hpa || bare_spec) {
            continue;
        }
        yaml::drop_null_fields(&mut value);
        let parsed = if hpa {
            let api_version = value
                .get("apiVersion")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string();
            match api_version.as_str() {
                "" | "autoscaling/v2" | "autoscaling/v2beta2" => {}
                "autoscaling/v1" => value = from_v1(value, &context(i))?,
                "autoscaling/v2beta1" => {
                    return Err(crate::Error::Input(format!(
                        "{}: autoscaling/v2beta1 is no longer served (Kubernetes 1.25 removed it) and is not read here: write the HPA as autoscaling/v2 (`kubectl get hpa NAME -o yaml` prints it so)",
                        context(i)
                    )))
                }
                other => {
                    return Err(crate::Error::Input(format!(
                        "{}: apiVersion {other:?} is not a version of HorizontalPodAutoscaler (autoscaling/v2, autoscaling/v2beta2 and autoscaling/v1 are read)",
                        context(i)
                    )))
                }
            }
            let hpa: HorizontalPodAutoscaler = strict(value, &context(i), true)?;
            check_spec(&hpa.spec, "spec.", true, &context(i))?;
            hpa
        } else {
            let spec: HpaSpec = strict(value, &context(i), false)?;
            check_spec(&spec, "", false, &context(i))?;
            HorizontalPodAutoscaler {
                api_version: "autoscaling/v2".into(),
                kind: "HorizontalPodAutoscaler".into(),
                metadata: ObjectMeta::default(),
                spec,
                status: None,
            }
        };
        if let Some((first, _)) = &found {
            return Err(crate::Error::Input(format!(
                "{} and {} both hold a HorizontalPodAutoscaler: give one HPA per file",
                context(*first),
                context(i)
            )));
        }
        found = Some((i, parsed));
    }
    found.map(|(_, hpa)| hpa).ok_or_else(|| {
        crate::Error::Input("no HorizontalPodAutoscaler found in the manifest".into())
    })
}

/// `value` read as kubectl's strict field validation reads a manifest: a field the schema
/// does not have (`behaviour:`, a misplaced `target:`) is an error naming it rather than
/// left out. In a whole object, `metadata` and `status` may hold anything.
fn strict<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    context: &str,
    object: bool,
) -> Result<T, crate::Error> {
    let mut unknown: Vec<String> = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path.to_string()));
    let parsed: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note));
    let parsed = parsed.map_err(|e| crate::Error::Object {
        kind: "HorizontalPodAutoscaler",
        context: context.to_string(),
        field: e.path().to_string(),
        cause: e.into_inner().to_string(),
    })?;
    let unknown: Vec<String> = unknown
        .into_iter()
        .filter(|p| {
            !(object
                && (p == "metadata"
                    || p == "status"
                    || p.starts_with("metadata.")
                    || p.starts_with("status.")))
        })
        .collect();
    if let Some(first) = unknown.first() {
        let more = match unknown.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more: {})", unknown[1..].join(", ")),
        };
        return Err(crate::Error::Object {
            kind: "HorizontalPodAutoscaler",
            context: context.to_string(),
            field: first.clone(),
            cause: format!("unknown field \"{first}\"{more}"),
        });
    }
    Ok(parsed)
}

/// A path as serde_ignored prints it (`spec.metrics.0.resource.?.extra`, `?` for an
/// `Option`) the way Kubernetes names fields (`spec.metrics[0].resource.extra`).
fn field_path(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('.').filter(|s| *s != "?") {
        if !out.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// An `autoscaling/v1` HPA as the API server serves it in `autoscaling/v2`: its
/// `targetCPUUtilizationPercentage` is a cpu Utilization metric (none: the default, cpu at
/// 80 %). The annotations in which v1 objects keep metrics and behavior written through v2
/// are not converted: such an object is refused, naming them.
fn from_v1(mut value: serde_json::Value, context: &str) -> Result<serde_json::Value, crate::Error> {
    let refuse = |message: String| crate::Error::Input(format!("{context}: {message}"));
    const ALPHA: &str = "autoscaling.alpha.kubernetes.io/";
    let mut conditions = None;
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(serde_json::Value::as_object_mut)
    {
        // Metrics and behavior written through v2 are kept here; not converted, refused.
        for key in ["metrics", "behavior"].map(|k| format!("{ALPHA}{k}")) {
            if annotations.contains_key(&key) {
                return Err(refuse(format!(
                    "this autoscaling/v1 HPA keeps metrics or behavior in the annotation {key}, which is not read here: read the HPA as autoscaling/v2 (`kubectl get hpa.v2.autoscaling NAME -o yaml`)"
                )));
            }
        }
        // The controller's conditions, which v1 carries as an annotation: its status.
        conditions = annotations
            .remove(&format!("{ALPHA}conditions"))
            .and_then(|c| {
                c.as_str()
                    .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
            });
    }
    if let Some(conditions) = conditions.filter(serde_json::Value::is_array) {
        if let Some(object) = value.as_object_mut() {
            let status = object
                .entry("status")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(status) = status.as_object_mut() {
                status.entry("conditions").or_insert(conditions);
            }
        }
    }
    let Some(spec) = value
        .get_mut("spec")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Ok(value);
    };
    if spec.contains_key("metrics") {
        return Err(refuse(
            "spec.metrics is not a field of autoscaling/v1 (targetCPUUtilizationPercentage is): set apiVersion: autoscaling/v2".into(),
        ));
    }
    if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
        spec.insert(
            "metrics".into(),
            serde_json::json!([{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
            }]),
        );
    }
    if spec.contains_key("behavior") {
        return Err(refuse(
            "spec.behavior is not a field of autoscaling/v1: set apiVersion: autoscaling/v2".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse_manifest(text) {
            Ok(hpa) => panic!("accepted: {hpa:?}"),
            Err(e) => e.to_string(),
        }
    }

    const REF: &str = "scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}";

    #[test]
    fn autoscaling_v1_is_read_as_the_api_server_converts_it() {
        let v1 = format!("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web}}\nspec:\n  {REF}\n  maxReplicas: 10\n  targetCPUUtilizationPercentage: 50\n");
        let hpa = parse_manifest(&v1).unwrap_or_else(|e| panic!("{e}"));
        let metrics = hpa.spec.effective_metrics();
        assert_eq!(metrics.len(), 1);
        let target = &metrics[0].resource.as_ref().map(|r| (&r.name, &r.target));
        assert_eq!(
            target.map(|(n, t)| (n.as_str(), t.kind.as_str(), t.average_utilization)),
            Some(("cpu", "Utilization", Some(50)))
        );
        // Without a target: the default, cpu at 80 %.
        let bare = v1.replace("  targetCPUUtilizationPercentage: 50\n", "");
        let hpa = parse_manifest(&bare).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hpa.spec.effective_metrics()[0]
                .resource
                .as_ref()
                .and_then(|r| r.target.average_utilization),
            Some(80)
        );
        let e = err(&v1.replace(
            "metadata: {name: web}",
            "metadata: {name: web, annotations: {autoscaling.alpha.kubernetes.io/metrics: '[]'}}",
        ));
        assert!(e.contains("autoscaling.alpha.kubernetes.io/metrics"), "{e}");
        // As `kubectl get hpa.v1.autoscaling -o yaml` prints it: the controller's conditions
        // and current metrics in annotations, read as its status.
        let served = v1.replace(
            "metadata: {name: web}",
            "metadata:\n  name: web\n  annotations:\n    autoscaling.alpha.kubernetes.io/current-metrics: '[]'\n    autoscaling.alpha.kubernetes.io/conditions: '[{\"type\":\"ScaledToZero\",\"status\":\"True\",\"lastTransitionTime\":\"2026-12-06T10:00:00Z\"}]'",
        );
        let hpa = parse_manifest(&served).unwrap_or_else(|e| panic!("{e}"));
        assert!(hpa.scaled_to_zero());
        let e = err(&v1.replace(
            "  targetCPUUtilizationPercentage: 50\n",
            "  targetCPUUtilizationPercentage: 50\n  metrics: []\n",
        ));
        assert!(
            e.contains("spec.metrics is not a field of autoscaling/v1"),
            "{e}"
        );
    }

    #[test]
    fn other_versions_unknown_fields_and_second_hpas_are_refused() {
        let v2 = format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web, uid: x, labels: {{a: b}}}}\nspec:\n  {REF}\n  maxReplicas: 10\nstatus: {{currentReplicas: 3}}\n");
        assert!(parse_manifest(&v2).is_ok());
        let e = err(&v2.replace("autoscaling/v2", "autoscaling/v2beta1"));
        assert!(e.contains("v2beta1 is no longer served"), "{e}");
        let e = err(&v2.replace("autoscaling/v2", "foo/v9"));
        assert!(e.contains("\"foo/v9\" is not a version"), "{e}");
        let e = err(&v2.replace("maxReplicas: 10", "maxReplicas: 10\n  behaviour: {}"));
        assert!(e.contains("unknown field \"spec.behaviour\""), "{e}");
        let e = err(&v2.replace(
            "maxReplicas: 10",
            "maxReplicas: 10\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}, extra: 1}",
        ));
        assert!(e.contains("spec.metrics[0].resource.extra"), "{e}");
        let e = err(&format!(
            "{v2}---\n{}",
            v2.replace("name: web,", "name: api,")
        ));
        assert!(
            e.contains("document 1 and manifest document 2 both hold"),
            "{e}"
        );
        // A broken document after the HPA is not skipped.
        let e = err(&format!("{v2}---\nfoo: [unclosed\n"));
        assert!(e.contains("document 2"), "{e}");
    }
}
