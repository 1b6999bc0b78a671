//! Golden outputs of `explain` for the HPAs of shared/seeds. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p promhpa-hpa --test explain` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use promhpa_hpa::explain::{explain_with, render_text, value_key, Explanation};
use promhpa_hpa::spec::parse_manifest;
use promhpa_hpa::{ControllerConfig, HorizontalPodAutoscaler};

fn seed(prefix: &str) -> String {
    let dir = promhpa_test_support::shared_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join("seeds");
    let entry = std::fs::read_dir(&dir)
        .expect("seeds dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no seed {prefix} in {}", dir.display()));
    std::fs::read_to_string(entry).expect("read seed")
}

/// The first fenced YAML block of a seed that holds an HPA.
fn seed_hpa(prefix: &str) -> HorizontalPodAutoscaler {
    let text = seed(prefix);
    let block = text
        .split("```")
        .find(|b| b.contains("kind: HorizontalPodAutoscaler"))
        .unwrap_or_else(|| panic!("seed {prefix} has no HPA manifest"));
    let yaml = block.strip_prefix("yaml").unwrap_or(block);
    parse_manifest(yaml).unwrap_or_else(|e| panic!("seed {prefix}: {e}"))
}

fn run(hpa: HorizontalPodAutoscaler, replicas: i32, values: &[(&str, f64)]) -> Explanation {
    let values: BTreeMap<String, f64> = values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    explain_with(hpa, replicas, ControllerConfig::default(), 0, |m| {
        let k = value_key(m);
        values
            .get(&k)
            .copied()
            .ok_or_else(|| format!("the server could not find the metric {k} for pods"))
    })
}

fn golden(name: &str, e: &Explanation) -> String {
    let text = render_text(e);
    let json = serde_json::to_string_pretty(e).expect("json") + "\n";
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    for (ext, got) in [("txt", &text), ("json", &json)] {
        let path = dir.join(format!("{name}.{ext}"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).expect("write golden");
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(got, &want, "{} differs", path.display());
    }
    text
}

#[test]
fn external_average_value_from_seed_000() {
    let e = run(seed_hpa("000"), 1, &[("inferno_desired_replicas", 3.0)]);
    let text = golden("000-external-average", &e);
    assert_eq!(e.desired_replicas, 3);
    assert!(text.contains("\"inferno_desired_replicas\" (target average value):  3 / 1"));
}

#[test]
fn pods_metric_capped_by_max_replicas_from_seed_003() {
    let e = run(seed_hpa("003"), 12, &[("requests_per_second", 10.0)]);
    let text = golden("003-capped-by-max", &e);
    assert_eq!(e.combined_recommendation, Some(24));
    assert_eq!(e.desired_replicas, 20);
    assert!(text.contains("ScalingLimited  True    TooManyReplicas"));
}

#[test]
fn cpu_scale_up_rate_limit_from_seed_002() {
    // Seed 002 creates its HPA with `kubectl autoscale deployment php-apache --cpu-percent=50
    // --min=1 --max=10`; this is the object that command creates.
    assert!(seed("002")
        .contains("kubectl autoscale deployment php-apache --cpu-percent=50 --min=1 --max=10"));
    let hpa = parse_manifest(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: php-apache, namespace: default}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: php-apache}\n  minReplicas: 1\n  maxReplicas: 10\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n",
    )
    .expect("manifest");
    let e = run(hpa, 1, &[("cpu", 250.0)]);
    let text = golden("002-scale-up-limit", &e);
    assert_eq!(e.desired_replicas, 4);
    assert!(text.contains("resource cpu on pods  (as a percentage of request):  250% / 50%"));
    assert!(text.contains("ScaleUpLimit"));
}

fn slo_hpa() -> HorizontalPodAutoscaler {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inference-slo-hpa.yaml");
    parse_manifest(&std::fs::read_to_string(path).expect("fixture")).expect("manifest")
}

