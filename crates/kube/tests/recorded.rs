//! Object lookup and resource mapping against recorded Kubernetes API responses
//! (discovery documents, metadata-only lists and watch streams).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_core::selector::LabelSelector;
use promhpa_core::{GroupResource, LookupError, ObjectLookup};
use promhpa_kube::discovery::Discovery;
use promhpa_kube::KubeObjectLookup;

mod common;
use common::standin::{Request, Response, StandIn};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

enum Answer {
    Body(Vec<u8>),
    Error(u16, Vec<u8>),
}

/// A scripted watch: the event lines it carries before the server closes it.
enum Script {
    Lines(Vec<Vec<u8>>),
}

/// Serves recorded responses. A GET is answered by the first queued answer for its exact
/// path (query included), else for its path without query; the last answer of a queue is
/// kept for further requests. Watches are answered from their collection path's queue;
/// once it is empty a watch stays open without events, as a quiet watch does.
#[derive(Default)]
struct Recorded {
    gets: Mutex<HashMap<String, VecDeque<Answer>>>,
    watches: Mutex<HashMap<String, VecDeque<Script>>>,
    log: Mutex<Vec<String>>,
    /// Cache requests that did not ask for metadata only.
    not_metadata: Mutex<Vec<String>>,
}

impl Recorded {
    fn get(&self, path: &str, fixture_name: &str) -> &Self {
        self.push(path, Answer::Body(fixture(fixture_name)));
        self
    }

    fn fail(&self, path: &str, code: u16, fixture_name: &str) -> &Self {
        self.push(path, Answer::Error(code, fixture(fixture_name)));
        self
    }

    fn push(&self, path: &str, answer: Answer) {
        self.gets
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .push_back(answer);
    }

    fn replace(&self, path: &str, fixture_name: &str) {
        self.gets.lock().unwrap().remove(path);
        self.get(path, fixture_name);
    }

    fn watch(&self, collection: &str, script: Script) -> &Self {
        self.watches
            .lock()
            .unwrap()
            .entry(collection.to_string())
            .or_default()
            .push_back(script);
        self
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn discovery(&self) -> &Self {
        self.get("/api", "api.json")
            .get("/api/v1", "api-v1.json")
            .get("/apis", "apis.json")
            .get(
                "/apis/apiregistration.k8s.io/v1",
                "apis-apiregistration.k8s.io-v1.json",
            )
            .get("/apis/apps/v1", "apis-apps-v1.json")
            .get("/apis/events.k8s.io/v1", "apis-events.k8s.io-v1.json")
            .fail(
                "/apis/custom.metrics.k8s.io/v1beta2",
                503,
                "unavailable.json",
            )
            .get(
                "/apis/inference.example.com/v1alpha2",
                "apis-inference.example.com-v1alpha2.json",
            )
    }

    fn answer(&self, request: &Request) -> Response {
        let path = request.normalized_path();
        let path = path.as_str();
        self.log.lock().unwrap().push(path.to_string());
        let accept = request.header("accept").unwrap_or_default();
        if request.is_watch() {
            if !accept.contains("as=PartialObjectMetadata;") {
                self.not_metadata.lock().unwrap().push(path.to_string());
            }
            let script = self
                .watches
                .lock()
                .unwrap()
                .get_mut(request.base())
                .and_then(|q| q.pop_front());
            return match script {
                Some(Script::Lines(lines)) => Response::Watch { lines, close: true },
                None => Response::Watch {
                    lines: Vec::new(),
                    close: false,
                },
            };
        }
        if path.contains("limit=")
            && !path.contains("labelSelector=")
            && !accept.contains("as=PartialObjectMetadataList;")
        {
            self.not_metadata.lock().unwrap().push(path.to_string());
        }
        let mut gets = self.gets.lock().unwrap();
        let queue = if gets.contains_key(path) {
            gets.get_mut(path)
        } else {
            gets.get_mut(request.base())
        };
        let Some(queue) = queue else {
            return Response::status(404, "not recorded");
        };
        let answer = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().map(|a| match a {
                Answer::Body(b) => Answer::Body(b.clone()),
                Answer::Error(c, b) => Answer::Error(*c, b.clone()),
            })
        };
        match answer {
            Some(Answer::Body(b)) => Response::Json(200, b),
            Some(Answer::Error(code, body)) => Response::Json(code, body),
            None => Response::status(404, "not recorded"),
        }
    }

