//! What the server says of itself: `/readyz` (ready once metric discovery has completed)
//! and `/metrics` (its self-metrics, in the Prometheus text format).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `/readyz`: 200 once metric discovery has completed, 503 until then.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
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

/// `/metrics`: the self-metrics.
pub(super) async fn self_metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
