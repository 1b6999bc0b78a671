//! What the server says of itself: `/livez`, `/readyz` (ready once metric discovery has
//! completed) and `/metrics` (its self-metrics, in the Prometheus text format). The health
//! endpoints answer any method, as the generic API server's do, and so do their single checks
//! (`/readyz/metric-discovery`), which are behind authentication and authorization like any
//! other path: the endpoints themselves withhold why a check fails, the single checks tell.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::apiserver_metrics::Counted;
use crate::request::counted_as;
use crate::state::AppState;

/// `/livez`: the process answers. `?verbose` lists the checks, as Kubernetes servers do.
pub(super) async fn livez(method: Method, RawQuery(query): RawQuery) -> Response {
    counted_as(
        health("/livez", &method),
        report("livez", &LIVE, query.as_deref()),
    )
}

/// `/healthz`: as `/livez` (the generic API server's older endpoint, which its probes use).
pub(super) async fn healthz(method: Method, RawQuery(query): RawQuery) -> Response {
    counted_as(
        health("/healthz", &method),
        report("healthz", &LIVE, query.as_deref()),
    )
}

/// `/readyz`: 200 once metric discovery has completed, 503 until then.
pub(super) async fn readyz(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    let discovery = state.registry.readiness();
    counted_as(
        health("/readyz", &method),
        report(
            "readyz",
            &[("ping", Ok(())), ("metric-discovery", discovery)],
            query.as_deref(),
        ),
    )
}

/// The checks of `/livez` and `/healthz`.
const LIVE: [(&str, Result<(), String>); 1] = [("ping", Ok(()))];

/// `/livez/<check>`: one check of `/livez`.
pub(super) async fn livez_check(Path(check): Path<String>) -> Response {
    single("/livez", &LIVE, &check)
}

/// `/healthz/<check>`: one check of `/healthz`.
pub(super) async fn healthz_check(Path(check): Path<String>) -> Response {
    single("/healthz", &LIVE, &check)
}

/// `/readyz/<check>`: one check of `/readyz`; `metric-discovery` says why discovery has not
/// succeeded.
pub(super) async fn readyz_check(
    State(state): State<AppState>,
    Path(check): Path<String>,
) -> Response {
    let checks = [
        ("ping", Ok(())),
        ("metric-discovery", state.registry.readiness()),
    ];
    single("/readyz", &checks, &check)
}

/// The answer of the check `name` of `endpoint`, as the generic API server gives it: `ok`,
/// or a 500 with the reason; a 404 for a check it does not have.
fn single(endpoint: &str, checks: &[(&str, Result<(), String>)], name: &str) -> Response {
    match checks.iter().find(|(n, _)| *n == name) {
        Some((_, Ok(()))) => text(StatusCode::OK, "ok".into()),
        Some((_, Err(reason))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
        None => crate::error::ApiError::not_found(format!(
            "the server could not find the requested resource {endpoint}/{name}"
        ))
        .into_response(),
    }
}

/// How a request of a health endpoint is counted in the request metrics.
fn health(path: &str, method: &Method) -> Option<Counted> {
    Counted::health(path)?.asked_with(method)
}

/// The answer of a health endpoint as Kubernetes' generic API server gives it: `ok` when
/// every check passes; one `[+]name ok` / `[-]name failed: reason withheld` line per check,
/// then `<endpoint> check passed|failed`, when asked with `?verbose` or when a check fails
/// (a 500). The reason is withheld as anyone may ask (it can name the backend and its
/// error); `/<endpoint>/<check>`, behind authentication, tells it, and the log at debug level.
/// `?exclude=name` (repeatable) leaves a check out.
fn report(endpoint: &str, checks: &[(&str, Result<(), String>)], query: Option<&str>) -> Response {
    let params: Vec<(String, String)> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let verbose = params.iter().any(|(k, _)| k == "verbose");
    let excluded = |name: &str| params.iter().any(|(k, v)| k == "exclude" && v == name);
    let mut lines = String::new();
    let mut failed = false;
    for (name, result) in checks {
        if excluded(name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match result {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                failed = true;
                tracing::debug!(check = name, reason, "{endpoint} check failed");
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    // As Kubernetes says of an exclusion that names no check.
    let unknown: Vec<String> = params
        .iter()
        .filter(|(k, v)| k == "exclude" && !checks.iter().any(|(name, _)| name == v))
        .map(|(_, v)| format!("{v:?}"))
        .collect();
    if !unknown.is_empty() {
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            unknown.join(",")
        ));
    }
    if failed {
        let body = format!("{lines}{endpoint} check failed\n");
        text(StatusCode::INTERNAL_SERVER_ERROR, body)
    } else if verbose {
        let body = format!("{lines}{endpoint} check passed\n");
        text(StatusCode::OK, body)
    } else {
        text(StatusCode::OK, "ok".to_string())
    }
}

/// A plain-text answer of a health endpoint or check.
fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
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
