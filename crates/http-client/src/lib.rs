//! promhpa's outgoing HTTP clients (to Prometheus backends, to the metrics server requests are
//! forwarded to, to the embedded scraper's targets), built from the same kind of settings: a
//! CA bundle, a client certificate and key, and a bearer token file.
//!
//! - [`ClientSettings::build`] makes a rustls client that speaks TLS 1.2 or later, trusts
//!   only the given CA bundle (every certificate of a PEM bundle) when there is one, presents
//!   the client certificate, and follows redirects only when told to.
//! - [`ReloadingClient`] rebuilds that client when the CA or client certificate files change
//!   (a rotated Secret): a thread of its own reads them once a second, so a request never
//!   waits on the files; a change that does not load yet keeps the previous client. It keeps a client of its own for each thread that asks for one: a
//!   connection is served by a task on the runtime of the thread that opened it, and a
//!   request from another thread would wake that one twice on every round trip.
//! - [`Direct`] (from [`ReloadingClient::direct`], with the same CA and client certificate)
//!   sends a request over a kept-alive HTTP/1.1 connection of the calling thread without
//!   reqwest's layers, for the one request every metric request makes: a query to Prometheus.
//! - [`TokenFile`] is a bearer token re-read whenever its file changes.
//!
//! Every file is named in messages with the setting it was given by (a flag such as
//! `--forward-ca-file`), and a cause is part of the message once, not also an error source.
//!
//! ```
//! use std::time::Duration;
//! use promhpa_http_client::{ClientSettings, Pem, ReloadingClient};
//! let mut settings = ClientSettings::new(Duration::from_secs(5));
//! settings.ca = Some(Pem::file("--forward-ca-file", "/nonexistent/ca.crt"));
//! let err = ReloadingClient::new(settings, "forward").err().map(|e| e.to_string());
//! assert!(err.is_some_and(|e| e.starts_with("reading --forward-ca-file /nonexistent/ca.crt: ")));
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Why a client or a token could not be had from its settings.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading {setting} {}: {error}", path.display())]
    Read {
        setting: String,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A CA bundle that is not PEM or holds no certificate; `ca` names it.
    #[error("{ca}: {message}")]
    InvalidCa { ca: String, message: String },
    /// A client certificate and key that do not make an identity.
    #[error("{cert}: with {key}: {message}")]
    InvalidIdentity {
        cert: String,
        key: String,
        message: String,
    },
    #[error("{setting} {} is empty", path.display())]
    EmptyToken { setting: String, path: PathBuf },
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// PEM text handed over in memory, with what it is and where it came from for messages
/// (e.g. `certificate-authority-data of kubeconfig /etc/prom-auth/config`).
#[derive(Clone)]
pub struct InlinePem {
    pub source: String,
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for InlinePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("InlinePem")
            .field("source", &self.source)
            .field("bytes", &self.pem.len())
            .finish()
    }
}

/// PEM content: a file (read when a client is built, watched by [`ReloadingClient`]) or
/// text in memory.
#[derive(Debug, Clone)]
pub enum Pem {
    File {
        /// The flag or setting that named the file, for messages.
        setting: String,
        path: PathBuf,
    },
    Inline(InlinePem),
}

impl Pem {
    pub fn file(setting: impl Into<String>, path: impl Into<PathBuf>) -> Pem {
        Pem::File {
            setting: setting.into(),
            path: path.into(),
        }
    }

