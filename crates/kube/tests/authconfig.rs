//! Following kube-system/extension-apiserver-authentication: the CAs and header names it
//! publishes are applied at start and again when it changes (a CA rotation).
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use promhpa_auth::authn::AuthnSources;
use promhpa_auth::{Authenticator, DelegatingAuthenticator, SystemClock};
use promhpa_kube::authconfig::{follow_authentication_config, AuthnState};

mod common;
use common::standin::{Request, Response, StandIn};
use common::{ca, client, Ca};

/// The configmap as the API server returns it.
fn configmap(front_proxy: &Ca, client_ca: &Ca, rv: u32) -> serde_json::Value {
    serde_json::json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "extension-apiserver-authentication",
            "namespace": "kube-system",
            "uid": "0c5b8d3e-6f1a-4b2c-9d8e-7f6a5b4c3d2e",
            "resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-11-19T08:00:00Z"
        },
        "data": {
            "client-ca-file": client_ca.cert.pem(),
            "requestheader-allowed-names": "[\"front-proxy-client\"]",
            "requestheader-client-ca-file": front_proxy.cert.pem(),
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]"
        }
    })
}

struct Fake {
    object: Mutex<Option<Vec<u8>>>,
    watches: Mutex<VecDeque<Vec<Vec<u8>>>>,
    log: Mutex<Vec<String>>,
}

impl Fake {
    /// The configmap, its list (as a watcher's list sees it), or a watch that carries the
    /// next queued events and ends (then quiet watches).
    fn answer(&self, request: &Request) -> Response {
        self.log.lock().unwrap().push(request.path.clone());
        if request.is_watch() {
            return match self.watches.lock().unwrap().pop_front() {
                Some(lines) => Response::Watch { lines, close: true },
                None => Response::Watch {
                    lines: Vec::new(),
                    close: false,
                },
            };
        }
        let Some(object) = self.object.lock().unwrap().clone() else {
            return Response::status(
                403,
                "configmaps \"extension-apiserver-authentication\" is forbidden",
            );
        };
        let object: serde_json::Value = serde_json::from_slice(&object).unwrap();
        if request.base().ends_with("/configmaps") {
            return Response::json(
                200,
                &serde_json::json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": object["metadata"]["resourceVersion"]}, "items": [object]}),
            );
        }
        Response::json(200, &object)
    }

    /// Serves this fake behind a local HTTPS stand-in; a client of it.
    async fn serve(self: &Arc<Self>) -> (StandIn, kube::Client, tempfile::TempDir) {
        let fake = self.clone();
        let standin = StandIn::start(Arc::new(move |r: &Request| fake.answer(r)), None).await;
        let (client, dir) = standin.client("    token: promhpa\n");
        (standin, client, dir)
    }
}

fn as_user(name: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("X-Remote-User", HeaderValue::from_str(name).unwrap());
    h
}

