//! A synthetic day of traffic through the simulator.

use promhpa_hpa::simulate::{
    parse_data, parse_time, simulate, to_csv, ActualReplicas, SimulationInput, Tick,
};
use promhpa_hpa::{ControllerConfig, HpaSpec};

const DAY_START: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z
const STEP_UP: i64 = DAY_START + 9 * 3_600_000 + 7_000; // 09:00:07, between ticks
const STEP_DOWN: i64 = DAY_START + 18 * 3_600_000 + 7_000; // 18:00:07

fn spec(behavior: &str) -> HpaSpec {
    let yaml = format!(
        "minReplicas: 2\nmaxReplicas: 20\nmetrics:\n- type: Resource\n  resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}\n{behavior}"
    );
    promhpa_core::yaml::from_str(&yaml).expect("spec")
}

/// Utilization recorded on 4 pods: 40 % at night, 150 % from 09:00 to 18:00 (a total
/// demand of 600 % of one request, i.e. 12 pods at the 50 % target).
fn day(spec: HpaSpec) -> Vec<Tick> {
    let mut series = Vec::new();
    let mut t = DAY_START;
    while t < DAY_START + 86_400_000 {
        let v = if (STEP_UP..STEP_DOWN).contains(&t) {
            150.0
        } else {
            40.0
        };
        series.push((t, v));
        t += 10_000;
    }
    simulate(&SimulationInput {
        spec,
        config: ControllerConfig::default(),
        metrics: vec![series],
        actual: ActualReplicas::Constant(4.0),
        start_ms: DAY_START,
        end_ms: DAY_START + 86_400_000 - 1,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    })
    .expect("simulate")
}

fn first_at_least(ticks: &[Tick], from: i64, n: i32) -> i64 {
    ticks
        .iter()
        .find(|t| t.timestamp_ms >= from && t.simulated_replicas >= n)
        .map(|t| t.timestamp_ms)
        .expect("reached")
}

fn first_at_most(ticks: &[Tick], from: i64, n: i32) -> i64 {
    ticks
        .iter()
        .find(|t| t.timestamp_ms >= from && t.simulated_replicas <= n)
        .map(|t| t.timestamp_ms)
        .expect("reached")
}

fn check_day(ticks: &[Tick], earliest_down_after_step: i64) {
    assert_eq!(ticks.len(), 5760);
    // Before the step the 160 % of demand needs 4 pods at 50 %.
    let before: Vec<_> = ticks.iter().filter(|t| t.timestamp_ms < STEP_UP).collect();
    assert!(before.iter().skip(40).all(|t| t.simulated_replicas == 4));
    // Scale-up to the 12 pods the load needs within a minute of the step.
    let up = first_at_least(ticks, STEP_UP, 12);
    assert!(up - STEP_UP <= 60_000, "scale-up took {} ms", up - STEP_UP);
    let mid: Vec<_> = ticks
        .iter()
        .filter(|t| t.timestamp_ms > up && t.timestamp_ms < STEP_DOWN)
        .collect();
    assert!(mid.iter().all(|t| t.simulated_replicas == 12));
    // Scale-down waits for the stabilization window, then happens at once.
    let down = first_at_most(ticks, STEP_DOWN, 11);
    assert!(
        down - STEP_DOWN >= earliest_down_after_step,
        "scaled down after only {} ms",
        down - STEP_DOWN
    );
    assert!(down - STEP_DOWN <= 300_000 + 30_000);
    let last = ticks.last().expect("ticks");
    assert_eq!(last.simulated_replicas, 4);
}

#[test]
fn legacy_path_on_a_synthetic_day() {
    let ticks = day(spec(""));
    // The last high recommendation was at 17:59:45 (one tick before the drop at 18:00:07);
    // legacy stabilization keeps it until it is more than 300 s old.
    check_day(&ticks, 300_000 - 7_000);
}

#[test]
fn default_behavior_on_a_synthetic_day() {
    let ticks = day(spec("behavior: {}\n"));
    // The behavior path drops a record exactly 300 s old (strict comparison).
    check_day(&ticks, 285_000 - 7_000);
    let csv = to_csv(&ticks);
    assert_eq!(csv.lines().count(), 5761);
    assert!(csv.starts_with("timestamp,actual_replicas,simulated_replicas"));
    assert!(csv.contains("2024-05-01T09:00:15Z,4,8,150,"));
}

