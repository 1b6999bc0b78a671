//! TLS serving: rustls (TLS 1.2 and 1.3 only), serving certificates re-read when their files
//! change, optional client certificates passed up as [`PeerCertificates`], HTTP/1.1 and
//! HTTP/2, timeouts and caps on connections and requests ([`ServingLimits`]), graceful
//! shutdown, and connections spread over serving threads that each handle theirs alone.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use promhpa_core::tls::PeerCertificates;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;

use crate::metrics::{SelfMetrics, Stage};

mod builder;
mod error;
mod limits;
pub mod memory;
mod tls_policy;
mod workers;

pub use builder::{Server, ServerBuilder};
pub use error::ServerError;
pub use limits::ServingLimits;
use tls_policy::provider;
pub use tls_policy::{
    check_cipher_suite_name, offered_cipher_suite_names, unoffered_cipher_suite_names, ResolvedTls,
    TlsOptions, TlsVersion,
};

/// A PEM error with the text of the marker or line it names (the error shows their bytes).
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "missing the line \"-----END {}-----\" (the file is cut short?)",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => {
            format!("malformed PEM line {:?}", String::from_utf8_lossy(line))
        }
        Error::NoItemsFound => "no PEM item of the expected kind in it".to_string(),
        other => other.to_string(),
    }
}

/// Load a PEM certificate chain and private key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, ServerError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|e| ServerError::Read {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    let cert_pem = read("tls certificate file", cert)?;
    let key_pem = read("tls private key file", key)?;
    certified_key_from(cert, &cert_pem, key, &key_pem)
}

