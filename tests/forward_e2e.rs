//! End to end: two `promhpa` binaries sharing the metrics APIs, as promhpa beside KEDA's
//! metrics server. The second plays the other adapter: its own rules and metrics, HTTPS with
//! its own CA, and delegated authentication that needs a client certificate of that CA (it
//! believes `X-Remote-User` from such a certificate too, so an identity header passed on
//! would show in its log). The first owns the APIs, authenticates its callers (client
//! certificates, and the front proxy's request headers, as the aggregator sends them) and
//! forwards what its rules do not serve with its own client certificate. `kubectl get
//! --raw` and reqwest are the callers.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use promhpa_test_support::{free_port, TestPki};
use serde_json::Value;

mod common;
use common::{tempfile_dir, Kubectl, Promhpa};

const FIRST_RULES: &str = r#"
rules:
- seriesQuery: 'http_requests_in_flight{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'http_queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum by (queue) (<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'shared_metric{origin!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum by (origin) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const FIRST_SERIES: &str = "\
http_requests_in_flight{namespace=\"default\",pod=\"web-1\"} 3
http_queue_depth{queue=\"jobs\"} 42
shared_metric{origin=\"first\"} 1
";

const FIRST_OBJECTS: &str = "\
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: default, labels: {app: web}}}
";

const SECOND_RULES: &str = r#"
rules:
- seriesQuery: 'worker_backlog{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
externalRules:
- seriesQuery: 'orders_backlog{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum by (queue) (<<.Series>>{<<.LabelMatchers>>})'
- seriesQuery: 'shared_metric{origin!=""}'
  resources: {namespaced: false}
  metricsQuery: 'sum by (origin) (<<.Series>>{<<.LabelMatchers>>})'
"#;

const SECOND_SERIES: &str = "\
worker_backlog{namespace=\"default\",pod=\"worker-1\"} 9
orders_backlog{queue=\"orders\"} 17
shared_metric{origin=\"second\"} 2
";

const SECOND_OBJECTS: &str = "\
- {apiVersion: v1, kind: Pod, metadata: {name: worker-1, namespace: default, labels: {app: worker}}}
";

const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1";

/// The deadline the aggregator forwards in the tests that stop the second server.
const DEADLINE: Duration = Duration::from_secs(3);
/// Room for scheduling on a busy machine on top of it.
const SLACK: Duration = Duration::from_secs(3);

/// A kubeconfig whose cluster is not there: TokenReview and SubjectAccessReview cannot be
/// asked, so only `system:masters` certificates are authorized.
fn absent_cluster(dir: &Path, ca: &Path) -> std::path::PathBuf {
    let closed = free_port().unwrap();
    let path = dir.join("absent-cluster");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{closed}\n    certificate-authority: {}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            ca.display()
        ),
    )
    .unwrap();
    path
}

/// The flags of a server: its rules, series and objects under `dir/name.*`, its serving
/// certificate, and delegated authentication against the absent cluster.
fn server_args(
    dir: &Path,
    name: &str,
    (rules, series, objects): (&str, &str, &str),
    pki: &TestPki,
) -> Vec<String> {
    let file = |ext: &str, text: &str| {
        let p = dir.join(format!("{name}.{ext}"));
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    vec![
        format!("--config={}", file("rules.yaml", rules)),
        format!("--load-exposition={}", file("prom", series)),
        format!("--objects={}", file("objects.yaml", objects)),
        "--metrics-max-age=1h".into(),
        format!("--tls-cert-file={}", pki.server_cert.display()),
        format!("--tls-private-key-file={}", pki.server_key.display()),
        format!(
            "--kubeconfig={}",
            absent_cluster(dir, &pki.ca_cert).display()
        ),
        "--authentication-skip-lookup".into(),
        "--v=4".into(),
    ]
}

/// A reqwest client trusting `ca`, with a client certificate when given.
fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.push(b'\n');
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// GET `url`: the code, the body as JSON and how long it took.
fn ask(
    c: &reqwest::blocking::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, Duration) {
    let start = Instant::now();
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().unwrap();
    let code = resp.status().as_u16();
    let body = resp.bytes().unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (code, v, start.elapsed())
}

fn names(list: &Value) -> Vec<String> {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn logs(first: &Promhpa, second: &Promhpa) -> String {
    format!("first:\n{}\nsecond:\n{}", first.log(), second.log())
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// The `promhpa_forwarded_requests_total` lines of the first server's `/metrics`.
fn forwarded_counts(kubectl: &Kubectl) -> Vec<String> {
    let out = kubectl.raw("/metrics");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("promhpa_forwarded_requests_total{"))
        .map(String::from)
        .collect()
}

#[test]
fn a_second_metrics_server_shares_the_apis_through_the_first() {
    let dir = tempfile_dir("forward");
    // The first server's CA: its serving certificate and its callers' certificates.
    let first_pki =
        TestPki::generate_with_group("first-ca", "hpa-caller", Some("system:masters")).unwrap();
    // The second server's CA: its serving certificate and the first's forward identity.
    let second_pki =
        TestPki::generate_with_group("second-ca", "promhpa-forwarder", Some("system:masters"))
            .unwrap();
    // The aggregator's front-proxy CA.
    let front_proxy = TestPki::generate("front-proxy-ca", "front-proxy").unwrap();

    let mut second_args = server_args(
        &dir,
        "second",
        (SECOND_RULES, SECOND_SERIES, SECOND_OBJECTS),
        &second_pki,
    );
    second_args.extend([
        format!("--client-ca-file={}", second_pki.ca_cert.display()),
        format!(
            "--requestheader-client-ca-file={}",
            second_pki.ca_cert.display()
        ),
    ]);
    let mut second = Promhpa::start(&second_args, &dir);
    let second_url = format!("https://127.0.0.1:{}", second.port);
    Kubectl::new(&dir, second.port, &second_pki.ca_cert).wait_ready(&second);

    let mut first_args = server_args(
        &dir,
        "first",
        (FIRST_RULES, FIRST_SERIES, FIRST_OBJECTS),
        &first_pki,
    );
    first_args.extend([
        format!("--client-ca-file={}", first_pki.ca_cert.display()),
        format!(
            "--requestheader-client-ca-file={}",
            front_proxy.ca_cert.display()
        ),
        "--requestheader-allowed-names=front-proxy".into(),
        // Callers without credentials are refused (401) rather than authorized as
        // system:anonymous: this test's cluster answers no SubjectAccessReview.
        "--anonymous-auth=false".into(),
        format!("--forward-unknown-external-metrics-to={second_url}"),
        format!("--forward-unknown-custom-metrics-to={second_url}"),
        format!("--forward-ca-file={}", second_pki.ca_cert.display()),
        format!(
            "--forward-client-cert-file={}",
            second_pki.client_cert.display()
        ),
        format!(
            "--forward-client-key-file={}",
            second_pki.client_key.display()
        ),
    ]);
    let first = Promhpa::start(&first_args, &dir);
    let kubectl = Kubectl::with_client_cert(
        &dir,
        first.port,
        &first_pki.ca_cert,
        &first_pki.client_cert,
        &first_pki.client_key,
    );
    kubectl.wait_ready(&first);

    // The first's own metrics, served by the first.
    let v = kubectl.json(&format!("{EXTERNAL}/namespaces/default/http_queue_depth"));
    assert_eq!(v["items"][0]["value"], "42", "{v}");
    let v = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_in_flight?labelSelector=app%3Dweb",
    );
    assert_eq!(v["items"][0]["describedObject"]["name"], "web-1", "{v}");
    assert!(
        !second.log().contains("http_queue_depth"),
        "{}",
        logs(&first, &second)
    );

    // Metrics only the second knows, through the first.
    let v = kubectl.json(&format!(
        "{EXTERNAL}/namespaces/default/orders_backlog?labelSelector=queue%3Dorders"
    ));
    assert_eq!(v["kind"], "ExternalMetricValueList", "{v}");
    assert_eq!(v["items"][0]["value"], "17", "{v}");
    assert_eq!(v["items"][0]["metricLabels"]["queue"], "orders", "{v}");
    let v = kubectl.json(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/worker_backlog?labelSelector=app%3Dworker",
    );
    assert_eq!(v["items"][0]["describedObject"]["name"], "worker-1", "{v}");
    assert_eq!(v["items"][0]["value"], "9", "{v}");
    // A name both serve is the first's.
    let v = kubectl.json(&format!("{EXTERNAL}/namespaces/default/shared_metric"));
    assert_eq!(v["items"][0]["metricLabels"]["origin"], "first", "{v}");

    // Discovery of the first lists both, each name once.
    let listed = names(&kubectl.json(EXTERNAL));
    assert_eq!(
        listed,
        ["http_queue_depth", "orders_backlog", "shared_metric"],
        "{}",
        logs(&first, &second)
    );
    let listed = names(&kubectl.json("/apis/custom.metrics.k8s.io/v1beta1"));
    for n in ["pods/http_requests_in_flight", "pods/worker_backlog"] {
        assert!(listed.contains(&n.to_string()), "{n} not in {listed:?}");
    }

    // The second's 404 comes back as its 404 Status.
    let e = kubectl.error(&format!("{EXTERNAL}/namespaces/default/nobody_serves_this"));
    assert!(e.contains("NotFound"), "{e}");
    assert!(
        e.contains("the server could not find the external metric \"nobody_serves_this\""),
        "{e}"
    );
    assert!(
        second.log().contains("nobody_serves_this"),
        "{}",
        logs(&first, &second)
    );
    let counts = forwarded_counts(&kubectl);
    for line in [
        "promhpa_forwarded_requests_total{api=\"external\",code=\"200\"} 1",
        "promhpa_forwarded_requests_total{api=\"external\",code=\"404\"} 1",
        "promhpa_forwarded_requests_total{api=\"custom\",code=\"200\"} 1",
    ] {
        assert!(counts.contains(&line.to_string()), "{line}: {counts:?}");
    }

    // As the aggregator calls: the front proxy's certificate, the user in headers, and a
    // token. The second sees the first's identity, never the caller's.
    let aggregator = client(
        &first_pki.ca_cert,
        Some((&front_proxy.client_cert, &front_proxy.client_key)),
    );
    let first_url = format!("https://127.0.0.1:{}", first.port);
    let (code, v, _) = ask(
        &aggregator,
        &format!("{first_url}{EXTERNAL}/namespaces/default/orders_backlog"),
        &[
            ("X-Remote-User", "aggregated-caller"),
            ("X-Remote-Group", "system:masters"),
            ("Authorization", "Bearer caller-secret-token"),
        ],
    );
    assert_eq!(code, 200, "{v}\n{}", logs(&first, &second));
    let second_log = second.log();
    assert!(
        second_log
            .lines()
            .any(|l| l.contains("request allowed") && l.contains("user=promhpa-forwarder")),
        "{second_log}"
    );
    for caller in ["aggregated-caller", "hpa-caller", "front-proxy"] {
        assert!(
            !second_log.contains(caller),
            "{caller} reached the second: {second_log}"
        );
    }

    // An unauthenticated caller is refused by the first; nothing is forwarded.
    let before = forwarded_counts(&kubectl);
    let anonymous = client(&first_pki.ca_cert, None);
    let (code, v, _) = ask(
        &anonymous,
        &format!("{first_url}{EXTERNAL}/namespaces/default/unauthenticated_probe"),
        &[],
    );
    assert_eq!(code, 401, "{v}");
    assert_eq!(v["reason"], "Unauthorized", "{v}");
    assert_eq!(forwarded_counts(&kubectl), before);
    assert!(
        !second.log().contains("unauthenticated_probe"),
        "{}",
        logs(&first, &second)
    );

    // The second stops answering: a 503 naming it, within the caller's deadline.
    let caller = client(
        &first_pki.ca_cert,
        Some((&first_pki.client_cert, &first_pki.client_key)),
    );
    let with_deadline = format!(
        "{first_url}{EXTERNAL}/namespaces/default/orders_backlog?timeout={}s",
        DEADLINE.as_secs()
    );
    signal(second.child.id(), "STOP");
    let (code, v, elapsed) = ask(&caller, &with_deadline, &[]);
    assert_eq!(code, 503, "{v}\n{}", first.log());
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["reason"], "ServiceUnavailable", "{v}");
    assert!(v["message"].as_str().unwrap().contains(&second_url), "{v}");
    assert!(elapsed <= DEADLINE + SLACK, "answered after {elapsed:?}");
    // Discovery still answers, with the first's metrics, once the cached list expires.
    let start = Instant::now();
    loop {
        let listed = names(&kubectl.json(EXTERNAL));
        if listed == ["http_queue_depth", "shared_metric"] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{listed:?}\n{}",
            logs(&first, &second)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    signal(second.child.id(), "CONT");
    let (code, v, _) = ask(&caller, &with_deadline, &[]);
    assert_eq!(code, 200, "{v}\n{}", logs(&first, &second));

    // The second is gone.
    let _ = second.child.kill();
    let _ = second.child.wait();
    let (code, v, elapsed) = ask(&caller, &with_deadline, &[]);
    assert_eq!(code, 503, "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains(&second_url) && message.contains("--forward-unknown-external-metrics-to"),
        "{message}"
    );
    assert!(elapsed <= DEADLINE + SLACK, "answered after {elapsed:?}");
    assert!(first.log().contains("forwarding failed"), "{}", first.log());
    let start = Instant::now();
    while names(&kubectl.json(EXTERNAL)) != ["http_queue_depth", "shared_metric"] {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            logs(&first, &second)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The first's own metrics never depended on it.
    let v = kubectl.json(&format!("{EXTERNAL}/namespaces/default/http_queue_depth"));
    assert_eq!(v["items"][0]["value"], "42", "{v}");
}

/// `promhpa` with these flags, expected to refuse to start: its standard error.
fn refused(args: &[String]) -> String {
    let dir = tempfile_dir("forward-flags");
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .arg("--insecure-skip-delegated-auth")
        .arg("--secure-port=0")
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started: {stderr}");
    stderr
}

#[test]
fn forward_flags_that_cannot_work_stop_the_start() {
    let pki = TestPki::generate("ca", "promhpa").unwrap();
    let e = refused(&[
        "--forward-unknown-external-metrics-to=http://keda-operator-metrics-apiserver.keda.svc"
            .into(),
    ]);
    assert!(
        e.contains("invalid --forward-unknown-external-metrics-to \"http://keda-operator-metrics-apiserver.keda.svc\"")
            && e.contains("use https://"),
        "{e}"
    );
    let e = refused(&["--forward-unknown-custom-metrics-to=https://keda.keda.svc".into()]);
    assert!(e.contains("--forward-ca-file is required"), "{e}");
    let e = refused(&[
        "--forward-unknown-external-metrics-to=https://keda.keda.svc/apis".into(),
        format!("--forward-ca-file={}", pki.ca_cert.display()),
    ]);
    assert!(e.contains("must not have a path"), "{e}");
    let e = refused(&[
        "--forward-unknown-external-metrics-to=https://keda.keda.svc".into(),
        format!("--forward-ca-file={}", pki.ca_cert.display()),
        format!("--forward-client-cert-file={}", pki.client_cert.display()),
    ]);
    assert!(
        e.contains("--forward-client-cert-file needs --forward-client-key-file"),
        "{e}"
    );
    let e = refused(&[format!("--forward-token-file={}", pki.client_key.display())]);
    assert!(e.contains("--forward-token-file given without"), "{e}");
}