    /// The setting and file, or the inline source, for messages.
    fn describe(&self) -> String {
        match self {
            Pem::File { setting, path } => format!("{setting} {}", path.display()),
            Pem::Inline(p) => p.source.clone(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, ClientError> {
        match self {
            Pem::File { setting, path } => std::fs::read(path).map_err(|error| ClientError::Read {
                setting: setting.clone(),
                path: path.clone(),
                error,
            }),
            Pem::Inline(p) => Ok(p.pem.clone()),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Pem::File { path, .. } => Some(path),
            Pem::Inline(_) => None,
        }
    }
}

/// A client certificate (chain) and its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: Pem,
    pub key: Pem,
}

/// How to make a client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// CA bundle trusted instead of the built-in roots.
    pub ca: Option<Pem>,
    /// Client certificate for mutual TLS.
    pub identity: Option<Identity>,
    /// Skip certificate verification entirely (testing only).
    pub insecure_skip_verify: bool,
    pub connect_timeout: Duration,
    /// The longest a whole request may take, answer included (none: no limit).
    pub timeout: Option<Duration>,
    /// Follow redirects as reqwest does by default; otherwise a redirect is the answer.
    pub follow_redirects: bool,
    pub user_agent: Option<&'static str>,
    /// Sent on every request.
    pub headers: reqwest::header::HeaderMap,
    /// Connect to these addresses for this host name (verifying the certificate for the name).
    pub resolve: Option<(String, Vec<SocketAddr>)>,
    /// Speak HTTP/1.1 only (kept-alive connections, one request at a time on each), even
    /// where the server offers HTTP/2.
    pub http1_only: bool,
    /// Also make a [`Direct`] client ([`ReloadingClient::direct`]) for requests that need
    /// none of reqwest's layers, when these settings allow one: HTTP/1.1 only, certificates
    /// verified, no other address for the host, and no proxy set in the environment.
    pub direct: bool,
}

/// How long an idle connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl ClientSettings {
    /// No CA (the built-in roots), no client certificate, redirects followed.
    pub fn new(connect_timeout: Duration) -> ClientSettings {
        ClientSettings {
            ca: None,
            identity: None,
            insecure_skip_verify: false,
            connect_timeout,
            timeout: None,
            follow_redirects: true,
            user_agent: None,
            headers: reqwest::header::HeaderMap::new(),
            resolve: None,
            http1_only: false,
            direct: false,
        }
    }

    /// The client, with the CA and client certificate files read now.
    pub fn build(&self) -> Result<reqwest::Client, ClientError> {
        self.build_from(&self.material()?)
    }

    /// The PEM of the files as `files` holds them (read by [`ClientSettings::fingerprint`]),
    /// so that what is remembered as loaded is what was loaded; a file it could not read is
    /// read again, for the error.
    fn material_from(&self, files: &Fingerprint) -> Result<Material, ClientError> {
        let mut contents = files.iter();
        let mut take = |pem: &Pem| match pem {
            Pem::File { .. } => match contents.next() {
                Some(Some(bytes)) => Ok(bytes.clone()),
                _ => pem.read(),
            },
            Pem::Inline(p) => Ok(p.pem.clone()),
        };
        let ca = self.ca.as_ref().map(&mut take).transpose()?;
        let identity = match &self.identity {
            Some(Identity { cert, key }) => Some((take(cert)?, take(key)?)),
            None => None,
        };
        Ok(Material { ca, identity })
    }

    /// The CA and client certificate as they are now.
    fn material(&self) -> Result<Material, ClientError> {
        let identity = match &self.identity {
            Some(Identity { cert, key }) => Some((cert.read()?, key.read()?)),
            None => None,
        };
        Ok(Material {
            ca: self.ca.as_ref().map(Pem::read).transpose()?,
            identity,
        })
    }