#[test]
fn unknown_metric_blocks_scale_down_seed_001() {
    let e = run(
        slo_hpa(),
        5,
        &[("http_requests_in_flight", 2.0), ("cpu", 40.0)],
    );
    let text = golden("001-unknown-metric", &e);
    assert!(text.contains("\"http_request_duration_p95\" on pods:  <unknown> / 350m"));
    assert_eq!(
        e.desired_replicas, 5,
        "scale-down is blocked while a metric is invalid"
    );
    let active = e
        .conditions
        .iter()
        .find(|c| c.kind == "ScalingActive")
        .expect("ScalingActive");
    assert_eq!(
        (active.status.as_str(), active.reason.as_str()),
        ("False", "FailedGetPodsMetric")
    );
    assert!(text.contains("the HPA was unable to compute the replica count: "));
}

#[test]
fn latency_drives_a_rate_limited_scale_up_seed_001() {
    let e = run(
        slo_hpa(),
        4,
        &[
            ("http_request_duration_p95", 0.7),
            ("http_requests_in_flight", 12.0),
            ("cpu", 50.0),
        ],
    );
    golden("001-latency-scale-up", &e);
    assert_eq!(e.metrics[0].proposed_replicas, Some(8));
    assert_eq!(e.metrics[1].proposed_replicas, Some(5));
    assert_eq!(e.combined_recommendation, Some(8));
    // scaleUp policy: 2 pods per 30 s.
    assert_eq!(e.desired_replicas, 6);
}

#[test]
fn async_fetch_gives_the_same_explanation() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let fut = promhpa_hpa::explain::explain_with_async(
        seed_hpa("003"),
        12,
        ControllerConfig::default(),
        0,
        |m| async move {
            if value_key(&m) == "requests_per_second" {
                Ok(10.0)
            } else {
                Err("unexpected metric".to_string())
            }
        },
    );
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let e = loop {
        if let Poll::Ready(e) = fut.as_mut().poll(&mut cx) {
            break e;
        }
    };
    assert_eq!(
        e,
        run(seed_hpa("003"), 12, &[("requests_per_second", 10.0)])
    );
}

/// Pods as the API returns them, each requesting `request` milli-CPU in one container.
fn api_pod(name: &str, phase: &str, request: i64) -> promhpa_hpa::Pod {
    let v = serde_json::json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": format!("{request}m")}}}]},
        "status": {
            "phase": phase,
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:30Z"}]
        }
    });
    promhpa_hpa::objects::pod_from_object(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn cpu_hpa(target: i32) -> HorizontalPodAutoscaler {
    parse_manifest(&format!(
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: shop}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: {target}}}}}
"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn explain_pods(
    target: i32,
    current: i32,
    pods: Vec<promhpa_hpa::Pod>,
    usage: &[(&str, i64)],
) -> Explanation {
    use promhpa_hpa::calc::PodSample;
    use promhpa_hpa::explain::{explain, ExplainInput, Measured};
    // 2026-01-01T01:00:00Z: an hour after the pods started.
    let now = 1_767_229_200_000;
    let samples = usage
        .iter()
        .map(|(n, m)| {
            (
                n.to_string(),
                PodSample {
                    milli: *m,
                    timestamp_ms: now - 10_000,
                    window_ms: 300_000,
                },
            )
        })
        .collect();
    explain(&ExplainInput {
        hpa: cpu_hpa(target),
        current_replicas: current,
        status_replicas: None,
        pods: Some(pods),
        values: vec![Ok(Measured::PerPod(samples))],
        config: ControllerConfig::default(),
        state: None,
        now_ms: now,
        selector_error: None,
    })
}

#[test]
fn real_pods_missing_metrics_on_scale_down() {
    // Reference vector K-R10: 400 and 95 of 1000m, two pods without samples, target 100%.
    let pods = ["a", "b", "c", "d"]
        .iter()
        .map(|n| api_pod(n, "Running", 1000))
        .collect();
    let e = explain_pods(100, 4, pods, &[("a", 400), ("b", 95)]);
    let m = &e.metrics[0];
    assert_eq!(m.current, "24%");
    assert_eq!(m.proposed_replicas, Some(3));
    let f = m.formula.clone().unwrap_or_default();
    assert!(
        f.contains("2 pods without metrics counted at max(100%, 100%) of their request"),
        "{f}"
    );
    let classes = m.pods.clone().unwrap_or_default();
    assert_eq!(classes.missing, ["c", "d"]);
    assert!(render_text(&e).contains("     without metrics: c, d\n"));
    assert_eq!(e.desired_replicas, 3);
}

