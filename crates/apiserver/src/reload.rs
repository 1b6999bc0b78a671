//! Reloading the rule file while serving: when its content changes (including the symlink
//! swap Kubernetes makes when a mounted ConfigMap changes) or on SIGHUP, the new file is
//! compiled and validated completely; only a file that loads replaces the running rules
//! (through [`Registry::reload`], in one step), otherwise the running rules stay and the
//! errors are logged with path and line. `/metrics` shows the outcome as
//! `promhpa_config_last_reload_successful` and
//! `promhpa_config_last_reload_success_timestamp_seconds`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_rules::{PrometheusSettings, RuleSet};

use crate::metrics::SelfMetrics;
use crate::registry::Registry;

/// Why a reload left the running rules in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the rule file {path}: {message}")]
    Read { path: String, message: String },
    #[error("the rule file {path} does not load; the running rules stay:\n{errors}")]
    Invalid { path: String, errors: String },
    #[error("--strict-rules: the rule file {path} has broken rules or warnings; the running rules stay:\n{errors}")]
    Strict { path: String, errors: String },
    /// The new file loads, but a rule in it is broken that is not broken in the running
    /// rules: served, it would fail requests that are answered now.
    #[error("the rule file {path} breaks rules that are not broken now; the running rules stay:\n{errors}")]
    Breaks { path: String, errors: String },
    /// A file that holds no rules where the running one has some: emptied by mistake, or
    /// caught while it is rewritten in place. Read at start, such a file serves nothing.
    #[error("the rule file {path} now holds no rules; the running rules stay (an emptied file is taken as a mistake or a file being written; restart promhpa to serve no rules)")]
    Emptied { path: String },
    #[error("the rule file {path} names a backend that cannot be connected; the running rules stay: {cause}")]
    Backend {
        path: String,
        cause: crate::backends::BackendsError,
    },
}

/// Watches one rule file and reloads the registry from it.
pub struct RuleFileReloader {
    path: PathBuf,
    registry: Arc<Registry>,
    metrics: Arc<SelfMetrics>,
    strict: bool,
    /// The content last read, loaded or not, so that one bad edit is reported once.
    last: Vec<u8>,
    /// `prometheus` settings of the file that is running (Helm values): changing them
    /// needs a restart.
    prometheus: Option<PrometheusSettings>,
    /// Since when the file cannot be read, and whether that was reported.
    unreadable: Option<(Instant, bool)>,
    /// When the last content was refused because a backend it names could not be
    /// connected: when to try it again, the wait after that, and the refusal (a failure
    /// that says the same again is not counted or logged as an error again).
    refused_backend: Option<(Instant, Duration, String)>,
    backend_retry: Duration,
}

/// How soon a rule file refused because a backend it names could not be connected (a CA
/// file not mounted yet: Secret and ConfigMap volumes are updated independently) is tried
/// again while it stays the same; the wait doubles, to [`BACKEND_RETRY_MAX`].
pub const BACKEND_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between tries of a rule file refused for its backends.
pub const BACKEND_RETRY_MAX: Duration = Duration::from_secs(300);

impl RuleFileReloader {
    /// A reloader for the file `path`, whose current content is already being served.
    pub fn new(
        path: PathBuf,
        registry: Arc<Registry>,
        metrics: Arc<SelfMetrics>,
        strict: bool,
    ) -> RuleFileReloader {
        let last = std::fs::read(&path).unwrap_or_default();
        let prometheus = registry.rules().prometheus.clone();
        metrics.rules_loaded();
        RuleFileReloader {
            path,
            registry,
            metrics,
            strict,
            last,
            unreadable: None,
            refused_backend: None,
            backend_retry: BACKEND_RETRY,
            prometheus,
        }
    }

