//! Authorization with SubjectAccessReview.

use std::sync::Arc;
use std::time::Duration;

use promhpa_core::BoxFuture;

use crate::attributes::RequestAttributes;
use crate::cache::{Clock, TtlCache};
use crate::review::{
    subject_access_review, ReviewClient, SubjectAccessReviewSpec, SUBJECT_ACCESS_REVIEW_PATH,
};
use crate::user::{UserInfo, MASTERS_GROUP};
use crate::AuthError;

/// What an authorizer decided, with the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
    /// Neither allowed nor explicitly denied; the request is refused.
    NoOpinion(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a RequestAttributes,
    ) -> BoxFuture<'a, Result<Decision, AuthError>>;
}

/// Kubernetes' delegating authorizer: members of the privileged groups (`system:masters`)
/// are allowed, everyone else is decided by a SubjectAccessReview, whose answers are cached
/// per `allowed_ttl` / `denied_ttl` (`--authorization-webhook-cache-authorized-ttl` /
/// `-unauthorized-ttl`, 10s each by default).
pub struct DelegatingAuthorizer {
    client: Arc<dyn ReviewClient>,
    always_allow_groups: Vec<String>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    cache: TtlCache<SubjectAccessReviewSpec, Decision>,
    clock: Arc<dyn Clock>,
}

impl DelegatingAuthorizer {
    pub fn new(
        client: Arc<dyn ReviewClient>,
        allowed_ttl: Duration,
        denied_ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DelegatingAuthorizer {
            client,
            always_allow_groups: vec![MASTERS_GROUP.to_string()],
            allowed_ttl,
            denied_ttl,
            cache: TtlCache::new(8192),
            clock,
        }
    }

    /// The SubjectAccessReview spec for `user` doing `attributes`.
    pub fn review_spec(user: &UserInfo, attributes: &RequestAttributes) -> SubjectAccessReviewSpec {
        SubjectAccessReviewSpec {
            non_resource_attributes: attributes
                .resource
                .is_none()
                .then(|| attributes.non_resource()),
            resource_attributes: attributes.resource.clone(),
            user: user.name.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            uid: user.uid.clone(),
        }
    }
}

impl Authorizer for DelegatingAuthorizer {
    fn authorize<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a RequestAttributes,
    ) -> BoxFuture<'a, Result<Decision, AuthError>> {
        Box::pin(async move {
            if user
                .groups
                .iter()
                .any(|g| self.always_allow_groups.contains(g))
            {
                return Ok(Decision::Allow(String::new()));
            }
            let spec = Self::review_spec(user, attributes);
            if let Some(decision) = self.cache.get(&spec, self.clock.now()) {
                return Ok(decision);
            }
            let body = serde_json::to_vec(&subject_access_review(&spec))
                .map_err(|e| AuthError::SubjectAccessReview(e.to_string()))?;
            let answer = self.client.create(SUBJECT_ACCESS_REVIEW_PATH, body).await?;
            let answer: k8s_openapi::api::authorization::v1::SubjectAccessReview =
                serde_json::from_slice(&answer).map_err(|e| {
                    AuthError::SubjectAccessReview(format!("decoding the answer: {e}"))
                })?;
            let status = answer.status.unwrap_or_default();
            let reason = status.reason.unwrap_or_default();
            // An answer that both allows and denies is a denial, as in Kubernetes' webhook
            // authorizer.
            let (decision, ttl) = if status.denied == Some(true) {
                (Decision::Deny(reason), self.denied_ttl)
            } else if status.allowed {
                (Decision::Allow(reason), self.allowed_ttl)
            } else {
                (Decision::NoOpinion(reason), self.denied_ttl)
            };
            self.cache
                .insert(spec, decision.clone(), ttl, self.clock.now());
            Ok(decision)
        })
    }
}
