//! `explain --kubeconfig`: the scale target's `scale` subresource and its pods read from a
//! Kubernetes API server, here a local server answering with recorded API responses.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use promhpa_test_support::fixtures::{php_apache_load_now, PHP_APACHE_HPA};
use promhpa_test_support::pki::TestPki;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kube/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Answers GETs whose path (query included, empty query parameters dropped as the API
/// server reads them) is in `answers`, 404 otherwise, over HTTPS with the server certificate
/// of `pki`, and only to requests bearing `token` (401 otherwise); returns the server URL and
/// the paths asked for.
fn api_server(
    pki: &TestPki,
    token: &'static str,
    answers: BTreeMap<String, String>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let certs = vec![CertificateDer::from_pem_file(&pki.server_cert).expect("server cert")];
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("server key");
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("tls config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let Ok(session) = rustls::ServerConnection::new(tls.clone()) else {
                continue;
            };
            let mut conn = rustls::StreamOwned::new(session, conn);
            let mut reader = BufReader::new(&mut conn);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("authorization") {
                                authorization = value.trim().to_string();
                            }
                        }
                    }
                }
            }
            let raw = request_line.split_whitespace().nth(1).unwrap_or_default();
            let path = match raw.split_once('?') {
                None => raw.to_string(),
                Some((base, query)) => {
                    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
                    if pairs.is_empty() {
                        base.to_string()
                    } else {
                        format!("{base}?{}", pairs.join("&"))
                    }
                }
            };
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(path.clone());
            let (status, body) = if authorization != format!("Bearer {token}") {
                (
                    "401 Unauthorized",
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#.to_string(),
                )
            } else {
                match answers.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => (
                        "404 Not Found",
                        format!(
                            r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource ({path})","reason":"NotFound","code":404}}"#
                        ),
                    ),
                }
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.conn.send_close_notify();
            let _ = conn.flush();
        }
    });
    (url, seen)
}

/// An exec credential plugin, as EKS, GKE and AKS kubeconfigs run one: it checks its
/// arguments and environment and prints an ExecCredential with a token.
const EXEC_PLUGIN: &str = r#"#!/bin/sh
[ "$1" = "eks" ] && [ "$2" = "get-token" ] && [ "$3" = "--cluster-name" ] && [ "$4" = "test" ] || { echo "unexpected arguments: $*" >&2; exit 1; }
[ "$AWS_PROFILE" = "platform" ] || { echo "AWS_PROFILE is not set" >&2; exit 1; }
echo '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"status":{"expirationTimestamp":"2099-01-01T00:00:00Z","token":"k8s-aws-v1.exec-token"}}'
"#;

const SCALE: &str = r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"php-apache","namespace":"default"},"spec":{"replicas":2},"status":{"replicas":2,"selector":"run=php-apache"}}"#;

// One pod Running and Ready, one just created and still Pending.
const PODS: &str = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5120"},"items":[
{"metadata":{"name":"php-apache-5d54745f55-kx9mg","namespace":"default","labels":{"run":"php-apache"}},
 "spec":{"containers":[{"name":"php-apache","image":"registry.k8s.io/hpa-example","resources":{"limits":{"cpu":"500m"},"requests":{"cpu":"200m"}}}]},
 "status":{"phase":"Running","startTime":"2026-01-01T00:00:00Z","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:05Z"}]}},
{"metadata":{"name":"php-apache-5d54745f55-q7w2n","namespace":"default","labels":{"run":"php-apache"}},
 "spec":{"containers":[{"name":"php-apache","image":"registry.k8s.io/hpa-example","resources":{"requests":{"cpu":"200m"}}}]},
 "status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable"}]}}]}"#;

/// Point the kubeconfig at another recorded API server.
fn repoint(kubeconfig: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    std::fs::write(kubeconfig, text.replace(from, to)).expect("write kubeconfig");
}

const HPA_LIST_PATH: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

