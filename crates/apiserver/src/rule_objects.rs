//! Serving `MetricRule` objects: whenever the set of objects changes (or discovery may have
//! found new series for them), compile them, hand the valid ones to the registry, and write
//! each object's status — `Ready` with the metrics it serves, or why it is not.
//!
//! The Kubernetes side (listing and watching the objects, writing status) is behind
//! [`StatusWriter`] and a stream of object lists, so that this logic is tested without a
//! cluster.

use promhpa_core::time::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use promhpa_core::backend::BoxFuture;
use promhpa_rules::objects::{parse_metric_rules, MetricRuleObject};
use serde_json::{json, Value};

use crate::registry::{ObjectReport, Registry};
use crate::types::rfc3339;

/// Why a status could not be written (the API server's answer, or none in time).
pub type StatusWriteError = Box<dyn std::error::Error + Send + Sync>;

/// Writes the `status` of one object (a merge patch of the status subresource).
pub trait StatusWriter: Send + Sync {
    fn write_status<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        status: &'a Value,
    ) -> BoxFuture<'a, Result<(), StatusWriteError>>;
}

/// The status an object should have now. `ready_since` is kept from the previous status when
/// readiness did not change (as Kubernetes conditions keep `lastTransitionTime`).
pub fn status_for(
    object: &MetricRuleObject,
    report: Option<&ObjectReport>,
    previous: Option<&Value>,
    now_ms: i64,
) -> Value {
    let (ready, reason, message, metrics) = match &object.rule {
        Err(errors) => {
            let why: Vec<String> = errors
                .iter()
                .map(|e| {
                    if e.path.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.path, e.message)
                    }
                })
                .collect();
            (false, "Invalid", why.join("; "), Vec::new())
        }
        Ok(_) => {
            let report = report.cloned().unwrap_or_default();
            let mut message = if report.metrics.is_empty() {
                format!(
                    "valid; no series found yet in namespace {} for its seriesQuery",
                    object.namespace
                )
            } else {
                format!(
                    "serving {} in namespace {}",
                    report.metrics.join(", "),
                    object.namespace
                )
            };
            if !report.shadowed.is_empty() {
                message.push_str(&format!(
                    "; not serving {} (the rule file, or a MetricRule of this namespace whose name sorts first, serves it)",
                    report.shadowed.join(", ")
                ));
            }
            let reason = if report.metrics.is_empty() {
                "NoSeries"
            } else {
                "Serving"
            };
            (true, reason, message, report.metrics)
        }
    };
    let status = if ready { "True" } else { "False" };
    let previous_condition = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    let transition = match previous_condition {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => Value::String(rfc3339(now_ms)),
    };
    let mut condition = json!({
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    let mut out = json!({
        "metricNames": metrics.join(","),
        "metrics": metrics,
        "conditions": [],
    });
    if let Some(g) = object.generation {
        condition["observedGeneration"] = json!(g);
        out["observedGeneration"] = json!(g);
    }
    out["conditions"] = json!([condition]);
    out
}

/// Keeps the registry and the objects' status in step with the objects.
pub struct RuleObjects {
    registry: Arc<Registry>,
    writer: Arc<dyn StatusWriter>,
    objects: Vec<MetricRuleObject>,
    /// The status last written (or read) per `namespace/name`.
    written: BTreeMap<String, Value>,
}

impl RuleObjects {
    pub fn new(registry: Arc<Registry>, writer: Arc<dyn StatusWriter>) -> RuleObjects {
        RuleObjects {
            registry,
            writer,
            objects: Vec::new(),
            written: BTreeMap::new(),
        }
    }

    /// The objects changed: `items` is every MetricRule now (as the API returns them, with
    /// their current `status`). Invalid objects are reported in their status and never
    /// reach the registry.
    pub async fn update(&mut self, items: &[Value]) {
        let mut objects = Vec::new();
        let mut current: BTreeMap<String, Value> = BTreeMap::new();
        for item in items {
            let text = item.to_string();
            match parse_metric_rules(&text, "MetricRule") {
                Ok(mut o) => {
                    for obj in &o {
                        if let Some(status) = item.get("status") {
                            current.insert(obj.key(), status.clone());
                        }
                    }
                    objects.append(&mut o);
                }
                Err(e) => tracing::warn!(error = %e, "a MetricRule could not be read"),
            }
        }
        for (key, status) in current {
            self.written.entry(key).or_insert(status);
        }
        self.registry.set_objects(&objects).await;
        let keys: Vec<String> = objects.iter().map(MetricRuleObject::key).collect();
        self.written.retain(|k, _| keys.contains(k));
        self.objects = objects;
        self.write_statuses().await;
    }

    /// Write every object's status that differs from what it has.
    pub async fn write_statuses(&mut self) {
        let reports = self.registry.object_reports();
        let now = now_ms();
        for object in &self.objects {
            let key = object.key();
            let previous = self.written.get(&key);
            let status = status_for(object, reports.get(&key), previous, now);
            if previous == Some(&status) {
                continue;
            }
            match self
                .writer
                .write_status(&object.namespace, &object.name, &status)
                .await
            {
                Ok(()) => {
                    self.written.insert(key, status);
                }
                Err(e) => {
                    tracing::warn!(object = %key, error = %e, "writing MetricRule status failed; retried at the next refresh")
                }
            }
        }
    }

    /// Follow `lists` (each item: every MetricRule at that moment) and refresh the status
    /// every `refresh` (discovery may find an object's series later), forever.
    pub async fn run(
        mut self,
        mut lists: tokio::sync::mpsc::Receiver<Vec<Value>>,
        refresh: Duration,
    ) {
        let mut tick = tokio::time::interval(refresh.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                list = lists.recv() => match list {
                    Some(items) => self.update(&items).await,
                    None => return,
                },
                _ = tick.tick() => self.write_statuses().await,
            }
        }
    }
}