#[tokio::test]
async fn configmap_is_applied_and_followed_through_a_ca_rotation() {
    let old_fp = ca("front-proxy-ca");
    let new_fp = ca("front-proxy-ca-rotated");
    let client_ca = ca("kubernetes-ca");
    let mut event = serde_json::to_vec(&serde_json::json!({
        "type": "MODIFIED",
        "object": configmap(&new_fp, &client_ca, 2),
    }))
    .unwrap();
    event.push(b'\n');
    let fake = Arc::new(Fake {
        object: Mutex::new(Some(
            serde_json::to_vec(&configmap(&old_fp, &client_ca, 1)).unwrap(),
        )),
        watches: Mutex::new(VecDeque::from(vec![vec![event]])),
        log: Mutex::new(Vec::new()),
    });
    let authn = Arc::new(DelegatingAuthenticator::new(
        AuthnSources::default(),
        None,
        Arc::new(SystemClock),
    ));
    let old_proxy = client(&old_fp, "front-proxy-client");
    let new_proxy = client(&new_fp, "front-proxy-client");

    // Before: nothing is trusted.
    assert!(!matches!(
        authn
            .authenticate(Some(&old_proxy), &as_user("alice"))
            .await,
        Ok(Some(_))
    ));

    let (_standin, kube, _dir) = fake.serve().await;
    let task = follow_authentication_config(
        kube.clone(),
        authn.clone(),
        Arc::new(AuthnState::new(AuthnSources::default())),
        false,
    )
    .await
    .unwrap();
    let user = authn
        .authenticate(Some(&old_proxy), &as_user("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "alice");
    let sources = authn.sources();
    assert_eq!(
        sources.request_header.as_ref().unwrap().allowed_names,
        vec!["front-proxy-client"]
    );

    // The rotated CA arrives through the watch; the old proxy certificate stops working.
    for _ in 0..100 {
        if authn
            .authenticate(Some(&new_proxy), &as_user("bob"))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        authn
            .authenticate(Some(&new_proxy), &as_user("bob"))
            .await
            .unwrap()
            .unwrap()
            .name,
        "bob"
    );
    assert!(!matches!(
        authn
            .authenticate(Some(&old_proxy), &as_user("alice"))
            .await,
        Ok(Some(_))
    ));
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(
        log[0],
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    );
    assert!(
        log[1].contains("fieldSelector=metadata.name%3Dextension-apiserver-authentication"),
        "{log:?}"
    );
    task.abort();
}

#[tokio::test]
async fn lookup_failure_is_fatal_unless_tolerated() {
    let fake = Arc::new(Fake {
        object: Mutex::new(None),
        watches: Mutex::new(VecDeque::new()),
        log: Mutex::new(Vec::new()),
    });
    let authn = Arc::new(DelegatingAuthenticator::new(
        AuthnSources::default(),
        None,
        Arc::new(SystemClock),
    ));
    let (_standin, kube, _dir) = fake.serve().await;
    let err = follow_authentication_config(
        kube.clone(),
        authn.clone(),
        Arc::new(AuthnState::new(AuthnSources::default())),
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.status_code(), Some(403));

    // Tolerated: the flags' settings are used.
    let client_ca = ca("kubernetes-ca");
    let flags = AuthnSources {
        request_header: None,
        client_ca: Some(
            promhpa_auth::CaBundle::from_pem("ca.crt", client_ca.cert.pem().as_bytes()).unwrap(),
        ),
    };
    let task =
        follow_authentication_config(kube, authn.clone(), Arc::new(AuthnState::new(flags)), true)
            .await
            .unwrap();
    let carol = client(&client_ca, "carol");
    assert_eq!(
        authn
            .authenticate(Some(&carol), &HeaderMap::new())
            .await
            .unwrap()
            .unwrap()
            .name,
        "carol"
    );
    task.abort();
}

#[tokio::test]
async fn an_undecodable_change_keeps_the_previous_settings() {
    let fp = ca("front-proxy-ca");
    let client_ca = ca("kubernetes-ca");
    let line = |v: serde_json::Value| {
        let mut l = serde_json::to_vec(&v).unwrap();
        l.push(b'\n');
        l
    };
    // A change whose data is not a string map, then one that is not an object at all.
    let mut broken = configmap(&fp, &client_ca, 2);
    broken["data"]["client-ca-file"] = serde_json::json!(5);
    let fake = Arc::new(Fake {
        object: Mutex::new(Some(
            serde_json::to_vec(&configmap(&fp, &client_ca, 1)).unwrap(),
        )),
        watches: Mutex::new(VecDeque::from(vec![vec![
            line(serde_json::json!({"type": "MODIFIED", "object": broken})),
            line(serde_json::json!({"type": "MODIFIED", "object": "garbage"})),
        ]])),
        log: Mutex::new(Vec::new()),
    });
    let authn = Arc::new(DelegatingAuthenticator::new(
        AuthnSources::default(),
        None,
        Arc::new(SystemClock),
    ));
    let (_standin, kube, _dir) = fake.serve().await;
    let task = follow_authentication_config(
        kube.clone(),
        authn.clone(),
        Arc::new(AuthnState::new(AuthnSources::default())),
        false,
    )
    .await
    .unwrap();
    // Let the watch deliver both events and end; later watches stay quiet.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.watches.lock().unwrap().is_empty());
    let proxy = client(&fp, "front-proxy-client");
    assert_eq!(
        authn
            .authenticate(Some(&proxy), &as_user("alice"))
            .await
            .unwrap()
            .unwrap()
            .name,
        "alice"
    );
    let carol = client(&client_ca, "carol");
    assert_eq!(
        authn
            .authenticate(Some(&carol), &HeaderMap::new())
            .await
            .unwrap()
            .unwrap()
            .name,
        "carol"
    );
    task.abort();
}