    /// Asserts that every cache list and watch asked for metadata only.
    fn assert_metadata_only(&self) {
        let not = self.not_metadata.lock().unwrap().clone();
        assert!(
            not.is_empty(),
            "cache requests not asking for metadata only: {not:?}"
        );
    }
}

/// The recorded API server behind a local HTTPS stand-in, and a client of it.
async fn serve(api: &Arc<Recorded>) -> (StandIn, kube::Client, tempfile::TempDir) {
    let recorded = api.clone();
    let standin = StandIn::start(Arc::new(move |r: &Request| recorded.answer(r)), None).await;
    let (client, dir) = standin.client("    token: recorded\n");
    (standin, client, dir)
}

fn lines(name: &str) -> Script {
    let text = fixture(name);
    Script::Lines(
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| [l, b"\n"].concat())
            .collect(),
    )
}

fn lookup(client: &kube::Client, min_refresh: Duration) -> KubeObjectLookup {
    let discovery = Arc::new(Discovery::new(client.clone(), min_refresh));
    KubeObjectLookup::new(client.clone(), discovery, Duration::from_secs(30))
}

fn sel(s: &str) -> LabelSelector {
    s.parse().unwrap()
}

/// Lets background tasks run until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn resource_names_resolve_through_discovery() {
    let api = Arc::new(Recorded::default());
    api.discovery();
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(10));
    for name in ["po", "pod", "pods", "Pod", "PODS"] {
        let m = l.resolve(name).await.unwrap();
        assert_eq!(m.group_resource, GroupResource::new("", "pods"), "{name}");
        assert_eq!(
            (m.version.as_str(), m.kind.as_str(), m.namespaced),
            ("v1", "Pod", true)
        );
    }
    for name in [
        "deployment",
        "deployments",
        "deploy",
        "Deployment",
        "deployments.apps",
        "deployment.apps",
        "deployments.v1.apps",
    ] {
        let m = l.resolve(name).await.unwrap();
        assert_eq!(
            m.group_resource,
            GroupResource::new("apps", "deployments"),
            "{name}"
        );
        assert_eq!(m.kind, "Deployment");
    }
    let ns = l.resolve("ns").await.unwrap();
    assert!(!ns.namespaced);
    // The core group wins over events.k8s.io for the unqualified name.
    assert_eq!(l.resolve("events").await.unwrap().group_resource.group, "");
    assert_eq!(
        l.resolve("events.events.k8s.io")
            .await
            .unwrap()
            .group_resource
            .group,
        "events.k8s.io"
    );
    // Subresources are not resources; an unavailable aggregated group does not break discovery.
    assert!(l.resolve("pods/log").await.is_err());
    assert!(l.resolve("apiservices").await.is_ok());
    assert_eq!(
        api.requests("/apis/apps/v1").len(),
        1,
        "the pods/log miss came within the minimum refresh interval"
    );
}

