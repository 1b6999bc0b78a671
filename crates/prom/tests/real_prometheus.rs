//! The client against a real Prometheus over HTTPS with a test CA.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, BackendError, QueryValue};
use promhpa_prom::{InlinePem, PromClient, PromConfig, Verb};
use promhpa_test_support::{Prometheus, ScrapeTarget, TestPki};

mod common;
use common::now_ms;

const BODY: &str = "# TYPE inflight gauge\ninflight{namespace=\"shop\",pod=\"web-1\"} 3\ninflight{namespace=\"shop\",pod=\"web-2\"} 7\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_series_and_errors_over_https() {
    let pki = TestPki::generate("test-ca", "client").unwrap();
    let target = ScrapeTarget::start(BODY).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();

    let mut config = PromConfig::new(format!("{}/?dedup=true", prom.url()));
    config.ca_file = Some(prom.ca_file.clone());
    config
        .headers
        .push(("X-Scope-OrgID".into(), "tenant".into()));
    let client = PromClient::new(config.clone()).unwrap();

    // Wait for the first scrapes.
    let samples = common::scraped(&client, &prom, "inflight", 2).await;
    let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, vec![3.0, 7.0]);
    assert!(samples[0].timestamp_ms > 0);

    // NaN and Inf come back as typed values.
    let QueryValue::Vector(v) = client.query("inflight / 0", now_ms()).await.unwrap() else {
        panic!()
    };
    assert!(v.iter().all(|s| s.value == f64::INFINITY));
    let QueryValue::Scalar { value, .. } =
        client.query("scalar(vector(0)/0)", now_ms()).await.unwrap()
    else {
        panic!()
    };
    assert!(value.is_nan());

    // Series discovery: names and label-name sets only.
    let series = client
        .series_names("{__name__=~\"inflight|up\"}", now_ms() - 600_000)
        .await
        .unwrap();
    let inflight = series.iter().find(|s| s.name == "inflight").unwrap();
    assert!(inflight.label_names.contains("pod"));
    assert!(inflight.label_names.contains("namespace"));
    assert!(series.iter().any(|s| s.name == "up"));

    // Range query.
    let QueryValue::Matrix(m) = client
        .query_range("sum(inflight)", now_ms() - 5_000, now_ms(), 1_000)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(m.len(), 1);

    // A query too long for a URL goes out as POST and still works.
    let long = format!(
        "sum(inflight{{pod=~\"{}\"}})",
        (0..2000)
            .map(|i| format!("web-{i}"))
            .collect::<Vec<_>>()
            .join("|")
    );
    let QueryValue::Vector(v) = client.query(&long, now_ms()).await.unwrap() else {
        panic!()
    };
    assert_eq!(v[0].value, 10.0);
    let mut post = config.clone();
    post.verb = Verb::Post;
    let QueryValue::Vector(v) = PromClient::new(post)
        .unwrap()
        .query("sum(inflight)", now_ms())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(v[0].value, 10.0);

    // Prometheus' error JSON becomes a typed query error.
    match client.query("sum(", now_ms()).await {
        Err(BackendError::Query {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "bad_data");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }

    // Without the CA, the certificate is rejected with a clear reason, not a hang.
    let plain = PromClient::new(PromConfig::new(prom.url())).unwrap();
    match plain.query("up", now_ms()).await {
        Err(BackendError::Unavailable { address, message }) => {
            assert_eq!(address, prom.url());
            assert!(message.to_lowercase().contains("certificate"), "{message}");
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }

    // A closed port is unavailable, naming the address.
    let port = promhpa_test_support::free_port().unwrap();
    let mut dead = PromConfig::new(format!("https://127.0.0.1:{port}"));
    dead.ca_file = Some(prom.ca_file.clone());
    match PromClient::new(dead).unwrap().query("up", now_ms()).await {
        Err(BackendError::Unavailable { address, .. }) => {
            assert!(address.contains(&port.to_string()))
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_for_mutual_tls() {
    let pki = TestPki::generate("mtls-ca", "promhpa").unwrap();
    let target = ScrapeTarget::start(BODY).unwrap();
    let prom = Prometheus::start_mtls(&pki, &[target.port]).unwrap();
    let mut config = PromConfig::new(prom.url());
    config.ca_file = Some(prom.ca_file.clone());
    let without = PromClient::new(config.clone()).unwrap();
    config.client_cert_file = Some(pki.client_cert.clone());
    config.client_key_file = Some(pki.client_key.clone());
    let with = PromClient::new(config).unwrap();
    let start = Instant::now();
    loop {
        match with.query("vector(1)", now_ms()).await {
            Ok(QueryValue::Vector(v)) => {
                assert_eq!(v[0].value, 1.0);
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(BackendError::Unavailable { message, .. }) if message.contains("503") => {}
            Err(e) => panic!("with a client certificate: {e}\n{}", prom.log()),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    match without.query("vector(1)", now_ms()).await {
        Err(BackendError::Unavailable { .. }) => {}
        other => panic!("expected the handshake to be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_ca_and_client_certificate_with_a_tls_server_name() {
    let pki = TestPki::generate("inline-ca", "promhpa").unwrap();
    let target = ScrapeTarget::start(BODY).unwrap();
    let prom = Prometheus::start_mtls(&pki, &[target.port]).unwrap();
    let inline = |what: &str, path: &std::path::Path| InlinePem {
        source: what.to_string(),
        pem: std::fs::read(path).unwrap(),
    };
    let mut config = PromConfig::new(prom.url());
    config.ca_pem = Some(inline("certificate-authority-data", &pki.ca_cert));
    config.client_identity_pem = Some((
        inline("client-certificate-data", &pki.client_cert),
        inline("client-key-data", &pki.client_key),
    ));
    // The serving certificate names localhost and 127.0.0.1: verified as localhost while
    // connecting to 127.0.0.1.
    config.tls_server_name = Some("localhost".into());
    let with = PromClient::new(config.clone()).unwrap();
    let start = Instant::now();
    loop {
        match with.query("vector(4)", now_ms()).await {
            Ok(QueryValue::Vector(v)) => {
                assert_eq!(v[0].value, 4.0);
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(BackendError::Unavailable { message, .. }) if message.contains("503") => {}
            Err(e) => panic!("with inline credentials: {e}\n{}", prom.log()),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(with.address(), prom.url());
    // A name the certificate does not carry fails verification.
    let mut wrong = config.clone();
    wrong.tls_server_name = Some("prometheus.example".into());
    match PromClient::new(wrong)
        .unwrap()
        .query("vector(1)", now_ms())
        .await
    {
        Err(BackendError::Unavailable { message, .. }) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
    // Without the inline client certificate the handshake is refused.
    let mut anonymous = config;
    anonymous.client_identity_pem = None;
    assert!(PromClient::new(anonymous)
        .unwrap()
        .query("vector(1)", now_ms())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_config_or_url() {
    let pki = TestPki::generate("basic-ca", "promhpa").unwrap();
    let target = ScrapeTarget::start(BODY).unwrap();
    let prom = Prometheus::start_basic_auth(&pki, &[target.port], "adapter", "s3cret:pw").unwrap();
    let mut config = PromConfig::new(prom.url());
    config.ca_file = Some(prom.ca_file.clone());
    let anonymous = PromClient::new(config.clone()).unwrap();
    let mut explicit = config.clone();
    explicit.basic_auth = Some(("adapter".into(), "s3cret:pw".into()));
    let explicit = PromClient::new(explicit).unwrap();
    let mut in_url = config.clone();
    in_url.url = format!("https://adapter:s3cret%3Apw@127.0.0.1:{}", prom.port);
    let in_url = PromClient::new(in_url).unwrap();
    let start = Instant::now();
    loop {
        match explicit.query("vector(2)", now_ms()).await {
            Ok(QueryValue::Vector(v)) => {
                assert_eq!(v[0].value, 2.0);
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(BackendError::Unavailable { message, .. }) if message.contains("503") => {}
            Err(e) => panic!("with basic auth: {e}\n{}", prom.log()),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let QueryValue::Vector(v) = in_url.query("vector(3)", now_ms()).await.unwrap() else {
        panic!()
    };
    assert_eq!(v[0].value, 3.0);
    match anonymous.query("vector(1)", now_ms()).await {
        Err(BackendError::Unavailable { message, .. }) => {
            assert!(message.contains("401"), "{message}")
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_is_unavailable_after_the_deadline() {
    // Accepts connections and reads requests, but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut config = PromConfig::new(format!("http://127.0.0.1:{port}/prom"));
    config.query_timeout = std::time::Duration::from_millis(300);
    let client = PromClient::new(config).unwrap();
    match client.query("up", now_ms()).await {
        Err(BackendError::Unavailable { address, message }) => {
            assert!(address.contains(&port.to_string()), "{address}");
            assert!(
                message.to_lowercase().contains("timed out")
                    || message.to_lowercase().contains("timeout"),
                "{message}"
            );
        }
        other => panic!("expected the deadline to make it unavailable, got {other:?}"),
    }
    // A caller with less time left than the query timeout gets its own budget; one with
    // more is held to the query timeout.
    for (budget, said) in [(100, "100ms"), (5000, "300ms")] {
        match client
            .query_within("up", now_ms(), std::time::Duration::from_millis(budget))
            .await
        {
            Err(BackendError::Unavailable { message, .. }) => {
                assert!(
                    message.contains(&format!("no answer within {said}")),
                    "{message}"
                )
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    hold.abort();
}

/// Ask `vector(1)` until Prometheus answers (it may not be ready yet) or `refused` says the
/// error is the expected refusal.
async fn answers(client: &PromClient, prom: &Prometheus) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match client.query("vector(1)", now_ms()).await {
            Ok(QueryValue::Vector(_)) => return Ok(()),
            Ok(other) => panic!("{other:?}"),
            Err(BackendError::Unavailable { message, .. }) if message.contains("503") => {}
            Err(e) => return Err(e.to_string()),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_ca_and_client_certificate_files_are_used_without_a_restart() {
    let pki = TestPki::generate("rotate-ca", "promhpa").unwrap();
    let other = TestPki::generate("other-ca", "promhpa").unwrap();
    let target = ScrapeTarget::start(BODY).unwrap();
    let prom = Prometheus::start_mtls(&pki, &[target.port]).unwrap();
    let dir = pki.dir.path().join("mounted");
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"));
    // A CA that did not sign Prometheus' certificate, and a client certificate it does not
    // trust: nothing works yet.
    std::fs::copy(&other.ca_cert, &ca).unwrap();
    std::fs::copy(&other.client_cert, &cert).unwrap();
    std::fs::copy(&other.client_key, &key).unwrap();
    let mut config = PromConfig::new(prom.url());
    config.ca_file = Some(ca.clone());
    config.client_cert_file = Some(cert.clone());
    config.client_key_file = Some(key.clone());
    let client = PromClient::new(config).unwrap();
    let err = answers(&client, &prom).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    // The right CA arrives (as a renewed Secret would): Prometheus is verified, but the
    // client certificate is still refused.
    std::fs::copy(&pki.ca_cert, &ca).unwrap();
    let start = Instant::now();
    loop {
        let err = answers(&client, &prom).await.unwrap_err();
        if !err.contains("UnknownIssuer") && !err.contains("unknown issuer") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Then the client certificate and key: queries succeed, with the same client.
    std::fs::copy(&pki.client_key, &key).unwrap();
    std::fs::copy(&pki.client_cert, &cert).unwrap();
    let start = Instant::now();
    while answers(&client, &prom).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", prom.log());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A Prometheus serving a self-signed certificate marked as a CA (as `openssl req -x509`
/// makes one), with that certificate as the CA file: accepted, as Go (and so
/// prometheus-adapter) accepts it; its names still count, and another self-signed
/// certificate in the CA file does not stand for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_given_as_its_own_ca_is_trusted_as_go_trusts_it() {
    let pki = TestPki::self_signed_server("client").unwrap();
    let prom = Prometheus::start_https(&pki, &[]).unwrap();
    let client_named = |url: String, ca: &std::path::Path, name: Option<&str>| {
        let mut config = PromConfig::new(url);
        config.ca_file = Some(ca.to_path_buf());
        config.tls_server_name = name.map(str::to_string);
        PromClient::new(config).unwrap()
    };
    let client = |url: String, ca: &std::path::Path| client_named(url, ca, None);
    let ok = client(prom.url(), &pki.ca_cert);
    let start = Instant::now();
    loop {
        match ok.query("1", now_ms()).await {
            Ok(QueryValue::Scalar { value, .. }) => {
                assert_eq!(value, 1.0);
                break;
            }
            other => assert!(
                start.elapsed() < Duration::from_secs(20),
                "{other:?}\n{}",
                prom.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_name = client(format!("https://localhost:{}", prom.port), &pki.ca_cert);
    assert!(by_name.query("1", now_ms()).await.is_ok());
    // A name the certificate does not carry.
    let e = client_named(prom.url(), &pki.ca_cert, Some("prometheus.example"))
        .query("1", now_ms())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("NotValidForName"), "{e}");
    // Another self-signed certificate does not vouch for this one.
    let other = TestPki::self_signed_server("client").unwrap();
    let e = client(prom.url(), &other.ca_cert)
        .query("1", now_ms())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("invalid peer certificate"), "{e}");
}