/// [`load_certified_key`] from the files' contents, already read; the paths name them in
/// errors.
fn certified_key_from(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, ServerError> {
    let read_err = |what: &'static str, path: &Path, e: String| ServerError::Read {
        what,
        path: path.to_path_buf(),
        message: e,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| read_err("tls certificate file", cert, pem_error(&e)))?;
    if certs.is_empty() {
        return Err(read_err(
            "tls certificate file",
            cert,
            "no certificates found".into(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| read_err("tls private key file", key, pem_error(&e)))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| read_err("tls private key file", key, e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing);
    // As Go's tls.X509KeyPair refuses it: a key that is not the certificate's would fail
    // every handshake. (A key that cannot tell its public half is not checked.)
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(read_err(
            "tls private key file",
            key,
            format!(
                "private key does not match the public key of the certificate in {}",
                cert.display()
            ),
        ));
    }
    Ok(certified)
}

/// How often the serving certificate and key files are looked at.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Serves the certificate in a pair of files. A thread of its own reads them every two
/// seconds and, when they changed, loads them; a pair that fails to load is logged (once
/// for each content) and the previous one kept. A handshake only takes the current pair.
#[derive(Debug)]
pub struct ReloadingCert {
    files: Arc<CertFiles>,
}

#[derive(Debug)]
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the files held when the current pair was loaded, and when they last failed to.
    seen: Mutex<promhpa_http_client::watch::Seen<CertFingerprint>>,
}

/// The contents of the certificate and key files (`None`: unreadable); a rotation that
/// keeps size and modification time is seen too.
type CertFingerprint = [Option<Vec<u8>>; 2];

impl ReloadingCert {
    /// Loads the pair now, so that a missing or invalid file is reported at start, and
    /// starts the thread that looks at the files.
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingCert, ServerError> {
        let seen = CertFiles::fingerprint(cert, key);
        let ck = match &seen {
            [Some(c), Some(k)] => certified_key_from(cert, c, key, k)?,
            _ => load_certified_key(cert, key)?,
        };
        let files = Arc::new(CertFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
            seen: Mutex::new(promhpa_http_client::watch::Seen::new(seen)),
        });
        promhpa_http_client::watch::every(
            "serving-cert",
            CERT_CHECK_INTERVAL,
            &files,
            CertFiles::look,
        )
        .map_err(|e| {
            ServerError::Tls(format!(
                "starting the thread that looks at the serving certificate files: {e}"
            ))
        })?;
        Ok(ReloadingCert { files })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        match self.files.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl CertFiles {
    fn fingerprint(cert: &Path, key: &Path) -> CertFingerprint {
        [std::fs::read(cert).ok(), std::fs::read(key).ok()]
    }

    /// Loads the files when they changed since the current pair (or the last failure).
    fn look(&self) {
        let now = CertFiles::fingerprint(&self.cert, &self.key);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.is_new(&now) {
            return;
        }
        // Loaded from what was just read, so what is remembered is what was loaded.
        let loaded = match &now {
            [Some(cert), Some(key)] => certified_key_from(&self.cert, cert, &self.key, key),
            _ => load_certified_key(&self.cert, &self.key),
        };
        match loaded {
            Ok(ck) => {
                seen.loaded(now);
                match self.current.write() {
                    Ok(mut c) => *c = Arc::new(ck),
                    Err(p) => *p.into_inner() = Arc::new(ck),
                }
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
            }
            Err(e) => {
                seen.refused(now);
                tracing::warn!(error = %e, "keeping the previous serving certificate");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Asks for a client certificate without requiring one, and accepts any chain whose
/// holder proves possession of the leaf's key. Whether the chain is trusted is decided by
/// authentication above the TLS layer.
#[derive(Debug)]
struct OptionalClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls server configuration: TLS 1.2+, optional client certificates, ALPN h2 and
/// http/1.1 (HTTP/1.1 only with [`TlsOptions::disable_http2`]), certificates from
/// `resolver`.
pub fn tls_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let resolved = TlsOptions::default().resolve()?;
    tls_config_with(resolver, &resolved)
}

/// [`tls_config`] with the versions and cipher suites of `resolved`
/// ([`TlsOptions::resolve`]).
pub fn tls_config_with(
    resolver: Arc<dyn ResolvesServerCert>,
    resolved: &ResolvedTls,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: resolved.cipher_suites.clone(),
        ..rustls::crypto::ring::default_provider()
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&resolved.versions)
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(OptionalClientCert { provider }))
        .with_cert_resolver(resolver);
    config.alpn_protocols = if resolved.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The serving certificate and key in `cert_dir` (`apiserver.crt`, `apiserver.key`),
/// generated self-signed for `localhost`, `127.0.0.1` and `hosts` when absent.
pub fn ensure_self_signed(
    cert_dir: &Path,
    hosts: &[String],
) -> Result<(PathBuf, PathBuf), ServerError> {
    let cert = cert_dir.join("apiserver.crt");
    let key = cert_dir.join("apiserver.key");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(cert_dir).map_err(|e| ServerError::Read {
        what: "certificate directory",
        path: cert_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(hosts.iter().cloned());
    names.dedup();
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Generate(e.to_string()))?;
    let failed = |p: &Path, e: std::io::Error| ServerError::Read {
        what: "generated certificate file",
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| failed(&cert, e))?;
    write_private(&key, generated.key_pair.serialize_pem().as_bytes())
        .map_err(|e| failed(&key, e))?;
    Ok((cert, key))
}

/// Writes a private key readable by its owner alone (0600, as Go's keyutil writes one),
/// whatever the umask, also when the file was there before with wider permissions.
#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // The mode applies only to a file created here; one left from before is narrowed
    // before the key goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Accept TLS connections on `listener` and serve `app` until `shutdown` resolves; then
/// stop accepting and give open connections up to `grace` to finish. Uses the default
/// [`ServingLimits`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    serve_with(
        listener,
        tls,
        app,
        shutdown,
        grace,
        ServingLimits::default(),
        None,
    )
    .await
}

/// [`serve`] within `limits`, counting refused requests and closed connections in
/// `metrics`.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ServingLimits,
    metrics: Option<Arc<SelfMetrics>>,
) {
    match workers::Workers::start(workers::default_count()) {
        Ok(workers) => {
            let listening = Listening {
                listener,
                tls,
                app,
                limits,
                metrics,
                workers,
            };
            listening.serve(shutdown, grace).await
        }
        Err(e) => tracing::error!(error = %e, "starting the serving threads failed; not serving"),
    }
}

/// A listening socket, what its connections are served with, and the threads that serve them.
struct Listening {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ServingLimits,
    metrics: Option<Arc<SelfMetrics>>,
    workers: workers::Workers,
}

impl Listening {
    /// Accept and serve until `shutdown` resolves, then stop accepting and give open
    /// connections up to `grace` to finish.
    async fn serve(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let table =
            limits::ConnTable::with_gauge(self.limits.max_connections, self.metrics.clone());
        let requests = Arc::new(limits::RequestLimits::new(self.limits, self.metrics));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(requests.clone().sample_inflight(stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for connections to close.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // An IPv4 client of the dual-stack listener, logged as IPv4.
            let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
            let (slot, evicted) = table.admit();
            if let Some(m) = &requests.metrics {
                if evicted {
                    m.connection_closed(limits::CloseReason::Evicted.label());
                }
                m.set_open_connections(table.len());
            }
            let Some(slot) = slot else {
                tracing::debug!(%peer, "connection refused: every open connection is serving a request");
                if let Some(m) = &requests.metrics {
                    m.connection_closed("refused");
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            // The socket moves to the reactor of the thread that will serve it.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "handing the connection over failed");
                    continue;
                }
            };
            let (acceptor, app, requests, stop) = (
                acceptor.clone(),
                self.app.clone(),
                requests.clone(),
                stop_rx.clone(),
            );
            self.workers.place(move || async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => {
                        serve_connection(stream, peer, acceptor, app, requests, slot, stop).await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "taking the connection over failed")
                    }
                }
            });
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        tokio::select! {
            _ = table.drained() => tracing::info!("all connections closed"),
            _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing open connections"),
        }
    }
}

/// One connection: the TLS handshake, then HTTP/1.1 or HTTP/2 under the watchdog of
/// [`limits`], until the client leaves, a deadline passes, the connection is evicted or the
/// server shuts down.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    requests: Arc<limits::RequestLimits>,
    slot: limits::Slot,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let state = slot.state.clone();
    let closed = |reason: limits::CloseReason| {
        tracing::debug!(%peer, reason = reason.label(), "connection closed by the server");
        if let Some(m) = &requests.metrics {
            m.connection_closed(reason.label());
        }
    };
    let handshake_started = Instant::now();
    let handshake = tokio::time::timeout(
        requests.limits.tls_handshake_timeout,
        acceptor.accept(stream),
    );
    let tls = tokio::select! {
        r = handshake => match r {
            Ok(Ok(tls)) => {
                if let Some(m) = &requests.metrics {
                    m.observe_stage(Stage::TlsHandshake, handshake_started.elapsed());
                }
                tls
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "tls handshake failed");
                return;
            }
            Err(_) => {
                closed(limits::CloseReason::HandshakeTimeout);
                return;
            }
        },
        _ = limits::evicted(&state) => return,
        // At shutdown a connection that has not finished its handshake has no request in
        // flight to wait for.
        _ = stop.wait_for(|s| *s) => return,
    };
    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    state.handshake_done(http2);
    let peer_certs =
        tls.get_ref().1.peer_certificates().map(|chain| {
            PeerCertificates::new(chain.iter().map(|c| c.as_ref().to_vec()).collect())
        });
    let conn_state = state.clone();
    let reqs = requests.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        if let Some(pc) = &peer_certs {
            req.extensions_mut().insert(pc.clone());
        }
        limits::handle(app.clone(), req, reqs.clone(), conn_state.clone())
    });
    let limits = &requests.limits;
    let io = TokioIo::new(limits::TrackedIo::new(tls, state.clone()));
    // As in Go's server, ALPN decides: HTTP/2 only when it was negotiated, HTTP/1.1 otherwise.
    if http2 {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http2()
            .max_concurrent_streams(limits.http2_max_streams_per_connection)
            .max_header_list_size(
                u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX),
            );
        let builder = builder.http2_only();
        let conn = builder.serve_connection(io, svc);
        run_connection(conn, peer, &state, limits, &mut stop, &closed).await;
    } else {
        // hyper's own builder, the one that can hold a request head to its byte budget
        // exactly: the read buffer's bound (`max_buf_size`) alone lets a head through that
        // fits what the buffer reserved past it.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .max_buf_size(limits.http1_header_bytes())
            .max_header_size(limits.http1_header_bytes())
            .max_headers(limits::HTTP1_MAX_HEADER_FIELDS);
        let conn = builder.serve_connection(io, svc);
        run_connection(conn, peer, &state, limits, &mut stop, &closed).await;
    }
    drop(slot);
}

