use super::*;

use std::sync::atomic::{AtomicU64, Ordering};

use promhpa_promql_eval::{StoreLimits, Value};
use promhpa_test_support::{ScrapeTarget, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(text: &str) -> Result<ScrapeConfig, ScrapeError> {
    ScrapeConfig::parse(text, "scrape.yaml")
}

#[test]
fn defaults_follow_prometheus() {
    let c = config(
        "targets:\n- url: http://127.0.0.1:9100/metrics\n- url: https://example.com/m\n  labels: {team: a, job: api}\n",
    )
    .unwrap();
    assert_eq!(c.targets.len(), 2);
    let t = &c.targets[0];
    assert_eq!(t.interval, Duration::from_secs(15));
    assert_eq!(t.timeout, Duration::from_secs(10));
    assert!(!t.insecure_skip_verify);
    assert_eq!(t.labels["job"], DEFAULT_JOB);
    assert_eq!(t.labels["instance"], "127.0.0.1:9100");
    let t = &c.targets[1];
    assert_eq!(t.labels["instance"], "example.com:443");
    assert_eq!(t.labels["job"], "api");
    assert_eq!(t.labels["team"], "a");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let e = config("targets:\n- url: http://a:1/\n  intervall: 5s\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("intervall"), "{e}");
    let e = config("target: []\n").unwrap_err().to_string();
    assert!(e.contains("target"), "{e}");
    // Unset, the timeout is capped at a short interval, as Prometheus caps it.
    let short = config("targets:\n- url: http://a:1/\n  interval: 5s\n").unwrap();
    assert_eq!(short.targets[0].timeout, Duration::from_secs(5));
    let e = config("targets:\n- url: http://a:1/\n  interval: 5s\n  timeout: 6s\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("timeout") && e.contains("interval"), "{e}");
    let e = config("targets:\n- url: ftp://a/\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("scheme"), "{e}");
    let e = config("targets:\n- url: http://a/\n  interval: soon\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("interval"), "{e}");
    let e = config("targets:\n- url: http://a/\n  labels: {\"bad-name\": x}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad-name"), "{e}");
    let e = config("targets:\n- interval: 5s\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("url"), "{e}");
    // Two paths of one host:port (the kubelet's /metrics and /metrics/cadvisor) would
    // share their labels, their `up` and each other's staleness: refused unless labelled.
    let e = config(
        "targets:\n- url: https://node:10250/metrics\n- url: https://node:10250/metrics/cadvisor\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("targets[0] (https://node:10250/metrics) and targets[1] (https://node:10250/metrics/cadvisor) have the same labels"),
        "{e}"
    );
    assert!(config("targets:\n- url: https://node:10250/metrics\n- url: https://node:10250/metrics/cadvisor\n  labels: {job: cadvisor}\n").is_ok());
    // A password in a target's URL is never shown.
    let e = config("targets:\n- url: https://scraper:s3cret@node:10250/metrics\n  interval: 0s\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("targets[0] (https://scraper:xxxxx@node:10250/metrics)")
            && !e.contains("s3cret"),
        "{e}"
    );
    // Nor in one that does not parse.
    let e = config("targets:\n- url: https://scraper:s3cret@node:99999/metrics\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("https://scraper:xxxxx@node:99999/metrics") && !e.contains("s3cret"),
        "{e}"
    );
}

fn one_value(backend: &EmbeddedBackend, q: &str) -> Vec<(String, f64)> {
    match backend.query_value(q, now_ms()).unwrap() {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn scrapes_a_plain_http_target_and_marks_a_down_one() {
    let body = "# TYPE requests_total counter\nrequests_total{path=\"/a\"} 7\n";
    let server = ScrapeTarget::start(body).unwrap();
    let closed = promhpa_test_support::free_port().unwrap();
    let c = config(&format!(
        "targets:\n- url: http://127.0.0.1:{}/metrics\n  labels: {{team: x}}\n- url: http://127.0.0.1:{closed}/metrics\n  timeout: 2s\n",
        server.port
    ))
    .unwrap();
    let backend = EmbeddedBackend::default();
    let ok = &c.targets[0];
    assert!(scrape_once(&backend, &ok.client().unwrap(), ok, &ok.store_labels()).await);
    let down = &c.targets[1];
    assert!(
        !scrape_once(
            &backend,
            &down.client().unwrap(),
            down,
            &down.store_labels()
        )
        .await
    );

    let got = one_value(&backend, "requests_total");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 7.0);
    assert!(got[0].0.contains("team=\"x\""), "{}", got[0].0);
    assert!(
        got[0]
            .0
            .contains(&format!("instance=\"127.0.0.1:{}\"", server.port)),
        "{}",
        got[0].0
    );
    let up = one_value(&backend, "up");
    let by_instance = |port: u16| {
        up.iter()
            .find(|(l, _)| l.contains(&format!("127.0.0.1:{port}")))
            .map(|(_, v)| *v)
    };
    assert_eq!(by_instance(server.port), Some(1.0), "{up:?}");
    assert_eq!(by_instance(closed), Some(0.0), "{up:?}");
    let scraped = one_value(&backend, "scrape_samples_scraped{team=\"x\"}");
    assert_eq!(scraped[0].1, 1.0);
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_a_failed_scrape() {
    let server = ScrapeTarget::start("this is not { an exposition\n").unwrap();
    let c = config(&format!(
        "targets:\n- url: http://127.0.0.1:{}/\n",
        server.port
    ))
    .unwrap();
    let backend = EmbeddedBackend::default();
    let t = &c.targets[0];
    assert!(!scrape_once(&backend, &t.client().unwrap(), t, &t.store_labels()).await);
    assert_eq!(one_value(&backend, "up")[0].1, 0.0);
}

/// A one-request-per-connection HTTPS server answering with `body` when the request
/// carries `Authorization: Bearer <token>`, 401 otherwise; counts requests.
async fn https_target(
    pki: &TestPki,
    token: &'static str,
    body: &'static str,
) -> (u16, Arc<AtomicU64>) {
    let resolver = Arc::new(
        promhpa_apiserver::server::ReloadingCert::new(&pki.server_cert, &pki.server_key).unwrap(),
    );
    let mut tls = (*promhpa_apiserver::server::tls_config(resolver).unwrap()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&req).to_lowercase();
                let authorized = head.contains(&format!("authorization: bearer {token}\r\n"));
                let (status, text) = if authorized {
                    ("200 OK", body)
                } else {
                    ("401 Unauthorized", "no\n")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = stream.write_all(resp.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn scrapes_https_with_a_ca_file_and_bearer_token() {
    let pki = TestPki::generate("scrape-ca", "scraper").unwrap();
    let other = TestPki::generate("other-ca", "scraper").unwrap();
    let body = "# TYPE temperature gauge\ntemperature{room=\"lab\"} 21.5\n";
    let (port, served) = https_target(&pki, "s3cret", body).await;
    let token = pki.dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let c = config(&format!(
        "targets:\n\
         - url: https://127.0.0.1:{port}/metrics\n  caFile: {ca}\n  bearerTokenFile: {tok}\n  labels: {{which: good}}\n\
         - url: https://127.0.0.1:{port}/metrics\n  caFile: {other}\n  bearerTokenFile: {tok}\n  labels: {{which: wrong-ca}}\n\
         - url: https://127.0.0.1:{port}/metrics\n  caFile: {ca}\n  labels: {{which: no-token}}\n\
         - url: https://127.0.0.1:{port}/metrics\n  insecureSkipVerify: true\n  bearerTokenFile: {tok}\n  labels: {{which: skip-verify}}\n",
        ca = pki.ca_cert.display(),
        other = other.ca_cert.display(),
        tok = token.display(),
    ))
    .unwrap();
    let backend = EmbeddedBackend::new(StoreLimits::default());
    for t in &c.targets {
        scrape_once(&backend, &t.client().unwrap(), t, &t.store_labels()).await;
    }
    let up: BTreeMap<String, f64> = one_value(&backend, "up")
        .into_iter()
        .map(|(l, v)| {
            let which = l
                .split("which=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (which.to_string(), v)
        })
        .collect();
    assert_eq!(up["good"], 1.0, "{up:?}");
    assert_eq!(up["wrong-ca"], 0.0, "{up:?}");
    assert_eq!(up["no-token"], 0.0, "{up:?}");
    assert_eq!(up["skip-verify"], 1.0, "{up:?}");
    let temp = one_value(&backend, "temperature");
    assert_eq!(temp.len(), 2, "{temp:?}");
    assert!(temp.iter().all(|(_, v)| *v == 21.5));
    // The wrong CA fails the handshake: only three requests reach the server.
    assert_eq!(served.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn spawned_loops_scrape_repeatedly_and_respect_the_series_limit() {
    let server = ScrapeTarget::start_with(Arc::new(|n| {
        format!("# TYPE ticks_total counter\nticks_total {n}\nother_series 1\n")
    }))
    .unwrap();
    let c = config(&format!(
        "targets:\n- url: http://127.0.0.1:{}/\n  interval: 100ms\n  timeout: 100ms\n",
        server.port
    ))
    .unwrap();
    // Room for ticks_total and the three scrape series only.
    let backend = Arc::new(EmbeddedBackend::new(StoreLimits {
        retention_ms: 60_000,
        max_series: 4,
    }));
    let handles = spawn(backend.clone(), &c, Duration::from_millis(100)).unwrap();
    let start = Instant::now();
    loop {
        let got = backend.query_value("ticks_total", now_ms()).unwrap();
        if let Value::Vector(v) = &got {
            if v.first().is_some_and(|s| s.v >= 3.0) {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no third scrape: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in handles {
        h.abort();
    }
    assert!(backend.series_count() <= 4, "{}", backend.series_count());
}

#[tokio::test]
async fn series_a_target_stops_exposing_go_stale_at_once() {
    let server = ScrapeTarget::start("a_gauge 1\nb_gauge 2\n").unwrap();
    let c = config(&format!(
        "targets:\n- url: http://127.0.0.1:{}/\n",
        server.port
    ))
    .unwrap();
    let backend = EmbeddedBackend::default();
    let t = &c.targets[0];
    let client = t.client().unwrap();
    let labels = t.store_labels();
    assert!(scrape_once(&backend, &client, t, &labels).await);
    assert_eq!(one_value(&backend, "a_gauge").len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.set_body("b_gauge 3\n");
    assert!(scrape_once(&backend, &client, t, &labels).await);
    assert!(one_value(&backend, "a_gauge").is_empty());
    assert_eq!(one_value(&backend, "b_gauge")[0].1, 3.0);
    // A failed scrape makes every series of the target stale; `up` stays, at 0.
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.set_body("not { valid\n");
    assert!(!scrape_once(&backend, &client, t, &labels).await);
    assert!(one_value(&backend, "b_gauge").is_empty());
    assert_eq!(one_value(&backend, "up")[0].1, 0.0);
}

#[test]
fn limits_parse_with_prometheus_units() {
    let c = config(
        "targets:\n- url: http://a:1/\n  sampleLimit: 100\n  bodySizeLimit: 10MiB\n- url: http://b:1/\n  bodySizeLimit: 2KB\n- url: http://c:1/\n",
    )
    .unwrap();
    assert_eq!(c.targets[0].sample_limit, 100);
    assert_eq!(c.targets[0].body_size_limit, 10 << 20);
    assert_eq!(c.targets[1].body_size_limit, 2000);
    assert_eq!(
        (c.targets[2].sample_limit, c.targets[2].body_size_limit),
        (0, 0)
    );
    let e = config("targets:\n- url: http://a:1/\n  bodySizeLimit: 10 parsecs\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bodySizeLimit") && e.contains("parsecs"), "{e}");
    let e = config("targets:\n- url: http://a:1/\n  sampleLimit: -1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sampleLimit") || e.contains("invalid"), "{e}");
}

#[tokio::test]
async fn a_scrape_over_its_sample_or_size_limit_fails_whole() {
    let body = "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{path=\"/a\"} 7\nrequests_total{path=\"/b\"} 8\nrequests_total{path=\"/c\"} 9\n";
    let server = ScrapeTarget::start(body).unwrap();
    let backend = EmbeddedBackend::default();
    for (limits, ok) in [
        ("sampleLimit: 3", true),
        ("sampleLimit: 2", false),
        (&format!("bodySizeLimit: {}", body.len()) as &str, true),
        (&format!("bodySizeLimit: {}", body.len() - 1) as &str, false),
    ] {
        let c = config(&format!(
            "targets:\n- url: http://127.0.0.1:{}/metrics\n  {limits}\n",
            server.port
        ))
        .unwrap();
        let t = &c.targets[0];
        assert_eq!(
            scrape_once(&backend, &t.client().unwrap(), t, &t.store_labels()).await,
            ok,
            "{limits}"
        );
        let up = one_value(&backend, "up");
        assert_eq!(up[0].1, if ok { 1.0 } else { 0.0 }, "{limits}");
        // A failed scrape keeps none of its samples: the series go stale at once.
        assert_eq!(
            one_value(&backend, "requests_total").len(),
            if ok { 3 } else { 0 },
            "{limits}"
        );
    }
}
