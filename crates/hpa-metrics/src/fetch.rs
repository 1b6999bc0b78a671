//! Fetching an HPA's metrics the way the HPA controller does: through promhpa's own custom
//! and external metrics API (the router `serve` runs, called in-process), so rule
//! rendering, object lookup and the errors are exactly what the controller would get.
//! Resource metrics come from the same server's metrics.k8s.io, served from the rule file's
//! `resourceRules`.
//!
//! Per-pod metrics are returned per pod, for the pods of the scale target
//! ([`promhpa_hpa::target::ScaleTarget`]), so the controller's pod classification applies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use promhpa_apiserver::backends::Backends;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::objects::plural;
use promhpa_apiserver::{AppState, Registry};
use promhpa_core::duration::parse_go_duration_ms;
use promhpa_core::lookup::ObjectLookup;
use promhpa_core::quantity::Quantity;
use promhpa_core::time::now_ms;
use promhpa_hpa::calc::PodSample;
use promhpa_hpa::explain::Measured;
use promhpa_hpa::spec::{MetaLabelSelector, MetricSpec};
use promhpa_hpa::target::{PodScope, ScaleTarget};
use promhpa_rules::RuleSet;
use serde::Deserialize;
use tower::ServiceExt;

/// What one metric fetch gives: per-pod samples or one value, or the error the HPA would
/// report.
pub type Fetched = Result<Measured, String>;

/// The window the controller assumes for custom metrics without one.
const CUSTOM_METRIC_WINDOW_MS: i64 = 60_000;

/// The in-process metrics API plus what is needed to ask it for one HPA's metrics.
pub struct HpaFetcher {
    router: axum::Router,
    target: ScaleTarget,
    /// Whether the rule file has `resourceRules`, so metrics.k8s.io is served.
    resource_metrics: bool,
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
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetricsItem>,
}

#[derive(Deserialize)]
struct PodMetricsItem {
    metadata: Described,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    window: String,
    #[serde(default)]
    containers: Vec<PodContainerMetrics>,
}

#[derive(Deserialize)]
struct PodContainerMetrics {
    #[serde(default)]
    name: String,
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct StatusBody {
    #[serde(default)]
    message: String,
}

/// Percent-encodes a path segment or query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
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
    /// The metrics API `serve` would run for `rules`, asking `backends` and finding objects
    /// with `lookup`, with discovery run once; and what discovery could not do. Must run
    /// inside a tokio runtime.
    pub async fn new(
        rules: RuleSet,
        backends: Backends,
        lookup: Arc<dyn ObjectLookup>,
        target: ScaleTarget,
        max_age: Duration,
    ) -> (HpaFetcher, Vec<String>) {
        let resource_metrics = rules.resource.is_some();
        let metrics = Arc::new(SelfMetrics::default());
        let registry = Arc::new(Registry::new(
            Arc::new(rules),
            backends,
            lookup.clone(),
            metrics.clone(),
            max_age,
        ));
        let discovery_errors = registry.relist().await;
        let router = promhpa_apiserver::router(AppState::new(registry, lookup, metrics));
        let fetcher = HpaFetcher {
            router,
            target,
            resource_metrics,
        };
        (fetcher, discovery_errors)
    }

    /// The scale target and its pods.
    pub fn target(&self) -> &ScaleTarget {
        &self.target
    }

    async fn get(&self, path: &str) -> Result<Vec<ValueItem>, String> {
        self.get_json::<ValueList>(path).await.map(|l| l.items)
    }

    /// `GET path` on the in-process API; the `Status` message when it is not 200.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
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
        serde_json::from_slice::<T>(&body)
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
                let now = now_ms();
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

