//! A client for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`) implementing [`promhpa_core::Backend`].
//!
//! TLS goes through rustls only, and queries travel on kept-alive HTTP/1.1 connections, one
//! query at a time on each, even to a backend that offers HTTP/2. The base URL keeps its path
//! prefix and query parameters (Thanos `dedup`, `partial_response`, tenant parameters), so
//! `https://thanos:9090/prefix?dedup=true` sends `https://thanos:9090/prefix/api/v1/query?dedup=true&query=...`.
//! Credentials: a CA file, a client certificate and key, a bearer token read from a file (and
//! re-read whenever the file changes), extra headers, and basic auth (from the URL or set
//! explicitly). The CA, the client certificate and the token can also be given inline, as a
//! kubeconfig carries them, with a name to verify the server's certificate against. Queries use GET, or POST when configured or when a GET URL would be longer
//! than [`PromConfig::max_get_url_len`]. Each query has a deadline, also sent to Prometheus
//! as `timeout=`. A rule file's `backends` entries become clients through [`backend_spec`].
//!
//! ```no_run
//! use promhpa_prom::{PromClient, PromConfig};
//! let mut config = PromConfig::new("https://prometheus.monitoring:9090");
//! config.ca_file = Some("/etc/prometheus-ca/ca.crt".into());
//! let client = PromClient::new(config).unwrap();
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backend_spec;
mod parse;
mod series;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use promhpa_core::backend::{
    Backend, BackendError, BoxFuture, QueryValue, SeriesInfo, TimedAnswer,
};
use promhpa_core::timing::{CallTimings, PromApi as Endpoint, ServerCalls};
use promhpa_http_client::{
    error_chain, ClientSettings, Direct, DirectError, DirectRequest, Identity, Pem,
    ReloadingClient, TokenFile,
};
use reqwest::header::HeaderValue;

pub use promhpa_http_client::{ClientError, InlinePem};

pub use backend_spec::BackendSpecError;
pub use parse::{parse_query_response, parse_sample_value, parse_series_response};

/// Why a client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("invalid prometheus url \"{url}\": {message}")]
    InvalidUrl { url: String, message: String },
    #[error("invalid prometheus client certificate/key {}: both a certificate file and a key file are required", .0.display())]
    Unpaired(PathBuf),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid header \"{0}\": expected key=value with a valid header name and value")]
    InvalidHeader(String),
    #[error("invalid prometheus verb \"{0}\": expected GET or POST")]
    InvalidVerb(String),
    /// Credentials that cannot go in an `Authorization` header (a control character).
    #[error("the prometheus {0} holds a character an HTTP header cannot carry")]
    Unsendable(&'static str),
    /// A CA, client certificate or token that does not load.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The HTTP method used for queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verb {
    /// GET, switching to POST when the URL would be too long.
    #[default]
    Get,
    /// Always POST with a form body.
    Post,
}

impl std::str::FromStr for Verb {
    type Err = PromError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Verb::Get),
            "POST" => Ok(Verb::Post),
            _ => Err(PromError::InvalidVerb(s.to_string())),
        }
    }
}

/// How to reach a Prometheus server.
#[derive(Debug, Clone)]
pub struct PromConfig {
    /// Base URL, with an optional path prefix and query parameters that are kept on every call.
    pub url: String,
    /// PEM CA bundle that replaces the built-in roots when set.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// PEM CA bundle given inline, trusted like `ca_file` (which it cannot be combined with).
    pub ca_pem: Option<InlinePem>,
    /// PEM client certificate and key given inline (not with `client_cert_file`).
    pub client_identity_pem: Option<(InlinePem, InlinePem)>,
    /// Name to verify Prometheus' certificate against (and send as SNI) instead of the URL's
    /// host; the connection still goes to the URL's address.
    pub tls_server_name: Option<String>,
    /// File holding a bearer token; re-read when its modification time or size changes.
    /// Wins over `bearer_token`.
    pub token_file: Option<PathBuf>,
    /// A fixed bearer token. A token (from either source) wins over basic auth.
    pub bearer_token: Option<String>,
    /// Extra headers sent on every request, e.g. `X-Scope-OrgID`.
    pub headers: Vec<(String, String)>,
    /// Basic auth user and password; the URL's user info is used when this is unset.
    pub basic_auth: Option<(String, String)>,
    pub verb: Verb,
    /// Deadline of one query, also sent as `timeout=`.
    pub query_timeout: Duration,
    /// GET URLs longer than this many bytes are sent as POST instead.
    pub max_get_url_len: usize,
    /// Skip certificate verification entirely (testing only).
    pub insecure_skip_verify: bool,
    /// Where the time of each call Prometheus answers is counted, under the endpoint's path
    /// and [`server_label`] of `url`.
    pub call_timings: Option<Arc<CallTimings>>,
}

