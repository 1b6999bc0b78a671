//! An HPA's scale target as the controller sees it: the pod selector and replica count of
//! its `scale` subresource, and the pods that selector matches with their phase, readiness
//! and container requests; the rules the controller applies to them before it scales
//! (`InvalidSelector`, `AmbiguousSelector`). Built from an object file here, or from what
//! a cluster answers (`promhpa_kube::hpa`).

use std::collections::BTreeMap;

use promhpa_core::selector::LabelSelector;
use promhpa_core::yaml;
use serde_json::Value;

use crate::calc::{Pod, PodPhase};
use crate::objects::{has_status, pod_from_object, scale_from_workload, ScaleInfo};
use crate::spec::{HorizontalPodAutoscaler, ScaleTargetRef};

/// What keeps a scale target from being read out of objects.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A document of an object file that is not YAML or JSON.
    #[error("{source_name}: document {index}")]
    Document {
        source_name: String,
        index: usize,
        #[source]
        error: Box<yaml::Error>,
    },
    /// A scale target selector that does not parse.
    #[error("scale target selector {selector:?}: {message}")]
    Selector { selector: String, message: String },
    /// An object (a pod, the workload, a `Scale`) the controller could not read.
    #[error("{0}")]
    Object(String),
}

/// Which pods a Pods metric is averaged over.
#[derive(Debug, Clone, PartialEq)]
pub enum PodScope {
    /// The scale target's selector (query-string form).
    Selector(String),
    /// No scale target in the object file: pods whose name starts with this prefix (the
    /// names a Deployment's ReplicaSet gives its pods).
    NamePrefix(String),
}

/// The scale target and its pods.
#[derive(Debug, Clone)]
pub struct ScaleTarget {
    pub namespace: String,
    pub reference: ScaleTargetRef,
    pub scope: PodScope,
    /// The scale subresource (or, in a file, the workload object); `None` when the file
    /// does not hold the target.
    pub scale: Option<ScaleInfo>,
    pub pods: Vec<Pod>,
    /// How many of `pods` had no `status` (hand-written) and were taken as Running and Ready.
    pub pods_without_status: usize,
    /// The labels of each of `pods`.
    pub pod_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// What the controller would say of the selector (condition reason and message), when
    /// it cannot scale on it: none, unparsable, or pods also selected by another HPA.
    pub selector_error: Option<(String, String)>,
    /// Where it was read: the file name or the cluster.
    pub source: String,
}

/// The HPA's namespace (`default` when the manifest has none).
pub fn hpa_namespace(hpa: &HorizontalPodAutoscaler) -> String {
    hpa.metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Every object of a YAML/JSON text (several documents, `List`s flattened), as JSON.
fn documents(text: &str, source: &str) -> Result<Vec<Value>, TargetError> {
    let mut out = Vec::new();
    for (i, doc) in yaml::documents::<Value>(text).into_iter().enumerate() {
        let v = doc.map_err(|error| TargetError::Document {
            source_name: source.to_string(),
            index: i + 1,
            error: Box::new(error),
        })?;
        flatten(v, &mut out);
    }
    Ok(out)
}

fn flatten(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.into_iter().for_each(|i| flatten(i, out)),
        Value::Object(mut m) if m.get("items").is_some_and(Value::is_array) => {
            if let Some(Value::Array(items)) = m.remove("items") {
                items.into_iter().for_each(|i| flatten(i, out));
            }
        }
        other => out.push(other),
    }
}

/// `metadata.<field>` of an object, when it is a string.
pub fn meta<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

/// `metadata.labels` of an object (string values only).
pub fn labels(v: &Value) -> BTreeMap<String, String> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A scale target's selector (query-string form), parsed.
pub fn parse_selector(s: &str) -> Result<LabelSelector, TargetError> {
    s.parse().map_err(|e| TargetError::Selector {
        selector: s.to_string(),
        message: format!("{e}"),
    })
}

/// The pods, how many had no status, and their labels.
type ConvertedPods = (Vec<Pod>, usize, BTreeMap<String, BTreeMap<String, String>>);

