//! The way of a metric value from the backend to the answer, shared by the custom,
//! external and resource metrics APIs: the query sent through the coalescer within the
//! request's deadline and timed by stage, and the answer remembered and served again
//! when the backend fails (`--stale-value-max-age`, [`crate::stale`]).

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use promhpa_core::backend::{BackendError, QueryValue};

use crate::backends::BackendRef;
use crate::coalesce::Source;
use crate::error::ApiError;
use crate::metrics::Stage;
use crate::stale::Recall;
use crate::state::AppState;

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What identifies a metric request for its stale value: the path (API, version,
/// namespace, resource, object name, metric) and every query parameter but `timeout`.
/// `None` when stale values are not served, as nothing is remembered then.
pub(crate) fn request_key(
    state: &AppState,
    req: &Request,
    params: &BTreeMap<String, String>,
) -> Option<String> {
    state.coalescer.answers()?;
    let rest: Vec<(&String, &String)> = params.iter().filter(|(k, _)| *k != "timeout").collect();
    Some(format!("{}?{rest:?}", req.uri().path()))
}

/// The answer to a metric request, with the stale-value memory when it is on
/// (`--stale-value-max-age`): a value answered is remembered under `key`; when the backend
/// fails, the answer remembered for the same request is served while it is younger than
/// the maximum age (with a `Warning` header, logged and counted under `api`), and past
/// that age the 503 says when the last answer was.
pub(crate) async fn remembered(
    state: &AppState,
    api: &'static str,
    key: Option<String>,
    result: Result<Response, ApiError>,
) -> Response {
    let (Some(answers), Some(key)) = (state.coalescer.answers(), key) else {
        return result.unwrap_or_else(IntoResponse::into_response);
    };
    match result {
        Ok(resp) if resp.status() == StatusCode::OK => {
            let (parts, body) = resp.into_parts();
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => {
                    answers.remember(&key, bytes.clone(), now_ms());
                    let (entries, size) = answers.size();
                    state.metrics.set_stale_values_remembered(entries, size);
                    Response::from_parts(parts, Body::from(bytes))
                }
                Err(e) => ApiError::Internal(format!("reading an answer: {e}")).into_response(),
            }
        }
        Ok(resp) => resp,
        Err(ApiError::BackendUnavailable(message)) => match answers.recall(&key) {
            Recall::Fresh {
                body,
                answered_ms,
                age,
            } => {
                state.metrics.stale_value_served(api);
                let answered = crate::types::rfc3339(answered_ms);
                if let Some(suppressed) = answers.log_served() {
                    tracing::warn!(
                        api,
                        request = %key,
                        answered_at = %answered,
                        age_s = age.as_secs(),
                        not_logged_since_last = suppressed,
                        error = %message,
                        "backend failed: serving the last answer to this request (stale value)"
                    );
                }
                let warning = format!(
                    "299 - \"promhpa: the metrics backend failed; this is the answer of {answered} ({}s old)\"",
                    age.as_secs()
                );
                let mut resp = (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&warning) {
                    resp.headers_mut().insert(header::WARNING, v);
                }
                resp
            }
            Recall::TooOld { answered_ms, age } => ApiError::BackendUnavailable(format!(
                "{message}; the last successful answer to this request was at {} ({}s ago), older than --stale-value-max-age={}s",
                crate::types::rfc3339(answered_ms),
                age.as_secs(),
                answers.max_age().as_secs_f64()
            ))
            .into_response(),
            Recall::Unknown => ApiError::BackendUnavailable(format!(
                "{message}; no earlier answer to this request is remembered to serve instead"
            ))
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// `promql` at the current time through the coalescer, within what is left of the
/// request's deadline, recorded in the self-metrics under the rule at `rule_path`.
pub(crate) async fn observed_query(
    state: &AppState,
    backend: &BackendRef,
    rule_path: &str,
    promql: &str,
) -> Result<QueryValue, BackendError> {
    let start = Instant::now();
    let answer = state
        .coalescer
        .answer(
            backend,
            promql,
            now_ms(),
            crate::deadline::backend_budget(NO_DEADLINE_BUDGET),
        )
        .await;
    let took = start.elapsed();
    let outcome = match &answer.result {
        Ok(_) if answer.source == Source::Shared => "shared",
        Ok(_) if answer.source == Source::Cache => "cached",
        Ok(_) => "success",
        Err(BackendError::Unavailable { .. }) => "unavailable",
        Err(BackendError::Query { .. }) => "rejected",
        Err(_) => "error",
    };
    state
        .metrics
        .observe_backend(rule_path, outcome, took.as_secs_f64());
    // At --v=6, as prometheus-adapter logs each query it sends.
    tracing::trace!(
        rule = rule_path,
        backend = %backend.client.address(),
        outcome,
        took_ms = took.as_millis() as u64,
        "query {promql}"
    );
    match &answer.result {
        Ok(_) if answer.source != Source::Cache => reachability(backend, None),
        Err(e @ BackendError::Unavailable { .. }) => reachability(backend, Some(e)),
        _ => {}
    }
    let decode = answer.decode.unwrap_or_default();
    state
        .metrics
        .observe_stage(Stage::Backend, took.saturating_sub(decode));
    if let Some(d) = answer.decode {
        state.metrics.observe_stage(Stage::Decode, d);
    }
    answer.result
}

/// Backends that failed their last query as unavailable: since when, and how many queries
/// failed since.
static UNREACHABLE: std::sync::Mutex<BTreeMap<u64, (Instant, u64)>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Logs a backend's changes of state, once each: when it stops answering, and when it
/// answers again (the request errors in between are logged at most once a second).
fn reachability(backend: &BackendRef, failure: Option<&BackendError>) {
    let mut down = UNREACHABLE.lock().unwrap_or_else(|p| p.into_inner());
    match failure {
        Some(e) => match down.get_mut(&backend.id) {
            Some((_, n)) => *n += 1,
            None => {
                down.insert(backend.id, (Instant::now(), 1));
                tracing::warn!(backend = %backend.client.address(), error = %e, "backend unreachable: its queries fail until it answers again");
            }
        },
        None => {
            if let Some((since, failed)) = down.remove(&backend.id) {
                tracing::info!(
                    backend = %backend.client.address(),
                    failed_queries = failed,
                    down_for_s = since.elapsed().as_secs(),
                    "backend answers again"
                );
            }
        }
    }
}

/// The budget of a query made outside a request with a deadline (the backend's own query
/// timeout still applies).
const NO_DEADLINE_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);
