//! The delegated authentication/authorization guard built from flags and a kubeconfig,
//! against a local server answering as a Kubernetes API server does: the
//! extension-apiserver-authentication configmap, TokenReviews and SubjectAccessReviews.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use promhpa_kube::delegated::{delegated_auth, DelegatedAuthOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{ca, client};

type Log = Arc<Mutex<Vec<(String, String, String)>>>;

async fn read_request(sock: &mut TcpStream) -> Option<(String, String, String, String)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = sock.read(&mut tmp).await.ok()?;
        buf.extend_from_slice(&tmp[..n]);
    }
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    Some((method, path, head, body))
}

/// A local API server: GET of the configmap, a watch that stays open, TokenReviews that
/// authenticate one token, SubjectAccessReviews that allow only the HPA controller.
async fn api_server(configmap: serde_json::Value) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let configmap = configmap.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some((method, path, head, body)) = read_request(&mut sock).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .push((method.clone(), path.clone(), body.clone()));
                assert!(
                    head.to_ascii_lowercase()
                        .contains("authorization: bearer promhpa-sa-token"),
                    "{head}"
                );
                if path.contains("watch=true") || path.contains("watch=1") {
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                        .await;
                    std::future::pending::<()>().await;
                }
                let (status, answer) = match (method.as_str(), path.as_str()) {
                    ("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication") => {
                        ("200 OK", configmap)
                    }
                    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews") => {
                        let review: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let ok = review["spec"]["token"] == "reader-token";
                        let status = if ok {
                            serde_json::json!({"authenticated": true, "user": {"username": "system:serviceaccount:monitoring:reader", "uid": "u-1", "groups": ["system:serviceaccounts", "system:authenticated"]}, "audiences": ["https://kubernetes.default.svc.cluster.local"]})
                        } else {
                            serde_json::json!({"user": {}, "error": "invalid bearer token"})
                        };
                        ("201 Created", serde_json::json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": review["spec"], "status": status}))
                    }
                    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
                        let review: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let allowed = review["spec"]["user"] == "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
                        let mut status = serde_json::json!({"allowed": allowed});
                        if allowed {
                            status["reason"] = "RBAC: allowed by ClusterRoleBinding \"promhpa-hpa-controller\" of ClusterRole \"promhpa-metrics-reader\" to ServiceAccount \"horizontal-pod-autoscaler/kube-system\"".into();
                        }
                        ("201 Created", serde_json::json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": review["spec"], "status": status}))
                    }
                    _ => ("404 Not Found", serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404})),
                };
                let body = serde_json::to_vec(&answer).unwrap();
                let head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    (format!("http://{addr}"), log)
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

