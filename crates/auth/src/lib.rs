//! Delegated authentication and authorization for an aggregated API server, as Kubernetes'
//! generic API server does them, independent of any HTTP framework (only [`http`] types).
//!
//! - [`authn::DelegatingAuthenticator`] believes `X-Remote-User`-style headers only from a
//!   client certificate that chains to the request-header CA and whose common name is allowed,
//!   maps a certificate chaining to the client CA to user = CN, groups = O (extra
//!   `authentication.kubernetes.io/credential-id` = `X509SHA256=<leaf digest>`), and checks bearer
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

//! A server puts the guard in front of every request; with `http` types only:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use promhpa_auth::authn::{AuthnSources, TokenReviewConfig};
//! use promhpa_auth::{AuthnFlags, DelegatingAuthenticator, DelegatingAuthorizer, RequestAuth, ReviewClient, SystemClock};
//! use promhpa_core::tls::PeerCertificates;
//!
//! # async fn demo(kube: Arc<dyn ReviewClient>, req: http::Request<()>) -> Result<(), Box<dyn std::error::Error>> {
//! let sources: AuthnSources = AuthnFlags::default().load()?;
//! let tokens = TokenReviewConfig { client: kube.clone(), ttl: Duration::from_secs(10), audiences: vec![] };
//! let authn = DelegatingAuthenticator::new(sources, Some(tokens), Arc::new(SystemClock));
//! let authz = DelegatingAuthorizer::new(kube, Duration::from_secs(10), Duration::from_secs(10), Arc::new(SystemClock));
//! let guard = RequestAuth::new(Arc::new(authn), Arc::new(authz));
//!
//! let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
//! match guard.check(req.method(), path, req.extensions().get::<PeerCertificates>(), req.headers()).await {
//!     Ok(allowed) => println!("serving {} for {}", path, allowed.user.name),
//!     Err(rejection) => {
//!         // Answer with rejection.status and rejection.status_json() as the body.
//!         let _ = (rejection.status, rejection.status_json());
//!     }
//! }
//! # Ok(()) }
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