/// Drive `conn` under the watchdog of [`limits`] until the client leaves, a deadline passes,
/// the connection is evicted or the server shuts down (it is then asked to finish, and
/// dropped after a grace).
async fn run_connection<C>(
    conn: C,
    peer: std::net::SocketAddr,
    state: &limits::ConnState,
    limits: &ServingLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    closed: &impl Fn(limits::CloseReason),
) where
    C: hyper_util::server::graceful::GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    // Once asked to finish, the connection is dropped at this instant.
    let mut drop_at: Option<tokio::time::Instant> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = async {
                match drop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => break,
            w = limits::watch(state, limits), if drop_at.is_none() => match w {
                limits::Watch::Continue => {}
                limits::Watch::Close(reason) => {
                    closed(reason);
                    break;
                }
                limits::Watch::Finish(reason) => {
                    if reason != limits::CloseReason::Evicted {
                        closed(reason);
                    }
                    conn.as_mut().graceful_shutdown();
                    drop_at = Some(tokio::time::Instant::now() + limits::close_grace());
                }
            },
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Look at the files now, as the thread started with `r` does every two seconds.
    fn recheck_now(r: &ReloadingCert) {
        r.files.look();
    }

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let g = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&c, g.cert.pem()).unwrap();
        std::fs::write(&k, g.key_pair.serialize_pem()).unwrap();
        (c, k, g.cert.der().to_vec())
    }

    #[test]
    fn self_signed_pair_is_generated_once_and_loads() {
        let dir = std::env::temp_dir().join(format!("promhpa-certdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (c, k) = ensure_self_signed(&dir, &["promhpa.monitoring.svc".into()]).unwrap();
        let first = std::fs::read(&c).unwrap();
        assert!(load_certified_key(&c, &k).is_ok());
        let (c2, _) = ensure_self_signed(&dir, &[]).unwrap();
        assert_eq!(std::fs::read(c2).unwrap(), first);
        assert!(load_certified_key(&dir.join("missing.crt"), &k).is_err());
        // A certificate cut short is said so in words, not bytes.
        let cut = dir.join("cut.crt");
        let pem = String::from_utf8_lossy(&first).into_owned();
        std::fs::write(&cut, &pem[..pem.len() / 2]).unwrap();
        let e = load_certified_key(&cut, &k).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("missing the line \"-----END CERTIFICATE-----\"")),
            "{e:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn generated_private_key_is_readable_by_its_owner_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = std::env::temp_dir().join(format!("promhpa-keymode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (c, k) = ensure_self_signed(&dir, &[]).unwrap();
        assert_eq!(mode(&k), 0o600, "{}", k.display());
        assert!(load_certified_key(&c, &k).is_ok());

        // A key left world-readable, its certificate gone: the new key is narrowed too.
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::remove_file(&c).unwrap();
        let (c, k) = ensure_self_signed(&dir, &[]).unwrap();
        assert_eq!(mode(&k), 0o600, "{}", k.display());
        assert!(load_certified_key(&c, &k).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn serving_certificate_is_reloaded_when_files_change() {
        let dir = std::env::temp_dir().join(format!("promhpa-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k, first) = write_pair(&dir, "one.example");
        let r = ReloadingCert::new(&c, &k).unwrap();
        assert_eq!(r.current().cert[0].as_ref(), &first[..]);
        // Replace the files; make the change visible to the next check.
        let (_, _, second) = write_pair(&dir, "two.example");
        recheck_now(&r);
        assert_eq!(r.current().cert[0].as_ref(), &second[..]);
        // A broken pair is not taken; the previous one stays.
        std::fs::write(&c, "garbage").unwrap();
        recheck_now(&r);
        assert_eq!(r.current().cert[0].as_ref(), &second[..]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The certificate replaced before its key (two `cp`s): the pair does not match, so it
    /// is not taken, and a mismatched pair at start is an error.
    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("promhpa-mismatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k, first) = write_pair(&dir, "one.example");
        let r = ReloadingCert::new(&c, &k).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["two.example".to_string()]).unwrap();
        std::fs::write(&c, other.cert.pem()).unwrap();
        recheck_now(&r);
        assert_eq!(r.current().cert[0].as_ref(), &first[..]);
        let e = load_certified_key(&c, &k).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("private key does not match the public key")),
            "{e:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
