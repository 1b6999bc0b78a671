//! A stand-in for the one call of the Kubernetes API that delegated authorization makes on
//! a bench's request path: `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`,
//! answered "allowed" over HTTPS (HTTP/1.1, keep-alive). It counts the reviews, so a
//! bench can show that the authorizer answered from its cache. What Kubernetes decides is
//! not measured here, only promhpa's side of a cached decision.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use promhpa_test_support::TestPki;

const ALLOWED: &str = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","status":{"allowed":true}}"#;

/// The review server: its port and how many reviews it answered.
pub struct ReviewServer {
    pub port: u16,
    pub reviews: Arc<AtomicUsize>,
}

impl ReviewServer {
    /// Serve on 127.0.0.1 with `pki`'s server certificate, on the current tokio runtime.
    pub async fn start(pki: &TestPki) -> ReviewServer {
        let acceptor = super::server_tls(pki, &[]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reviews = Arc::new(AtomicUsize::new(0));
        let counter = reviews.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counter) = (acceptor.clone(), counter.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = serve(tls, &counter).await;
                    }
                });
            }
        });
        ReviewServer { port, reviews }
    }

    /// A kubeconfig that sends promhpa's reviews here, trusting `pki`'s CA.
    pub fn kubeconfig(&self, pki: &TestPki, path: &Path) {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\nusers:\n- name: u\n  user: {{token: bench}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
                self.port,
                pki.ca_cert.display()
            ),
        )
        .unwrap();
    }

    pub fn reviews(&self) -> usize {
        self.reviews.load(Ordering::Relaxed)
    }
}

/// Requests on one connection until the client closes it: every request is read whole
/// (head and `Content-Length` body) and answered "allowed".
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + length);
        counter.fetch_add(1, Ordering::Relaxed);
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ALLOWED}",
            ALLOWED.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await?;
    }
}