#[tokio::test]
async fn guard_built_from_flags_and_kubeconfig() {
    let front_proxy = ca("front-proxy-ca");
    let cluster_ca = ca("kubernetes-ca");
    let configmap = serde_json::json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system", "resourceVersion": "41"},
        "data": {
            "client-ca-file": cluster_ca.cert.pem(),
            "requestheader-allowed-names": "[\"front-proxy-client\"]",
            "requestheader-client-ca-file": front_proxy.cert.pem(),
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]"
        }
    });
    let (server, log) = api_server(configmap).await;
    let dir = std::env::temp_dir().join(format!("promhpa-delegated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\nusers:\n- name: u\n  user: {{token: promhpa-sa-token}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n"
        ),
    )
    .unwrap();
    let options = DelegatedAuthOptions {
        authentication_kubeconfig: Some(kubeconfig.clone()),
        authorization_kubeconfig: Some(kubeconfig),
        ..DelegatedAuthOptions::default()
    };
    let auth = delegated_auth(&options).await.unwrap();
    let guard = &auth.guard;
    let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second?labelSelector=app%3Dweb";

    // The HPA controller through the aggregator: front-proxy certificate + X-Remote-* headers.
    let proxy = client(&front_proxy, "front-proxy-client");
    let hpa = headers(&[
        (
            "X-Remote-User",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ),
        ("X-Remote-Group", "system:serviceaccounts"),
    ]);
    let ok = guard
        .check(&Method::GET, path, Some(&proxy), &hpa)
        .await
        .unwrap();
    assert_eq!(
        ok.user.name,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );

    // The same headers from a pod without the front-proxy certificate carry no identity:
    // the request is authorized as system:anonymous, as Kubernetes' delegated
    // authentication does, and the SubjectAccessReview refuses it.
    let rej = guard
        .check(&Method::GET, path, None, &hpa)
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
    assert!(
        rej.message.contains("\"system:anonymous\""),
        "{}",
        rej.message
    );

    // A service account token: TokenReview says who, SubjectAccessReview says no.
    let reader = headers(&[("Authorization", "Bearer reader-token")]);
    let rej = guard
        .check(&Method::GET, path, None, &reader)
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::FORBIDDEN);
    assert!(rej.message.contains("User \"system:serviceaccount:monitoring:reader\" cannot get resource \"pods/http_requests_per_second\""), "{}", rej.message);
    let bad = headers(&[("Authorization", "Bearer stolen")]);
    assert_eq!(
        guard
            .check(&Method::GET, path, None, &bad)
            .await
            .unwrap_err()
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Health probes need nothing.
    guard
        .check(&Method::GET, "/readyz", None, &HeaderMap::new())
        .await
        .unwrap();

    let log = log.lock().unwrap().clone();
    let count = |m: &str, p: &str| {
        log.iter()
            .filter(|(method, path, _)| method == m && path.starts_with(p))
            .count()
    };
    assert_eq!(
        count(
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
        ),
        1
    );
    assert_eq!(
        count("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),
        2
    );
    // The HPA's, the anonymous caller's and the reader's.
    assert_eq!(
        count("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"),
        3
    );
    let sar = log
        .iter()
        .find(|(_, p, _)| p.ends_with("subjectaccessreviews"))
        .map(|(_, _, b)| b.clone())
        .unwrap();
    let sar: serde_json::Value = serde_json::from_str(&sar).unwrap();
    assert_eq!(sar["spec"]["resourceAttributes"]["version"], "v1beta2");
    assert_eq!(
        sar["spec"]["resourceAttributes"]["subresource"],
        "http_requests_per_second"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_rotated_request_header_ca_file_is_used_without_a_restart() {
    let old_ca = ca("old-front-proxy-ca");
    let new_ca = ca("new-front-proxy-ca");
    let configmap = serde_json::json!({
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system", "resourceVersion": "41"},
        "data": {"client-ca-file": ca("kubernetes-ca").cert.pem()}
    });
    let (server, _log) = api_server(configmap).await;
    let dir = std::env::temp_dir().join(format!("promhpa-rotate-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\nusers:\n- name: u\n  user: {{token: promhpa-sa-token}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n"
        ),
    )
    .unwrap();
    let ca_file = dir.join("front-proxy-ca.crt");
    std::fs::write(&ca_file, old_ca.cert.pem()).unwrap();
    let mut options = DelegatedAuthOptions {
        authentication_kubeconfig: Some(kubeconfig.clone()),
        authorization_kubeconfig: Some(kubeconfig),
        ca_file_check_interval: std::time::Duration::from_millis(100),
        ..DelegatedAuthOptions::default()
    };
    options.authn.requestheader_client_ca_file = Some(ca_file.clone());
    options.authn.requestheader_allowed_names = vec!["front-proxy-client".to_string()];
    let auth = delegated_auth(&options).await.unwrap();
    let path =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second";
    let hpa = headers(&[
        (
            "X-Remote-User",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ),
        ("X-Remote-Group", "system:serviceaccounts"),
    ]);
    let old_proxy = client(&old_ca, "front-proxy-client");
    let new_proxy = client(&new_ca, "front-proxy-client");
    auth.guard
        .check(&Method::GET, path, Some(&old_proxy), &hpa)
        .await
        .unwrap();
    let rej = auth
        .guard
        .check(&Method::GET, path, Some(&new_proxy), &hpa)
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::UNAUTHORIZED);

    // The front-proxy CA rotates on disk (a renewed Secret): the new one is trusted, the old
    // one no longer, without restarting.
    std::fs::write(&ca_file, new_ca.cert.pem()).unwrap();
    let start = std::time::Instant::now();
    while auth
        .guard
        .check(&Method::GET, path, Some(&new_proxy), &hpa)
        .await
        .is_err()
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rej = auth
        .guard
        .check(&Method::GET, path, Some(&old_proxy), &hpa)
        .await
        .unwrap_err();
    assert_eq!(rej.status, StatusCode::UNAUTHORIZED);
    std::fs::remove_dir_all(&dir).unwrap();
}
