//! [`ApiError`]: every failure at the HTTP edge, rendered as a Kubernetes `Status`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::types::{Status, StatusDetails};

/// A request failure with the HTTP code and `Status.reason` Kubernetes would use.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// 404 `NotFound`.
    #[error("{message}")]
    NotFound {
        message: String,
        details: Option<StatusDetails>,
    },
    /// 404 `NotFound` for a metric none of the rules serves (after a targeted lookup): a
    /// request another metrics server may answer (`--forward-unknown-*-metrics-to`).
    /// `details.name` is the metric.
    #[error("{message}")]
    UnknownMetric {
        message: String,
        details: StatusDetails,
    },
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 503 `ServiceUnavailable`: something other than the metrics backend is unavailable
    /// (the cluster's objects, a broken rule).
    #[error("{0}")]
    Unavailable(String),
    /// 503 `ServiceUnavailable`: the metrics backend could not be reached, did not answer
    /// in time or gave something that is not an answer. The message names it. A stale
    /// value may stand in for it (`--stale-value-max-age`).
    #[error("{0}")]
    BackendUnavailable(String),
    /// 500 `InternalError`: the backend rejected a rendered query, or a rule failed to render.
    #[error("{0}")]
    Internal(String),
    /// 401 `Unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `Forbidden`.
    #[error("{0}")]
    Forbidden(String),
    /// A request refused before routing (authentication or authorization), with the code,
    /// reason and details Kubernetes' own filters would answer with.
    #[error("{message}")]
    Rejected {
        code: StatusCode,
        reason: &'static str,
        message: String,
        details: Option<StatusDetails>,
    },
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownMetric { .. } => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) | ApiError::BackendUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Rejected { code, .. } => *code,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownMetric { .. } => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unavailable(_) | ApiError::BackendUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Rejected { reason, .. } => reason,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            details: None,
        }
    }

    /// The `Status` body for this error.
    pub fn status(&self) -> Status {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message: self.to_string(),
            reason: self.reason(),
            details: match self {
                ApiError::NotFound { details, .. } => details.clone(),
                ApiError::UnknownMetric { details, .. } => Some(details.clone()),
                // Kubernetes always sends `details` on a Forbidden status, `{}` when empty.
                ApiError::Rejected { details, code, .. } => details
                    .clone()
                    .or_else(|| (*code == StatusCode::FORBIDDEN).then(StatusDetails::default)),
                _ => None,
            },
            code: self.code().as_u16(),
        }
    }
}

/// Lets one event through a second and counts the others.
struct OncePerSecond {
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl OncePerSecond {
    const fn new() -> Self {
        OncePerSecond {
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(events held back since the last one let through)`, or `None` to hold this one.
    fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match s.0 {
            Some(at) if now.duration_since(at) < std::time::Duration::from_secs(1) => {
                s.1 += 1;
                None
            }
            _ => {
                s.0 = Some(now);
                Some(std::mem::take(&mut s.1))
            }
        }
    }
}

/// The 5xx answers logged.
static SERVER_ERRORS: OncePerSecond = OncePerSecond::new();

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A server-side failure is what an operator looks for in the log when an HPA shows
        // <unknown>: it is logged whatever the verbosity, as prometheus-adapter logs the
        // query failures behind its answers.
        if self.code().is_server_error() {
            // At most one line a second: an outage fails every request alike.
            if let Some(more) = SERVER_ERRORS.admit() {
                tracing::warn!(
                    code = self.code().as_u16(),
                    reason = self.reason(),
                    "answered with an error: {self}{}",
                    if more > 0 {
                        format!(" ({more} more server errors since the last such line)")
                    } else {
                        String::new()
                    }
                );
            }
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            self.code(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::OncePerSecond;

    #[test]
    fn one_event_a_second_is_let_through_and_the_rest_counted() {
        let gate = OncePerSecond::new();
        assert_eq!(gate.admit(), Some(0));
        assert_eq!(gate.admit(), None);
        assert_eq!(gate.admit(), None);
        // A second later the next one goes through, with the two held back.
        if let Ok(mut s) = gate.state.lock() {
            s.0 =
                s.0.and_then(|t| t.checked_sub(std::time::Duration::from_secs(2)));
        }
        assert_eq!(gate.admit(), Some(2));
    }
}
