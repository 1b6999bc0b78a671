//! An HPA's scale target as the controller sees it: the pod selector and replica count of
//! its `scale` subresource, and the pods that selector matches with their phase, readiness
//! and container requests. Read from an object file (`--objects`, `--demo`) or from the
//! cluster (`--kubeconfig`, or in-cluster credentials).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use promhpa_core::selector::LabelSelector;
use promhpa_core::yaml;
use promhpa_hpa::objects::{
    has_status, pod_from_object, scale_from_subresource, scale_from_workload, ScaleInfo,
};
use promhpa_hpa::spec::{HorizontalPodAutoscaler, ScaleTargetRef};
use promhpa_hpa::{Pod, PodPhase};
use promhpa_kube::client::ClusterAccess;
use serde_json::Value;

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
fn documents(text: &str, source: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in yaml::documents::<Value>(text).into_iter().enumerate() {
        let v = doc.with_context(|| format!("{source}: document {}", i + 1))?;
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

fn meta<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
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

fn parse_selector(s: &str) -> anyhow::Result<LabelSelector> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("scale target selector {s:?}: {e}"))
}

/// The pods, how many had no status, and their labels.
type ConvertedPods = (Vec<Pod>, usize, BTreeMap<String, BTreeMap<String, String>>);

fn convert_pods(objects: &[&Value]) -> anyhow::Result<ConvertedPods> {
    let mut pods = Vec::new();
    let mut without_status = 0;
    let mut all_labels = BTreeMap::new();
    for o in objects {
        if !has_status(o) {
            without_status += 1;
        }
        let pod = pod_from_object(o).map_err(|e| anyhow::anyhow!("{e}"))?;
        all_labels.insert(pod.name.clone(), labels(o));
        pods.push(pod);
    }
    Ok((pods, without_status, all_labels))
}

/// The API server of `cluster`.
pub fn cluster_api(cluster: &ClusterAccess) -> anyhow::Result<promhpa_kube::Client> {
    cluster.client().context(
        "loading Kubernetes credentials; pass --kubeconfig, or give the objects with --objects",
    )
}

