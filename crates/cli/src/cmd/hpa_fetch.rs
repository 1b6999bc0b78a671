//! Fetching an HPA's metrics the way the HPA controller does: through promhpa's own custom
//! and external metrics API (the same router `serve` runs, called in-process), so rule
//! rendering, object lookup and the errors are exactly what the controller would get.
//! Resource metrics come from the rule file's `resourceRules` container queries, per pod
//! and container as metrics.k8s.io would report them.
//!
//! Per-pod metrics are returned per pod, for the pods of the scale target
//! ([`super::hpa_target::ScaleTarget`]), so the controller's pod classification applies.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::objects::plural;
use promhpa_apiserver::{AppState, Registry};
use promhpa_core::backend::{Backend, QueryValue};
use promhpa_core::quantity::Quantity;
use promhpa_core::GroupResource;
use promhpa_hpa::calc::PodSample;
use promhpa_hpa::explain::Measured;
use promhpa_hpa::spec::{HorizontalPodAutoscaler, MetaLabelSelector, MetricSpec};
use promhpa_kube_lookup::cache::percent_encode as encode;
use promhpa_rules::ResourceRules;
use serde::Deserialize;
use tower::ServiceExt;

use super::backend::BackendFlags;
use super::hpa_target::{PodScope, ScaleTarget};

/// What one metric fetch gives: per-pod samples or one value, or the error the HPA would
/// report.
pub type Fetched = Result<Measured, String>;

/// The window reported for resource metrics when the rule file's `resourceRules` set none
/// (prometheus-adapter then reports a zero window).
const DEFAULT_RESOURCE_WINDOW_MS: i64 = 0;
/// The window the controller assumes for custom metrics without one.
const CUSTOM_METRIC_WINDOW_MS: i64 = 60_000;

