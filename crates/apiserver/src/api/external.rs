//! external.metrics.k8s.io (v1beta1): the values of a metric in a namespace, one per
//! series the rule's query answers with, selected by the HPA's metric selector. The rule
//! is found, its query rendered and sent, and the answer encoded; each step is timed as a
//! stage of the request.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::response::Response;
use promhpa_core::path::segments;
use promhpa_core::quantity::Quantity;
use promhpa_core::selector::LabelSelector;

use super::discovery::{external_group, external_resources, resources};
use super::errors::{render_error, unknown_external_metric};
use super::values::{forwarding, query_vector, range_window_seconds, unservable};
use crate::answer::{remembered, request_key};
use crate::apiserver_metrics::Counted;
use crate::error::ApiError;
use crate::metrics::{Stage, StageClock};
use crate::registry::Api;
use crate::request::{
    counted_as, json, not_found, parse_selector, query_params, refuse_watch, with_route,
};
use crate::state::AppState;
use crate::types::*;
use axum::response::IntoResponse as _;

/// Every `/apis/external.metrics.k8s.io` path: the group, its metrics, or a value.
pub(super) async fn handler(State(state): State<AppState>, req: Request) -> Response {
    let mut clock = StageClock::start(&state.metrics);
    let segs = segments(req.uri().path(), "/apis/external.metrics.k8s.io");
    let params = query_params(&req);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] => json(&external_group()),
        ["v1beta1"] => {
            let path = format!("/apis/{EXTERNAL_GROUP}/v1beta1");
            let own = external_resources(&state);
            resources(&state, Api::External, &path, req.headers(), own).await
        }
        ["v1beta1", "namespaces", ns, metric] => counted_as(
            Counted::external(&segs),
            value(&state, &mut clock, req, &params, ns, metric).await,
        ),
        _ => not_found(req).await,
    }
}

/// The answer to a value path: the values of `metric` in `ns`.
async fn value(
    state: &AppState,
    clock: &mut StageClock<'_>,
    req: Request,
    params: &BTreeMap<String, String>,
    ns: &str,
    metric: &str,
) -> Response {
    if let Err(e) = refuse_watch(params, &format!("{metric}.{EXTERNAL_GROUP}")) {
        return e.into_response();
    }
    let key = request_key(state, &req, params);
    let result = external_values(state, clock, ns, metric, params).await;
    if let Some((f, metric)) = forwarding(state, Api::External, req.headers(), &result) {
        let forwarded = f.forward(Api::External, &metric, req.uri()).await;
        return with_route("external/forwarded", forwarded);
    }
    with_route(
        "external/value",
        remembered(state, "external", key, result).await,
    )
}

/// The values of the external `metric` in `namespace`, one per series answered. The
/// route, render and encode stages are timed on `clock`; the backend and decode ones by
/// the query.
async fn external_values(
    state: &AppState,
    clock: &mut StageClock<'_>,
    namespace: &str,
    metric: &str,
    params: &BTreeMap<String, String>,
) -> Result<Response, ApiError> {
    // The HPA sends the metric selector as `labelSelector`; `metricLabelSelector` is
    // accepted too, and both are combined.
    let a = parse_selector(params, "labelSelector")?;
    let b = parse_selector(params, "metricLabelSelector")?;
    let selector = LabelSelector::from_requirements(
        a.requirements()
            .iter()
            .chain(b.requirements())
            .cloned()
            .collect(),
    );
    let Some(entry) = state.registry.external(metric, Some(namespace)).await else {
        return Err(unknown_external_metric(state, metric));
    };
    let Some(rule) = entry.rule() else {
        return Err(ApiError::Internal(format!(
            "metric \"{metric}\": registry refers to a missing rule"
        )));
    };
    clock.lap(Stage::Route);
    let promql = rule
        .render_external(&entry.series, Some(namespace), &selector)
        .map_err(|e| render_error(e, metric))?;
    clock.lap(Stage::Render);
    let samples = query_vector(state, &entry.backends, rule, metric, &promql).await?;
    clock.restart();
    let window = range_window_seconds(&promql);
    let mut items = Vec::new();
    let mut dropped = Vec::new();
    for s in &samples {
        let mut labels = s.labels.clone();
        labels.remove("__name__");
        match Quantity::from_f64_milli(s.value) {
            Some(q) => items.push(ExternalMetricValue {
                metric_name: metric.to_string(),
                metric_labels: labels,
                timestamp: rfc3339(s.timestamp_ms),
                window,
                value: q,
            }),
            None => {
                state.metrics.dropped_value(metric);
                tracing::warn!(metric, value = unservable(s.value), query = %promql, "value dropped: not a number a quantity holds");
                dropped.push(format!("{labels:?}: {}", unservable(s.value)));
            }
        }
    }
    if items.is_empty() {
        let message = if dropped.is_empty() {
            format!(
                "the query for external metric \"{metric}\" in namespace \"{namespace}\" returned no series; query: {promql}"
            )
        } else {
            format!(
                "external metric \"{metric}\" in namespace \"{namespace}\" has no value a quantity can hold (dropped {}); query: {promql}",
                dropped.join(", ")
            )
        };
        return Err(ApiError::NotFound {
            message,
            details: Some(StatusDetails {
                name: metric.to_string(),
                group: EXTERNAL_GROUP.to_string(),
                kind: String::new(),
            }),
        });
    }
    items.sort_by(|a, b| a.metric_labels.cmp(&b.metric_labels));
    let answer = json(&MetricValueList::new(
        "ExternalMetricValueList",
        format!("{EXTERNAL_GROUP}/v1beta1"),
        items,
    ));
    clock.lap(Stage::Encode);
    Ok(answer)
}
