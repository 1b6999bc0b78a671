//! A proxy set in the environment carries the queries as it does for prometheus-adapter,
//! read as Go reads it: `HTTPS_PROXY` for an `https` Prometheus, except for the hosts in
//! `NO_PROXY` and for loopback addresses, and never `ALL_PROXY`. Queries then go through
//! reqwest, not over the connections the client opens itself. One test in its own binary,
//! as it sets the process's environment.
#![allow(clippy::unwrap_used)]

use promhpa_core::backend::Backend;
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::pki::UNRESOLVED_NAME;
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// An HTTP proxy on 127.0.0.1 that tunnels `CONNECT` requests to the same port on
/// 127.0.0.1, whatever host they name, and the targets it was asked for.
async fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut line = String::new();
                client.read_line(&mut line).await.unwrap();
                let target = match line.strip_prefix("CONNECT ") {
                    Some(rest) => rest.split(' ').next().unwrap_or_default().to_string(),
                    None => return,
                };
                loop {
                    let mut header = String::new();
                    if client.read_line(&mut header).await.unwrap_or(0) <= 2 {
                        break;
                    }
                }
                seen.lock().unwrap().push(target.clone());
                let port = target.rsplit(':').next().unwrap_or_default();
                let Ok(mut upstream) = TcpStream::connect(format!("127.0.0.1:{port}")).await else {
                    return;
                };
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, asked)
}

/// A client of the Prometheus at `url`, trusting the test CA; made after the environment
/// is set, as it is read when a client is made.
fn client(prom: &Prometheus, url: &str) -> PromClient {
    let mut config = PromConfig::new(url);
    config.ca_file = Some(prom.ca_file.clone());
    PromClient::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_s_proxy_carries_the_queries_as_go_s_clients_send_them() {
    let pki = TestPki::generate("test-ca", "client").unwrap();
    let target = ScrapeTarget::start("# TYPE up gauge\nprobe 1\n").unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let (proxy, asked) = connect_proxy().await;
    let asked_for = || asked.lock().unwrap().clone();
    // A name only the proxy can reach (it takes every name to 127.0.0.1).
    let elsewhere = format!("https://{UNRESOLVED_NAME}:{}", prom.port);
    let now = common::now_ms();

    // The only test of this binary: the environment is set before any client is made.
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{proxy}"));
    common::scraped(&client(&prom, &elsewhere), &prom, "probe", 1).await;
    let tunnelled = asked_for();
    assert!(
        !tunnelled.is_empty() && tunnelled.iter().all(|t| t.starts_with(UNRESOLVED_NAME)),
        "{tunnelled:?}"
    );

    // Loopback addresses are reached directly, as Go's clients reach them.
    for url in [prom.url(), format!("https://localhost:{}", prom.port)] {
        client(&prom, &url).query("probe", now).await.unwrap();
    }
    assert_eq!(asked_for(), tunnelled, "a loopback query went to the proxy");

    // NO_PROXY's hosts are reached directly: this one resolves nowhere.
    std::env::set_var("NO_PROXY", "promhpa.test");
    let err = client(&prom, &elsewhere).query("probe", now).await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(asked_for(), tunnelled, "NO_PROXY was not heeded");

    // ALL_PROXY is not Go's: with it alone, queries do not go to the proxy.
    std::env::remove_var("HTTPS_PROXY");
    std::env::remove_var("NO_PROXY");
    std::env::set_var("ALL_PROXY", format!("http://127.0.0.1:{proxy}"));
    let err = client(&prom, &elsewhere).query("probe", now).await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(asked_for(), tunnelled, "ALL_PROXY was used");
}
