//! Kubernetes objects as the controller reads them: a Pod's phase, readiness, start time,
//! deletion and container requests; a scale target's selector and replica counts (from the
//! `scale` subresource or from the workload object itself).

use std::collections::BTreeMap;

use promhpa_core::quantity::Quantity;
use promhpa_core::time::parse_rfc3339_ms;
use serde_json::Value;

use crate::calc::{ConditionStatus, Container, Pod, PodPhase};
use crate::spec::MetaLabelSelector;

/// A time long before any sample: a pod that has been ready "forever".
const LONG_AGO_MS: i64 = i64::MIN / 4;

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, p| cur.get(*p))?.as_str()
}

fn time_at(v: &Value, path: &[&str], what: &str, pod: &str) -> Result<Option<i64>, String> {
    match str_at(v, path) {
        None => Ok(None),
        Some(s) => parse_rfc3339_ms(s)
            .map(Some)
            .ok_or_else(|| format!("pod {pod}: {what} {s:?} is not an RFC 3339 time")),
    }
}

/// The `resources.requests` of `v` (a container, or a pod's spec); `what` names it in errors.
fn requests(v: &Value, what: &str) -> Result<BTreeMap<String, Quantity>, String> {
    quantities(
        v.get("resources").and_then(|r| r.get("requests")),
        what,
        "request",
    )
}

/// A resource list (`{cpu: 250m, memory: 128Mi}`), each value a quantity; `what` and
/// `kind` (`request`, `overhead`) name it in errors.
fn quantities(
    list: Option<&Value>,
    what: &str,
    kind: &str,
) -> Result<BTreeMap<String, Quantity>, String> {
    let mut out = BTreeMap::new();
    for (resource, q) in list.and_then(Value::as_object).into_iter().flatten() {
        let text = match q {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(format!(
                    "{what}: {kind} for {resource} is {other}, not a quantity"
                ))
            }
        };
        let q: Quantity = text
            .parse()
            .map_err(|e| format!("{what}: {kind} for {resource} {text:?}: {e}"))?;
        out.insert(resource.clone(), q);
    }
    Ok(out)
}

fn container(v: &Value, pod: &str) -> Result<Container, String> {
    let name = str_at(v, &["name"]).unwrap_or_default().to_string();
    let requests = requests(v, &format!("pod {pod}: container {name}"))?;
    Ok(Container { name, requests })
}

/// Pod-level resources Kubernetes supports (`IsSupportedPodLevelResource`).
fn pod_level_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory") || name.starts_with("hugepages-")
}

fn add_into(
    sum: &mut BTreeMap<String, Quantity>,
    more: &BTreeMap<String, Quantity>,
    pod: &str,
) -> Result<(), String> {
    for (resource, q) in more {
        let total = match sum.get(resource) {
            Some(have) => have.checked_add(q).ok_or_else(|| {
                format!(
                    "pod {pod}: the requests for {resource} add up beyond what a quantity holds"
                )
            })?,
            None => *q,
        };
        sum.insert(resource.clone(), total);
    }
    Ok(())
}

fn max_into(max: &mut BTreeMap<String, Quantity>, other: &BTreeMap<String, Quantity>) {
    for (resource, q) in other {
        if max.get(resource).is_none_or(|have| q > have) {
            max.insert(resource.clone(), *q);
        }
    }
}

