//! What a metric request that fails is answered with: the [`ApiError`] (and so the
//! Kubernetes `Status`, [`crate::error`]) of a backend failure, of a query that could not
//! be rendered, and of a metric no rule serves, with the reason spelled out.

use std::collections::BTreeSet;

use promhpa_core::backend::BackendError;
use promhpa_core::lookup::GroupResource;
use promhpa_rules::{RenderError, Rule};

use crate::error::ApiError;
use crate::state::AppState;
use crate::types::{StatusDetails, CUSTOM_GROUP, EXTERNAL_GROUP};

/// A backend's failure to answer the query `promql` for `metric`: 503 when the backend is
/// unavailable or answers as Prometheus does not, 500 otherwise.
pub(super) fn backend_error(e: BackendError, metric: &str, rule: &Rule, promql: &str) -> ApiError {
    match e {
        BackendError::Unavailable { address, message } => ApiError::BackendUnavailable(format!(
            "unable to fetch metric \"{metric}\": backend {address} unavailable: {message}"
        )),
        // Not an answer Prometheus gives: a broken or foreign server, or a cut connection.
        BackendError::Protocol { address, message } => ApiError::BackendUnavailable(format!(
            "unable to fetch metric \"{metric}\": backend {address} unavailable: unexpected response: {message}"
        )),
        other => ApiError::Internal(format!(
            "unable to fetch metric \"{metric}\" ({}): {other}; query: {promql}",
            rule.path()
        )),
    }
}

/// A rule's failure to render the query for `metric`: 400 for a selector that cannot be
/// rendered, 404 for a request the rule has no label for (prometheus-adapter cannot build
/// that query either and answers that the metric is not found), 503 for a broken rule, 500
/// otherwise.
pub(super) fn render_error(e: RenderError, metric: &str) -> ApiError {
    match e {
        RenderError::InvalidSelectorKey { .. } | RenderError::UnsupportedOperator { .. } => {
            ApiError::BadRequest(format!("metric \"{metric}\": {e}"))
        }
        RenderError::NoLabelForResource { ref resource, .. } => {
            let hint = if resource == "namespaces" {
                " (a request in a namespace needs one: add e.g. `namespace: {resource: namespace}` to its resources.overrides)"
            } else {
                ""
            };
            ApiError::NotFound {
                message: format!("the server could not find the metric \"{metric}\" for this request: {e}{hint}"),
                details: None,
            }
        }
        RenderError::Broken { .. } => ApiError::Unavailable(format!(
            "unable to fetch metric \"{metric}\": {e}; fix the rule file (`promhpa check --config FILE` lists every problem)"
        )),
        other => ApiError::Internal(format!("metric \"{metric}\": {other}")),
    }
}

/// Why no rule serves the custom metric `metric` for `gr`, as the 404 `Status` answering it.
pub(super) fn unknown_metric(state: &AppState, metric: &str, gr: &GroupResource) -> ApiError {
    let snap = state.registry.snapshot();
    let served_for: BTreeSet<String> = snap
        .custom
        .keys()
        .filter(|(_, m)| m == metric)
        .map(|(g, _)| g.to_string())
        .collect();
    let why = if !served_for.is_empty() {
        format!(
            "it is served for {} only",
            served_for.into_iter().collect::<Vec<_>>().join(", ")
        )
    } else {
        let rules = state.registry.rules();
        let (broken, could) = candidates(&rules.custom, metric);
        if let Some(e) = discovery_failed(state, metric, &could) {
            return e;
        }
        if !broken.is_empty() && could.is_empty() {
            broken.join("; ")
        } else if could.is_empty() {
            let near = promhpa_rules::closest(
                metric,
                snap.custom
                    .keys()
                    .filter(|(g, _)| g == gr)
                    .map(|(_, m)| m.as_str()),
            );
            match near {
                Some(near) => format!(
                    "no rule in the configuration produces a metric of that name (did you mean \"{near}\"?)"
                ),
                None => "no rule in the configuration produces a metric of that name".to_string(),
            }
        } else {
            format!(
                "{} could produce it, but discovery found no series for it with a label for {gr} (seriesQuery within --metrics-max-age)",
                could.join(", ")
            )
        }
    };
    ApiError::UnknownMetric {
        message: format!("the server could not find the metric \"{metric}\" for {gr}: {why}"),
        details: StatusDetails {
            name: metric.to_string(),
            group: CUSTOM_GROUP.to_string(),
            kind: gr.to_string(),
        },
    }
}

/// Of the rules that could produce `metric`: why each broken one is broken, and the paths
/// of the others.
fn candidates<'a>(rules: &'a [Rule], metric: &str) -> (Vec<String>, Vec<&'a str>) {
    let (broken, could): (Vec<&Rule>, Vec<&Rule>) = rules
        .iter()
        .filter(|r| r.could_produce(metric))
        .partition(|r| r.broken().is_some());
    (
        broken
            .iter()
            .filter_map(|r| Some(format!("rule {} is broken: {}", r.origin(), r.broken()?)))
            .collect(),
        could.iter().map(|r| r.path()).collect(),
    )
}

/// When discovery failed for a rule that could produce `metric` (its backend down, most
/// likely), the metric is unavailable rather than unknown: a 503 that says why.
fn discovery_failed(state: &AppState, metric: &str, could: &[&str]) -> Option<ApiError> {
    let (rule, cause) = could
        .iter()
        .find_map(|r| Some((*r, state.registry.discovery_failure(r)?)))?;
    Some(ApiError::BackendUnavailable(format!(
        "unable to fetch metric \"{metric}\": discovering the series of {rule} failed: {cause}"
    )))
}

/// Why no rule serves the external metric `metric`, as the 404 `Status` answering it.
pub(super) fn unknown_external_metric(state: &AppState, metric: &str) -> ApiError {
    let rules = state.registry.rules();
    let (broken, could) = candidates(&rules.external, metric);
    if let Some(e) = discovery_failed(state, metric, &could) {
        return e;
    }
    let why = if !broken.is_empty() && could.is_empty() {
        broken.join("; ")
    } else if could.is_empty() {
        "no external rule in the configuration produces a metric of that name".to_string()
    } else {
        format!(
            "{} could produce it, but discovery found no series for it (seriesQuery within --metrics-max-age)",
            could.join(", ")
        )
    };
    ApiError::UnknownMetric {
        message: format!("the server could not find the external metric \"{metric}\": {why}"),
        details: StatusDetails {
            name: metric.to_string(),
            group: EXTERNAL_GROUP.to_string(),
            kind: String::new(),
        },
    }
}