fn convert_pods(objects: &[&Value]) -> Result<ConvertedPods, TargetError> {
    let mut pods = Vec::new();
    let mut without_status = 0;
    let mut all_labels = BTreeMap::new();
    for o in objects {
        if !has_status(o) {
            without_status += 1;
        }
        let pod = pod_from_object(o).map_err(TargetError::Object)?;
        all_labels.insert(pod.name.clone(), labels(o));
        pods.push(pod);
    }
    Ok((pods, without_status, all_labels))
}

/// The controller's last report in an HPA's `status`, in one line.
pub fn status_line(hpa: &Value, now_ms: i64) -> String {
    let status = hpa.get("status").cloned().unwrap_or(Value::Null);
    let num = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_i64)
            .map_or_else(|| "?".to_string(), |n| n.to_string())
    };
    let mut s = format!(
        "in the cluster the controller last reported {} current / {} desired replicas",
        num("currentReplicas"),
        num("desiredReplicas")
    );
    match status.get("lastScaleTime").and_then(Value::as_str) {
        Some(t) => {
            s.push_str(&format!(", last scaled at {t}"));
            if let Some(ms) = promhpa_core::time::parse_rfc3339_ms(t) {
                let ago = (now_ms - ms).max(0) / 1000;
                s.push_str(&format!(" ({}m{}s ago)", ago / 60, ago % 60));
            }
        }
        None => s.push_str(", never scaled"),
    }
    for c in status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        s.push_str(&format!(
            "; {}={} {}: {}",
            field("type"),
            field("status"),
            field("reason"),
            field("message")
        ));
    }
    s
}

impl ScaleTarget {
    /// The target `hpa` scales, looked up in the objects of `text`.
    pub fn from_objects(
        text: &str,
        source: &str,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<ScaleTarget, TargetError> {
        let namespace = hpa_namespace(hpa);
        let reference = hpa.spec.scale_target_ref.clone().unwrap_or_default();
        let docs = documents(text, source)?;
        let in_ns = |v: &&Value| meta(v, "namespace").unwrap_or("default") == namespace;
        let workload = docs.iter().filter(in_ns).find(|v| {
            v.get("kind").and_then(Value::as_str) == Some(reference.kind.as_str())
                && meta(v, "name") == Some(reference.name.as_str())
        });
        let scale = workload
            .map(|w| {
                scale_from_workload(w).map_err(|e| {
                    TargetError::Object(format!(
                        "{source}: {} {}: {e}",
                        reference.kind, reference.name
                    ))
                })
            })
            .transpose()?;
        let scope = match scale.as_ref().and_then(|s| s.selector.clone()) {
            Some(sel) => PodScope::Selector(sel),
            None => PodScope::NamePrefix(format!("{}-", reference.name)),
        };
        let all_pods = docs
            .iter()
            .filter(in_ns)
            .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Pod"));
        let matched: Vec<&Value> = match &scope {
            PodScope::Selector(s) => {
                let sel = parse_selector(s)?;
                all_pods.filter(|p| sel.matches(&labels(p))).collect()
            }
            PodScope::NamePrefix(prefix) => all_pods
                .filter(|p| meta(p, "name").is_some_and(|n| n.starts_with(prefix.as_str())))
                .collect(),
        };
        let (pods, pods_without_status, pod_labels) = convert_pods(&matched)?;
        Ok(ScaleTarget {
            namespace,
            reference,
            scope,
            scale,
            pods,
            pods_without_status,
            pod_labels,
            selector_error: None,
            source: source.to_string(),
        })
    }

    /// The target `hpa` scales as a cluster presents it: its `scale` subresource, and the
    /// pod objects its selector `selector` matches.
    pub fn from_scale(
        hpa: &HorizontalPodAutoscaler,
        scale: ScaleInfo,
        selector: String,
        pods: &[Value],
        source: &str,
    ) -> Result<ScaleTarget, TargetError> {
        let refs: Vec<&Value> = pods.iter().collect();
        let (pods, pods_without_status, pod_labels) = convert_pods(&refs)?;
        Ok(ScaleTarget {
            namespace: hpa_namespace(hpa),
            reference: hpa.spec.scale_target_ref.clone().unwrap_or_default(),
            scope: PodScope::Selector(selector),
            scale: Some(scale),
            pods,
            pods_without_status,
            pod_labels,
            selector_error: None,
            source: source.to_string(),
        })
    }

    /// The `InvalidSelector` rule: a scale target whose `scale` gives no selector, or one
    /// that does not parse, has no pods the controller can scale on. `None` when the
    /// selector is valid; the selector then is `scale.selector`.
    pub fn invalid_selector(
        hpa: &HorizontalPodAutoscaler,
        scale: &ScaleInfo,
        source: &str,
    ) -> Option<ScaleTarget> {
        let message = match &scale.selector {
            None => "selector is required".to_string(),
            Some(selector) => match parse_selector(selector) {
                Ok(_) => return None,
                Err(e) => format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                ),
            },
        };
        Some(ScaleTarget {
            namespace: hpa_namespace(hpa),
            reference: hpa.spec.scale_target_ref.clone().unwrap_or_default(),
            scope: PodScope::Selector(String::new()),
            scale: Some(scale.clone()),
            pods: Vec::new(),
            pods_without_status: 0,
            pod_labels: BTreeMap::new(),
            selector_error: Some(("InvalidSelector".to_string(), message)),
            source: source.to_string(),
        })
    }

