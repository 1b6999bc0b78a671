//! Replaying history through an HPA spec: the metric's past values and the replica count
//! that produced them give the demand; the controller then runs tick by tick with its own
//! replica count, seeing that demand redistributed over its own pods.
//!
//! Demand model, per metric type:
//! * Resource Utilization: the series is the average utilization (% of request) the actual
//!   pods had; the total (value × actual replicas) is spread evenly over the simulated pods.
//! * Resource/ContainerResource AverageValue and Pods metrics: the series is the per-pod
//!   average; the total (value × actual replicas) is spread evenly as above.
//! * Object and External metrics: the value is a property of something outside the pods
//!   (a queue length, an ingress rate) and is passed through unchanged.
//!
//! Simulated pods are Running and Ready and report at once, unless a pod start-up time is
//! given (`pod_startup_ms`: new pods serve no load until then); the value at a tick is the
//! last sample at or before it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_core::quantity::Quantity;
use serde::Serialize;

use crate::calc::{
    ConditionStatus, Container, ControllerConfig, Observed, Pod, PodPhase, PodSample,
};
use crate::controller::{reconcile, ControllerState, MetricsInput, TickInput};
use crate::spec::{HpaSpec, MetricSpec};
use crate::Error;

/// A time series: `(timestamp_ms, value)` in time order.
pub type Series = Vec<(i64, f64)>;

/// Where the replica count that produced the metric values comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ActualReplicas {
    Constant(f64),
    Series(Series),
}

/// Everything a simulation reads.
#[derive(Debug, Clone)]
pub struct SimulationInput {
    pub spec: HpaSpec,
    pub config: ControllerConfig,
    /// One series per `spec.metrics` entry (missing entries count as "no data").
    pub metrics: Vec<Series>,
    pub actual: ActualReplicas,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    /// Replica count at the start; defaults to the actual count then.
    pub initial_replicas: Option<i32>,
    /// How long a new pod takes to become Ready. 0: pods serve and report at once.
    /// Otherwise a pod created by a scale-up reports no sample (and takes no load) until it
    /// is Ready, and the cpu readiness rules of the controller apply to it afterwards;
    /// scale-down removes the newest pods first.
    pub pod_startup_ms: i64,
}

/// One tick of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    pub timestamp_ms: i64,
    pub actual_replicas: Option<f64>,
    /// The first metric's value as recorded (with the actual replicas).
    pub metric: Option<f64>,
    /// The first metric's value as the simulated pods would report it.
    pub simulated_metric: Option<f64>,
    /// The first metric's target (utilization % or value in units).
    pub target: Option<f64>,
    /// The same three figures for each further metric of the spec, in order.
    pub more_metrics: Vec<MetricPoint>,
    /// The combined recommendation before normalization.
    pub raw_recommendation: Option<i32>,
    pub simulated_replicas: i32,
    /// ScalingLimited / ScalingActive reason when it is not the plain case.
    pub reason: String,
    /// The metric (index in the defaulted spec) whose proposal was the combined
    /// recommendation: the one that drove a step, or asked for the count kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<usize>,
}

/// One metric at one tick: recorded value, value as the simulated pods report it, target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricPoint {
    pub recorded: Option<f64>,
    pub simulated: Option<f64>,
    pub target: Option<f64>,
}

fn value_at(series: &Series, t: i64) -> Option<f64> {
    let idx = series.partition_point(|(ts, _)| *ts <= t);
    if idx == 0 {
        return None;
    }
    let v = series[idx - 1].1;
    v.is_finite().then_some(v)
}

fn actual_at(a: &ActualReplicas, t: i64) -> Option<f64> {
    match a {
        ActualReplicas::Constant(c) => Some(*c),
        ActualReplicas::Series(s) => value_at(s, t),
    }
}

/// The target of a metric in the units of its series (utilization % or units).
pub fn series_target(m: &MetricSpec) -> Option<f64> {
    let t = match m.kind.as_str() {
        "Resource" => &m.resource.as_ref()?.target,
        "ContainerResource" => &m.container_resource.as_ref()?.target,
        "Pods" => &m.pods.as_ref()?.target,
        "Object" => &m.object.as_ref()?.target,
        "External" => &m.external.as_ref()?.target,
        _ => return None,
    };
    if let Some(v) = &t.average_value {
        return Some(v.as_f64());
    }
    if let Some(u) = t.average_utilization {
        return Some(f64::from(u));
    }
    t.value.as_ref().map(Quantity::as_f64)
}