    /// A resource metric as the HPA reads it: the scale target's pods from metrics.k8s.io
    /// (the in-process API `serve` runs, from the rule file's `resourceRules`); a pod's usage
    /// is the sum over its containers, or the named container's.
    async fn fetch_resource(&self, resource: &str, container: Option<&str>) -> Fetched {
        if !self.resource_metrics {
            return Err(
                "not fetched: resource metrics come from metrics.k8s.io (metrics-server), \
                 and the rule file has no resourceRules; pass the value with --metric-values"
                    .into(),
            );
        }
        if resource != "cpu" && resource != "memory" {
            return Err(format!(
                "not fetched: resourceRules serve cpu and memory, not {resource}; pass the value with --metric-values"
            ));
        }
        if self.target.pods.is_empty() {
            return Err(format!(
                "no metrics returned from resource metrics API (no pods of {} {})",
                self.target.reference.kind, self.target.reference.name
            ));
        }
        let ns = &self.target.namespace;
        let label = match &self.target.scope {
            PodScope::Selector(s) => Some(format!("labelSelector={}", encode(s))),
            PodScope::NamePrefix(_) => None,
        };
        let path = with_params(
            format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                encode(ns)
            ),
            &[label],
        );
        let list: PodMetricsList = self
            .get_json(&path)
            .await
            .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"))?;
        let mut out = BTreeMap::new();
        for item in &list.items {
            let pod = item.metadata.name.as_str();
            if !self.target.pods.iter().any(|p| p.name == pod) {
                continue;
            }
            let usage_of = |c: &PodContainerMetrics| -> Result<Option<i64>, String> {
                c.usage
                    .get(resource)
                    .map(|q| {
                        q.parse::<Quantity>()
                            .map(|q| q.milli_value())
                            .map_err(|e| format!("usage {q:?} of pod {pod}: {e}"))
                    })
                    .transpose()
            };
            let milli = match container {
                Some(name) => {
                    let Some(c) = item.containers.iter().find(|c| c.name == name) else {
                        return Err(format!(
                            "failed to get container metrics: container {name} not present in metrics for pod {ns}/{pod}"
                        ));
                    };
                    usage_of(c)?
                }
                // A pod some container of which lacks the resource has no sample.
                None if item.containers.is_empty() => None,
                None => {
                    let mut sum: Option<i64> = Some(0);
                    for c in &item.containers {
                        sum = match (sum, usage_of(c)?) {
                            (Some(s), Some(v)) => Some(s.saturating_add(v)),
                            _ => None,
                        };
                    }
                    sum
                }
            };
            let Some(milli) = milli else { continue };
            out.insert(
                pod.to_string(),
                PodSample {
                    milli,
                    timestamp_ms: promhpa_core::time::parse_rfc3339_ms(&item.timestamp)
                        .unwrap_or_else(now_ms),
                    window_ms: parse_go_duration_ms(&item.window).unwrap_or(0),
                },
            );
        }
        if list.items.is_empty() {
            return Err("no metrics returned from resource metrics API".into());
        }
        if out.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        Ok(Measured::PerPod(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promhpa_apiserver::StaticObjects;
    use promhpa_core::backend::Backend;
    use promhpa_promql_eval::{EmbeddedBackend, Labels};

    const RULES: &str = r#"
rules:
- seriesQuery: 'queue_length{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

    const OBJECTS: &str = r#"
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec: {replicas: 2, selector: {matchLabels: {app: web}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-2, namespace: shop, labels: {app: web}}
- apiVersion: v1
  kind: Pod
  metadata: {name: other-1, namespace: shop, labels: {app: other}}
"#;

    const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
  - type: Pods
    pods:
      metric: {name: queue_length}
      target: {type: AverageValue, averageValue: "10"}
  - type: External
    external:
      metric: {name: nothing_serves_this}
      target: {type: Value, value: "1"}
"#;

    async fn fetcher() -> HpaFetcher {
        let backend = Arc::new(EmbeddedBackend::default());
        let now = now_ms();
        let exposition = "queue_length{namespace=\"shop\",pod=\"web-1\"} 5\n\
                          queue_length{namespace=\"shop\",pod=\"web-2\"} 7\n\
                          queue_length{namespace=\"shop\",pod=\"other-1\"} 100\n";
        backend
            .ingest_exposition(exposition, now - 1000, &Labels::empty())
            .expect("exposition");
        let backend: Arc<dyn Backend> = backend;
        let rules = RuleSet::from_yaml(RULES, "rules.yaml").expect("rules");
        let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects.yaml").expect("objects"));
        let hpa = promhpa_hpa::spec::parse_manifest(HPA).expect("hpa");
        let target = ScaleTarget::from_objects(OBJECTS, "objects.yaml", &hpa).expect("target");
        let (fetcher, discovery_errors) = HpaFetcher::new(
            rules,
            Backends::from(backend),
            lookup,
            target,
            Duration::from_secs(600),
        )
        .await;
        assert!(discovery_errors.is_empty(), "{discovery_errors:?}");
        fetcher
    }

    #[tokio::test]
    async fn a_pods_metric_is_fetched_per_pod_of_the_scale_target() {
        let fetcher = fetcher().await;
        let hpa = promhpa_hpa::spec::parse_manifest(HPA).expect("hpa");
        let metrics = hpa.spec.effective_metrics();
        let Ok(Measured::PerPod(samples)) = fetcher.fetch(&metrics[0]).await else {
            panic!("per-pod samples expected");
        };
        let milli: Vec<(&str, i64)> = samples
            .iter()
            .map(|(pod, s)| (pod.as_str(), s.milli))
            .collect();
        assert_eq!(milli, vec![("web-1", 5000), ("web-2", 7000)]);
        assert_eq!(fetcher.target().pod_names(), vec!["web-1", "web-2"]);
    }

    #[tokio::test]
    async fn a_metric_no_rule_serves_is_the_error_the_hpa_would_report() {
        let fetcher = fetcher().await;
        let hpa = promhpa_hpa::spec::parse_manifest(HPA).expect("hpa");
        let metrics = hpa.spec.effective_metrics();
        let Err(message) = fetcher.fetch(&metrics[1]).await else {
            panic!("an error expected");
        };
        assert!(
            message.starts_with(
                "unable to fetch metrics from external metrics API: the server returned 404"
            ),
            "{message}"
        );
    }
}
