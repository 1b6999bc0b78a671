//! The router and discovery registry over the embedded evaluator (a real `Backend`) and a
//! static object file; TLS serving with client certificates and a request guard.
#![allow(clippy::unwrap_used)]

mod common;
use common::get;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use promhpa_apiserver::api::RequestGuard;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::{
    router, server, ApiError, AppState, Registry, ServerBuilder, StaticObjects,
};
use promhpa_core::backend::{Backend, BackendError, BoxFuture, QueryValue, SeriesInfo};
use promhpa_core::tls::PeerCertificates;
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::RuleSet;
use serde_json::Value;

const RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)$", as: "${1}"}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'node_load{node!=""}'
  resources:
    overrides:
      node: {resource: node}
  metricsQuery: 'max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources:
    namespaced: false
  metricsQuery: 'sum by (queue) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const OBJECTS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop, labels: {app: web}}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-2, namespace: shop, labels: {app: web}}}
- {apiVersion: v1, kind: Node, metadata: {name: node-a}}
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The embedded evaluator, with discovery that can be made to fail and counts its calls.
#[derive(Default)]
struct Switchable {
    inner: EmbeddedBackend,
    fail: AtomicBool,
    series_calls: std::sync::atomic::AtomicUsize,
    /// How long each series fetch takes, in milliseconds.
    series_delay_ms: std::sync::atomic::AtomicU64,
    /// Series fetches under way now, and the most there have been at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
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
        self.inner.query(promql, at_ms)
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
        self.series_calls.fetch_add(1, Ordering::SeqCst);
        let delay = Duration::from_millis(self.series_delay_ms.load(Ordering::SeqCst));
        if !delay.is_zero() {
            return Box::pin(async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.inner.series_names(selector, since_ms).await
            });
        }
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(BackendError::Unavailable {
                    address: "embedded-test".into(),
                    message: "switched off".into(),
                })
            });
        }
        self.inner.series_names(selector, since_ms)
    }
}

fn add(b: &Switchable, pairs: &[(&str, &str)], v: f64) {
    b.inner
        .append(
            &Labels::from_pairs(pairs.iter().copied()),
            now_ms() - 1000,
            v,
        )
        .unwrap();
}

fn setup(ttl: Duration) -> (Arc<Switchable>, Arc<Registry>, axum::Router) {
    let backend = Arc::new(Switchable::default());
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
        .with_negative_ttl(ttl),
    );
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics,
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    (backend, registry, app)
}

/// A sample of `name` for pod shop/web-1, a second old.
fn web_1_series(b: &Switchable, name: &str, v: f64) {
    add(
        b,
        &[("__name__", name), ("namespace", "shop"), ("pod", "web-1")],
        v,
    );
}

/// `rules` served from a [`Switchable`] backend, with the test objects.
fn switchable_app(rules: &str) -> (Arc<Switchable>, Arc<Registry>, axum::Router) {
    let backend = Arc::new(Switchable::default());
    let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap());
    let registry = Arc::new(Registry::new(
        Arc::new(RuleSet::from_yaml(rules, "rules").unwrap()),
        backend.clone(),
        lookup.clone(),
        Arc::new(SelfMetrics::default()),
        Duration::from_secs(600),
    ));
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics: Arc::new(SelfMetrics::default()),
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    (backend, registry, app)
}

fn seed(b: &Switchable) {
    add(
        b,
        &[
            ("__name__", "http_requests_in_flight"),
            ("namespace", "shop"),
            ("pod", "web-1"),
        ],
        1.5,
    );
    add(
        b,
        &[
            ("__name__", "http_requests_in_flight"),
            ("namespace", "shop"),
            ("pod", "web-2"),
        ],
        2000.0,
    );
    add(b, &[("__name__", "node_load"), ("node", "node-a")], 0.25);
    add(b, &[("__name__", "queue_depth"), ("queue", "jobs")], 42.0);
}