fn is_per_pod(m: &MetricSpec) -> bool {
    matches!(m.kind.as_str(), "Resource" | "ContainerResource" | "Pods")
}

fn is_utilization(m: &MetricSpec) -> bool {
    let t = match m.kind.as_str() {
        "Resource" => m.resource.as_ref().map(|r| &r.target),
        "ContainerResource" => m.container_resource.as_ref().map(|r| &r.target),
        _ => None,
    };
    t.is_some_and(|t| t.average_value.is_none())
}

const REQUEST_MILLI: i64 = 1000;

/// What the metrics APIs would return for `value` in the units of the metric's series:
/// every pod reporting `value` (for Utilization targets `value` percent of the pod's own
/// request, the per-pod average otherwise) for per-pod metrics, the value itself for Object
/// and External metrics.
pub fn synthetic_observation(m: &MetricSpec, value: f64, pods: &[Pod], t: i64) -> Observed {
    if is_per_pod(m) {
        let utilization = is_utilization(m);
        Observed::Pods(
            pods.iter()
                .map(|p| {
                    let milli = if utilization {
                        to_milli(value * request_milli(m, p) as f64 / 100_000.0)
                    } else {
                        to_milli(value)
                    };
                    (
                        p.name.clone(),
                        PodSample {
                            milli,
                            timestamp_ms: t,
                            window_ms: 30_000,
                        },
                    )
                })
                .collect(),
        )
    } else if m.kind == "Object" {
        Observed::Object(to_milli(value))
    } else {
        Observed::External(vec![to_milli(value)])
    }
}

/// The pod's request (milli) for a Resource or ContainerResource metric's resource: the
/// pod-level request when set, else summed over its containers, or the named container's;
/// missing requests count as zero (the controller then reports them).
fn request_milli(m: &MetricSpec, pod: &Pod) -> i64 {
    let (resource, container) = match (&m.resource, &m.container_resource) {
        (Some(r), _) if m.kind == "Resource" => (r.name.as_str(), None),
        (_, Some(r)) if m.kind == "ContainerResource" => {
            (r.name.as_str(), Some(r.container.as_str()))
        }
        _ => return 0,
    };
    if container.is_none() {
        if let Some(q) = pod.pod_requests.get(resource) {
            return q.milli_value();
        }
    }
    pod.containers
        .iter()
        .filter(|c| container.is_none_or(|n| n == c.name))
        .filter_map(|c| c.requests.get(resource))
        .fold(0i64, |acc, q| acc.saturating_add(q.milli_value()))
}

/// `n` Running, Ready pods with a 1000m request for every resource the metrics name.
pub fn synth_pods(spec: &HpaSpec, n: i32) -> Vec<Pod> {
    let mut requests = BTreeMap::new();
    let mut containers: Vec<Container> = Vec::new();
    for m in spec.effective_metrics() {
        if let Some(r) = &m.resource {
            requests.insert(r.name.clone(), Quantity::from_milli(REQUEST_MILLI));
        }
        if let Some(r) = &m.container_resource {
            let request = (r.name.clone(), Quantity::from_milli(REQUEST_MILLI));
            match containers.iter_mut().find(|c| c.name == r.container) {
                Some(c) => {
                    c.requests.insert(request.0, request.1);
                }
                None => containers.push(Container {
                    name: r.container.clone(),
                    requests: BTreeMap::from([request]),
                }),
            }
        }
    }
    if containers.is_empty() {
        containers.push(Container {
            name: "app".into(),
            requests: BTreeMap::new(),
        });
    }
    // Resource metrics need a request in every container.
    for c in &mut containers {
        for (name, q) in &requests {
            c.requests.entry(name.clone()).or_insert(*q);
        }
    }
    (0..n.max(0))
        .map(|i| Pod {
            name: format!("sim-{i}"),
            phase: PodPhase::Running,
            ready: Some(ConditionStatus::True),
            ready_since_ms: i64::MIN / 4,
            start_time_ms: Some(i64::MIN / 4),
            deleting: false,
            containers: containers.clone(),
            pod_requests: BTreeMap::new(),
        })
        .collect()
}

fn to_milli(v: f64) -> i64 {
    let m = (v * 1000.0).round();
    if m >= i64::MAX as f64 {
        i64::MAX
    } else if m <= i64::MIN as f64 {
        i64::MIN
    } else {
        m as i64
    }
}

/// The longest simulation run (about 6 months at 15 s).
pub const MAX_TICKS: i64 = 1_000_000;

