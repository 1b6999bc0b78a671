//! Delegated authentication and authorization for an aggregated API server, as Kubernetes'
//! generic API server does them, independent of any HTTP framework (only [`http`] types).
//!
//! - [`authn::DelegatingAuthenticator`] believes `X-Remote-User`-style headers only from a
//!   client certificate that chains to the request-header CA and whose common name is allowed,
//!   maps a certificate chaining to the client CA to user = CN, groups = O, and checks bearer
//!   tokens with a cached TokenReview.
//! - [`authz::DelegatingAuthorizer`] asks a (cached) SubjectAccessReview, always allowing
//!   `system:masters`.
//! - [`request::RequestAuth`] combines both for one request and answers with the user or a
//!   [`request::Rejection`] carrying the HTTP status and a Kubernetes `Status` body.
//!
//! TokenReview and SubjectAccessReview go through the small [`review::ReviewClient`] trait,
//! so the Kubernetes client is pluggable and tests replay recorded API responses.
//!
//! ```
//! use promhpa_auth::attributes::RequestAttributes;
//! let attrs = RequestAttributes::from_request(
//!     &http::Method::GET,
//!     "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests",
//! );
//! let res = attrs.resource.unwrap();
//! assert_eq!(res.verb, "get");
//! assert_eq!(res.resource, "pods");
//! assert_eq!(res.subresource, "http_requests");
//! ```

pub mod attributes;
pub mod authn;
pub mod authz;
pub mod cache;
pub mod configmap;
mod error;
pub mod flags;
pub mod request;
pub mod review;
pub mod user;
pub mod x509;

pub use attributes::RequestAttributes;
pub use authn::{Authenticator, DelegatingAuthenticator, RequestHeaderConfig};
pub use authz::{Authorizer, Decision, DelegatingAuthorizer};
pub use cache::{Clock, ManualClock, SystemClock};
pub use error::AuthError;
pub use flags::AuthnFlags;
pub use request::{Rejection, RequestAuth};
pub use review::ReviewClient;
pub use user::UserInfo;
pub use x509::CaBundle;
