//! Metric paths the shared conformance suite does not cover.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use promhpa_core::backend::{
    Backend, BackendError, BoxFuture, QueryValue, RangeSeries, SeriesInfo,
};
use promhpa_core::quantity::Quantity;
use promhpa_hpa::calc::{compute_metric, Container, MetricInput, PodSample, Tolerances};
use promhpa_hpa::simulate::{simulate_from_backend, ActualReplicas, SimulationInput};
use promhpa_hpa::spec::{parse_manifest, MetricSpec};
use promhpa_hpa::{ControllerConfig, Observed, Pod, PodPhase};

fn metric(yaml: &str) -> MetricSpec {
    promhpa_core::yaml::from_str(yaml).expect("metric spec")
}

fn pod(name: &str, containers: &[(&str, i64)]) -> Pod {
    Pod {
        name: name.into(),
        phase: PodPhase::Running,
        ready: Some(promhpa_hpa::calc::ConditionStatus::True),
        ready_since_ms: -600_000,
        start_time_ms: Some(-600_000),
        deleting: false,
        pod_requests: BTreeMap::new(),
        containers: containers
            .iter()
            .map(|(n, r)| Container {
                name: (*n).into(),
                requests: BTreeMap::from([("cpu".to_string(), Quantity::from_milli(*r))]),
            })
            .collect(),
    }
}

fn samples(v: &[(&str, i64)]) -> Observed {
    Observed::Pods(
        v.iter()
            .map(|(n, m)| {
                (
                    (*n).to_string(),
                    PodSample {
                        milli: *m,
                        timestamp_ms: 0,
                        window_ms: 30_000,
                    },
                )
            })
            .collect(),
    )
}

fn input<'a>(
    pods: &'a [Pod],
    config: &'a ControllerConfig,
    spec: i32,
    status: i32,
) -> MetricInput<'a> {
    MetricInput {
        spec_replicas: spec,
        status_replicas: status,
        pods,
        now_ms: 0,
        config,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
    }
}

#[test]
fn container_resource_uses_only_the_named_containers_request() {
    let m = metric("type: ContainerResource\ncontainerResource: {name: cpu, container: app, target: {type: Utilization, averageUtilization: 50}}");
    let pods = [
        pod("a", &[("app", 500), ("sidecar", 1500)]),
        pod("b", &[("app", 500), ("sidecar", 1500)]),
    ];
    let c = ControllerConfig::default();
    let p = compute_metric(
        &m,
        &samples(&[("a", 500), ("b", 500)]),
        &input(&pods, &c, 2, 2),
    )
    .expect("proposal");
    // 1000m of 1000m requested by the app containers: 100 % against 50 %.
    assert_eq!((p.replicas, p.utilization), (4, Some(100)));
    assert_eq!(
        p.metric_name,
        "cpu container resource utilization (percentage of request)"
    );
}

#[test]
fn a_missing_request_fails_the_metric() {
    let m = metric("type: Resource\nresource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}");
    let mut p = pod("a", &[("app", 500)]);
    p.containers.push(Container {
        name: "side".into(),
        requests: BTreeMap::new(),
    });
    let c = ControllerConfig::default();
    let pods = [p];
    let f =
        compute_metric(&m, &samples(&[("a", 500)]), &input(&pods, &c, 1, 1)).expect_err("fails");
    assert_eq!(f.reason, "FailedGetResourceMetric");
    assert!(
        f.message
            .contains("missing request for cpu in container side of Pod a"),
        "{}",
        f.message
    );
}

#[test]
fn external_value_scales_from_zero_without_pods() {
    let m =
        metric("type: External\nexternal: {metric: {name: q}, target: {type: Value, value: 10}}");
    let c = ControllerConfig::default();
    let p = compute_metric(
        &m,
        &Observed::External(vec![12_000, 13_000]),
        &input(&[], &c, 0, 0),
    )
    .expect("proposal");
    assert_eq!(p.replicas, 3); // ceil(25 / 10)
    assert_eq!(p.current_milli, 25_000);
}

#[test]
fn object_value_needs_pods_when_scaling_from_nonzero() {
    let m = metric("type: Object\nobject: {describedObject: {kind: Ingress, name: web}, metric: {name: rps}, target: {type: Value, value: 10}}");
    let c = ControllerConfig::default();
    let f =
        compute_metric(&m, &Observed::Object(50_000), &input(&[], &c, 2, 2)).expect_err("fails");
    assert_eq!(f.reason, "FailedGetObjectMetric");
    assert_eq!(f.metric_name, "Ingress metric rps");
}

#[test]
fn unknown_source_type_is_invalid() {
    let m = metric("type: Cheese");
    let c = ControllerConfig::default();
    let f = compute_metric(&m, &Observed::Nothing, &input(&[], &c, 2, 2)).expect_err("fails");
    assert_eq!(f.reason, "InvalidMetricSourceType");
}

struct FakeBackend(BTreeMap<String, Vec<(i64, f64)>>);

