//! Requests for metrics that no rule serves, forwarded to another metrics server
//! (`--forward-unknown-external-metrics-to`, `--forward-unknown-custom-metrics-to`).
//!
//! Kubernetes registers one APIService per group and version, so promhpa and another
//! adapter (KEDA's metrics server, typically) cannot both serve `external.metrics.k8s.io`.
//! With a forward target, promhpa owns the APIService and:
//!
//! - answers every metric its rules serve itself, whatever happens to its backend;
//! - sends a value request for a metric none of its rules serves (after its own targeted
//!   lookup found nothing) to the other server: a GET of the same path and query, except
//!   that `timeout=` is what is left of the request's deadline. The answer comes back with
//!   its code, content type and body; an error the other server answers with a `Status` is
//!   passed through unchanged. When the other server cannot be reached, does not answer in
//!   time, or answers with something that is neither JSON nor a `Status`, the caller gets a
//!   503 `Status` naming it;
//! - lists in discovery its own resources and the other server's (fetched from the same
//!   path, kept for [`DISCOVERY_TTL`]), its own entry winning when both have a name. A
//!   failing other server leaves promhpa's own list, and a warning in the log.
//!
//! The caller has been authenticated and authorized by promhpa before any of this; the
//! other server is called with promhpa's own credentials only (a client certificate, a
//! bearer token read from a file, or the pod's service account token) — never the caller's
//! headers or identity.
//!
//! ```
//! use promhpa_apiserver::forward::ForwardOptions;
//! let options = ForwardOptions {
//!     external_url: Some("http://127.0.0.1:6443".into()),
//!     ..ForwardOptions::default()
//! };
//! let metrics = std::sync::Arc::new(promhpa_apiserver::metrics::SelfMetrics::default());
//! let forwarder = options.build(metrics).unwrap().unwrap();
//! assert_eq!(forwarder.target(promhpa_apiserver::registry::Api::External), Some("http://127.0.0.1:6443"));
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use promhpa_http_client::{
    error_chain, ClientError, ClientSettings, Identity, Pem, ReloadingClient, TokenFile,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::metrics::SelfMetrics;
use crate::registry::Api;
use crate::request::json;
use crate::types::ApiResourceList;

/// Set on every forwarded request. A request that arrives with it is never forwarded again,
/// so two servers forwarding to each other answer 404 instead of passing a request back and
/// forth until its deadline.
pub const FORWARDED_HEADER: &str = "x-promhpa-forwarded";

/// How long the other server's discovery list (or its failure) is reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(5);

/// The longest a discovery request waits for the other server.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a connection to the other server takes to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The budget of a forward made outside a request with a deadline.
const NO_DEADLINE_BUDGET: Duration = Duration::from_secs(60);

/// The largest answer relayed.
const MAX_ANSWER_BYTES: usize = 32 << 20;

const EXTERNAL_FLAG: &str = "forward-unknown-external-metrics-to";
const CUSTOM_FLAG: &str = "forward-unknown-custom-metrics-to";

/// A forward configuration that cannot work; each message names the flag.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("invalid --{flag} \"{value}\": {message}")]
    InvalidUrl {
        flag: &'static str,
        value: String,
        message: String,
    },
    #[error("{0}")]
    Flags(String),
    /// A CA, client certificate or token file that does not load.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The forwarding flags of `serve`.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// `--forward-unknown-external-metrics-to`.
    pub external_url: Option<String>,
    /// `--forward-unknown-custom-metrics-to`.
    pub custom_url: Option<String>,
    /// `--forward-ca-file`: the CA bundle that signed the other server's certificate;
    /// required for `https://`.
    pub ca_file: Option<PathBuf>,
    /// `--forward-client-cert-file` / `--forward-client-key-file`.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// `--forward-token-file`: a bearer token, re-read when the file changes.
    pub token_file: Option<PathBuf>,
    /// Sent as the bearer token when neither a token file nor a client certificate is given
    /// and this file exists (in `serve`, the token of the pod's service account).
    pub service_account_token: Option<PathBuf>,
}