#[tokio::test]
async fn a_crd_installed_later_resolves_after_a_refresh() {
    let api = Arc::new(Recorded::default());
    api.discovery();
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(2));
    assert_eq!(l.resolve("pods").await.unwrap().kind, "Pod");
    assert_eq!(
        l.resolve("variantautoscalings").await,
        Err(LookupError::UnknownResource("variantautoscalings".into()))
    );
    let discoveries = api.requests("/apis/apps/v1").len();

    // The CRD is installed.
    api.replace("/apis", "apis-with-crd.json");
    // A miss within the minimum refresh interval does not hit the API server again.
    assert!(l.resolve("va").await.is_err());
    assert_eq!(api.requests("/apis/apps/v1").len(), discoveries);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = l.resolve("va").await.unwrap();
    assert_eq!(
        m.group_resource,
        GroupResource::new("inference.example.com", "variantautoscalings")
    );
    assert_eq!(
        (m.version.as_str(), m.kind.as_str()),
        ("v1alpha2", "VariantAutoscaling")
    );
    assert_eq!(
        l.resolve("VariantAutoscaling")
            .await
            .unwrap()
            .group_resource,
        m.group_resource
    );

    // Its objects are served from a watch cache started on first use.
    api.get(
        "/apis/inference.example.com/v1alpha2/variantautoscalings",
        "widgets-list.json",
    );
    let names = l
        .names(
            &m.group_resource,
            Some("llm-d-sim"),
            &LabelSelector::everything(),
        )
        .await
        .unwrap();
    assert_eq!(names, vec!["vllme-deployment"]);
    until("the watch after the list", || {
        !api.requests("/apis/inference.example.com/v1alpha2/variantautoscalings?watch")
            .is_empty()
    })
    .await;
    assert_eq!(
        api.requests("/apis/inference.example.com/v1alpha2/variantautoscalings?"),
        vec![
            "/apis/inference.example.com/v1alpha2/variantautoscalings?limit=500".to_string(),
            "/apis/inference.example.com/v1alpha2/variantautoscalings?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=3100".to_string(),
        ]
    );
}

/// Pods listed in two pages, watched (the first watch ends, the second expires with 410
/// Gone) and listed again.
fn pods_that_relist() -> Arc<Recorded> {
    let api = Arc::new(Recorded::default());
    api.discovery()
        .get("/api/v1/pods?limit=500", "pods-list-page1.json")
        .get(
            "/api/v1/pods?limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwMCwic3RhcnQiOiJzaG9wL3dlYi0yXHUwMDAwIn0%3D",
            "pods-list-page2.json",
        )
        // The list after the watch expired.
        .get("/api/v1/pods?limit=500", "pods-relist.json")
        .watch("/api/v1/pods", lines("pods-watch-1.jsonl"))
        .watch("/api/v1/pods", lines("pods-watch-2.jsonl"));
    api
}

#[tokio::test]
async fn watch_cache_follows_events_resumes_and_relists_after_gone() {
    let api = pods_that_relist();
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(10));
    let pods = GroupResource::new("", "pods");

    // The first request waits for the initial (paginated) list.
    let first = l.names(&pods, Some("shop"), &sel("app=web")).await.unwrap();
    assert!(
        first == vec!["web-1", "web-2"] || first.contains(&"web-3".to_string()),
        "{first:?}"
    );
    let cache = l.cache(&l.resolve("pods").await.unwrap());

    // Once the first watch ended, the cache resumes from the last resourceVersion it saw
    // (the bookmark's), then the second watch expires and the cache relists.
    until("the relist and a third watch", || {
        api.requests("/api/v1/pods?watch").len() >= 3
    })
    .await;
    assert_eq!(
        api.requests("/api/v1/pods?watch"),
        vec![
            "/api/v1/pods?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1000"
                .to_string(),
            "/api/v1/pods?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1010"
                .to_string(),
            "/api/v1/pods?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=2000"
                .to_string(),
        ]
    );
    assert_eq!(
        api.requests("/api/v1/pods?limit").len(),
        3,
        "two pages, then one relist after 410"
    );
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("app=web")).await.unwrap(),
        vec!["web-1", "web-3", "web-4"]
    );
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("app=web,tier=canary"))
            .await
            .unwrap(),
        vec!["web-1"]
    );
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("app=worker"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        l.names(&pods, Some("staging"), &sel("app")).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(cache.len(), 3);

    // Requests are answered from memory: no LIST once synced.
    let lists = api.requests("/api/v1/pods?limit").len();
    for _ in 0..50 {
        l.names(&pods, Some("shop"), &sel("tier in (frontend,canary)"))
            .await
            .unwrap();
    }
    assert_eq!(api.requests("/api/v1/pods?limit").len(), lists);
    assert_eq!(l.cached_resources(), vec![pods]);
    api.assert_metadata_only();
}