/// The HPA `name` of `namespace` from the cluster, and a line on its status (what the
/// controller last reported).
pub async fn hpa_from_cluster(
    cluster: &ClusterAccess,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(HorizontalPodAutoscaler, String)> {
    let api = cluster_api(cluster)?;
    let v = promhpa_kube::scale::get_hpa(&api, namespace, name)
        .await
        .with_context(|| format!("reading HorizontalPodAutoscaler {namespace}/{name}"))?;
    let text = serde_json::to_string(&v)?;
    let hpa = promhpa_hpa::spec::parse_manifest(&text)
        .with_context(|| format!("HorizontalPodAutoscaler {namespace}/{name}"))?;
    Ok((hpa, status_line(&v, super::backend::now_ms())))
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
    ) -> anyhow::Result<ScaleTarget> {
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
                    anyhow::anyhow!("{source}: {} {}: {e}", reference.kind, reference.name)
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

    /// The target `hpa` scales, read from the cluster of `kubeconfig` (in-cluster
    /// credentials when `None`) the way the controller reads it.
    pub async fn from_cluster(
        cluster: &ClusterAccess,
        hpa: &HorizontalPodAutoscaler,
    ) -> anyhow::Result<ScaleTarget> {
        let api = cluster_api(cluster)?;
        Self::from_api(&api, hpa).await
    }

    /// [`ScaleTarget::from_cluster`] over a given client.
    pub async fn from_api(
        api: &promhpa_kube::Client,
        hpa: &HorizontalPodAutoscaler,
    ) -> anyhow::Result<ScaleTarget> {
        use promhpa_kube::scale::{get_scale, list_pods};
        let namespace = hpa_namespace(hpa);
        let reference = hpa.spec.scale_target_ref.clone().unwrap_or_default();
        let map = promhpa_kube::discovery::discover(api)
            .await
            .context("API discovery")?;
        let what = format!("{} {}/{}", reference.kind, namespace, reference.name);
        let raw = get_scale(
            api,
            &map,
            &reference.api_version,
            &reference.kind,
            &namespace,
            &reference.name,
        )
        .await
        .with_context(|| {
            format!("the HPA cannot read the scale of {what} (condition AbleToScale False, reason FailedGetScale)")
        })?;
        let scale = scale_from_subresource(&raw).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let invalid = |message: String| ScaleTarget {
            namespace: namespace.clone(),
            reference: reference.clone(),
            scope: PodScope::Selector(String::new()),
            scale: Some(scale.clone()),
            pods: Vec::new(),
            pods_without_status: 0,
            pod_labels: BTreeMap::new(),
            selector_error: Some(("InvalidSelector".to_string(), message)),
            source: "the cluster".into(),
        };
        let Some(selector) = scale.selector.clone() else {
            return Ok(invalid("selector is required".into()));
        };
        if let Err(e) = parse_selector(&selector) {
            return Ok(invalid(format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            )));
        }
        let objects = list_pods(api, &namespace, &selector)
            .await
            .with_context(|| format!("listing the pods of {what} ({selector})"))?;
        let refs: Vec<&Value> = objects.iter().collect();
        let (pods, pods_without_status, pod_labels) = convert_pods(&refs)?;
        let mut target = ScaleTarget {
            namespace,
            reference,
            scope: PodScope::Selector(selector),
            scale: Some(scale),
            pods,
            pods_without_status,
            pod_labels,
            selector_error: None,
            source: "the cluster".into(),
        };
        target.selector_error = target.ambiguity(api, &map, hpa).await;
        Ok(target)
    }

    /// `AmbiguousSelector` when another HPA of the namespace selects some of these pods, as
    /// the controller checks before scaling. A failure to list the HPAs skips the check.
    async fn ambiguity(
        &self,
        api: &promhpa_kube::Client,
        map: &promhpa_kube::discovery::ResourceMap,
        hpa: &HorizontalPodAutoscaler,
    ) -> Option<(String, String)> {
        use promhpa_kube::scale::{get_scale, list_hpas};
        let ns = &self.namespace;
        let others = match list_hpas(api, ns).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("warning: not checking for other HPAs selecting these pods: {e}");
                return None;
            }
        };
        let mut controlling = vec![format!("{ns}/{}", hpa.metadata.name)];
        for other in &others {
            let Some(name) = meta(other, "name").filter(|n| *n != hpa.metadata.name) else {
                continue;
            };
            let Some(r) = other.get("spec").and_then(|s| s.get("scaleTargetRef")) else {
                continue;
            };
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            let Ok(raw) = get_scale(
                api,
                map,
                field("apiVersion"),
                field("kind"),
                ns,
                field("name"),
            )
            .await
            else {
                continue;
            };
            let Some(sel) = scale_from_subresource(&raw)
                .ok()
                .and_then(|s| s.selector)
                .and_then(|s| s.parse::<LabelSelector>().ok())
            else {
                continue;
            };
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

/// An object lookup that answers for the scale target's pods from what was already read of
/// them, and asks `inner` for everything else: explaining one HPA needs no cluster-wide
/// pod cache (nor the permission to list every namespace's pods).
pub struct TargetPodsLookup {
    namespace: String,
    pods: BTreeMap<String, BTreeMap<String, String>>,
    inner: Arc<dyn promhpa_core::lookup::ObjectLookup>,
}

impl TargetPodsLookup {
    pub fn new(target: &ScaleTarget, inner: Arc<dyn promhpa_core::lookup::ObjectLookup>) -> Self {
        TargetPodsLookup {
            namespace: target.namespace.clone(),
            pods: target.pod_labels.clone(),
            inner,
        }
    }
}

impl promhpa_core::lookup::ObjectLookup for TargetPodsLookup {
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> promhpa_core::BoxFuture<
        'a,
        Result<promhpa_core::lookup::ResourceMapping, promhpa_core::LookupError>,
    > {
        self.inner.resolve(resource)
    }

    fn names<'a>(
        &'a self,
        group_resource: &'a promhpa_core::GroupResource,
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
    ) -> promhpa_core::BoxFuture<'a, Result<Vec<String>, promhpa_core::LookupError>> {
        let ours = group_resource.group.is_empty()
            && group_resource.resource == "pods"
            && namespace == Some(self.namespace.as_str());
        if !ours {
            return self.inner.names(group_resource, namespace, selector);
        }
        let names: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, labels)| selector.matches(labels))
            .map(|(name, _)| name.clone())
            .collect();
        Box::pin(async move { Ok(names) })
    }
}
