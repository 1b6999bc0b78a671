//! The HTTP client against a local server speaking the Kubernetes API's wire format.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use promhpa_kube_lookup::api::{KubeApi, ACCEPT_METADATA, ACCEPT_METADATA_LIST};
use promhpa_kube_lookup::config::KubeConfig;
use promhpa_kube_lookup::http::HttpKubeApi;
use promhpa_kube_lookup::KubeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned answer: status line, and body chunks written one by one (chunked encoding).
struct Canned {
    status: &'static str,
    chunks: Vec<&'static str>,
}

/// Serves canned answers in order on 127.0.0.1 and records each request's head and body.
async fn serve(answers: Vec<Canned>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            let head_end = loop {
                let n = sock.read(&mut tmp).await.unwrap();
                buf.extend_from_slice(&tmp[..n]);
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break pos + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let n = sock.read(&mut tmp).await.unwrap();
                buf.extend_from_slice(&tmp[..n]);
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            let mut out = format!(
                "HTTP/1.1 {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                answer.status
            );
            sock.write_all(out.as_bytes()).await.unwrap();
            for chunk in answer.chunks {
                out = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                sock.write_all(out.as_bytes()).await.unwrap();
                sock.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            sock.write_all(b"0\r\n\r\n").await.unwrap();
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn get_watch_and_post_on_the_wire() {
    let (server, seen) = serve(vec![
        Canned {
            status: "200 OK",
            chunks: vec![r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"7"},"items":[]}"#],
        },
        Canned {
            status: "200 OK",
            // Events split across chunks, two in one chunk, the last without a newline.
            chunks: vec![
                "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n{\"type\":\"MOD",
                "IFIED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n{\"type\":\"BOOKMARK\",",
                "\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}",
            ],
        },
        Canned {
            status: "403 Forbidden",
            chunks: vec![r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: User \"system:serviceaccount:promhpa:promhpa\" cannot list resource \"pods\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"kind":"pods"},"code":403}"#],
        },
        Canned {
            status: "201 Created",
            chunks: vec![r#"{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{},"status":{"allowed":true}}"#],
        },
    ])
    .await;
    let api = HttpKubeApi::new(KubeConfig {
        server: server.clone(),
        token: Some("sekret-token".into()),
        ..KubeConfig::default()
    })
    .unwrap();

    let body = api
        .get("/api/v1/pods?limit=500", ACCEPT_METADATA_LIST)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("\"resourceVersion\":\"7\""));

    let mut watch = api
        .watch("/api/v1/pods?watch=1&resourceVersion=7", ACCEPT_METADATA)
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(event) = watch.next_event().await {
        let v: serde_json::Value = serde_json::from_slice(&event.unwrap()).unwrap();
        events.push(v["type"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(events, vec!["ADDED", "MODIFIED", "BOOKMARK"]);

    let err = api
        .get("/api/v1/services?limit=500", ACCEPT_METADATA_LIST)
        .await
        .unwrap_err();
    match &err {
        KubeError::Status { code, message, .. } => {
            assert_eq!(*code, 403);
            assert!(message.starts_with("pods is forbidden: User"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let created = promhpa_auth::ReviewClient::create(
        &api,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        br#"{"kind":"SubjectAccessReview"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&created).contains("\"allowed\":true"));

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    let head = |i: usize| requests[i].to_ascii_lowercase();
    assert!(
        head(0).starts_with("get /api/v1/pods?limit=500 http/1.1"),
        "{}",
        head(0)
    );
    assert!(head(0).contains("authorization: bearer sekret-token"));
    assert!(head(0).contains(&format!(
        "accept: {}",
        ACCEPT_METADATA_LIST.to_ascii_lowercase()
    )));
    assert!(head(1).contains(&format!("accept: {}", ACCEPT_METADATA.to_ascii_lowercase())));
    assert!(head(3).starts_with("post /apis/authorization.k8s.io/v1/subjectaccessreviews"));
    assert!(head(3).contains("content-type: application/json"));
    assert!(requests[3].ends_with(r#"{"kind":"SubjectAccessReview"}"#));
}

#[tokio::test]
async fn token_files_are_read_and_unreachable_servers_are_transport_errors() {
    let dir = std::env::temp_dir().join(format!("promhpa-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "projected-token\n").unwrap();
    let (server, seen) = serve(vec![Canned {
        status: "200 OK",
        chunks: vec![r#"{"versions":["v1"]}"#],
    }])
    .await;
    let api = HttpKubeApi::new(KubeConfig {
        server,
        token_file: Some(dir.join("token")),
        ..KubeConfig::default()
    })
    .unwrap();
    api.get("/api", "application/json").await.unwrap();
    assert!(seen.lock().unwrap()[0]
        .to_ascii_lowercase()
        .contains("authorization: bearer projected-token\r\n"));
    let _ = std::fs::remove_dir_all(&dir);

    // Nothing listens on this port once the listener is dropped.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let api = HttpKubeApi::new(KubeConfig {
        server: format!("http://{addr}"),
        ..KubeConfig::default()
    })
    .unwrap();
    let err = api.get("/api", "application/json").await.unwrap_err();
    assert!(matches!(err, KubeError::Transport { .. }), "{err:?}");

    // A CA bundle that is not PEM is refused up front.
    let bad = HttpKubeApi::new(KubeConfig {
        server: "https://127.0.0.1:1".into(),
        ca_pem: Some(b"not a certificate".to_vec()),
        ..KubeConfig::default()
    });
    let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("no PEM certificate"), "{err}");
}
