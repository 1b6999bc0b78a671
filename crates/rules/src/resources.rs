//! Mapping between Prometheus labels and Kubernetes resources for one rule
//! (`resources.overrides` and `resources.template`), in both directions.

use promhpa_core::GroupResource;
use regex::Regex;

use crate::gotmpl::{FieldKind, Template, Val};

/// Built-in Kubernetes resources: (singular, plural, group, short names).
const BUILTIN: &[(&str, &str, &str, &[&str])] = &[
    ("pod", "pods", "", &["po"]),
    ("namespace", "namespaces", "", &["ns"]),
    ("node", "nodes", "", &["no"]),
    ("service", "services", "", &["svc"]),
    ("endpoints", "endpoints", "", &["ep"]),
    ("configmap", "configmaps", "", &["cm"]),
    ("secret", "secrets", "", &[]),
    ("serviceaccount", "serviceaccounts", "", &["sa"]),
    ("persistentvolume", "persistentvolumes", "", &["pv"]),
    (
        "persistentvolumeclaim",
        "persistentvolumeclaims",
        "",
        &["pvc"],
    ),
    (
        "replicationcontroller",
        "replicationcontrollers",
        "",
        &["rc"],
    ),
    ("deployment", "deployments", "apps", &["deploy"]),
    ("replicaset", "replicasets", "apps", &["rs"]),
    ("statefulset", "statefulsets", "apps", &["sts"]),
    ("daemonset", "daemonsets", "apps", &["ds"]),
    ("job", "jobs", "batch", &[]),
    ("cronjob", "cronjobs", "batch", &["cj"]),
    ("ingress", "ingresses", "networking.k8s.io", &["ing"]),
    (
        "horizontalpodautoscaler",
        "horizontalpodautoscalers",
        "autoscaling",
        &["hpa"],
    ),
    (
        "poddisruptionbudget",
        "poddisruptionbudgets",
        "policy",
        &["pdb"],
    ),
];

/// The namespaces resource, whose label scopes namespaced requests.
pub fn namespaces() -> GroupResource {
    GroupResource::new("", "namespaces")
}

fn builtin(group: &str, resource: &str) -> Option<GroupResource> {
    let r = resource.to_ascii_lowercase();
    BUILTIN
        .iter()
        .find(|(singular, plural, g, short)| {
            (group.is_empty() || group == *g)
                && (r == *singular || r == *plural || short.contains(&r.as_str()))
        })
        .map(|(_, plural, g, _)| GroupResource::new(*g, *plural))
}

/// Resolve a resource as written in a rule (`pod`, `pods`, `deployment`, `{group: apps,
/// resource: deployment}`) to its group and plural name, as a Kubernetes REST mapper does
/// for built-in resources. Others (custom resources) keep their group and are pluralised
/// by English rules (`foo` → `foos`, `policy` → `policies`); already plural names stay.
pub fn normalize(group: &str, resource: &str) -> GroupResource {
    if let Some(gr) = builtin(group, resource) {
        return gr;
    }
    let r = resource.to_ascii_lowercase();
    let plural = if r.ends_with('s') {
        r
    } else if let Some(stem) = r
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{r}s")
    };
    GroupResource::new(group, plural)
}

/// Resolve a resource only when it is a well-known built-in one.
pub fn normalize_known(group: &str, resource: &str) -> Option<GroupResource> {
    builtin(group, resource)
}

/// The singular of a (plural) resource name, as `.Resource` in a label template sees it.
pub fn singular(resource: &str) -> String {
    if let Some((s, ..)) = BUILTIN.iter().find(|(_, p, ..)| *p == resource) {
        return (*s).to_string();
    }
    if let Some(stem) = resource.strip_suffix("ies") {
        return format!("{stem}y");
    }
    if let Some(stem) = resource.strip_suffix("sses") {
        return format!("{stem}ss");
    }
    if resource.ends_with("ss") {
        return resource.to_string();
    }
    resource.strip_suffix('s').unwrap_or(resource).to_string()
}