impl PromConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PromConfig {
            url: url.into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            ca_pem: None,
            client_identity_pem: None,
            tls_server_name: None,
            token_file: None,
            bearer_token: None,
            headers: Vec::new(),
            basic_auth: None,
            verb: Verb::Get,
            query_timeout: Duration::from_secs(20),
            max_get_url_len: 4096,
            insecure_skip_verify: false,
            call_timings: None,
        }
    }
}

/// How a client's calls are labelled in its [`CallTimings`]: its URL as given, without the
/// query string (which may carry a key) and with any password shown as `xxxxx`.
pub fn server_label(url: &str) -> String {
    // As Go's URL parser reads one: the fragment goes first, then the query.
    let url = url.split('#').next().unwrap_or_default();
    let url = url.split('?').next().unwrap_or_default();
    promhpa_core::url_text::redacted(url)
}

/// Parse a `key=value` header flag.
pub fn parse_header_flag(flag: &str) -> Result<(String, String), PromError> {
    // Without `=`, the header is sent with an empty value, as prometheus-adapter sends it.
    let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
    let k = k.trim();
    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
        || reqwest::header::HeaderValue::from_str(v).is_err()
    {
        return Err(PromError::InvalidHeader(flag.to_string()));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A Prometheus HTTP API client.
pub struct PromClient {
    /// Rebuilt when the CA or client certificate files change.
    http: ReloadingClient,
    /// The URLs of the API endpoints, by [`Endpoint`], each made once from the base URL.
    endpoints: [url::Url; 3],
    /// The base URL without credentials, for messages.
    display: String,
    token: Option<TokenFile>,
    /// The `Authorization` header of a fixed bearer token, or else of basic auth; a token
    /// file wins over it.
    authorization: Option<HeaderValue>,
    verb: Verb,
    timeout: Duration,
    max_get_url_len: usize,
    /// Where the time of each answered call is counted.
    timings: Option<Arc<ServerCalls>>,
}

/// The endpoint's URL under `base`, whose path prefix and query parameters it keeps.
fn endpoint_url(api: Endpoint, base: &url::Url) -> url::Url {
    let mut u = base.clone();
    let path = format!("{}{}", base.path().trim_end_matches('/'), api.path());
    u.set_path(&path);
    u
}

/// The HTTP client settings of `config`: its CA, client certificate and headers, connecting to
/// `server_name`'s addresses for its name when given.
fn client_settings(
    config: &PromConfig,
    server_name: Option<(String, Vec<std::net::SocketAddr>)>,
) -> Result<ClientSettings, PromError> {
    let mut settings = ClientSettings::new(config.query_timeout.min(CONNECT_TIMEOUT));
    settings.ca = match (&config.ca_file, &config.ca_pem) {
        (Some(_), Some(_)) => {
            return Err(PromError::Conflict(
                "a prometheus ca file and an inline ca cannot both be given".into(),
            ))
        }
        (Some(file), None) => Some(Pem::file("prometheus ca file", file)),
        (None, Some(pem)) => Some(Pem::Inline(pem.clone())),
        (None, None) => None,
    };
    settings.identity = match (
        &config.client_identity_pem,
        &config.client_cert_file,
        &config.client_key_file,
    ) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(PromError::Conflict(
                "a prometheus client certificate file and an inline client certificate cannot both be given".into(),
            ))
        }
        (Some((cert, key)), None, None) => Some(Identity {
            cert: Pem::Inline(cert.clone()),
            key: Pem::Inline(key.clone()),
        }),
        (None, Some(cert), Some(key)) => Some(Identity {
            cert: Pem::file("prometheus client certificate", cert),
            key: Pem::file("prometheus client key", key),
        }),
        (None, Some(p), None) | (None, None, Some(p)) => {
            return Err(PromError::Unpaired(p.clone()))
        }
        (None, None, None) => None,
    };
    settings.insecure_skip_verify = config.insecure_skip_verify;
    settings.resolve = server_name;
    // Queries go over kept-alive HTTP/1.1 connections, one query in flight on each, even
    // when the backend offers HTTP/2: a query then costs less of promhpa's CPU (no stream
    // and flow-control bookkeeping, no HPACK), and concurrent queries open more connections.
    settings.http1_only = true;
    // Queries skip reqwest's layers where the settings allow (Direct): they are the one
    // request made for each metric request.
    settings.direct = true;
    for (k, v) in &config.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| PromError::InvalidHeader(format!("{k}={v}")))?;
        let value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| PromError::InvalidHeader(format!("{k}={v}")))?;
        settings.headers.append(name, value);
    }
    Ok(settings)
}