#[test]
fn real_pods_failed_ones_are_ignored() {
    // Reference vector K-R06: 500 and 700 of 1000m, two Failed pods, target 30%.
    let pods = vec![
        api_pod("a", "Running", 1000),
        api_pod("b", "Running", 1000),
        api_pod("c", "Failed", 1000),
        api_pod("d", "Failed", 1000),
    ];
    let e = explain_pods(30, 2, pods, &[("a", 500), ("b", 700)]);
    let m = &e.metrics[0];
    assert_eq!(m.current, "60%");
    assert_eq!(m.proposed_replicas, Some(4));
    let f = m.formula.clone().unwrap_or_default();
    assert!(f.contains("2 failed or deleting pods ignored"), "{f}");
}

#[test]
fn real_pods_without_a_request_fail_the_metric() {
    let mut pod = api_pod("a", "Running", 1000);
    pod.containers[0].requests.clear();
    let e = explain_pods(50, 1, vec![pod], &[("a", 400)]);
    let m = &e.metrics[0];
    assert_eq!(m.current, "<unknown>");
    let err = m.error.clone().unwrap_or_default();
    assert!(
        err.contains("missing request for cpu in container app of Pod a"),
        "{err}"
    );
    assert_eq!(m.error_reason.as_deref(), Some("FailedGetResourceMetric"));
}

#[test]
fn an_ambiguous_selector_blocks_scaling() {
    use promhpa_hpa::explain::{explain, ExplainInput, Measured};
    let message =
        "pods by selector run=php-apache are controlled by multiple HPAs: [default/a default/b]";
    let e = explain(&ExplainInput {
        hpa: cpu_hpa(50),
        current_replicas: 2,
        status_replicas: None,
        pods: None,
        values: vec![Ok(Measured::Value(300.0))],
        config: ControllerConfig::default(),
        state: None,
        now_ms: 0,
        selector_error: Some(("AmbiguousSelector".into(), message.into())),
    });
    assert_eq!(e.desired_replicas, 2);
    let active = e
        .conditions
        .iter()
        .find(|c| c.kind == "ScalingActive")
        .unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        (active.status.as_str(), active.reason.as_str()),
        ("False", "AmbiguousSelector")
    );
    assert_eq!(active.message, message);
    assert!(e.decision.contains("AmbiguousSelector"), "{}", e.decision);
}

#[test]
fn a_given_utilization_is_of_the_pod_level_request_when_set() {
    use promhpa_hpa::explain::{explain, ExplainInput, Measured};
    let v = serde_json::json!({
        "metadata": {"name": "a"},
        "spec": {
            "resources": {"requests": {"cpu": "200m"}},
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "100m"}}}]
        }
    });
    let pod = promhpa_hpa::objects::pod_from_object(&v).unwrap_or_else(|e| panic!("{e}"));
    let e = explain(&ExplainInput {
        hpa: cpu_hpa(50),
        current_replicas: 1,
        status_replicas: None,
        pods: Some(vec![pod]),
        values: vec![Ok(Measured::Value(100.0))],
        config: ControllerConfig::default(),
        state: None,
        now_ms: 0,
        selector_error: None,
    });
    assert_eq!(e.metrics[0].current, "100%");
    assert_eq!(e.metrics[0].proposed_replicas, Some(2));
}

/// A queue worker scaled on an External metric, with minReplicas 0, optionally carrying the
/// `ScaledToZero` condition in its status as a cluster would return it.
fn queue_hpa(scaled_to_zero: Option<&str>) -> HorizontalPodAutoscaler {
    let status = scaled_to_zero
        .map(|s| {
            format!(
                "status:\n  conditions:\n  - {{type: ScaledToZero, status: \"{s}\", reason: ScaledToZero}}\n"
            )
        })
        .unwrap_or_default();
    parse_manifest(&format!(
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: worker, namespace: jobs}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: worker}}
  minReplicas: 0
  maxReplicas: 20
  metrics:
  - type: External
    external: {{metric: {{name: queue_depth}}, target: {{type: Value, value: 10}}}}
{status}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn explain_queue(hpa: HorizontalPodAutoscaler, replicas: i32, value: f64) -> Explanation {
    use promhpa_hpa::explain::{explain, ExplainInput, Measured};
    explain(&ExplainInput {
        hpa,
        current_replicas: replicas,
        status_replicas: None,
        pods: None,
        values: vec![Ok(Measured::Value(value))],
        config: ControllerConfig::default(),
        state: None,
        now_ms: 0,
        selector_error: None,
    })
}

