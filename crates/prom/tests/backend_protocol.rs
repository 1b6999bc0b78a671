//! The connections queries travel on: an HTTPS backend that offers HTTP/2 and HTTP/1.1 is
//! asked over HTTP/1.1, one kept-alive connection serves queries one after another, and
//! queries in flight at the same time get a connection each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::TestPki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;

/// A listener on a free port of 127.0.0.1, and its port.
async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    (listener, port)
}

/// What the stand-in backend saw: the protocol agreed on each connection it accepted, and
/// how many requests came in.
#[derive(Default)]
struct Seen {
    protocols: Vec<Option<String>>,
    requests: usize,
}

/// An HTTPS server offering `h2` and `http/1.1` that answers every HTTP/1.1 request with an
/// empty vector after `delay`, keeping the connection open.
async fn backend(pki: &TestPki, delay: Duration) -> (u16, Arc<Mutex<Seen>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .and_then(|certs| certs.collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap_or_else(|e| panic!("{e}"));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap_or_else(|e| panic!("{e}"));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (listener, port) = listen().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let protocol = tls
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .protocols
                    .push(protocol);
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // A GET has no body: a request ends with its blank line.
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        log.lock().unwrap_or_else(|p| p.into_inner()).requests += 1;
                        tokio::time::sleep(delay).await;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ANSWER}",
                            ANSWER.len()
                        );
                        if tls.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (port, seen)
}

fn client(pki: &TestPki, port: u16) -> PromClient {
    let mut config = PromConfig::new(format!("https://127.0.0.1:{port}"));
    config.ca_file = Some(pki.ca_cert.clone());
    PromClient::new(config).unwrap_or_else(|e| panic!("{e}"))
}

async fn query(client: &PromClient) {
    match client.query("up", 1_700_000_000_000).await {
        Ok(QueryValue::Vector(v)) => assert!(v.is_empty()),
        other => panic!("unexpected answer: {other:?}"),
    }
}

/// Time for a connection whose answer was read to go back to the client's pool, which
/// happens on the connection's own task.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_share_a_kept_alive_http1_connection() {
    let pki = TestPki::generate("ca", "promhpa").unwrap_or_else(|e| panic!("{e}"));
    let (port, seen) = backend(&pki, Duration::ZERO).await;
    let client = client(&pki, port);
    for _ in 0..3 {
        query(&client).await;
        settle().await;
    }
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.requests, 3);
    assert_eq!(seen.protocols, vec![Some("http/1.1".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_in_flight_together_get_a_connection_each() {
    let pki = TestPki::generate("ca", "promhpa").unwrap_or_else(|e| panic!("{e}"));
    // Each answer waits, so the two queries below are in flight at the same time.
    let (port, seen) = backend(&pki, Duration::from_millis(300)).await;
    let client = client(&pki, port);
    tokio::join!(query(&client), query(&client));
    settle().await;
    // Both connections are kept: two more concurrent queries open none.
    tokio::join!(query(&client), query(&client));
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(seen.requests, 4);
    assert_eq!(
        seen.protocols,
        vec![Some("http/1.1".to_string()), Some("http/1.1".to_string())]
    );
}

/// An HTTP server on 127.0.0.1 answering every request with `status` and the Prometheus
/// API error body of `error_type`.
async fn answering_error(status: &'static str, error_type: &'static str) -> u16 {
    let (listener, port) = listen().await;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(
                    r#"{{"status":"error","errorType":"{error_type}","error":"store gateway down"}}"#
                );
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// A 5xx API error (Mimir, Cortex and Thanos answer so while their stores are down) is the
/// backend unavailable; a 4xx one is the query rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_outages_and_client_errors_rejections() {
    use promhpa_core::backend::BackendError;
    let down = answering_error("500 Internal Server Error", "internal").await;
    let client = PromClient::new(PromConfig::new(format!("http://127.0.0.1:{down}")))
        .unwrap_or_else(|e| panic!("{e}"));
    match client.query("up", 0).await {
        Err(BackendError::Unavailable { message, .. }) => {
            assert!(
                message.contains("internal: store gateway down"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    let bad = answering_error("422 Unprocessable Entity", "execution").await;
    let client = PromClient::new(PromConfig::new(format!("http://127.0.0.1:{bad}")))
        .unwrap_or_else(|e| panic!("{e}"));
    match client.query("up", 0).await {
        Err(BackendError::Query { error_type, .. }) => assert_eq!(error_type, "execution"),
        other => panic!("{other:?}"),
    }
}

/// A key in the backend URL's query string is not repeated in error messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_string_key_stays_out_of_errors() {
    // A port nothing listens on any more.
    let (listener, port) = listen().await;
    drop(listener);
    let client = PromClient::new(PromConfig::new(format!(
        "http://127.0.0.1:{port}/x?api_key=SECRET123"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    let e = client.query("up", 0).await.err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| !e.contains("SECRET123") && e.contains("127.0.0.1")),
        "{e:?}"
    );
}

/// Each call the backend answers is timed under its endpoint and the client's URL (without
/// password and query string), errors included; a call nothing answered is not, as
/// prometheus-adapter times its calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_calls_are_timed_by_endpoint_and_server() {
    use promhpa_core::timing::{CallTimings, PromApi};
    let timings = Arc::new(CallTimings::default());
    let timed = |url: String| {
        let mut config = PromConfig::new(url);
        config.call_timings = Some(timings.clone());
        PromClient::new(config).unwrap_or_else(|e| panic!("{e}"))
    };
    let failing = answering_error("503 Service Unavailable", "unavailable").await;
    let failing_url = format!("http://user:pw@127.0.0.1:{failing}/prefix?key=SECRET");
    let client = timed(failing_url.clone());
    assert!(client.query("up", 0).await.is_err());
    assert!(client.query("up", 0).await.is_err());
    assert!(client.series_names("up", 0).await.is_err());
    let rejecting = answering_error("400 Bad Request", "bad_data").await;
    let client = timed(format!("http://127.0.0.1:{rejecting}"));
    assert!(client.query_range("up", 0, 1_000, 1_000).await.is_err());
    let (listener, closed) = listen().await;
    drop(listener);
    let client = timed(format!("http://127.0.0.1:{closed}"));
    assert!(client.query("up", 0).await.is_err());

    let servers: Vec<String> = timings
        .servers()
        .iter()
        .map(|s| s.server().to_string())
        .collect();
    let shown = format!("http://user:xxxxx@127.0.0.1:{failing}/prefix");
    let mut expected = vec![
        shown.clone(),
        format!("http://127.0.0.1:{rejecting}"),
        format!("http://127.0.0.1:{closed}"),
    ];
    expected.sort();
    assert_eq!(servers, expected);
    assert_eq!(promhpa_prom::server_label(&failing_url), shown);
    let count = |server: &str, api: PromApi| timings.server(server).of(api).count();
    assert_eq!(count(&shown, PromApi::Query), 2);
    assert_eq!(count(&shown, PromApi::Series), 1);
    assert_eq!(count(&shown, PromApi::QueryRange), 0);
    let rejecting = format!("http://127.0.0.1:{rejecting}");
    assert_eq!(count(&rejecting, PromApi::QueryRange), 1);
    let closed = format!("http://127.0.0.1:{closed}");
    assert_eq!(count(&closed, PromApi::Query), 0);
}