/// Run the simulation.
pub fn simulate(input: &SimulationInput) -> Result<Vec<Tick>, Error> {
    if input.step_ms <= 0 {
        return Err(Error::Input("the step must be positive".into()));
    }
    if input.end_ms < input.start_ms {
        return Err(Error::Input("the end is before the start".into()));
    }
    let count = input.end_ms.saturating_sub(input.start_ms) / input.step_ms + 1;
    if count > MAX_TICKS {
        return Err(Error::Input(format!(
            "{count} ticks requested; at most {MAX_TICKS} are simulated (use a longer step or a shorter range)"
        )));
    }
    let metrics = input.spec.effective_metrics();
    let mut replicas = match input.initial_replicas {
        Some(r) => r,
        None => actual_at(&input.actual, input.start_ms)
            .map(|a| a.round() as i32)
            .unwrap_or_else(|| input.spec.min_replicas()),
    };
    // A replay that starts at zero with minReplicas 0 is taken to start where the HPA
    // scaled the target to zero itself (ScaledToZero True), not at a manual zero.
    let mut state = ControllerState {
        scaled_to_zero: replicas == 0 && input.spec.min_replicas() == 0,
        ..ControllerState::default()
    };
    let mut ticks = Vec::new();
    let mut t = input.start_ms;
    let long_ago = i64::MIN / 4;
    let mut created: Vec<i64> = vec![long_ago; replicas.max(0) as usize];
    while t <= input.end_ms {
        let actual = actual_at(&input.actual, t);
        let mut pods = synth_pods(&input.spec, replicas);
        if input.pod_startup_ms > 0 {
            for (p, c) in pods.iter_mut().zip(&created) {
                let ready_at = c.saturating_add(input.pod_startup_ms);
                let ready = ready_at <= t;
                p.ready = Some(ready.into());
                p.start_time_ms = Some(*c);
                p.ready_since_ms = if ready { ready_at } else { *c };
            }
        }
        let serving: Vec<Pod> = pods
            .iter()
            .filter(|p| p.ready == Some(ConditionStatus::True))
            .cloned()
            .collect();
        let serving_count = serving.len() as i32;
        let mut sims: Vec<Option<f64>> = vec![None; metrics.len()];
        let observed: Vec<Observed> = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let Some(v) = input.metrics.get(i).and_then(|s| value_at(s, t)) else {
                    return Observed::Error("no data for this metric at this time".into());
                };
                if is_per_pod(m) {
                    let Some(a) = actual else {
                        return Observed::Error("no replica count at this time".into());
                    };
                    let per_pod = if serving_count > 0 {
                        v * a / f64::from(serving_count)
                    } else {
                        0.0
                    };
                    sims[i] = Some(per_pod);
                    synthetic_observation(m, per_pod, &serving, t)
                } else {
                    sims[i] = Some(v);
                    synthetic_observation(m, v, &pods, t)
                }
            })
            .collect();
        let tick = TickInput {
            spec_replicas: replicas,
            status_replicas: replicas,
            pods: &pods,
            metrics: MetricsInput::Observed(&observed),
            now_ms: t,
            selector_error: None,
        };
        let out = reconcile(&input.spec, &input.config, &mut state, &tick);
        let reason = match (
            out.conditions.get("ScalingActive"),
            out.conditions.get("ScalingLimited"),
        ) {
            (Some(a), _) if a.status == "False" => a.reason.clone(),
            (_, Some(l)) if l.status == "True" => l.reason.clone(),
            _ => match out.conditions.get("AbleToScale") {
                Some(s) if s.reason.ends_with("Stabilized") => s.reason.clone(),
                _ => String::new(),
            },
        };
        let driver = driving_metric(&out);
        replicas = out.desired_replicas;
        let want = replicas.max(0) as usize;
        while created.len() < want {
            created.push(t);
        }
        created.truncate(want);
        ticks.push(Tick {
            timestamp_ms: t,
            actual_replicas: actual,
            metric: input.metrics.first().and_then(|s| value_at(s, t)),
            simulated_metric: sims.first().copied().flatten(),
            target: metrics.first().and_then(series_target),
            more_metrics: (1..metrics.len())
                .map(|i| MetricPoint {
                    recorded: input.metrics.get(i).and_then(|s| value_at(s, t)),
                    simulated: sims.get(i).copied().flatten(),
                    target: series_target(&metrics[i]),
                })
                .collect(),
            raw_recommendation: out.raw_recommendation,
            simulated_replicas: replicas,
            reason,
            driver,
        });
        match t.checked_add(input.step_ms) {
            Some(next) => t = next,
            None => break,
        }
    }
    Ok(ticks)
}

