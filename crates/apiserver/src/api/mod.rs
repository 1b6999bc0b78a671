//! The HTTP routes: discovery, custom and external metric values, health, self-metrics and
//! OpenAPI documents.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod custom;
mod discovery;
mod errors;
mod external;
mod openapi;
mod values;

use crate::metrics::Stage;
use crate::request::{not_found, RouteLabel};

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
        .route("/apis/external.metrics.k8s.io", get(external::handler))
        .route("/apis/external.metrics.k8s.io/", get(external::handler))
        .route(
            "/apis/external.metrics.k8s.io/{*rest}",
            get(external::handler),
        )
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
