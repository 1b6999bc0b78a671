//! A local HTTPS server standing in for a Kubernetes API server: it answers each request
//! with what a handler returns (a JSON body, or a watch stream that ends or stays open),
//! records every request, and gives a kubeconfig pointing at it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Ca;

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path and query with empty query parameters dropped (`?&limit=500` is `?limit=500`,
    /// a lone `?` goes), as the API server reads them.
    pub fn normalized_path(&self) -> String {
        match self.path.split_once('?') {
            None => self.path.clone(),
            Some((base, query)) => {
                let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
                if pairs.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", pairs.join("&"))
                }
            }
        }
    }

    /// The path without the query.
    pub fn base(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.path.split_once('?')?.1;
        url_decode_pairs(query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn is_watch(&self) -> bool {
        matches!(self.query("watch").as_deref(), Some("true" | "1"))
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// What the stand-in answers.
pub enum Response {
    /// A status code and a JSON body.
    Json(u16, Vec<u8>),
    /// A watch: these event lines, then the server ends the watch (`close`) or keeps it
    /// open without further events.
    Watch { lines: Vec<Vec<u8>>, close: bool },
}

impl Response {
    pub fn json(code: u16, value: &serde_json::Value) -> Response {
        Response::Json(code, serde_json::to_vec(value).unwrap())
    }

    /// A `Status` answer, as the API server sends with errors.
    pub fn status(code: u16, message: &str) -> Response {
        Response::json(
            code,
            &serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "code": code}),
        )
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running stand-in.
pub struct StandIn {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// The CA that signed its serving certificate.
    pub ca: Ca,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Serves `handler` on 127.0.0.1; with `client_ca`, only to clients presenting a
    /// certificate it signed.
    pub async fn start(handler: Handler, client_ca: Option<&Ca>) -> StandIn {
        let ca = super::ca("kubernetes");
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(client_ca.cert.der().clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    serve_one(tls, handler, log).await;
                });
            }
        });
        StandIn {
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca,
            requests,
        }
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// A kubeconfig for it in `dir`: one context `standin` whose user is `user` (YAML of
    /// the `user:` mapping, indented four spaces).
    pub fn kubeconfig(&self, dir: &Path, user: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.cert.pem());
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: standin\nclusters:\n- name: standin\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: standin\n  context: {{cluster: standin, user: standin}}\nusers:\n- name: standin\n  user:\n{user}",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

impl StandIn {
    /// A client of it through a kubeconfig (in the returned directory) whose user is `user`.
    pub fn client(&self, user: &str) -> (kube::Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = self.kubeconfig(dir.path(), user);
        let client = promhpa_kube::client::ClusterAccess::kubeconfig(Some(&kubeconfig))
            .client()
            .unwrap();
        (client, dir)
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    handler: Handler,
    log: Arc<Mutex<Vec<Request>>>,
) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = sock.read(&mut tmp).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let Ok(n) = sock.read(&mut tmp).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let request = Request {
        method,
        path,
        headers,
        body: buf[head_end..].to_vec(),
    };
    log.lock().unwrap().push(request.clone());
    match handler(&request) {
        Response::Json(code, body) => {
            let head = format!(
                "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                reason(code),
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            let _ = sock.shutdown().await;
        }
        Response::Watch { lines, close } => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for line in lines {
                let chunk = [format!("{:x}\r\n", line.len()).as_bytes(), &line, b"\r\n"].concat();
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
                let _ = sock.flush().await;
            }
            if close {
                let _ = sock.write_all(b"0\r\n\r\n").await;
                let _ = sock.shutdown().await;
            } else {
                // A quiet watch: open until the client goes away.
                let _ = sock.read(&mut tmp).await;
            }
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