/// The metric whose proposal the reconcile combined into its recommendation (the first of
/// the highest, as the controller picks it).
fn driving_metric(out: &crate::controller::Outcome) -> Option<usize> {
    out.raw_recommendation?;
    let mut best: Option<(usize, i32)> = None;
    for (i, m) in out.metrics.iter().enumerate() {
        if let Ok(p) = m {
            if best.is_none_or(|(_, r)| r == 0 || p.replicas > r) {
                best = Some((i, p.replicas));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Fetch a series with a range query; the first series of the result is used.
pub async fn fetch_series<B: Backend + ?Sized>(
    backend: &B,
    promql: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Series, Error> {
    let v = backend
        .query_range(promql, start_ms, end_ms, step_ms)
        .await
        .map_err(|e| Error::Input(format!("range query {promql:?}: {e}")))?;
    match v {
        QueryValue::Matrix(series) => Ok(series
            .into_iter()
            .next()
            .map(|s| s.points)
            .unwrap_or_default()),
        other => Err(Error::Input(format!(
            "range query {promql:?} returned a {}, not a matrix",
            other.type_name()
        ))),
    }
}

/// Fetch every metric series (one query per metric) and the actual replica count (a query,
/// or a constant) over `input`'s range, then simulate. `input.metrics` and `input.actual`
/// are replaced by what the backend returns.
pub async fn simulate_from_backend<B: Backend + ?Sized>(
    backend: &B,
    mut input: SimulationInput,
    metric_queries: &[String],
    replicas: Result<&str, f64>,
) -> Result<Vec<Tick>, Error> {
    let (start, end, step) = (input.start_ms, input.end_ms, input.step_ms);
    input.metrics.clear();
    for q in metric_queries {
        input
            .metrics
            .push(fetch_series(backend, q, start, end, step).await?);
    }
    input.actual = match replicas {
        Ok(q) => ActualReplicas::Series(fetch_series(backend, q, start, end, step).await?),
        Err(c) => ActualReplicas::Constant(c),
    };
    simulate(&input)
}

fn opt(v: Option<f64>) -> String {
    v.map(round3).unwrap_or_default()
}

/// A number with at most three decimals and no trailing zeros (`0.1`, `42`, `-3.333`).
fn round3(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let s = format!("{:.3}", x);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The CSV column of metric `i` (`metric`, `metric_2`, ...).
fn metric_column(i: usize) -> String {
    if i == 0 {
        "metric".to_string()
    } else {
        format!("metric_{}", i + 1)
    }
}

/// The ticks as CSV, with a header line.
pub fn to_csv(ticks: &[Tick]) -> String {
    let mut s = String::from(
        "timestamp,actual_replicas,simulated_replicas,metric,simulated_metric,target,raw_recommendation,reason,driver",
    );
    let more = ticks.first().map_or(0, |t| t.more_metrics.len());
    for k in 2..more + 2 {
        let _ = write!(s, ",metric_{k},simulated_metric_{k},target_{k}");
    }
    s.push('\n');
    for t in ticks {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            format_rfc3339(t.timestamp_ms),
            opt(t.actual_replicas),
            t.simulated_replicas,
            opt(t.metric),
            opt(t.simulated_metric),
            opt(t.target),
            t.raw_recommendation
                .map(|r| r.to_string())
                .unwrap_or_default(),
            t.reason,
            t.driver.map(metric_column).unwrap_or_default()
        );
        for p in &t.more_metrics {
            let _ = write!(
                s,
                ",{},{},{}",
                opt(p.recorded),
                opt(p.simulated),
                opt(p.target)
            );
        }
        s.push('\n');
    }
    s
}

/// Several runs as one CSV: a leading `run` column names the run of each row.
pub fn to_csv_runs(runs: &[(&str, &[Tick])]) -> String {
    let mut out = String::new();
    for (i, (label, ticks)) in runs.iter().enumerate() {
        for (n, line) in to_csv(ticks).lines().enumerate() {
            if n == 0 {
                if i == 0 {
                    let _ = writeln!(out, "run,{line}");
                }
                continue;
            }
            let _ = writeln!(out, "{},{line}", label.replace(',', " "));
        }
    }
    out
}

pub use promhpa_core::time::format_rfc3339;

/// Parse a time: RFC 3339 (`2024-05-01T12:00:00Z`, offsets and fractions allowed) or Unix
/// seconds (`1714564800`, `1714564800.5`). Returns milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, Error> {
    let s = s.trim();
    promhpa_core::time::parse_api_time_ms(s).ok_or_else(|| {
        Error::Input(format!(
            "invalid time {s:?}: expected RFC 3339 or Unix seconds"
        ))
    })
}

/// Parse history data: CSV with a header (`timestamp`, optional `replicas`, and one value
/// column per metric in spec order), or JSON (an array of objects with `timestamp`, `value`
/// or `values`, and optional `replicas`). Returns the metric series and the replica series
/// (empty when the data has none).
pub fn parse_data(text: &str) -> Result<(Vec<Series>, Series), Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return parse_json_data(trimmed);
    }
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| Error::Input("empty data file".into()))?
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let ts_col = header
        .iter()
        .position(|h| h == "timestamp" || h == "time")
        .ok_or_else(|| Error::Input("the CSV header needs a timestamp column".into()))?;
    let rep_col = header.iter().position(|h| h == "replicas");
    let value_cols: Vec<usize> = (0..header.len())
        .filter(|i| *i != ts_col && Some(*i) != rep_col)
        .collect();
    if value_cols.is_empty() {
        return Err(Error::Input("the CSV has no value column".into()));
    }
    let mut metrics = vec![Series::new(); value_cols.len()];
    let mut replicas = Series::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let t = parse_time(cell(ts_col))?;
        let num = |i: usize| -> Result<Option<f64>, Error> {
            let c = cell(i);
            if c.is_empty() {
                return Ok(None);
            }
            c.parse::<f64>()
                .map(Some)
                .map_err(|_| Error::Input(format!("line {}: {c:?} is not a number", n + 2)))
        };
        for (k, col) in value_cols.iter().enumerate() {
            if let Some(v) = num(*col)? {
                metrics[k].push((t, v));
            }
        }
        if let Some(c) = rep_col {
            if let Some(v) = num(c)? {
                replicas.push((t, v));
            }
        }
    }
    for s in metrics.iter_mut() {
        s.sort_by_key(|p| p.0);
    }
    replicas.sort_by_key(|p| p.0);
    Ok((metrics, replicas))
}

