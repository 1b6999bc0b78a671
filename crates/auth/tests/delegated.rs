#![allow(clippy::unwrap_used)]

//! Delegated authentication and authorization against certificates from CAs generated here
//! and TokenReview/SubjectAccessReview answers as a Kubernetes API server returns them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use promhpa_auth::authn::{AuthnSources, TokenReviewConfig};
use promhpa_auth::configmap::sources_from_configmap;
use promhpa_auth::review::{SUBJECT_ACCESS_REVIEW_PATH, TOKEN_REVIEW_PATH};
use promhpa_auth::{
    AuthError, Authenticator, CaBundle, DelegatingAuthenticator, DelegatingAuthorizer, ManualClock,
    RequestAuth, RequestHeaderConfig, ReviewClient,
};
use promhpa_core::tls::PeerCertificates;
use promhpa_core::BoxFuture;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn bundle(&self, name: &str) -> CaBundle {
        CaBundle::from_pem(name, self.cert.pem().as_bytes()).unwrap()
    }

    fn client(&self, cn: &str, orgs: &[&str]) -> PeerCertificates {
        self.client_valid_for(cn, orgs, 365)
    }

    fn client_valid_for(&self, cn: &str, orgs: &[&str], days: i64) -> PeerCertificates {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = rcgen::date_time_ymd(2026, 1, 1);
        params.not_before = now;
        params.not_after = now + time::Duration::days(days);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        PeerCertificates::new(vec![cert.der().to_vec()])
    }
}

/// 2026-06-01, inside the validity of the test certificates.
fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// Answers review requests with recorded API server responses, and remembers the requests.
#[derive(Default)]
struct Recorded {
    answers: Mutex<HashMap<String, Vec<u8>>>,
    requests: Mutex<Vec<(String, serde_json::Value)>>,
    /// How long each answer takes, in milliseconds.
    delay_ms: std::sync::atomic::AtomicU64,
}

impl Recorded {
    fn answering(path: &str, fixture: &str) -> Arc<Recorded> {
        let r = Arc::new(Recorded::default());
        r.answer(path, fixture);
        r
    }

    fn answer(&self, path: &str, fixture: &str) {
        let file = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&file).unwrap();
        self.answers.lock().unwrap().insert(path.to_string(), body);
    }

    fn calls(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn last_body(&self) -> serde_json::Value {
        self.requests.lock().unwrap().last().unwrap().1.clone()
    }
}

impl ReviewClient for Recorded {
    fn create<'a>(
        &'a self,
        path: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthError>> {
        Box::pin(async move {
            let json = serde_json::from_slice(&body).unwrap();
            self.requests.lock().unwrap().push((path.to_string(), json));
            let delay = self.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            self.answers
                .lock()
                .unwrap()
                .get(path)
                .cloned()
                .ok_or_else(|| AuthError::Transport(format!("no answer recorded for {path}")))
        })
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

struct Setup {
    front_proxy: Ca,
    client_ca: Ca,
    clock: Arc<ManualClock>,
    authn: Arc<DelegatingAuthenticator>,
}

fn setup(allowed_names: &[&str], tokens: Option<Arc<Recorded>>) -> Setup {
    let front_proxy = Ca::new("front-proxy-ca");
    let client_ca = Ca::new("kubernetes-ca");
    let clock = Arc::new(ManualClock::new(start()));
    let mut rh =
        RequestHeaderConfig::with_default_headers(front_proxy.bundle("front-proxy-ca.crt"));
    rh.allowed_names = allowed_names.iter().map(|s| s.to_string()).collect();
    rh.uid_headers = vec!["X-Remote-Uid".to_string()];
    let sources = AuthnSources {
        request_header: Some(rh),
        client_ca: Some(client_ca.bundle("ca.crt")),
    };
    let tokens = tokens.map(|client| TokenReviewConfig {
        client: client as Arc<dyn ReviewClient>,
        ttl: Duration::from_secs(10),
        audiences: Vec::new(),
    });
    let authn = Arc::new(DelegatingAuthenticator::new(sources, tokens, clock.clone()));
    Setup {
        front_proxy,
        client_ca,
        clock,
        authn,
    }
}

fn guard(s: &Setup, sar: Arc<Recorded>, allowed_ttl: u64, denied_ttl: u64) -> RequestAuth {
    let authz = DelegatingAuthorizer::new(
        sar,
        Duration::from_secs(allowed_ttl),
        Duration::from_secs(denied_ttl),
        s.clock.clone(),
    );
    RequestAuth::new(s.authn.clone(), Arc::new(authz))
}

const METRIC_PATH: &str =
    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests";

fn forged() -> HeaderMap {
    headers(&[
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
    ])
}

#[tokio::test]
async fn forged_remote_user_without_request_header_certificate_gets_no_identity() {
    let s = setup(&["front-proxy-client"], None);
    // No client certificate at all.
    assert_eq!(s.authn.authenticate(None, &forged()).await, Ok(None));

    // A certificate from the client CA: the headers are ignored, the certificate's CN counts.
    let kubelet = s
        .client_ca
        .client("system:node:worker-1", &["system:nodes"]);
    let user = s
        .authn
        .authenticate(Some(&kubelet), &forged())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "system:node:worker-1");
    assert_eq!(user.groups, vec!["system:nodes", "system:authenticated"]);

    // A certificate with the allowed CN but from a CA nobody trusts.
    let impostor = Ca::new("front-proxy-ca").client("front-proxy-client", &[]);
    let err = s
        .authn
        .authenticate(Some(&impostor), &forged())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("front-proxy-ca.crt"), "{err}");

    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json");
    let g = guard(&s, sar.clone(), 10, 10);
    for peer in [None, Some(&impostor)] {
        let rej = g
            .check(&Method::GET, METRIC_PATH, peer, &forged())
            .await
            .unwrap_err();
        assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
        assert_eq!(rej.status_json()["reason"], "Unauthorized");
        assert_eq!(rej.status_json()["code"], 401);
    }
    assert_eq!(sar.calls(), 0, "no identity, no SubjectAccessReview");
}

