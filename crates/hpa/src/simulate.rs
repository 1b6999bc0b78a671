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

/// Whether a metric's series is a per-pod figure (Resource, ContainerResource, Pods), whose
/// total the simulation spreads over the simulated pods.
pub fn is_per_pod(m: &MetricSpec) -> bool {
    matches!(m.kind.as_str(), "Resource" | "ContainerResource" | "Pods")
}

/// Whether a metric's series is a utilization (% of request) rather than a value.
pub fn is_utilization(m: &MetricSpec) -> bool {
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

/// The pod's request (milli) for a Resource or ContainerResource metric's resource
/// ([`Pod::request_milli`]); a missing request counts as zero (the controller then reports
/// it).
fn request_milli(m: &MetricSpec, pod: &Pod) -> i64 {
    let (resource, container) = match (&m.resource, &m.container_resource) {
        (Some(r), _) if m.kind == "Resource" => (r.name.as_str(), None),
        (_, Some(r)) if m.kind == "ContainerResource" => {
            (r.name.as_str(), Some(r.container.as_str()))
        }
        _ => return 0,
    };
    pod.request_milli(resource, container).unwrap_or(0)
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
    let max = crate::MAX_SIMULATED_REPLICAS;
    let bad = |r: f64| !r.is_finite() || r < 0.0 || r > f64::from(max);
    let bad_actual = match &input.actual {
        ActualReplicas::Constant(c) => bad(*c).then_some(*c),
        ActualReplicas::Series(s) => s.iter().map(|p| p.1).find(|r| bad(*r)),
    };
    if let Some(r) = bad_actual {
        return Err(Error::Input(format!(
            "actual replica count {r}: replica counts are whole numbers from 0 to {max}"
        )));
    }
    if let Some(r) = input.initial_replicas.filter(|r| !(0..=max).contains(r)) {
        return Err(Error::Input(format!(
            "initial replica count {r}: replica counts are whole numbers from 0 to {max}"
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
        if replicas > max {
            return Err(Error::Input(format!(
                "the replay reached {replicas} replicas at {}; at most {max} are simulated, each as a pod",
                format_rfc3339(t)
            )));
        }
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
    let mut seen: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        // Every row has the header's cells (an empty one is a gap): a row that has more or
        // fewer was cut or shifted, and its values would land in the wrong columns.
        if cells.len() != header.len() {
            return Err(Error::Input(format!(
                "line {}: {} cells, but the header has {} (leave a cell empty for a missing value)",
                n + 2,
                cells.len(),
                header.len()
            )));
        }
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let t = parse_time(cell(ts_col))?;
        if let Some(first) = seen.insert(t, n + 2) {
            return Err(Error::Input(format!(
                "line {}: timestamp {:?} is already on line {first}",
                n + 2,
                cell(ts_col)
            )));
        }
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
    let mut seen = std::collections::BTreeSet::new();
    let mut width: Option<usize> = None;
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
        if !seen.insert(t) {
            return Err(bad("its timestamp is on an earlier row too"));
        }
        match width {
            Some(w) if w != values.len() => {
                return Err(bad(&format!(
                    "{} values, but earlier rows have {w}",
                    values.len()
                )))
            }
            _ => width = Some(values.len()),
        }
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
