//! What the server says of itself: `/livez`, `/readyz` (ready once metric discovery has
//! completed) and `/metrics` (its self-metrics, in the Prometheus text format). The health
//! endpoints answer any method, as the generic API server's do.

use axum::extract::{RawQuery, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::apiserver_metrics::Counted;
use crate::request::counted_as;
use crate::state::AppState;

/// `/livez`: the process answers. `?verbose` lists the checks, as Kubernetes servers do.
pub(super) async fn livez(method: Method, RawQuery(query): RawQuery) -> Response {
    counted_as(
        health("/livez", &method),
        report("livez", &[("ping", Ok(()))], query.as_deref()),
    )
}

/// `/healthz`: as `/livez` (the generic API server's older endpoint, which its probes use).
pub(super) async fn healthz(method: Method, RawQuery(query): RawQuery) -> Response {
    counted_as(
        health("/healthz", &method),
        report("healthz", &[("ping", Ok(()))], query.as_deref()),
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

/// How a request of a health endpoint is counted in the request metrics.
fn health(path: &str, method: &Method) -> Option<Counted> {
    Counted::health(path)?.asked_with(method)
}

/// The answer of a health endpoint as Kubernetes' generic API server gives it: `ok` when
/// every check passes; one `[+]name ok` / `[-]name failed: reason` line per check, then
/// `<endpoint> check passed|failed`, when asked with `?verbose` or when a check fails.
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
                lines.push_str(&format!("[-]{name} failed: {reason}\n"));
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
    let text = |body: String| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body);
    if failed {
        let body = format!("{lines}{endpoint} check failed\n");
        (StatusCode::SERVICE_UNAVAILABLE, text(body)).into_response()
    } else if verbose {
        let body = format!("{lines}{endpoint} check passed\n");
        (StatusCode::OK, text(body)).into_response()
    } else {
        (StatusCode::OK, text("ok".to_string())).into_response()
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
