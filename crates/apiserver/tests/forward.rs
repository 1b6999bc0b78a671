//! Forwarding requests for metrics no rule serves (`--forward-unknown-*-metrics-to`): the
//! router over the embedded evaluator, and a stand-in for the other metrics server on
//! 127.0.0.1 that records every request it gets (path, query, headers) and answers as the
//! test needs — a value list, a `Status`, HTML, nothing in time.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use promhpa_apiserver::api::RequestGuard;
use promhpa_apiserver::forward::ForwardOptions;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::{router, ApiError, AppState, Registry, StaticObjects};
use promhpa_core::backend::{Backend, BackendError, BoxFuture, QueryValue, SeriesInfo};
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::RuleSet;
use promhpa_test_support::ScratchDir;
use serde_json::Value;
use tower::ServiceExt;

const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources:
    namespaced: false
  metricsQuery: 'sum by (queue) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const OBJECTS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop, labels: {app: web}}}
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The embedded evaluator, failing every call while `fail` is set.
#[derive(Default)]
struct Switchable {
    inner: EmbeddedBackend,
    fail: AtomicBool,
}

impl Switchable {
    fn down<T: Send + 'static>(&self) -> Option<BoxFuture<'static, Result<T, BackendError>>> {
        self.fail
            .load(Ordering::SeqCst)
            .then(|| -> BoxFuture<'static, Result<T, BackendError>> {
                Box::pin(async {
                    Err(BackendError::Unavailable {
                        address: "embedded-test".into(),
                        message: "switched off".into(),
                    })
                })
            })
    }
}

impl Backend for Switchable {
    fn address(&self) -> String {
        "embedded-test".into()
    }
    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        self.down()
            .unwrap_or_else(|| self.inner.query(promql, at_ms))
    }
    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        self.inner.query_range(promql, start_ms, end_ms, step_ms)
    }
    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        self.down()
            .unwrap_or_else(|| self.inner.series_names(selector, since_ms))
    }
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: HeaderMap,
}

/// The other metrics server: answers by the last path segment.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
    /// Where the test's token files are.
    dir: ScratchDir,
}

const VALUE: &str = r#"{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[{"metricName":"s0-rabbitmq-orders","metricLabels":{},"timestamp":"2026-01-01T00:00:00Z","value":"7"}]}"#;
const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no ScaledObject serves \"s9-nothing\"","reason":"NotFound","code":404}"#;

async fn answer(seen: Arc<Mutex<Vec<Seen>>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: req.uri().query().unwrap_or("").to_string(),
        headers: req.headers().clone(),
    });
    let json = |code: StatusCode, body: &'static str| {
        (code, [("content-type", "application/json")], body).into_response()
    };
    match path.rsplit('/').next().unwrap_or("") {
        "v1beta1" if path.starts_with("/apis/external") => json(
            StatusCode::OK,
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"external.metrics.k8s.io/v1beta1","resources":[
              {"name":"s0-rabbitmq-orders","singularName":"","namespaced":true,"kind":"ExternalMetricValueList","verbs":["get"]},
              {"name":"queue_depth","singularName":"","namespaced":true,"kind":"ExternalMetricValueList","verbs":["get"]}]}"#,
        ),
        "v1beta2" => json(
            StatusCode::OK,
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"custom.metrics.k8s.io/v1beta2","resources":[
              {"name":"pods/worker_backlog","singularName":"","namespaced":true,"kind":"MetricValueList","verbs":["get"]}]}"#,
        ),
        "s0-rabbitmq-orders" | "worker_backlog" | "http_requests_in_flight" => {
            let mut r = json(StatusCode::OK, VALUE);
            r.headers_mut().insert(
                "warning",
                "299 - \"from the other server\"".parse().unwrap(),
            );
            r
        }
        "s9-nothing" => json(StatusCode::NOT_FOUND, NOT_FOUND),
        "s1-html" => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html>login</html>",
        )
            .into_response(),
        "s2-slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json(StatusCode::OK, VALUE)
        }
        _ => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}

impl StandIn {
    async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| answer(s.clone(), req));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url,
            seen,
            task,
            dir: ScratchDir::new("forward-test").unwrap(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests other than discovery.
    fn values(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.contains("/namespaces/"))
            .collect()
    }
}

struct Setup {
    backend: Arc<Switchable>,
    metrics: Arc<SelfMetrics>,
    app: axum::Router,
}

