//! End to end: `serve --metric-rules` follows MetricRule objects from an API server (a local
//! stand-in answering LIST, WATCH and status PATCHes as kube-apiserver does) while
//! `kubectl get --raw` asks for their metrics: created, made invalid, deleted — served
//! metrics and status follow within seconds, each object in its own namespace only.
#![allow(clippy::unwrap_used)]

mod common;
use common::{tempfile_dir, wait_for, Kubectl, Promhpa};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_test_support::pki::TestPki;
use serde_json::{json, Value};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const LIST: &str = "/apis/metrics.promhpa.io/v1alpha1/metricrules";

/// What the stand-in holds: the objects, a resource version, the watch events so far, and
/// the status patches received.
#[derive(Default)]
struct Cluster {
    objects: Vec<Value>,
    version: u64,
    events: Vec<(u64, Value)>,
    patches: Vec<(String, Value)>,
}

impl Cluster {
    fn key(o: &Value) -> (String, String) {
        (
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    fn apply(&mut self, kind: &str, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let key = Cluster::key(&object);
        self.objects.retain(|o| Cluster::key(o) != key);
        if kind != "DELETED" {
            self.objects.push(object.clone());
        }
        self.events
            .push((self.version, json!({"type": kind, "object": object})));
    }
}

fn rule(namespace: &str, name: &str, generation: i64, metrics_query: &str) -> Value {
    json!({
        "apiVersion": "metrics.promhpa.io/v1alpha1",
        "kind": "MetricRule",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": {
            "seriesQuery": "jobs_waiting{namespace!=\"\",pod!=\"\"}",
            "resources": {"template": "<<.Resource>>"},
            "metricsQuery": metrics_query
        }
    })
}

fn respond(conn: &mut impl Write, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The stand-in API server over HTTPS with `pki`'s server certificate.
fn api_server(pki: &TestPki, cluster: Arc<Mutex<Cluster>>) -> String {
    let certs = vec![CertificateDer::from_pem_file(&pki.server_cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (tls, cluster) = (tls.clone(), cluster.clone());
            std::thread::spawn(move || {
                let Ok(session) = rustls::ServerConnection::new(tls) else {
                    return;
                };
                let mut conn = rustls::StreamOwned::new(session, conn);
                let mut reader = BufReader::new(&mut conn);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {
                            if let Some((n, v)) = line.split_once(':') {
                                if n.eq_ignore_ascii_case("content-length") {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let watch = query
                    .split('&')
                    .any(|p| p == "watch=true" || p == "watch=1");
                if method == "GET" && path == LIST && watch {
                    let since: u64 = query
                        .split('&')
                        .find_map(|p| p.strip_prefix("resourceVersion="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    // Hold the watch a moment, send what happened since, then end it; the
                    // client resumes from the last version, as after a server timeout.
                    std::thread::sleep(Duration::from_millis(300));
                    let events: Vec<Value> = cluster
                        .lock()
                        .unwrap()
                        .events
                        .iter()
                        .filter(|(v, _)| *v > since)
                        .map(|(_, e)| e.clone())
                        .collect();
                    let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
                    for e in events {
                        let line = format!("{e}\n");
                        let _ = write!(conn, "{:x}\r\n{line}\r\n", line.len());
                    }
                    let _ = write!(conn, "0\r\n\r\n");
                } else if method == "GET" && path == LIST {
                    let c = cluster.lock().unwrap();
                    let list = json!({
                        "apiVersion": "metrics.promhpa.io/v1alpha1",
                        "kind": "MetricRuleList",
                        "metadata": {"resourceVersion": c.version.to_string()},
                        "items": c.objects,
                    });
                    respond(&mut conn, "200 OK", &list.to_string());
                } else if method == "PATCH" && path.ends_with("/status") {
                    let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut c = cluster.lock().unwrap();
                    c.patches.push((path.to_string(), patch.clone()));
                    let name = path.rsplit('/').nth(1).unwrap_or_default().to_string();
                    let object = c
                        .objects
                        .iter()
                        .find(|o| o["metadata"]["name"] == name.as_str())
                        .cloned();
                    match object {
                        Some(mut o) => {
                            o["status"] = patch["status"].clone();
                            respond(&mut conn, "200 OK", &o.to_string());
                        }
                        None => respond(
                            &mut conn,
                            "404 Not Found",
                            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
                        ),
                    }
                } else {
                    respond(
                        &mut conn,
                        "404 Not Found",
                        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
                    );
                }
                conn.conn.send_close_notify();
                let _ = conn.flush();
            });
        }
    });
    url
}

/// The last status patched for `namespace/name`.
fn status(cluster: &Mutex<Cluster>, namespace: &str, name: &str) -> Value {
    let suffix = format!("/namespaces/{namespace}/metricrules/{name}/status");
    cluster
        .lock()
        .unwrap()
        .patches
        .iter()
        .rev()
        .find(|(p, _)| p.ends_with(&suffix))
        .map(|(_, p)| p["status"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn metric_rules_are_served_in_their_namespace_and_their_status_follows() {
    let dir = tempfile_dir("metric-rules");
    let pki = TestPki::generate("metric-rules-ca", "promhpa").unwrap();
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let good = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)";
    {
        let mut c = cluster.lock().unwrap();
        c.apply("ADDED", rule("team-a", "rps", 1, good));
        // names another namespace: invalid, never served
        c.apply(
            "ADDED",
            rule(
                "team-b",
                "sneaky",
                1,
                "sum(<<.Series>>{namespace=\"team-a\"}) by (pod)",
            ),
        );
    }
    let url = api_server(&pki, cluster.clone());
    let kubeconfig = dir.join("cluster.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"{url}\", certificate-authority: \"{}\"}}\nusers:\n- name: u\n  user: {{token: promhpa-sa}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n",
            pki.ca_cert.display()
        ),
    )
    .unwrap();
    let objects = dir.join("objects.yaml");
    std::fs::write(
        &objects,
        "- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: team-a}}\n- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: team-b}}\n",
    )
    .unwrap();
    let exposition = "jobs_waiting{namespace=\"team-a\",pod=\"web-1\"} 3\njobs_waiting{namespace=\"team-b\",pod=\"web-1\"} 7\n";
    let data = dir.join("jobs.prom");
    std::fs::write(&data, exposition).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, "rules: []\n").unwrap();
    let server = Promhpa::start(
        &[
            format!("--config={}", rules.display()),
            format!("--objects={}", objects.display()),
            format!("--load-exposition={}", data.display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--metric-rules".into(),
            "--metrics-relist-interval=2s".into(),
            "--insecure-skip-delegated-auth".into(),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    let raw = |ns: &str| {
        let out = kubectl.raw(&format!(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{ns}/pods/web-1/jobs_waiting"
        ));
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            Ok(v["items"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };

    // team-a's rule is served in team-a, with team-a's series
    wait_for("team-a's metric", &server, || raw("team-a").is_ok());
    assert_eq!(raw("team-a").unwrap(), "3");
    // and nowhere else; team-b's own object is invalid
    assert!(raw("team-b").unwrap_err().contains("NotFound"));
    wait_for("the statuses", &server, || {
        status(&cluster, "team-a", "rps")["conditions"][0]["status"] == "True"
            && status(&cluster, "team-b", "sneaky")["conditions"][0]["status"] == "False"
    });
    assert_eq!(
        status(&cluster, "team-a", "rps")["metricNames"],
        "pods/jobs_waiting"
    );
    let why = status(&cluster, "team-b", "sneaky")["conditions"][0]["message"].clone();
    assert!(
        why.as_str().unwrap().contains("spec.metricsQuery")
            && why
                .as_str()
                .unwrap()
                .contains("serves namespace \"team-b\" only"),
        "{why}"
    );

    // team-b creates a valid rule: served in team-b with team-b's series
    cluster
        .lock()
        .unwrap()
        .apply("ADDED", rule("team-b", "rps", 1, good));
    wait_for("team-b's metric", &server, || raw("team-b").is_ok());
    assert_eq!(raw("team-b").unwrap(), "7");
    assert_eq!(raw("team-a").unwrap(), "3");

    // team-a makes its rule invalid: no longer served, and its status says why
    cluster
        .lock()
        .unwrap()
        .apply("MODIFIED", rule("team-a", "rps", 2, "sum(<<.Series>>)"));
    wait_for("team-a's invalid rule", &server, || raw("team-a").is_err());
    wait_for("team-a's status", &server, || {
        let s = status(&cluster, "team-a", "rps");
        s["conditions"][0]["status"] == "False" && s["observedGeneration"] == 2
    });

    // team-b deletes its rule
    cluster
        .lock()
        .unwrap()
        .apply("DELETED", rule("team-b", "rps", 1, good));
    wait_for("team-b's deleted rule", &server, || raw("team-b").is_err());
}