/// An empty flag value counts as not given, as with pflag's string flags.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn given_path(v: &Option<PathBuf>) -> Option<&Path> {
    v.as_deref().filter(|p| !p.as_os_str().is_empty())
}

/// Whether `host` is this machine: http is accepted for such a server only.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(a) => IpAddr::V4(*a).is_loopback(),
        url::Host::Ipv6(a) => IpAddr::V6(*a).is_loopback(),
    }
}

/// The origin (`https://host:port`) requests go to, from a flag's URL.
fn parse_target(flag: &'static str, value: &str) -> Result<url::Url, ForwardError> {
    let invalid = |message: &str| ForwardError::InvalidUrl {
        flag,
        value: promhpa_core::url_text::redacted(value),
        message: message.to_string(),
    };
    let url = url::Url::parse(value)
        .map_err(|e| invalid(&format!("{e} (expected https://host:port)")))?;
    let host = url
        .host()
        .ok_or_else(|| invalid("no host (expected https://host:port)"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(invalid(
                "plain http is accepted only for a server on this host (127.0.0.1, ::1, localhost), as the token and the metrics would cross the network in clear; use https:// with --forward-ca-file",
            ))
        }
        other => return Err(invalid(&format!("scheme \"{other}\" is not http or https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not go in the URL; use --forward-token-file or --forward-client-cert-file/--forward-client-key-file",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(
            "the URL must not have a path: requests are forwarded with their own path (/apis/external.metrics.k8s.io/v1beta1/...)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "the URL must not have a query or fragment: requests are forwarded with their own query",
        ));
    }
    Ok(url)
}

impl ForwardOptions {
    /// Every problem of the flags themselves, found without reading a file: each URL that
    /// cannot be forwarded to, and each flag given without the flags it needs. `build`
    /// refuses the first.
    pub fn flag_errors(&self) -> Vec<ForwardError> {
        let mut errors = Vec::new();
        let mut target = |flag: &'static str, value: &Option<String>| match given(value)
            .map(|v| parse_target(flag, v))
        {
            Some(Ok(url)) => Some(url),
            Some(Err(e)) => {
                errors.push(e);
                None
            }
            None => None,
        };
        let external = target(EXTERNAL_FLAG, &self.external_url);
        let custom = target(CUSTOM_FLAG, &self.custom_url);
        let ca = given_path(&self.ca_file);
        let cert = given_path(&self.client_cert_file);
        let key = given_path(&self.client_key_file);
        let token = given_path(&self.token_file);
        if given(&self.external_url).is_none() && given(&self.custom_url).is_none() {
            let set: Vec<&str> = [
                (ca.is_some(), "--forward-ca-file"),
                (cert.is_some(), "--forward-client-cert-file"),
                (key.is_some(), "--forward-client-key-file"),
                (token.is_some(), "--forward-token-file"),
            ]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect();
            if !set.is_empty() {
                errors.push(ForwardError::Flags(format!(
                    "{} given without --{EXTERNAL_FLAG} or --{CUSTOM_FLAG}: there is nothing to forward to",
                    set.join(", ")
                )));
            }
            return errors;
        }
        let urls: Vec<&url::Url> = external.iter().chain(custom.iter()).collect();
        // With a URL that is refused, whether TLS is used is not known: the flags that depend
        // on it are checked once the URLs are right.
        if errors.is_empty() {
            let any_https = urls.iter().any(|u| u.scheme() == "https");
            if any_https && ca.is_none() {
                errors.push(ForwardError::Flags(
                    "--forward-ca-file is required with an https:// forward URL: the CA that signed the other metrics server's certificate (for KEDA, ca.crt of its kedaorg-certs Secret); there is no insecure mode"
                        .into(),
                ));
            }
            if !any_https {
                for (on, flag) in [
                    (ca.is_some(), "--forward-ca-file"),
                    (cert.is_some(), "--forward-client-cert-file"),
                ] {
                    if on {
                        errors.push(ForwardError::Flags(format!(
                            "{flag} has no use with plain http:// forward URLs (TLS is not used)"
                        )));
                    }
                }
            }
        }
        match (cert, key) {
            (Some(_), None) => errors.push(ForwardError::Flags(
                "--forward-client-cert-file needs --forward-client-key-file".into(),
            )),
            (None, Some(_)) => errors.push(ForwardError::Flags(
                "--forward-client-key-file needs --forward-client-cert-file".into(),
            )),
            _ => {}
        }
        errors
    }

    /// Check the flags and read the files they name; `None` when no forward URL is given.
    pub fn build(&self, metrics: Arc<SelfMetrics>) -> Result<Option<Forwarder>, ForwardError> {
        if let Some(e) = self.flag_errors().into_iter().next() {
            return Err(e);
        }
        let external = given(&self.external_url)
            .map(|v| parse_target(EXTERNAL_FLAG, v))
            .transpose()?;
        let custom = given(&self.custom_url)
            .map(|v| parse_target(CUSTOM_FLAG, v))
            .transpose()?;
        if external.is_none() && custom.is_none() {
            return Ok(None);
        }
        let ca = given_path(&self.ca_file);
        let cert = given_path(&self.client_cert_file);
        let key = given_path(&self.client_key_file);
        let token = given_path(&self.token_file);
        let client = ReloadingClient::new(client_settings(ca, cert.zip(key)), "forward")?;
        let token = match token {
            Some(path) => {
                let t = TokenFile::new("--forward-token-file", path);
                t.token()?;
                Some(t)
            }
            None if cert.is_none() => given_path(&self.service_account_token)
                .filter(|p| p.is_file())
                .map(|p| TokenFile::new("service account token", p)),
            None => None,
        };
        let identity = match (&token, cert) {
            (Some(t), Some(_)) => format!("client certificate and token {}", t.path().display()),
            (Some(t), None) => format!("token {}", t.path().display()),
            (None, Some(c)) => format!("client certificate {}", c.display()),
            (None, None) => "no credentials".to_string(),
        };
        let forwarder = Forwarder {
            external: external.map(|u| Target::new(EXTERNAL_FLAG, &u)),
            custom: custom.map(|u| Target::new(CUSTOM_FLAG, &u)),
            client,
            token,
            metrics,
            discovery_ttl: DISCOVERY_TTL,
        };
        for (api, target) in [
            ("external", &forwarder.external),
            ("custom", &forwarder.custom),
        ] {
            if let Some(t) = target {
                tracing::info!(api, to = %t.origin, credentials = %identity, "metrics no rule serves are forwarded");
            }
        }
        if forwarder.token.is_none() && cert.is_none() {
            tracing::warn!("forwarding without credentials: no --forward-token-file, --forward-client-cert-file or service account token; the other metrics server sees an anonymous client");
        }
        Ok(Some(forwarder))
    }
}

/// The client's settings: the CA and client certificate of the flags, TLS 1.2 or later, and
/// no redirects (a redirect is not an answer; following one could carry the token elsewhere).
fn client_settings(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> ClientSettings {
    let mut settings = ClientSettings::new(CONNECT_TIMEOUT);
    settings.follow_redirects = false;
    settings.user_agent = Some(concat!("promhpa/", env!("CARGO_PKG_VERSION"), " (forward)"));
    settings.ca = ca.map(|p| Pem::file("--forward-ca-file", p));
    settings.identity = identity.map(|(cert, key)| Identity {
        cert: Pem::file("--forward-client-cert-file", cert),
        key: Pem::file("--forward-client-key-file", key),
    });
    settings
}

/// The other server's discovery list for one path, or why there is none.
struct Listed {
    at: Instant,
    resources: Result<Vec<Value>, String>,
}

/// One forward target: where requests of one API go.
struct Target {
    flag: &'static str,
    /// `https://host:port`, without a trailing slash.
    origin: String,
    discovery: tokio::sync::Mutex<HashMap<String, Listed>>,
}

impl Target {
    fn new(flag: &'static str, url: &url::Url) -> Target {
        Target {
            flag,
            origin: url.origin().ascii_serialization(),
            discovery: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// Forwards requests for metrics no rule serves, and merges discovery lists.
pub struct Forwarder {
    external: Option<Target>,
    custom: Option<Target>,
    client: ReloadingClient,
    token: Option<TokenFile>,
    metrics: Arc<SelfMetrics>,
    discovery_ttl: Duration,
}

fn api_label(api: Api) -> &'static str {
    match api {
        Api::Custom => "custom",
        Api::External => "external",
    }
}

/// Why a call to the other server gave no answer to relay.
struct Failure(String);

impl Forwarder {
    /// How long the other server's discovery list is reused (default [`DISCOVERY_TTL`]).
    pub fn with_discovery_ttl(mut self, ttl: Duration) -> Self {
        self.discovery_ttl = ttl;
        self
    }

    fn target_of(&self, api: Api) -> Option<&Target> {
        match api {
            Api::Custom => self.custom.as_ref(),
            Api::External => self.external.as_ref(),
        }
    }

    /// Where requests of `api` are forwarded (`https://host:port`), if anywhere.
    pub fn target(&self, api: Api) -> Option<&str> {
        self.target_of(api).map(|t| t.origin.as_str())
    }

    /// Whether a request of `api` with these headers may be forwarded (or, for discovery,
    /// list the other server's resources): there is a target, and the request is not itself
    /// a forwarded one.
    pub fn forwards(&self, api: Api, headers: &HeaderMap) -> bool {
        if self.target_of(api).is_none() {
            return false;
        }
        if headers.contains_key(FORWARDED_HEADER) {
            tracing::debug!(
                api = api_label(api),
                "not forwarding a request that was itself forwarded"
            );
            return false;
        }
        true
    }

    /// A GET of `path` (and `query`) on the other server with promhpa's credentials.
    async fn get(
        &self,
        target: &Target,
        path: &str,
        query: Option<&str>,
        budget: Duration,
    ) -> Result<reqwest::Response, Failure> {
        let query = with_timeout(query, budget);
        let url = format!("{}{path}?{query}", target.origin);
        let mut request = self
            .client
            .get()
            .get(&url)
            .timeout(budget)
            .header(header::ACCEPT, "application/json")
            .header(FORWARDED_HEADER, "1");
        if let Some(t) = &self.token {
            request = request.bearer_auth(t.token().map_err(|e| Failure(e.to_string()))?);
        }
        request
            .send()
            .await
            .map_err(|e| Failure(transport_error(&e, budget)))
    }

    /// Forward a value request for `metric` of `api` (which no rule serves) and relay the
    /// answer, or answer a 503 `Status` naming the other server.
    pub async fn forward(&self, api: Api, metric: &str, uri: &Uri) -> Response {
        let Some(target) = self.target_of(api) else {
            return ApiError::Internal(format!("no forward target for {} metrics", api_label(api)))
                .into_response();
        };
        let start = Instant::now();
        let budget = crate::deadline::backend_budget(NO_DEADLINE_BUDGET);
        let result = match self.get(target, uri.path(), uri.query(), budget).await {
            Ok(resp) => relay(resp, budget).await,
            Err(f) => Err(f),
        };
        let label = api_label(api);
        let resp = match result {
            Ok(resp) => {
                if resp.status() == StatusCode::UNAUTHORIZED
                    || resp.status() == StatusCode::FORBIDDEN
                {
                    tracing::warn!(api = label, to = %target.origin, code = resp.status().as_u16(), "the metrics server forwarded to refused promhpa's credentials (--forward-token-file, --forward-client-cert-file, or the service account's RBAC there)");
                }
                resp
            }
            Err(Failure(reason)) => {
                self.metrics.forward_failed(label, "value");
                tracing::warn!(api = label, to = %target.origin, metric, error = %reason, "forwarding failed");
                let kind = match api {
                    Api::Custom => "metric",
                    Api::External => "external metric",
                };
                ApiError::Unavailable(format!(
                    "the {kind} \"{metric}\" is not served by promhpa's rules, and the metrics server it is forwarded to (--{}) {} is unavailable: {reason}",
                    target.flag, target.origin
                ))
                .into_response()
            }
        };
        let code = resp.status().as_u16();
        self.metrics.forwarded(label, code);
        tracing::debug!(api = label, to = %target.origin, path = uri.path(), code, elapsed_ms = start.elapsed().as_millis() as u64, "forwarded");
        resp
    }

    /// `own` with the other server's resources for the same `path` added (own entries win
    /// by name); `own` alone when there is no target for `api` or the other server fails.
    pub async fn discovery(&self, api: Api, path: &str, own: &ApiResourceList) -> Response {
        let Some(target) = self.target_of(api) else {
            return json(own);
        };
        let theirs = self.their_resources(api, target, path).await;
        json(&merge_resources(own, theirs.as_deref().unwrap_or(&[])))
    }

    /// The other server's resources under `path`, from the cache while it is fresh.
    async fn their_resources(&self, api: Api, target: &Target, path: &str) -> Option<Vec<Value>> {
        // Concurrent discovery requests wait for one fetch instead of each making one.
        let mut cache = target.discovery.lock().await;
        if let Some(l) = cache.get(path) {
            if l.at.elapsed() < self.discovery_ttl {
                return l.resources.as_ref().ok().cloned();
            }
        }
        let budget = crate::deadline::backend_budget(DISCOVERY_TIMEOUT).min(DISCOVERY_TIMEOUT);
        let fetched = match self.get(target, path, None, budget).await {
            Ok(resp) => resources_of(resp, budget).await,
            Err(Failure(reason)) => Err(reason),
        };
        let label = api_label(api);
        let before = cache.get(path).map(|l| l.resources.as_ref().err().cloned());
        match &fetched {
            Ok(list) => {
                if matches!(before, Some(Some(_))) {
                    tracing::info!(api = label, to = %target.origin, path, "the metrics server forwarded to answers discovery again");
                }
                tracing::debug!(api = label, to = %target.origin, path, resources = list.len(), "discovery of the metrics server forwarded to");
            }
            Err(reason) => {
                self.metrics.forward_failed(label, "discovery");
                // Once per change of the reason, not at every refresh.
                if before.flatten().as_deref() != Some(reason.as_str()) {
                    tracing::warn!(api = label, to = %target.origin, path, error = %reason, "discovery of the metrics server forwarded to failed; listing promhpa's metrics only");
                } else {
                    tracing::debug!(api = label, to = %target.origin, path, error = %reason, "discovery of the metrics server forwarded to still fails");
                }
            }
        }
        let out = fetched.as_ref().ok().cloned();
        cache.insert(
            path.to_string(),
            Listed {
                at: Instant::now(),
                resources: fetched,
            },
        );
        out
    }
}

/// The `resources` of the other server's discovery answer.
async fn resources_of(resp: reqwest::Response, budget: Duration) -> Result<Vec<Value>, String> {
    let code = resp.status();
    let body = read_body(resp, budget).await?;
    if !code.is_success() {
        return Err(format!("answered {code}: {}", excerpt(&body)));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "answered {code} with something that is not JSON ({e}): {}",
            excerpt(&body)
        )
    })?;
    match v.get("resources") {
        Some(Value::Array(list)) => Ok(list.clone()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err("answered a discovery document whose resources is not a list".into()),
    }
}

/// promhpa's discovery list with `theirs` added: a resource of theirs with a name promhpa
/// lists too (or with no name) is left out; the result is sorted by name.
pub fn merge_resources(own: &ApiResourceList, theirs: &[Value]) -> Value {
    let mut doc = serde_json::to_value(own).unwrap_or(Value::Null);
    let Some(list) = doc.get_mut("resources").and_then(Value::as_array_mut) else {
        return doc;
    };
    let mut names: std::collections::BTreeSet<String> =
        own.resources.iter().map(|r| r.name.clone()).collect();
    for r in theirs {
        let Some(name) = r.get("name").and_then(Value::as_str) else {
            continue;
        };
        if names.insert(name.to_string()) {
            list.push(r.clone());
        }
    }
    list.sort_by(|a, b| {
        let name = |v: &Value| {
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        name(a).cmp(&name(b))
    });
    doc
}

/// `query` with its `timeout` parameters replaced by `budget` (whole milliseconds, at least
/// one), every other parameter kept as it was written.
fn with_timeout(query: Option<&str>, budget: Duration) -> String {
    let mut parts: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| p.split('=').next() != Some("timeout"))
        .collect();
    let timeout = format!("timeout={}ms", budget.as_millis().max(1));
    parts.push(&timeout);
    parts.join("&")
}

/// The body of an answer, at most [`MAX_ANSWER_BYTES`].
async fn read_body(mut resp: reqwest::Response, budget: Duration) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(format!(
                        "the answer is larger than {} MiB",
                        MAX_ANSWER_BYTES >> 20
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(format!(
                    "reading the answer: {}",
                    transport_error(&e, budget)
                ))
            }
        }
    }
}

/// What to do with an answer of the other server: relay it (`Ok`) or say why not.
fn check_answer(code: StatusCode, body: &[u8]) -> Result<(), String> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    if code.is_success() {
        return match parsed {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "answered {code} with something that is not JSON ({e}): {}",
                excerpt(body)
            )),
        };
    }
    match parsed {
        Ok(v) if v.get("kind").and_then(Value::as_str) == Some("Status") => Ok(()),
        _ => Err(format!(
            "answered {code} without a Status: {}",
            excerpt(body)
        )),
    }
}

