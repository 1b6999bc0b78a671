//! [`StaticObjects`]: an [`ObjectLookup`] over a fixed set of Kubernetes objects read from a
//! YAML or JSON file (single objects, `kind: List` documents, or several `---` documents).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use promhpa_core::backend::BoxFuture;
use promhpa_core::lookup::{GroupResource, LookupError, ObjectLookup, ResourceMapping};
use promhpa_core::pod::PodPhase;
use promhpa_core::selector::LabelSelector;
use promhpa_core::yaml;
use serde::Deserialize;

/// Why an object file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("reading object file {path}: {message}")]
    Read { path: String, message: String },
    #[error("object file {path}: document {index}: {message}")]
    Parse {
        path: String,
        index: usize,
        message: String,
    },
}

/// (kind, group, plural, short names, version, namespaced) of the resources everyone uses.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    bool,
);

const BUILTIN: &[Builtin] = &[
    ("Pod", "", "pods", &["po"], "v1", true),
    ("Service", "", "services", &["svc"], "v1", true),
    ("Namespace", "", "namespaces", &["ns"], "v1", false),
    ("Node", "", "nodes", &["no"], "v1", false),
    (
        "PersistentVolumeClaim",
        "",
        "persistentvolumeclaims",
        &["pvc"],
        "v1",
        true,
    ),
    (
        "PersistentVolume",
        "",
        "persistentvolumes",
        &["pv"],
        "v1",
        false,
    ),
    ("ConfigMap", "", "configmaps", &["cm"], "v1", true),
    (
        "ReplicationController",
        "",
        "replicationcontrollers",
        &["rc"],
        "v1",
        true,
    ),
    ("Deployment", "apps", "deployments", &["deploy"], "v1", true),
    ("ReplicaSet", "apps", "replicasets", &["rs"], "v1", true),
    ("StatefulSet", "apps", "statefulsets", &["sts"], "v1", true),
    ("DaemonSet", "apps", "daemonsets", &["ds"], "v1", true),
    ("Job", "batch", "jobs", &[], "v1", true),
    ("CronJob", "batch", "cronjobs", &["cj"], "v1", true),
    (
        "Ingress",
        "networking.k8s.io",
        "ingresses",
        &["ing"],
        "v1",
        true,
    ),
    (
        "HorizontalPodAutoscaler",
        "autoscaling",
        "horizontalpodautoscalers",
        &["hpa"],
        "v2",
        true,
    ),
];

#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RawObject {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<Meta>,
    #[serde(default)]
    items: Option<Vec<RawObject>>,
    /// Read for a pod's `status.phase` only; any other kind's status may hold anything.
    #[serde(default)]
    status: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
struct Object {
    namespace: Option<String>,
    name: String,
    labels: BTreeMap<String, String>,
    /// `status.phase` is `Running`, or the object has no status (an object file written by
    /// hand rarely gives a pod's status; such a pod counts as running, as the HPA tools
    /// count it).
    running: bool,
}

/// Objects from a file, indexed by group/resource.
#[derive(Debug, Clone, Default)]
pub struct StaticObjects {
    mappings: Vec<(Vec<String>, ResourceMapping)>,
    objects: BTreeMap<GroupResource, Vec<Object>>,
}

/// The lowercase plural resource name Kubernetes derives from a kind (`Deployment` →
/// `deployments`, `Ingress` → `ingresses`, `Policy` → `policies`).
pub fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

