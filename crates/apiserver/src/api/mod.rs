//! The HTTP routes: discovery, custom and external metric values, health, self-metrics and
//! OpenAPI documents.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use promhpa_core::quantity::Quantity;
use promhpa_core::selector::LabelSelector;

use promhpa_core::path::segments;

mod custom;
mod discovery;
mod errors;
mod openapi;
mod values;

use crate::answer::{remembered, request_key};
use crate::error::ApiError;
use crate::metrics::{Stage, StageClock};
use crate::registry::Api;
use crate::request::{json, not_found, parse_selector, query_params, with_route, RouteLabel};
use crate::types::*;
use discovery::{external_group, external_resources, resources};
use errors::{render_error, unknown_external_metric};
use values::{forwarding, non_finite, query_vector};

pub use crate::state::{AppState, RequestGuard};
pub use values::range_window_seconds;

/// The router for all routes, with the guard applied to everything but health probes.
pub fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/apis", get(discovery::apis))
        .route("/apis/", get(discovery::apis))
        .route("/apis/custom.metrics.k8s.io", get(custom::handler))
        .route("/apis/custom.metrics.k8s.io/", get(custom::handler))
        .route("/apis/custom.metrics.k8s.io/{*rest}", get(custom::handler))
        .route("/apis/external.metrics.k8s.io", get(external))
        .route("/apis/external.metrics.k8s.io/", get(external))
        .route("/apis/external.metrics.k8s.io/{*rest}", get(external))
        .route("/apis/metrics.k8s.io", get(crate::resource::handler))
        .route("/apis/metrics.k8s.io/", get(crate::resource::handler))
        .route(
            "/apis/metrics.k8s.io/{*rest}",
            get(crate::resource::handler),
        )
        .route("/metrics", get(self_metrics))
        .route("/debug/promhpa/rules", get(crate::debug::rules))
        .route("/debug/promhpa/query", get(crate::debug::query))
        .route("/version", get(discovery::version))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3))
        .route("/openapi/v3/{*rest}", get(openapi::v3_group))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The route of a response that does not name one, from the path.
    let by_path = match req.uri().path() {
        "/healthz" | "/livez" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/openapi") => "openapi",
        p if p.starts_with("/apis") => "discovery",
        _ => "other",
    };
    // Kept only for the debug log.
    let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_string());
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or(by_path, |r| r.0);
    let code = resp.status().as_u16();
    let elapsed = start.elapsed();
    state
        .metrics
        .observe_request(route, code, elapsed.as_secs_f64());
    if let Some(path) = path {
        tracing::debug!(
            path,
            code,
            elapsed_us = elapsed.as_micros() as u64,
            "request"
        );
    }
    resp
}

async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(g) = state.guard.clone() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let started = Instant::now();
    let checked = g.check(&parts).await;
    state.metrics.observe_stage(Stage::Auth, started.elapsed());
    if let Err(e) = checked {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.registry.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: metric discovery has not completed yet",
        )
            .into_response()
    }
}

async fn self_metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn external(State(state): State<AppState>, req: Request) -> Response {
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
        ["v1beta1", "namespaces", ns, metric] => {
            let key = request_key(&state, &req, &params);
            let result = external_values(&state, &mut clock, ns, metric, &params).await;
            if let Some((f, metric)) = forwarding(&state, Api::External, req.headers(), &result) {
                let forwarded = f.forward(Api::External, &metric, req.uri()).await;
                return with_route("external/forwarded", forwarded);
            }
            with_route(
                "external/value",
                remembered(&state, "external", key, result).await,
            )
        }
        _ => not_found(req).await,
    }
}

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
                tracing::warn!(metric, value = non_finite(s.value), query = %promql, "value dropped: not a finite number");
                dropped.push(format!("{labels:?}: {}", non_finite(s.value)));
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
                "external metric \"{metric}\" in namespace \"{namespace}\" has no finite value (dropped {}); query: {promql}",
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
    let answer = json(&MetricValueList {
        kind: "ExternalMetricValueList",
        api_version: format!("{EXTERNAL_GROUP}/v1beta1"),
        metadata: ListMeta {},
        items,
    });
    clock.lap(Stage::Encode);
    Ok(answer)
}