    /// The `AmbiguousSelector` rule, as the controller checks it before scaling: some of
    /// these pods are also selected by another HPA of the namespace. `others` are the other
    /// HPAs' names with their scale targets' selectors (the HPA `hpa_name` itself among them
    /// is ignored).
    pub fn ambiguous_selector<'a>(
        &self,
        hpa_name: &str,
        others: impl IntoIterator<Item = (&'a str, &'a LabelSelector)>,
    ) -> Option<(String, String)> {
        let ns = &self.namespace;
        let mut controlling = vec![format!("{ns}/{hpa_name}")];
        for (name, sel) in others {
            if name == hpa_name {
                continue;
            }
            if self.pod_labels.values().any(|l| sel.matches(l)) {
                controlling.push(format!("{ns}/{name}"));
            }
        }
        if controlling.len() < 2 {
            return None;
        }
        controlling.sort();
        let selector = match &self.scope {
            PodScope::Selector(s) => s.clone(),
            PodScope::NamePrefix(_) => String::new(),
        };
        Some((
            "AmbiguousSelector".to_string(),
            format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                controlling.join(" ")
            ),
        ))
    }

    pub fn pod_names(&self) -> Vec<String> {
        self.pods.iter().map(|p| p.name.clone()).collect()
    }

    /// The current replica count as the controller takes it (`spec.replicas` of the
    /// scale), else the pods that are neither failed nor being deleted; with where it came
    /// from.
    pub fn current_replicas(&self) -> Option<(i32, &'static str)> {
        if let Some(r) = self.scale.as_ref().and_then(|s| s.spec_replicas) {
            return Some((r, "spec.replicas of the scale target"));
        }
        let live = self
            .pods
            .iter()
            .filter(|p| !p.deleting && p.phase != PodPhase::Failed)
            .count();
        (live > 0).then(|| {
            (
                i32::try_from(live).unwrap_or(i32::MAX),
                "the scale target's pods, as it gives no spec.replicas",
            )
        })
    }

    /// One line on stderr-worthy facts: what was found and what was assumed.
    pub fn describe(&self) -> String {
        if let Some((reason, message)) = &self.selector_error {
            return format!(
                "scale target {} {}/{} from {}: {reason}: {message}",
                self.reference.kind, self.namespace, self.reference.name, self.source
            );
        }
        let scope = match &self.scope {
            PodScope::Selector(s) => format!("pods matching {s}"),
            PodScope::NamePrefix(p) if self.scale.is_some() => format!(
                "{} {} has no selector in {}; using pods named {p}*",
                self.reference.kind, self.reference.name, self.source
            ),
            PodScope::NamePrefix(p) => format!(
                "no {} {} in {}; using pods named {p}*",
                self.reference.kind, self.reference.name, self.source
            ),
        };
        let mut s = format!(
            "scale target {} {}/{} from {}: {scope}, {} found",
            self.reference.kind,
            self.namespace,
            self.reference.name,
            self.source,
            self.pods.len()
        );
        if self.pods_without_status > 0 {
            s.push_str(&format!(
                " ({} without status, taken as Running and Ready)",
                self.pods_without_status
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_manifest;

    const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
"#;

    const OBJECTS: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec: {replicas: 2, selector: {matchLabels: {app: web}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
- apiVersion: v1
  kind: Pod
  metadata: {name: other-1, namespace: shop, labels: {app: other}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-2, namespace: elsewhere, labels: {app: web}}
"#;

    fn hpa() -> HorizontalPodAutoscaler {
        parse_manifest(HPA).expect("hpa")
    }

    #[test]
    fn objects_give_the_target_and_the_pods_its_selector_matches_in_its_namespace() {
        let t = ScaleTarget::from_objects(OBJECTS, "objects.yaml", &hpa()).expect("target");
        assert_eq!(t.scope, PodScope::Selector("app=web".into()));
        assert_eq!(t.pod_names(), vec!["web-1".to_string()]);
        assert_eq!(t.pods_without_status, 1);
        assert_eq!(
            t.current_replicas(),
            Some((2, "spec.replicas of the scale target"))
        );
        assert_eq!(
            t.describe(),
            "scale target Deployment shop/web from objects.yaml: pods matching app=web, 1 found (1 without status, taken as Running and Ready)"
        );
    }

    #[test]
    fn without_the_workload_pods_are_taken_by_name_prefix() {
        let objects = "kind: Pod\nmetadata: {name: web-abc, namespace: shop}\n";
        let t = ScaleTarget::from_objects(objects, "f", &hpa()).expect("target");
        assert_eq!(t.scope, PodScope::NamePrefix("web-".into()));
        assert_eq!(t.pod_names(), vec!["web-abc".to_string()]);
        assert_eq!(t.current_replicas().map(|(r, _)| r), Some(1));
    }

    #[test]
    fn a_document_that_is_not_yaml_is_named() {
        let e = ScaleTarget::from_objects("a: [", "f.yaml", &hpa()).expect_err("bad yaml");
        assert!(e.to_string().starts_with("f.yaml: document 1"), "{e}");
    }

    #[test]
    fn a_missing_or_unparsable_selector_is_invalid() {
        let none = ScaleInfo::default();
        let t = ScaleTarget::invalid_selector(&hpa(), &none, "the cluster").expect("invalid");
        assert_eq!(
            t.selector_error,
            Some(("InvalidSelector".into(), "selector is required".into()))
        );
        let good = ScaleInfo {
            selector: Some("app=web".into()),
            ..ScaleInfo::default()
        };
        assert!(ScaleTarget::invalid_selector(&hpa(), &good, "the cluster").is_none());
        let bad = ScaleInfo {
            selector: Some("app in (".into()),
            ..ScaleInfo::default()
        };
        let t = ScaleTarget::invalid_selector(&hpa(), &bad, "the cluster").expect("invalid");
        let (reason, message) = t.selector_error.expect("error");
        assert_eq!(reason, "InvalidSelector");
        assert!(
            message.starts_with("couldn't convert selector"),
            "{message}"
        );
    }

    #[test]
    fn pods_selected_by_another_hpa_make_the_selector_ambiguous() {
        let t = ScaleTarget::from_objects(OBJECTS, "f", &hpa()).expect("target");
        let web: LabelSelector = "app=web".parse().expect("selector");
        let other: LabelSelector = "app=other".parse().expect("selector");
        assert_eq!(
            t.ambiguous_selector("web", [("web", &web), ("x", &other)]),
            None
        );
        assert_eq!(
            t.ambiguous_selector("web", [("b", &web), ("a", &web), ("x", &other)]),
            Some((
                "AmbiguousSelector".into(),
                "pods by selector app=web are controlled by multiple HPAs: [shop/a shop/b shop/web]"
                    .into()
            ))
        );
    }
}