    /// Compile `text` and, when it loads (and, with `strict`, has nothing broken or warned
    /// about), serve it.
    pub async fn reload_text(&mut self, text: Vec<u8>) -> Result<RuleSet, ReloadError> {
        let path = self.path.display().to_string();
        self.last = text.clone();
        let text = String::from_utf8(text).map_err(|e| ReloadError::Read {
            path: path.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        let set = RuleSet::from_yaml(&text, &path).map_err(|e| ReloadError::Invalid {
            path: path.clone(),
            errors: e.to_string(),
        })?;
        let running = self.registry.rules();
        let holds_rules = |s: &RuleSet| s.rules().next().is_some() || s.resource.is_some();
        if !holds_rules(&set) && holds_rules(&running) {
            return Err(ReloadError::Emptied { path });
        }
        if self.strict && !set.is_clean() {
            let errors: Vec<String> = set.strict_errors().iter().map(|e| e.to_string()).collect();
            return Err(ReloadError::Strict {
                path,
                errors: errors.join("\n"),
            });
        }
        // A broken rule is served (as prometheus-adapter serves it) only when the running
        // rules have it broken the same way: an edit never breaks what works now.
        let newly_broken: Vec<String> = set
            .broken
            .iter()
            .filter(|b| {
                !running
                    .broken
                    .iter()
                    .any(|r| r.path == b.path && r.message == b.message)
            })
            .map(|b| b.to_string())
            .collect();
        if !newly_broken.is_empty() {
            return Err(ReloadError::Breaks {
                path,
                errors: newly_broken.join("\n"),
            });
        }
        for w in &set.warnings {
            tracing::warn!("{w}");
        }
        for b in &set.broken {
            tracing::error!("broken rule, not served (every request for its metrics fails): {b}");
        }
        if set.prometheus != self.prometheus {
            tracing::warn!(
                path = %path,
                "the rule file's prometheus settings changed; they take effect at the next restart"
            );
        }
        let errors =
            self.registry
                .reload(set.clone())
                .await
                .map_err(|cause| ReloadError::Backend {
                    path: path.clone(),
                    cause,
                })?;
        tracing::info!(
            path = %path,
            rules = set.rules().count(),
            broken = set.rules().filter(|r| r.broken().is_some()).count(),
            discovery_failures = errors.len(),
            "rule file reloaded"
        );
        Ok(set)
    }

    /// Reload from the file now (SIGHUP, or a change seen by polling).
    pub async fn reload(&mut self) -> Result<RuleSet, ReloadError> {
        let text = std::fs::read(&self.path).map_err(|e| ReloadError::Read {
            path: self.path.display().to_string(),
            message: e.to_string(),
        });
        if text.is_err() {
            // Whatever the file holds when it can be read again is a change to load, even
            // the content last loaded: this failure must not outlive it. Reported here,
            // polling does not report it again.
            self.last.clear();
            self.unreadable = Some((Instant::now(), true));
        }
        let result = match text {
            Ok(text) => self.reload_text(text).await,
            Err(e) => Err(e),
        };
        self.settle(&result);
        result
    }

    /// One poll: a changed file is reloaded; a file that stays unreadable for two polls
    /// (deleted, a dangling link, made a directory) is reported once, as a failed reload,
    /// and whatever it holds when it comes back is loaded; a content refused because a
    /// backend could not be connected is tried again every [`BACKEND_RETRY`].
    pub async fn poll(&mut self, poll: Duration) {
        let now = match std::fs::read(&self.path) {
            Ok(now) => now,
            Err(e) => {
                let (since, reported) = self.unreadable.get_or_insert((Instant::now(), false));
                // A missing file for one poll is a ConfigMap volume mid-swap.
                if !*reported && since.elapsed() >= poll * 2 {
                    *reported = true;
                    self.last.clear();
                    self.metrics.observe_reload(false);
                    let e = ReloadError::Read {
                        path: self.path.display().to_string(),
                        message: e.to_string(),
                    };
                    tracing::error!("{e}; the running rules stay");
                }
                return;
            }
        };
        self.unreadable = None;
        if now != self.last {
            tracing::info!(path = %self.path.display(), "the rule file changed; reloading");
            let result = self.reload_text(now).await;
            self.settle(&result);
            return;
        }
        let Some((at, wait, said)) = self.refused_backend.take() else {
            return;
        };
        if Instant::now() < at {
            self.refused_backend = Some((at, wait, said));
            return;
        }
        let result = self.reload_text(now).await;
        match result {
            Err(ReloadError::Backend { .. }) => {
                let text = result
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let wait = (wait * 2).min(BACKEND_RETRY_MAX);
                if text == said {
                    tracing::info!(path = %self.path.display(), retry_in = ?wait, "the refused rule file's backends still cannot be connected");
                    self.refused_backend = Some((Instant::now() + wait, wait, said));
                } else {
                    self.settle(&result);
                }
            }
            other => self.settle(&other),
        }
    }

    /// Counts and logs a reload's result; a refusal for a backend is tried again later.
    fn settle(&mut self, result: &Result<RuleSet, ReloadError>) {
        self.metrics.observe_reload(result.is_ok());
        self.refused_backend = match result {
            Err(e @ ReloadError::Backend { .. }) => Some((
                Instant::now() + self.backend_retry,
                self.backend_retry,
                e.to_string(),
            )),
            _ => None,
        };
        if let Err(e) = result {
            tracing::error!("{e}");
        }
    }

    /// Reload whenever the file's content changes (checked every `poll`) or SIGHUP arrives,
    /// forever.
    pub async fn run(mut self, poll: Duration) {
        let mut hangup = hangup_signal();
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.poll(poll).await,
                Some(()) = recv(&mut hangup) => {
                    tracing::info!(path = %self.path.display(), "SIGHUP: reloading the rule file");
                    let _ = self.reload().await;
                }
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the rule file is still reloaded when it changes");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv(h: &mut Hangup) -> Option<()> {
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

/// Keep SIGHUP from ending the process when no rule file is being watched (its default
/// action is to terminate): log that there is nothing to reload.
pub async fn ignore_hangup_without_rule_file() {
    let mut hangup = hangup_signal();
    while recv(&mut hangup).await.is_some() {
        tracing::info!("SIGHUP: no --config rule file to reload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promhpa_promql_eval::EmbeddedBackend;

    const RULES: &str = "rules:\n- seriesQuery: 'up{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";

    fn reloader(
        dir: &std::path::Path,
        connect: Option<crate::backends::Connect>,
    ) -> (RuleFileReloader, Arc<SelfMetrics>) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("rules.yaml");
        std::fs::write(&file, RULES).unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(SelfMetrics::default());
        let mut registry = Registry::new(
            Arc::new(RuleSet::load(&file).unwrap_or_else(|e| panic!("{e}"))),
            Arc::new(EmbeddedBackend::default()),
            Arc::new(crate::StaticObjects::from_text("[]", "o").unwrap_or_else(|e| panic!("{e}"))),
            metrics.clone(),
            Duration::from_secs(600),
        );
        if let Some(c) = connect {
            registry = registry.with_connector(c);
        }
        let reloader = RuleFileReloader::new(file, Arc::new(registry), metrics.clone(), false);
        (reloader, metrics)
    }

    fn last_reload_ok(metrics: &SelfMetrics) -> bool {
        metrics
            .render()
            .contains("\npromhpa_config_last_reload_successful 1\n")
    }

    /// A file that could not be read, then comes back as it was: the poll sees a change, so
    /// the failed reload does not stay the last word.
    #[tokio::test]
    async fn a_file_back_after_a_failed_read_is_loaded_again() {
        let dir = std::env::temp_dir().join(format!("promhpa-reread-{}", std::process::id()));
        let (mut reloader, metrics) = reloader(&dir, None);
        let file = dir.join("rules.yaml");
        let moved = dir.join("moved.yaml");
        std::fs::rename(&file, &moved).unwrap_or_else(|e| panic!("{e}"));
        assert!(reloader.reload().await.is_err());
        assert!(!last_reload_ok(&metrics));
        std::fs::rename(&moved, &file).unwrap_or_else(|e| panic!("{e}"));
        reloader.poll(Duration::from_millis(10)).await;
        assert!(last_reload_ok(&metrics), "{}", metrics.render());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A rule file that goes away (a key removed from the ConfigMap, a dangling link, a
    /// directory in its place) is reported after a grace of two polls, not taken as
    /// unchanged forever; when it comes back it is loaded.
    #[tokio::test]
    async fn a_file_that_stays_unreadable_is_reported() {
        let dir = std::env::temp_dir().join(format!("promhpa-gone-{}", std::process::id()));
        let (mut reloader, metrics) = reloader(&dir, None);
        let file = dir.join("rules.yaml");
        let poll = Duration::from_millis(20);
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(&file).unwrap_or_else(|e| panic!("{e}"));
        // One poll: a volume mid-swap, not reported yet.
        reloader.poll(poll).await;
        assert!(last_reload_ok(&metrics));
        tokio::time::sleep(poll * 3).await;
        reloader.poll(poll).await;
        assert!(!last_reload_ok(&metrics), "{}", metrics.render());
        std::fs::remove_dir(&file).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&file, RULES).unwrap_or_else(|e| panic!("{e}"));
        reloader.poll(poll).await;
        assert!(last_reload_ok(&metrics), "{}", metrics.render());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An emptied file does not take the running rules away (an editor caught mid-write, a
    /// mistake): it is refused, and the next file with rules loads.
    #[tokio::test]
    async fn an_emptied_file_keeps_the_running_rules() {
        let dir = std::env::temp_dir().join(format!("promhpa-emptied-{}", std::process::id()));
        let (mut reloader, metrics) = reloader(&dir, None);
        let file = dir.join("rules.yaml");
        std::fs::write(&file, "# nothing yet\n").unwrap_or_else(|e| panic!("{e}"));
        let e = reloader.reload().await.err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("now holds no rules")),
            "{e:?}"
        );
        assert!(!last_reload_ok(&metrics));
        assert_eq!(reloader.registry.rules().rules().count(), 1);
        std::fs::write(&file, RULES.replace("up{", "ready{")).unwrap_or_else(|e| panic!("{e}"));
        assert!(reloader.reload().await.is_ok());
        assert!(last_reload_ok(&metrics));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A rule file refused because a backend it names cannot be connected yet (its CA file
    /// mounted after the rules) is tried again while it stays the same, and loads once the
    /// backend can be connected.
    #[tokio::test]
    async fn a_file_refused_for_its_backend_is_tried_again() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("promhpa-retry-{}", std::process::id()));
        let ready = Arc::new(AtomicBool::new(false));
        let can_connect = ready.clone();
        let connect: crate::backends::Connect = Arc::new(move |_spec| {
            if can_connect.load(Ordering::SeqCst) {
                Ok(Arc::new(EmbeddedBackend::default()) as Arc<dyn promhpa_core::backend::Backend>)
            } else {
                Err("reading --ca-file /secret/ca.crt: No such file or directory".into())
            }
        });
        let (mut reloader, metrics) = reloader(&dir, Some(connect));
        reloader.backend_retry = Duration::from_millis(20);
        let with_backend = format!(
            "backends:\n- name: second\n  url: https://second.example:9090\n{}  backend: second\n",
            RULES
        );
        std::fs::write(dir.join("rules.yaml"), with_backend).unwrap_or_else(|e| panic!("{e}"));
        reloader.poll(Duration::from_millis(20)).await;
        assert!(!last_reload_ok(&metrics), "{}", metrics.render());
        ready.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        reloader.poll(Duration::from_millis(20)).await;
        assert!(last_reload_ok(&metrics), "{}", metrics.render());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