fn parse_json_data(text: &str) -> Result<(Vec<Series>, Series), Error> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| Error::Input(format!("invalid JSON data: {e}")))?;
    let mut metrics: Vec<Series> = Vec::new();
    let mut replicas = Series::new();
    for (n, row) in rows.iter().enumerate() {
        let bad = |m: &str| Error::Input(format!("row {n}: {m}"));
        let t = match row.get("timestamp") {
            Some(serde_json::Value::String(s)) => parse_time(s)?,
            Some(serde_json::Value::Number(x)) => {
                (x.as_f64().ok_or_else(|| bad("bad timestamp"))? * 1000.0).round() as i64
            }
            _ => return Err(bad("missing timestamp")),
        };
        let values: Vec<f64> = match (row.get("value"), row.get("values")) {
            (Some(v), _) => vec![v.as_f64().ok_or_else(|| bad("value is not a number"))?],
            (None, Some(serde_json::Value::Array(a))) => a
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| bad("values must be numbers")))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("missing value")),
        };
        if metrics.len() < values.len() {
            metrics.resize(values.len(), Series::new());
        }
        for (k, v) in values.into_iter().enumerate() {
            metrics[k].push((t, v));
        }
        if let Some(r) = row.get("replicas").and_then(serde_json::Value::as_f64) {
            replicas.push((t, r));
        }
    }
    for s in metrics.iter_mut() {
        s.sort_by_key(|p| p.0);
    }
    replicas.sort_by_key(|p| p.0);
    Ok((metrics, replicas))
}

/// A chart line: legend name, colour, points, drawn as steps.
type ChartLine<'a> = (String, &'a str, Vec<(i64, f64)>, bool);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG chart: actual vs simulated replicas (top), metric vs target (bottom).
pub fn to_svg(ticks: &[Tick], title: &str) -> String {
    to_svg_runs(&[("simulated", ticks)], title)
}

const PALETTE: [(&str, &str); 4] = [
    ("#d62728", "#1f77b4"),
    ("#9467bd", "#17becf"),
    ("#ff7f0e", "#8c564b"),
    ("#e377c2", "#bcbd22"),
];

/// An SVG chart of several simulations over the same history (for example two `behavior`
/// settings): actual and each run's replicas (top), recorded metric, each run's metric and
/// the target (bottom). The first run gives the actual replicas, metric and target.
pub fn to_svg_runs(runs: &[(&str, &[Tick])], title: &str) -> String {
    to_svg_named(runs, title, &[])
}