/// An HorizontalPodAutoscalerList of (name, target Deployment) pairs.
fn hpa_list(hpas: &[(&str, &str)]) -> String {
    let items: Vec<String> = hpas
        .iter()
        .map(|(name, target)| {
            format!(
                r#"{{"metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"scaleTargetRef":{{"kind":"Deployment","name":"{target}","apiVersion":"apps/v1"}},"minReplicas":1,"maxReplicas":10}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"kind":"HorizontalPodAutoscalerList","apiVersion":"autoscaling/v2","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

// The HPA as the API server returns it, with the controller's last status.
const HPA_OBJECT: &str = r#"{"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v2",
"metadata":{"name":"php-apache","namespace":"default","uid":"3f1d2c4b-9a8e-4f7d-8c6b-5a4e3d2c1b0a","resourceVersion":"5301","creationTimestamp":"2026-01-01T00:01:00Z"},
"spec":{"scaleTargetRef":{"kind":"Deployment","name":"php-apache","apiVersion":"apps/v1"},"minReplicas":1,"maxReplicas":10,
 "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}}]},
"status":{"lastScaleTime":"2026-01-01T00:03:00Z","currentReplicas":2,"desiredReplicas":2,
 "currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageValue":"610m","averageUtilization":305}}}],
 "conditions":[{"type":"AbleToScale","status":"True","lastTransitionTime":"2026-01-01T00:01:15Z","reason":"ReadyForNewScale","message":"recommended size matches current size"},
  {"type":"ScalingActive","status":"True","lastTransitionTime":"2026-01-01T00:01:15Z","reason":"ValidMetricFound","message":"the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"}]}}"#;

