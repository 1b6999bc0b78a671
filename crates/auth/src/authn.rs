//! Authentication: front-proxy request headers, client certificates, bearer tokens.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderMap;
use promhpa_core::tls::PeerCertificates;
use promhpa_core::BoxFuture;

use crate::cache::{Clock, TtlCache};
use crate::review::{reviewed_user, token_review, ReviewClient, TOKEN_REVIEW_PATH};
use crate::user::UserInfo;
use crate::x509::CaBundle;
use crate::AuthError;

/// Decides who sent a request.
pub trait Authenticator: Send + Sync {
    /// `Ok(Some(user))` when a credential was verified, `Ok(None)` when the request presented
    /// none that this authenticator understands, `Err` when a credential was presented and
    /// rejected (or could not be checked).
    fn authenticate<'a>(
        &'a self,
        peer: Option<&'a PeerCertificates>,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>>;
}

/// The front-proxy trust of `--requestheader-*`: who may assert identities in headers, and
/// in which headers.
#[derive(Debug, Clone)]
pub struct RequestHeaderConfig {
    pub ca: CaBundle,
    /// Common names allowed to assert identities; empty allows any certificate of `ca`.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefixes: Vec<String>,
}

impl RequestHeaderConfig {
    /// The header names prometheus-adapter and Kubernetes use by default.
    pub fn with_default_headers(ca: CaBundle) -> Self {
        RequestHeaderConfig {
            ca,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".to_string()],
            uid_headers: Vec::new(),
            group_headers: vec!["X-Remote-Group".to_string()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".to_string()],
        }
    }
}

/// The certificate authorities trusted for authentication; replaced as a whole when they
/// rotate.
#[derive(Debug, Clone, Default)]
pub struct AuthnSources {
    pub request_header: Option<RequestHeaderConfig>,
    pub client_ca: Option<CaBundle>,
}

/// Bearer tokens checked with TokenReview, answers cached for `ttl` (successes and failures
/// alike, as Kubernetes' delegating authenticator does).
pub struct TokenReviewConfig {
    pub client: Arc<dyn ReviewClient>,
    pub ttl: Duration,
    /// `spec.audiences` of the reviews; empty leaves the API server's default.
    pub audiences: Vec<String>,
}

/// The authentication chain of Kubernetes' delegating authenticator: request header, then
/// client certificate, then bearer token; the first that verifies wins. Every authenticated
/// user is placed in `system:authenticated`.
pub struct DelegatingAuthenticator {
    sources: RwLock<Arc<AuthnSources>>,
    tokens: Option<TokenReviewConfig>,
    /// Keyed by the SHA-256 of token and audiences, so no token is kept in memory.
    token_cache: TtlCache<[u8; 32], Option<UserInfo>>,
    /// The reviews under way, by the same key: requests that bring one new token at once
    /// share one TokenReview, as Kubernetes' cached token authenticator shares them.
    reviewing: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Review>>>,
    clock: Arc<dyn Clock>,
}

/// One TokenReview under way, and its answer once it came.
type Review = tokio::sync::OnceCell<Result<Option<UserInfo>, AuthError>>;

/// Takes a review out of the map of those under way when its request is done with it; a
/// request still waiting on it keeps its own handle, and a later one starts afresh (or
/// finds the answer cached).
struct Forget<'a> {
    reviewing: &'a std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Review>>>,
    key: [u8; 32],
    review: Arc<Review>,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut reviewing = self.reviewing.lock().unwrap_or_else(|e| e.into_inner());
        if reviewing
            .get(&self.key)
            .is_some_and(|r| Arc::ptr_eq(r, &self.review))
        {
            reviewing.remove(&self.key);
        }
    }
}

impl DelegatingAuthenticator {
    pub fn new(
        sources: AuthnSources,
        tokens: Option<TokenReviewConfig>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DelegatingAuthenticator {
            sources: RwLock::new(Arc::new(sources)),
            tokens,
            token_cache: TtlCache::new(4096),
            reviewing: std::sync::Mutex::new(std::collections::HashMap::new()),
            clock,
        }
    }

    /// Replaces the trusted CAs and header names (after a rotation); requests already being
    /// authenticated finish with the previous ones.
    pub fn set_sources(&self, sources: AuthnSources) {
        let mut current = self.sources.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(sources);
    }