impl StaticObjects {
    /// Read objects from a YAML or JSON file.
    pub fn load(path: &Path) -> Result<StaticObjects, ObjectsError> {
        let text = std::fs::read_to_string(path).map_err(|e| ObjectsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        StaticObjects::from_text(&text, &path.display().to_string())
    }

    /// Parse objects from YAML/JSON text; `source` names it in errors.
    pub fn from_text(text: &str, source: &str) -> Result<StaticObjects, ObjectsError> {
        let mut me = StaticObjects::default();
        for (kind, group, plural, short, version, namespaced) in BUILTIN {
            let mut names: Vec<String> = vec![
                kind.to_ascii_lowercase(),
                plural.to_string(),
                kind.to_string(),
            ];
            names.extend(short.iter().map(|s| s.to_string()));
            if !group.is_empty() {
                names.push(format!("{plural}.{group}"));
                names.push(format!("{}.{group}", kind.to_ascii_lowercase()));
            }
            me.mappings.push((
                names,
                ResourceMapping {
                    group_resource: GroupResource::new(*group, *plural),
                    version: version.to_string(),
                    kind: kind.to_string(),
                    namespaced: *namespaced,
                },
            ));
        }
        let documents = yaml::documents::<serde_json::Value>(text);
        for (index, doc) in documents.into_iter().enumerate() {
            let parse_error = |message: String| ObjectsError::Parse {
                path: source.to_string(),
                index,
                message,
            };
            let mut value = doc.map_err(|e| parse_error(e.to_string()))?;
            // A null field is one not set, as the API server reads objects.
            yaml::drop_null_fields(&mut value);
            // A document may be one object, a `kind: List`, or a bare sequence of objects.
            let values = match value {
                serde_json::Value::Array(items) => items,
                other => vec![other],
            };
            for value in values {
                let raw: RawObject =
                    serde_json::from_value(value).map_err(|e| parse_error(e.to_string()))?;
                me.add(raw);
            }
        }
        // Namespaces that objects live in exist even when not listed.
        let mut implicit = BTreeSet::new();
        for objs in me.objects.values() {
            for o in objs {
                if let Some(ns) = &o.namespace {
                    implicit.insert(ns.clone());
                }
            }
        }
        let nsr = GroupResource::new("", "namespaces");
        let listed = me.objects.entry(nsr).or_default();
        for ns in implicit {
            if !listed.iter().any(|o| o.name == ns) {
                listed.push(Object {
                    namespace: None,
                    name: ns,
                    labels: BTreeMap::new(),
                    running: true,
                });
            }
        }
        for objs in me.objects.values_mut() {
            objs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        }
        Ok(me)
    }

    fn add(&mut self, raw: RawObject) {
        if let Some(items) = raw.items {
            for item in items {
                self.add(item);
            }
            return;
        }
        let Some(meta) = raw.metadata else { return };
        if raw.kind.is_empty() || meta.name.is_empty() {
            return;
        }
        let (group, version) = match raw.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), raw.api_version.clone()),
        };
        let gr = match self.mapping_for_kind(&raw.kind, &group) {
            Some(m) => m.group_resource.clone(),
            None => {
                let gr = GroupResource::new(group.clone(), plural(&raw.kind));
                let lower = raw.kind.to_ascii_lowercase();
                let mut names = vec![lower.clone(), gr.resource.clone(), raw.kind.clone()];
                if !group.is_empty() {
                    names.push(format!("{}.{group}", gr.resource));
                    names.push(format!("{lower}.{group}"));
                }
                self.mappings.push((
                    names,
                    ResourceMapping {
                        group_resource: gr.clone(),
                        version,
                        kind: raw.kind.clone(),
                        namespaced: meta.namespace.is_some(),
                    },
                ));
                gr
            }
        };
        // As the HPA tools read a pod: without a status it is running; with one, its phase
        // says.
        let running = PodPhase::of_status(raw.status.as_ref()) == PodPhase::Running;
        self.objects.entry(gr).or_default().push(Object {
            namespace: meta.namespace,
            name: meta.name,
            labels: meta.labels,
            running,
        });
    }

    fn mapping_for_kind(&self, kind: &str, group: &str) -> Option<&ResourceMapping> {
        self.mappings
            .iter()
            .map(|(_, m)| m)
            .find(|m| m.kind == kind && m.group_resource.group == group)
    }

    /// Resolve a resource name synchronously (see [`ObjectLookup::resolve`]).
    pub fn resolve_sync(&self, resource: &str) -> Result<ResourceMapping, LookupError> {
        let lower = resource.to_ascii_lowercase();
        self.mappings
            .iter()
            .find(|(names, _)| names.iter().any(|n| n == resource || *n == lower))
            .map(|(_, m)| m.clone())
            .ok_or_else(|| LookupError::UnknownResource(resource.to_string()))
    }

    /// Names matching a selector synchronously (see [`ObjectLookup::names`]).
    pub fn names_sync(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Vec<String> {
        self.matching(gr, namespace, selector, false)
    }

    /// Running pods matching a selector synchronously (see [`ObjectLookup::running_pods`]).
    pub fn running_pods_sync(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Vec<String> {
        self.matching(&GroupResource::new("", "pods"), namespace, selector, true)
    }

    fn matching(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        selector: &LabelSelector,
        running_only: bool,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .objects
            .get(gr)
            .map(|objs| {
                objs.iter()
                    .filter(|o| !running_only || o.running)
                    .filter(|o| namespace.is_none() || o.namespace.as_deref() == namespace)
                    .filter(|o| selector.matches(&o.labels))
                    .map(|o| o.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }
}

impl ObjectLookup for StaticObjects {
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<ResourceMapping, LookupError>> {
        Box::pin(async move { self.resolve_sync(resource) })
    }

    fn names<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>> {
        Box::pin(async move { Ok(self.names_sync(group_resource, namespace, selector)) })
    }

    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, LookupError>> {
        Box::pin(async move { Ok(self.running_pods_sync(namespace, selector)) })
    }

    fn labels<'a>(
        &'a self,
        group_resource: &'a GroupResource,
        namespace: Option<&'a str>,
        names: &'a [String],
    ) -> BoxFuture<'a, BTreeMap<String, BTreeMap<String, String>>> {
        let labels = self
            .objects
            .get(group_resource)
            .map(|objects| {
                objects
                    .iter()
                    .filter(|o| o.namespace.as_deref() == namespace && names.contains(&o.name))
                    .map(|o| (o.name.clone(), o.labels.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(async move { labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web-2, namespace: shop, labels: {app: web}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web, tier: api}}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-0, namespace: shop, labels: {app: db}}
---
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {zone: a}}
---
apiVersion: llmd.ai/v1alpha1
kind: VariantAutoscaling
metadata: {name: va, namespace: llm-d-sim}
"#;

    #[test]
    fn resolves_names_and_selects() {
        let o = StaticObjects::from_text(FILE, "test").unwrap_or_else(|e| panic!("{e}"));
        for name in ["po", "pod", "pods", "Pod"] {
            assert_eq!(
                o.resolve_sync(name).map(|m| m.group_resource),
                Ok(GroupResource::new("", "pods"))
            );
        }
        let d = o
            .resolve_sync("deployments.apps")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.kind, "Deployment");
        assert_eq!(o.resolve_sync("deploy").map(|m| m.version), Ok("v1".into()));
        assert!(!o
            .resolve_sync("nodes")
            .map(|m| m.namespaced)
            .unwrap_or(true));
        assert!(o.resolve_sync("widgets").is_err());
        let va = o
            .resolve_sync("variantautoscalings.llmd.ai")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(va.namespaced);

        let pods = GroupResource::new("", "pods");
        let sel: LabelSelector = "app=web".parse().unwrap_or_default();
        assert_eq!(
            o.names_sync(&pods, Some("shop"), &sel),
            vec!["web-1", "web-2"]
        );
        assert!(o.names_sync(&pods, Some("other"), &sel).is_empty());
        assert_eq!(
            o.names_sync(&pods, Some("shop"), &LabelSelector::everything()),
            vec!["db-0", "web-1", "web-2"]
        );
        let ns = GroupResource::new("", "namespaces");
        assert_eq!(
            o.names_sync(&ns, None, &LabelSelector::everything()),
            vec!["llm-d-sim", "shop"]
        );
        assert!(StaticObjects::from_text("kind: [", "bad").is_err());
    }

    #[test]
    fn a_null_field_is_one_not_set() {
        let text =
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: shop\n  labels:\n";
        let o = StaticObjects::from_text(text, "test").unwrap_or_else(|e| panic!("{e}"));
        let pods = GroupResource::new("", "pods");
        assert_eq!(
            o.names_sync(&pods, Some("shop"), &LabelSelector::everything()),
            vec!["web-0"]
        );
        let err = StaticObjects::from_text("kind: Pod\n---\nkind: [\n", "bad.yaml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bad.yaml") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn running_pods_are_those_in_phase_running_or_without_a_phase() {
        let text = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop}, status: {phase: Running}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-2, namespace: shop}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-3, namespace: shop}, status: {phase: Pending}}
- {apiVersion: v1, kind: Pod, metadata: {name: job-1, namespace: shop}, status: {phase: Succeeded}}
- {apiVersion: v1, kind: Pod, metadata: {name: bad-1, namespace: shop}, status: {phase: Failed}}
- {apiVersion: v1, kind: Pod, metadata: {name: odd-1, namespace: shop}, status: {}}
- {apiVersion: v1, kind: Pod, metadata: {name: db-0, namespace: other}, status: {phase: Running}}
- {apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: shop}, status: [1, 2]}
"#;
        let o = StaticObjects::from_text(text, "test").unwrap_or_else(|e| panic!("{e}"));
        let all = LabelSelector::everything();
        assert_eq!(
            o.running_pods_sync(Some("shop"), &all),
            vec!["web-1", "web-2"]
        );
        assert_eq!(
            o.running_pods_sync(None, &all),
            vec!["db-0", "web-1", "web-2"]
        );
        // Every pod still exists for the custom metrics API.
        assert_eq!(
            o.names_sync(&GroupResource::new("", "pods"), Some("shop"), &all)
                .len(),
            6
        );
    }
}