#[test]
fn explain_reads_the_scale_target_and_pods_from_the_cluster() {
    let mut answers = BTreeMap::new();
    for (path, file) in [
        ("/api", "api.json"),
        ("/api/v1", "api-v1.json"),
        ("/apis", "apis.json"),
        ("/apis/apps/v1", "apis-apps-v1.json"),
    ] {
        answers.insert(path.to_string(), fixture(file));
    }
    answers.insert(
        "/apis/apps/v1/namespaces/default/deployments/php-apache/scale".into(),
        SCALE.into(),
    );
    answers.insert(
        "/api/v1/namespaces/default/pods?labelSelector=run%3Dphp-apache&limit=500".into(),
        PODS.into(),
    );
    answers.insert(
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/php-apache".into(),
        HPA_OBJECT.into(),
    );
    // The namespace's HPAs: this one, and one for another Deployment (whose scale is not
    // recorded, so it is left out of the ambiguity check).
    answers.insert(
        HPA_LIST_PATH.into(),
        hpa_list(&[("php-apache", "php-apache"), ("web", "web")]),
    );
    let mut ambiguous = answers.clone();
    // KEDA's HPA on the same Deployment, beside the user's own.
    ambiguous.insert(
        HPA_LIST_PATH.into(),
        hpa_list(&[
            ("php-apache", "php-apache"),
            ("keda-hpa-php-apache", "php-apache"),
        ]),
    );
    // A scale target whose scale has no selector (a custom resource without one).
    let mut no_selector = answers.clone();
    no_selector.insert(
        "/apis/apps/v1/namespaces/default/deployments/php-apache/scale".into(),
        SCALE.replace(r#","selector":"run=php-apache""#, ""),
    );
    let pki = TestPki::generate("kubernetes", "unused").expect("pki");
    const TOKEN: &str = "k8s-aws-v1.exec-token";
    let (url, seen) = api_server(&pki, TOKEN, answers);
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = dir.path().join("aws");
    std::fs::write(&plugin, EXEC_PLUGIN).expect("write plugin");
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod plugin");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: \"{url}\"
    certificate-authority: {}
users:
- name: test
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {}
      args: [eks, get-token, --cluster-name, test]
      env:
      - name: AWS_PROFILE
        value: platform
      interactiveMode: IfAvailable
      installHint: install the AWS CLI
contexts:
- name: test
  context: {{cluster: test, user: test}}
current-context: test
",
            pki.ca_cert.display(),
            plugin.display()
        ),
    )
    .expect("write kubeconfig");
    // 0.6101 CPU-seconds per second for the running pod: 305% of its 200m request.
    let expo = php_apache_load_now();
    let expo_file = dir.path().join("cadvisor.prom");
    std::fs::write(&expo_file, expo).expect("write exposition");
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(&hpa, PHP_APACHE_HPA).expect("write hpa");
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules/resource-metrics.yaml");
    let explain = |hpa: &PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .args(["explain", "-o", "json", "-f"])
            .arg(hpa)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--config")
            .arg(&rules)
            .arg("--load-exposition")
            .arg(&expo_file)
            .output()
            .expect("run explain")
    };
    let out = explain(&hpa);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("from the cluster: pods matching run=php-apache, 2 found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("current replicas: 2 (spec.replicas of the scale target"),
        "{stderr}"
    );
    // The cluster's HPA of the same name: what the controller last reported.
    assert!(
        stderr.contains("the controller last reported 2 current / 2 desired replicas"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let m = &v["metrics"][0];
    // 305% of the ready pod; scaling up, the Pending pod counts at 0: 610m of 400m = 152%,
    // ratio 3.04, ceil(3.04 x 2) = 7; the legacy limit allows max(2 x 2, 4) = 4.
    assert_eq!(m["current"], "305%", "{stdout}");
    assert_eq!(m["proposedReplicas"], 7, "{stdout}");
    let formula = m["formula"].as_str().unwrap_or_default();
    assert!(formula.contains("1 unready pods counted at 0"), "{formula}");
    assert_eq!(v["currentReplicas"], 2, "{stdout}");
    assert_eq!(v["desiredReplicas"], 4, "{stdout}");
    let paths = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        paths.contains(&"/apis/apps/v1/namespaces/default/deployments/php-apache/scale".into()),
        "{paths:?}"
    );
    // The target's pods come from one list of the selector, not a cluster-wide pod cache.
    assert!(
        !paths.iter().any(|p| p.starts_with("/api/v1/pods")),
        "{paths:?}"
    );

    // The HPA itself read from the cluster by name gives the same explanation, after the
    // controller's own last report.
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "php-apache", "-n", "default", "-o", "json"])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--config")
        .arg(&rules)
        .arg("--load-exposition")
        .arg(&expo_file)
        .output()
        .expect("run explain");
    let by_name = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{by_name}{stderr}");
    assert_eq!(by_name, stdout, "{stderr}");
    assert!(
        stderr.contains("the controller last reported 2 current / 2 desired replicas, last scaled at 2026-01-01T00:03:00Z")
            && stderr.contains("ScalingActive=True ValidMetricFound"),
        "{stderr}"
    );

    // KUBECONFIG listing two files whose current context is another cluster: --context
    // picks this one, its user coming from the other file.
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    let (clusters, users) = text.split_once("users:").expect("users section");
    let (users, contexts) = users.split_once("contexts:").expect("contexts section");
    let first = dir.path().join("clusters.yaml");
    std::fs::write(
        &first,
        clusters.to_string()
            + "- name: elsewhere\n  cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:"
            + &contexts.replace("current-context: test\n", "")
            + "- name: elsewhere\n  context: {cluster: elsewhere, user: test}\ncurrent-context: elsewhere\n",
    )
    .expect("write clusters");
    let second = dir.path().join("users.yaml");
    std::fs::write(
        &second,
        format!("apiVersion: v1\nkind: Config\nusers:{users}"),
    )
    .expect("write users");
    let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["explain", "php-apache", "-n", "default", "-o", "json"])
        .args(["--context", "test"])
        .env(
            "KUBECONFIG",
            std::env::join_paths([&first, &second]).expect("KUBECONFIG"),
        )
        .arg("--config")
        .arg(&rules)
        .arg("--load-exposition")
        .arg(&expo_file)
        .output()
        .expect("run explain");
    let merged = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{merged}{stderr}");
    assert_eq!(merged, stdout, "{stderr}");

    // A scale target the cluster does not have: the error names the condition.
    let missing = dir.path().join("hpa-missing.yaml");
    std::fs::write(
        &missing,
        PHP_APACHE_HPA.replace("name: php-apache}", "name: php-apache-v2}"),
    )
    .expect("write hpa");
    let out = explain(&missing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("FailedGetScale") && stderr.contains("php-apache-v2"),
        "{stderr}"
    );

    // With a second HPA on the same pods the controller refuses to scale.
    let (ambiguous_url, _) = api_server(&pki, TOKEN, ambiguous);
    repoint(&kubeconfig, &url, &ambiguous_url);
    let out = explain(&hpa);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let active = v["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "ScalingActive")
        .cloned()
        .unwrap_or_default();
    assert_eq!(active["reason"], "AmbiguousSelector", "{stdout}");
    assert_eq!(
        active["message"],
        "pods by selector run=php-apache are controlled by multiple HPAs: [default/keda-hpa-php-apache default/php-apache]"
    );
    assert_eq!(v["desiredReplicas"], 2, "{stdout}");

    let (no_selector_url, _) = api_server(&pki, TOKEN, no_selector);
    repoint(&kubeconfig, &ambiguous_url, &no_selector_url);
    let out = explain(&hpa);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(r#""reason": "InvalidSelector""#)
            && stdout.contains(r#""message": "selector is required""#),
        "{stdout}"
    );
}
