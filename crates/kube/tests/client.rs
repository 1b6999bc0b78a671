//! Credentials as users' kubeconfigs give them, against a local HTTPS stand-in for the API
//! server: tokens, token files, client certificates, exec credential plugins, merged
//! KUBECONFIG lists, contexts; and what the API server answers, on the wire.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use promhpa_auth::ReviewClient;
use promhpa_kube::client::ClusterAccess;
use promhpa_kube::delegated::Reviews;
use promhpa_kube::discovery::discover;
use promhpa_kube::KubeError;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};

mod common;
use common::standin::{Request, Response, StandIn};
use common::{ca, Ca};

const API: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}"#;

/// Answers `/api` to requests bearing `token` (any request when `None`), 401 otherwise.
async fn standin(token: Option<&'static str>, client_ca: Option<&Ca>) -> StandIn {
    StandIn::start(
        Arc::new(move |r: &Request| {
            if token.is_some() && r.bearer() != token {
                return Response::status(401, "Unauthorized");
            }
            match r.path.as_str() {
                "/api" => Response::Json(200, API.as_bytes().to_vec()),
                _ => Response::status(404, "the server could not find the requested resource"),
            }
        }),
        client_ca,
    )
    .await
}

async fn versions(access: &ClusterAccess) -> Result<Vec<String>, String> {
    let client = access.client().map_err(|e| e.to_string())?;
    client
        .list_core_api_versions()
        .await
        .map(|v| v.versions)
        .map_err(|e| e.to_string())
}

fn access(kubeconfig: &Path) -> ClusterAccess {
    ClusterAccess::kubeconfig(Some(kubeconfig))
}

#[tokio::test]
async fn token_and_token_file() {
    let server = standin(Some("sekret-token"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(dir.path(), "    token: sekret-token\n");
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);
    let log = server.log();
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].bearer(), Some("sekret-token"));

    // A token file relative to the kubeconfig, read (and re-read as it rotates) by the client.
    std::fs::write(dir.path().join("token"), "sekret-token\n").unwrap();
    let kc = server.kubeconfig(dir.path(), "    tokenFile: token\n");
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);

    // A wrong token is the server's 401.
    let kc = server.kubeconfig(dir.path(), "    token: stolen\n");
    let err = versions(&access(&kc)).await.unwrap_err();
    assert!(err.contains("401") || err.contains("Unauthorized"), "{err}");
}

/// A client certificate signed by `ca`, as PEM certificate and key.
fn client_cert(ca: &Ca, cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn client_certificates_as_files_or_data_and_the_cluster_ca() {
    let client_ca = ca("kubernetes-client");
    let server = standin(None, Some(&client_ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = client_cert(&client_ca, "promhpa");
    std::fs::write(dir.path().join("client.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("client.key"), &key).unwrap();
    let kc = server.kubeconfig(
        dir.path(),
        "    client-certificate: client.crt\n    client-key: client.key\n",
    );
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);

    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kc = server.kubeconfig(
        dir.path(),
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&cert),
            b64(&key)
        ),
    );
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);

    // Without the client certificate the server refuses the handshake.
    let kc = server.kubeconfig(dir.path(), "    token: t\n");
    assert!(versions(&access(&kc)).await.is_err());

    // A server certificate from another CA is refused.
    let text = std::fs::read_to_string(&kc).unwrap();
    let other = b64(&ca("someone-else").cert.pem());
    let start = text.find("certificate-authority-data: ").unwrap() + 28;
    let end = start + text[start..].find('\n').unwrap();
    std::fs::write(&kc, format!("{}{other}{}", &text[..start], &text[end..])).unwrap();
    assert!(versions(&access(&kc)).await.is_err());

    // insecure-skip-tls-verify skips that check (the client certificate still counts).
    let insecure = text
        .replace(&text[start - 28..end], "insecure-skip-tls-verify: true")
        .replace("    token: t\n", "");
    std::fs::write(
        &kc,
        format!("{insecure}    client-certificate: client.crt\n    client-key: client.key\n"),
    )
    .unwrap();
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);

    // A CA that is not PEM is refused.
    let bad = text.replace(&text[start..end], &b64("not a certificate"));
    std::fs::write(&kc, bad).unwrap();
    assert!(versions(&access(&kc)).await.is_err());
}

/// An exec credential plugin: checks its args and env, records the ExecCredential request
/// it was given, prints a token.
const PLUGIN: &str = r#"#!/bin/sh
[ "$1" = "token" ] && [ "$2" = "--cluster" ] && [ "$3" = "standin" ] || { echo "bad args: $*" >&2; exit 1; }
[ "$PLUGIN_REGION" = "eu-west-1" ] || { echo "PLUGIN_REGION not set" >&2; exit 1; }
printf '%s' "$KUBERNETES_EXEC_INFO" > "$(dirname "$0")/exec-info.json"
echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"exec-token-7"}}'
"#;

fn exec_user(command: &str, extra: &str) -> String {
    format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      args: [token, --cluster, standin]\n      env:\n      - name: PLUGIN_REGION\n        value: eu-west-1\n{extra}"
    )
}

