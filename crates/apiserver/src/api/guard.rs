//! Authentication and authorization: every request but the health probes is passed to the
//! server's [`RequestGuard`](crate::state::RequestGuard), when it has one, before its
//! handler; the time that takes is the `auth` stage of the request.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::Stage;
use crate::state::AppState;

/// Passes the request to its handler once the guard allows it; answers with the guard's
/// `Status` otherwise.
pub(super) async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
