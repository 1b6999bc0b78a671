//! Properties of the recommendation that no table of cases can cover.

use std::collections::BTreeMap;

use promhpa_core::quantity::Quantity;
use promhpa_hpa::calc::{Container, PodSample};
use promhpa_hpa::spec::{Behavior, MetricSpec, MetricTarget, ResourceMetricSource};
use promhpa_hpa::{
    reconcile, ControllerConfig, ControllerState, HpaSpec, MetricsInput, Observed, Pod, PodPhase,
    TickInput,
};
use proptest::prelude::*;

fn cpu_spec(min: i32, max: i32, target: i32, behavior: bool) -> HpaSpec {
    HpaSpec {
        min_replicas: Some(min),
        max_replicas: max,
        metrics: vec![MetricSpec {
            kind: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    kind: "Utilization".into(),
                    average_utilization: Some(target),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        }],
        behavior: behavior.then(Behavior::default),
        ..HpaSpec::default()
    }
}

/// Pod kinds: 0 ready, 1 unready (never became ready), 2 pending, 3 no sample, 4 deleting.
fn pods(kinds: &[u8], requests: &[i64]) -> Vec<Pod> {
    kinds
        .iter()
        .zip(requests)
        .enumerate()
        .map(|(i, (k, r))| Pod {
            name: format!("p{i}"),
            phase: if *k == 2 {
                PodPhase::Pending
            } else {
                PodPhase::Running
            },
            ready: Some((*k != 1).into()),
            ready_since_ms: -600_000,
            start_time_ms: Some(-600_000),
            deleting: *k == 4,
            pod_requests: BTreeMap::new(),
            containers: vec![Container {
                name: "app".into(),
                requests: BTreeMap::from([("cpu".to_string(), Quantity::from_milli(*r))]),
            }],
        })
        .collect()
}

fn samples(kinds: &[u8], usage: &[i64]) -> Observed {
    Observed::Pods(
        kinds
            .iter()
            .zip(usage)
            .enumerate()
            .filter(|(_, (k, _))| **k != 3 && **k != 2)
            .map(|(i, (_, u))| {
                (
                    format!("p{i}"),
                    PodSample {
                        milli: *u,
                        timestamp_ms: 0,
                        window_ms: 30_000,
                    },
                )
            })
            .collect(),
    )
}

fn desired(spec: &HpaSpec, current: i32, pods: &[Pod], obs: Observed) -> i32 {
    let mut state = ControllerState {
        recommendations: Some(Vec::new()),
        ..ControllerState::default()
    };
    let observed = [obs];
    let input = TickInput {
        spec_replicas: current,
        status_replicas: current,
        pods,
        metrics: MetricsInput::Observed(&observed),
        now_ms: 0,
        selector_error: None,
    };
    reconcile(spec, &ControllerConfig::default(), &mut state, &input).desired_replicas
}

fn raw_desired(spec: &HpaSpec, current: i32, raw: i32) -> i32 {
    let mut state = ControllerState::default();
    let input = TickInput {
        spec_replicas: current,
        status_replicas: current,
        pods: &[],
        metrics: MetricsInput::Raw(raw),
        now_ms: 0,
        selector_error: None,
    };
    reconcile(spec, &ControllerConfig::default(), &mut state, &input).desired_replicas
}

proptest! {
    #[test]
    fn result_stays_within_min_and_max(
        min in 1i32..20, span in 0i32..50, current in 1i32..200, raw in 0i32..500,
        behavior in any::<bool>(),
    ) {
        let spec = cpu_spec(min, min + span, 50, behavior);
        let d = raw_desired(&spec, current, raw);
        prop_assert!(d >= min && d <= min + span, "desired {d} outside [{min}, {}]", min + span);
    }

    /// On a consistent state (the scale's replica count equals the pods it selects that
    /// are not being deleted); when
    /// they differ the tolerance band holds the scale's count while outside it the pods
    /// decide, which is upstream behaviour and not monotonic.
    #[test]
    fn more_load_never_gives_fewer_replicas(
        kinds in proptest::collection::vec(0u8..5, 1..8),
        requests in proptest::collection::vec(100i64..2000, 8),
        usage in proptest::collection::vec(0i64..4000, 8),
        bump_pod in 0usize..8, bump in 1i64..3000,
        target in 10i32..150, behavior in any::<bool>(),
    ) {
        let current = kinds.iter().filter(|k| **k != 4).count() as i32;
        prop_assume!(current > 0);
        let spec = cpu_spec(1, 1000, target, behavior);
        let ps = pods(&kinds, &requests);
        let before = desired(&spec, current, &ps, samples(&kinds, &usage));
        let mut more = usage.clone();
        let i = bump_pod % kinds.len();
        more[i] += bump;
        let after = desired(&spec, current, &ps, samples(&kinds, &more));
        prop_assert!(after >= before, "{before} -> {after} after adding {bump}m to p{i}");
    }

    #[test]
    fn load_at_target_holds_the_current_count(
        n in 1usize..10, request in 100i64..2000, target in 10i64..150,
    ) {
        let kinds = vec![0u8; n];
        let requests = vec![request; n];
        let usage = vec![request * target / 100; n];
        let spec = cpu_spec(1, 100, target as i32, false);
        let current = n as i32;
        let d = desired(&spec, current, &pods(&kinds, &requests), samples(&kinds, &usage));
        prop_assert_eq!(d, current);
    }

    #[test]
    fn scale_up_with_default_behavior_never_exceeds_double_or_plus_four(
        current in 1i32..500, raw in 1i32..5000,
    ) {
        let spec = cpu_spec(1, 10_000, 50, true);
        let d = raw_desired(&spec, current, raw);
        prop_assert!(d <= (current * 2).max(current + 4));
        if raw > current {
            prop_assert!(d > current);
        }
    }
}