fn condition<'a>(e: &'a Explanation, kind: &str) -> (&'a str, &'a str) {
    let c = e
        .conditions
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", e.conditions));
    (c.status.as_str(), c.reason.as_str())
}

#[test]
fn scaled_to_zero_by_the_controller_scales_back_up_from_its_status() {
    let e = explain_queue(queue_hpa(Some("True")), 0, 35.0);
    assert_eq!(e.desired_replicas, 4);
    assert_eq!(condition(&e, "ScaledToZero"), ("False", "NotScaledToZero"));
    let f = e.metrics[0].formula.clone().unwrap_or_default();
    assert!(f.contains("from zero replicas: ceil(3.500) = 4"), "{f}");
    let text = render_text(&e);
    assert!(text.contains("at zero with ScaledToZero True"), "{text}");
    assert!(text.contains("would scale from 0 to 4"), "{text}");
}

#[test]
fn a_manual_zero_disables_the_hpa() {
    let e = explain_queue(queue_hpa(None), 0, 500.0);
    assert_eq!(e.desired_replicas, 0);
    assert_eq!(condition(&e, "ScalingActive"), ("False", "ScalingDisabled"));
    let text = render_text(&e);
    assert!(text.contains("scaled to zero by hand"), "{text}");
    assert!(text.contains("stays at 0 replicas"), "{text}");
    // The controller up to 1.35 let minReplicas 0 decide from the metrics.
    use promhpa_hpa::explain::{explain, ExplainInput, Measured};
    let legacy = explain(&ExplainInput {
        hpa: queue_hpa(None),
        current_replicas: 0,
        status_replicas: None,
        pods: None,
        values: vec![Ok(Measured::Value(500.0))],
        config: ControllerConfig {
            zero_replicas: promhpa_hpa::ZeroReplicas::Legacy,
            ..ControllerConfig::default()
        },
        state: None,
        now_ms: 0,
        selector_error: None,
    });
    assert_eq!(legacy.desired_replicas, 4);
}

#[test]
fn an_idle_queue_scales_to_zero_and_sets_the_condition() {
    let e = explain_queue(queue_hpa(None), 3, 0.0);
    assert_eq!(e.desired_replicas, 0);
    assert_eq!(condition(&e, "ScaledToZero"), ("True", "ScaledToZero"));
    assert!(render_text(&e).contains("scale to zero: the controller sets ScaledToZero True"));
}

#[test]
fn one_replica_is_singular() {
    let e = explain_queue(queue_hpa(None), 2, 5.0);
    let text = render_text(&e);
    assert!(
        text.contains("proposes 1 replica: ceil(0.500 x 2 ready pods) = 1"),
        "{text}"
    );
    assert!(!text.contains("1 replicas"), "{text}");
    let (_, able) = condition(&e, "AbleToScale");
    assert_eq!(able, "SucceededRescale");
    assert!(
        text.contains("would update the target scale to 1 (not done yet"),
        "{text}"
    );
}