/// Kubernetes' `PodRequests` for a pod that sets pod-level requests for a supported
/// resource (`IsPodLevelRequestsSet`), empty for one that does not: its containers'
/// requests summed, init containers taken as a maximum (sidecars, `restartPolicy: Always`,
/// added to both), the pod-level requests in their place, and `overhead` added.
fn pod_level_requests(spec: &Value, pod: &str) -> Result<BTreeMap<String, Quantity>, String> {
    let pod_level = requests(spec, &format!("pod {pod}"))?;
    if !pod_level.keys().any(|r| pod_level_resource(r)) {
        return Ok(BTreeMap::new());
    }
    let list = |field: &str| {
        spec.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let mut sum = BTreeMap::new();
    for c in list("containers") {
        add_into(&mut sum, &container(c, pod)?.requests, pod)?;
    }
    let mut sidecars = BTreeMap::new();
    let mut init_max = BTreeMap::new();
    for c in list("initContainers") {
        let reqs = container(c, pod)?.requests;
        let in_use = if str_at(c, &["restartPolicy"]) == Some("Always") {
            add_into(&mut sum, &reqs, pod)?;
            add_into(&mut sidecars, &reqs, pod)?;
            sidecars.clone()
        } else {
            let mut with_sidecars = reqs;
            add_into(&mut with_sidecars, &sidecars, pod)?;
            with_sidecars
        };
        max_into(&mut init_max, &in_use);
    }
    max_into(&mut sum, &init_max);
    for (resource, q) in pod_level {
        if pod_level_resource(&resource) {
            sum.insert(resource, q);
        }
    }
    let overhead = quantities(spec.get("overhead"), &format!("pod {pod}"), "overhead")?;
    add_into(&mut sum, &overhead, pod)?;
    Ok(sum)
}

/// Whether `v` (a pod as the API returns it, or as written in an object file) has a
/// `status`. Hand-written pods usually do not; [`pod_from_object`] takes those as Running
/// and Ready since long ago.
pub fn has_status(v: &Value) -> bool {
    v.get("status").is_some_and(|s| !s.is_null())
}

/// The controller's view of a Pod object: phase, Ready condition (status and last
/// transition), start time, deletion, and the requests of its regular containers and of its
/// restartable (sidecar) init containers.
pub fn pod_from_object(v: &Value) -> Result<Pod, String> {
    let name = str_at(v, &["metadata", "name"])
        .filter(|n| !n.is_empty())
        .ok_or("a pod without metadata.name")?
        .to_string();
    let deleting = v
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null());
    let mut containers = Vec::new();
    let spec = v.get("spec");
    for c in spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        containers.push(container(c, &name)?);
    }
    for c in spec
        .and_then(|s| s.get("initContainers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| str_at(c, &["restartPolicy"]) == Some("Always"))
    {
        containers.push(container(c, &name)?);
    }
    let pod_requests = match spec {
        Some(spec) => pod_level_requests(spec, &name)?,
        None => BTreeMap::new(),
    };
    if !has_status(v) {
        return Ok(Pod {
            name,
            phase: PodPhase::Running,
            ready: Some(ConditionStatus::True),
            ready_since_ms: LONG_AGO_MS,
            start_time_ms: Some(LONG_AGO_MS),
            deleting,
            containers,
            pod_requests,
        });
    }
    let phase = PodPhase::of_status(v.get("status"));
    let ready_cond = v
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, &["type"]) == Some("Ready")));
    let (ready, ready_since_ms) = match ready_cond {
        None => (None, LONG_AGO_MS),
        Some(c) => (
            Some(match str_at(c, &["status"]) {
                Some("True") => ConditionStatus::True,
                Some("False") => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            }),
            time_at(
                c,
                &["lastTransitionTime"],
                "Ready lastTransitionTime",
                &name,
            )?
            .unwrap_or(LONG_AGO_MS),
        ),
    };
    let start_time_ms = time_at(v, &["status", "startTime"], "status.startTime", &name)?;
    Ok(Pod {
        name,
        phase,
        ready,
        ready_since_ms,
        start_time_ms,
        deleting,
        containers,
        pod_requests,
    })
}

/// What the controller reads from a scale target through its `scale` subresource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScaleInfo {
    /// The pod selector in query-string form; `None` when the target has none, which the
    /// controller reports as `InvalidSelector`.
    pub selector: Option<String>,
    /// `spec.replicas`: what the controller calls the current replica count; `None` when a
    /// workload object in a file does not give it.
    pub spec_replicas: Option<i32>,
    /// `status.replicas`.
    pub status_replicas: Option<i32>,
}

fn int_at(v: &Value, path: &[&str]) -> Option<i32> {
    path.iter()
        .try_fold(v, |cur, p| cur.get(*p))?
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
}

