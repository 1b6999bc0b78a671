//! Fetching an HPA's metrics the way the HPA controller does: through promhpa's own custom
//! and external metrics API (the same router `serve` runs, called in-process), so rule
//! rendering, object lookup and the errors are exactly what the controller would get.
//!
//! Pods metrics are asked for the scale target's pods: the `spec.selector` of the scale
//! target (Deployment, StatefulSet, ReplicaSet...) when the object file has it, otherwise
//! every pod of the namespace whose name starts with `<target name>-` (the names a
//! Deployment's ReplicaSet gives its pods).

use promhpa_apiserver::objects::plural;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::objects::StaticObjects;
use promhpa_apiserver::{AppState, Registry};
use promhpa_core::backend::{Backend, QueryValue};
use promhpa_core::quantity::Quantity;
use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_hpa::explain::FetchedValue;
use promhpa_hpa::spec::{HorizontalPodAutoscaler, MetaLabelSelector, MetricSpec, ScaleTargetRef};
use promhpa_rules::ResourceRules;
use serde::Deserialize;
use tower::ServiceExt;

use super::backend::BackendFlags;

/// Which pods a Pods metric is averaged over.
#[derive(Debug, Clone, PartialEq)]
pub enum PodScope {
    /// The scale target's `spec.selector` (query-string form).
    Selector(String),
    /// No selector known: pods whose name starts with this prefix.
    NamePrefix(String),
}

/// The in-process metrics API plus what is needed to ask it for one HPA's metrics.
pub struct HpaFetcher {
    router: axum::Router,
    namespace: String,
    pods: PodScope,
    backend: Arc<dyn Backend>,
    resource_rules: Option<ResourceRules>,
    /// The scale target's pods in the object file, when there is one.
    pod_names: Option<Vec<String>>,
}

/// The names of the pods in `scope` among the objects `text`.
pub fn scope_pod_names(
    text: &str,
    source: &str,
    scope: &PodScope,
    ns: &str,
) -> anyhow::Result<Vec<String>> {
    let objs = StaticObjects::from_text(text, source)?;
    let pods = GroupResource::new("", "pods");
    Ok(match scope {
        PodScope::Selector(s) => {
            let sel: LabelSelector = s
                .parse()
                .map_err(|e| anyhow::anyhow!("scale target selector {s:?}: {e}"))?;
            objs.names_sync(&pods, Some(ns), &sel)
        }
        PodScope::NamePrefix(prefix) => objs
            .names_sync(&pods, Some(ns), &LabelSelector::everything())
            .into_iter()
            .filter(|n| n.starts_with(prefix.as_str()))
            .collect(),
    })
}