/// What the API server refuses to store is refused with its words, the first error named
/// and the others counted.
#[test]
fn specs_the_api_server_refuses_are_refused() {
    let hpa = |spec: &str| {
        format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web}}\nspec:\n{spec}")
    };
    let target = "  scaleTargetRef: {kind: Deployment, name: web}\n";
    let cpu = "  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n";
    let error_of = |spec: String| {
        parse_manifest(&hpa(&spec))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let cases = [
        (
            format!("{target}  minReplicas: 0\n  maxReplicas: 3\n{cpu}"),
            "spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero replicas",
        ),
        (
            format!("{target}  maxReplicas: 0\n{cpu}"),
            "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        ),
        (
            format!("{target}  minReplicas: 4\n  maxReplicas: 3\n{cpu}"),
            "spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`",
        ),
        (
            format!("  maxReplicas: 3\n{cpu}"),
            "spec.scaleTargetRef.kind: Required value (and 1 more error)",
        ),
        (
            format!("{target}  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 0}}}}\n"),
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
        ),
        (
            format!("{target}  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50, averageValue: 100m}}}}\n"),
            "spec.metrics[0].resource.target.averageValue: Forbidden: may not set both a target raw value and a target utilization",
        ),
        (
            format!("{target}  maxReplicas: 3\n  metrics:\n  - type: External\n    external: {{metric: {{name: q}}, target: {{type: Value, value: \"-1\"}}}}\n"),
            "spec.metrics[0].external.target.value: Invalid value: \"-1\": must be positive",
        ),
        (
            format!("{target}  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods: {{metric: {{name: rps}}, target: {{type: Value, value: 1}}}}\n"),
            "spec.metrics[0].pods.target.averageValue: Required value: must specify a positive target averageValue",
        ),
        (
            format!("{target}  maxReplicas: 3\n  metrics:\n  - type: Resource\n    pods: {{metric: {{name: rps}}, target: {{type: AverageValue, averageValue: 1}}}}\n"),
            "spec.metrics[0].resource: Required value: must populate information for the given metric source",
        ),
        (
            format!("{target}  maxReplicas: 3\n{cpu}  behavior:\n    scaleUp: {{policies: []}}\n"),
            "spec.behavior.scaleUp.policies: Required value: must specify at least one Policy",
        ),
        (
            format!("{target}  maxReplicas: 3\n{cpu}  behavior:\n    scaleDown:\n      stabilizationWindowSeconds: 4000\n      policies: [{{type: Pods, value: 0, periodSeconds: 1801}}]\n"),
            "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600 (and 2 more errors)",
        ),
    ];
    for (spec, want) in cases {
        let e = error_of(spec.clone());
        assert!(e.ends_with(want), "{spec}\n{e}");
    }
    // Scaling to zero with an External metric is stored (with HPAScaleToZero).
    let external = "  metrics:\n  - type: External\n    external: {metric: {name: q}, target: {type: Value, value: 10}}\n";
    assert!(parse_manifest(&hpa(&format!(
        "{target}  minReplicas: 0\n  maxReplicas: 3\n{external}"
    )))
    .is_ok());
}

/// A manifest that is YAML but not a valid HPA names the field, and each error is said once.
#[test]
fn manifest_errors_name_the_field_and_say_it_once() {
    let error_of = |text: &str| {
        parse_manifest(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let bad_quantity = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 3\n  scaleTargetRef: {kind: Deployment, name: web}\n  metrics:\n  - type: Pods\n    pods:\n      metric: {name: latency}\n      target: {type: AverageValue, averageValue: 350ms}\n";
    let e = error_of(bad_quantity);
    assert!(
        e.starts_with("invalid HorizontalPodAutoscaler in manifest document 1: spec.metrics[0].pods.target.averageValue: "),
        "{e}"
    );
    assert_eq!(e.matches("350ms").count(), 1, "{e}");
    let bad_yaml = "kind: HorizontalPodAutoscaler\nspec:\n  maxReplicas: 3\n   bad: [\n";
    let e = error_of(bad_yaml);
    assert!(
        e.starts_with("invalid yaml in manifest document 1: "),
        "{e}"
    );
    assert_eq!(e.matches("line 4").count(), 1, "{e}");
    // A target without a type, which the API server refuses to store.
    let untyped = bad_quantity.replace(
        "type: AverageValue, averageValue: 350ms",
        "averageValue: 350m",
    );
    let e = error_of(&untyped);
    assert_eq!(
        e,
        "invalid HorizontalPodAutoscaler in manifest document 1: spec.metrics[0].pods.target.type: Required value: must specify a metric target type"
    );
    let unknown = bad_quantity.replace(
        "type: AverageValue, averageValue: 350ms",
        "type: Average, averageValue: 350m",
    );
    let e = error_of(&unknown);
    assert!(
        e.ends_with("spec.metrics[0].pods.target.type: Invalid value: \"Average\": must be either Utilization, Value, or AverageValue"),
        "{e}"
    );
}
