//! Every request counted and timed in the self-metrics, under the route its handler names
//! ([`with_route`](crate::request::with_route)) or one worked out from its path, and, when
//! its handler counts it as the generic API server would ([`counted_as`](crate::request::counted_as)),
//! in the generic API server's request metrics.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::apiserver_metrics::{Counted, RequestLine};
use crate::request::RouteLabel;
use crate::state::AppState;

/// Records the request: counted and timed under its route, and logged at debug level.
pub(super) async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The route of a response that does not name one, from the path.
    let by_path = match req.uri().path() {
        "/healthz" | "/livez" | "/readyz" => "health",
        p if ["/healthz/", "/livez/", "/readyz/"]
            .iter()
            .any(|h| p.starts_with(h)) =>
        {
            "health"
        }
        "/metrics" => "metrics",
        p if p.starts_with("/openapi") => "openapi",
        p if p.starts_with("/apis") => "discovery",
        _ => "other",
    };
    let line = RequestLine::of(req.method(), req.uri().query());
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
    if let Some(counted) = resp.extensions().get::<Counted>() {
        state
            .metrics
            .observe_api_request(*counted, line, code, Some(elapsed));
    }
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