async fn setup(
    options: ForwardOptions,
    guard: Option<Arc<dyn RequestGuard>>,
    discovery_ttl: Duration,
) -> Setup {
    let backend = Arc::new(Switchable::default());
    let add = |pairs: &[(&str, &str)], v: f64| {
        backend
            .inner
            .append(
                &Labels::from_pairs(pairs.iter().copied()),
                now_ms() - 1000,
                v,
            )
            .unwrap();
    };
    add(
        &[
            ("__name__", "http_requests_in_flight"),
            ("namespace", "shop"),
            ("pod", "web-1"),
        ],
        3.0,
    );
    add(&[("__name__", "queue_depth"), ("queue", "jobs")], 42.0);
    let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let rules = Arc::new(RuleSet::from_yaml(RULES, "rules").unwrap());
    let registry = Arc::new(
        Registry::new(
            rules,
            backend.clone(),
            lookup.clone(),
            metrics.clone(),
            Duration::from_secs(600),
        )
        .with_negative_ttl(Duration::ZERO),
    );
    assert!(registry.relist().await.is_empty());
    let forward = options
        .build(metrics.clone())
        .unwrap()
        .map(|f| Arc::new(f.with_discovery_ttl(discovery_ttl)));
    let app = router(AppState {
        registry,
        lookup,
        metrics: metrics.clone(),
        guard,
        coalescer: Default::default(),
        forward,
    });
    Setup {
        backend,
        metrics,
        app,
    }
}

