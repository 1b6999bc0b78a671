//! A proxy set in the environment (`HTTPS_PROXY`) carries the queries, as it does for
//! prometheus-adapter: queries then go through reqwest, which reads it, and not over the
//! connections the client opens itself. One test in its own binary, as it sets the
//! process's environment.
#![allow(clippy::unwrap_used)]

use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// An HTTP proxy on 127.0.0.1 that tunnels `CONNECT` requests, and how many it tunnelled.
async fn connect_proxy() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let count = count.clone();
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
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, tunnels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_from_the_environment_carries_the_queries() {
    let pki = TestPki::generate("test-ca", "client").unwrap();
    let target = ScrapeTarget::start("# TYPE up gauge\nprobe 1\n").unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let (proxy, tunnels) = connect_proxy().await;
    // The only test of this binary: the environment is set before any client is built.
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{proxy}"));

    let mut config = PromConfig::new(prom.url());
    config.ca_file = Some(prom.ca_file.clone());
    let client = PromClient::new(config).unwrap();
    common::scraped(&client, &prom, "probe", 1).await;
    assert!(
        tunnels.load(Ordering::SeqCst) >= 1,
        "the queries went around the proxy"
    );
}