/// A cache first needed by a request on another runtime (a serving thread) runs on the
/// lookup's own, and goes on following the API server after that runtime has stopped.
#[tokio::test]
async fn a_cache_started_from_another_runtime_outlives_it() {
    let api = pods_that_relist();
    let (_standin, client, _dir) = serve(&api).await;
    let l = Arc::new(lookup(&client, Duration::from_secs(10)));
    let pods = GroupResource::new("", "pods");

    let (other_l, other_pods) = (l.clone(), pods.clone());
    let first = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The runtime is dropped when this closure returns.
        runtime.block_on(async move {
            other_l
                .names(&other_pods, Some("shop"), &sel("app=web"))
                .await
                .unwrap()
        })
    })
    .await
    .unwrap();
    assert!(!first.is_empty(), "{first:?}");

    until(
        "the watch to resume, expire and the cache to relist",
        || api.requests("/api/v1/pods?watch").len() >= 3,
    )
    .await;
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("app=web")).await.unwrap(),
        vec!["web-1", "web-3", "web-4"]
    );
}

#[tokio::test]
async fn watch_events_are_applied_in_order() {
    let api = Arc::new(Recorded::default());
    api.discovery()
        .get("/api/v1/pods?limit=500", "pods-list-page1.json")
        .get(
            "/api/v1/pods?limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwMCwic3RhcnQiOiJzaG9wL3dlYi0yXHUwMDAwIn0%3D",
            "pods-list-page2.json",
        )
        .watch("/api/v1/pods", lines("pods-watch-1.jsonl"));
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(10));
    let pods = GroupResource::new("", "pods");
    l.names(&pods, None, &LabelSelector::everything())
        .await
        .unwrap();
    let cache = l.cache(&l.resolve("pods").await.unwrap());
    // The first watch carried three changes and a bookmark; the cache resumes after it.
    until("the watch's events and its resumption", || {
        api.requests("/api/v1/pods?watch").len() >= 2
    })
    .await;
    assert_eq!(
        cache
            .stats
            .events
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    // web-3 added, web-1 relabelled, web-2 deleted; the staging pod is untouched.
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("tier=frontend"))
            .await
            .unwrap(),
        vec!["web-3"]
    );
    assert_eq!(
        l.names(&pods, Some("shop"), &sel("tier=canary"))
            .await
            .unwrap(),
        vec!["web-1"]
    );
    assert_eq!(
        l.names(&pods, Some("staging"), &LabelSelector::everything())
            .await
            .unwrap(),
        vec!["web-1"]
    );
    assert_eq!(
        l.names(&pods, None, &sel("app=web")).await.unwrap(),
        vec!["web-1", "web-3"]
    );
}