proptest! {
    /// A scale-down never goes below a raw recommendation made within the downscale
    /// stabilization window (300 s), on either path, and the replicas stay within bounds.
    #[test]
    fn scale_down_respects_the_stabilization_window(
        raws in proptest::collection::vec(0i32..40, 1..60),
        gaps in proptest::collection::vec(1i64..120, 60),
        start in 1i32..30, behavior in any::<bool>(),
    ) {
        let spec = cpu_spec(1, 30, 50, behavior);
        let config = ControllerConfig::default();
        let mut state = ControllerState::default();
        let mut current = start;
        let mut now = 0i64;
        let mut seen: Vec<(i64, i32)> = vec![(0, start)];
        for (i, raw) in raws.iter().enumerate() {
            let input = TickInput {
                spec_replicas: current,
                status_replicas: current,
                pods: &[],
                metrics: MetricsInput::Raw(*raw),
                now_ms: now,
                selector_error: None,
            };
            let out = reconcile(&spec, &config, &mut state, &input);
            seen.push((now, *raw));
            let d = out.desired_replicas;
            prop_assert!((1..=30).contains(&d));
            if d < current {
                let recent_max = seen
                    .iter()
                    .filter(|(t, _)| *t > now - 300_000)
                    .map(|(_, r)| *r)
                    .max()
                    .unwrap_or(0);
                prop_assert!(d >= recent_max.min(current).max(1), "at {now}: {current} -> {d} with {recent_max} recommended recently");
            }
            current = d;
            now += gaps[i] * 1000;
        }
    }
}

fn any_metric() -> impl Strategy<Value = MetricSpec> {
    (0usize..6, -5i64..100_000, any::<bool>()).prop_map(|(kind, target, avg)| {
        let q = Quantity::from_milli(target);
        let t = MetricTarget {
            kind: if avg { "AverageValue" } else { "Value" }.into(),
            value: (!avg).then_some(q),
            average_value: avg.then_some(q),
            average_utilization: None,
        };
        let yaml = match kind {
            0 => format!("type: Resource\nresource: {{name: cpu, target: {{type: Utilization, averageUtilization: {}}}}}", target / 1000),
            1 => "type: Resource\nresource: {name: memory, target: {type: AverageValue, averageValue: 1}}".to_string(),
            2 => "type: Pods\npods: {metric: {name: x}, target: {type: AverageValue, averageValue: 1}}".to_string(),
            3 => "type: Object\nobject: {describedObject: {kind: Service, name: s}, metric: {name: x}, target: {type: Value, value: 1}}".to_string(),
            4 => "type: External\nexternal: {metric: {name: x}, target: {type: Value, value: 1}}".to_string(),
            _ => "type: Cheese".to_string(),
        };
        let mut m: MetricSpec = promhpa_core::yaml::from_str(&yaml).expect("metric");
        if let Some(o) = m.object.as_mut() {
            o.target = t.clone();
        }
        if let Some(e) = m.external.as_mut() {
            e.target = t;
        }
        m
    })
}

fn any_observed() -> impl Strategy<Value = Observed> {
    prop_oneof![
        proptest::collection::vec((0usize..6, any::<i64>(), -100_000i64..100_000), 0..6).prop_map(
            |v| {
                Observed::Pods(
                    v.into_iter()
                        .map(|(i, m, t)| {
                            (
                                format!("p{i}"),
                                PodSample {
                                    milli: m,
                                    timestamp_ms: t,
                                    window_ms: t.abs(),
                                },
                            )
                        })
                        .collect(),
                )
            }
        ),
        any::<i64>().prop_map(Observed::Object),
        proptest::collection::vec(any::<i64>(), 0..4).prop_map(Observed::External),
        Just(Observed::Error("boom".into())),
        Just(Observed::Nothing),
    ]
}

proptest! {
    /// Arbitrary, even nonsensical, input never panics.
    #[test]
    fn reconcile_never_panics(
        metrics in proptest::collection::vec(any_metric(), 0..4),
        observed in proptest::collection::vec(any_observed(), 0..4),
        kinds in proptest::collection::vec(0u8..5, 0..6),
        requests in proptest::collection::vec(-10i64..i64::MAX / 4, 6),
        spec_replicas in -3i32..50, status_replicas in -3i32..50,
        min in -2i32..5, max in -2i32..60, behavior in any::<bool>(),
    ) {
        let spec = HpaSpec {
            min_replicas: Some(min),
            max_replicas: max,
            metrics,
            behavior: behavior.then(Behavior::default),
            ..HpaSpec::default()
        };
        let ps = pods(&kinds, &requests);
        let mut state = ControllerState::default();
        let input = TickInput {
            spec_replicas,
            status_replicas,
            pods: &ps,
            metrics: MetricsInput::Observed(&observed),
            now_ms: 0,
            selector_error: None,
        };
        let _ = reconcile(&spec, &ControllerConfig::default(), &mut state, &input);
    }
}
