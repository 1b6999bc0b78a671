//! Authentication and authorization of one request, with the answer Kubernetes would give.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use promhpa_core::tls::PeerCertificates;

use crate::attributes::RequestAttributes;
use crate::authn::Authenticator;
use crate::authz::{Authorizer, Decision};
use crate::user::UserInfo;

/// Paths allowed without authorization by default (`--authorization-always-allow-paths`).
pub const DEFAULT_ALWAYS_ALLOW_PATHS: &[&str] = &["/healthz", "/readyz", "/livez"];

/// A refused request: the HTTP status and the Kubernetes `Status` it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    /// `Unauthorized`, `Forbidden` or `InternalError`.
    pub reason: &'static str,
    pub message: String,
    /// `details` of a Forbidden status: (group, resource kind, name); empty strings are
    /// left out, so a non-resource denial has `"details": {}`.
    pub details: Option<(String, String, String)>,
}

impl Rejection {
    /// The `v1` `Status` object a Kubernetes API server answers with.
    pub fn status_json(&self) -> serde_json::Value {
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.status.as_u16(),
        });
        if let Some((group, kind, name)) = &self.details {
            let mut details = serde_json::Map::new();
            if !name.is_empty() {
                details.insert("name".into(), name.clone().into());
            }
            if !group.is_empty() {
                details.insert("group".into(), group.clone().into());
            }
            if !kind.is_empty() {
                details.insert("kind".into(), kind.clone().into());
            }
            status["details"] = serde_json::Value::Object(details);
        }
        status
    }

    fn unauthorized() -> Self {
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: "Unauthorized".to_string(),
            details: None,
        }
    }

    fn internal(err: impl std::fmt::Display) -> Self {
        Rejection {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: format!("Internal error occurred: {err}"),
            details: None,
        }
    }

    fn forbidden(user: &UserInfo, attrs: &RequestAttributes, reason: &str) -> Self {
        let mut message = match &attrs.resource {
            None => format!(
                "User {} cannot {} path {}",
                go_quote(&user.name),
                attrs.method_verb,
                go_quote(&attrs.path)
            ),
            Some(r) => {
                let resource = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                if r.namespace.is_empty() {
                    format!(
                        "User {} cannot {} resource {} in API group {} at the cluster scope",
                        go_quote(&user.name),
                        r.verb,
                        go_quote(&resource),
                        go_quote(&r.group)
                    )
                } else {
                    format!(
                        "User {} cannot {} resource {} in API group {} in the namespace {}",
                        go_quote(&user.name),
                        r.verb,
                        go_quote(&resource),
                        go_quote(&r.group),
                        go_quote(&r.namespace)
                    )
                }
            }
        };
        if !reason.is_empty() {
            message = format!("{message}: {reason}");
        }
        let (message, details) = match &attrs.resource {
            Some(r) if !r.resource.is_empty() => {
                let qualified = if r.group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.group)
                };
                let message = if r.name.is_empty() {
                    format!("{qualified} is forbidden: {message}")
                } else {
                    format!("{qualified} {} is forbidden: {message}", go_quote(&r.name))
                };
                (
                    message,
                    Some((r.group.clone(), r.resource.clone(), r.name.clone())),
                )
            }
            // Kubernetes answers with empty details (`"details": {}`) here.
            _ => (
                format!("forbidden: {message}"),
                Some((String::new(), String::new(), String::new())),
            ),
        };
        Rejection {
            status: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message,
            details,
        }
    }
}

pub use promhpa_core::gofmt::go_quote;

/// Who a request was allowed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub user: UserInfo,
    pub attributes: RequestAttributes,
}

/// The guard in front of every request: authenticate, then authorize.
pub struct RequestAuth {
    authenticator: Arc<dyn Authenticator>,
    authorizer: Arc<dyn Authorizer>,
    always_allow_paths: Vec<String>,
    anonymous: bool,
}

impl RequestAuth {
    /// A guard with the default always-allowed paths and anonymous requests refused with 401.
    pub fn new(authenticator: Arc<dyn Authenticator>, authorizer: Arc<dyn Authorizer>) -> Self {
        RequestAuth {
            authenticator,
            authorizer,
            always_allow_paths: DEFAULT_ALWAYS_ALLOW_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            anonymous: false,
        }
    }

    /// Paths served to anyone without asking for authorization; an entry ending in `*`
    /// matches every path it prefixes. A leading `/` is optional, as in Kubernetes.
    pub fn with_always_allow_paths(mut self, paths: Vec<String>) -> Self {
        self.always_allow_paths = paths;
        self
    }

    /// Whether requests without credentials are authorized as `system:anonymous` (Kubernetes'
    /// `--anonymous-auth`) instead of refused with 401.
    pub fn with_anonymous(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Whether `path` needs no authorization.
    pub fn is_always_allowed(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.always_allow_paths.iter().any(|p| {
            let p = p.strip_prefix('/').unwrap_or(p);
            match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => p == path,
            }
        })
    }

    /// Authenticates and authorizes `method` on `path_and_query`. Always-allowed paths are
    /// served even when the credentials presented cannot be verified (health probes carry
    /// none); as with Kubernetes' path authorizer they apply only to non-resource requests,
    /// so a prefix such as `/apis/*` frees discovery documents but never a metric. Every
    /// other request needs an identity (401 otherwise) that the authorizer allows (403
    /// otherwise; 500 when the authorizer could not be asked).
    pub async fn check(
        &self,
        method: &Method,
        path_and_query: &str,
        peer: Option<&PeerCertificates>,
        headers: &HeaderMap,
    ) -> Result<Allowed, Rejection> {
        let attributes = RequestAttributes::from_request(method, path_and_query);
        let authenticated = self.authenticator.authenticate(peer, headers).await;
        if attributes.resource.is_none() && self.is_always_allowed(&attributes.path) {
            let user = authenticated
                .ok()
                .flatten()
                .unwrap_or_else(UserInfo::anonymous);
            return Ok(Allowed { user, attributes });
        }
        let user = match authenticated {
            Ok(Some(user)) => user,
            Ok(None) if self.anonymous => UserInfo::anonymous(),
            Ok(None) | Err(_) => return Err(Rejection::unauthorized()),
        };
        match self.authorizer.authorize(&user, &attributes).await {
            Ok(Decision::Allow(_)) => Ok(Allowed { user, attributes }),
            Ok(decision) => Err(Rejection::forbidden(&user, &attributes, decision.reason())),
            Err(e) => Err(Rejection::internal(e)),
        }
    }
}
