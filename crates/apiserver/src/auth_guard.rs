//! The delegated authentication/authorization guard of `promhpa-auth` as a [`RequestGuard`].

use promhpa_auth::{Rejection, RequestAuth};
use promhpa_core::backend::BoxFuture;
use promhpa_core::tls::PeerCertificates;

use crate::error::ApiError;
use crate::state::RequestGuard;
use crate::types::StatusDetails;

impl RequestGuard for RequestAuth {
    fn check<'a>(
        &'a self,
        parts: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let path_and_query = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let peer = parts.extensions.get::<PeerCertificates>();
            match RequestAuth::check(self, &parts.method, path_and_query, peer, &parts.headers)
                .await
            {
                Ok(allowed) => {
                    tracing::debug!(user = %allowed.user.name, path = path_and_query, "request allowed");
                    Ok(())
                }
                Err(r) => Err(r.into()),
            }
        })
    }
}

impl From<Rejection> for ApiError {
    /// Keeps the code, reason and details Kubernetes' own filters answer with.
    fn from(r: Rejection) -> Self {
        ApiError::Rejected {
            code: r.status,
            reason: r.reason,
            message: r.message,
            details: r
                .details
                .map(|(group, kind, name)| StatusDetails { name, group, kind }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn rejections_keep_their_status() {
        let forbidden = ApiError::from(Rejection {
            status: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: "pods.custom.metrics.k8s.io \"*\" is forbidden".into(),
            details: Some(("custom.metrics.k8s.io".into(), "pods".into(), "*".into())),
        });
        let status = serde_json::to_value(forbidden.status()).unwrap_or_default();
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["details"]["group"], "custom.metrics.k8s.io");
        assert_eq!(status["details"]["kind"], "pods");
        assert_eq!(status["details"]["name"], "*");

        let non_resource = ApiError::from(Rejection {
            status: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: "forbidden: User \"bob\" cannot get path \"/metrics\"".into(),
            details: None,
        });
        let status = serde_json::to_value(non_resource.status()).unwrap_or_default();
        assert_eq!(status["details"], serde_json::json!({}));

        let unauthorized = ApiError::from(Rejection {
            status: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        });
        let status = serde_json::to_value(unauthorized.status()).unwrap_or_default();
        assert_eq!(status["code"], 401);
        assert!(status.get("details").is_none());
    }
}