impl Backend for FakeBackend {
    fn address(&self) -> String {
        "fake".into()
    }
    fn query<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async { Err(BackendError::Unsupported("instant".into())) })
    }
    fn query_range<'a>(
        &'a self,
        q: &'a str,
        start: i64,
        end: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        let points: Vec<(i64, f64)> = self
            .0
            .get(q)
            .map(|p| {
                p.iter()
                    .copied()
                    .filter(|(t, _)| (start..=end).contains(t))
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(async move {
            Ok(QueryValue::Matrix(vec![RangeSeries {
                labels: BTreeMap::new(),
                points,
            }]))
        })
    }
    fn series_names<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn simulation_reads_history_from_a_backend() {
    let load: Vec<(i64, f64)> = (0..40)
        .map(|i| (i * 15_000, if i < 10 { 40.0 } else { 120.0 }))
        .collect();
    let replicas: Vec<(i64, f64)> = (0..40).map(|i| (i * 15_000, 4.0)).collect();
    let backend = FakeBackend(BTreeMap::from([
        ("util".to_string(), load),
        ("replicas".to_string(), replicas),
    ]));
    let hpa = parse_manifest("minReplicas: 1\nmaxReplicas: 20\nmetrics:\n- type: Resource\n  resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}\n").expect("spec");
    let input = SimulationInput {
        spec: hpa.spec,
        config: ControllerConfig::default(),
        metrics: Vec::new(),
        actual: ActualReplicas::Constant(0.0),
        start_ms: 0,
        end_ms: 39 * 15_000,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    };
    let ticks = block_on(simulate_from_backend(
        &backend,
        input,
        &["util".to_string()],
        Ok("replicas"),
    ))
    .expect("simulation");
    assert_eq!(ticks.len(), 40);
    assert_eq!(ticks[5].simulated_replicas, 4);
    // 120 % on 4 pods = 480 % of demand: 8 pods at 60 %.
    assert_eq!(ticks.last().map(|t| t.simulated_replicas), Some(8));
}

#[test]
fn a_ready_condition_of_unknown_does_not_make_a_cpu_pod_unready() {
    use promhpa_hpa::calc::ConditionStatus;
    // Two pods started 10 s before now (inside the CPU initialization period), ready
    // since long before the sample; one pod's node stopped reporting (Ready Unknown), the
    // other's readiness probe fails (Ready False).
    let m = metric("type: Resource\nresource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}");
    let config = ControllerConfig::default();
    let mut pods = [pod("a", &[("app", 1000)]), pod("b", &[("app", 1000)])];
    for p in pods.iter_mut() {
        p.start_time_ms = Some(-10_000);
        p.ready_since_ms = -60_000;
    }
    pods[0].ready = Some(ConditionStatus::Unknown);
    pods[1].ready = Some(ConditionStatus::False);
    let p = compute_metric(
        &m,
        &samples(&[("a", 800), ("b", 800)]),
        &input(&pods, &config, 2, 2),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let counts = p.pods.unwrap_or_default();
    assert_eq!((counts.ready, counts.unready), (1, 1), "{p:?}");
}

#[test]
fn pod_level_requests_stand_for_the_containers() {
    // The pod requests 2 CPUs as a whole; its containers request 100m each. Utilization is
    // taken against the pod-level request; a ContainerResource metric still uses the
    // container's own.
    let mut p = pod("a", &[("app", 100), ("sidecar", 100)]);
    p.pod_requests = BTreeMap::from([("cpu".to_string(), Quantity::from_milli(2000))]);
    let pods = [p];
    let config = ControllerConfig::default();
    let resource = metric("type: Resource\nresource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}");
    let got = compute_metric(
        &resource,
        &samples(&[("a", 1000)]),
        &input(&pods, &config, 1, 1),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(got.utilization, Some(50));
    let container = metric("type: ContainerResource\ncontainerResource: {name: cpu, container: app, target: {type: Utilization, averageUtilization: 50}}");
    let got = compute_metric(
        &container,
        &samples(&[("a", 100)]),
        &input(&pods, &config, 1, 1),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(got.utilization, Some(100));
}

/// The names and messages `kubectl describe hpa` shows, as the controller words them.
#[test]
fn resource_metrics_are_named_and_fail_in_the_controllers_words() {
    let config = ControllerConfig::default();
    let pods = [pod("web-0", &[("app", 500)])];
    let average = metric("type: ContainerResource\ncontainerResource: {name: cpu, container: app, target: {type: AverageValue, averageValue: 400m}}");
    let got = compute_metric(
        &average,
        &samples(&[("web-0", 800)]),
        &input(&pods, &config, 2, 2),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(got.metric_name, "cpu resource");
    let memory = metric("type: Resource\nresource: {name: memory, target: {type: Utilization, averageUtilization: 50}}");
    let failed = compute_metric(
        &memory,
        &samples(&[("web-0", 800)]),
        &input(&pods, &config, 2, 2),
    )
    .err()
    .unwrap_or_else(|| panic!("memory without requests was computed"));
    // The condition's message, then the error the controller returns (quoted by the
    // FailedComputeMetricsReplicas event).
    assert_eq!(
        failed.message,
        "failed to get memory utilization: missing request for memory in container app of Pod web-0"
    );
    assert_eq!(
        failed.error,
        "failed to get memory resource metric value: failed to get memory utilization: missing request for memory in container app of Pod web-0"
    );
    let rps = metric(
        "type: Pods\npods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 10}}",
    );
    let fetch_failed = Observed::Error("the server could not find the metric rps for pods".into());
    let failed = compute_metric(&rps, &fetch_failed, &input(&pods, &config, 2, 2))
        .err()
        .unwrap_or_else(|| panic!("a metric that failed to fetch was computed"));
    assert_eq!(
        failed.message,
        "unable to get metric rps: the server could not find the metric rps for pods"
    );
    assert_eq!(
        failed.error,
        "failed to get pods metric value: unable to get metric rps: the server could not find the metric rps for pods"
    );
}

#[test]
fn a_null_field_of_an_hpa_is_one_not_set() {
    let hpa = parse_manifest(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n  namespace:\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 5\n  metrics:\n  behavior:\n",
    )
    .expect("manifest");
    assert_eq!(hpa.metadata.namespace, None);
    assert!(hpa.spec.metrics.is_empty());
    assert!(hpa.spec.behavior.is_none());
    let err = parse_manifest("kind: HorizontalPodAutoscaler\nspec: {maxReplicas: [\n")
        .expect_err("not YAML")
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}