#[tokio::test]
async fn discovery_values_and_readiness() {
    let (backend, registry, app) = setup(Duration::from_secs(10));
    let (code, body) = get(&app, "/readyz").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    // A failing check is listed as Kubernetes servers list theirs, verbose or not, its
    // reason withheld from a path anyone may ask.
    assert_eq!(
        body,
        "[+]ping ok\n[-]metric-discovery failed: reason withheld\nreadyz check failed\n"
    );
    // The check alone tells why.
    assert_eq!(
        get(&app, "/readyz/metric-discovery").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal server error: metric discovery has not completed yet\n".into()
        )
    );
    assert_eq!(
        get(&app, "/readyz/ping").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&app, "/livez/ping").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&app, "/healthz/ping").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(get(&app, "/livez/nosuch").await.0, StatusCode::NOT_FOUND);
    let (code, _) = get(&app, "/readyz?exclude=metric-discovery").await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = get(&app, "/livez?verbose").await;
    assert_eq!(
        (code, body),
        (StatusCode::OK, "[+]ping ok\nlivez check passed\n".into())
    );
    let (code, body) = get(&app, "/healthz?verbose").await;
    assert_eq!(
        (code, body),
        (StatusCode::OK, "[+]ping ok\nhealthz check passed\n".into())
    );
    assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, "ok".into()));
    // An exclusion that names no check is said to, as Kubernetes says it.
    let (_, body) = get(&app, "/livez?verbose&exclude=nosuch").await;
    assert_eq!(
        body,
        "[+]ping ok\nwarn: some health checks cannot be excluded: no matches for \"nosuch\"\nlivez check passed\n"
    );
    seed(&backend);
    assert!(registry.relist().await.is_empty());
    assert_eq!(get(&app, "/readyz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(
        get(&app, "/readyz/metric-discovery").await,
        (StatusCode::OK, "ok".into())
    );
    let (code, body) = get(&app, "/readyz?verbose=1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        "[+]ping ok\n[+]metric-discovery ok\nreadyz check passed\n"
    );

    let (code, list) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<(String, bool)> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("namespaces/http_requests_in_flight".to_string(), false),
            ("nodes/node_load".to_string(), false),
            ("pods/http_requests_in_flight".to_string(), true),
        ]
    );
    let (_, ext) = get(&app, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(ext["resources"][0]["name"], "queue_depth");
    assert_eq!(ext["resources"][0]["namespaced"], false);

    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=app%3Dweb",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "1500m");
    assert_eq!(v["items"][1]["value"], "2k");
    assert_eq!(v["items"][0]["metric"]["name"], "http_requests_in_flight");
    assert!(v["items"][0]["metric"].get("selector").is_none());

    // Cluster-scoped object.
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/nodes/node-a/node_load",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "250m");
    assert_eq!(v["items"][0]["describedObject"]["kind"], "Node");
    assert!(v["items"][0]["describedObject"].get("namespace").is_none());

    // The namespace object itself.
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/metrics/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["describedObject"]["kind"], "Namespace");
    assert_eq!(v["items"][0]["value"], "2001500m");

    // External metric with a selector.
    let (code, v) = get(
        &app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/any/queue_depth?labelSelector=queue%3Djobs",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "42");
    assert_eq!(v["items"][0]["metricLabels"]["queue"], "jobs");

    // `pods.` is the core group's pods.
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods./web-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["describedObject"]["kind"], "Pod", "{v}");

    // `/version` in Kubernetes' form: its field order, Go's platform names.
    let (code, v) = get(&app, "/version").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let platform = v["platform"].as_str().unwrap();
    assert!(
        platform.contains('/') && !platform.contains("x86_64") && !platform.contains("aarch64"),
        "{v}"
    );
    assert!(
        platform.starts_with("linux/") && !platform.contains("x86_64"),
        "{v}"
    );
    let resp = tower::ServiceExt::oneshot(
        app.clone(),
        axum::http::Request::get("/version")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.starts_with("{\"major\":"), "{text}");

    // A parameter given twice has its first value, as Kubernetes reads it.
    let (code, v) = get(
        &app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/any/queue_depth?labelSelector=queue%3Djobs&labelSelector=queue%3Dother",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["metricLabels"]["queue"], "jobs");

    // Values cannot be watched; other methods than GET are refused, all with a Status.
    for path in [
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/any/queue_depth?watch=true",
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests_in_flight?watch=1",
    ] {
        let (code, v) = get(&app, path).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{path}: {v}");
        assert_eq!(v["reason"], "MethodNotAllowed", "{v}");
        assert!(v["message"].as_str().unwrap().starts_with("watch is not supported"), "{v}");
    }
    let (code, _) = get(
        &app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/any/queue_depth?watch=false",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    for (method, path) in [
        (
            "POST",
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/nope",
        ),
        ("DELETE", "/apis"),
        ("PUT", "/metrics"),
    ] {
        let (code, allow, v) = common::send(&app, method, path).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {v}");
        assert_eq!(allow.as_deref(), Some("GET, HEAD"));
        assert_eq!(v["kind"], "Status", "{v}");
        assert_eq!(v["reason"], "MethodNotAllowed", "{v}");
    }

    // Status errors.
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/nope",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(v["code"], 404);
    assert_eq!(v["details"]["name"], "nope");
    assert_eq!(v["details"]["kind"], "pods");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("no rule"), "{msg}");

    let (code, v) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/deployments.apps/*/http_requests_in_flight").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("served for namespaces, pods only"),
        "{v}"
    );

    let (code, v) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests_in_flight?metricLabelSelector=a%20in%20(").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["reason"], "BadRequest");

    let (code, _) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v2/namespaces/shop/pods/*/x",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // NaN is never sent.
    add(
        &backend,
        &[("__name__", "node_load"), ("node", "node-b")],
        f64::NAN,
    );
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/nodes/node-b/node_load",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(v["message"].as_str().unwrap().contains("NaN"), "{v}");

    let (_, text) = get(&app, "/metrics").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("promhpa_registry_metrics{api=\"custom\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("promhpa_dropped_values_total{metric=\"node_load\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn failed_relist_keeps_metrics() {
    let (backend, registry, app) = setup(Duration::from_secs(3600));
    seed(&backend);
    registry.relist().await;
    let before = get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await.1;

    backend.fail.store(true, Ordering::SeqCst);
    let errors = registry.relist().await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(
        get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await.1,
        before
    );
    backend.fail.store(false, Ordering::SeqCst);

    // Values for objects of a known metric need no relist.
    add(
        &backend,
        &[
            ("__name__", "http_requests_in_flight"),
            ("namespace", "blog"),
            ("pod", "b-1"),
        ],
        4.0,
    );
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/blog/pods/b-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "4");
    assert!(registry.relist().await.is_empty());
}

#[tokio::test]
async fn targeted_lookup_and_negative_cache() {
    // Long negative cache: a miss is remembered.
    let (backend, registry, app) = setup(Duration::from_secs(3600));
    registry.relist().await;
    let uri = "/apis/external.metrics.k8s.io/v1beta1/namespaces/x/queue_depth";
    assert_eq!(get(&app, uri).await.0, StatusCode::NOT_FOUND);
    add(
        &backend,
        &[("__name__", "queue_depth"), ("queue", "jobs")],
        7.0,
    );
    assert_eq!(get(&app, uri).await.0, StatusCode::NOT_FOUND);
    // The next relist forgets misses.
    registry.relist().await;
    assert_eq!(get(&app, uri).await.0, StatusCode::OK);

    // No negative cache: the first request after the series appear finds them.
    let (backend, registry, app) = setup(Duration::ZERO);
    registry.relist().await;
    let uri = "/apis/custom.metrics.k8s.io/v1beta1/nodes/node-a/node_load";
    let (code, v) = get(&app, uri).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        v["message"].as_str().unwrap().contains("could produce it"),
        "{v}"
    );
    add(
        &backend,
        &[("__name__", "node_load"), ("node", "node-a")],
        0.5,
    );
    let (code, v) = get(&app, uri).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "500m");
}

struct NeedsClientCert;

impl RequestGuard for NeedsClientCert {
    fn check<'a>(
        &'a self,
        parts: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            match parts.extensions.get::<PeerCertificates>() {
                Some(pc) if !pc.chain().is_empty() => Ok(()),
                _ => Err(ApiError::Forbidden(
                    "a client certificate is required".into(),
                )),
            }
        })
    }
}

/// The seeded rules served over TLS behind [`NeedsClientCert`], with self-metrics in
/// `metrics`, on a free port.
struct GuardedServer {
    pki: promhpa_test_support::TestPki,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl GuardedServer {
    async fn start(metrics: Arc<SelfMetrics>) -> GuardedServer {
        GuardedServer::start_with(
            metrics,
            Arc::new(NeedsClientCert),
            server::ServingLimits::default(),
        )
        .await
    }

    /// As [`GuardedServer::start`], behind `guard` within `limits`.
    async fn start_with(
        metrics: Arc<SelfMetrics>,
        guard: Arc<dyn RequestGuard>,
        limits: server::ServingLimits,
    ) -> GuardedServer {
        let pki = promhpa_test_support::TestPki::generate("ca", "front-proxy").unwrap();
        let (backend, registry, _) = setup(Duration::ZERO);
        seed(&backend);
        registry.relist().await;
        let app = router(AppState {
            registry,
            lookup: Arc::new(StaticObjects::from_text(OBJECTS, "o").unwrap()),
            metrics: metrics.clone(),
            guard: Some(guard),
            coalescer: Default::default(),
            forward: None,
        });
        let resolver =
            Arc::new(server::ReloadingCert::new(&pki.server_cert, &pki.server_key).unwrap());
        let tls = server::tls_config(resolver).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve_with(
            listener,
            tls,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(5),
            limits,
            Some(metrics),
        ));
        GuardedServer {
            pki,
            base: format!("https://127.0.0.1:{port}"),
            stop,
            handle,
        }
    }

