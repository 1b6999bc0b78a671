//! The conformance-case format of `shared/conformance/hpa/*.yaml` (see its README): parsing
//! single cases and `steps:` sequences, running them through [`crate::reconcile`] and
//! comparing the outcome with the expectation.

use std::collections::BTreeMap;

use promhpa_core::duration::parse_go_duration_ms;
use promhpa_core::quantity::Quantity;
use serde::{Deserialize, Serialize};

use crate::calc::{
    ConditionStatus, Container, ControllerConfig, Observed, Pod, PodPhase, PodSample,
};
use crate::controller::{
    reconcile, ControllerState, MetricsInput, Outcome, Recommendation, ScaleEvent, TickInput,
};
use crate::spec::HpaSpec;
use crate::Error;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseYaml {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    controller: Option<ControllerYaml>,
    hpa: HpaSpec,
    scale: ScaleYaml,
    #[serde(default)]
    pods: Vec<PodYaml>,
    #[serde(default)]
    observed: Option<Vec<ObservedYaml>>,
    #[serde(default)]
    history: Option<HistoryYaml>,
    #[serde(default)]
    expect: Option<ExpectYaml>,
    #[serde(default)]
    steps: Option<Vec<StepYaml>>,
    /// Conditions already on the HPA's status before the first step (`ScaledToZero`).
    #[serde(default)]
    hpa_conditions: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ControllerYaml {
    tolerance: Option<f64>,
    cpu_initialization_period: Option<String>,
    initial_readiness_delay: Option<String>,
    downscale_stabilization: Option<String>,
    /// `condition`, `gate-off` or `legacy` (see [`crate::ZeroReplicas`]); a case without
    /// it describes the controller up to Kubernetes 1.35.
    zero_replicas: Option<crate::ZeroReplicas>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleYaml {
    spec: i32,
    status: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodYaml {
    name: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    ready: Option<serde_json::Value>,
    #[serde(default)]
    ready_since: Option<String>,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    deleting: bool,
    #[serde(default)]
    requests: Option<BTreeMap<String, Quantity>>,
    #[serde(default)]
    containers: Option<Vec<ContainerYaml>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerYaml {
    name: String,
    #[serde(default)]
    requests: BTreeMap<String, Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservedYaml {
    #[serde(default)]
    pods: Option<BTreeMap<String, Quantity>>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    object: Option<Quantity>,
    #[serde(default)]
    external: Option<Vec<Quantity>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct AtYaml {
    at: String,
    replicas: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryYaml {
    #[serde(default)]
    recommendations: Option<Vec<AtYaml>>,
    #[serde(default)]
    scale_up_events: Option<Vec<AtYaml>>,
    #[serde(default)]
    scale_down_events: Option<Vec<AtYaml>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectYaml {
    desired_replicas: i32,
    #[serde(default)]
    metrics: Option<Vec<ExpectMetric>>,
    #[serde(default)]
    conditions: Option<BTreeMap<String, ExpectCondition>>,
    #[serde(default)]
    history: Option<HistoryYaml>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectMetric {
    #[serde(default)]
    replicas: Option<i32>,
    #[serde(default)]
    utilization: Option<i32>,
    #[serde(default)]
    average: Option<Quantity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectCondition {
    status: String,
    reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepYaml {
    at: String,
    #[serde(default)]
    observed: Option<Vec<ObservedYaml>>,
    #[serde(default)]
    raw: Option<i32>,
    expect: ExpectYaml,
}

/// One parsed case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub description: String,
    pub config: ControllerConfig,
    pub hpa: HpaSpec,
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub pods: Vec<Pod>,
    pub state: ControllerState,
    pub steps: Vec<Step>,
}

/// One reconcile of a case and what it must produce.
#[derive(Debug, Clone)]
pub struct Step {
    pub at_ms: i64,
    pub input: StepInput,
    expect: ExpectYaml,
}

/// The metric input of a step.
#[derive(Debug, Clone)]
pub enum StepInput {
    Observed(Vec<Observed>),
    Raw(i32),
}

/// The outcome of running one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    /// The reconcile outcome of each step.
    pub outcomes: Vec<StepOutcome>,
}

/// The outcome of one step, with the controller's memory afterwards.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutcome {
    pub at_ms: i64,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub history: ControllerState,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn dur(id: &str, s: &str) -> Result<i64, Error> {
    parse_go_duration_ms(s).map_err(|e| Error::Case {
        id: id.to_string(),
        message: e.to_string(),
    })
}

fn convert_observed(id: &str, obs: &[ObservedYaml]) -> Result<Vec<Observed>, Error> {
    obs.iter()
        .map(|o| {
            if let Some(e) = &o.error {
                return Ok(Observed::Error(e.clone()));
            }
            if let Some(p) = &o.pods {
                let timestamp_ms = match &o.timestamp {
                    Some(t) => dur(id, t)?,
                    None => 0,
                };
                let window_ms = match &o.window {
                    Some(w) => dur(id, w)?,
                    None => 30_000,
                };
                return Ok(Observed::Pods(
                    p.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                PodSample {
                                    milli: v.milli_value(),
                                    timestamp_ms,
                                    window_ms,
                                },
                            )
                        })
                        .collect(),
                ));
            }
            if let Some(v) = &o.object {
                return Ok(Observed::Object(v.milli_value()));
            }
            if let Some(v) = &o.external {
                return Ok(Observed::External(
                    v.iter().map(Quantity::milli_value).collect(),
                ));
            }
            Ok(Observed::Nothing)
        })
        .collect()
}

fn convert_pod(id: &str, p: &PodYaml) -> Result<Pod, Error> {
    let bad = |m: String| Error::Case {
        id: id.to_string(),
        message: m,
    };
    let phase = match p.phase.as_deref() {
        None => PodPhase::Running,
        Some(name) => PodPhase::parse(name)
            .ok_or_else(|| bad(format!("pod {}: unknown phase {name}", p.name)))?,
    };
    let ready = match &p.ready {
        None => Some(ConditionStatus::True),
        Some(serde_json::Value::Bool(b)) => Some((*b).into()),
        Some(serde_json::Value::String(s)) if s == "absent" => None,
        Some(serde_json::Value::String(s)) if s == "Unknown" => Some(ConditionStatus::Unknown),
        Some(other) => return Err(bad(format!("pod {}: bad ready value {other:?}", p.name))),
    };
    let containers = match (&p.containers, &p.requests) {
        (Some(c), _) => c
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                requests: c.requests.clone(),
            })
            .collect(),
        (None, Some(r)) => vec![Container {
            name: "app".into(),
            requests: r.clone(),
        }],
        (None, None) => vec![Container {
            name: "app".into(),
            requests: BTreeMap::new(),
        }],
    };
    Ok(Pod {
        name: p.name.clone(),
        phase,
        ready,
        // A Ready condition without a transition time: Go's zero time, long before anything.
        ready_since_ms: match &p.ready_since {
            Some(s) => dur(id, s)?,
            None => i64::MIN / 4,
        },
        start_time_ms: p.start_time.as_deref().map(|s| dur(id, s)).transpose()?,
        deleting: p.deleting,
        containers,
        pod_requests: BTreeMap::new(),
    })
}

fn convert_history(id: &str, h: &HistoryYaml) -> Result<ControllerState, Error> {
    let recs = h
        .recommendations
        .iter()
        .flatten()
        .map(|r| {
            Ok(Recommendation {
                replicas: r.replicas,
                at_ms: dur(id, &r.at)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let events = |l: &Option<Vec<AtYaml>>| -> Result<Vec<ScaleEvent>, Error> {
        l.iter()
            .flatten()
            .map(|r| {
                Ok(ScaleEvent {
                    replicas: r.replicas,
                    at_ms: dur(id, &r.at)?,
                    outdated: false,
                })
            })
            .collect()
    };
    Ok(ControllerState {
        recommendations: Some(recs),
        scale_up_events: events(&h.scale_up_events)?,
        scale_down_events: events(&h.scale_down_events)?,
        scaled_to_zero: false,
    })
}

fn convert(c: CaseYaml) -> Result<Case, Error> {
    let id = c.id.clone();
    let mut config = ControllerConfig {
        zero_replicas: crate::ZeroReplicas::Legacy,
        ..ControllerConfig::default()
    };
    if let Some(k) = &c.controller {
        if let Some(t) = k.tolerance {
            config.tolerance = t;
        }
        if let Some(d) = &k.cpu_initialization_period {
            config.cpu_initialization_period_ms = dur(&id, d)?;
        }
        if let Some(d) = &k.initial_readiness_delay {
            config.initial_readiness_delay_ms = dur(&id, d)?;
        }
        if let Some(d) = &k.downscale_stabilization {
            config.downscale_stabilization_ms = dur(&id, d)?;
        }
        if let Some(z) = k.zero_replicas {
            config.zero_replicas = z;
        }
    }
    let pods = c
        .pods
        .iter()
        .map(|p| convert_pod(&id, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut state = match &c.history {
        Some(h) => convert_history(&id, h)?,
        None => ControllerState::default(),
    };
    for (name, status) in c.hpa_conditions.iter().flatten() {
        match (name.as_str(), status.as_str()) {
            ("ScaledToZero", "True") => state.scaled_to_zero = true,
            ("ScaledToZero", "False") => state.scaled_to_zero = false,
            _ => {
                return Err(Error::Case {
                    id,
                    message: format!(
                        "hpaConditions: only ScaledToZero: \"True\" or \"False\" is read, not {name}: {status:?}"
                    ),
                })
            }
        }
    }
    let steps = match (c.steps, c.observed, c.expect) {
        (Some(steps), None, None) => steps
            .into_iter()
            .map(|s| {
                let input = match (s.raw, &s.observed) {
                    (Some(r), None) => StepInput::Raw(r),
                    (None, Some(o)) => StepInput::Observed(convert_observed(&id, o)?),
                    _ => {
                        return Err(Error::Case {
                            id: id.clone(),
                            message: "a step needs exactly one of raw and observed".into(),
                        })
                    }
                };
                Ok(Step {
                    at_ms: dur(&id, &s.at)?,
                    input,
                    expect: s.expect,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
        (None, observed, Some(expect)) => vec![Step {
            at_ms: 0,
            input: StepInput::Observed(convert_observed(&id, &observed.unwrap_or_default())?),
            expect,
        }],
        _ => {
            return Err(Error::Case {
                id,
                message: "a case has either steps or expect (with observed)".into(),
            })
        }
    };
    Ok(Case {
        id: c.id,
        description: c.description.unwrap_or_default(),
        config,
        hpa: c.hpa,
        spec_replicas: c.scale.spec,
        status_replicas: c.scale.status,
        pods,
        state,
        steps,
    })
}

/// Parse every case of a file (documents separated by `---`). A document that does not
/// parse yields an error naming its position.
pub fn parse_cases(text: &str, source: &str) -> Vec<Result<Case, Error>> {
    let mut out = Vec::new();
    for (i, doc) in promhpa_core::yaml::documents::<CaseYaml>(text)
        .into_iter()
        .enumerate()
    {
        let parsed = doc.map_err(|e| Error::Yaml {
            context: format!("{source} document {}", i + 1),
            cause: e.to_string(),
        });
        out.push(parsed.and_then(convert));
    }
    out
}

fn history_set(
    id: &str,
    expected: &Option<Vec<AtYaml>>,
    actual: Vec<(i64, i32)>,
    what: &str,
    failures: &mut Vec<String>,
) {
    let Some(exp) = expected else { return };
    let mut want: Vec<(i64, i32)> = Vec::new();
    for e in exp {
        match dur(id, &e.at) {
            Ok(ms) => want.push((ms, e.replicas)),
            Err(err) => failures.push(err.to_string()),
        }
    }
    let mut got = actual;
    want.sort_unstable();
    got.sort_unstable();
    if want != got {
        let show = |v: &[(i64, i32)]| {
            v.iter()
                .map(|(t, r)| format!("{r}@{}s", *t as f64 / 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        failures.push(format!(
            "{what}: expected [{}], got [{}]",
            show(&want),
            show(&got)
        ));
    }
}

fn check(
    id: &str,
    step: &Step,
    outcome: &Outcome,
    state: &ControllerState,
    failures: &mut Vec<String>,
) {
    let e = &step.expect;
    let at = if step.at_ms != 0 || matches!(step.input, StepInput::Raw(_)) {
        format!("at {}s: ", step.at_ms as f64 / 1000.0)
    } else {
        String::new()
    };
    if outcome.desired_replicas != e.desired_replicas {
        failures.push(format!(
            "{at}desiredReplicas: expected {}, got {}",
            e.desired_replicas, outcome.desired_replicas
        ));
    }
    for (i, m) in e.metrics.iter().flatten().enumerate() {
        match outcome.metrics.get(i) {
            None => failures.push(format!("{at}metrics[{i}]: no proposal")),
            Some(Err(f)) => failures.push(format!(
                "{at}metrics[{i}]: expected a proposal, got {}: {}",
                f.reason, f.message
            )),
            Some(Ok(p)) => {
                if let Some(r) = m.replicas {
                    if r != p.replicas {
                        failures.push(format!(
                            "{at}metrics[{i}].replicas: expected {r}, got {}",
                            p.replicas
                        ));
                    }
                }
                if let Some(u) = m.utilization {
                    if Some(u) != p.utilization {
                        failures.push(format!(
                            "{at}metrics[{i}].utilization: expected {u}, got {:?}",
                            p.utilization
                        ));
                    }
                }
                if let Some(a) = &m.average {
                    if a.milli_value() != p.current_milli {
                        failures.push(format!(
                            "{at}metrics[{i}].average: expected {a}, got {}",
                            Quantity::from_milli(p.current_milli)
                        ));
                    }
                }
            }
        }
    }
    for (name, c) in e.conditions.iter().flatten() {
        match outcome.conditions.get(name) {
            None => failures.push(format!("{at}condition {name}: not set")),
            Some(got) => {
                if got.status != c.status || got.reason != c.reason {
                    failures.push(format!(
                        "{at}condition {name}: expected {}/{}, got {}/{}",
                        c.status, c.reason, got.status, got.reason
                    ));
                }
            }
        }
    }
    if let Some(h) = &e.history {
        let recs = state
            .recommendations
            .iter()
            .flatten()
            .map(|r| (r.at_ms, r.replicas))
            .collect();
        history_set(
            id,
            &h.recommendations,
            recs,
            &format!("{at}history.recommendations"),
            failures,
        );
        let ev = |l: &[ScaleEvent]| l.iter().map(|r| (r.at_ms, r.replicas)).collect();
        history_set(
            id,
            &h.scale_up_events,
            ev(&state.scale_up_events),
            &format!("{at}history.scaleUpEvents"),
            failures,
        );
        history_set(
            id,
            &h.scale_down_events,
            ev(&state.scale_down_events),
            &format!("{at}history.scaleDownEvents"),
            failures,
        );
    }
}

/// Run a case: every step in order, the controller keeping its memory, the scale target
/// adopting each step's desired replicas before the next.
pub fn run_case(case: &Case) -> CaseResult {
    let mut state = case.state.clone();
    let mut spec_replicas = case.spec_replicas;
    let mut status_replicas = case.status_replicas;
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for step in &case.steps {
        let metrics = match &step.input {
            StepInput::Observed(o) => MetricsInput::Observed(o),
            StepInput::Raw(r) => MetricsInput::Raw(*r),
        };
        let input = TickInput {
            spec_replicas,
            status_replicas,
            pods: &case.pods,
            metrics,
            now_ms: step.at_ms,
            selector_error: None,
        };
        let outcome = reconcile(&case.hpa, &case.config, &mut state, &input);
        check(&case.id, step, &outcome, &state, &mut failures);
        spec_replicas = outcome.desired_replicas;
        status_replicas = outcome.desired_replicas;
        outcomes.push(StepOutcome {
            at_ms: step.at_ms,
            outcome,
            history: state.clone(),
        });
    }
    CaseResult {
        id: case.id.clone(),
        failures,
        outcomes,
    }
}

/// Parse and run every case of a file's text.
pub fn run_text(text: &str, source: &str) -> Vec<CaseResult> {
    parse_cases(text, source)
        .into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            Ok(c) => run_case(&c),
            Err(e) => CaseResult {
                id: format!("{source}#{}", i + 1),
                failures: vec![e.to_string()],
                outcomes: Vec::new(),
            },
        })
        .collect()
}
