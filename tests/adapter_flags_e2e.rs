//! prometheus-adapter flags that used to be accepted and dropped, end to end with the binary:
//! `--prometheus-auth-config` against a real Prometheus that requires basic auth or client
//! certificates, `--prometheus-auth-incluster` through a bearer-token-checking proxy in front
//! of a real Prometheus (as kube-rbac-proxy guards one in clusters), the serving
//! `--tls-min-version`/`--tls-cipher-suites` against curl, and the flags that only warn.
#![allow(clippy::unwrap_used)]

mod common;
use common::gate::GateProxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use promhpa_core::backend::{Backend, QueryValue};
use promhpa_prom::{PromClient, PromConfig};
use promhpa_test_support::{free_port, wait_for_port, Prometheus, ScrapeTarget, TestPki};

/// The tests start servers on ports they picked as free; one at a time keeps them apart.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const EXPOSITION: &str =
    "# TYPE queue_depth gauge\nqueue_depth{namespace=\"shop\",queue=\"orders\"} 7\n";

const RULES: &str = r#"
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (namespace)'
"#;

const METRIC: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Promhpa {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Promhpa {
    fn start(args: &[String], dir: &Path, env: &[(&str, &Path)]) -> Promhpa {
        let port = free_port().unwrap();
        let log = dir.join(format!("promhpa-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promhpa"));
        cmd.args(args)
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .env_remove("PROMHPA_SERVICE_ACCOUNT_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Promhpa {
            child: cmd.spawn().unwrap(),
            port,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, once the process has ended (within 60 s).
    fn exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "promhpa did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Promhpa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client trusting the test CA.
fn https_client(ca: &Path) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Wait until promhpa is ready (first discovery done) and return the metric request's status
/// and body.
fn get_metric(server: &Promhpa, ca: &Path) -> (u16, String) {
    let client = https_client(ca);
    let start = Instant::now();
    loop {
        if let Ok(resp) = client.get(server.url("/readyz")).send() {
            if resp.status().is_success() {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "promhpa never became ready: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let resp = client.get(server.url(METRIC)).send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// The metric request against a promhpa whose discovery cannot succeed (so it never becomes
/// ready): its status, and promhpa's log.
fn refused_metric(server: &Promhpa, ca: &Path) -> (u16, String) {
    wait_for_port(server.port, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}: {}", server.log()));
    let resp = https_client(ca).get(server.url(METRIC)).send().unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    (status, format!("{body}\n{}", server.log()))
}

fn metric_value(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["items"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Wait until Prometheus has scraped the test target.
fn wait_for_series(config: PromConfig, prom: &Prometheus) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = PromClient::new(config).unwrap();
    let start = Instant::now();
    loop {
        if let Ok(QueryValue::Vector(v)) =
            runtime.block_on(client.query("count(queue_depth)", now_ms()))
        {
            if v.first().is_some_and(|s| s.value == 1.0) {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no data in prometheus: {}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Rule and object files and the serving flags shared by the Prometheus tests.
fn serve_args(dir: &Path, pki: &TestPki, prometheus_url: &str) -> Vec<String> {
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(&objects, "apiVersion: v1\nkind: List\nitems: []\n").unwrap();
    vec![
        format!("--prometheus-url={prometheus_url}"),
        format!("--config={}", rules.display()),
        format!("--objects={}", objects.display()),
        format!("--tls-cert-file={}", pki.server_cert.display()),
        format!("--tls-private-key-file={}", pki.server_key.display()),
        "--metrics-relist-interval=2s".into(),
        "--insecure-skip-delegated-auth".into(),
    ]
}

fn kubeconfig(dir: &Path, name: &str, cluster: &str, user: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: prometheus\nclusters:\n- name: prometheus\n  cluster:\n    server: https://kubernetes.default.svc\n{cluster}contexts:\n- name: prometheus\n  context: {{cluster: prometheus, user: adapter}}\nusers:\n- name: adapter\n  user:\n{user}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn prometheus_auth_config_sends_basic_auth_and_client_certificates() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let pki = TestPki::generate("auth-config-ca", "adapter").unwrap();
    let target = ScrapeTarget::start(EXPOSITION).unwrap();

    // Basic auth: username/password of the kubeconfig's user, CA from its cluster.
    let prom = Prometheus::start_basic_auth(&pki, &[target.port], "adapter", "s3cret").unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    pc.basic_auth = Some(("adapter".into(), "s3cret".into()));
    wait_for_series(pc, &prom);
    let basic = kubeconfig(
        dir,
        "basic",
        &format!("    certificate-authority: {}\n", pki.ca_cert.display()),
        "    username: adapter\n    password: s3cret\n",
    );
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-auth-config={}", basic.display()));
    let server = Promhpa::start(&args, dir, &[]);
    let (status, body) = get_metric(&server, &pki.ca_cert);
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(metric_value(&body), "7", "{body}");
    drop(server);

    // Without the kubeconfig, Prometheus refuses the queries.
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-ca-file={}", pki.ca_cert.display()));
    let server = Promhpa::start(&args, dir, &[]);
    let (status, log) = refused_metric(&server, &pki.ca_cert);
    assert_ne!(status, 200, "{log}");
    assert!(log.contains("401 Unauthorized"), "{log}");
    drop(server);
    drop(prom);

    // Client certificate and CA as inline data, verified for tls-server-name.
    let prom = Prometheus::start_mtls(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    pc.client_cert_file = Some(pki.client_cert.clone());
    pc.client_key_file = Some(pki.client_key.clone());
    wait_for_series(pc, &prom);
    let data = |p: &Path| base64(&std::fs::read(p).unwrap());
    let cluster = |server_name: &str| {
        format!(
            "    certificate-authority-data: {}\n    tls-server-name: {server_name}\n",
            data(&pki.ca_cert)
        )
    };
    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        data(&pki.client_cert),
        data(&pki.client_key)
    );
    let mtls = kubeconfig(dir, "mtls", &cluster("localhost"), &user);
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-auth-config={}", mtls.display()));
    let server = Promhpa::start(&args, dir, &[]);
    let (status, body) = get_metric(&server, &pki.ca_cert);
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(metric_value(&body), "7", "{body}");
    drop(server);

    // A tls-server-name the certificate does not carry stops promhpa at start.
    let wrong = kubeconfig(dir, "wrong-name", &cluster("prometheus.example"), &user);
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-auth-config={}", wrong.display()));
    let mut server = Promhpa::start(&args, dir, &[]);
    assert_eq!(server.exit().code(), Some(1), "{}", server.log());
    let log = server.log();
    assert!(
        log.contains("cannot verify the TLS certificate") && log.contains("tls-server-name"),
        "{log}"
    );

    // Without the client certificate the handshake is refused.
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-ca-file={}", pki.ca_cert.display()));
    let server = Promhpa::start(&args, dir, &[]);
    let (status, log) = refused_metric(&server, &pki.ca_cert);
    assert_ne!(status, 200, "{log}");
    assert!(log.contains("prometheus is not answering yet"), "{log}");
    drop(server);

    // An exec plugin is refused, named.
    let exec = kubeconfig(
        dir,
        "exec",
        "",
        "    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}\n",
    );
    let mut args = serve_args(dir, &pki, &prom.url());
    args.push(format!("--prometheus-auth-config={}", exec.display()));
    let mut server = Promhpa::start(&args, dir, &[]);
    assert_eq!(server.exit().code(), Some(1));
    assert!(
        server.log().contains("users[].user.exec"),
        "{}",
        server.log()
    );
}

#[test]
fn prometheus_auth_incluster_sends_the_rotating_service_account_token_and_trusts_its_ca() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let pki = TestPki::generate("incluster-ca", "adapter").unwrap();
    let target = ScrapeTarget::start(EXPOSITION).unwrap();
    let prom = Prometheus::start_https(&pki, &[target.port]).unwrap();
    let mut pc = PromConfig::new(prom.url());
    pc.ca_file = Some(pki.ca_cert.clone());
    wait_for_series(pc, &prom);
    let proxy = GateProxy::start(&pki, prom.url(), "authorization", "Bearer sa-token-one");

    let sa = dir.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "sa-token-one\n").unwrap();
    std::fs::copy(&pki.ca_cert, sa.join("ca.crt")).unwrap();
    let mut args = serve_args(dir, &pki, &proxy.url());
    args.push("--prometheus-auth-incluster".into());
    let server = Promhpa::start(&args, dir, &[("PROMHPA_SERVICE_ACCOUNT_DIR", &sa)]);
    let (status, body) = get_metric(&server, &pki.ca_cert);
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(metric_value(&body), "7", "{body}");
    assert!(proxy.saw("Bearer sa-token-one"));
    assert!(
        server.log().contains("PROMHPA_SERVICE_ACCOUNT_DIR"),
        "{}",
        server.log()
    );

    // The kubelet rotates the token: the next queries carry the new one.
    std::fs::write(sa.join("token"), "sa-token-rotated\n").unwrap();
    proxy.expect("Bearer sa-token-rotated");
    let client = https_client(&pki.ca_cert);
    let resp = client.get(server.url(METRIC)).send().unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert!(proxy.saw("Bearer sa-token-rotated"));
    drop(server);

    // Without the flag no token is sent and the proxy refuses the queries.
    let mut args = serve_args(dir, &pki, &proxy.url());
    args.push(format!("--prometheus-ca-file={}", pki.ca_cert.display()));
    let server = Promhpa::start(&args, dir, &[]);
    let (status, log) = refused_metric(&server, &pki.ca_cert);
    assert_ne!(status, 200, "{log}");
    assert!(log.contains("401 Unauthorized"), "{log}");
    assert!(
        proxy.values().iter().any(|t| t.is_empty()),
        "no request without a token reached the proxy"
    );
    drop(server);

    // The service account's CA is what Prometheus' certificate is verified with.
    let other = TestPki::generate("another-ca", "adapter").unwrap();
    std::fs::copy(&other.ca_cert, sa.join("ca.crt")).unwrap();
    let mut args = serve_args(dir, &pki, &proxy.url());
    args.push("--prometheus-auth-incluster".into());
    let mut server = Promhpa::start(&args, dir, &[("PROMHPA_SERVICE_ACCOUNT_DIR", &sa)]);
    assert_eq!(server.exit().code(), Some(1), "{}", server.log());
    assert!(
        server.log().contains("cannot verify the TLS certificate"),
        "{}",
        server.log()
    );

    // Both sources of auth at once are refused, as prometheus-adapter refuses them: a
    // usage error.
    let k = kubeconfig(dir, "k", "", "    token: t\n");
    let mut args = serve_args(dir, &pki, &proxy.url());
    args.push("--prometheus-auth-incluster=true".into());
    args.push(format!("--prometheus-auth-config={}", k.display()));
    let mut server = Promhpa::start(&args, dir, &[("PROMHPA_SERVICE_ACCOUNT_DIR", &sa)]);
    assert_eq!(server.exit().code(), Some(64));
    assert!(
        server.log().contains("may not use both in-cluster auth"),
        "{}",
        server.log()
    );
}

fn curl(port: u16, ca: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(args)
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap()
}

fn tls_server(pki: &TestPki, dir: &Path, extra: &[&str]) -> Promhpa {
    let mut args = vec![
        "--demo".to_string(),
        format!("--tls-cert-file={}", pki.server_cert.display()),
        format!("--tls-private-key-file={}", pki.server_key.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Promhpa::start(&args, dir, &[]);
    wait_for_port(server.port, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}: {}", server.log()));
    server
}

#[test]
fn serving_tls_honours_min_version_and_cipher_suites_with_curl() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The test CA's keys are ECDSA P-256, so TLS 1.2 uses the ECDHE_ECDSA suites.
    let pki = TestPki::generate("serving-ca", "client").unwrap();

    let server = tls_server(
        &pki,
        dir,
        &[
            "--tls-min-version=VersionTLS13",
            "--logtostderr=true",
            "--audit-log-path=/var/log/audit.log",
        ],
    );
    let ok = curl(server.port, &pki.ca_cert, &["--tlsv1.3"]);
    assert!(
        ok.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&ok.stderr),
        server.log()
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok");
    let refused = curl(server.port, &pki.ca_cert, &["--tls-max", "1.2"]);
    assert!(!refused.status.success());
    // 35: the TLS handshake failed.
    assert_eq!(
        refused.status.code(),
        Some(35),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let log = server.log();
    for flag in ["--logtostderr", "--audit-log-path"] {
        let warning = format!(
            "{flag} is accepted for compatibility with prometheus-adapter and has no effect"
        );
        assert_eq!(log.matches(&warning).count(), 1, "{log}");
    }
    drop(server);

    let server = tls_server(
        &pki,
        dir,
        &[
            "--tls-min-version=VersionTLS10",
            "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_CBC_SHA",
        ],
    );
    let tls12 = |cipher: &str| {
        curl(
            server.port,
            &pki.ca_cert,
            &["--tls-max", "1.2", "--ciphers", cipher],
        )
    };
    let listed = tls12("ECDHE-ECDSA-AES256-GCM-SHA384");
    assert!(
        listed.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&listed.stderr),
        server.log()
    );
    let other = tls12("ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_eq!(
        other.status.code(),
        Some(35),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    // TLS 1.3 keeps its suites when the list names none.
    assert!(curl(server.port, &pki.ca_cert, &["--tlsv1.3"])
        .status
        .success());
    let log = server.log();
    assert!(
        log.contains("TLS_RSA_WITH_AES_128_CBC_SHA is not offered"),
        "{log}"
    );
    assert!(
        log.contains("TLS 1.2 is the lowest version offered"),
        "{log}"
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .env_remove("PROMHPA_SERVICE_ACCOUNT_DIR")
        .output()
        .unwrap()
}

#[test]
fn invalid_values_are_flag_errors() {
    let other_flag_error = run(&["--metrics-relist-interval=soon"]);
    assert_eq!(
        other_flag_error.status.code(),
        Some(64),
        "usage errors exit with EX_USAGE"
    );
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    for (args, says) in [
        (
            vec!["--tls-min-version=TLS1.3"],
            vec![
                "unknown tls version \"TLS1.3\"",
                "VersionTLS12, VersionTLS13",
            ],
        ),
        (
            vec!["--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256"],
            vec![
                "cipher suite \"ECDHE-RSA-AES128-GCM-SHA256\" not supported",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ],
        ),
        (
            vec!["--prometheus-auth-incluster=yes"],
            vec!["invalid boolean \"yes\""],
        ),
        (vec!["--logtostderr=maybe"], vec!["invalid boolean"]),
        // A password in a URL that is refused is not repeated in the error.
        (
            vec!["--prometheus-url=https://admin:s3cret@prometheus:99999"],
            vec!["invalid --prometheus-url \"https://admin:xxxxx@prometheus:99999\""],
        ),
        (
            vec!["--prometheus-url=htps://admin:s3cret@prometheus:9090"],
            vec!["invalid --prometheus-url \"htps://admin:xxxxx@prometheus:9090\""],
        ),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            other_flag_error.status.code(),
            "{args:?}: {stderr}"
        );
        for s in says {
            assert!(stderr.contains(s), "{args:?}: {stderr}");
        }
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
    }
    // Names that parse but leave nothing to offer stop promhpa before it serves, as a
    // usage error.
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "--demo",
        "--tls-cipher-suites=TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        &format!("--cert-dir={}", dir.path().display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("none of the --tls-cipher-suites can be offered"),
        "{stderr}"
    );
}

/// A flag given twice takes its last value, as pflag takes it: the chart emits
/// `--secure-port`, `--v`, `--config`... and then `extraArguments`, which may repeat them.
#[test]
fn a_repeated_flag_takes_its_last_value() {
    for prefix in [vec![], vec!["serve"]] {
        let mut args = prefix.clone();
        args.extend([
            "--config=/nonexistent/first.yaml",
            "--v=2",
            "--v=4",
            "--disable-http2",
            "--disable-http2=false",
            "--config=/nonexistent/last.yaml",
        ]);
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("/nonexistent/last.yaml") && !stderr.contains("first.yaml"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn flags_that_do_not_go_together_are_all_reported_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = run(&[
        "--demo",
        "--tls-cert-file=/etc/promhpa/tls.crt",
        "--forward-client-key-file=/etc/keda/client.key",
        "--forward-unknown-external-metrics-to=https://keda-operator-metrics-apiserver.keda.svc",
        "--forward-ca-file=/etc/keda/ca.crt",
        &format!("--cert-dir={}", certs.display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors,
        [
            "error: --tls-cert-file and --tls-private-key-file must be given together",
            "error: --forward-client-key-file needs --forward-client-cert-file",
        ],
        "{stderr}"
    );
    // Nothing started: no self-signed certificate was written, and the missing files were
    // not what was reported.
    assert!(!certs.exists(), "{stderr}");
    assert!(!stderr.contains("No such file"), "{stderr}");

    // What only running can tell stays a runtime failure.
    let out = run(&[
        "--demo",
        &format!("--tls-cert-file={}", dir.path().join("tls.crt").display()),
        &format!(
            "--tls-private-key-file={}",
            dir.path().join("tls.key").display()
        ),
        "--secure-port=0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}
