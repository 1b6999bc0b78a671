//! The delegated authentication/authorization guard of `promhpa-auth` as a [`RequestGuard`].

use promhpa_auth::RequestAuth;
use promhpa_core::backend::BoxFuture;
use promhpa_core::tls::PeerCertificates;

use crate::api::RequestGuard;
use crate::error::ApiError;

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
                Err(r) => Err(match r.status.as_u16() {
                    401 => ApiError::Unauthorized(r.message),
                    403 => ApiError::Forbidden(r.message),
                    _ => ApiError::Internal(r.message),
                }),
            }
        })
    }
}