    pub fn sources(&self) -> Arc<AuthnSources> {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn user_from_request_header(
        &self,
        config: &RequestHeaderConfig,
        chain: &[Vec<u8>],
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, AuthError> {
        let subject = config.ca.verify_client(chain, self.clock.now())?;
        if !config.allowed_names.is_empty() && !config.allowed_names.contains(&subject.common_name)
        {
            return Err(AuthError::CommonNameNotAllowed(subject.common_name));
        }
        let Some(name) = first_value(headers, &config.username_headers) else {
            return Ok(None);
        };
        let uid = first_value(headers, &config.uid_headers).unwrap_or_default();
        let groups = all_values(headers, &config.group_headers);
        let extra = extra_values(headers, &config.extra_headers_prefixes);
        Ok(Some(UserInfo {
            name,
            uid,
            groups,
            extra,
        }))
    }

    async fn user_from_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let Some(config) = &self.tokens else {
            return Ok(None);
        };
        let key = token_cache_key(token, &config.audiences);
        if let Some(cached) = self.token_cache.get(&key, self.clock.now()) {
            return cached.ok_or(AuthError::InvalidBearerToken).map(Some);
        }
        let review = {
            let mut reviewing = self.reviewing.lock().unwrap_or_else(|e| e.into_inner());
            reviewing.entry(key).or_default().clone()
        };
        // The review is forgotten however this request ends, cancelled included (a client
        // gone mid-review), so that the map holds only the reviews under way.
        let _forget = Forget {
            reviewing: &self.reviewing,
            key,
            review: review.clone(),
        };
        review
            .get_or_init(|| self.review_token(token, config, key))
            .await
            .clone()
    }

    /// Asks the API server about `token` and caches the answer (not a failure to ask).
    async fn review_token(
        &self,
        token: &str,
        config: &TokenReviewConfig,
        key: [u8; 32],
    ) -> Result<Option<UserInfo>, AuthError> {
        let review = token_review(token, &config.audiences);
        let body =
            serde_json::to_vec(&review).map_err(|e| AuthError::TokenReview(e.to_string()))?;
        let answer = config.client.create(TOKEN_REVIEW_PATH, body).await?;
        let answer: k8s_openapi::api::authentication::v1::TokenReview =
            serde_json::from_slice(&answer)
                .map_err(|e| AuthError::TokenReview(format!("decoding the answer: {e}")))?;
        let status = answer.status.unwrap_or_default();
        let audiences_ok = config.audiences.is_empty()
            || status
                .audiences
                .iter()
                .flatten()
                .any(|a| config.audiences.contains(a));
        let user = reviewed_user(status.user.unwrap_or_default());
        let user = (status.authenticated == Some(true) && audiences_ok && !user.name.is_empty())
            .then_some(user);
        self.token_cache
            .insert(key, user.clone(), config.ttl, self.clock.now());
        user.ok_or(AuthError::InvalidBearerToken).map(Some)
    }
}

impl Authenticator for DelegatingAuthenticator {
    fn authenticate<'a>(
        &'a self,
        peer: Option<&'a PeerCertificates>,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, AuthError>> {
        Box::pin(async move {
            let sources = self.sources();
            let mut errors = Vec::new();
            let chain = peer.map(PeerCertificates::chain).filter(|c| !c.is_empty());
            if let Some(chain) = chain {
                if let Some(config) = &sources.request_header {
                    match self.user_from_request_header(config, chain, headers) {
                        Ok(Some(user)) => return Ok(Some(user.with_authenticated_group())),
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
                if let Some(ca) = &sources.client_ca {
                    match ca.verify_client(chain, self.clock.now()) {
                        // A certificate without a common name names no user, as in
                        // Kubernetes' x509 authenticator: not an error, so the request
                        // is anonymous unless another credential says who.
                        Ok(subject) if subject.common_name.is_empty() => {}
                        Ok(subject) => {
                            let mut user =
                                UserInfo::new(subject.common_name, subject.organizations);
                            if let Some(leaf) = chain.first() {
                                user.extra.insert(
                                    CREDENTIAL_ID_KEY.to_string(),
                                    vec![certificate_credential_id(leaf)],
                                );
                            }
                            return Ok(Some(user.with_authenticated_group()));
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            if let Some(token) = bearer_token(headers) {
                match self.user_from_token(token).await {
                    Ok(Some(user)) => return Ok(Some(user.with_authenticated_group())),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
            match errors.len() {
                0 => Ok(None),
                1 => Err(errors.remove(0)),
                _ => Err(AuthError::Multiple(errors)),
            }
        })
    }
}

/// The `extra` key Kubernetes records the credential a user authenticated with under.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// `X509SHA256=<hex of the SHA-256 of the leaf certificate>`, the credential id Kubernetes
/// gives client certificate users.
fn certificate_credential_id(der: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut id = String::from("X509SHA256=");
    for b in digest.as_ref() {
        let _ = write!(id, "{b:02x}");
    }
    id
}

fn token_cache_key(token: &str, audiences: &[String]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(token.as_bytes());
    for audience in audiences {
        ctx.update(b"\0");
        ctx.update(audience.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one. As
/// in Kubernetes the header is trimmed and split at single spaces: the scheme is the first
/// field (any case), the token the second, and an empty second field is no token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let mut fields = value.splitn(3, ' ');
    let scheme = fields.next()?;
    let token = fields.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The first value of the first of `names` whose first value is non-empty (Go's
/// `Header.Get` per name): a later repetition of a header never replaces its first value.
fn first_value(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names.iter().find_map(|name| {
        headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

fn all_values(headers: &HeaderMap, names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|name| headers.get_all(name.as_str()).iter())
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

fn extra_values(headers: &HeaderMap, prefixes: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for prefix in prefixes {
        let prefix = prefix.to_ascii_lowercase();
        // HeaderMap keys are already lowercase.
        for name in headers.keys() {
            let Some(rest) = name.as_str().strip_prefix(prefix.as_str()) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let key = path_unescape(rest).unwrap_or_else(|| rest.to_string());
            let values = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string);
            extra.entry(key).or_default().extend(values);
        }
    }
    extra
}

/// Go's `url.PathUnescape`: `%XX` escapes decoded, `None` if any `%` is not followed by two
/// hex digits. Bytes that do not form UTF-8 become U+FFFD, as they do once Go encodes the
/// key as JSON.
fn path_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