    /// The client, with this CA and client certificate.
    fn build_from(&self, material: &Material) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        if let Some(t) = self.timeout {
            builder = builder.timeout(t);
        }
        if !self.follow_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        if let Some(agent) = self.user_agent {
            builder = builder.user_agent(agent);
        }
        let mut leaves = Vec::new();
        if let Some(ca) = &self.ca {
            let invalid = |message: String| ClientError::InvalidCa {
                ca: ca.describe(),
                message,
            };
            let pem = material.ca.as_deref().unwrap_or_default();
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(e.to_string()))?;
            if certs.is_empty() {
                return Err(invalid("no PEM certificate in it".into()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
            leaves = self_signed::server_certificates(pem);
        }
        if let (Some(Identity { cert, key }), Some((cert_pem, key_pem))) =
            (&self.identity, &material.identity)
        {
            let mut pem = cert_pem.clone();
            pem.push(b'\n');
            pem.extend(key_pem);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::InvalidIdentity {
                    cert: cert.describe(),
                    key: key.describe(),
                    message: e.to_string(),
                })?;
            builder = builder.identity(identity);
        }
        // A self-signed server certificate in the CA file is accepted as Go accepts it
        // (rustls refuses one marked as a CA): the TLS configuration is then built here.
        if let (false, Some(pem)) = (leaves.is_empty() || self.insecure_skip_verify, &material.ca) {
            let identity = material
                .identity
                .as_ref()
                .map(|(c, k)| (c.as_slice(), k.as_slice()));
            let alpn = if self.http1_only {
                vec![b"http/1.1".to_vec()]
            } else {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            };
            let config = self_signed::client_config(pem, leaves, identity, alpn)
                .map_err(ClientError::Build)?;
            builder = builder.use_preconfigured_tls(config);
        }
        if let Some((name, addrs)) = &self.resolve {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        if self.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if self.http1_only {
            builder = builder.http1_only();
        }
        builder = EnvProxies::read().apply(builder)?;
        builder
            .default_headers(self.headers.clone())
            .build()
            .map_err(|e| ClientError::Build(error_chain(&e)))
    }

    /// The [`Direct`] client of these settings and this CA and client certificate, when
    /// they ask for one and allow it.
    fn build_direct(&self, material: &Material) -> Result<Option<Arc<Direct>>, ClientError> {
        if !self.direct
            || !self.http1_only
            || self.insecure_skip_verify
            || self.resolve.is_some()
            || EnvProxies::read().any()
        {
            return Ok(None);
        }
        // Without a CA (the built-in roots) only `http` URLs are sent directly.
        let tls = match &material.ca {
            Some(ca) => {
                let identity = material
                    .identity
                    .as_ref()
                    .map(|(c, k)| (c.as_slice(), k.as_slice()));
                let config = self_signed::client_config(
                    ca,
                    self_signed::server_certificates(ca),
                    identity,
                    vec![b"http/1.1".to_vec()],
                )
                .map_err(ClientError::Build)?;
                Some(config)
            }
            None => None,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("*/*"),
        );
        if let Some(agent) = self.user_agent {
            headers.insert(
                reqwest::header::USER_AGENT,
                reqwest::header::HeaderValue::from_static(agent),
            );
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        Ok(Some(Arc::new(Direct::new(
            tls,
            self.connect_timeout,
            headers,
        ))))
    }

    /// The files the client is built from.
    fn files(&self) -> Vec<&Path> {
        let identity = self.identity.iter().flat_map(|i| [&i.cert, &i.key]);
        self.ca
            .iter()
            .chain(identity)
            .filter_map(Pem::path)
            .collect()
    }

    /// The files' contents (certificates and keys are small): a rotation that keeps size and
    /// modification time is seen too.
    fn fingerprint(&self) -> Fingerprint {
        self.files()
            .into_iter()
            .map(|p| std::fs::read(p).ok())
            .collect()
    }
}

/// The proxies of the environment, read as Go's `net/http` reads them (and so
/// prometheus-adapter and client-go): `HTTPS_PROXY` for `https` URLs and `HTTP_PROXY` for
/// `http` ones, the upper-case name before the lower-case one and an empty value as none,
/// with the exceptions of `NO_PROXY`. `ALL_PROXY`, which Go does not read, is not used, and
/// neither proxy is used for `localhost` or a loopback address.
#[derive(Debug, Default, PartialEq, Eq)]
struct EnvProxies {
    /// The variable that set it, and its value.
    http: Option<(&'static str, String)>,
    https: Option<(&'static str, String)>,
    no_proxy: Option<String>,
}

/// What Go never sends through a proxy.
const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

impl EnvProxies {
    fn read() -> EnvProxies {
        EnvProxies::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> EnvProxies {
        let any = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.is_empty()).map(|v| (n, v)))
        };
        EnvProxies {
            http: any(["HTTP_PROXY", "http_proxy"]),
            https: any(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: any(["NO_PROXY", "no_proxy"]).map(|(_, v)| v),
        }
    }

    fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// `builder` with these proxies and nothing else from the environment.
    fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ClientError> {
        if !self.any() {
            return Ok(builder.no_proxy());
        }
        let exceptions = match &self.no_proxy {
            Some(list) => format!("{list},{LOOPBACK}"),
            None => LOOPBACK.to_string(),
        };
        let invalid = |name: &str, e: reqwest::Error| {
            ClientError::Build(format!("the proxy in {name}: {}", error_chain(&e)))
        };
        if let Some((name, url)) = &self.https {
            let proxy = reqwest::Proxy::https(url.as_str())
                .map_err(|e| invalid(name, e))?
                .no_proxy(reqwest::NoProxy::from_string(&exceptions));
            builder = builder.proxy(proxy);
        }
        if let Some((name, url)) = &self.http {
            let proxy = reqwest::Proxy::http(url.as_str())
                .map_err(|e| invalid(name, e))?
                .no_proxy(reqwest::NoProxy::from_string(&exceptions));
            builder = builder.proxy(proxy);
        }
        Ok(builder)
    }
}

/// The contents of the files a client is built from, in order (`None`: unreadable).
type Fingerprint = Vec<Option<Vec<u8>>>;

/// The PEM a client was built from: the CA, and the client certificate and key.
struct Material {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// One version of the CA and client certificate, with a client built from it.
struct Generation {
    number: u64,
    material: Arc<Material>,
    client: reqwest::Client,
    direct: Option<Arc<Direct>>,
}

/// How often the CA and client certificate files are looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A client rebuilt when its CA or client certificate files change, one for each thread.
pub struct ReloadingClient {
    shared: Arc<Shared>,
    /// Each thread's client, and the generation it was built from.
    local: thread_local::ThreadLocal<RefCell<Option<(u64, reqwest::Client)>>>,
}

/// What the thread that looks at the files and the threads that ask for clients share.
struct Shared {
    settings: ClientSettings,
    /// What the client talks to (`prometheus`, `forward`), for the log.
    name: &'static str,
    current: RwLock<Generation>,
    /// What the files held when the current generation was built from them, and when they
    /// last failed to load.
    seen: Mutex<watch::Seen<Fingerprint>>,
}

impl ReloadingClient {
    /// Builds the client now, so that a missing or invalid file is reported at start, and,
    /// when it is built from files, starts the thread that looks at them.
    pub fn new(settings: ClientSettings, name: &'static str) -> Result<Self, ClientError> {
        let seen = settings.fingerprint();
        let material = settings.material_from(&seen)?;
        let client = settings.build_from(&material)?;
        let direct = settings.build_direct(&material)?;
        let watched = !settings.files().is_empty();
        let shared = Arc::new(Shared {
            seen: Mutex::new(watch::Seen::new(seen)),
            settings,
            name,
            current: RwLock::new(Generation {
                number: 0,
                material: Arc::new(material),
                client,
                direct,
            }),
        });
        if watched {
            watch::every(
                &format!("{name}-certs"),
                CHECK_INTERVAL,
                &shared,
                Shared::look,
            )
            .map_err(|e| {
                ClientError::Build(format!(
                    "starting the thread that looks at the CA and client certificate files: {e}"
                ))
            })?;
        }
        Ok(ReloadingClient {
            shared,
            local: thread_local::ThreadLocal::new(),
        })
    }

    /// The [`Direct`] client of the current CA and client certificate, when the settings
    /// asked for one and allow it.
    pub fn direct(&self) -> Option<Arc<Direct>> {
        match self.shared.current.read() {
            Ok(c) => c.direct.clone(),
            Err(p) => p.into_inner().direct.clone(),
        }
    }

    /// This thread's client, built again when the files changed since it was built.
    pub fn get(&self) -> reqwest::Client {
        let mut local = self.local.get_or(|| RefCell::new(None)).borrow_mut();
        let (number, material, shared) = {
            let current = match self.shared.current.read() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            if let Some((n, client)) = &*local {
                if *n == current.number {
                    return client.clone();
                }
            }
            (
                current.number,
                current.material.clone(),
                current.client.clone(),
            )
        };
        // Built without the lock, so other threads go on meanwhile. The same PEM built the
        // shared client already; should it fail now, that one serves.
        let client = match self.shared.settings.build_from(&material) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "building another {} client failed; sharing the first", self.shared.name);
                shared
            }
        };
        *local = Some((number, client.clone()));
        client
    }
}

impl Shared {
    /// Reads the files and, when they changed and make a valid client, makes that the
    /// current generation; a half-written file is tried again at the next look. Runs on the
    /// thread that looks at the files, never on a serving thread.
    fn look(&self) {
        let now = self.settings.fingerprint();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.is_new(&now) {
            return;
        }
        let built = self.settings.material_from(&now).and_then(|m| {
            let client = self.settings.build_from(&m)?;
            let direct = self.settings.build_direct(&m)?;
            Ok((client, direct, m))
        });
        match built {
            Ok((client, direct, material)) => {
                seen.loaded(now);
                let mut current = match self.current.write() {
                    Ok(c) => c,
                    Err(p) => p.into_inner(),
                };
                *current = Generation {
                    number: current.number + 1,
                    material: Arc::new(material),
                    client,
                    direct,
                };
                tracing::info!(
                    "{} CA or client certificate changed; using the new files",
                    self.name
                );
            }
            Err(e) => {
                seen.refused(now);
                tracing::warn!(error = %e, "{} CA or client certificate changed but does not load yet; keeping the previous one", self.name);
            }
        }
    }
}

pub mod direct;
mod self_signed;

pub use direct::{Direct, DirectAnswer, DirectError, DirectRequest};

pub mod watch {
    //! Files looked at on a thread of their own, so that reading them never holds up a
    //! request.