/// The answer to relay: the other server's code, content type, `Warning` and `Retry-After`
/// headers and body.
async fn relay(resp: reqwest::Response, budget: Duration) -> Result<Response, Failure> {
    let code = StatusCode::from_u16(resp.status().as_u16()).map_err(|e| Failure(e.to_string()))?;
    let mut headers = HeaderMap::new();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    headers.insert(header::CONTENT_TYPE, content_type);
    for name in [header::WARNING, header::RETRY_AFTER] {
        for v in resp.headers().get_all(name.as_str()) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.append(name.clone(), v);
            }
        }
    }
    let body = read_body(resp, budget).await.map_err(Failure)?;
    check_answer(code, &body).map_err(Failure)?;
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = code;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The start of a body, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Why a call failed on the wire; a timeout says how long was waited.
fn transport_error(e: &reqwest::Error, budget: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}ms", budget.as_millis())
    } else {
        error_chain(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ApiResource;

    fn metrics() -> Arc<SelfMetrics> {
        Arc::new(SelfMetrics::default())
    }

    fn err(o: ForwardOptions) -> String {
        match o.build(metrics()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn external(url: &str) -> ForwardOptions {
        ForwardOptions {
            external_url: Some(url.into()),
            ..ForwardOptions::default()
        }
    }

    #[test]
    fn urls_are_checked_naming_the_flag() {
        let e = err(external("http://keda.keda.svc:443"));
        assert!(
            e.starts_with(
                "invalid --forward-unknown-external-metrics-to \"http://keda.keda.svc:443\""
            ),
            "{e}"
        );
        assert!(e.contains("only for a server on this host"), "{e}");
        let e = err(ForwardOptions {
            custom_url: Some("https://keda/apis".into()),
            ca_file: Some("/nonexistent".into()),
            ..ForwardOptions::default()
        });
        assert!(
            e.contains("--forward-unknown-custom-metrics-to") && e.contains("must not have a path"),
            "{e}"
        );
        assert!(err(external("https://keda?x=1")).contains("query"));
        let e = err(external("https://u:s3cret@keda"));
        assert!(e.contains("credentials do not go in the URL"), "{e}");
        assert!(
            e.contains("\"https://u:xxxxx@keda\"") && !e.contains("s3cret"),
            "{e}"
        );
        assert!(err(external("ftp://keda")).contains("scheme \"ftp\""));
        assert!(err(external("keda:443")).contains("invalid --forward-unknown-external-metrics-to"));
        // Empty values are no values.
        assert!(ForwardOptions {
            external_url: Some(String::new()),
            ..ForwardOptions::default()
        }
        .build(metrics())
        .unwrap()
        .is_none());
        for ok in [
            "http://127.0.0.1:9000",
            "http://[::1]:9000",
            "http://localhost:9000/",
        ] {
            assert!(external(ok).build(metrics()).unwrap().is_some(), "{ok}");
        }
    }

    #[test]
    fn every_problem_of_the_flags_is_listed_without_reading_files() {
        let errors: Vec<String> = ForwardOptions {
            external_url: Some("http://keda.keda.svc".into()),
            custom_url: Some("https://keda/apis".into()),
            client_key_file: Some("/nonexistent/key".into()),
            ..ForwardOptions::default()
        }
        .flag_errors()
        .iter()
        .map(|e| e.to_string())
        .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("invalid --forward-unknown-external-metrics-to"));
        assert!(errors[1].contains("must not have a path"), "{errors:?}");
        assert_eq!(
            errors[2],
            "--forward-client-key-file needs --forward-client-cert-file"
        );
        // Files are read by build only.
        assert!(ForwardOptions {
            external_url: Some("https://keda.keda.svc".into()),
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..ForwardOptions::default()
        }
        .flag_errors()
        .is_empty());
    }

    #[test]
    fn credentials_are_checked_at_start() {
        let e = err(external("https://keda.keda.svc"));
        assert!(e.contains("--forward-ca-file is required"), "{e}");
        let e = err(ForwardOptions {
            token_file: Some("/tmp/t".into()),
            ..ForwardOptions::default()
        });
        assert!(
            e.starts_with(
                "--forward-token-file given without --forward-unknown-external-metrics-to"
            ),
            "{e}"
        );
        let e = err(ForwardOptions {
            client_cert_file: Some("/tmp/c".into()),
            ..external("http://127.0.0.1:1")
        });
        assert!(e.contains("has no use with plain http://"), "{e}");
        let pki = promhpa_test_support::TestPki::generate("ca", "promhpa").unwrap();
        let e = err(ForwardOptions {
            ca_file: Some(pki.ca_cert.clone()),
            client_cert_file: Some(pki.client_cert.clone()),
            ..external("https://keda")
        });
        assert_eq!(
            e,
            "--forward-client-cert-file needs --forward-client-key-file"
        );
        let e = err(ForwardOptions {
            ca_file: Some(pki.ca_cert.clone()),
            client_key_file: Some(pki.client_key.clone()),
            ..external("https://keda")
        });
        assert_eq!(
            e,
            "--forward-client-key-file needs --forward-client-cert-file"
        );
        let e = err(ForwardOptions {
            ca_file: Some(pki.client_key.clone()),
            ..external("https://keda")
        });
        assert!(
            e.starts_with("--forward-ca-file ") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = err(ForwardOptions {
            ca_file: Some(pki.ca_cert.clone()),
            token_file: Some(pki.dir.path().join("missing")),
            ..external("https://keda")
        });
        assert!(
            e.starts_with("reading --forward-token-file ") && e.contains("missing"),
            "{e}"
        );
        let f = ForwardOptions {
            ca_file: Some(pki.ca_cert.clone()),
            client_cert_file: Some(pki.client_cert.clone()),
            client_key_file: Some(pki.client_key.clone()),
            ..external("https://keda.keda.svc:443")
        }
        .build(metrics())
        .unwrap()
        .unwrap();
        assert_eq!(f.target(Api::External), Some("https://keda.keda.svc"));
        assert_eq!(f.target(Api::Custom), None);
    }

    #[test]
    fn the_service_account_token_is_the_default_credential() {
        let dir = promhpa_test_support::ScratchDir::new("forward").unwrap();
        let sa = dir.join("token");
        std::fs::write(&sa, "sa-token\n").unwrap();
        let with_sa = |o: ForwardOptions| ForwardOptions {
            service_account_token: Some(sa.clone()),
            ..o
        };
        let f = with_sa(external("http://127.0.0.1:1"))
            .build(metrics())
            .unwrap()
            .unwrap();
        assert_eq!(f.token.as_ref().unwrap().token().unwrap(), "sa-token");
        // An explicit token file wins; a client certificate alone means no token.
        let own = dir.join("own");
        std::fs::write(&own, "own-token").unwrap();
        let f = with_sa(ForwardOptions {
            token_file: Some(own.clone()),
            ..external("http://127.0.0.1:1")
        })
        .build(metrics())
        .unwrap()
        .unwrap();
        assert_eq!(f.token.as_ref().unwrap().token().unwrap(), "own-token");
        let pki = promhpa_test_support::TestPki::generate("ca", "promhpa").unwrap();
        let f = with_sa(ForwardOptions {
            ca_file: Some(pki.ca_cert.clone()),
            client_cert_file: Some(pki.client_cert.clone()),
            client_key_file: Some(pki.client_key.clone()),
            ..external("https://keda")
        })
        .build(metrics())
        .unwrap()
        .unwrap();
        assert!(f.token.is_none());
        // Outside a cluster: nothing.
        let f = ForwardOptions {
            service_account_token: Some(dir.join("absent")),
            ..external("http://127.0.0.1:1")
        }
        .build(metrics())
        .unwrap()
        .unwrap();
        assert!(f.token.is_none());
    }

    #[test]
    fn the_timeout_parameter_is_the_budget() {
        let d = Duration::from_millis(1800);
        assert_eq!(with_timeout(None, d), "timeout=1800ms");
        assert_eq!(
            with_timeout(Some("labelSelector=app%3Dweb&timeout=30s&x="), d),
            "labelSelector=app%3Dweb&x=&timeout=1800ms"
        );
        assert_eq!(
            with_timeout(Some("timeoutSeconds=5"), Duration::ZERO),
            "timeoutSeconds=5&timeout=1ms"
        );
    }

    #[test]
    fn answers_are_relayed_when_they_are_json_or_a_status() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,"reason":"NotFound"}"#;
        assert!(check_answer(
            StatusCode::OK,
            br#"{"kind":"ExternalMetricValueList","items":[]}"#
        )
        .is_ok());
        assert!(check_answer(StatusCode::NOT_FOUND, status).is_ok());
        assert!(check_answer(StatusCode::FORBIDDEN, status).is_ok());
        let e = check_answer(StatusCode::OK, b"<html>proxy</html>").unwrap_err();
        assert!(
            e.contains("200 OK with something that is not JSON") && e.contains("<html>"),
            "{e}"
        );
        let e = check_answer(StatusCode::BAD_GATEWAY, b"").unwrap_err();
        assert_eq!(e, "answered 502 Bad Gateway without a Status: (empty body)");
        let e = check_answer(StatusCode::NOT_FOUND, br#"{"error":"x"}"#).unwrap_err();
        assert!(e.contains("without a Status"), "{e}");
        assert_eq!(excerpt("é".repeat(300).as_bytes()).chars().count(), 203);
    }

    fn resource(name: &str) -> ApiResource {
        ApiResource {
            name: name.into(),
            singular_name: String::new(),
            namespaced: true,
            kind: "ExternalMetricValueList",
            verbs: vec!["get"],
        }
    }

    #[test]
    fn discovery_lists_are_merged_with_promhpa_winning() {
        let own = ApiResourceList {
            kind: "APIResourceList",
            api_version: "v1",
            group_version: "external.metrics.k8s.io/v1beta1".into(),
            resources: vec![resource("b_metric"), resource("shared")],
        };
        let theirs: Vec<Value> = serde_json::from_str(
            r#"[{"name":"shared","singularName":"","namespaced":false,"kind":"ExternalMetricValueList","verbs":["get"]},
                {"name":"s0-rabbitmq-orders","singularName":"","namespaced":true,"kind":"ExternalMetricValueList","verbs":["get"]},
                {"kind":"nameless"},
                {"name":"s0-rabbitmq-orders","namespaced":false}]"#,
        )
        .unwrap();
        let merged = merge_resources(&own, &theirs);
        assert_eq!(merged["groupVersion"], "external.metrics.k8s.io/v1beta1");
        let names: Vec<&str> = merged["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b_metric", "s0-rabbitmq-orders", "shared"]);
        assert_eq!(
            merged["resources"][2]["namespaced"], true,
            "promhpa's entry wins"
        );
        assert_eq!(
            merged["resources"][1]["namespaced"], true,
            "the first of theirs wins"
        );
        assert_eq!(
            merge_resources(&own, &[]),
            serde_json::to_value(&own).unwrap()
        );
    }

    #[test]
    fn forwarded_requests_are_not_forwarded_again() {
        let f = external("http://127.0.0.1:1")
            .build(metrics())
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        assert!(f.forwards(Api::External, &h));
        assert!(!f.forwards(Api::Custom, &h));
        h.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
        assert!(!f.forwards(Api::External, &h));
    }
}
