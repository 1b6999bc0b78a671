//! A request's query string read and its answer written: what the handlers of the metrics
//! APIs, the debug view and forwarding share.

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use promhpa_core::selector::LabelSelector;
use serde::Serialize;

use crate::error::ApiError;

/// The query parameters, percent-decoded (`+` read as a space).
pub(crate) fn query_params(req: &Request) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    let dec = |s: &str| {
                        percent_encoding::percent_decode_str(&s.replace('+', " "))
                            .decode_utf8_lossy()
                            .into_owned()
                    };
                    (dec(k), dec(v))
                })
                .collect()
        })
        .unwrap_or_default()
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