    use std::sync::{Arc, Weak};
    use std::time::Duration;

    /// What files held when they were last loaded, and when they last failed to load: a
    /// content is tried (and a failure logged) once.
    #[derive(Debug)]
    pub struct Seen<F> {
        loaded: F,
        refused: Option<F>,
    }

    impl<F: PartialEq> Seen<F> {
        pub fn new(loaded: F) -> Self {
            Seen {
                loaded,
                refused: None,
            }
        }

        /// Whether `now` is worth loading: neither what is loaded nor what last failed.
        pub fn is_new(&self, now: &F) -> bool {
            *now != self.loaded && self.refused.as_ref() != Some(now)
        }

        pub fn loaded(&mut self, now: F) {
            self.loaded = now;
            self.refused = None;
        }

        pub fn refused(&mut self, now: F) {
            self.refused = Some(now);
        }
    }

    /// Calls `look` on `target` every `interval` on a thread named `name`, until the last
    /// `Arc` to `target` is dropped.
    pub fn every<T: Send + Sync + 'static>(
        name: &str,
        interval: Duration,
        target: &Arc<T>,
        look: fn(&T),
    ) -> std::io::Result<()> {
        let weak: Weak<T> = Arc::downgrade(target);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || loop {
                std::thread::sleep(interval);
                match weak.upgrade() {
                    Some(target) => look(&target),
                    None => return,
                }
            })?;
        Ok(())
    }
}