/// An `autoscaling/v1` `Scale` (the `scale` subresource): `status.selector` is already in
/// query-string form.
pub fn scale_from_subresource(v: &Value) -> Result<ScaleInfo, String> {
    if str_at(v, &["kind"]).is_some_and(|k| k != "Scale") {
        return Err(format!(
            "expected a Scale object, got kind {}",
            str_at(v, &["kind"]).unwrap_or_default()
        ));
    }
    Ok(ScaleInfo {
        selector: str_at(v, &["status", "selector"])
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        spec_replicas: Some(int_at(v, &["spec", "replicas"]).unwrap_or(0)),
        status_replicas: Some(int_at(v, &["status", "replicas"]).unwrap_or(0)),
    })
}

/// A workload object (Deployment, StatefulSet, ReplicaSet, or a custom resource of the same
/// shape) as its `scale` subresource would present it: `spec.selector` as a label selector
/// (or a plain map, as ReplicationControllers have) and `spec.replicas`.
pub fn scale_from_workload(v: &Value) -> Result<ScaleInfo, String> {
    let selector = match v.get("spec").and_then(|s| s.get("selector")) {
        None | Some(Value::Null) => None,
        Some(sel) => {
            let is_label_selector =
                sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some();
            let parsed: MetaLabelSelector = if is_label_selector {
                serde_json::from_value(sel.clone()).map_err(|e| format!("spec.selector: {e}"))?
            } else {
                MetaLabelSelector {
                    match_labels: serde_json::from_value(sel.clone())
                        .map_err(|e| format!("spec.selector: {e}"))?,
                    match_expressions: Vec::new(),
                }
            };
            Some(parsed.to_string()).filter(|s| !s.is_empty())
        }
    };
    Ok(ScaleInfo {
        selector,
        spec_replicas: int_at(v, &["spec", "replicas"]),
        // The API leaves out `status.replicas` when it is 0.
        status_replicas: has_status(v).then(|| int_at(v, &["status", "replicas"]).unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// With pod-level requests the controller takes Kubernetes' `PodRequests`: the
    /// containers aggregated (init containers as a maximum), the pod-level values in their
    /// place, overhead added; a container without the request is then no error.
    #[test]
    fn pod_level_requests_are_what_podrequests_gives() {
        let pod = |spec: Value| {
            pod_from_object(&json!({"metadata": {"name": "web-0"}, "spec": spec}))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let mi = 1024 * 1024 * 1000;
        let a = pod(json!({
            "resources": {"requests": {"cpu": "1"}},
            "containers": [
                {"name": "a", "resources": {"requests": {"memory": "100Mi"}}},
                {"name": "b"}
            ]
        }));
        assert_eq!(a.request_milli("memory", None), Ok(100 * mi));
        assert_eq!(a.request_milli("cpu", None), Ok(1000));
        assert_eq!(
            a.request_milli("memory", Some("b")),
            Err("missing request for memory in container b of Pod web-0".into())
        );
        assert_eq!(
            a.request_milli("cpu", Some("c")),
            Err("container c not found in Pod web-0".into())
        );
        assert_eq!(
            a.request_milli("ephemeral-storage", None),
            Err("missing pod-level request for ephemeral-storage in Pod web-0".into())
        );
        let b = pod(json!({
            "resources": {"requests": {"cpu": "1"}},
            "overhead": {"cpu": "250m"},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "300m"}}}]
        }));
        assert_eq!(b.request_milli("cpu", None), Ok(1250));
        assert_eq!(b.request_milli("cpu", Some("a")), Ok(300));
        let c = pod(json!({
            "resources": {"requests": {"cpu": "1"}},
            "initContainers": [
                {"name": "log", "restartPolicy": "Always", "resources": {"requests": {"memory": "50Mi"}}},
                {"name": "setup", "resources": {"requests": {"memory": "300Mi"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"memory": "100Mi"}}}]
        }));
        // max(100Mi + 50Mi, 300Mi + 50Mi)
        assert_eq!(c.request_milli("memory", None), Ok(350 * mi));
        // Without pod-level requests: every container's, summed, sidecars included.
        let d = pod(json!({
            "initContainers": [
                {"name": "log", "restartPolicy": "Always", "resources": {"requests": {"memory": "50Mi"}}},
                {"name": "setup", "resources": {"requests": {"memory": "300Mi"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"memory": "100Mi"}}}]
        }));
        assert!(d.pod_requests.is_empty());
        assert_eq!(d.request_milli("memory", None), Ok(150 * mi));
    }

    #[test]
    fn a_running_ready_pod_with_requests() {
        let p = pod_from_object(&json!({
            "metadata": {"name": "web-1"},
            "spec": {
                "resources": {"requests": {"cpu": "1"}},
                "containers": [
                    {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
                    {"name": "proxy", "resources": {"requests": {"cpu": 0.1}}}
                ],
                "initContainers": [
                    {"name": "setup", "resources": {"requests": {"cpu": "2"}}},
                    {"name": "log", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
                ]
            },
            "status": {
                "phase": "Running",
                "startTime": "2026-01-01T00:00:00Z",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}
                ]
            }
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, "web-1");
        assert_eq!(p.phase, PodPhase::Running);
        assert_eq!(p.ready, Some(ConditionStatus::True));
        assert_eq!(p.start_time_ms, Some(1_767_225_600_000));
        assert_eq!(p.ready_since_ms, 1_767_225_610_000);
        let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["app", "proxy", "log"],
            "plain init containers are not counted"
        );
        assert_eq!(p.containers[0].requests["cpu"].milli_value(), 250);
        assert_eq!(p.containers[1].requests["cpu"].milli_value(), 100);
        assert!(!p.containers[1].requests.contains_key("memory"));
        assert_eq!(p.pod_requests["cpu"].milli_value(), 1000);
    }

    #[test]
    fn pending_failed_deleting_and_unready_pods() {
        let pending = pod_from_object(&json!({
            "metadata": {"name": "a"}, "status": {"phase": "Pending"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending.phase, PodPhase::Pending);
        assert_eq!(pending.ready, None);
        assert_eq!(pending.start_time_ms, None);
        let deleting = pod_from_object(&json!({
            "metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(deleting.deleting);
        let unready = pod_from_object(&json!({
            "metadata": {"name": "c"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unready.ready, Some(ConditionStatus::False));
        let unknown = pod_from_object(&json!({
            "metadata": {"name": "e"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "Unknown"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown.ready, Some(ConditionStatus::Unknown));
        let failed =
            pod_from_object(&json!({"metadata": {"name": "d"}, "status": {"phase": "Failed"}}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(failed.phase, PodPhase::Failed);
    }

    #[test]
    fn a_pod_without_status_is_taken_as_running_and_ready() {
        let p = pod_from_object(&json!({"metadata": {"name": "x"}, "spec": {"containers": []}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.phase, PodPhase::Running);
        assert_eq!(p.ready, Some(ConditionStatus::True));
        assert!(p.start_time_ms.is_some());
    }

    #[test]
    fn bad_pods_are_errors_that_name_them() {
        assert!(pod_from_object(&json!({"metadata": {}})).is_err());
        let e = pod_from_object(&json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "lots"}}}]}
        }))
        .err()
        .unwrap_or_default();
        assert!(
            e.contains("web-1") && e.contains("app") && e.contains("lots"),
            "{e}"
        );
        let e = pod_from_object(&json!({
            "metadata": {"name": "web-2"},
            "status": {"phase": "Running", "startTime": "yesterday"}
        }))
        .err()
        .unwrap_or_default();
        assert!(e.contains("web-2") && e.contains("startTime"), "{e}");
    }

    #[test]
    fn scale_subresource_and_workloads() {
        let s = scale_from_subresource(&json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "spec": {"replicas": 4},
            "status": {"replicas": 3, "selector": "app=web,tier in (a,b)"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.selector.as_deref(), Some("app=web,tier in (a,b)"));
        assert_eq!((s.spec_replicas, s.status_replicas), (Some(4), Some(3)));
        assert!(scale_from_subresource(&json!({"kind": "Status"})).is_err());

        let d = scale_from_workload(&json!({
            "kind": "Deployment",
            "spec": {"selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.selector.as_deref(), Some("app=web,tier notin (x)"));
        assert_eq!(d.spec_replicas, None);
        let rc = scale_from_workload(&json!({
            "kind": "ReplicationController",
            "spec": {"replicas": 2, "selector": {"app": "old"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rc.selector.as_deref(), Some("app=old"));
        assert_eq!(rc.spec_replicas, Some(2));
        let none = scale_from_workload(&json!({"kind": "Deployment", "spec": {}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.selector, None);
    }
}
