//! A request's query string read and its answer written: what the handlers of the metrics
//! APIs, the debug view and forwarding share.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use promhpa_core::selector::LabelSelector;
use serde::Serialize;

use crate::apiserver_metrics::Counted;
use crate::error::ApiError;

/// The query parameters, percent-decoded (`+` read as a space). A parameter given twice
/// has its first value, as Kubernetes reads one (`url.Values.Get`).
pub(crate) fn query_params(req: &Request) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    for p in req.uri().query().unwrap_or_default().split('&') {
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        params.entry(dec(k)).or_insert_with(|| dec(v));
    }
    params
}

/// 405 `MethodNotAllowed` for `?watch=true` (true as Kubernetes reads the parameter: any
/// value but `0` and `false`): metric values cannot be watched, as with the generic API
/// server's list handler over a storage without watch. `resource` names what was asked
/// (`pods.custom.metrics.k8s.io`).
pub(crate) fn refuse_watch(
    params: &BTreeMap<String, String>,
    resource: &str,
) -> Result<(), ApiError> {
    match params.get("watch") {
        Some(v) if v != "0" && !v.eq_ignore_ascii_case("false") => Err(ApiError::Rejected {
            code: axum::http::StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!("watch is not supported on resources of kind \"{resource}\""),
            details: None,
        }),
        _ => Ok(()),
    }
}

/// 405 `MethodNotAllowed` as a Status, for a method other than GET (or HEAD) on any path.
pub(crate) async fn method_not_allowed() -> Response {
    let mut resp = ApiError::Rejected {
        code: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        reason: "MethodNotAllowed",
        message: "the server does not allow this method on the requested resource".into(),
        details: None,
    }
    .into_response();
    resp.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("GET, HEAD"),
    );
    resp
}

/// The label selector in the parameter `name`; everything when there is none.
pub(crate) fn parse_selector(
    params: &BTreeMap<String, String>,
    name: &str,
) -> Result<LabelSelector, ApiError> {
    match params.get(name) {
        None => Ok(LabelSelector::everything()),
        Some(s) => s
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("invalid {name} \"{s}\": {e}"))),
    }
}

/// `value` as a `200 OK` JSON answer.
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("encoding response: {e}")).into_response(),
    }
}

/// The 404 `Status` of a path nothing here serves.
pub(crate) async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!(
        "the server could not find the requested resource {}",
        req.uri().path()
    ))
    .into_response()
}

/// The route label used in self-metrics.
#[derive(Clone, Copy)]
pub(crate) struct RouteLabel(pub(crate) &'static str);

/// `resp`, counted in the self-metrics under `route`.
pub(crate) fn with_route(route: &'static str, mut resp: Response) -> Response {
    resp.extensions_mut().insert(RouteLabel(route));
    resp
}

/// `resp`, counted in the generic API server's request metrics under `counted` when the
/// request's path is one of their routes.
pub(crate) fn counted_as(counted: Option<Counted>, mut resp: Response) -> Response {
    if let Some(c) = counted {
        resp.extensions_mut().insert(c);
    }
    resp
}