/// A bearer token in a file, re-read when the file's modification time or size changes;
/// surrounding whitespace is not part of it.
pub struct TokenFile {
    /// The flag or setting that named the file, for messages.
    setting: String,
    path: PathBuf,
    allow_empty: bool,
    state: Mutex<Option<(SystemTime, u64, String)>>,
}

impl TokenFile {
    /// A token file whose token must not be empty.
    pub fn new(setting: impl Into<String>, path: impl Into<PathBuf>) -> TokenFile {
        TokenFile {
            setting: setting.into(),
            path: path.into(),
            allow_empty: false,
            state: Mutex::new(None),
        }
    }

    /// An empty file is an empty token rather than an error.
    pub fn allowing_empty(mut self) -> TokenFile {
        self.allow_empty = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token, read again when the file changed since the last call.
    pub fn token(&self) -> Result<String, ClientError> {
        let reading = |error| ClientError::Read {
            setting: self.setting.clone(),
            path: self.path.clone(),
            error,
        };
        let meta = std::fs::metadata(&self.path).map_err(reading)?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let len = meta.len();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((m, l, token)) = state.as_ref() {
            if *m == mtime && *l == len {
                return Ok(token.clone());
            }
        }
        let token = std::fs::read_to_string(&self.path)
            .map_err(reading)?
            .trim()
            .to_string();
        if token.is_empty() {
            if !self.allow_empty {
                return Err(ClientError::EmptyToken {
                    setting: self.setting.clone(),
                    path: self.path.clone(),
                });
            }
            // A file emptied after it held a token is most likely being rewritten in place
            // (truncated, then written): the token it held stays in use, and the file is
            // read again next time.
            if let Some((_, _, previous)) = state.as_ref().filter(|(_, _, t)| !t.is_empty()) {
                return Ok(previous.clone());
            }
        }
        *state = Some((mtime, len, token.clone()));
        Ok(token)
    }
}

/// An error and its sources joined with `: ` (the rustls or socket reason behind a connect
/// error), each distinct message once.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn dir(name: &str) -> promhpa_test_support::ScratchDir {
        promhpa_test_support::ScratchDir::new(&format!("http-client-{name}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err<T>(r: Result<T, ClientError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn token_files_are_reread_when_they_change() {
        let scratch = dir("rotating");
        let path = scratch.join("token");
        std::fs::write(&path, "first\n").unwrap_or_else(|e| panic!("{e}"));
        let t = TokenFile::new("--forward-token-file", &path);
        assert_eq!(t.token().ok().as_deref(), Some("first"));
        // A different length is noticed even when the mtime granularity hides the change.
        std::fs::write(&path, "second-token").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.token().ok().as_deref(), Some("second-token"));
        std::fs::write(&path, "  \n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            err(t.token()),
            format!("--forward-token-file {} is empty", path.display())
        );
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let e = err(t.token());
        assert!(
            e.starts_with(&format!(
                "reading --forward-token-file {}: ",
                path.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn an_empty_token_can_be_allowed() {
        let scratch = dir("empty");
        let path = scratch.join("token");
        std::fs::write(&path, "\n").unwrap_or_else(|e| panic!("{e}"));
        let t = TokenFile::new("token file", &path).allowing_empty();
        assert_eq!(t.token().ok().as_deref(), Some(""));
        std::fs::write(&path, "first\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.token().ok().as_deref(), Some("first"));
        // Emptied while it is rewritten: the token it held is still sent...
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.token().ok().as_deref(), Some("first"));
        // ...until the file holds the new one.
        std::fs::write(&path, "second-token\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.token().ok().as_deref(), Some("second-token"));
    }

    #[test]
    fn files_are_named_with_their_setting() {
        let pki = promhpa_test_support::TestPki::generate("ca", "promhpa")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = ClientSettings::new(Duration::from_secs(5));
        s.ca = Some(Pem::file("--forward-ca-file", &pki.client_key));
        assert_eq!(
            err(s.build()),
            format!(
                "--forward-ca-file {}: no PEM certificate in it",
                pki.client_key.display()
            )
        );
        s.ca = Some(Pem::Inline(InlinePem {
            source: "certificate-authority-data of kubeconfig k".into(),
            pem: b"not pem".to_vec(),
        }));
        let e = err(s.build());
        assert!(
            e.starts_with("certificate-authority-data of kubeconfig k: "),
            "{e}"
        );
        let key = InlinePem {
            source: "client-key-data".into(),
            pem: b"SECRET KEY".to_vec(),
        };
        let debug = format!("{:?}", Pem::Inline(key));
        assert!(!debug.contains("SECRET"), "{debug}");
        s.ca = Some(Pem::file("--forward-ca-file", &pki.ca_cert));
        s.identity = Some(Identity {
            cert: Pem::file("--forward-client-cert-file", &pki.client_cert),
            key: Pem::file("--forward-client-key-file", pki.dir.path().join("missing")),
        });
        let e = err(s.build());
        assert!(
            e.starts_with("reading --forward-client-key-file ") && e.contains("missing"),
            "{e}"
        );
        s.identity = Some(Identity {
            cert: Pem::file("--forward-client-cert-file", &pki.client_cert),
            key: Pem::file("--forward-client-key-file", &pki.ca_cert),
        });
        let e = err(s.build());
        assert!(
            e.starts_with(&format!(
                "--forward-client-cert-file {}: with --forward-client-key-file {}: ",
                pki.client_cert.display(),
                pki.ca_cert.display()
            )),
            "{e}"
        );
        s.identity = Some(Identity {
            cert: Pem::file("--forward-client-cert-file", &pki.client_cert),
            key: Pem::file("--forward-client-key-file", &pki.client_key),
        });
        assert!(s.build().is_ok());
        assert_eq!(s.files().len(), 3);
    }

    #[test]
    fn a_rotated_file_is_used_once_it_loads() {
        let pki = promhpa_test_support::TestPki::generate("ca", "promhpa")
            .unwrap_or_else(|e| panic!("{e}"));
        let scratch = dir("rotated");
        let ca = scratch.join("ca.crt");
        std::fs::copy(&pki.ca_cert, &ca).unwrap_or_else(|e| panic!("{e}"));
        let mut s = ClientSettings::new(Duration::from_secs(5));
        s.ca = Some(Pem::file("--forward-ca-file", &ca));
        let client = ReloadingClient::new(s, "forward").unwrap_or_else(|e| panic!("{e}"));
        let generation = |c: &ReloadingClient| c.shared.current.read().map(|g| g.number).ok();
        let _ = client.get();
        // Half-written: not used, and tried again at the next look.
        std::fs::write(&ca, "-----BEGIN CERT").unwrap_or_else(|e| panic!("{e}"));
        client.shared.look();
        assert_eq!(generation(&client), Some(0));
        std::fs::copy(&pki.client_cert, &ca).unwrap_or_else(|e| panic!("{e}"));
        client.shared.look();
        assert_eq!(generation(&client), Some(1));
        // The thread's client is built again from the new files.
        let _ = client.get();
        let local = client
            .local
            .get()
            .and_then(|l| l.borrow().as_ref().map(|(n, _)| *n));
        assert_eq!(local, Some(1));
        // Unchanged files: nothing new.
        client.shared.look();
        assert_eq!(generation(&client), Some(1));
    }

    /// The thread started with the client looks at the files by itself, and ends with it.
    #[test]
    fn the_files_are_looked_at_without_a_request_asking() {
        let pki = promhpa_test_support::TestPki::generate("ca", "promhpa")
            .unwrap_or_else(|e| panic!("{e}"));
        let scratch = dir("looked-at");
        let ca = scratch.join("ca.crt");
        std::fs::copy(&pki.ca_cert, &ca).unwrap_or_else(|e| panic!("{e}"));
        let mut s = ClientSettings::new(Duration::from_secs(5));
        s.ca = Some(Pem::file("--forward-ca-file", &ca));
        let client = ReloadingClient::new(s, "forward").unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(&pki.client_cert, &ca).unwrap_or_else(|e| panic!("{e}"));
        let rotated = (0..100).any(|_| {
            std::thread::sleep(CHECK_INTERVAL / 10);
            client.shared.current.read().is_ok_and(|g| g.number == 1)
        });
        assert!(rotated, "the rotated CA was not picked up");
        // The thread holds no reference between looks: the client's state goes with it.
        let weak = Arc::downgrade(&client.shared);
        drop(client);
        let freed = (0..100).any(|_| {
            std::thread::sleep(CHECK_INTERVAL / 50);
            weak.upgrade().is_none()
        });
        assert!(
            freed,
            "the thread that looks at the files kept the client alive"
        );
    }

    /// A server on 127.0.0.1 that redirects `/` to `/there` and answers `/there` with 204,
    /// for `connections` connections.
    fn redirecting_server(connections: usize) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections).flatten() {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let answer = if request.starts_with("GET /there ") {
                    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    format!("HTTP/1.1 302 Found\r\nLocation: http://{addr}/there\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                };
                let _ = (&stream).write_all(answer.as_bytes());
            }
        });
        format!("http://{addr}/")
    }

    /// A server on 127.0.0.1 answering every request with 204 on kept-alive connections, and
    /// how many connections it accepted.
    fn counting_server() -> (String, Arc<AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => {
                                let answer = "HTTP/1.1 204 No Content\r\n\r\n";
                                if (&stream).write_all(answer.as_bytes()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/"), accepted)
    }

    #[test]
    fn each_thread_keeps_its_own_connections() {
        let (url, accepted) = counting_server();
        let mut settings = ClientSettings::new(Duration::from_secs(5));
        settings.http1_only = true;
        settings.timeout = Some(Duration::from_secs(5));
        let client =
            Arc::new(ReloadingClient::new(settings, "forward").unwrap_or_else(|e| panic!("{e}")));
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let ask = |client: &ReloadingClient, url: &str| {
            let http = client.get();
            let url = url.to_string();
            async move {
                let status = http.get(url).send().await.map(|r| r.status().as_u16());
                assert_eq!(status.unwrap_or_else(|e| panic!("{e}")), 204);
            }
        };
        let here = runtime();
        for _ in 0..3 {
            here.block_on(ask(&client, &url));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one thread reuses its connection"
        );
        let (other_client, other_url) = (client.clone(), url.clone());
        std::thread::spawn(move || runtime().block_on(ask(&other_client, &other_url)))
            .join()
            .unwrap_or_else(|_| panic!("the other thread failed"));
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "another thread opens its own"
        );
        here.block_on(ask(&client, &url));
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "the first thread still has its own"
        );
    }

    #[test]
    fn the_environment_s_proxies_are_read_as_go_reads_them() {
        let read = |vars: &[(&str, &str)]| {
            EnvProxies::from_lookup(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        let some = |v: &str| Some(v.to_string());
        let set = |name: &'static str, v: &str| Some((name, v.to_string()));
        assert_eq!(read(&[]), EnvProxies::default());
        assert!(!read(&[]).any());
        // Upper case first; an empty value is none, and the lower-case name is read then.
        let both = read(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("HTTP_PROXY", ""),
            ("http_proxy", "http://plain:3128"),
            ("no_proxy", ".cluster.local"),
        ]);
        assert_eq!(
            both,
            EnvProxies {
                http: set("http_proxy", "http://plain:3128"),
                https: set("HTTPS_PROXY", "http://upper:3128"),
                no_proxy: some(".cluster.local"),
            }
        );
        assert!(both.any());
        // ALL_PROXY is not Go's, and NO_PROXY alone sets no proxy.
        let none = read(&[("ALL_PROXY", "http://all:3128"), ("NO_PROXY", "*")]);
        assert!(!none.any(), "{none:?}");
        // A proxy URL reqwest cannot take is an error naming the variable.
        let bad = read(&[("https_proxy", "http://[::1")]);
        let err = bad
            .apply(reqwest::Client::builder())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("the proxy in https_proxy: "), "{err}");
    }

    #[test]
    fn a_direct_client_is_made_only_where_the_settings_allow_one() {
        let direct = |change: &dyn Fn(&mut ClientSettings)| {
            let mut s = ClientSettings::new(Duration::from_secs(5));
            s.http1_only = true;
            s.direct = true;
            change(&mut s);
            let client = ReloadingClient::new(s, "prometheus").unwrap_or_else(|e| panic!("{e}"));
            client.direct().is_some()
        };
        assert!(direct(&|_| {}));
        assert!(!direct(&|s| s.direct = false), "not asked for");
        assert!(!direct(&|s| s.http1_only = false), "HTTP/2 allowed");
        assert!(
            !direct(&|s| s.insecure_skip_verify = true),
            "no verification"
        );
        assert!(
            !direct(&|s| s.resolve = Some((
                "prometheus".into(),
                vec![SocketAddr::from(([127, 0, 0, 1], 9090))]
            ))),
            "another address for the host"
        );
    }

    #[tokio::test]
    async fn redirects_are_answers_unless_followed() {
        let status = |follow: bool, url: String| async move {
            let mut s = ClientSettings::new(Duration::from_secs(5));
            s.follow_redirects = follow;
            let client = s.build().unwrap_or_else(|e| panic!("{e}"));
            match client.get(url).send().await {
                Ok(r) => r.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(status(false, redirecting_server(1)).await, 302);
        assert_eq!(status(true, redirecting_server(2)).await, 204);
    }

    #[test]
    fn error_chains_name_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
        let e = Outer(std::io::Error::other("deeper"));
        assert_eq!(error_chain(&e), "outer: inner: deeper");
    }
}
