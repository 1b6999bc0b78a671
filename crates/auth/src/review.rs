//! TokenReview and SubjectAccessReview objects (k8s-openapi's `authentication.k8s.io/v1`
//! and `authorization.k8s.io/v1` types), and the client that creates them. A
//! [`SubjectAccessReviewSpec`] is what an authorization decision is cached under.

use std::collections::BTreeMap;

use k8s_openapi::api::{authentication::v1 as authentication, authorization::v1 as authorization};
use promhpa_core::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::user::UserInfo;
use crate::AuthError;

/// Where TokenReviews are created.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// Where SubjectAccessReviews are created.
pub const SUBJECT_ACCESS_REVIEW_PATH: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// Creates review objects in the Kubernetes API: `POST path` with a JSON `body`, returning the
/// response body of a successful (2xx) answer. Any other answer is an [`AuthError::Transport`].
pub trait ReviewClient: Send + Sync {
    fn create<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthError>>;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAccessReviewSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_attributes: Option<ResourceAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_resource_attributes: Option<NonResourceAttributes>,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The resource a request is about, as the SubjectAccessReview API spells it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAttributes {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub verb: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A request for a path outside the resource APIs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NonResourceAttributes {
    pub path: String,
    pub verb: String,
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The `authentication.k8s.io/v1` TokenReview of `token` for `audiences` (empty leaves the
/// API server's default).
pub fn token_review(token: &str, audiences: &[String]) -> authentication::TokenReview {
    authentication::TokenReview {
        spec: authentication::TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
        },
        ..authentication::TokenReview::default()
    }
}

/// The user a TokenReview answered with.
pub fn reviewed_user(user: authentication::UserInfo) -> UserInfo {
    UserInfo {
        name: user.username.unwrap_or_default(),
        uid: user.uid.unwrap_or_default(),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
    }
}

/// The `authorization.k8s.io/v1` SubjectAccessReview asking about `spec`.
pub fn subject_access_review(spec: &SubjectAccessReviewSpec) -> authorization::SubjectAccessReview {
    let resource = spec
        .resource_attributes
        .as_ref()
        .map(|r| authorization::ResourceAttributes {
            namespace: nonempty(&r.namespace),
            verb: Some(r.verb.clone()),
            group: nonempty(&r.group),
            version: nonempty(&r.version),
            resource: Some(r.resource.clone()),
            subresource: nonempty(&r.subresource),
            name: nonempty(&r.name),
            ..authorization::ResourceAttributes::default()
        });
    let non_resource =
        spec.non_resource_attributes
            .as_ref()
            .map(|n| authorization::NonResourceAttributes {
                path: Some(n.path.clone()),
                verb: Some(n.verb.clone()),
            });
    authorization::SubjectAccessReview {
        spec: authorization::SubjectAccessReviewSpec {
            resource_attributes: resource,
            non_resource_attributes: non_resource,
            user: Some(spec.user.clone()),
            groups: (!spec.groups.is_empty()).then(|| spec.groups.clone()),
            extra: (!spec.extra.is_empty()).then(|| spec.extra.clone()),
            uid: nonempty(&spec.uid),
        },
        ..authorization::SubjectAccessReview::default()
    }
}
