//! [`KubeApi`] over HTTPS with reqwest and rustls.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use promhpa_core::BoxFuture;

use crate::api::{KubeApi, WatchStream};
use crate::cache::WATCH_TIMEOUT_SECONDS;
use crate::config::KubeConfig;
use crate::KubeError;

/// How long a token read from a file is used before the file is read again.
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// A Kubernetes API client for the few requests promhpa makes.
pub struct HttpKubeApi {
    client: reqwest::Client,
    server: String,
    config: KubeConfig,
    file_token: Mutex<Option<(Instant, String)>>,
}

impl HttpKubeApi {
    pub fn new(config: KubeConfig) -> Result<Self, KubeError> {
        let err = |message: String| KubeError::Transport {
            path: config.server.clone(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("promhpa/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|e| err(format!("certificate authority: {e}")))?;
            if certs.is_empty() {
                return Err(err(
                    "certificate authority: no PEM certificate found".to_string()
                ));
            }
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let (Some(cert), Some(key)) = (&config.client_cert_pem, &config.client_key_pem) {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| err(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        if let Some(name) = &config.tls_server_name {
            // Connect to the configured address but verify the certificate for `name`.
            let url = reqwest::Url::parse(&config.server).map_err(|e| err(e.to_string()))?;
            if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
                let addrs: Vec<std::net::SocketAddr> =
                    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                        .map(|a| a.collect())
                        .unwrap_or_default();
                builder = builder.resolve_to_addrs(name, &addrs);
            }
        }
        let client = builder.build().map_err(|e| err(e.to_string()))?;
        let server = match &config.tls_server_name {
            Some(name) => match reqwest::Url::parse(&config.server) {
                Ok(mut url) => {
                    let _ = url.set_host(Some(name));
                    url.as_str().trim_end_matches('/').to_string()
                }
                Err(_) => config.server.clone(),
            },
            None => config.server.trim_end_matches('/').to_string(),
        };
        Ok(HttpKubeApi {
            client,
            server,
            config,
            file_token: Mutex::new(None),
        })
    }

    fn bearer_token(&self) -> Option<String> {
        if let Some(token) = &self.config.token {
            return Some(token.clone());
        }
        let file = self.config.token_file.as_ref()?;
        let mut cached = self.file_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read_at, token)) = cached.as_ref() {
            if read_at.elapsed() < TOKEN_FILE_REFRESH {
                return Some(token.clone());
            }
        }
        match std::fs::read_to_string(file) {
            Ok(token) => {
                let token = token.trim().to_string();
                *cached = Some((Instant::now(), token.clone()));
                Some(token)
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "reading bearer token file");
                cached.as_ref().map(|(_, t)| t.clone())
            }
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.server));
        if let Some(token) = self.bearer_token() {
            req = req.bearer_auth(token);
        } else if let Some(user) = &self.config.username {
            req = req.basic_auth(user, self.config.password.as_deref());
        }
        req
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::Response, KubeError> {
        let resp = req.send().await.map_err(|e| KubeError::Transport {
            path: path.to_string(),
            message: error_chain(&e),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        Err(KubeError::Status {
            code: status.as_u16(),
            path: path.to_string(),
            message,
        })
    }

    async fn body(resp: reqwest::Response, path: &str) -> Result<Vec<u8>, KubeError> {
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| KubeError::Transport {
                path: path.to_string(),
                message: error_chain(&e),
            })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

struct HttpWatch {
    resp: reqwest::Response,
    buffer: Vec<u8>,
    path: String,
    done: bool,
}

impl WatchStream for HttpWatch {
    fn next_event(&mut self) -> BoxFuture<'_, Option<Result<Vec<u8>, KubeError>>> {
        Box::pin(async move {
            loop {
                if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                    return Some(Ok(line));
                }
                if self.done {
                    if self.buffer.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    return Some(Ok(std::mem::take(&mut self.buffer)));
                }
                match self.resp.chunk().await {
                    Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                    Ok(None) => self.done = true,
                    Err(e) => {
                        self.done = true;
                        self.buffer.clear();
                        return Some(Err(KubeError::Transport {
                            path: self.path.clone(),
                            message: error_chain(&e),
                        }));
                    }
                }
            }
        })
    }
}

impl KubeApi for HttpKubeApi {
    fn get<'a>(
        &'a self,
        path: &'a str,
        accept: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, KubeError>> {
        Box::pin(async move {
            let req = self
                .request(reqwest::Method::GET, path)
                .header(reqwest::header::ACCEPT, accept)
                .timeout(Duration::from_secs(60));
            let resp = self.send(req, path).await?;
            Self::body(resp, path).await
        })
    }

    fn watch<'a>(
        &'a self,
        path: &'a str,
        accept: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn WatchStream>, KubeError>> {
        Box::pin(async move {
            let req = self
                .request(reqwest::Method::GET, path)
                .header(reqwest::header::ACCEPT, accept)
                .timeout(Duration::from_secs(WATCH_TIMEOUT_SECONDS + 30));
            let resp = self.send(req, path).await?;
            Ok(Box::new(HttpWatch {
                resp,
                buffer: Vec::new(),
                path: path.to_string(),
                done: false,
            }) as Box<dyn WatchStream>)
        })
    }

    fn post<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, KubeError>> {
        Box::pin(async move {
            let req = self
                .request(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(Duration::from_secs(30))
                .body(body);
            let resp = self.send(req, path).await?;
            Self::body(resp, path).await
        })
    }
}

/// TokenReviews and SubjectAccessReviews are created through the same client.
impl promhpa_auth::ReviewClient for HttpKubeApi {
    fn create<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, promhpa_auth::AuthError>> {
        Box::pin(async move {
            self.post(path, body)
                .await
                .map_err(|e| promhpa_auth::AuthError::Transport(e.to_string()))
        })
    }
}