/// [`to_svg_runs`] with one metric panel per metric of the spec, each labelled with its
/// name from `metric_names` (in spec order; "metric N" where none is given).
pub fn to_svg_named(runs: &[(&str, &[Tick])], title: &str, metric_names: &[String]) -> String {
    let metrics: Vec<ChartMetric> = metric_names
        .iter()
        .map(|n| ChartMetric {
            name: n.clone(),
            unit: String::new(),
        })
        .collect();
    to_svg_chart(runs, title, &metrics)
}

/// A metric panel's title and the unit of its values (its y axis).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartMetric {
    pub name: String,
    pub unit: String,
}

impl ChartMetric {
    /// The panel of one `spec.metrics` entry: its controller name, and its unit from the
    /// target type (percent of request for utilization, per pod for averages).
    pub fn of(m: &MetricSpec) -> ChartMetric {
        let unit = if is_utilization(m) {
            "% of request"
        } else if is_per_pod(m) {
            "per pod"
        } else {
            match m.external.as_ref().map(|e| e.target.kind.as_str()) {
                Some("AverageValue") => "total over all pods' share",
                _ => "value",
            }
        };
        ChartMetric {
            name: crate::calc::metric_name(m),
            unit: unit.to_string(),
        }
    }
}

/// What a reason code of a tick means on the chart, and its colour.
fn reason_label(reason: &str) -> Option<(&'static str, &'static str)> {
    Some(match reason {
        "ScaleDownStabilized" => ("stabilization window holds a scale-down", "#f2c14e"),
        "ScaleUpStabilized" => ("stabilization window holds a scale-up", "#f7dc9c"),
        "ScaleUpLimit" | "ScaleDownLimit" => ("rate limit (scaling policies)", "#e07a5f"),
        "TooManyReplicas" => ("clamped at maxReplicas", "#b5179e"),
        "TooFewReplicas" => ("clamped at minReplicas", "#7b9acc"),
        "ScalingDisabled" => ("target at zero, HPA disabled", "#555555"),
        "" => return None,
        _ => ("metrics could not be computed", "#999999"),
    })
}

