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

mod tls {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{RootCertStore, ServerConfig};

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn leaf(
        ca: &Ca,
        cn: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        (params.signed_by(&key, &ca.cert, &ca.key).unwrap(), key)
    }

    /// An HTTPS server that requires a client certificate of `client_ca` and answers `/api`.
    async fn https_server(server_ca: &Ca, client_ca: &Ca) -> String {
        let (cert, key) = leaf(
            server_ca,
            "kube-apiserver",
            vec!["127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(client_ca.cert.der().clone()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (sock, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let body = br#"{"kind":"APIVersions","versions":["v1"]}"#;
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        format!("https://127.0.0.1:{}", addr.port())
    }

    #[tokio::test]
    async fn https_with_cluster_ca_and_client_certificate() {
        let server_ca = ca("kubernetes");
        let client_ca = ca("kubernetes-client");
        let server = https_server(&server_ca, &client_ca).await;
        let (cert, key) = leaf(
            &client_ca,
            "promhpa",
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let config = KubeConfig {
            server: server.clone(),
            ca_pem: Some(server_ca.cert.pem().into_bytes()),
            client_cert_pem: Some(cert.pem().into_bytes()),
            client_key_pem: Some(key.serialize_pem().into_bytes()),
            ..KubeConfig::default()
        };
        let api = HttpKubeApi::new(config.clone()).unwrap();
        let body = api.get("/api", "application/json").await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"versions\":[\"v1\"]"));

        // A server certificate from another CA is refused.
        let wrong = HttpKubeApi::new(KubeConfig {
            ca_pem: Some(client_ca.cert.pem().into_bytes()),
            ..config.clone()
        })
        .unwrap();
        assert!(matches!(
            wrong.get("/api", "application/json").await,
            Err(KubeError::Transport { .. })
        ));
        // Without the client certificate the server refuses the handshake.
        let anonymous = HttpKubeApi::new(KubeConfig {
            client_cert_pem: None,
            client_key_pem: None,
            ..config
        })
        .unwrap();
        assert!(anonymous.get("/api", "application/json").await.is_err());
    }
}