#[tokio::test]
async fn request_header_certificate_outside_allowed_names_is_rejected() {
    let s = setup(&["front-proxy-client"], None);
    let other = s.front_proxy.client("some-other-proxy", &[]);
    let err = s
        .authn
        .authenticate(Some(&other), &forged())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("x509: subject with cn=some-other-proxy is not in the allowed list"),
        "{err}"
    );
    let g = guard(
        &s,
        Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json"),
        10,
        10,
    );
    let rej = g
        .check(&Method::GET, METRIC_PATH, Some(&other), &forged())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn allowed_request_header_certificate_makes_headers_believed() {
    let s = setup(&["front-proxy-client"], None);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let h = headers(&[
        (
            "X-Remote-User",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ),
        ("X-Remote-Uid", "9b1f0d4c-6a2e-4f3b-8c7d-1e2f3a4b5c6d"),
        ("X-Remote-Group", "system:serviceaccounts"),
        ("X-Remote-Group", "system:serviceaccounts:kube-system"),
        (
            "X-Remote-Extra-Authentication.kubernetes.io%2fpod-name",
            "kube-controller-manager-0",
        ),
        ("X-Remote-Extra-Scopes", "a"),
        ("X-Remote-Extra-Scopes", "b"),
    ]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.name,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );
    assert_eq!(user.uid, "9b1f0d4c-6a2e-4f3b-8c7d-1e2f3a4b5c6d");
    assert_eq!(
        user.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated"
        ]
    );
    let mut extra = BTreeMap::new();
    extra.insert(
        "authentication.kubernetes.io/pod-name".to_string(),
        vec!["kube-controller-manager-0".to_string()],
    );
    extra.insert("scopes".to_string(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(user.extra, extra);

    // Without a username header the proxy certificate identifies nobody.
    assert!(!matches!(
        s.authn.authenticate(Some(&proxy), &HeaderMap::new()).await,
        Ok(Some(_))
    ));

    // An empty allowed-names list trusts every certificate of the request-header CA.
    let open = setup(&[], None);
    let any = open.front_proxy.client("whatever", &[]);
    let user = open
        .authn
        .authenticate(Some(&any), &forged())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "system:admin");
}

#[tokio::test]
async fn expired_certificates_and_ca_rotation() {
    let s = setup(&["front-proxy-client"], None);
    let short = s
        .front_proxy
        .client_valid_for("front-proxy-client", &[], 200);
    assert!(s
        .authn
        .authenticate(Some(&short), &forged())
        .await
        .unwrap()
        .is_some());
    s.clock.advance(Duration::from_secs(60 * 86400));
    assert!(
        s.authn.authenticate(Some(&short), &forged()).await.is_err(),
        "expired"
    );

    // Rotation: after the new CA is installed the old proxy certificate is no longer believed.
    let rotated = Ca::new("front-proxy-ca-2");
    let old = s.front_proxy.client("front-proxy-client", &[]);
    let new = rotated.client("front-proxy-client", &[]);
    let mut sources = (*s.authn.sources()).clone();
    if let Some(rh) = sources.request_header.as_mut() {
        rh.ca = rotated.bundle("front-proxy-ca-2.crt");
    }
    s.authn.set_sources(sources);
    assert!(s.authn.authenticate(Some(&old), &forged()).await.is_err());
    assert!(s
        .authn
        .authenticate(Some(&new), &forged())
        .await
        .unwrap()
        .is_some());
}

