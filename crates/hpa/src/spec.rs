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

/// What the API server checks of each metric's target before it stores an HPA: a `type`,
/// and one it knows.
fn check_targets(spec: &HpaSpec, prefix: &str, context: &str) -> Result<(), crate::Error> {
    for (i, m) in spec.metrics.iter().enumerate() {
        let (source, target) = match () {
            _ if m.resource.is_some() => ("resource", m.resource.as_ref().map(|s| &s.target)),
            _ if m.container_resource.is_some() => (
                "containerResource",
                m.container_resource.as_ref().map(|s| &s.target),
            ),
            _ if m.pods.is_some() => ("pods", m.pods.as_ref().map(|s| &s.target)),
            _ if m.object.is_some() => ("object", m.object.as_ref().map(|s| &s.target)),
            _ if m.external.is_some() => ("external", m.external.as_ref().map(|s| &s.target)),
            _ => continue,
        };
        let Some(target) = target else { continue };
        let cause = match target.kind.as_str() {
            "Utilization" | "Value" | "AverageValue" => continue,
            "" => "Required value: must specify a metric target type".to_string(),
            other => format!(
                "Unsupported value: \"{other}\": supported values: \"AverageValue\", \"Utilization\", \"Value\""
            ),
        };
        return Err(crate::Error::Object {
            kind: "HorizontalPodAutoscaler",
            context: context.to_string(),
            field: format!("{prefix}metrics[{i}].{source}.target.type"),
            cause,
        });
    }
    Ok(())
}

/// Read an HPA from YAML or JSON: the first `HorizontalPodAutoscaler` object of a
/// (possibly multi-document) manifest, or a bare `spec`.
pub fn parse_manifest(text: &str) -> Result<HorizontalPodAutoscaler, crate::Error> {
    let context = |i: usize| format!("manifest document {}", i + 1);
    let object_err =
        |i: usize, e: serde_path_to_error::Error<serde_json::Error>| crate::Error::Object {
            kind: "HorizontalPodAutoscaler",
            context: context(i),
            field: e.path().to_string(),
            cause: e.into_inner().to_string(),
        };
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
        if hpa {
            let hpa: HorizontalPodAutoscaler =
                serde_path_to_error::deserialize(value).map_err(|e| object_err(i, e))?;
            check_targets(&hpa.spec, "spec.", &context(i))?;
            return Ok(hpa);
        }
        let spec: HpaSpec =
            serde_path_to_error::deserialize(value).map_err(|e| object_err(i, e))?;
        check_targets(&spec, "", &context(i))?;
        return Ok(HorizontalPodAutoscaler {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            metadata: ObjectMeta::default(),
            spec,
            status: None,
        });
    }
    Err(crate::Error::Input(
        "no HorizontalPodAutoscaler found in the manifest".into(),
    ))
}
