//! The HTTP routes, and the way of a request through them, one file per stage:
//!
//! 1. `observe.rs`: every request is counted and timed in the self-metrics under its route.
//! 2. `guard.rs`: every request but the health probes is authenticated and authorized by
//!    the [`RequestGuard`], when there is one (the `auth` stage).
//! 3. The handler of its path:
//!    - `discovery.rs`: `/apis`, each group, the metrics each version lists, `/version`;
//!    - `custom.rs` and `external.rs`: the values of custom.metrics.k8s.io and
//!      external.metrics.k8s.io, timed stage by stage (route, object lookup, render,
//!      backend, decode, encode), with what they share in `values.rs` and the answer to a
//!      failure in `errors.rs`; [`crate::resource`] serves metrics.k8s.io;
//!    - `openapi.rs`: the OpenAPI documents;
//!    - `health.rs`: `/healthz`, `/livez`, `/readyz` and `/metrics`;
//!    - [`crate::debug`]: the operator's view under `/debug/promhpa/`.
//!
//! Every handler reads its request and writes its answer with `request.rs`; a metric
//! value is queried, and remembered for stale serving, by `answer.rs`.

use axum::routing::{any, get};
use axum::Router;

mod custom;
mod discovery;
mod errors;
mod external;
mod guard;
mod health;
mod observe;
mod openapi;
mod values;

use crate::request::{method_not_allowed, not_found};

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
        .route("/metrics", get(health::self_metrics))
        // One check each, any method, as the generic API server serves them; unlike the
        // endpoints themselves, they are guarded.
        .route("/healthz/{check}", any(health::healthz_check))
        .route("/livez/{check}", any(health::livez_check))
        .route("/readyz/{check}", any(health::readyz_check))
        .route("/debug/promhpa/rules", get(crate::debug::rules))
        .route("/debug/promhpa/query", get(crate::debug::query))
        .route("/version", get(discovery::version))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3))
        .route("/openapi/v3/{*rest}", get(openapi::v3_group))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check,
        ));
    // Any method, as the generic API server's health handlers answer it.
    Router::new()
        .route("/healthz", any(health::healthz))
        .route("/livez", any(health::livez))
        .route("/readyz", any(health::readyz))
        .merge(guarded)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::record,
        ))
        .with_state(state)
}