/// Requests that bring one new token at once share one TokenReview, as Kubernetes' cached
/// token authenticator shares them; another token gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_new_token_share_one_review() {
    let reviews = Recorded::answering(TOKEN_REVIEW_PATH, "tokenreview-authenticated.json");
    reviews
        .delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let s = setup(&[], Some(reviews.clone()));
    let mut tasks = Vec::new();
    for token in ["a-token", "another-token"] {
        for _ in 0..10 {
            let authn = s.authn.clone();
            let h = headers(&[("Authorization", &format!("Bearer {token}"))]);
            tasks.push(tokio::spawn(
                async move { authn.authenticate(None, &h).await },
            ));
        }
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_some());
    }
    assert_eq!(reviews.calls(), 2);
}

#[tokio::test]
async fn bearer_tokens_are_reviewed_and_cached_for_the_ttl() {
    let reviews = Recorded::answering(TOKEN_REVIEW_PATH, "tokenreview-authenticated.json");
    let s = setup(&[], Some(reviews.clone()));
    let h = headers(&[(
        "Authorization",
        "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.payload.signature",
    )]);
    let user = s.authn.authenticate(None, &h).await.unwrap().unwrap();
    assert_eq!(user.name, "system:serviceaccount:monitoring:metrics-reader");
    assert_eq!(
        user.extra["authentication.kubernetes.io/node-name"],
        vec!["kind-worker"]
    );
    assert_eq!(reviews.calls(), 1);
    let body = reviews.last_body();
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(
        body["spec"]["token"],
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.payload.signature"
    );

    s.clock.advance(Duration::from_secs(9));
    assert_eq!(s.authn.authenticate(None, &h).await.unwrap().unwrap(), user);
    assert_eq!(reviews.calls(), 1, "answered from the cache within the ttl");
    s.clock.advance(Duration::from_secs(1));
    s.authn.authenticate(None, &h).await.unwrap();
    assert_eq!(reviews.calls(), 2, "asked again once the ttl passed");

    // A token the API server does not authenticate is refused, and that answer is cached too.
    reviews.answer(TOKEN_REVIEW_PATH, "tokenreview-unauthenticated.json");
    let bad = headers(&[("Authorization", "Bearer not-a-token")]);
    assert_eq!(
        s.authn.authenticate(None, &bad).await,
        Err(AuthError::InvalidBearerToken)
    );
    assert_eq!(
        s.authn.authenticate(None, &bad).await,
        Err(AuthError::InvalidBearerToken)
    );
    assert_eq!(reviews.calls(), 3);
    let g = guard(
        &s,
        Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json"),
        10,
        10,
    );
    let rej = g
        .check(&Method::GET, METRIC_PATH, None, &bad)
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
}

fn hpa_headers() -> HeaderMap {
    headers(&[
        (
            "X-Remote-User",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ),
        ("X-Remote-Uid", "9b1f0d4c-6a2e-4f3b-8c7d-1e2f3a4b5c6d"),
        ("X-Remote-Group", "system:serviceaccounts"),
        ("X-Remote-Group", "system:serviceaccounts:kube-system"),
        ("X-Remote-Extra-Scopes", "metrics"),
    ])
}

#[tokio::test]
async fn subject_access_review_carries_the_request_and_allows() {
    let s = setup(&["front-proxy-client"], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json");
    let g = guard(&s, sar.clone(), 10, 10);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let ok = g
        .check(
            &Method::GET,
            &format!("{METRIC_PATH}?labelSelector=app%3Dweb"),
            Some(&proxy),
            &hpa_headers(),
        )
        .await
        .unwrap();
    assert_eq!(
        ok.user.name,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );
    let body = reviews_spec(&sar);
    assert_eq!(
        body["resourceAttributes"],
        serde_json::json!({
            "namespace": "shop", "verb": "get", "group": "custom.metrics.k8s.io",
            "version": "v1beta1", "resource": "pods", "subresource": "http_requests", "name": "*"
        })
    );
    assert_eq!(
        body["user"],
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );
    assert_eq!(body["uid"], "9b1f0d4c-6a2e-4f3b-8c7d-1e2f3a4b5c6d");
    assert_eq!(
        body["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated"
        ])
    );
    assert_eq!(body["extra"], serde_json::json!({"scopes": ["metrics"]}));

    // External metrics: the metric is the resource.
    g.check(
        &Method::GET,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
        Some(&proxy),
        &hpa_headers(),
    )
    .await
    .unwrap();
    let body = reviews_spec(&sar);
    assert_eq!(body["resourceAttributes"]["resource"], "queue_depth");
    assert_eq!(body["resourceAttributes"]["verb"], "list");
    assert_eq!(
        body["resourceAttributes"]["group"],
        "external.metrics.k8s.io"
    );
}

fn reviews_spec(r: &Recorded) -> serde_json::Value {
    let body = r.last_body();
    assert_eq!(body["kind"], "SubjectAccessReview");
    assert_eq!(body["apiVersion"], "authorization.k8s.io/v1");
    body["spec"].clone()
}