#[tokio::test]
async fn exec_credential_plugins() {
    let server = standin(Some("exec-token-7"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("get-token.sh");
    std::fs::write(&plugin, PLUGIN).unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A relative command with a path separator is relative to the kubeconfig.
    let kc = server.kubeconfig(
        dir.path(),
        &exec_user("./get-token.sh", "      interactiveMode: IfAvailable\n"),
    );
    assert_eq!(versions(&access(&kc)).await.unwrap(), ["v1"]);
    assert_eq!(server.log()[0].bearer(), Some("exec-token-7"));
    // Standard input is not a terminal here: the plugin is told not to prompt.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("exec-info.json")).unwrap()).unwrap();
    assert_eq!(info["kind"], "ExecCredential");
    assert_eq!(info["spec"]["interactive"], false, "{info}");

    // interactiveMode Always needs a terminal.
    let kc = server.kubeconfig(
        dir.path(),
        &exec_user("./get-token.sh", "      interactiveMode: Always\n"),
    );
    let err = versions(&access(&kc)).await.unwrap_err();
    assert!(err.contains("interactiveMode Always"), "{err}");

    // A plugin that is not installed: its installHint says what to do.
    let kc = server.kubeconfig(
        dir.path(),
        &exec_user(
            "promhpa-test-no-such-plugin",
            "      installHint: install it with `brew install no-such-plugin`\n      interactiveMode: Never\n",
        ),
    );
    let err = versions(&access(&kc)).await.unwrap_err();
    assert!(
        err.contains("promhpa-test-no-such-plugin")
            && err.contains("install it with `brew install no-such-plugin`"),
        "{err}"
    );
}

#[tokio::test]
async fn contexts_and_merged_kubeconfig_files() {
    let first = standin(Some("first-token"), None).await;
    let second = standin(Some("second-token"), None).await;
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // Clusters and contexts in one file, users in another, as KUBECONFIG lists them.
    let clusters = dir.path().join("clusters.yaml");
    std::fs::write(
        &clusters,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: first\nclusters:\n- name: first\n  cluster: {{server: \"{}\", certificate-authority-data: {}}}\n- name: second\n  cluster: {{server: \"{}\", certificate-authority-data: {}}}\ncontexts:\n- name: first\n  context: {{cluster: first, user: first}}\n- name: second\n  context: {{cluster: second, user: second, namespace: shop}}\n",
            first.url,
            b64(&first.ca.cert.pem()),
            second.url,
            b64(&second.ca.cert.pem())
        ),
    )
    .unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        "apiVersion: v1\nkind: Config\nusers:\n- name: first\n  user: {token: first-token}\n- name: second\n  user: {token: second-token}\n",
    )
    .unwrap();
    let list = std::env::join_paths([&clusters, &users]).unwrap();
    // The only test in this file that reads KUBECONFIG.
    std::env::set_var("KUBECONFIG", &list);
    let merged = ClusterAccess::default();
    assert_eq!(versions(&merged).await.unwrap(), ["v1"]);
    assert_eq!(first.log().len(), 1);
    let other = ClusterAccess {
        kubeconfig: None,
        context: Some("second".into()),
    };
    let config = other.config().unwrap();
    assert_eq!(config.default_namespace, "shop");
    assert_eq!(versions(&other).await.unwrap(), ["v1"]);
    assert_eq!(second.log().len(), 1);
    let missing = ClusterAccess {
        kubeconfig: None,
        context: Some("third".into()),
    };
    let err = missing.config().unwrap_err().to_string();
    assert!(err.contains("context \"third\" not found"), "{err}");
    std::env::remove_var("KUBECONFIG");

    // --context with an explicit file.
    let both = dir.path().join("both.yaml");
    let text = std::fs::read_to_string(&clusters).unwrap()
        + "users:\n- name: first\n  user: {token: first-token}\n- name: second\n  user: {token: second-token}\n";
    std::fs::write(&both, text).unwrap();
    let chosen = ClusterAccess {
        kubeconfig: Some(both),
        context: Some("second".into()),
    };
    assert_eq!(versions(&chosen).await.unwrap(), ["v1"]);
    assert_eq!(second.log().len(), 2);
}

#[tokio::test]
async fn settings_that_cannot_be_honoured_are_named() {
    let server = standin(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(
        dir.path(),
        "    token: t\n    username: u\n    password: p\n",
    );
    let err = access(&kc).config().unwrap_err().to_string();
    assert!(err.contains("more than one authentication method"), "{err}");
    let kc = server.kubeconfig(dir.path(), "    auth-provider: {name: azure, config: {}}\n");
    let err = versions(&access(&kc)).await.unwrap_err();
    assert!(err.contains("azure"), "{err}");
    let kc = server.kubeconfig(dir.path(), "    tokne: t\n");
    let err = access(&kc).config().unwrap_err().to_string();
    assert!(err.contains("users[].user.tokne"), "{err}");
}

#[tokio::test]
async fn api_answers_on_the_wire() {
    let server = StandIn::start(
        Arc::new(|r: &Request| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api") => Response::status(403, "forbidden: User \"system:serviceaccount:promhpa:promhpa\" cannot get path \"/api\""),
            ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => Response::json(
                201,
                &serde_json::json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": {}, "status": {"allowed": true}}),
            ),
            _ => Response::status(404, "not found"),
        }),
        None,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(dir.path(), "    token: sekret-token\n");
    let client = access(&kc).client().unwrap();

    let err = discover(&client).await.unwrap_err();
    match &err {
        KubeError::Status { code, message, .. } => {
            assert_eq!(*code, 403);
            assert!(message.starts_with("forbidden: User"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let created = Reviews(client)
        .create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            br#"{"kind":"SubjectAccessReview"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&created).contains("\"allowed\":true"));
    let post = server.log().pop().unwrap();
    assert_eq!(post.method, "POST");
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.bearer(), Some("sekret-token"));
    assert_eq!(post.body, br#"{"kind":"SubjectAccessReview"}"#);

    // Nothing listens on this port once the listener is dropped.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let text = std::fs::read_to_string(&kc)
        .unwrap()
        .replace(&server.url, &format!("https://127.0.0.1:{port}"));
    std::fs::write(&kc, text).unwrap();
    let client = access(&kc).client().unwrap();
    let err = discover(&client).await.unwrap_err();
    assert!(matches!(err, KubeError::Transport { .. }), "{err:?}");
}