/// The in-process metrics API plus what is needed to ask it for one HPA's metrics.
pub struct HpaFetcher {
    router: axum::Router,
    target: ScaleTarget,
    backend: Arc<dyn Backend>,
    resource_rules: Option<ResourceRules>,
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
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    window_seconds: Option<i64>,
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

/// A resource usage in milli-units as the resource metrics API reports it: truncated, and
/// zero for NaN and negative values.
fn usage_milli(value: f64) -> i64 {
    let m = (value * 1000.0).trunc();
    if m.is_nan() || m < 0.0 {
        0
    } else {
        m.min(i64::MAX as f64) as i64
    }
}

impl HpaFetcher {
    /// Build the metrics API from the backend flags, run discovery once, and read `hpa`'s
    /// scale target and its pods (from the object file, or from the cluster of
    /// `kubeconfig`). Must run inside a tokio runtime.
    pub async fn new(
        flags: &BackendFlags,
        hpa: &HorizontalPodAutoscaler,
        kubeconfig: Option<&Path>,
        max_age: Duration,
    ) -> anyhow::Result<HpaFetcher> {
        let mut flags = flags.clone();
        let rules = flags.load_rules()?;
        flags.adopt_rule_file_prometheus(&rules);
        if flags.prometheus_url.is_none() && !flags.demo && flags.load_exposition.is_empty() {
            eprintln!(
                "warning: no --prometheus-url: metrics come from the embedded evaluator, which holds no data (pass --prometheus-url, or --load-exposition)"
            );
        }
        let backend = flags.build_backend()?;
        let target = match flags.objects_text()? {
            Some((text, source)) => ScaleTarget::from_objects(&text, &source, hpa)?,
            None => ScaleTarget::from_cluster(kubeconfig, hpa).await?,
        };
        let lookup = flags.build_lookup(kubeconfig)?;
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
            target,
            backend,
            resource_rules,
        })
    }

    /// The scale target and its pods.
    pub fn target(&self) -> &ScaleTarget {
        &self.target
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

    fn quantity(i: &ValueItem) -> Result<Quantity, String> {
        i.value
            .parse()
            .map_err(|e| format!("metric value {:?}: {e}", i.value))
    }

    fn sum(items: &[ValueItem]) -> Result<f64, String> {
        let mut total = 0.0;
        for i in items {
            total += Self::quantity(i)?.as_f64();
        }
        Ok(total)
    }

    /// One metric as the HPA would get it (per pod for Pods and resource metrics), or the
    /// error it would report.
    pub async fn fetch(&self, m: &MetricSpec) -> Fetched {
        let ns = &self.target.namespace;
        match m.kind.as_str() {
            "Pods" => {
                let Some(p) = &m.pods else {
                    return Err("Pods metric without a `pods` section".into());
                };
                let name = &p.metric.name;
                let label = match &self.target.scope {
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
                let items = self.get(&path).await.map_err(fail)?;
                let now = super::backend::now_ms();
                let mut samples = BTreeMap::new();
                for i in &items {
                    let Some(pod) = i.described_object.as_ref().map(|d| d.name.as_str()) else {
                        continue;
                    };
                    if !self.target.pods.iter().any(|p| p.name == pod) {
                        continue;
                    }
                    let timestamp_ms = i
                        .timestamp
                        .as_deref()
                        .and_then(promhpa_core::time::parse_rfc3339_ms)
                        .unwrap_or(now);
                    samples.insert(
                        pod.to_string(),
                        PodSample {
                            milli: Self::quantity(i)?.milli_value(),
                            timestamp_ms,
                            window_ms: i
                                .window_seconds
                                .map_or(CUSTOM_METRIC_WINDOW_MS, |w| w.saturating_mul(1000)),
                        },
                    );
                }
                if samples.is_empty() {
                    return Err(if items.is_empty() {
                        "no metrics returned from custom metrics API".to_string()
                    } else {
                        format!(
                            "{} values returned from custom metrics API, none for the {} pods of the scale target",
                            items.len(),
                            self.target.pods.len()
                        )
                    });
                }
                Ok(Measured::PerPod(samples))
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
                    Some(_) => Self::sum(&items[..1]).map(Measured::Value),
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
                Self::sum(&items).map(Measured::Value)
            }
            "Resource" => match &m.resource {
                Some(r) => self.fetch_resource(&r.name, None).await,
                None => Err("Resource metric without a `resource` section".into()),
            },
            "ContainerResource" => match &m.container_resource {
                Some(r) => self.fetch_resource(&r.name, Some(&r.container)).await,
                None => {
                    Err("ContainerResource metric without a `containerResource` section".into())
                }
            },
            other => Err(format!("invalid metric source type \"{other}\"")),
        }
    }

    /// A resource metric as metrics.k8s.io would report it from the rule file's
    /// `resourceRules`: the container query for the scale target's pods, per pod and
    /// container; a pod's usage is the sum over its containers (or the named container's).
    async fn fetch_resource(&self, resource: &str, container: Option<&str>) -> Fetched {
        let Some(rules) = &self.resource_rules else {
            return Err(
                "not fetched: resource metrics come from metrics.k8s.io (metrics-server), \
                 and the rule file has no resourceRules; pass the value with --values"
                    .into(),
            );
        };
        let rule = match resource {
            "cpu" => &rules.cpu,
            "memory" => &rules.memory,
            other => {
                return Err(format!(
                    "resourceRules serve cpu and memory only, not {other}"
                ))
            }
        };
        let names = self.target.pod_names();
        if names.is_empty() {
            return Err(format!(
                "no metrics returned from resource metrics API (no pods of {} {})",
                self.target.reference.kind, self.target.reference.name
            ));
        }
        let ns = &self.target.namespace;
        let q = rule
            .render_container_query(ns, &names)
            .map_err(|e| format!("rendering {}: {e}", rule.path()))?;
        let pod_label = rule
            .resources()
            .label_for_resource(&GroupResource::new("", "pods"))
            .unwrap_or_else(|| "pod".into());
        let container_label = rule.container_label();
        let samples = match self.backend.query(&q, super::backend::now_ms()).await {
            Ok(QueryValue::Vector(v)) => v,
            Ok(other) => return Err(format!("{q} returned a {}", other.type_name())),
            Err(e) => {
                return Err(format!(
                    "unable to fetch metrics from resource metrics API: {e}"
                ))
            }
        };
        // pod -> container -> (usage in milli-units, timestamp), as PodMetrics lists them.
        let mut per_pod: BTreeMap<String, BTreeMap<String, (i64, i64)>> = BTreeMap::new();
        for s in &samples {
            let (Some(pod), Some(c)) = (s.labels.get(&pod_label), s.labels.get(container_label))
            else {
                continue;
            };
            // Two series for one container (a query that does not aggregate) add up.
            let entry = per_pod
                .entry(pod.to_string())
                .or_default()
                .entry(c.to_string())
                .or_insert((0, s.timestamp_ms));
            entry.0 = entry.0.saturating_add(usage_milli(s.value));
            entry.1 = entry.1.min(s.timestamp_ms);
        }
        if per_pod.is_empty() {
            return Err(format!(
                "no metrics returned from resource metrics API (query: {q})"
            ));
        }
        let window_ms = rules.window_ms.unwrap_or(DEFAULT_RESOURCE_WINDOW_MS);
        let mut out = BTreeMap::new();
        for (pod, containers) in per_pod {
            let sample = match container {
                Some(c) => match containers.get(c) {
                    Some(sample) => *sample,
                    None => {
                        return Err(format!(
                            "failed to get container metrics: container {c} not present in metrics for pod {ns}/{pod}"
                        ))
                    }
                },
                // The pod's usage is the sum over its containers, stamped with the earliest.
                None => containers
                    .values()
                    .fold((0i64, i64::MAX), |(m, t), (v, ts)| {
                        (m.saturating_add(*v), t.min(*ts))
                    }),
            };
            out.insert(
                pod,
                PodSample {
                    milli: sample.0,
                    timestamp_ms: sample.1,
                    window_ms,
                },
            );
        }
        Ok(Measured::PerPod(out))
    }
}