/// A token file in `stand_in`'s directory, which is the test's own (tests run in parallel).
fn token_file(stand_in: &StandIn, token: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = stand_in
        .dir
        .join(format!("token-{}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

fn options(stand_in: &StandIn) -> ForwardOptions {
    ForwardOptions {
        external_url: Some(stand_in.url.clone()),
        custom_url: Some(stand_in.url.clone()),
        token_file: Some(token_file(stand_in, "promhpa-own-token")),
        ..ForwardOptions::default()
    }
}

/// The answer to a GET with these headers: code, headers and body.
async fn get_with(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (code, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (code, _, body) = get_with(app, uri, &[]).await;
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (code, v)
}

#[tokio::test]
async fn unknown_metrics_go_to_the_other_server_with_promhpas_own_credentials() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::from_secs(5)).await;

    // As the aggregator would send it: the caller's token and identity headers.
    let (code, headers, body) = get_with(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders?labelSelector=scaledobject.keda.sh%2Fname%3Dorders&timeout=30s",
        &[
            ("authorization", "Bearer caller-token"),
            ("x-remote-user", "system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
            ("x-remote-group", "system:masters"),
            ("impersonate-user", "admin"),
            ("cookie", "session=1"),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, VALUE, "relayed byte for byte");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["warning"], "299 - \"from the other server\"");

    let seen = other.values();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let r = &seen[0];
    assert_eq!(
        r.path,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders"
    );
    let (selector, timeout) = r.query.split_once("&timeout=").unwrap();
    assert_eq!(
        selector,
        "labelSelector=scaledobject.keda.sh%2Fname%3Dorders"
    );
    let ms: u64 = timeout.strip_suffix("ms").unwrap().parse().unwrap();
    assert!(ms > 0 && ms <= 60_000, "{timeout}");
    assert_eq!(r.headers["authorization"], "Bearer promhpa-own-token");
    for leaked in [
        "x-remote-user",
        "x-remote-group",
        "impersonate-user",
        "cookie",
    ] {
        assert!(!r.headers.contains_key(leaked), "{leaked} forwarded: {r:?}");
    }
    assert_eq!(r.headers["x-promhpa-forwarded"], "1");

    // promhpa's own metrics are answered by promhpa.
    let (code, v) = get(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "42");
    let (code, v) = get(
        &s.app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(other.values().len(), 1);

    // Custom metrics: one no rule serves, and one served for another resource only.
    let (code, v) = get(
        &s.app,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/worker_backlog?labelSelector=app%3Dworker",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, _) = get(
        &s.app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/deployments.apps/web/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let paths: Vec<String> = other.values().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths[1..],
        [
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/worker_backlog",
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/deployments.apps/web/http_requests_in_flight"
        ]
    );

    // The other server's Status comes back unchanged.
    let (code, headers, body) = get_with(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s9-nothing",
        &[],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body, NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");

    // Something that is not an answer is a 503 naming the other server.
    let (code, v) = get(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s1-html",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "ServiceUnavailable");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&other.url) && msg.contains("--forward-unknown-external-metrics-to"),
        "{msg}"
    );
    assert!(
        msg.contains("not JSON") && msg.contains("<html>login</html>"),
        "{msg}"
    );
    // A plain-text 404 too: it is not a Status.
    let (code, v) = get(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s3-unknown-path",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("404 page not found"),
        "{v}"
    );

    let (_, text) = get(&s.app, "/metrics").await;
    let text = text.as_str().unwrap();
    for line in [
        "promhpa_forwarded_requests_total{api=\"external\",code=\"200\"} 1",
        "promhpa_forwarded_requests_total{api=\"external\",code=\"404\"} 1",
        "promhpa_forwarded_requests_total{api=\"external\",code=\"503\"} 2",
        "promhpa_forwarded_requests_total{api=\"custom\",code=\"200\"} 2",
        "promhpa_forward_failures_total{api=\"external\",call=\"value\"} 2",
        "promhpa_http_request_duration_seconds_count{route=\"external/forwarded\",code=\"200\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    other.task.abort();
}

#[tokio::test]
async fn discovery_lists_both_servers_and_survives_the_other_going_away() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::ZERO).await;
    let names = |v: &Value| -> Vec<(String, bool)> {
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["namespaced"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let (code, v) = get(&s.app, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["groupVersion"], "external.metrics.k8s.io/v1beta1");
    // queue_depth is promhpa's (cluster-scoped); the other server's entry is dropped.
    assert_eq!(
        names(&v),
        [
            ("queue_depth".to_string(), false),
            ("s0-rabbitmq-orders".to_string(), true)
        ]
    );
    let (_, v) = get(&s.app, "/apis/custom.metrics.k8s.io/v1beta2").await;
    let listed: Vec<String> = names(&v).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        listed,
        [
            "namespaces/http_requests_in_flight",
            "pods/http_requests_in_flight",
            "pods/worker_backlog"
        ]
    );
    let asked: Vec<String> = other.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        [
            "/apis/external.metrics.k8s.io/v1beta1",
            "/apis/custom.metrics.k8s.io/v1beta2"
        ]
    );
    // v1beta1 of the custom API: the stand-in answers a plain 404; promhpa's list stays.
    let (code, v) = get(&s.app, "/apis/custom.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(names(&v).len(), 2);

    other.task.abort();
    let _ = other.task.await;
    let (code, v) = get(&s.app, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(names(&v), [("queue_depth".to_string(), false)]);
    let (_, text) = get(&s.app, "/metrics").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("promhpa_forward_failures_total{api=\"external\",call=\"discovery\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn discovery_is_cached_briefly() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::from_secs(3600)).await;
    for _ in 0..3 {
        assert_eq!(
            get(&s.app, "/apis/external.metrics.k8s.io/v1beta1").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(other.seen().len(), 1);
    other.task.abort();
}

struct Refuse;

impl RequestGuard for Refuse {
    fn check<'a>(
        &'a self,
        _parts: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async { Err(ApiError::Unauthorized("Unauthorized".into())) })
    }
}

#[tokio::test]
async fn callers_are_refused_before_anything_is_forwarded() {
    let other = StandIn::start().await;
    let s = setup(options(&other), Some(Arc::new(Refuse)), Duration::ZERO).await;
    for uri in [
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/worker_backlog",
        "/apis/external.metrics.k8s.io/v1beta1",
    ] {
        let (code, v) = get(&s.app, uri).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{v}");
    }
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    other.task.abort();
}

#[tokio::test]
async fn a_metric_promhpa_serves_is_never_forwarded_even_when_its_backend_fails() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::ZERO).await;
    s.backend.fail.store(true, Ordering::SeqCst);
    let (code, v) = get(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("embedded-test"),
        "{v}"
    );
    let (code, v) = get(
        &s.app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(other.values().is_empty(), "{:?}", other.values());
    other.task.abort();
}

#[tokio::test]
async fn a_request_that_was_forwarded_is_not_forwarded_again() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::ZERO).await;
    let (code, _, body) = get_with(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders",
        &[("x-promhpa-forwarded", "1")],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("no external rule"), "{body}");
    // Nor does its discovery ask the other server (which may be asking this one).
    let (code, _, body) = get_with(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1",
        &[("x-promhpa-forwarded", "1")],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(!body.contains("s0-rabbitmq-orders"), "{body}");
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    other.task.abort();
}

#[tokio::test]
async fn a_slow_or_absent_server_is_a_503_within_the_deadline() {
    let other = StandIn::start().await;
    let s = setup(options(&other), None, Duration::ZERO).await;
    let deadline = Duration::from_secs(1);
    let start = Instant::now();
    let resp = promhpa_apiserver::deadline::scope(
        tokio::time::Instant::now() + deadline,
        s.app.clone().oneshot(
            Request::get("/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s2-slow")
                .body(Body::empty())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(elapsed < deadline + Duration::from_secs(2), "{elapsed:?}");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&other.url) && msg.contains("no answer within"),
        "{msg}"
    );
    // The budget sent along is what was left, less a margin.
    let seen = other.values();
    let ms: u64 = seen[0]
        .query
        .trim_start_matches("timeout=")
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    assert!(ms <= 1000, "{:?}", seen[0].query);

    // Nobody listening.
    other.task.abort();
    let _ = other.task.await;
    let closed = promhpa_test_support::free_port().unwrap();
    let s = setup(
        ForwardOptions {
            external_url: Some(format!("http://127.0.0.1:{closed}")),
            ..ForwardOptions::default()
        },
        None,
        Duration::ZERO,
    )
    .await;
    let (code, v) = get(
        &s.app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("http://127.0.0.1:{closed}")) && msg.contains("unavailable"),
        "{msg}"
    );
    // promhpa's discovery is served as ever.
    let (code, v) = get(&s.app, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["resources"][0]["name"], "queue_depth");
    let _ = s.metrics;
}