#[test]
fn a_slow_scale_down_policy_shows_in_the_replay() {
    let ticks = day(spec(
        "behavior:\n  scaleDown:\n    stabilizationWindowSeconds: 0\n    policies: [{type: Pods, value: 1, periodSeconds: 60}]\n",
    ));
    let down = first_at_most(&ticks, STEP_DOWN, 11);
    assert!(down - STEP_DOWN <= 15_000);
    let four = first_at_most(&ticks, STEP_DOWN, 4);
    // 12 -> 4 one pod per minute: 8 steps, the first at once.
    assert!((7 * 60_000..=8 * 60_000 + 15_000).contains(&(four - STEP_DOWN)));
}

#[test]
fn data_files_parse() {
    let (m, r) =
        parse_data("timestamp,value,replicas\n2024-05-01T00:00:00Z,40,4\n1714521615,41.5,\n")
            .expect("csv");
    assert_eq!(m, vec![vec![(DAY_START, 40.0), (DAY_START + 15_000, 41.5)]]);
    assert_eq!(r, vec![(DAY_START, 4.0)]);
    let (m, r) =
        parse_data(r#"[{"timestamp": 1714521600, "value": 3, "replicas": 2}]"#).expect("json");
    assert_eq!(m, vec![vec![(DAY_START, 3.0)]]);
    assert_eq!(r, vec![(DAY_START, 2.0)]);
    assert!(parse_data("timestamp\n1,2\n").is_err());
    // Rows with more or fewer cells than the header, and repeated timestamps, are refused
    // rather than read into the wrong columns or over each other.
    let err = |text: &str| match parse_data(text) {
        Ok(v) => panic!("accepted {text:?}: {v:?}"),
        Err(e) => e.to_string(),
    };
    let e = err("timestamp,value,replicas\n1714521600,60\n");
    assert!(e.contains("line 2: 2 cells, but the header has 3"), "{e}");
    let e = err("timestamp,value,replicas\n1714521600,70,4,99\n");
    assert!(e.contains("4 cells"), "{e}");
    let e = err("timestamp,value\n1714521600,1\n2024-05-01T00:00:00Z,2\n");
    assert!(
        e.contains("line 3") && e.contains("already on line 2"),
        "{e}"
    );
    let e = err(r#"[{"timestamp": 1, "value": 1}, {"timestamp": 1, "value": 2}]"#);
    assert!(e.contains("row 1"), "{e}");
    let e = err(r#"[{"timestamp": 1, "values": [1, 2]}, {"timestamp": 2, "value": 2}]"#);
    assert!(e.contains("1 values, but earlier rows have 2"), "{e}");
    // An empty cell is a gap, not an error.
    assert!(parse_data("timestamp,value,replicas\n1714521600,,4\n").is_ok());
    assert_eq!(
        parse_time("2024-05-01T02:00:00+02:00").expect("t"),
        DAY_START
    );
    assert!(parse_time("yesterday").is_err());
}

#[test]
fn unreasonable_inputs_are_errors() {
    assert!(parse_time("2024-05-01T00:00:00+0é00").is_err());
    assert!(parse_time("2024-05-01T00:00:00+é:00").is_err());
    let input = SimulationInput {
        spec: spec(""),
        config: ControllerConfig::default(),
        metrics: vec![vec![(0, 1.0)]],
        actual: ActualReplicas::Constant(1.0),
        start_ms: 0,
        end_ms: i64::MAX,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    };
    assert!(simulate(&input).is_err());
    assert!(simulate(&SimulationInput {
        step_ms: 0,
        end_ms: 0,
        ..input.clone()
    })
    .is_err());
    assert!(simulate(&SimulationInput {
        start_ms: 10,
        end_ms: 0,
        ..input
    })
    .is_err());
}

#[test]
fn slow_pod_startup_delays_the_relief() {
    let mut series = Vec::new();
    for i in 0..200 {
        series.push((i * 15_000, if i < 4 { 40.0 } else { 150.0 }));
    }
    let run = |startup: i64| {
        simulate(&SimulationInput {
            spec: spec("behavior: {}\n"),
            config: ControllerConfig::default(),
            metrics: vec![series.clone()],
            actual: ActualReplicas::Constant(4.0),
            start_ms: 0,
            end_ms: 199 * 15_000,
            step_ms: 15_000,
            initial_replicas: None,
            pod_startup_ms: startup,
        })
        .expect("simulate")
    };
    let fast = run(0);
    let slow = run(90_000);
    // Both reach the 12 pods the load needs; while new pods start, the old ones carry the
    // whole load, so the per-pod metric stays high for longer.
    assert_eq!(fast.last().map(|t| t.simulated_replicas), Some(12));
    assert_eq!(slow.last().map(|t| t.simulated_replicas), Some(12));
    let high = |ticks: &[Tick]| {
        ticks
            .iter()
            .filter(|t| t.simulated_metric.is_some_and(|m| m > 60.0))
            .count()
    };
    assert!(
        high(&slow) > high(&fast) + 4,
        "{} vs {}",
        high(&slow),
        high(&fast)
    );
}

#[test]
fn every_metric_gets_csv_columns() {
    let spec: HpaSpec = promhpa_core::yaml::from_str(
        "minReplicas: 1
maxReplicas: 20
metrics:
- type: Resource
  resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
- type: Pods
  pods: {metric: {name: queue_depth}, target: {type: AverageValue, averageValue: '10'}}
",
    )
    .expect("spec");
    // cpu stays at its target; the queue grows to 30 per pod on 4 pods: 12 pods needed.
    let cpu = vec![(DAY_START, 50.0)];
    let queue = vec![(DAY_START, 10.0), (DAY_START + 60_000, 30.0)];
    let ticks = simulate(&SimulationInput {
        spec: spec.clone(),
        config: ControllerConfig::default(),
        metrics: vec![cpu, queue],
        actual: ActualReplicas::Constant(4.0),
        start_ms: DAY_START,
        end_ms: DAY_START + 300_000,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    })
    .expect("simulate");
    let csv = to_csv(&ticks);
    let header = csv.lines().next().unwrap_or_default();
    assert!(
        header.ends_with(",reason,driver,metric_2,simulated_metric_2,target_2"),
        "{header}"
    );
    // At 00:01:00 the queue of 30 per pod asks for 12 pods; the legacy limit allows 8.
    // Then the recorded demand (on 4 pods) spread over 8 simulated pods halves each
    // metric, and the next tick reaches 12.
    assert!(
        csv.contains("2024-05-01T00:01:00Z,4,8,50,50,50,12,ScaleUpLimit,metric_2,30,30,10\n"),
        "{csv}"
    );
    assert!(
        csv.contains("2024-05-01T00:01:15Z,4,12,50,25,50,12,,metric_2,30,15,10\n"),
        "{csv}"
    );
    assert_eq!(ticks.last().map(|t| t.simulated_replicas), Some(12));
}

#[test]
fn csv_numbers_have_at_most_three_decimals() {
    let ticks = vec![promhpa_hpa::simulate::Tick {
        timestamp_ms: DAY_START,
        actual_replicas: Some(3.0),
        metric: Some(0.1 + 0.2),
        simulated_metric: Some(2.0 / 3.0),
        target: Some(-0.0001),
        more_metrics: Vec::new(),
        raw_recommendation: Some(4),
        simulated_replicas: 4,
        reason: String::new(),
        driver: Some(0),
    }];
    let csv = to_csv(&ticks);
    assert!(
        csv.ends_with("\n2024-05-01T00:00:00Z,3,4,0.3,0.667,0,4,,metric\n"),
        "{csv}"
    );
}

/// A queue worker on an External metric with minReplicas 0: the queue empties at 00:10 and
/// fills again at 00:30 (30 messages against a Value target of 10).
fn queue_run(zero: promhpa_hpa::ZeroReplicas, initial: Option<i32>) -> Vec<Tick> {
    let spec: HpaSpec = promhpa_core::yaml::from_str(
        "minReplicas: 0\nmaxReplicas: 10\nmetrics:\n- type: External\n  external: {metric: {name: queue_depth}, target: {type: Value, value: 10}}\n",
    )
    .expect("spec");
    let mut series = Vec::new();
    let mut t = DAY_START;
    while t <= DAY_START + 3_600_000 {
        let minute = (t - DAY_START) / 60_000;
        let v = if (10..30).contains(&minute) {
            0.0
        } else {
            30.0
        };
        series.push((t, v));
        t += 15_000;
    }
    simulate(&SimulationInput {
        spec,
        config: ControllerConfig {
            zero_replicas: zero,
            ..ControllerConfig::default()
        },
        metrics: vec![series],
        actual: ActualReplicas::Constant(3.0),
        start_ms: DAY_START,
        end_ms: DAY_START + 3_600_000,
        step_ms: 15_000,
        initial_replicas: initial,
        pod_startup_ms: 0,
    })
    .expect("simulate")
}

#[test]
fn a_queue_worker_scales_to_zero_and_back() {
    use promhpa_hpa::ZeroReplicas;
    let ticks = queue_run(ZeroReplicas::Condition, None);
    // The empty queue takes it to zero once the 5-minute window has no higher recommendation.
    let zero_at = first_at_most(&ticks, DAY_START + 600_000, 0);
    assert!(zero_at >= DAY_START + 900_000, "{}", zero_at - DAY_START);
    // Held at zero while the queue is empty, the metrics still read.
    let held = ticks
        .iter()
        .filter(|t| t.timestamp_ms > zero_at && t.timestamp_ms < DAY_START + 1_800_000);
    for t in held {
        assert_eq!(t.simulated_replicas, 0);
        assert_eq!(t.reason, "", "{t:?}");
    }
    // The queue refills at 00:30: ceil(30 / 10) = 3 from zero at the next sync.
    let back = ticks
        .iter()
        .find(|t| t.timestamp_ms >= DAY_START + 1_800_000)
        .expect("tick");
    assert_eq!(back.simulated_replicas, 3, "{back:?}");
    assert_eq!(back.driver, Some(0));

    // A replay that starts at zero starts where the HPA scaled the target down (its
    // ScaledToZero condition set); with the gate off, zero disables the HPA.
    let from_zero = queue_run(ZeroReplicas::Condition, Some(0));
    assert_eq!(from_zero[0].simulated_replicas, 3);
    let gate_off = queue_run(ZeroReplicas::GateOff, Some(0));
    assert!(gate_off.iter().all(|t| t.simulated_replicas == 0));
    assert_eq!(gate_off[0].reason, "ScalingDisabled");
}

/// Replica counts are modelled pod by pod, up to 100,000: a large maxReplicas used as "no
/// cap" still simulates; a replay that would pass the bound, or counts that are not counts,
/// are refused rather than allocated.
#[test]
fn replica_counts_are_bounded_where_they_are_reached() {
    let input = |max: i32, value: f64, actual: ActualReplicas| {
        SimulationInput {
        spec: promhpa_core::yaml::from_str(&format!(
            "minReplicas: 2\nmaxReplicas: {max}\nmetrics:\n- type: Resource\n  resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}\n"
        ))
        .expect("spec"),
        config: ControllerConfig::default(),
        metrics: vec![vec![(DAY_START, value), (DAY_START + 3_600_000, value)]],
        actual,
        start_ms: DAY_START,
        end_ms: DAY_START + 3_600_000,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    }
    };
    let ticks = simulate(&input(1_000_000, 50.0, ActualReplicas::Constant(5.0))).expect("runs");
    assert!(ticks.iter().all(|t| t.simulated_replicas == 5));
    let e = simulate(&input(1_000_000, 1e9, ActualReplicas::Constant(5.0)))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("at most 100000 are simulated"), "{e}");
    for bad in [f64::NAN, -3.0, 1e9] {
        let e = simulate(&input(10, 50.0, ActualReplicas::Constant(bad)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("replica counts are whole numbers"), "{bad}: {e}");
    }
}