#[derive(Deserialize)]
struct ValueList {
    #[serde(default)]
    items: Vec<ValueItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueItem {
    #[serde(default)]
    described_object: Option<Described>,
    value: String,
}

#[derive(Deserialize)]
struct Described {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct StatusBody {
    #[serde(default)]
    message: String,
}

fn yaml_str<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn find_selector(v: &serde_yaml::Value, target: &ScaleTargetRef, ns: &str) -> Option<String> {
    if let Some(seq) = v.as_sequence() {
        return seq.iter().find_map(|i| find_selector(i, target, ns));
    }
    if let Some(items) = v.get("items").and_then(|i| i.as_sequence()) {
        return items.iter().find_map(|i| find_selector(i, target, ns));
    }
    let matches = yaml_str(v, &["kind"]) == Some(target.kind.as_str())
        && yaml_str(v, &["metadata", "name"]) == Some(target.name.as_str())
        && yaml_str(v, &["metadata", "namespace"]).unwrap_or("default") == ns;
    if !matches {
        return None;
    }
    let sel = v.get("spec")?.get("selector")?;
    let sel: MetaLabelSelector = serde_yaml::from_value(sel.clone()).ok()?;
    let text = sel.to_string();
    (!text.is_empty()).then_some(text)
}

/// The pods a Pods metric covers: the scale target's selector from the object file, or the
/// `<name>-` prefix when the file does not give one.
pub fn pod_scope(objects: Option<&str>, target: &ScaleTargetRef, ns: &str) -> PodScope {
    objects
        .and_then(|text| {
            serde_yaml::Deserializer::from_str(text).find_map(|doc| {
                let v = serde_yaml::Value::deserialize(doc).ok()?;
                find_selector(&v, target, ns)
            })
        })
        .map(PodScope::Selector)
        .unwrap_or_else(|| PodScope::NamePrefix(format!("{}-", target.name)))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn selector_param(name: &str, sel: Option<&MetaLabelSelector>) -> Option<String> {
    let s = sel.map(|s| s.to_string()).unwrap_or_default();
    (!s.is_empty()).then(|| format!("{name}={}", encode(&s)))
}

fn with_params(path: String, params: &[Option<String>]) -> String {
    let p: Vec<&str> = params.iter().flatten().map(String::as_str).collect();
    if p.is_empty() {
        path
    } else {
        format!("{path}?{}", p.join("&"))
    }
}

impl HpaFetcher {
    /// Build the metrics API from the backend flags, run discovery once, and aim it at
    /// `hpa`'s namespace and scale target. Must run inside a tokio runtime.
    pub async fn new(
        flags: &BackendFlags,
        hpa: &HorizontalPodAutoscaler,
        kubeconfig: Option<&Path>,
        max_age: Duration,
    ) -> anyhow::Result<HpaFetcher> {
        let mut flags = flags.clone();
        let rules = flags.load_rules()?;
        flags.adopt_rule_file_prometheus(&rules);
        let backend = flags.build_backend()?;
        let lookup = flags.build_lookup(kubeconfig)?;
        let namespace = hpa
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let objects = flags.objects_text()?;
        let target = hpa.spec.scale_target_ref.clone().unwrap_or_default();
        let pods = pod_scope(
            objects.as_ref().map(|(t, _)| t.as_str()),
            &target,
            &namespace,
        );
        let pod_names = match &objects {
            Some((text, source)) => Some(scope_pod_names(text, source, &pods, &namespace)?),
            None => None,
        };
        let resource_rules = rules.resource.clone();
        let metrics = Arc::new(SelfMetrics::default());
        let registry = Arc::new(Registry::new(
            Arc::new(rules),
            backend.clone(),
            lookup.clone(),
            metrics.clone(),
            max_age,
        ));
        for e in registry.relist().await {
            eprintln!("warning: metric discovery: {e}");
        }
        let router = promhpa_apiserver::router(AppState {
            registry,
            backend: backend.clone(),
            lookup,
            metrics,
            guard: None,
            coalescer: Default::default(),
        });
        Ok(HpaFetcher {
            router,
            namespace,
            pods,
            backend,
            resource_rules,
            pod_names,
        })
    }

    /// Which pods Pods metrics are averaged over.
    pub fn pod_scope(&self) -> &PodScope {
        &self.pods
    }

    async fn get(&self, path: &str) -> Result<Vec<ValueItem>, String> {
        let req = Request::get(path)
            .body(Body::empty())
            .map_err(|e| format!("building request {path}: {e}"))?;
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|e| format!("reading the answer to GET {path}: {e}"))?;
        if status != StatusCode::OK {
            let msg = serde_json::from_slice::<StatusBody>(&body)
                .map(|s| s.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(format!("the server returned {status}: {msg}"));
        }
        serde_json::from_slice::<ValueList>(&body)
            .map(|l| l.items)
            .map_err(|e| format!("decoding the answer to GET {path}: {e}"))
    }

    fn sum(items: &[ValueItem]) -> Result<f64, String> {
        let mut total = 0.0;
        for i in items {
            let q: Quantity = i
                .value
                .parse()
                .map_err(|e| format!("metric value {:?}: {e}", i.value))?;
            total += q.as_f64();
        }
        Ok(total)
    }

    /// One metric's value in the units [`promhpa_hpa::explain::explain`] expects, or the
    /// error the HPA would report.
    pub async fn fetch(&self, m: &MetricSpec) -> FetchedValue {
        let ns = &self.namespace;
        match m.kind.as_str() {
            "Pods" => {
                let Some(p) = &m.pods else {
                    return Err("Pods metric without a `pods` section".into());
                };
                let name = &p.metric.name;
                let label = match &self.pods {
                    PodScope::Selector(s) => Some(format!("labelSelector={}", encode(s))),
                    PodScope::NamePrefix(_) => None,
                };
                let path = with_params(
                    format!(
                        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/{}",
                        encode(name)
                    ),
                    &[
                        label,
                        selector_param("metricLabelSelector", p.metric.selector.as_ref()),
                    ],
                );
                let fail =
                    |e: String| format!("unable to fetch metrics from custom metrics API: {e}");
                let mut items = self.get(&path).await.map_err(fail)?;
                if let PodScope::NamePrefix(prefix) = &self.pods {
                    items.retain(|i| {
                        i.described_object
                            .as_ref()
                            .is_some_and(|d| d.name.starts_with(prefix.as_str()))
                    });
                }
                if items.is_empty() {
                    return Err(fail("no metrics returned from custom metrics API".into()));
                }
                Ok(Self::sum(&items)? / items.len() as f64)
            }
            "Object" => {
                let Some(o) = &m.object else {
                    return Err("Object metric without an `object` section".into());
                };
                let name = &o.metric.name;
                let d = &o.described_object;
                let group = d.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
                let base = if d.kind == "Namespace" {
                    format!("namespaces/{}/metrics", encode(&d.name))
                } else {
                    let resource = if group.is_empty() {
                        plural(&d.kind)
                    } else {
                        format!("{}.{group}", plural(&d.kind))
                    };
                    format!("namespaces/{ns}/{resource}/{}", encode(&d.name))
                };
                let path = with_params(
                    format!(
                        "/apis/custom.metrics.k8s.io/v1beta2/{base}/{}",
                        encode(name)
                    ),
                    &[selector_param(
                        "metricLabelSelector",
                        o.metric.selector.as_ref(),
                    )],
                );
                let fail =
                    |e: String| format!("unable to fetch metrics from custom metrics API: {e}");
                let items = self.get(&path).await.map_err(fail)?;
                match items.first() {
                    Some(_) => Self::sum(&items[..1]),
                    None => Err(fail("no metrics returned from custom metrics API".into())),
                }
            }
            "External" => {
                let Some(x) = &m.external else {
                    return Err("External metric without an `external` section".into());
                };
                let name = &x.metric.name;
                let path = with_params(
                    format!(
                        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{}",
                        encode(name)
                    ),
                    &[selector_param("labelSelector", x.metric.selector.as_ref())],
                );
                let fail =
                    |e: String| format!("unable to fetch metrics from external metrics API: {e}");
                let items = self.get(&path).await.map_err(fail)?;
                if items.is_empty() {
                    return Err(fail("no metrics returned from external metrics API".into()));
                }
                Self::sum(&items)
            }
            "Resource" => self.fetch_resource(m).await,
            "ContainerResource" => Err(
                "not fetched: container resource metrics come from metrics.k8s.io, which explain \
                 does not query; pass the value with --values"
                    .into(),
            ),
            other => Err(format!("invalid metric source type \"{other}\"")),
        }
    }

    /// A Resource metric with an AverageValue target from the rule file's `resourceRules`:
    /// the container query for the scale target's pods, summed per pod, averaged.
    async fn fetch_resource(&self, m: &MetricSpec) -> FetchedValue {
        let Some(r) = &m.resource else {
            return Err("Resource metric without a `resource` section".into());
        };
        let Some(rules) = &self.resource_rules else {
            return Err(
                "not fetched: resource metrics come from metrics.k8s.io (metrics-server), \
                 and the rule file has no resourceRules; pass the value with --values"
                    .into(),
            );
        };
        if r.target.average_value.is_none() {
            return Err(format!(
                "not fetched: a Utilization target needs the pods' {} requests, which explain \
                 does not read; pass the utilization with --values {}=PERCENT",
                r.name, r.name
            ));
        }
        let rule = match r.name.as_str() {
            "cpu" => &rules.cpu,
            "memory" => &rules.memory,
            other => return Err(format!("resourceRules serve cpu and memory, not {other}")),
        };
        let Some(names) = self.pod_names.as_ref().filter(|n| !n.is_empty()) else {
            return Err("not fetched: no pods of the scale target in the objects".into());
        };
        let q = rule
            .render_container_query(&self.namespace, names)
            .map_err(|e| format!("rendering {}: {e}", rule.path()))?;
        let label = rule
            .resources()
            .label_for_resource(&GroupResource::new("", "pods"))
            .unwrap_or_else(|| "pod".into());
        let promql = format!("avg(sum by ({label}) ({q}))");
        match self.backend.query(&promql, super::backend::now_ms()).await {
            Ok(QueryValue::Vector(v)) => v
                .first()
                .map(|s| s.value)
                .ok_or_else(|| "no metrics returned from resource metrics API".into()),
            Ok(other) => Err(format!("{promql} returned a {}", other.type_name())),
            Err(e) => Err(format!(
                "unable to fetch metrics from resource metrics API: {e}"
            )),
        }
    }
}