pub(crate) const RESOURCE_TEMPLATE_FIELDS: &[(&str, FieldKind)] =
    &[("Group", FieldKind::Str), ("Resource", FieldKind::Str)];

fn group_resource_data(group: &str, resource: &str) -> Val {
    Val::Struct(
        "schema.GroupResource",
        vec![
            ("Group", Val::Str(group.to_string())),
            ("Resource", Val::Str(resource.to_string())),
        ],
    )
}

/// A rule's `resources` block, compiled.
#[derive(Debug, Clone, Default)]
pub struct ResourceMapper {
    /// `resources.overrides`, sorted by label.
    pub(crate) overrides: Vec<(String, GroupResource)>,
    pub(crate) template: Option<LabelTemplate>,
}

#[derive(Debug, Clone)]
pub(crate) struct LabelTemplate {
    pub source: String,
    template: Template,
    extractor: Regex,
}

impl LabelTemplate {
    /// Parse `resources.template` and derive the label → resource matcher from it.
    pub(crate) fn new(source: &str) -> Result<LabelTemplate, String> {
        let template = Template::parse(source, RESOURCE_TEMPLATE_FIELDS)
            .map_err(|e| format!("invalid template: {e}"))?;
        let pattern = template
            .execute(&group_resource_data("(?P<group>.+?)", "(?P<resource>.+?)"))
            .map_err(|e| format!("invalid template: {e}"))?;
        if pattern.is_empty() {
            return Err("the template renders an empty label".into());
        }
        let extractor = Regex::new(&format!("^{pattern}$"))
            .map_err(|e| format!("the template does not make a valid label matcher: {e}"))?;
        if !extractor.capture_names().any(|n| n == Some("resource")) {
            return Err("the template must use <<.Resource>>".into());
        }
        Ok(LabelTemplate {
            source: source.to_string(),
            template,
            extractor,
        })
    }

    fn label_for(&self, resource: &GroupResource) -> Option<String> {
        let group = resource.group.replace(['.', '-'], "_");
        let data = group_resource_data(&group, &singular(&resource.resource));
        self.template.execute(&data).ok().filter(|l| !l.is_empty())
    }

    fn resource_for(
        &self,
        label: &str,
        resolve: &dyn Fn(&str, &str) -> Option<GroupResource>,
    ) -> Option<GroupResource> {
        let caps = self.extractor.captures(label)?;
        let resource = caps.name("resource")?.as_str();
        let group = caps.name("group").map(|m| m.as_str()).unwrap_or("");
        resolve(group, resource)
    }
}

impl ResourceMapper {
    /// The label holding names of `resource` (overrides first, then the template).
    ///
    /// `resource` is expected in its canonical form (`deployments.apps`); a singular, short
    /// or group-less name of a built-in resource (`deployment`, `deploy`) is resolved first.
    pub fn label_for_resource(&self, resource: &GroupResource) -> Option<String> {
        // Overrides hold canonical names, and a request usually names its resource so
        // (`pods`): found as it is, it needs no resolving.
        if let Some((label, _)) = self.overrides.iter().find(|(_, gr)| gr == resource) {
            return Some(label.clone());
        }
        let canonical = builtin(&resource.group, &resource.resource);
        let resource = canonical.as_ref().unwrap_or(resource);
        if let Some((label, _)) = self.overrides.iter().find(|(_, gr)| gr == resource) {
            return Some(label.clone());
        }
        self.template.as_ref()?.label_for(resource)
    }

