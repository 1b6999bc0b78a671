//! An HTTPS proxy in front of a backend that forwards only requests carrying one header
//! with the expected value, as kube-rbac-proxy (a bearer token) or a Mimir/Cortex gateway
//! (`X-Scope-OrgID`) guards one in clusters; it records what each request carried.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_test_support::TestPki;
use tokio_rustls::rustls;

/// One request the proxy saw: the gate header's value (empty when absent) and the target
/// (path and query string).
#[derive(Debug, Clone)]
pub struct Seen {
    pub value: String,
    pub target: String,
}

pub struct GateProxy {
    pub port: u16,
    expected: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

/// An HTTPS client trusting the test CA.
fn client(ca: &Path) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl GateProxy {
    /// Serve HTTPS with `pki`'s server certificate, forwarding to `upstream` (trusted with
    /// `pki`'s CA) the requests whose `header` is `expected`; others get a 401.
    pub fn start(pki: &TestPki, upstream: String, header: &str, expected: &str) -> GateProxy {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = Arc::new(Mutex::new(expected.to_string()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = client(&pki.ca_cert);
        let gate = Gate {
            header: header.to_string(),
            expected: expected.clone(),
            seen: seen.clone(),
            upstream,
        };
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (config, client, gate) = (config.clone(), client.clone(), gate.clone());
                        std::thread::spawn(move || {
                            let _ = gate.one(stream, config, &client);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        GateProxy {
            port,
            expected,
            seen,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// From now on, forward requests carrying `value` instead.
    pub fn expect(&self, value: &str) {
        *self.expected.lock().unwrap() = value.to_string();
    }

    /// Whether a request carried `value`.
    pub fn saw(&self, value: &str) -> bool {
        self.values().iter().any(|v| v == value)
    }

    /// The gate header of every request so far (empty where absent).
    pub fn values(&self) -> Vec<String> {
        self.requests().into_iter().map(|s| s.value).collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for GateProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Gate {
    header: String,
    expected: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    upstream: String,
}

impl Gate {
    fn one(
        &self,
        stream: TcpStream,
        config: Arc<rustls::ServerConfig>,
        client: &reqwest::blocking::Client,
    ) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tls.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let target = request_line.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = data[head_end..].to_vec();
        while body.len() < length {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        let value = header(&self.header).unwrap_or_default();
        self.seen.lock().unwrap().push(Seen {
            value: value.clone(),
            target: target.clone(),
        });
        let (status, answer) = if value == *self.expected.lock().unwrap() {
            let mut req = client.request(
                method.parse().unwrap(),
                format!("{}{target}", self.upstream),
            );
            if let Some(ct) = header("content-type") {
                req = req.header("content-type", ct);
            }
            match req.body(body).send() {
                Ok(resp) => (
                    resp.status().as_u16(),
                    resp.bytes().unwrap_or_default().to_vec(),
                ),
                Err(e) => (502, e.to_string().into_bytes()),
            }
        } else {
            (401, b"Unauthorized\n".to_vec())
        };
        write!(
            tls,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            answer.len()
        )?;
        tls.write_all(&answer)?;
        tls.conn.send_close_notify();
        tls.flush()
    }
}
