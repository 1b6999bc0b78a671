//! Charts of simulations: a day of a step load, and a spec with two metrics.

use promhpa_chart::{to_svg, to_svg_chart, to_svg_named, ChartMetric};
use promhpa_hpa::simulate::{simulate, ActualReplicas, SimulationInput, Tick};
use promhpa_hpa::{ControllerConfig, HpaSpec};

const DAY_START: i64 = 1_714_521_600_000; // 2024-05-01T00:00:00Z

fn run(spec: HpaSpec, metrics: Vec<Vec<(i64, f64)>>, end_ms: i64) -> Vec<Tick> {
    simulate(&SimulationInput {
        spec,
        config: ControllerConfig::default(),
        metrics,
        actual: ActualReplicas::Constant(4.0),
        start_ms: DAY_START,
        end_ms,
        step_ms: 15_000,
        initial_replicas: None,
        pod_startup_ms: 0,
    })
    .expect("simulate")
}

#[test]
fn a_day_of_a_step_load_is_one_svg_document() {
    let spec = promhpa_core::yaml::from_str(
        "minReplicas: 2\nmaxReplicas: 20\nmetrics:\n- type: Resource\n  resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n",
    )
    .expect("spec");
    // 40 % on 4 pods at night, 150 % from 09:00 to 18:00.
    let (up, down) = (
        DAY_START + 9 * 3_600_000 + 7_000,
        DAY_START + 18 * 3_600_000 + 7_000,
    );
    let series = (0..8_640)
        .map(|i| DAY_START + i * 10_000)
        .map(|t| (t, if (up..down).contains(&t) { 150.0 } else { 40.0 }))
        .collect();
    let ticks = run(spec, vec![series], DAY_START + 86_400_000 - 1);
    assert_eq!(ticks.len(), 5760);
    let svg = to_svg(&ticks, "legacy");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::write(
        format!("{}/synthetic-day-legacy.svg", env!("CARGO_TARGET_TMPDIR")),
        &svg,
    );
}

#[test]
fn every_metric_gets_a_panel_and_the_strip_says_why_the_line_moved() {
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
    let ticks = run(spec.clone(), vec![cpu, queue], DAY_START + 300_000);
    assert_eq!(ticks.last().map(|t| t.simulated_replicas), Some(12));

    let names = ["cpu utilization".to_string(), "queue_depth".to_string()];
    let svg = to_svg_named(&[("simulated", &ticks)], "two", &names);
    assert!(svg.contains(">cpu utilization</text>") && svg.contains(">queue_depth</text>"));
    // The chart says why the line moved: the step to 8 was asked for by the queue and cut
    // by the rate limit, which the strip under the replicas shows.
    let metrics: Vec<ChartMetric> = spec.metrics.iter().map(ChartMetric::of).collect();
    assert_eq!(
        metrics,
        [
            ChartMetric {
                name: "cpu resource utilization (percentage of request)".into(),
                unit: "% of request".into(),
            },
            ChartMetric {
                name: "pods metric queue_depth".into(),
                unit: "per pod".into(),
            },
        ]
    );
    let svg = to_svg_chart(&[("simulated", &ticks)], "two", &metrics);
    assert!(svg.contains("▲8 by queue_depth (ScaleUpLimit)"), "{svg}");
    assert!(
        svg.contains(">rate limit (scaling policies)</text>"),
        "{svg}"
    );
    assert!(svg.contains(">% of request</text>") && svg.contains(">per pod</text>"));
    assert!(svg.contains(">replicas (pods)</text>") && svg.contains("time (UTC)"));
}
