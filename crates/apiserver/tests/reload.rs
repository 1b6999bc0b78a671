//! Reloading the rule file while requests are served: a file that loads replaces rules and
//! registry entries in one step, one that does not leaves the running rules in place.
#![allow(clippy::unwrap_used)]

mod common;
use common::get;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use promhpa_apiserver::metrics::SelfMetrics;
use promhpa_apiserver::reload::{ReloadError, RuleFileReloader};
use promhpa_apiserver::{router, AppState, Registry, StaticObjects};
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use promhpa_rules::RuleSet;

const OBJECTS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop, labels: {app: web}}}
"#;

/// `jobs_waiting` served as-is.
const RULES_A: &str = r#"rules:
- seriesQuery: 'jobs_waiting{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})'
"#;

/// Another rule first (so every index moves) and `jobs_waiting` times 1000.
const RULES_B: &str = r#"rules:
- seriesQuery: 'jobs_done{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 7'
- seriesQuery: 'jobs_waiting{namespace!="",pod!=""}'
  resources: {template: '<<.Resource>>'}
  metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 1000'
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Setup {
    dir: PathBuf,
    file: PathBuf,
    registry: Arc<Registry>,
    metrics: Arc<SelfMetrics>,
    app: axum::Router,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup(name: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("promhpa-reload-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yaml");
    std::fs::write(&file, RULES_A).unwrap();
    let backend = Arc::new(EmbeddedBackend::default());
    for (series, v) in [("jobs_waiting", 3.0), ("jobs_done", 5.0)] {
        backend
            .append(
                &Labels::from_pairs([
                    ("__name__", series),
                    ("namespace", "shop"),
                    ("pod", "web-1"),
                ]),
                now_ms() - 1000,
                v,
            )
            .unwrap();
    }
    let lookup = Arc::new(StaticObjects::from_text(OBJECTS, "objects").unwrap());
    let metrics = Arc::new(SelfMetrics::default());
    let registry = Arc::new(Registry::new(
        Arc::new(RuleSet::load(&file).unwrap()),
        backend.clone(),
        lookup.clone(),
        metrics.clone(),
        Duration::from_secs(600),
    ));
    assert!(registry.relist().await.is_empty());
    let app = router(AppState {
        registry: registry.clone(),
        lookup,
        metrics: metrics.clone(),
        guard: None,
        coalescer: Default::default(),
        forward: None,
    });
    Setup {
        dir,
        file,
        registry,
        metrics,
        app,
    }
}

const WAITING: &str = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/jobs_waiting";
const DONE: &str = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-1/jobs_done";

async fn value(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let (code, body) = get(app, path).await;
    let v = body["items"][0]["value"].as_str().unwrap_or_default();
    (
        code,
        if code == StatusCode::OK {
            v.to_string()
        } else {
            body.to_string()
        },
    )
}

#[tokio::test]
async fn a_file_that_loads_replaces_the_rules_and_one_that_does_not_leaves_them() {
    let s = setup("swap").await;
    let mut reloader =
        RuleFileReloader::new(s.file.clone(), s.registry.clone(), s.metrics.clone(), false);
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "3".into()));
    assert_eq!(value(&s.app, DONE).await.0, StatusCode::NOT_FOUND);

    std::fs::write(&s.file, RULES_B).unwrap();
    reloader.reload().await.unwrap();
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "3k".into()));
    assert_eq!(value(&s.app, DONE).await, (StatusCode::OK, "35".into()));
    let text = s.metrics.render();
    assert_last_reload(&text, true);
    assert!(
        text.contains("promhpa_config_reloads_total{result=\"success\"} 1"),
        "{text}"
    );

    // an invalid file: the errors name path and line, and the running rules stay
    std::fs::write(&s.file, "rules:\n- seriesQuerry: 'x'\n").unwrap();
    let err = reloader.reload().await.unwrap_err();
    assert!(matches!(err, ReloadError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("rules.yaml:2: rules[0].seriesQuerry: unknown field"),
        "{err}"
    );
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "3k".into()));
    let text = s.metrics.render();
    assert_last_reload(&text, false);
    assert!(
        text.contains("promhpa_config_reloads_total{result=\"failure\"} 1"),
        "{text}"
    );

    // with --strict-rules a broken rule is refused too
    let mut strict =
        RuleFileReloader::new(s.file.clone(), s.registry.clone(), s.metrics.clone(), true);
    std::fs::write(
        &s.file,
        "rules:\n- seriesQuery: 'jobs_waiting{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n",
    )
    .unwrap();
    let err = strict.reload().await.unwrap_err();
    assert!(matches!(err, ReloadError::Strict { .. }), "{err}");
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "3k".into()));
    // without it too, an edit that breaks a rule that works now is refused: the running
    // rules keep answering
    let err = reloader.reload().await.unwrap_err();
    assert!(matches!(err, ReloadError::Breaks { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("rules[0].metricsQuery: missing metricsQuery"),
        "{err}"
    );
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "3k".into()));
    let text = s.metrics.render();
    assert_last_reload(&text, false);
}

/// A rule that is broken in the running rules may stay broken in the next file (it is
/// served as broken, as at start), while the file's other edits are taken.
#[tokio::test]
async fn a_rule_already_broken_does_not_hold_up_other_edits() {
    let broken = "- seriesQuery: 'jobs_lost{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n";
    let s = setup("broken").await;
    let mut reloader =
        RuleFileReloader::new(s.file.clone(), s.registry.clone(), s.metrics.clone(), false);
    // At start the file had the broken rule.
    let started = format!("{RULES_A}{broken}");
    let set = RuleSet::from_yaml(&started, &s.file.display().to_string()).unwrap();
    assert_eq!(set.broken.len(), 1);
    s.registry.reload(set).await.unwrap();
    // The next edit keeps it broken and changes the working rule.
    std::fs::write(
        &s.file,
        format!(
            "{}{broken}",
            RULES_A.replace(
                "(<<.Series>>{<<.LabelMatchers>>})",
                "(<<.Series>>{<<.LabelMatchers>>}) * 2"
            )
        ),
    )
    .unwrap();
    reloader.reload().await.unwrap();
    assert_eq!(value(&s.app, WAITING).await, (StatusCode::OK, "6".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_reloads_see_the_old_rules_or_the_new_never_a_mix() {
    let s = setup("load").await;
    let mut reloader =
        RuleFileReloader::new(s.file.clone(), s.registry.clone(), s.metrics.clone(), false);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (app, stop, served) = (s.app.clone(), stop.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (code, v) = value(&app, WAITING).await;
                assert_eq!(code, StatusCode::OK, "{v}");
                assert!(v == "3" || v == "3k", "a value neither rule set gives: {v}");
                if seen.last() != Some(&v) {
                    seen.push(v);
                }
                served.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    for i in 0..40 {
        let text = if i % 2 == 0 { RULES_B } else { RULES_A };
        reloader
            .reload_text(text.as_bytes().to_vec())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut switched = false;
    for c in clients {
        switched |= c.await.unwrap().len() > 1;
    }
    assert!(served.load(Ordering::Relaxed) > 40);
    assert!(switched, "no client saw a reload");
}

/// `promhpa_config_last_reload_successful` in the rendered self-metrics `text`.
fn assert_last_reload(text: &str, successful: bool) {
    let line = format!(
        "\npromhpa_config_last_reload_successful {}\n",
        u8::from(successful)
    );
    assert!(text.contains(&line), "{text}");
}