#[tokio::test]
async fn cluster_scoped_resources_ignore_the_namespace_and_failures_are_reported() {
    let api = Arc::new(Recorded::default());
    api.discovery()
        .get("/api/v1/nodes?limit=500", "nodes-list.json");
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(10));
    assert_eq!(
        l.warm(&["nodes", "gizmos"]).await,
        vec!["gizmos".to_string()]
    );
    assert_eq!(l.cached_resources(), vec![GroupResource::new("", "nodes")]);
    until("the nodes list", || {
        !api.requests("/api/v1/nodes?limit=500").is_empty()
    })
    .await;
    let nodes = l.resolve("no").await.unwrap();
    let names = l
        .names(
            &nodes.group_resource,
            Some("ignored"),
            &sel("node-role.kubernetes.io/control-plane"),
        )
        .await
        .unwrap();
    assert_eq!(names, vec!["kind-control-plane"]);
    assert_eq!(
        l.names(
            &nodes.group_resource,
            None,
            &sel("!node-role.kubernetes.io/control-plane")
        )
        .await
        .unwrap(),
        vec!["kind-worker"]
    );

    // A resource whose list is refused (the lister's RBAC lacks it) never syncs: the
    // request fails at once, naming why, instead of waiting out the sync timeout.
    api.fail("/api/v1/services?limit=500", 403, "unavailable.json");
    let l = KubeObjectLookup::new(
        client.clone(),
        Arc::new(Discovery::new(client.clone(), Duration::from_secs(10))),
        Duration::from_secs(300),
    );
    let err = l
        .names(
            &GroupResource::new("", "services"),
            Some("shop"),
            &LabelSelector::everything(),
        )
        .await
        .unwrap_err();
    match &err {
        LookupError::Unavailable(m) => {
            assert!(m.starts_with("listing services failed: "), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // Unknown resources are reported as such.
    let err = l
        .names(
            &GroupResource::new("", "gizmos"),
            None,
            &LabelSelector::everything(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, LookupError::UnknownResource("gizmos".into()));
    api.assert_metadata_only();
}

#[tokio::test]
async fn scale_target_and_its_pods_as_the_controller_reads_them() {
    use promhpa_kube::discovery::discover;
    use promhpa_kube::scale::{get_scale, list_pods};
    let api = Arc::new(Recorded::default());
    api.discovery()
        .get(
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
            "deployments-web-scale.json",
        )
        .get(
            "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb%2Ctier%3Dfrontend&limit=500",
            "pods-full-page1.json",
        )
        .get(
            "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb%2Ctier%3Dfrontend&limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIxMCwic3RhcnQiOiJzaG9wL3dlYi0yXHUwMDAwIn0%3D",
            "pods-full-page2.json",
        );
    let (_standin, client, _dir) = serve(&api).await;
    let map = discover(&client).await.unwrap();
    let scale = get_scale(&client, &map, "apps/v1", "Deployment", "shop", "web")
        .await
        .unwrap();
    assert_eq!(scale["status"]["selector"], "app=web,tier=frontend");
    assert_eq!(scale["spec"]["replicas"], 3);
    let pods = list_pods(&client, "shop", "app=web,tier=frontend")
        .await
        .unwrap();
    let names: Vec<&str> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["web-1", "web-2"], "both pages are read");
    assert_eq!(
        pods[0]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "250m",
        "full objects, not metadata"
    );

    // A kind discovery does not know in the ref's group is reported, not guessed.
    let err = get_scale(&client, &map, "apps/v1", "Rollout", "shop", "web")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no matches for kind \"Rollout\" in version \"apps/v1\""),
        "{err}"
    );
    // A kind of the core group goes to /api.
    let err = get_scale(&client, &map, "v1", "Pod", "shop", "web-1")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/api/v1/namespaces/shop/pods/web-1/scale"),
        "{err}"
    );
}

/// The resource metrics API's pods are those the server lists with
/// `fieldSelector=status.phase=Running`, from a cache of their own beside the pods cache.
#[tokio::test]
async fn running_pods_come_from_a_cache_listed_with_the_phase_field_selector() {
    let api = Arc::new(Recorded::default());
    api.discovery()
        .get(
            "/api/v1/pods?fieldSelector=status.phase%3DRunning&limit=500",
            "pods-relist.json",
        )
        .get("/api/v1/pods?limit=500", "pods-list-page1.json")
        .get(
            "/api/v1/pods?limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwMCwic3RhcnQiOiJzaG9wL3dlYi0yXHUwMDAwIn0%3D",
            "pods-list-page2.json",
        );
    let (_standin, client, _dir) = serve(&api).await;
    let l = lookup(&client, Duration::from_secs(10));
    assert_eq!(
        l.running_pods(Some("shop"), &LabelSelector::everything())
            .await
            .unwrap(),
        vec!["web-1", "web-3", "web-4"]
    );
    assert_eq!(
        api.requests("/api/v1/pods?fieldSelector"),
        vec!["/api/v1/pods?fieldSelector=status.phase%3DRunning&limit=500".to_string()]
    );
    // Their labels come from that cache, without asking the API server again.
    let pods = GroupResource::new("", "pods");
    let wanted = ["web-4".to_string(), "gone".to_string()];
    let labels = l.labels(&pods, Some("shop"), &wanted).await;
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(labels["web-4"]["tier"], "frontend");
    // Every pod, whatever its phase, is still what the custom metrics API reads.
    let all = l
        .names(
            &GroupResource::new("", "pods"),
            Some("shop"),
            &LabelSelector::everything(),
        )
        .await
        .unwrap();
    assert!(all.contains(&"web-2".to_string()), "{all:?}");
    assert_eq!(l.cached_resources(), vec![GroupResource::new("", "pods")]);
}