#[tokio::test]
async fn denied_subject_access_review_gives_403() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar.clone(), 10, 10);
    let mallory = s.client_ca.client("mallory", &["tenants"]);
    let rej = g
        .check(&Method::GET, METRIC_PATH, Some(&mallory), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
    assert_eq!(
        rej.message,
        "pods.custom.metrics.k8s.io \"*\" is forbidden: User \"mallory\" cannot get resource \
         \"pods/http_requests\" in API group \"custom.metrics.k8s.io\" in the namespace \"shop\""
    );
    let status = rej.status_json();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["code"], 403);
    assert_eq!(
        status["details"],
        serde_json::json!({"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"})
    );

    // An explicit denial's reason is part of the message.
    sar.answer(SUBJECT_ACCESS_REVIEW_PATH, "sar-explicit-deny.json");
    let rej = g
        .check(&Method::GET, "/metrics", Some(&mallory), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        rej.message,
        "forbidden: User \"mallory\" cannot get path \"/metrics\": denied by webhook policy"
    );
    assert_eq!(
        reviews_spec(&sar)["nonResourceAttributes"],
        serde_json::json!({"path": "/metrics", "verb": "get"})
    );

    // A review that cannot be made is an internal error, not a silent allow.
    sar.answers.lock().unwrap().clear();
    let rej = g
        .check(
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/x/pods/*/m",
            Some(&mallory),
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn authorization_decisions_are_cached_per_ttl() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json");
    let g = guard(&s, sar.clone(), 10, 3);
    let alice = s.client_ca.client("alice", &[]);
    let check = |path: &'static str| {
        let g = &g;
        let alice = &alice;
        async move {
            g.check(&Method::GET, path, Some(alice), &HeaderMap::new())
                .await
        }
    };
    check(METRIC_PATH).await.unwrap();
    s.clock.advance(Duration::from_secs(9));
    check(METRIC_PATH).await.unwrap();
    assert_eq!(sar.calls(), 1, "allowed answer cached for 10s");
    s.clock.advance(Duration::from_secs(1));
    check(METRIC_PATH).await.unwrap();
    assert_eq!(sar.calls(), 2);

    // A different request is a different cache entry; a denial is kept for its own ttl.
    sar.answer(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let other = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/p99";
    assert!(check(other).await.is_err());
    s.clock.advance(Duration::from_secs(2));
    assert!(check(other).await.is_err());
    assert_eq!(sar.calls(), 3, "denial cached");
    sar.answer(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json");
    s.clock.advance(Duration::from_secs(1));
    assert!(check(other).await.is_ok(), "denial expired after 3s");
    assert_eq!(sar.calls(), 4);
}

#[tokio::test]
async fn masters_and_health_paths_need_no_review() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar.clone(), 10, 10);
    let admin = s.client_ca.client("kubernetes-admin", &["system:masters"]);
    g.check(&Method::GET, METRIC_PATH, Some(&admin), &HeaderMap::new())
        .await
        .unwrap();
    for path in ["/healthz", "/readyz", "/livez"] {
        let ok = g
            .check(&Method::GET, path, None, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(ok.user.name, "system:anonymous");
    }
    assert_eq!(sar.calls(), 0);
    // Other paths are not free.
    assert!(g
        .check(&Method::GET, "/healthz/extra", None, &HeaderMap::new())
        .await
        .is_err());
    // Anonymous requests, when enabled, are authorized like anyone else.
    let g = guard(&s, sar.clone(), 10, 10).with_anonymous(true);
    let rej = g
        .check(&Method::GET, METRIC_PATH, None, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
    assert_eq!(reviews_spec(&sar)["user"], "system:anonymous");
}

#[test]
fn sources_from_the_extension_apiserver_authentication_configmap() {
    let fp = Ca::new("front-proxy-ca");
    let ca = Ca::new("kubernetes-ca");
    let mut data = BTreeMap::new();
    data.insert("client-ca-file".to_string(), ca.cert.pem());
    data.insert("requestheader-client-ca-file".to_string(), fp.cert.pem());
    data.insert(
        "requestheader-allowed-names".to_string(),
        r#"["front-proxy-client"]"#.to_string(),
    );
    data.insert(
        "requestheader-username-headers".to_string(),
        r#"["X-Remote-User"]"#.to_string(),
    );
    data.insert(
        "requestheader-group-headers".to_string(),
        r#"["X-Remote-Group"]"#.to_string(),
    );
    data.insert(
        "requestheader-extra-headers-prefix".to_string(),
        r#"["X-Remote-Extra-"]"#.to_string(),
    );
    let sources = sources_from_configmap(&data).unwrap();
    let rh = sources.request_header.unwrap();
    assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
    assert_eq!(rh.extra_headers_prefixes, vec!["X-Remote-Extra-"]);
    assert!(rh.uid_headers.is_empty());
    let subject = rh
        .ca
        .verify_client(fp.client("front-proxy-client", &[]).chain(), start())
        .unwrap();
    assert_eq!(subject.common_name, "front-proxy-client");
    assert_eq!(sources.client_ca.unwrap().len(), 1);

    data.insert(
        "requestheader-allowed-names".to_string(),
        "front-proxy-client".to_string(),
    );
    assert!(matches!(
        sources_from_configmap(&data),
        Err(AuthError::ConfigMap(_))
    ));
    data.insert(
        "client-ca-file".to_string(),
        "-----BEGIN CERTIFICATE-----\nnope\n".to_string(),
    );
    assert!(sources_from_configmap(&data).is_err());
}

#[tokio::test]
async fn sources_from_flags_read_the_ca_files() {
    let fp = Ca::new("front-proxy-ca");
    let ca = Ca::new("kubernetes-ca");
    let dir = std::env::temp_dir().join(format!("promhpa-authn-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("front-proxy-ca.crt"), fp.cert.pem()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert.pem()).unwrap();
    let flags = promhpa_auth::AuthnFlags {
        client_ca_file: Some(dir.join("ca.crt")),
        requestheader_client_ca_file: Some(dir.join("front-proxy-ca.crt")),
        requestheader_allowed_names: vec!["front-proxy-client".into()],
        ..promhpa_auth::AuthnFlags::default()
    };
    let sources = flags.load().unwrap();
    let authn = DelegatingAuthenticator::new(sources, None, Arc::new(ManualClock::new(start())));
    let proxy = fp.client("front-proxy-client", &[]);
    // Default header names are Kubernetes': X-Remote-User / X-Remote-Group.
    let user = authn
        .authenticate(Some(&proxy), &forged())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "system:admin");
    assert_eq!(user.groups, vec!["system:masters", "system:authenticated"]);
    let bob = ca.client("bob", &["devs"]);
    let user = authn
        .authenticate(Some(&bob), &HeaderMap::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "bob");

    let missing = promhpa_auth::AuthnFlags {
        client_ca_file: Some(dir.join("nope.crt")),
        ..promhpa_auth::AuthnFlags::default()
    };
    let err = missing.load().unwrap_err();
    assert!(err.to_string().contains("nope.crt"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn always_allowed_paths_cover_only_non_resource_requests() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar.clone(), 10, 10)
        .with_always_allow_paths(vec!["/apis/*".to_string(), "/openapi/*".to_string()]);
    // Discovery under the prefix is free, as Kubernetes' path authorizer allows it.
    for path in [
        "/apis/custom.metrics.k8s.io",
        "/apis/custom.metrics.k8s.io/v1beta1",
        "/openapi/v2",
    ] {
        assert!(
            g.check(&Method::GET, path, None, &HeaderMap::new())
                .await
                .is_ok(),
            "{path}"
        );
    }
    // A metric under the same prefix is a resource request and still needs an identity and
    // an allowing review.
    let rej = g
        .check(&Method::GET, METRIC_PATH, None, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
    let mallory = s.client_ca.client("mallory", &[]);
    let rej = g
        .check(&Method::GET, METRIC_PATH, Some(&mallory), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
    assert_eq!(sar.calls(), 1);
}

#[tokio::test]
async fn forbidden_non_resource_status_has_empty_details() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar, 10, 10);
    let mallory = s.client_ca.client("mallory", &[]);
    let rej = g
        .check(
            &Method::GET,
            "/openapi/v2",
            Some(&mallory),
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    // The fields and values kube-apiserver answers a denied non-resource path with.
    assert_eq!(
        serde_json::to_string(&rej.status_json()).unwrap(),
        r#"{"apiVersion":"v1","code":403,"details":{},"kind":"Status","message":"forbidden: User \"mallory\" cannot get path \"/openapi/v2\"","metadata":{},"reason":"Forbidden","status":"Failure"}"#
    );
    let rej = g
        .check(&Method::GET, METRIC_PATH, None, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        serde_json::to_string(&rej.status_json()).unwrap(),
        r#"{"apiVersion":"v1","code":401,"kind":"Status","message":"Unauthorized","metadata":{},"reason":"Unauthorized","status":"Failure"}"#
    );
}

#[tokio::test]
async fn username_is_the_first_value_of_the_first_header_that_has_one() {
    let s = setup(&[], None);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let mut rh = s.authn.sources().request_header.clone().unwrap();
    rh.username_headers = vec!["X-REMOTE-USER".to_string(), "X-Fallback-User".to_string()];
    rh.group_headers = vec!["x-remote-GROUP".to_string()];
    rh.extra_headers_prefixes = vec!["X-Remote-EXTRA-".to_string()];
    s.authn.set_sources(AuthnSources {
        request_header: Some(rh),
        client_ca: None,
    });
    // Header names match whatever their case in the flags.
    let h = headers(&[
        ("x-remote-user", "alice"),
        ("X-Remote-Group", "devs"),
        ("x-remote-extra-Team%20Name", "blue"),
    ]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, vec!["devs", "system:authenticated"]);
    assert_eq!(user.extra["team name"], vec!["blue"]);
    // As Go's Header.Get: only the first value of a header counts; an empty one moves on to
    // the next header name rather than to a later value of the same header.
    let h = headers(&[
        ("X-Remote-User", ""),
        ("X-Remote-User", "mallory"),
        ("X-Fallback-User", "bob"),
    ]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "bob");
}

/// A leaf certificate whose subject holds two common names, as a CSR may request.
fn two_common_names(ca: &Ca, first: &str, last: &str) -> PeerCertificates {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, first);
    params
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 3]), last);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    PeerCertificates::new(vec![cert.der().to_vec()])
}

#[tokio::test]
async fn common_name_is_read_as_kubernetes_reads_it() {
    // Go keeps the last common name of a subject; a reviewer approving "alice" must not
    // produce a certificate this server reads as someone else.
    let s = setup(&["front-proxy-client"], None);
    let cert = two_common_names(&s.client_ca, "system:admin", "alice");
    let user = s
        .authn
        .authenticate(Some(&cert), &HeaderMap::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "alice");
    // The allowed-names check sees the same name.
    let proxy = two_common_names(&s.front_proxy, "front-proxy-client", "other");
    assert!(s.authn.authenticate(Some(&proxy), &forged()).await.is_err());
    let proxy = two_common_names(&s.front_proxy, "other", "front-proxy-client");
    let user = s
        .authn
        .authenticate(Some(&proxy), &forged())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "system:admin");

    // A client certificate without a common name names no one. Without a front-proxy CA
    // that is no identity (the request is anonymous), as in Kubernetes' x509
    // authenticator; with one, the front-proxy check's failure makes it a 401, as Go's
    // union of the two does.
    let nameless = s.client_ca.client("", &["system:masters"]);
    let client_ca_only = DelegatingAuthenticator::new(
        AuthnSources {
            request_header: None,
            client_ca: Some(s.client_ca.bundle("ca.crt")),
        },
        None,
        s.clock.clone(),
    );
    assert_eq!(
        client_ca_only
            .authenticate(Some(&nameless), &HeaderMap::new())
            .await,
        Ok(None)
    );
    assert!(s
        .authn
        .authenticate(Some(&nameless), &HeaderMap::new())
        .await
        .is_err());
}

/// A certificate for `cn` signed by `issuer`, with the given CA flag and extended key usages.
fn issue(issuer: &Ca, cn: &str, is_ca: bool, eku: Vec<ExtendedKeyUsagePurpose>) -> (Ca, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    params.extended_key_usages = eku;
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    let der = cert.der().to_vec();
    (Ca { cert, key }, der)
}

#[tokio::test]
async fn request_header_chain_verification() {
    let s = setup(&["front-proxy-client"], None);
    let believed = |peer: PeerCertificates| {
        let authn = s.authn.clone();
        async move {
            matches!(
                authn.authenticate(Some(&peer), &forged()).await,
                Ok(Some(u)) if u.name == "system:admin"
            )
        }
    };
    let client_auth = vec![ExtendedKeyUsagePurpose::ClientAuth];

    // An intermediate presented after the leaf completes the chain; without it, no chain.
    let (intermediate, intermediate_der) = issue(&s.front_proxy, "front-proxy-int", true, vec![]);
    let (_, leaf) = issue(
        &intermediate,
        "front-proxy-client",
        false,
        client_auth.clone(),
    );
    assert!(
        believed(PeerCertificates::new(vec![
            leaf.clone(),
            intermediate_der.clone()
        ]))
        .await
    );
    assert!(!believed(PeerCertificates::new(vec![leaf])).await);

    // An "intermediate" that is not a CA cannot issue.
    let (not_ca, not_ca_der) = issue(&s.front_proxy, "front-proxy-leaf", false, vec![]);
    let (_, leaf) = issue(&not_ca, "front-proxy-client", false, client_auth.clone());
    assert!(!believed(PeerCertificates::new(vec![leaf, not_ca_der])).await);

    // A certificate only for server authentication is not a client certificate.
    let (_, server_only) = issue(
        &s.front_proxy,
        "front-proxy-client",
        false,
        vec![ExtendedKeyUsagePurpose::ServerAuth],
    );
    assert!(!believed(PeerCertificates::new(vec![server_only])).await);

    // A self-signed certificate copying the CA's name is not the CA.
    let lookalike = Ca::new("front-proxy-ca");
    let (_, self_signed) = issue(&lookalike, "front-proxy-client", false, client_auth.clone());
    assert!(!believed(PeerCertificates::new(vec![self_signed])).await);
    assert!(!believed(PeerCertificates::new(vec![lookalike.cert.der().to_vec()])).await);

    // A certificate of the client CA never makes the headers believed, even when every
    // request-header name is allowed.
    let open = setup(&[], None);
    let (_, client_leaf) = issue(&open.client_ca, "front-proxy-client", false, client_auth);
    let user = open
        .authn
        .authenticate(Some(&PeerCertificates::new(vec![client_leaf])), &forged())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "front-proxy-client");
    assert!(!user.groups.iter().any(|g| g == "system:masters"));

    // Not yet valid: the clock is before the certificate's notBefore.
    let early = setup(&[], None);
    let future = early.front_proxy.client("front-proxy-client", &[]);
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_000_000),
    ));
    let authn = DelegatingAuthenticator::new((*early.authn.sources()).clone(), None, clock);
    assert!(authn.authenticate(Some(&future), &forged()).await.is_err());
}

/// Fails every review request.
struct Unreachable(Mutex<usize>);

impl ReviewClient for Unreachable {
    fn create<'a>(
        &'a self,
        _path: &'a str,
        _body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, AuthError>> {
        Box::pin(async move {
            *self.0.lock().unwrap() += 1;
            Err(AuthError::Transport("connection refused".to_string()))
        })
    }
}

#[tokio::test]
async fn review_failures_are_not_cached() {
    let down = Arc::new(Unreachable(Mutex::new(0)));
    let s = setup(&[], None);
    let tokens = TokenReviewConfig {
        client: down.clone(),
        ttl: Duration::from_secs(10),
        audiences: Vec::new(),
    };
    let authn =
        DelegatingAuthenticator::new((*s.authn.sources()).clone(), Some(tokens), s.clock.clone());
    let h = headers(&[("Authorization", "Bearer some-token")]);
    assert!(authn.authenticate(None, &h).await.is_err());
    assert!(authn.authenticate(None, &h).await.is_err());
    assert_eq!(
        *down.0.lock().unwrap(),
        2,
        "a failed TokenReview is asked again"
    );

    let authz = DelegatingAuthorizer::new(
        down.clone(),
        Duration::from_secs(10),
        Duration::from_secs(10),
        s.clock.clone(),
    );
    let g = RequestAuth::new(s.authn.clone(), Arc::new(authz));
    let alice = s.client_ca.client("alice", &[]);
    for _ in 0..2 {
        let rej = g
            .check(&Method::GET, METRIC_PATH, Some(&alice), &HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(rej.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(
        *down.0.lock().unwrap(),
        4,
        "a failed SubjectAccessReview is asked again"
    );
}

#[tokio::test]
async fn authorization_cache_separates_every_attribute() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed.json");
    let g = guard(&s, sar.clone(), 60, 60);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let base = [
        ("X-Remote-User", "alice"),
        ("X-Remote-Uid", "1"),
        ("X-Remote-Group", "devs"),
        ("X-Remote-Extra-Scopes", "a"),
    ];
    let variants: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (base.to_vec(), METRIC_PATH),
        (
            base.to_vec(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/other/pods/*/http_requests",
        ),
        (
            base.to_vec(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web/http_requests",
        ),
        (
            base.to_vec(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/services/*/http_requests",
        ),
        (
            base.to_vec(),
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/p99",
        ),
        (
            base.to_vec(),
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests",
        ),
        (
            base.to_vec(),
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/http_requests",
        ),
        (base.to_vec(), "/openapi/v2"),
        (base.to_vec(), "/openapi/v3"),
        (
            vec![
                ("X-Remote-User", "bob"),
                ("X-Remote-Uid", "1"),
                ("X-Remote-Group", "devs"),
                ("X-Remote-Extra-Scopes", "a"),
            ],
            METRIC_PATH,
        ),
        (
            vec![
                ("X-Remote-User", "alice"),
                ("X-Remote-Uid", "2"),
                ("X-Remote-Group", "devs"),
                ("X-Remote-Extra-Scopes", "a"),
            ],
            METRIC_PATH,
        ),
        (
            vec![
                ("X-Remote-User", "alice"),
                ("X-Remote-Uid", "1"),
                ("X-Remote-Group", "ops"),
                ("X-Remote-Extra-Scopes", "a"),
            ],
            METRIC_PATH,
        ),
        (
            vec![
                ("X-Remote-User", "alice"),
                ("X-Remote-Uid", "1"),
                ("X-Remote-Group", "devs"),
                ("X-Remote-Extra-Scopes", "b"),
            ],
            METRIC_PATH,
        ),
    ];
    for (i, (h, path)) in variants.iter().enumerate() {
        g.check(&Method::GET, path, Some(&proxy), &headers(h))
            .await
            .unwrap();
        assert_eq!(
            sar.calls(),
            i + 1,
            "{h:?} {path} must not reuse another's decision"
        );
    }
    // The same request again is answered from the cache.
    g.check(&Method::GET, METRIC_PATH, Some(&proxy), &headers(&base))
        .await
        .unwrap();
    assert_eq!(sar.calls(), variants.len());
}

#[tokio::test]
async fn forbidden_messages_quote_as_go_does() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar, 10, 10);
    let mallory = s.client_ca.client("mallory", &[]);
    let rej = g
        .check(
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/a%01b%7F%C2%A0%09%22%5C%C3%A9/pods/x%E2%80%8By/m",
            Some(&mallory),
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    // Go's %q: \xNN for ASCII controls, \uNNNN for invisible Unicode, printable text as is.
    assert_eq!(
        rej.message,
        r#"pods.custom.metrics.k8s.io "x\u200by" is forbidden: User "mallory" cannot get resource "pods/m" in API group "custom.metrics.k8s.io" in the namespace "a\x01b\x7f\u00a0\t\"\\é""#
    );
}

#[test]
fn bearer_token_is_read_as_kubernetes_reads_it() {
    use promhpa_auth::authn::bearer_token;
    let token = |v: &str| bearer_token(&headers(&[("Authorization", v)])).map(str::to_string);
    assert_eq!(token("Bearer abc"), Some("abc".into()));
    assert_eq!(token("bearer abc"), Some("abc".into()));
    assert_eq!(token("  Bearer abc  "), Some("abc".into()));
    // The token is the second space-separated field; an empty one is no token.
    assert_eq!(token("Bearer abc def"), Some("abc".into()));
    assert_eq!(token("Bearer  abc"), None);
    assert_eq!(token("Bearer"), None);
    assert_eq!(token("Basic YWxpY2U6cHc="), None);
}

#[tokio::test]
async fn always_allowed_paths_match_with_or_without_the_leading_slash() {
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-denied.json");
    let g = guard(&s, sar, 10, 10)
        .with_always_allow_paths(vec!["healthz".to_string(), "debug/*".to_string()]);
    for path in ["/healthz", "/debug/pprof"] {
        assert!(
            g.check(&Method::GET, path, None, &HeaderMap::new())
                .await
                .is_ok(),
            "{path}"
        );
    }
    assert!(g
        .check(&Method::GET, "/healthzz", None, &HeaderMap::new())
        .await
        .is_err());
}

#[tokio::test]
async fn a_review_both_allowing_and_denying_denies() {
    // Not something kube-apiserver answers, but a review endpoint in between might; Kubernetes'
    // webhook authorizer treats it as a denial.
    let s = setup(&[], None);
    let sar = Recorded::answering(SUBJECT_ACCESS_REVIEW_PATH, "sar-allowed-and-denied.json");
    let g = guard(&s, sar, 10, 10);
    let mallory = s.client_ca.client("mallory", &[]);
    let rej = g
        .check(&Method::GET, METRIC_PATH, Some(&mallory), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn client_certificate_users_carry_the_certificate_credential_id() {
    let s = setup(&[], None);
    let alice = s.client_ca.client("alice", &["devs"]);
    let user = s
        .authn
        .authenticate(Some(&alice), &HeaderMap::new())
        .await
        .unwrap()
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &alice.chain()[0]);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        user.extra["authentication.kubernetes.io/credential-id"],
        vec![format!("X509SHA256={hex}")]
    );
    assert_eq!(user.extra.len(), 1);
}

#[tokio::test]
async fn extra_keys_are_unescaped_as_go_path_unescape_does() {
    let s = setup(&[], None);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let h = headers(&[
        ("X-Remote-User", "alice"),
        ("X-Remote-Extra-%C3%A9t%C3%A9", "summer"),
        ("X-Remote-Extra-Scope%2FOne", "1"),
        // A malformed escape keeps the whole key as sent (lowercased).
        ("X-Remote-Extra-a%zzb%41", "2"),
        ("X-Remote-Extra-Trail%4", "3"),
    ]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = user.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["a%zzb%41", "scope/one", "trail%4", "été"]);
}

#[tokio::test]
async fn a_user_asserted_unauthenticated_is_not_made_authenticated() {
    let s = setup(&[], None);
    let proxy = s.front_proxy.client("front-proxy-client", &[]);
    let h = headers(&[
        ("X-Remote-User", "guest"),
        ("X-Remote-Group", "system:unauthenticated"),
    ]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.groups, vec!["system:unauthenticated"]);
    let h = headers(&[("X-Remote-User", "system:anonymous")]);
    let user = s
        .authn
        .authenticate(Some(&proxy), &h)
        .await
        .unwrap()
        .unwrap();
    assert!(user.groups.is_empty());
}