impl PromClient {
    /// Build a client; reads the CA and client certificate files now, and again when they
    /// change.
    pub fn new(config: PromConfig) -> Result<Self, PromError> {
        let invalid_url = |m: String| PromError::InvalidUrl {
            url: promhpa_core::url_text::redacted(&config.url),
            message: m,
        };
        let mut base = url::Url::parse(&config.url).map_err(|e| invalid_url(e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(invalid_url("scheme must be http or https".into()));
        }
        let mut basic_auth = config.basic_auth.clone();
        if basic_auth.is_none() && !base.username().is_empty() {
            let user = percent_decode(base.username());
            let pass = percent_decode(base.password().unwrap_or(""));
            basic_auth = Some((user, pass));
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let path = base.path().trim_end_matches('/').to_string();
        base.set_path(&path);
        let display = {
            let mut d = base.clone();
            d.set_query(None);
            d.to_string().trim_end_matches('/').to_string()
        };

        // Verify the certificate for `tls_server_name` (and send it as SNI) while connecting
        // to the URL's address: requests go to that name, which resolves to the address only
        // here.
        let mut server_name = None;
        if let Some(name) = config.tls_server_name.as_deref().filter(|n| !n.is_empty()) {
            let host = base.host_str().unwrap_or_default().to_string();
            let port = base.port_or_known_default().unwrap_or(443);
            let lookup = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&(lookup.as_str(), port))
                    .map_err(|e| invalid_url(format!("resolving {host} for tls-server-name: {e}")))?
                    .collect();
            base.set_host(Some(name))
                .map_err(|e| invalid_url(format!("tls-server-name {name:?}: {e}")))?;
            server_name = Some((name.to_string(), addrs));
        }
        let http = ReloadingClient::new(client_settings(&config, server_name)?, "prometheus")?;
        // Read the token once now so that a missing file is reported at startup.
        let token = match &config.token_file {
            Some(p) => {
                let file = TokenFile::new("token file", p).allowing_empty();
                file.token()?;
                Some(file)
            }
            None => None,
        };
        let authorization = match (config.bearer_token.as_deref(), &basic_auth) {
            (Some(t), _) if !t.is_empty() => {
                Some(bearer(t).map_err(|_| PromError::Unsendable("bearer token"))?)
            }
            (_, Some((user, password))) => {
                use base64::Engine;
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut value = HeaderValue::from_str(&format!("Basic {pair}"))
                    .map_err(|_| PromError::Unsendable("basic auth"))?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(PromClient {
            http,
            endpoints: Endpoint::ALL.map(|e| endpoint_url(e, &base)),
            display,
            token,
            authorization,
            verb: config.verb,
            timeout: config.query_timeout,
            max_get_url_len: config.max_get_url_len,
            timings: config
                .call_timings
                .as_ref()
                .map(|t| t.server(&server_label(&config.url))),
        })
    }

    /// The HTTP client, rebuilt first when the credential files changed.
    fn client(&self) -> reqwest::Client {
        self.http.get()
    }

    fn endpoint(&self, api: Endpoint) -> &url::Url {
        &self.endpoints[api as usize]
    }

    /// Call an API endpoint with form parameters and return the body of a 2xx/4xx/5xx JSON answer.
    async fn call(
        &self,
        api: Endpoint,
        params: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<bytes::Bytes, BackendError> {
        let started = Instant::now();
        if let Some(direct) = self.http.direct() {
            if direct.handles(self.endpoint(api)) {
                if let Some(answer) = self
                    .call_direct(&direct, api, params, timeout, started)
                    .await
                {
                    return answer;
                }
            }
        }
        let resp = self.send(api, params, timeout, started).await?;
        let body = resp.bytes().await;
        self.answered(api, started);
        body.map_err(|e| BackendError::Unavailable {
            address: self.display.clone(),
            message: transport_error(&e, timeout),
        })
    }

    /// [`PromClient::call`] over a connection of [`Direct`]; `None` when the answer is a
    /// redirect, for reqwest to follow.
    async fn call_direct(
        &self,
        direct: &Direct,
        api: Endpoint,
        params: &[(&str, &str)],
        timeout: Duration,
        started: Instant,
    ) -> Option<Result<bytes::Bytes, BackendError>> {
        let unavailable = |message: String| BackendError::Unavailable {
            address: self.display.clone(),
            message,
        };
        let (url, form) = self.target(api, params);
        let authorization = match self.authorization() {
            Ok(a) => a,
            Err(e) => return Some(Err(unavailable(e))),
        };
        let request = DirectRequest {
            url: &url,
            form,
            authorization,
        };
        match direct.send(&request, timeout).await {
            Ok(answer) if answer.status.is_redirection() => None,
            Ok(answer) => {
                self.answered(api, started);
                Some(if answer.status.is_success() {
                    Ok(answer.body)
                } else {
                    Err(self.refusal(answer.status, &answer.body))
                })
            }
            Err(DirectError::ConnectTimeout) => Some(Err(unavailable(connect_timed_out(timeout)))),
            Err(DirectError::Timeout) => Some(Err(unavailable(answer_timed_out(timeout)))),
            Err(DirectError::Failed(message)) => Some(Err(unavailable(message))),
        }
    }

    /// Where a call to `api` with `params` goes, and its form when it is a POST: a GET
    /// unless the verb is POST or the URL would be too long.
    fn target(&self, api: Endpoint, params: &[(&str, &str)]) -> (url::Url, Option<String>) {
        let mut get_url = self.endpoint(api).clone();
        {
            let mut pairs = get_url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
        }
        if self.verb == Verb::Post || get_url.as_str().len() > self.max_get_url_len {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            (self.endpoint(api).clone(), Some(form))
        } else {
            (get_url, None)
        }
    }

    /// The `Authorization` header of a call: the token file's token as it is now, or the
    /// fixed one.
    fn authorization(&self) -> Result<Option<HeaderValue>, String> {
        match &self.token {
            Some(file) => {
                let token = file.token().map_err(|e| e.to_string())?;
                bearer(&token).map(Some).map_err(|_| {
                    format!(
                        "the token in {} holds a character an HTTP header cannot carry",
                        file.path().display()
                    )
                })
            }
            None => Ok(self.authorization.clone()),
        }
    }

    /// A call to `api` made at `started` was answered (its body read, or cut short): its
    /// time is counted. Calls without an answer (no connection, no response in time) are
    /// not, as prometheus-adapter counts them.
    fn answered(&self, api: Endpoint, started: Instant) {
        if let Some(t) = &self.timings {
            t.observe(api, started.elapsed());
        }
    }

    /// Send a request that must be answered (body included) within `timeout`; a successful
    /// response is returned with its body unread, anything else becomes a typed error. An
    /// answer that is an error is counted as a call made at `started`.
    async fn send(
        &self,
        api: Endpoint,
        params: &[(&str, &str)],
        timeout: Duration,
        started: Instant,
    ) -> Result<reqwest::Response, BackendError> {
        let unavailable = |message: String| BackendError::Unavailable {
            address: self.display.clone(),
            message,
        };
        let mut req = match self.target(api, params) {
            (url, Some(form)) => self
                .client()
                .post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form),
            (url, None) => self.client().get(url),
        };
        req = req.timeout(timeout);
        if let Some(auth) = self.authorization().map_err(unavailable)? {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable(transport_error(&e, timeout)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await;
        self.answered(api, started);
        let body = body.map_err(|e| unavailable(transport_error(&e, timeout)))?;
        Err(self.refusal(status, &body))
    }

    /// What an answer other than a success (or a redirect) with `status` and `body` means.
    fn refusal(&self, status: reqwest::StatusCode, body: &[u8]) -> BackendError {
        let unavailable = |message: String| BackendError::Unavailable {
            address: self.display.clone(),
            message,
        };
        // Prometheus answers API errors with JSON bodies: 400/422 for a query it rejects,
        // 5xx (timeout, internal, unavailable) when it cannot answer, as Mimir, Cortex and
        // Thanos do while their ingesters or stores are down.
        if let Ok(err) = serde_json::from_slice::<parse::ApiErrorBody>(body) {
            if err.status == "error" {
                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && err.error_type == "timeout"
                {
                    return unavailable(format!("query timed out: {}", err.error));
                }
                if status.is_server_error() {
                    return unavailable(format!(
                        "http {status}: {}: {}",
                        err.error_type, err.error
                    ));
                }
                return BackendError::Query {
                    error_type: err.error_type,
                    message: err.error,
                };
            }
        }
        let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
        if status.is_server_error()
            || status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
        {
            unavailable(format!("http {status}: {}", snippet.trim()))
        } else {
            BackendError::Protocol {
                address: self.display.clone(),
                message: format!("http {status}: {}", snippet.trim()),
            }
        }
    }

    /// The budget of one call: the configured query timeout, or less when the caller has less.
    fn budget(&self, caller: Duration) -> Duration {
        caller.min(self.timeout)
    }

    /// An instant query, with the time its answer took to decode.
    async fn instant_query(&self, promql: &str, at_ms: i64, timeout: Duration) -> TimedAnswer {
        let (time, timeout_ms) = (format_ts(at_ms), timeout_param(timeout));
        let params = [("query", promql), ("time", &time), ("timeout", &timeout_ms)];
        let body = match self.call(Endpoint::Query, &params, timeout).await {
            Ok(body) => body,
            Err(e) => {
                return TimedAnswer {
                    result: Err(e),
                    decode: None,
                }
            }
        };
        let started = Instant::now();
        let result = parse_query_response(&body).map_err(|message| BackendError::Protocol {
            address: self.display.clone(),
            message,
        });
        TimedAnswer {
            result,
            decode: Some(started.elapsed()),
        }
    }
}

/// Prometheus' `timeout=`: whole milliseconds, at least one.
fn timeout_param(timeout: Duration) -> String {
    format!("{}ms", timeout.as_millis().max(1))
}

/// The longest a connection to the backend may take to open, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed on the wire; a timeout says how long was waited.
fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() && e.is_connect() {
        connect_timed_out(timeout)
    } else if e.is_timeout() {
        answer_timed_out(timeout)
    } else {
        // reqwest names the URL; its query string (the PromQL, an API key in a query
        // parameter) and any password stay out of Status messages and logs.
        let mut text = error_chain(e);
        if let Some(url) = e.url() {
            let mut shown = url.clone();
            shown.set_query(None);
            let shown = promhpa_core::url_text::redacted(shown.as_str());
            if shown != url.as_str() {
                text = text.replace(url.as_str(), &shown);
            }
        }
        text
    }
}

/// The connect timeout (at most 10 s) ran out before the request's own, `timeout`.
fn connect_timed_out(timeout: Duration) -> String {
    format!(
        "timed out: no connection (TCP and TLS handshake) within {}",
        format_duration(timeout.min(CONNECT_TIMEOUT))
    )
}

/// A request got no whole answer within its `timeout`.
fn answer_timed_out(timeout: Duration) -> String {
    format!("timed out: no answer within {}", format_duration(timeout))
}

/// The `Authorization` header of a bearer token.
fn bearer(token: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `1.5s`, `250ms`.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms % 100 == 0 {
        let s = ms as f64 / 1000.0;
        format!("{s}s")
    } else {
        format!("{ms}ms")
    }
}

fn percent_decode(s: &str) -> String {
    // As Go's url.PathUnescape reads userinfo: `%XX` only (a `+` stays a `+`, unlike in a
    // query string).
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Milliseconds since the epoch as the decimal seconds string Prometheus accepts.
fn format_ts(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

impl Backend for PromClient {
    fn address(&self) -> String {
        self.display.clone()
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async move { self.instant_query(promql, at_ms, self.timeout).await.result })
    }

    fn query_within<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async move {
            self.instant_query(promql, at_ms, self.budget(timeout))
                .await
                .result
        })
    }

    fn query_timed<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: Duration,
    ) -> BoxFuture<'a, TimedAnswer> {
        Box::pin(self.instant_query(promql, at_ms, self.budget(timeout)))
    }

    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async move {
            let (start, end) = (format_ts(start_ms), format_ts(end_ms));
            let (step, timeout) = (format_ts(step_ms.max(1)), timeout_param(self.timeout));
            let params = [
                ("query", promql),
                ("start", &start),
                ("end", &end),
                ("step", &step),
                ("timeout", &timeout),
            ];
            let body = self
                .call(Endpoint::QueryRange, &params, self.timeout)
                .await?;
            parse_query_response(&body).map_err(|message| BackendError::Protocol {
                address: self.display.clone(),
                message,
            })
        })
    }

    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        Box::pin(async move {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let (start, end) = (format_ts(since_ms), format_ts(now));
            let params = [("match[]", selector), ("start", &start), ("end", &end)];
            // The body is decoded chunk by chunk while it arrives, so a relist of many series
            // never holds the whole response (or any label value).
            let started = Instant::now();
            let mut resp = self
                .send(Endpoint::Series, &params, self.timeout, started)
                .await?;
            let protocol = |message| BackendError::Protocol {
                address: self.display.clone(),
                message,
            };
            let mut scanner = series::SeriesScanner::new();
            let read = loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if let Err(e) = scanner.feed(&chunk) {
                            break Err(protocol(e));
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => {
                        break Err(BackendError::Unavailable {
                            address: self.display.clone(),
                            message: transport_error(&e, self.timeout),
                        })
                    }
                }
            };
            self.answered(Endpoint::Series, started);
            read?;
            scanner.finish().map_err(protocol)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_decoded_as_a_path_not_a_query() {
        assert_eq!(percent_decode("pa+ss%2Bx"), "pa+ss+x");
        assert_eq!(percent_decode("us%2Ber"), "us+er");
        assert_eq!(percent_decode("a%26b%3Dc%"), "a&b=c%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn endpoints_keep_prefix_and_query() {
        let c = PromClient::new(PromConfig::new(
            "https://u:p%40ss@thanos:9090/prefix/?dedup=true&partial_response=false",
        ))
        .unwrap();
        let e = c.endpoint(Endpoint::Query);
        assert_eq!(
            e.as_str(),
            "https://thanos:9090/prefix/api/v1/query?dedup=true&partial_response=false"
        );
        assert_eq!(c.address(), "https://thanos:9090/prefix");
        // Basic auth of `u` and `p@ss`, the URL's user info decoded.
        assert_eq!(
            c.authorization().ok().flatten(),
            Some(HeaderValue::from_static("Basic dTpwQHNz"))
        );
        let c = PromClient::new(PromConfig::new("http://prom:9090")).unwrap();
        assert_eq!(
            c.endpoint(Endpoint::Series).as_str(),
            "http://prom:9090/api/v1/series"
        );
    }

    #[test]
    fn bad_config_is_reported() {
        assert!(PromClient::new(PromConfig::new("ftp://x")).is_err());
        assert!(PromClient::new(PromConfig::new("not a url")).is_err());
        let mut c = PromConfig::new("https://x");
        c.ca_file = Some("/nonexistent/ca.crt".into());
        let err = PromClient::new(c).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("/nonexistent/ca.crt"), "{err}");
        assert!(parse_header_flag("X-Scope-OrgID=tenant-a").is_ok());
        assert!(parse_header_flag("novalue").is_ok());
        assert!(parse_header_flag("bad header=x").is_err());
        assert_eq!("post".parse::<Verb>().unwrap(), Verb::Post);
        assert!("PUT".parse::<Verb>().is_err());
    }

    #[test]
    fn tls_server_name_is_requested_while_the_address_stays() {
        let mut c = PromConfig::new("https://127.0.0.1:9090/prefix");
        c.tls_server_name = Some("prometheus.monitoring.svc".into());
        let client = PromClient::new(c).unwrap();
        assert_eq!(
            client.endpoint(Endpoint::Query).as_str(),
            "https://prometheus.monitoring.svc:9090/prefix/api/v1/query"
        );
        assert_eq!(client.address(), "https://127.0.0.1:9090/prefix");
    }

    #[test]
    fn inline_and_file_credentials_do_not_mix() {
        let pem = |source: &str, text: &str| InlinePem {
            source: source.into(),
            pem: text.as_bytes().to_vec(),
        };
        let mut c = PromConfig::new("https://x");
        c.ca_file = Some("/etc/ca.crt".into());
        c.ca_pem = Some(pem("certificate-authority-data", "x"));
        let err = PromClient::new(c).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("cannot both be given"), "{err}");
        let mut c = PromConfig::new("https://x");
        c.ca_pem = Some(pem("certificate-authority-data of kubeconfig k", "not pem"));
        let err = PromClient::new(c).err().map(|e| e.to_string()).unwrap();
        assert!(
            err.contains("certificate-authority-data of kubeconfig k"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_format_as_seconds() {
        assert_eq!(format_ts(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_ts(5), "0.005");
        assert_eq!(format_ts(-1500), "-1.500");
    }

    #[test]
    fn token_file_is_reread_when_it_changes() {
        let dir = promhpa_test_support::ScratchDir::new("token").unwrap();
        let path = dir.join("token");
        let mut config = PromConfig::new("https://x");
        config.token_file = Some(path.clone());
        // A missing token file is reported when the client is made.
        let err = PromClient::new(config.clone()).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("reading token file {}: ", path.display())),
            "{err}"
        );
        std::fs::write(&path, "first\n").unwrap();
        let client = PromClient::new(config).unwrap();
        let cache = client.token.as_ref().unwrap();
        assert_eq!(cache.token().unwrap(), "first");
        // A different length is noticed even when the mtime granularity hides the change.
        std::fs::write(&path, "second-token").unwrap();
        assert_eq!(cache.token().unwrap(), "second-token");
        // Emptied (rewritten in place), the file keeps standing for the token it held.
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(cache.token().unwrap(), "second-token");
        std::fs::remove_file(&path).unwrap();
        assert!(cache.token().is_err());
    }

    #[test]
    fn a_header_flag_without_a_value_sends_the_header_empty() {
        assert_eq!(
            parse_header_flag("X-Flag").ok(),
            Some(("X-Flag".to_string(), String::new()))
        );
        assert_eq!(
            parse_header_flag("X-Scope-OrgID=tenant=a").ok(),
            Some(("X-Scope-OrgID".to_string(), "tenant=a".to_string()))
        );
        assert!(parse_header_flag("bad header=x").is_err());
    }
}