/// A chart of several simulations over the same history: actual and each run's replicas
/// (top) above a strip saying why the first run's replica line moved or stayed (the
/// metric that drove each step, stabilization holding a scale-down, a rate limit, the
/// min/max clamp), then one panel per metric with its unit.
pub fn to_svg_chart(runs: &[(&str, &[Tick])], title: &str, metric_info: &[ChartMetric]) -> String {
    let ticks: &[Tick] = runs.first().map(|r| r.1).unwrap_or(&[]);
    let n_metrics = 1 + ticks.first().map_or(0, |t| t.more_metrics.len());
    const W: f64 = 1000.0;
    const PANEL_H: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const GAP: f64 = 50.0;
    const STRIP_GAP: f64 = 70.0;
    let h = TOP + (PANEL_H + GAP) * (1 + n_metrics) as f64 + STRIP_GAP + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        esc(title)
    );
    if ticks.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let t0 = ticks[0].timestamp_ms as f64;
    let t1 = (ticks[ticks.len() - 1].timestamp_ms as f64).max(t0 + 1.0);
    let x = |t: i64| LEFT + (t as f64 - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let panel = |s: &mut String,
                 top: f64,
                 label: &str,
                 unit: &str,
                 lines: &[ChartLine],
                 whole: bool| {
        let maxv = lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let maxv = if maxv <= 0.0 {
            if whole {
                4.0
            } else {
                1.0
            }
        } else if whole {
            // Whole numbers (replica counts) on every grid line.
            (maxv * 1.1 / 4.0).ceil().max(1.0) * 4.0
        } else {
            nice_ceil(maxv * 1.1)
        };
        let y = |v: f64| top + PANEL_H - v / maxv * PANEL_H;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
            W - LEFT - RIGHT
        );
        for k in 0..=4 {
            let v = maxv * f64::from(k) / 4.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 5.0,
                yy + 4.0,
                fmt_num(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" >{}</text>"#,
            top - 6.0,
            esc(label)
        );
        if !unit.is_empty() {
            let (ux, uy) = (14.0, top + PANEL_H / 2.0);
            let _ = writeln!(
                s,
                r##"<text x="{ux}" y="{uy:.1}" transform="rotate(-90 {ux} {uy:.1})" text-anchor="middle" fill="#444">{}</text>"##,
                esc(unit)
            );
        }
        let mut lx = W - RIGHT - 10.0;
        for (name, color, pts, step) in lines.iter().rev() {
            if pts.is_empty() {
                continue;
            }
            let mut d = String::new();
            let mut prev: Option<f64> = None;
            for (t, v) in pts {
                let (xx, yy) = (x(*t), y(*v));
                match prev {
                    None => {
                        let _ = write!(d, "M{xx:.1},{yy:.1}");
                    }
                    Some(py) if *step => {
                        let _ = write!(d, " L{xx:.1},{py:.1} L{xx:.1},{yy:.1}");
                    }
                    Some(_) => {
                        let _ = write!(d, " L{xx:.1},{yy:.1}");
                    }
                }
                prev = Some(yy);
            }
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.8"/>"#
            );
            lx -= 8.0 * name.len() as f64 + 24.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.0}" x2="{:.0}" y1="{:.0}" y2="{:.0}" stroke="{color}" stroke-width="3"/><text x="{:.0}" y="{:.0}">{}</text>"#,
                lx + 14.0,
                top - 10.0,
                top - 10.0,
                lx + 18.0,
                top - 6.0,
                esc(name)
            );
        }
    };
    let series = |f: &dyn Fn(&Tick) -> Option<f64>, ticks: &[Tick]| -> Vec<(i64, f64)> {
        ticks
            .iter()
            .filter_map(|t| f(t).map(|v| (t.timestamp_ms, v)))
            .collect()
    };
    let mut replica_lines: Vec<ChartLine> = vec![(
        "actual".into(),
        "#888888",
        series(&|t| t.actual_replicas, ticks),
        true,
    )];
    for (i, (label, run)) in runs.iter().enumerate() {
        let (c1, _) = PALETTE[i % PALETTE.len()];
        replica_lines.push((
            (*label).to_string(),
            c1,
            series(&|t| Some(f64::from(t.simulated_replicas)), run),
            true,
        ));
    }
    panel(
        &mut s,
        TOP + 10.0,
        "replicas",
        "replicas (pods)",
        &replica_lines,
        true,
    );
    let strip_top = TOP + 10.0 + PANEL_H + 24.0;
    why_strip(&mut s, ticks, metric_info, &x, (TOP + 10.0, strip_top), W);
    let mut top2 = TOP + 10.0 + STRIP_GAP;
    for k in 0..n_metrics {
        // The k-th metric's recorded, simulated and target figures of a tick.
        let point = move |t: &Tick| -> MetricPoint {
            if k == 0 {
                MetricPoint {
                    recorded: t.metric,
                    simulated: t.simulated_metric,
                    target: t.target,
                }
            } else {
                t.more_metrics.get(k - 1).copied().unwrap_or_default()
            }
        };
        let mut lines: Vec<ChartLine> = vec![(
            "recorded".into(),
            "#888888",
            series(&|t| point(t).recorded, ticks),
            false,
        )];
        for (i, (label, run)) in runs.iter().enumerate() {
            let (_, c2) = PALETTE[i % PALETTE.len()];
            lines.push((
                (*label).to_string(),
                c2,
                series(&|t| point(t).simulated, run),
                false,
            ));
        }
        lines.push((
            "target".into(),
            "#2ca02c",
            series(&|t| point(t).target, ticks),
            false,
        ));
        let name = metric_info
            .get(k)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| {
                if n_metrics == 1 {
                    "metric".to_string()
                } else {
                    format!("metric {}", k + 1)
                }
            });
        let unit = metric_info.get(k).map_or("", |m| m.unit.as_str());
        top2 += PANEL_H + GAP;
        panel(&mut s, top2, &name, unit, &lines, false);
    }
    let (t0_ms, t1_ms) = (t0 as i64, t1 as i64);
    let every = time_tick_ms(t1_ms - t0_ms);
    let mut t = t0_ms.div_euclid(every) * every;
    if t < t0_ms {
        t += every;
    }
    while t <= t1_ms {
        let xx = x(t);
        let label = format_rfc3339(t);
        let short = if t1_ms - t0_ms > 86_400_000 {
            format!(
                "{} {}",
                label.get(5..10).unwrap_or(""),
                label.get(11..16).unwrap_or("")
            )
        } else if every < 60_000 {
            label.get(11..19).unwrap_or(&label).to_string()
        } else {
            label.get(11..16).unwrap_or(&label).to_string()
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{short}</text>"##,
            top2 + PANEL_H,
            top2 + PANEL_H + 4.0,
            top2 + PANEL_H + 16.0
        );
        t += every;
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#666">time (UTC), {} .. {}</text>"##,
        top2 + PANEL_H + 34.0,
        format_rfc3339(t0 as i64),
        format_rfc3339(t1 as i64)
    );
    s.push_str("</svg>\n");
    s
}