    /// A client trusting the server's CA, presenting the client certificate when asked.
    fn client(&self, with_certificate: bool) -> reqwest::Client {
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(&self.pki.ca_cert).unwrap()).unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca);
        if with_certificate {
            let mut pem = std::fs::read(&self.pki.client_cert).unwrap();
            pem.extend(std::fs::read(&self.pki.client_key).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.handle.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passes_client_certificates_to_the_guard() {
    let guarded = GuardedServer::start(Arc::new(SelfMetrics::default())).await;
    let base = guarded.base.clone();
    let anonymous = guarded.client(false);
    let resp = anonymous.get(format!("{base}/apis")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let status: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status["reason"], "Forbidden");
    // Health probes bypass the guard; their single checks, which can tell why one fails,
    // do not.
    assert_eq!(
        anonymous
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for check in ["/healthz/ping", "/livez/ping", "/readyz/metric-discovery"] {
        let resp = anonymous
            .get(format!("{base}{check}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{check}");
    }

    let with_cert = guarded.client(true);
    let resp = with_cert.get(format!("{base}/apis")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = with_cert
        .get(format!("{base}/readyz/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    guarded.stop().await;
}

/// The health probes answer any method, without credentials, as the generic API server's
/// health handlers do (they never look at the method).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_answer_any_method() {
    let guarded = GuardedServer::start(Arc::new(SelfMetrics::default())).await;
    let base = guarded.base.clone();
    let anonymous = guarded.client(false);
    for path in ["/healthz", "/livez", "/readyz"] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let resp = anonymous
                .request(method.clone(), format!("{base}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method} {path}");
            assert_eq!(resp.text().await.unwrap(), "ok", "{method} {path}");
        }
        let resp = anonymous
            .post(format!("{base}{path}?verbose"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "POST {path}?verbose");
        let text = resp.text().await.unwrap();
        assert!(
            text.starts_with("[+]ping ok\n"),
            "POST {path}?verbose: {text}"
        );
        let resp = anonymous
            .head(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "HEAD {path}");
        assert_eq!(resp.text().await.unwrap(), "", "HEAD {path}");
    }
    // A body is not read, as Go's health handlers do not read it.
    let resp = anonymous
        .post(format!("{base}/healthz"))
        .body("{\"any\": \"thing\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /healthz with a body");
    assert_eq!(resp.text().await.unwrap(), "ok");
    // Other paths keep their methods and their guard.
    let resp = anonymous.post(format!("{base}/apis")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
}

/// [`NeedsClientCert`], but a request for the metric `stall` is held in the guard (after
/// saying so) until its time is up.
struct StallsOneMetric {
    held: Arc<tokio::sync::Notify>,
}

impl RequestGuard for StallsOneMetric {
    fn check<'a>(
        &'a self,
        parts: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if parts.uri.path().ends_with("/stall") {
                self.held.notify_one();
                std::future::pending::<()>().await;
            }
            NeedsClientCert.check(parts).await
        })
    }
}

/// `apiserver_request_total` and `apiserver_request_duration_seconds` count the requests of
/// the metrics APIs' value routes and of the health endpoints under the labels
/// prometheus-adapter's routes give them, whatever the path's spelling; requests the guard
/// refuses and paths no route serves (discovery, `/metrics`, an API without rules) are not
/// counted. A request past the in-flight limit is counted as a 429 without a duration, one
/// out of time as a 504 with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_servers_request_metrics_count_what_the_routes_serve() {
    let metrics = Arc::new(SelfMetrics::default());
    let held = Arc::new(tokio::sync::Notify::new());
    let limits = server::ServingLimits {
        max_requests_inflight: 1,
        request_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let guard = Arc::new(StallsOneMetric { held: held.clone() });
    let guarded = GuardedServer::start_with(metrics.clone(), guard, limits).await;
    let base = guarded.base.clone();
    let client = guarded.client(true);
    // The answer is read whole, so that its in-flight seat is free for the next request.
    let code = |client: &reqwest::Client, path: &str| {
        let request = client.get(format!("{base}{path}")).send();
        async move {
            let resp = request.await.unwrap();
            let code = resp.status().as_u16();
            resp.bytes().await.unwrap();
            code
        }
    };
    let custom = "/apis/custom.metrics.k8s.io";
    let pods = format!("{custom}/v1beta2/namespaces/shop/pods/*/http_requests_in_flight");
    assert_eq!(code(&guarded.client(false), &pods).await, 403);
    for (path, expected) in [
        (pods.clone(), 200),
        (
            format!("{custom}/v1beta2/namespaces/shop/pods/%2A/http_requests_in_flight?labelSelector=app%3Dweb"),
            200,
        ),
        (format!("{custom}/v1beta1/nodes/node-a/node_load"), 200),
        (format!("{custom}/v1beta1/namespaces/shop/pods/*/nope"), 404),
        (format!("{custom}/v1beta1/namespaces/shop/pods/*/log"), 404),
        (
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth".into(),
            200,
        ),
        (
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth?watch=true".into(),
            405,
        ),
        ("/healthz".into(), 200),
        ("/readyz".into(), 200),
        ("/apis".into(), 200),
        (format!("{custom}/v1beta1"), 200),
        (format!("{custom}/v1alpha1/nodes/node-a/node_load"), 404),
        (format!("{custom}/v1beta1/nodes/node-a"), 404),
        ("/apis/metrics.k8s.io/v1beta1/nodes".into(), 404),
        ("/metrics".into(), 200),
        ("/version".into(), 200),
    ] {
        assert_eq!(code(&client, &path).await, expected, "{path}");
    }
    // The health endpoints answer any method; a HEAD counts as a GET, other methods are
    // not counted.
    let head = client.head(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let post = client.post(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(post.status(), 200);
    let stalled = {
        let request = client
            .get(format!(
                "{base}{custom}/v1beta1/namespaces/shop/pods/web-1/stall"
            ))
            .send();
        tokio::spawn(async move { request.await.unwrap().status().as_u16() })
    };
    held.notified().await;
    assert_eq!(
        code(
            &client,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth"
        )
        .await,
        429
    );
    assert_eq!(stalled.await.unwrap(), 504);

    let text = metrics.render();
    let counted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .collect();
    let custom = |code: u16, verb: &str, scope: &str, version: &str| {
        format!("apiserver_request_total{{code=\"{code}\",component=\"custom-metrics\",dry_run=\"\",group=\"custom.metrics.k8s.io\",resource=\"*\",scope=\"{scope}\",subresource=\"*\",verb=\"{verb}\",version=\"{version}\"}}")
    };
    let external = |code: u16, verb: &str| {
        format!("apiserver_request_total{{code=\"{code}\",component=\"external-metrics\",dry_run=\"\",group=\"external.metrics.k8s.io\",resource=\"*\",scope=\"cluster\",subresource=\"*\",verb=\"{verb}\",version=\"v1beta1\"}}")
    };
    let health = |path: &str| {
        format!("apiserver_request_total{{code=\"200\",component=\"\",dry_run=\"\",group=\"\",resource=\"\",scope=\"\",subresource=\"{path}\",verb=\"GET\",version=\"\"}}")
    };
    let expected = [
        format!("{} 1", health("/healthz")),
        format!("{} 2", health("/readyz")),
        format!("{} 1", custom(200, "LIST", "cluster", "v1beta1")),
        format!("{} 1", custom(404, "GET", "resource", "v1beta1")),
        format!("{} 1", custom(504, "GET", "resource", "v1beta1")),
        format!("{} 1", custom(404, "CONNECT", "resource", "v1beta1")),
        format!("{} 2", custom(200, "GET", "resource", "v1beta2")),
        format!("{} 1", external(200, "LIST")),
        format!("{} 1", external(429, "LIST")),
        format!("{} 1", external(405, "WATCH")),
    ];
    let mut sorted_counted = counted.clone();
    sorted_counted.sort();
    let mut sorted_expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    sorted_expected.sort();
    assert_eq!(sorted_counted, sorted_expected, "{text}");
    // Every request counted but the 429 is timed; the one out of time took its 500 ms.
    let timed = |labels: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix("apiserver_request_duration_seconds_count{")
                    .and_then(|l| l.strip_prefix(labels))
            })
            .unwrap_or_else(|| panic!("no duration for {labels} in\n{text}"))
            .to_string()
    };
    let external_list = "component=\"external-metrics\",dry_run=\"\",group=\"external.metrics.k8s.io\",resource=\"*\",scope=\"cluster\",subresource=\"*\",verb=\"LIST\",version=\"v1beta1\"}";
    assert_eq!(timed(external_list), " 1");
    let namespaced = "component=\"custom-metrics\",dry_run=\"\",group=\"custom.metrics.k8s.io\",resource=\"*\",scope=\"resource\",subresource=\"*\",verb=\"GET\",version=\"v1beta1\"}";
    assert_eq!(timed(namespaced), " 2");
    assert!(text.contains(&format!(
        "apiserver_request_duration_seconds_bucket{{{},le=\"0.4\"}} 1",
        namespaced.trim_end_matches('}')
    )));
    // The in-flight limit's busiest second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = metrics.render();
    assert!(
        text.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 0\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("apiserver_current_inflight_requests{request_kind=\"readOnly\"} ")),
        "{text}"
    );

    guarded.stop().await;
}

/// The count of requests timed in `stage`, read from a `/metrics` text.
fn stage_count(text: &str, stage: &str) -> u64 {
    let prefix = format!("promhpa_request_stage_duration_seconds_count{{stage=\"{stage}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no count for stage {stage} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_stage_of_a_metric_request_is_timed() {
    let guarded = GuardedServer::start(Arc::new(SelfMetrics::default())).await;
    let client = guarded.client(true);
    let base = guarded.base.clone();
    let scrape = || async {
        let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let before = scrape().await;
    assert!(stage_count(&before, "tls_handshake") >= 1, "{before}");
    for path in [
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=app%3Dweb",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
    ] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let after = scrape().await;
    let added = |stage: &str| stage_count(&after, stage) - stage_count(&before, stage);
    // Both requests pass every stage but the object lookup, which only the selector needs;
    // the embedded backend has nothing to decode.
    for stage in ["route", "render", "backend", "encode"] {
        assert_eq!(added(stage), 2, "{stage}:\n{after}");
    }
    assert_eq!(added("object_lookup"), 1, "{after}");
    assert_eq!(added("decode"), 0, "{after}");
    // The two requests and the second read of /metrics were authorized.
    assert!(added("auth") >= 2, "{after}");
    // One connection, kept alive.
    assert_eq!(added("tls_handshake"), 0, "{after}");

    guarded.stop().await;
}

const PRECEDENCE_RULES: &str = r#"
rules:
# generic: every series with namespace and pod labels but queues, summed
- seriesQuery: '{namespace!="",pod!="",__name__!~"queue_.*"}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
# the team's own rule for the same series and name: the later rule serves it
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>} * 1000)'
# loads as in prometheus-adapter but cannot serve: no metricsQuery
- seriesQuery: 'queue_length{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
# broken and later than the generic rule: it does not take node_load_x away from it
- seriesQuery: 'node_load_x{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>} by (<<.GroupBy>>)'
"#;

/// The router over `rules` (YAML), the embedded evaluator (empty) and [`OBJECTS`].
fn embedded_app(
    rules: &str,
) -> (
    Arc<EmbeddedBackend>,
    Arc<Registry>,
    axum::Router,
    Arc<SelfMetrics>,
) {
    let backend = Arc::new(EmbeddedBackend::default());
    let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let rules = Arc::new(RuleSet::from_yaml(rules, "rules").unwrap());
    let registry = Arc::new(Registry::new(
        rules,
        backend.clone(),
        lookup.clone(),
        metrics.clone(),
        Duration::from_secs(600),
    ));
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics: metrics.clone(),
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    (backend, registry, app, metrics)
}

#[tokio::test]
async fn later_rules_win_and_broken_rules_are_named() {
    let (backend, registry, app, metrics) = embedded_app(PRECEDENCE_RULES);
    let broken = &registry.rules().broken;
    assert_eq!(broken.len(), 2, "{broken:?}");
    for (name, v) in [
        ("http_requests_in_flight", 2.0),
        ("queue_length", 5.0),
        ("node_load_x", 7.0),
    ] {
        backend
            .append(
                &Labels::from_pairs([("__name__", name), ("namespace", "shop"), ("pod", "web-1")]),
                now_ms() - 1000,
                v,
            )
            .unwrap();
    }
    assert!(registry.relist().await.is_empty());
    let base = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1";

    // the later rule's query: max(... * 1000)
    let (code, body) = get(&app, &format!("{base}/http_requests_in_flight")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["value"], "2k", "{body}");

    // a broken rule's metric: 503 naming the rule and the reason
    let (code, body) = get(&app, &format!("{base}/queue_length")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("rule rules[2] is broken: metricsQuery: missing metricsQuery"),
        "{msg}"
    );

    // a broken later rule does not take a metric away from a working earlier one
    let (code, body) = get(&app, &format!("{base}/node_load_x")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["value"], "7", "{body}");

    let text = metrics.render();
    assert!(text.contains("\npromhpa_rules_broken 2\n"), "{text}");
    assert!(
        text.contains("promhpa_rule_broken{rule=\"rules[2]\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("promhpa_rule_broken{rule=\"rules[3]\"} 1"),
        "{text}"
    );
}

/// Object lookup whose API discovery learns about `widgets.example.com` only once the
/// CRD is "installed".
struct LateCrd {
    objects: StaticObjects,
    installed: AtomicBool,
}

impl promhpa_core::lookup::ObjectLookup for LateCrd {
    fn resolve<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<
        'a,
        Result<promhpa_core::lookup::ResourceMapping, promhpa_core::lookup::LookupError>,
    > {
        Box::pin(async move {
            if resource.contains("widget") && !self.installed.load(Ordering::SeqCst) {
                return Err(promhpa_core::lookup::LookupError::UnknownResource(
                    resource.to_string(),
                ));
            }
            self.objects.resolve_sync(resource)
        })
    }

    fn names<'a>(
        &'a self,
        gr: &'a promhpa_core::lookup::GroupResource,
        namespace: Option<&'a str>,
        selector: &'a promhpa_core::selector::LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, promhpa_core::lookup::LookupError>> {
        Box::pin(async move { Ok(self.objects.names_sync(gr, namespace, selector)) })
    }

    fn running_pods<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a promhpa_core::selector::LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<String>, promhpa_core::lookup::LookupError>> {
        Box::pin(async move { Ok(self.objects.running_pods_sync(namespace, selector)) })
    }
}

#[tokio::test]
async fn template_labels_serve_custom_resources_once_discovery_knows_them() {
    let backend = Arc::new(EmbeddedBackend::default());
    let lookup = Arc::new(LateCrd {
        objects: StaticObjects::from_text(
            "- {apiVersion: example.com/v1, kind: Widget, metadata: {name: w1, namespace: shop}}\n",
            "objects",
        )
        .unwrap(),
        installed: AtomicBool::new(false),
    });
    let rules = Arc::new(
        RuleSet::from_yaml(
            "rules:\n- seriesQuery: 'queue_depth{namespace!=\"\",widget!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'\n",
            "rules",
        )
        .unwrap(),
    );
    let metrics = Arc::new(SelfMetrics::default());
    let registry = Arc::new(Registry::new(
        rules,
        backend.clone(),
        lookup.clone(),
        metrics.clone(),
        Duration::from_secs(600),
    ));
    let app = router(AppState {
        registry: registry.clone(),
        lookup: lookup.clone(),
        metrics,
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    backend
        .append(
            &Labels::from_pairs([
                ("__name__", "queue_depth"),
                ("namespace", "shop"),
                ("widget", "w1"),
            ]),
            now_ms() - 1000,
            4.0,
        )
        .unwrap();
    let widgets = (
        promhpa_core::lookup::GroupResource::new("example.com", "widgets"),
        "queue_depth".to_string(),
    );
    assert!(registry.relist().await.is_empty());
    assert!(!registry.snapshot().custom.contains_key(&widgets));

    // the CRD is installed after promhpa started: the next relist serves it
    lookup.installed.store(true, Ordering::SeqCst);
    assert!(registry.relist().await.is_empty());
    assert!(registry.snapshot().custom.contains_key(&widgets));
    let (code, body) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/widgets.example.com/w1/queue_depth",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["value"], "4", "{body}");
    assert_eq!(
        body["items"][0]["describedObject"]["kind"], "Widget",
        "{body}"
    );
}

#[tokio::test]
async fn rules_with_the_same_series_query_share_one_fetch_per_relist() {
    // The chart's three generic rules share one seriesQuery; here it is spelled three ways.
    let rules = r#"
rules:
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: [{isNot: '.*_total$'}]
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: '{__name__!~"^container_.*", namespace!=""}'
  seriesFilters: [{is: '.*_total$'}]
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)_total$', as: '${1}_per_second'}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)'
- seriesQuery: "{namespace!='',__name__!~'^container_.*'}"
  resources: {template: '<<.Resource>>'}
  name: {matches: '^(.*)$', as: '${1}_max'}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#;
    let backend = Arc::new(Switchable::default());
    for (name, pod) in [("jobs", "web-1"), ("requests_total", "web-2")] {
        backend
            .inner
            .append(
                &Labels::from_pairs([("__name__", name), ("namespace", "shop"), ("pod", pod)]),
                now_ms() - 1000,
                1.0,
            )
            .unwrap();
    }
    let rules = Arc::new(RuleSet::from_yaml(rules, "rules").unwrap());
    assert_eq!(rules.custom[0].series_key(), rules.custom[1].series_key());
    assert_eq!(rules.custom[0].series_key(), rules.custom[2].series_key());
    let registry = Registry::new(
        rules,
        backend.clone(),
        Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap()),
        Arc::new(SelfMetrics::default()),
        Duration::from_secs(600),
    );
    assert!(registry.relist().await.is_empty());
    // one fetch for the three custom rules, one for the external rule
    assert_eq!(backend.series_calls.load(Ordering::SeqCst), 2);
    let snap = registry.snapshot();
    let names: Vec<&str> = snap.custom.keys().map(|(_, m)| m.as_str()).collect();
    for want in [
        "jobs",
        "requests_per_second",
        "jobs_max",
        "requests_total_max",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(registry.relist().await.is_empty());
    assert_eq!(backend.series_calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_metric_asked_for_before_it_exists_is_served_on_the_next_request_and_misses_stay_cheap() {
    let rules = r#"
rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'other_metric{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
"#;
    let (backend, registry, app) = switchable_app(rules);
    registry.relist().await;
    let after_relist = backend.series_calls.load(Ordering::SeqCst);
    let uri =
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_requests_in_flight";

    // A flood of requests for the name while it does not exist: one targeted lookup (of the
    // one rule that can serve it), the rest answered from the remembered miss.
    for _ in 0..200 {
        assert_eq!(get(&app, uri).await.0, StatusCode::NOT_FOUND);
    }
    let flood = backend.series_calls.load(Ordering::SeqCst) - after_relist;
    assert!(flood <= 2, "{flood} series lookups for one missing name");

    // The series appears; a client asking once a second gets it on its next request.
    web_1_series(&backend, "http_requests_in_flight", 3.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, body) = get(&app, uri).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["value"], "3");
}

/// A rule whose `seriesQuery` names no metric could produce any name, so every unknown name
/// asks it again; its answer then stands for all names for a while: a flood of distinct
/// names costs the backend a bounded number of lookups, and the registry no memory per name.
#[tokio::test]
async fn a_flood_of_distinct_unknown_names_costs_each_rule_a_bounded_number_of_lookups() {
    let rules = r#"
rules:
- seriesQuery: '{__name__=~"^http_.*",namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
"#;
    let (backend, registry, app) = switchable_app(rules);
    registry.relist().await;
    let after_relist = backend.series_calls.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 0..300 {
        let uri =
            format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/nosuch_{i}");
        assert_eq!(get(&app, &uri).await.0, StatusCode::NOT_FOUND);
    }
    let lookups = backend.series_calls.load(Ordering::SeqCst) - after_relist;
    // One lookup, then at most one per 500 ms while the flood lasts.
    let allowed = 1 + (started.elapsed().as_millis() / 500) as usize;
    assert!(
        lookups <= allowed,
        "{lookups} series lookups for 300 unknown names (at most {allowed})"
    );

    // A backend slower than the 0.5 s a lookup stands for: the requests that queued behind
    // one lookup are answered by it, not each the cause of another.
    backend.series_delay_ms.store(800, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = backend.series_calls.load(Ordering::SeqCst);
    let queued: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let uri = format!(
                    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/slow_{i}"
                );
                get(&app, &uri).await.0
            })
        })
        .collect();
    for q in queued {
        assert_eq!(q.await.unwrap(), StatusCode::NOT_FOUND);
    }
    let lookups = backend.series_calls.load(Ordering::SeqCst) - before;
    assert_eq!(
        lookups, 1,
        "{lookups} series lookups for 20 requests queued behind one"
    );
    backend.series_delay_ms.store(0, Ordering::SeqCst);

    // A name that appears afterwards is still found by the next lookup.
    web_1_series(&backend, "http_late", 3.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, body) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_late",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_debug_view_shows_each_rules_discovery_and_the_promql_of_a_path() {
    let (backend, registry, app) = setup(Duration::from_secs(3600));
    seed(&backend);
    registry.relist().await;
    let (code, v) = get(&app, "/debug/promhpa/rules").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let first = &v["rules"][0];
    assert_eq!(first["path"], "rules[0]");
    assert_eq!(first["metrics"][1], "pods/http_requests_in_flight", "{v}");
    assert!(first["lastSuccess"].as_str().unwrap().ends_with('Z'), "{v}");
    assert!(first.get("lastError").is_none(), "{v}");
    assert_eq!(v["externalRules"][0]["metrics"][0], "queue_depth", "{v}");

    // A failing relist is shown per rule, with its error; the metrics are kept.
    backend.fail.store(true, Ordering::SeqCst);
    registry.relist().await;
    backend.fail.store(false, Ordering::SeqCst);
    let (_, v) = get(&app, "/debug/promhpa/rules").await;
    let first = &v["rules"][0];
    assert!(
        first["lastError"]
            .as_str()
            .unwrap()
            .starts_with("rules[0]: "),
        "{v}"
    );
    assert_eq!(first["metrics"][1], "pods/http_requests_in_flight", "{v}");

    // The PromQL of a request, with the objects it names, without querying.
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=app%3Dweb";
    let enc: String = path
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (code, v) = get(&app, &format!("/debug/promhpa/query?path={enc}")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["rule"], "rules[0]");
    assert_eq!(v["objects"], serde_json::json!(["web-1", "web-2"]));
    let promql = v["promql"].as_str().unwrap();
    assert!(
        promql.starts_with("sum by (pod) (http_requests_in_flight{"),
        "{promql}"
    );
    assert!(
        promql.contains("namespace=\"shop\"") && promql.contains("web-1|web-2"),
        "{promql}"
    );
    let (code, v) = get(
        &app,
        "/debug/promhpa/query?path=%2Fapis%2Fexternal.metrics.k8s.io%2Fv1beta1%2Fnamespaces%2Fshop%2Fqueue_depth",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["rule"], "externalRules[0]");
    let (code, v) = get(&app, "/debug/promhpa/query?path=%2Fapis%2Fcustom.metrics.k8s.io%2Fv1beta1%2Fnamespaces%2Fshop%2Fpods%2F*%2Fnope").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, _) = get(&app, "/debug/promhpa/query").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_debug_view_is_behind_the_guard() {
    let (backend, registry, _) = setup(Duration::ZERO);
    seed(&backend);
    registry.relist().await;
    let app = router(AppState {
        registry: registry.clone(),
        lookup: Arc::new(StaticObjects::from_text(OBJECTS, "o").unwrap()),
        metrics: Arc::new(SelfMetrics::default()),
        guard: Some(Arc::new(NeedsClientCert)),
        coalescer: Default::default(),
        forward: None,
    });
    for path in ["/debug/promhpa/rules", "/debug/promhpa/query?path=%2Fapis"] {
        let (code, v) = get(&app, path).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{path}: {v}");
    }
}

/// A running server over the seeded test registry, with the certificate of `pki` and the
/// TLS settings `tls`, set up further by `configure`: its port, what stops it, and its task.
async fn start_server(
    pki: &promhpa_test_support::TestPki,
    tls: server::TlsOptions,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (backend, registry, _) = setup(Duration::ZERO);
    seed(&backend);
    let resolver = Arc::new(server::ReloadingCert::new(&pki.server_cert, &pki.server_key).unwrap());
    let tls = server::tls_config_with(resolver, &tls.resolve().unwrap()).unwrap();
    let builder = ServerBuilder::new(
        registry,
        Arc::new(StaticObjects::from_text(OBJECTS, "o").unwrap()),
        Arc::new(SelfMetrics::default()),
        tls,
    );
    let server = configure(builder)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    (port, tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_server_relists_by_itself_serves_its_extra_routes_and_stops() {
    let pki = promhpa_test_support::TestPki::generate("ca", "front-proxy").unwrap();
    let (port, tx, handle) = start_server(&pki, Default::default(), |b| {
        b.guard(Some(Arc::new(NeedsClientCert)))
            .relist_interval(Duration::from_millis(100))
            .shutdown_grace_period(Duration::from_secs(5))
            .merge(axum::Router::new().route("/extra", axum::routing::get(|| async { "extra" })))
    })
    .await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let anonymous = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    // The guard stands in front of the metrics APIs.
    let resp = anonymous.get(format!("{base}/apis")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let extra = anonymous.get(format!("{base}/extra")).send().await.unwrap();
    assert_eq!(extra.text().await.unwrap(), "extra");

    let mut pem = std::fs::read(&pki.client_cert).unwrap();
    pem.extend(std::fs::read(&pki.client_key).unwrap());
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    // Nobody relisted: the server did, and is ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client.get(format!("{base}/readyz")).send().await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .get(format!(
            "{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    tx.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_starts_its_handshake_does_not_hold_up_shutdown() {
    let pki = promhpa_test_support::TestPki::generate("ca", "front-proxy").unwrap();
    // Neither the handshake timeout nor the grace period would end the wait in this test.
    let an_hour = Duration::from_secs(3600);
    let (port, tx, handle) = start_server(&pki, Default::default(), |b| {
        b.limits(server::ServingLimits {
            tls_handshake_timeout: an_hour,
            ..Default::default()
        })
        .shutdown_grace_period(an_hour)
    })
    .await;
    // A client that connects and says nothing (a port scan, a TCP health check).
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Connections are accepted in order: once a later one is answered, the silent one has
    // been accepted and is waiting for its handshake.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resp = client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    tx.send(()).unwrap();
    // The server closes the silent connection and returns, long before either hour is up.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("the silent connection was kept open after shutdown");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("serve waited for a connection that never started")
        .unwrap();
}

/// `--disable-http2`: ALPN offers HTTP/1.1 only, so a client able to speak HTTP/2 gets
/// HTTP/1.1; by default it gets HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_offered_unless_disabled() {
    let pki = promhpa_test_support::TestPki::generate("ca", "front-proxy").unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    for (disable_http2, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let tls = server::TlsOptions {
            disable_http2,
            ..Default::default()
        };
        let (port, tx, handle) = start_server(&pki, tls, |b| b).await;
        let resp = client
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version, "disable_http2={disable_http2}");
        tx.send(()).unwrap();
        handle.await.unwrap();
    }
}

/// The code and `Status` message of a request that fails.
async fn failure(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let (code, body) = get(app, path).await;
    let message = body["message"].as_str().unwrap_or_default().to_string();
    (code, message)
}

/// A rule that maps pods but no label to namespaces (as copied from many guides): discovery
/// lists its metric as prometheus-adapter does (namespaced, since pods are), a request in a
/// namespace is a 404 saying what the rule lacks, as the adapter cannot build that query
/// either, and the request without a namespace is answered.
#[tokio::test]
async fn a_rule_without_a_namespace_label_answers_not_found_in_a_namespace() {
    let (backend, registry, app, _) = embedded_app(
        r#"
rules:
- seriesQuery: 'http_requests_in_flight{endpoint="/predict"}'
  resources:
    overrides:
      pod: {resource: "pod"}
  name: {as: "http_requests_in_flight"}
  metricsQuery: 'sum by (pod) (<<.Series>>{<<.LabelMatchers>>})'
"#,
    );
    backend
        .append(
            &Labels::from_pairs([
                ("__name__", "http_requests_in_flight"),
                ("endpoint", "/predict"),
                ("pod", "web-1"),
            ]),
            now_ms() - 1000,
            3.0,
        )
        .unwrap();
    assert!(registry.relist().await.is_empty());

    let (code, list) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["resources"][0]["name"], "pods/http_requests_in_flight");
    assert_eq!(list["resources"][0]["namespaced"], true);

    let (code, body) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["reason"], "NotFound", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rules[0] has no label for resource \"namespaces\"")
            && message.contains("namespace: {resource: namespace}"),
        "{message}"
    );

    let (code, body) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/pods/web-1/http_requests_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["value"], "3", "{body}");
}

