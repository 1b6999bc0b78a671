//! The Kubernetes JSON types served: discovery documents, `MetricValueList` (v1beta1 and
//! v1beta2), `ExternalMetricValueList` and `Status`, with the field names and omission rules
//! of their Go definitions.

use std::borrow::Cow;
use std::collections::BTreeMap;

use promhpa_core::quantity::Quantity;
use promhpa_core::selector::{LabelSelector, Operator};
use serde::Serialize;

pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
pub const RESOURCE_GROUP: &str = "metrics.k8s.io";

#[derive(Debug, Clone, Serialize, Default)]
pub struct ListMeta {}

#[derive(Debug, Clone, Serialize)]
pub struct GroupVersionForDiscovery {
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroup {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub name: String,
    pub versions: Vec<GroupVersionForDiscovery>,
    #[serde(rename = "preferredVersion")]
    pub preferred_version: GroupVersionForDiscovery,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroupList {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub groups: Vec<ApiGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResource {
    pub name: String,
    #[serde(rename = "singularName")]
    pub singular_name: String,
    pub namespaced: bool,
    pub kind: &'static str,
    pub verbs: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResourceList {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    pub resources: Vec<ApiResource>,
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetaLabelSelector {
    #[serde(rename = "matchLabels", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(rename = "matchExpressions", skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl MetaLabelSelector {
    /// The `metav1.LabelSelector` form of a parsed selector; `None` for the empty selector.
    /// `>`/`<` requirements have no `metav1` form and are left out.
    pub fn from_selector(sel: &LabelSelector) -> Option<MetaLabelSelector> {
        if sel.is_empty() {
            return None;
        }
        let mut out = MetaLabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: Vec::new(),
        };
        for r in sel.requirements() {
            let op = match r.operator {
                Operator::Equals | Operator::DoubleEquals => {
                    if let Some(v) = r.values.first() {
                        out.match_labels.insert(r.key.clone(), v.clone());
                    }
                    continue;
                }
                Operator::NotEquals => "NotIn",
                Operator::In => "In",
                Operator::NotIn => "NotIn",
                Operator::Exists => "Exists",
                Operator::DoesNotExist => "DoesNotExist",
                Operator::GreaterThan | Operator::LessThan => continue,
            };
            out.match_expressions.push(LabelSelectorRequirement {
                key: r.key.clone(),
                operator: op,
                values: r.values.clone(),
            });
        }
        Some(out)
    }
}

/// `corev1.ObjectReference` as used in `describedObject`, borrowing what every item of an
/// answer shares.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectReference<'a> {
    pub kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    pub name: &'a str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'a str,
}

/// `custom.metrics.k8s.io/v1beta1` `MetricValue`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricValueV1Beta1<'a> {
    #[serde(rename = "describedObject")]
    pub described_object: ObjectReference<'a>,
    #[serde(rename = "metricName")]
    pub metric_name: &'a str,
    pub timestamp: Cow<'a, str>,
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    pub value: Quantity,
    pub selector: Option<&'a MetaLabelSelector>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricIdentifier<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<&'a MetaLabelSelector>,
}

/// `custom.metrics.k8s.io/v1beta2` `MetricValue`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricValueV1Beta2<'a> {
    #[serde(rename = "describedObject")]
    pub described_object: ObjectReference<'a>,
    pub metric: MetricIdentifier<'a>,
    pub timestamp: Cow<'a, str>,
    #[serde(rename = "windowSeconds", skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<i64>,
    pub value: Quantity,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricValueList<T> {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: ListMeta,
    pub items: Vec<T>,
}

impl<T> MetricValueList<T> {
    /// A list of `kind` in `api_version` holding `items`.
    pub fn new(kind: &'static str, api_version: String, items: Vec<T>) -> Self {
        MetricValueList {
            kind,
            api_version,
            metadata: ListMeta {},
            items,
        }
    }
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValue`.
#[derive(Debug, Clone, Serialize)]
pub struct ExternalMetricValue {
    #[serde(rename = "metricName")]
    pub metric_name: String,
    #[serde(rename = "metricLabels")]
    pub metric_labels: BTreeMap<String, String>,
    pub timestamp: String,
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    pub value: Quantity,
}

/// `metav1.Status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: &'static str,
    pub message: String,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// Milliseconds since the epoch as `metav1.Time`'s JSON form.
pub use promhpa_core::time::format_rfc3339 as rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn selectors_in_metav1_form() {
        let sel: LabelSelector = "a=1,b in (x,y),!c,d!=2".parse().unwrap_or_default();
        let m = MetaLabelSelector::from_selector(&sel).unwrap_or_else(|| panic!("empty"));
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"matchLabels":{"a":"1"},"matchExpressions":[{"key":"b","operator":"In","values":["x","y"]},{"key":"c","operator":"DoesNotExist"},{"key":"d","operator":"NotIn","values":["2"]}]}"#
        );
        assert!(MetaLabelSelector::from_selector(&LabelSelector::everything()).is_none());
    }
}