/// The strip under the replicas panel: one coloured cell per tick whose outcome was held or
/// limited, a legend of the reasons present, and at each step of the replica line a label
/// with the new count and the metric that asked for it.
fn why_strip(
    s: &mut String,
    ticks: &[Tick],
    metric_info: &[ChartMetric],
    x: &dyn Fn(i64) -> f64,
    (panel_top, top): (f64, f64),
    width: f64,
) {
    const STRIP_H: f64 = 14.0;
    const PANEL_H: f64 = 220.0;
    let _ = writeln!(
        s,
        r##"<text x="14" y="{:.1}" fill="#444">why</text>"##,
        top + STRIP_H - 3.0
    );
    let mut present: Vec<(&str, &str)> = Vec::new();
    for (i, t) in ticks.iter().enumerate() {
        let Some((label, color)) = reason_label(&t.reason) else {
            continue;
        };
        let x0 = x(t.timestamp_ms);
        let x1 = ticks.get(i + 1).map_or(x0 + 2.0, |n| x(n.timestamp_ms));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{STRIP_H}" fill="{color}"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            esc(&t.reason)
        );
        if !present.iter().any(|(l, _)| *l == label) {
            present.push((label, color));
        }
    }
    let mut lx = 70.0;
    let ly = top + STRIP_H + 16.0;
    for (label, color) in &present {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="{:.0}" width="12" height="10" fill="{color}"/><text x="{:.0}" y="{ly:.0}">{}</text>"#,
            ly - 9.0,
            lx + 16.0,
            esc(label)
        );
        lx += 7.0 * label.len() as f64 + 34.0;
        if lx > width - 150.0 {
            break;
        }
    }
    // Step labels on the replicas panel, skipped where they would overlap the previous.
    let max_replicas = ticks
        .iter()
        .map(|t| t.simulated_replicas)
        .chain(
            ticks
                .iter()
                .filter_map(|t| t.actual_replicas.map(|a| a.ceil() as i32)),
        )
        .max()
        .unwrap_or(0);
    let scale = if max_replicas <= 0 {
        4.0
    } else {
        (f64::from(max_replicas) * 1.1 / 4.0).ceil().max(1.0) * 4.0
    };
    let mut last_x = f64::MIN;
    for w in ticks.windows(2) {
        let (prev, t) = (&w[0], &w[1]);
        if t.simulated_replicas == prev.simulated_replicas {
            continue;
        }
        let xx = x(t.timestamp_ms);
        if xx - last_x < 90.0 {
            continue;
        }
        last_x = xx;
        let by = match t.driver {
            Some(i) => short_metric(metric_info, i),
            None => String::new(),
        };
        let why = match (t.reason.as_str(), by.is_empty()) {
            ("", true) => String::new(),
            ("", false) => format!(" by {by}"),
            (r, true) => format!(" ({r})"),
            (r, false) => format!(" by {by} ({r})"),
        };
        let arrow = if t.simulated_replicas > prev.simulated_replicas {
            "▲"
        } else {
            "▼"
        };
        let yy = panel_top + PANEL_H - f64::from(t.simulated_replicas) / scale * PANEL_H;
        let yy = (yy - 6.0).max(panel_top + 12.0);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{yy:.1}" font-size="10" fill="#333">{arrow}{}{}</text>"##,
            xx + 3.0,
            t.simulated_replicas,
            esc(&why)
        );
    }
}

/// A metric's name short enough for a label on the chart.
fn short_metric(metric_info: &[ChartMetric], i: usize) -> String {
    let name = metric_info
        .get(i)
        .map(|m| m.name.as_str())
        .unwrap_or_default();
    let name = name.split('(').next().unwrap_or(name).trim();
    // `cpu resource utilization`, `memory resource`: the resource; `pods metric x`: x.
    let name = if name.contains(" resource") {
        name.split(' ').next().unwrap_or(name)
    } else {
        name.rsplit(' ').next().unwrap_or(name)
    };
    if name.is_empty() {
        format!("metric {}", i + 1)
    } else {
        name.to_string()
    }
}

/// The spacing of time-axis labels: a round interval giving at most eight labels.
fn time_tick_ms(span_ms: i64) -> i64 {
    const STEPS_S: [i64; 19] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
        86_400, 604_800,
    ];
    STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|every| span_ms / every <= 8)
        .unwrap_or_else(|| (span_ms / 8).max(1))
}

fn nice_ceil(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}
