//! The least relaying a metric request can cost with the libraries promhpa is built on: a
//! server that takes HTTPS with HTTP/2 (tokio-rustls and hyper, as promhpa's serving
//! threads do) and sends each request's path and query unchanged to Prometheus over a
//! kept-alive HTTPS HTTP/1.1 connection (promhpa's own direct client), answering with
//! Prometheus' answer as it came. No routing, authentication, rendering, decoding or
//! encoding: what it costs is what any relay on these libraries pays on this machine.
//!
//! It runs on one thread of the bench process with a runtime of its own (and the
//! one-second tick promhpa's serving threads keep), so that thread's CPU time, read from
//! `/proc`, is the relay's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use promhpa_http_client::{ClientSettings, DirectRequest, Pem, ReloadingClient};
use promhpa_test_support::TestPki;

/// A running relay: its base URL and its thread's `/proc` stat file.
pub struct Floor {
    pub base: String,
    stat: std::path::PathBuf,
}

impl Floor {
    /// A relay to the Prometheus at `prom` (an `https` URL its CA in `pki` vouches for),
    /// serving `pki`'s server certificate on 127.0.0.1.
    pub fn start(pki: &TestPki, prom: &str) -> Floor {
        let acceptor = super::server_tls(pki, &[b"h2"]);

        let mut settings = ClientSettings::new(Duration::from_secs(5));
        settings.ca = Some(Pem::file("--prometheus-ca-file", &pki.ca_cert));
        settings.http1_only = true;
        settings.direct = true;
        let client = ReloadingClient::new(settings, "prometheus").unwrap();
        let direct = client
            .direct()
            .expect("the settings of the relay's client allow a direct one");
        let prom = prom.trim_end_matches('/').to_string();

        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let task = std::fs::read_link("/proc/thread-self").unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                ready
                    .send((port, std::path::Path::new("/proc").join(task).join("stat")))
                    .unwrap();
                tokio::spawn(async {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                    }
                });
                while let Ok((tcp, _)) = listener.accept().await {
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, direct, prom) = (acceptor.clone(), direct.clone(), prom.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let (direct, prom) = (direct.clone(), prom.clone());
                                async move {
                                    let target = req
                                        .uri()
                                        .path_and_query()
                                        .map_or("/", |p| p.as_str())
                                        .to_string();
                                    let url = url::Url::parse(&format!("{prom}{target}")).unwrap();
                                    let asked = DirectRequest {
                                        url: &url,
                                        form: None,
                                        authorization: None,
                                    };
                                    let answer =
                                        direct.send(&asked, Duration::from_secs(30)).await.unwrap();
                                    let response = hyper::Response::builder()
                                        .status(answer.status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(answer.body))
                                        .unwrap();
                                    Ok::<_, Infallible>(response)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        let (port, stat) = started.recv().unwrap();
        Floor {
            base: format!("https://127.0.0.1:{port}"),
            stat,
        }
    }

    /// The relay thread's CPU time so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let (user, system) = super::cpu_ticks_in(&self.stat);
        user + system
    }

    /// `urls` (Prometheus' own) sent to the relay instead.
    pub fn urls(&self, prom: &str, urls: &[String]) -> Arc<Vec<String>> {
        Arc::new(
            urls.iter()
                .map(|u| u.replacen(prom, &self.base, 1))
                .collect(),
        )
    }
}