/// A metric name one typo away from a served one: the 404 suggests it.
#[tokio::test]
async fn a_misspelt_metric_gets_a_suggestion() {
    let (backend, registry, app) = setup(Duration::ZERO);
    seed(&backend);
    assert!(registry.relist().await.is_empty());
    let (code, message) = failure(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_request_in_flight",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{message}");
    assert!(
        message.ends_with(
            "no rule in the configuration produces a metric of that name (did you mean \"http_requests_in_flight\"?)"
        ),
        "{message}"
    );
    let (_, message) = failure(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/queue_length_total",
    )
    .await;
    assert!(!message.contains("did you mean"), "{message}");
}

/// The backend is down from the start: a metric a rule could produce is unavailable (503,
/// naming why discovery failed), not unknown; once discovery succeeds it is served.
#[tokio::test]
async fn a_metric_whose_discovery_failed_is_unavailable_not_unknown() {
    let (backend, registry, app) = setup(Duration::ZERO);
    seed(&backend);
    backend.fail.store(true, Ordering::SeqCst);
    assert_eq!(registry.relist().await.len(), 3);
    let path =
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/http_requests_in_flight";
    let (code, message) = failure(&app, path).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{message}");
    assert!(
        message.contains("discovering the series of rules[0] failed")
            && message.contains("switched off"),
        "{message}"
    );
    let (code, body) = get(
        &app,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // A name no rule could produce is still unknown.
    let (code, _) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/nothing_like_it",
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    backend.fail.store(false, Ordering::SeqCst);
    assert!(registry.relist().await.is_empty());
    let (code, body) = get(&app, path).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// A value whose milli-units do not fit an int64 (the controller reads values through
/// `MilliValue`, which would make it 0 or garbage) is dropped and named as out of range, not
/// as an infinity; one just inside is served.
#[tokio::test]
async fn values_beyond_int64_milli_units_are_named_for_what_they_are() {
    let (backend, registry, app) = setup(Duration::from_secs(10));
    add(
        &backend,
        &[("__name__", "queue_depth"), ("queue", "big")],
        9e15,
    );
    add(
        &backend,
        &[("__name__", "queue_depth"), ("queue", "huge")],
        9.3e15,
    );
    registry.relist().await;
    let base = "/apis/external.metrics.k8s.io/v1beta1/namespaces/any/queue_depth";
    let (code, v) = get(&app, &format!("{base}?labelSelector=queue%3Dbig")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "9P");
    let (code, message) = failure(&app, &format!("{base}?labelSelector=queue%3Dhuge")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        message.contains("9.3e15, beyond ±9.2e15, past an int64 of milli-units"),
        "{message}"
    );
}

/// A discovery pass fetches its distinct series queries at once (as prometheus-adapter does),
/// so a slow or dead backend costs one query timeout per relist, not one per rule.
#[tokio::test]
async fn distinct_series_queries_are_fetched_at_once() {
    let rules = r#"
rules:
- seriesQuery: 'a_metric{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'b_metric{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'c_metric{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#;
    let (backend, registry, _app) = switchable_app(rules);
    web_1_series(&backend, "a_metric", 1.0);
    backend.series_delay_ms.store(200, Ordering::SeqCst);
    assert!(registry.relist().await.is_empty());
    assert_eq!(backend.series_calls.load(Ordering::SeqCst), 3);
    assert_eq!(backend.most_in_flight.load(Ordering::SeqCst), 3);
    let snap = registry.snapshot();
    assert!(snap.custom.keys().any(|(_, m)| m == "a_metric"));
}

/// A rule that returns several series for one object (no aggregation, one per container):
/// the object's value is its last series in the answer's order, as prometheus-adapter fills
/// its map; not the first.
#[tokio::test]
async fn several_series_for_one_object_give_the_last_value_as_in_the_adapter() {
    let rules = "rules:\n- seriesQuery: 'per_container{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: '<<.Series>>{<<.LabelMatchers>>}'\n";
    let (backend, registry, app) = switchable_app(rules);
    for (container, v) in [("a", 1.0), ("b", 2.0)] {
        add(
            &backend,
            &[
                ("__name__", "per_container"),
                ("namespace", "shop"),
                ("pod", "web-1"),
                ("container", container),
            ],
            v,
        );
    }
    registry.relist().await;
    for path in ["pods/web-1/per_container", "pods/*/per_container"] {
        let (code, v) = get(
            &app,
            &format!("/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/{path}"),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        assert_eq!(v["items"][0]["value"], "2", "{path}: {v}");
    }
}

/// Pods asked for across namespaces, of a rule whose series carry their namespace: 404, as
/// prometheus-adapter answers, rather than pods of one name from several namespaces merged.
#[tokio::test]
async fn namespaced_objects_are_not_served_across_namespaces() {
    let (backend, registry, app) = switchable_app(RULES);
    web_1_series(&backend, "http_requests_in_flight", 3.0);
    registry.relist().await;
    let base = "/apis/custom.metrics.k8s.io/v1beta1";
    let (code, _) = get(
        &app,
        &format!("{base}/namespaces/shop/pods/web-1/http_requests_in_flight"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    for path in [
        "pods/web-1/http_requests_in_flight",
        "pods/*/http_requests_in_flight",
    ] {
        let (code, message) = failure(&app, &format!("{base}/{path}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}: {message}");
        assert!(message.contains("ask for it in a namespace"), "{message}");
    }
}

/// A reload while the backend is down: the rules that did not change keep the metrics they
/// served (wherever they now sit in the file); a removed rule's are gone; a new rule serves
/// nothing until a relist succeeds.
#[tokio::test]
async fn a_reload_while_the_backend_is_down_keeps_what_unchanged_rules_served() {
    let rule = |series: &str| {
        format!("- seriesQuery: '{series}{{namespace!=\"\",pod!=\"\"}}'\n  resources: {{template: '<<.Resource>>'}}\n  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n")
    };
    let first = format!("rules:\n{}{}", rule("kept_metric"), rule("dropped_metric"));
    let (backend, registry, app) = switchable_app(&first);
    web_1_series(&backend, "kept_metric", 1.0);
    web_1_series(&backend, "dropped_metric", 2.0);
    web_1_series(&backend, "new_metric", 3.0);
    assert!(registry.relist().await.is_empty());
    backend.fail.store(true, Ordering::SeqCst);
    let second = format!("rules:\n{}{}", rule("new_metric"), rule("kept_metric"));
    let errors = registry
        .reload(RuleSet::from_yaml(&second, "rules").unwrap())
        .await
        .unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let (code, list) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["namespaces/kept_metric", "pods/kept_metric"],
        "{list}"
    );
    let (code, v) = get(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/kept_metric",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "1");
}

/// A relist that failed is tried again within seconds, not at the next interval (ten
/// minutes by default), and readiness says why it is not there yet.
#[tokio::test]
async fn a_failed_relist_is_tried_again_before_the_next_interval() {
    let (backend, registry, _app) = switchable_app(RULES);
    web_1_series(&backend, "http_requests_in_flight", 3.0);
    backend.fail.store(true, Ordering::SeqCst);
    let task = tokio::spawn(registry.clone().run(Duration::from_secs(600)));
    let start = std::time::Instant::now();
    while backend.series_calls.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "no relist");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let why = registry.readiness().err().unwrap_or_default();
    assert!(
        why.contains("has not succeeded yet") && why.contains("switched off"),
        "{why}"
    );
    backend.fail.store(false, Ordering::SeqCst);
    while !registry.is_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not retried before the ten-minute interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
}

/// Nodes are served across namespaces only: asked for in a namespace, the 404 says so and
/// where to ask instead (not to map a namespace label, which a node rule does not need).
#[tokio::test]
async fn cluster_scoped_objects_asked_for_in_a_namespace_are_pointed_to_their_path() {
    let rules = "rules:\n- seriesQuery: 'node_load1{node!=\"\"}'\n  resources: {overrides: {node: {resource: node}}}\n  name: {as: node_load}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";
    let (backend, registry, app) = switchable_app(rules);
    add(
        &backend,
        &[("__name__", "node_load1"), ("node", "node-a")],
        0.5,
    );
    registry.relist().await;
    let base = "/apis/custom.metrics.k8s.io/v1beta1";
    let (code, v) = get(&app, &format!("{base}/nodes/node-a/node_load")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["value"], "500m");
    for path in ["nodes/node-a/node_load", "nodes/*/node_load"] {
        let (code, message) = failure(&app, &format!("{base}/namespaces/shop/{path}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{message}");
        assert!(
            message.contains("nodes are cluster-scoped")
                && message.contains("/apis/custom.metrics.k8s.io/v1beta1/nodes/"),
            "{message}"
        );
    }
}

/// A reload whose discovery failed (the backend down) is followed by a relist within
/// seconds, so its new rules serve once the backend is back, not at the next interval.
#[tokio::test]
async fn a_reload_whose_discovery_failed_is_relisted_soon() {
    let rule = |series: &str| {
        format!("- seriesQuery: '{series}{{namespace!=\"\",pod!=\"\"}}'\n  resources: {{template: '<<.Resource>>'}}\n  metricsQuery: 'sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n")
    };
    let (backend, registry, app) = switchable_app(&format!("rules:\n{}", rule("old_metric")));
    web_1_series(&backend, "old_metric", 1.0);
    web_1_series(&backend, "added_metric", 2.0);
    let task = tokio::spawn(registry.clone().run(Duration::from_secs(600)));
    let start = std::time::Instant::now();
    while !registry.is_ready() {
        assert!(start.elapsed() < Duration::from_secs(10), "no first relist");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    backend.fail.store(true, Ordering::SeqCst);
    let both = format!("rules:\n{}{}", rule("old_metric"), rule("added_metric"));
    let errors = registry
        .reload(RuleSet::from_yaml(&both, "rules").unwrap())
        .await
        .unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    backend.fail.store(false, Ordering::SeqCst);
    let listed = |list: &serde_json::Value| {
        list["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "pods/added_metric"))
    };
    loop {
        let (_, list) = get(&app, "/apis/custom.metrics.k8s.io/v1beta1").await;
        if listed(&list) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not relisted before the ten-minute interval: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
}