    /// Resources described by a set of label names. Template matches resolve through
    /// `resolve(group, resource)`; unresolved ones are skipped.
    pub fn resources_for_labels_with<'a>(
        &self,
        labels: impl IntoIterator<Item = &'a str>,
        resolve: &dyn Fn(&str, &str) -> Option<GroupResource>,
    ) -> Vec<GroupResource> {
        let mut out: Vec<GroupResource> = Vec::new();
        for label in labels {
            let found = match self.overrides.iter().find(|(l, _)| l == label) {
                Some((_, gr)) => Some(gr.clone()),
                None => self
                    .template
                    .as_ref()
                    .and_then(|t| t.resource_for(label, resolve)),
            };
            if let Some(gr) = found {
                if !out.contains(&gr) {
                    out.push(gr);
                }
            }
        }
        out
    }

    /// Whether no label maps to any resource.
    /// The labels of `resources.overrides`, sorted.
    pub fn override_labels(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().map(|(l, _)| l.as_str())
    }

    /// Whether every resource this mapper names is cluster-scoped (nodes, namespaces,
    /// persistent volumes, storage classes): no namespace label is needed to serve them. A
    /// template can name any resource, so it is never only cluster-scoped.
    pub fn only_cluster_scoped(&self) -> bool {
        const CLUSTER: &[(&str, &str)] = &[
            ("", "nodes"),
            ("", "namespaces"),
            ("", "persistentvolumes"),
            ("storage.k8s.io", "storageclasses"),
        ];
        self.template.is_none()
            && !self.overrides.is_empty()
            && self.overrides.iter().all(|(_, gr)| {
                CLUSTER
                    .iter()
                    .any(|(g, r)| gr.group == *g && gr.resource == *r)
            })
    }

    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty() && self.template.is_none()
    }

    /// A one-line description, e.g. `namespace→namespaces, pod→pods` or `template <<.Resource>>`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .overrides
            .iter()
            .map(|(l, gr)| format!("{l} → {gr}"))
            .collect();
        if let Some(t) = &self.template {
            parts.push(format!("template {}", t.source));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_a_rest_mapper_for_builtins() {
        assert_eq!(normalize("", "pod"), GroupResource::new("", "pods"));
        assert_eq!(
            normalize("", "deployment"),
            GroupResource::new("apps", "deployments")
        );
        assert_eq!(
            normalize("apps", "deployments"),
            GroupResource::new("apps", "deployments")
        );
        assert_eq!(
            normalize("", "Namespace"),
            GroupResource::new("", "namespaces")
        );
        assert_eq!(
            normalize("", "ingress"),
            GroupResource::new("networking.k8s.io", "ingresses")
        );
        assert_eq!(
            normalize("example.com", "widget"),
            GroupResource::new("example.com", "widgets")
        );
        assert_eq!(
            normalize("example.com", "policy"),
            GroupResource::new("example.com", "policies")
        );
        assert_eq!(singular("deployments"), "deployment");
        assert_eq!(singular("ingresses"), "ingress");
        assert_eq!(singular("widgets"), "widget");
        assert_eq!(singular("ingress"), "ingress");
    }

    #[test]
    fn template_maps_both_directions() {
        let t = LabelTemplate::new("kube_<<.Group>>_<<.Resource>>").unwrap();
        let m = ResourceMapper {
            overrides: vec![("ns".into(), namespaces())],
            template: Some(t),
        };
        assert_eq!(
            m.label_for_resource(&GroupResource::new("apps", "deployments"))
                .as_deref(),
            Some("kube_apps_deployment")
        );
        assert_eq!(m.label_for_resource(&namespaces()).as_deref(), Some("ns"));
        assert_eq!(
            m.label_for_resource(&GroupResource::new("", "deploy"))
                .as_deref(),
            Some("kube_apps_deployment")
        );
        assert_eq!(
            m.label_for_resource(&GroupResource::new("", "namespace"))
                .as_deref(),
            Some("ns")
        );
        let found = m
            .resources_for_labels_with(["kube_apps_deployment", "ns", "instance"], &|g, r| {
                normalize_known(g, r)
            });
        assert_eq!(
            found,
            vec![GroupResource::new("apps", "deployments"), namespaces()]
        );
    }

    #[test]
    fn template_without_resource_is_rejected() {
        assert!(LabelTemplate::new("<<.Group>>")
            .unwrap_err()
            .contains("<<.Resource>>"));
        assert!(LabelTemplate::new("<<.Kind>>")
            .unwrap_err()
            .contains("unknown field"));
    }
}
