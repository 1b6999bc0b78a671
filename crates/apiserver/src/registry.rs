//! The discovery registry: which metrics are served, for which resources, by which rule.
//!
//! Built from each rule's `seriesQuery` through [`Backend::series_names`] (metric names and
//! label-name sets only), replaced atomically after each relist, and kept — rule by rule —
//! when a relist fails. A request for a metric the registry does not know triggers a
//! targeted relist of the rules of that API (coalesced, and remembered briefly when it
//! finds nothing) instead of failing until the next periodic relist.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use promhpa_core::backend::Backend;
use promhpa_core::lookup::{GroupResource, ObjectLookup};
use promhpa_rules::{Rule, RuleSet};

use crate::metrics::SelfMetrics;

/// A custom metric served for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomEntry {
    /// Index into [`RuleSet::custom`].
    pub rule: usize,
    /// The series name the rule's template is rendered with.
    pub series: String,
    pub namespaced: bool,
}

/// An external metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalEntry {
    /// Index into [`RuleSet::external`].
    pub rule: usize,
    pub series: String,
    pub namespaced: bool,
}

/// One immutable view of the served metrics.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub custom: BTreeMap<(GroupResource, String), CustomEntry>,
    pub external: BTreeMap<String, ExternalEntry>,
}

/// Which API a targeted lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Custom,
    External,
}

/// The registry and what it needs to refresh itself.
pub struct Registry {
    rules: Arc<RuleSet>,
    backend: Arc<dyn Backend>,
    lookup: Arc<dyn ObjectLookup>,
    metrics: Arc<SelfMetrics>,
    max_age: Duration,
    negative_ttl: Duration,
    snapshot: RwLock<Arc<Snapshot>>,
    ready: AtomicBool,
    negative: Mutex<HashMap<(Api, String), Instant>>,
    targeted: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Result of discovering one rule.
type RuleResult<T> = Result<Vec<T>, String>;

impl Registry {
    pub fn new(
        rules: Arc<RuleSet>,
        backend: Arc<dyn Backend>,
        lookup: Arc<dyn ObjectLookup>,
        metrics: Arc<SelfMetrics>,
        max_age: Duration,
    ) -> Registry {
        metrics.set_broken_rules(
            rules
                .rules()
                .filter(|r| r.broken().is_some())
                .map(|r| r.origin())
                .collect(),
        );
        Registry {
            rules,
            backend,
            lookup,
            metrics,
            max_age,
            negative_ttl: Duration::from_secs(10),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            ready: AtomicBool::new(false),
            negative: Mutex::new(HashMap::new()),
            targeted: tokio::sync::Mutex::new(()),
        }
    }

    /// How long a targeted lookup that found nothing is remembered.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The current snapshot (cheap: one `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn swap(&self, snap: Snapshot) {
        self.metrics
            .set_registry_size(snap.custom.len(), snap.external.len());
        let snap = Arc::new(snap);
        match self.snapshot.write() {
            Ok(mut s) => *s = snap,
            Err(p) => *p.into_inner() = snap,
        }
    }

    /// Whether a discovery has completed successfully at least once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    async fn discover_custom(
        &self,
        idx: usize,
        rule: &Rule,
    ) -> (RuleResult<((GroupResource, String), CustomEntry)>, u64) {
        if !rule.discoverable() {
            return (Ok(Vec::new()), 0);
        }
        let since = now_ms() - self.max_age.as_millis() as i64;
        let infos = match self.backend.series_names(rule.series_query(), since).await {
            Ok(i) => i,
            Err(e) => return (Err(format!("{}: {e}", rule.path())), 0),
        };
        let n = infos.len() as u64;
        let mut out = Vec::new();
        let mut scope_cache: HashMap<GroupResource, bool> = HashMap::new();
        for info in infos {
            let Some(metric) = rule.metric_name_for(&info.name) else {
                continue;
            };
            for gr in rule.resources_for_labels(&info.label_names) {
                let namespaced = if !rule.namespaced() || gr == GroupResource::new("", "namespaces")
                {
                    false
                } else if let Some(v) = scope_cache.get(&gr) {
                    *v
                } else {
                    let v = self
                        .lookup
                        .resolve(&gr.to_string())
                        .await
                        .map(|m| m.namespaced)
                        .unwrap_or(true);
                    scope_cache.insert(gr.clone(), v);
                    v
                };
                out.push((
                    (gr, metric.clone()),
                    CustomEntry {
                        rule: idx,
                        series: info.name.clone(),
                        namespaced,
                    },
                ));
            }
        }
        (Ok(out), n)
    }

    async fn discover_external(
        &self,
        idx: usize,
        rule: &Rule,
    ) -> (RuleResult<(String, ExternalEntry)>, u64) {
        if !rule.discoverable() {
            return (Ok(Vec::new()), 0);
        }
        let since = now_ms() - self.max_age.as_millis() as i64;
        let infos = match self.backend.series_names(rule.series_query(), since).await {
            Ok(i) => i,
            Err(e) => return (Err(format!("{}: {e}", rule.path())), 0),
        };
        let n = infos.len() as u64;
        let out = infos
            .into_iter()
            .filter_map(|info| {
                let metric = rule.metric_name_for(&info.name)?;
                Some((
                    metric,
                    ExternalEntry {
                        rule: idx,
                        series: info.name,
                        namespaced: rule.namespaced(),
                    },
                ))
            })
            .collect();
        (Ok(out), n)
    }

    /// Record that the rule of `entry` serves `key`. Rules are visited in file order, and
    /// a later rule takes a metric an earlier one also exposes for the same resource as
    /// [`Rule::overrides`] says (as in prometheus-adapter, but a broken rule never takes a
    /// metric from a working one).
    fn claim<K: Ord, V>(
        &self,
        map: &mut BTreeMap<K, V>,
        key: K,
        entry: V,
        rule_of: impl Fn(&V) -> usize,
        api: Api,
    ) {
        let list = match api {
            Api::Custom => &self.rules.custom,
            Api::External => &self.rules.external,
        };
        if let Some(existing) = map.get(&key) {
            if let (Some(later), Some(earlier)) =
                (list.get(rule_of(&entry)), list.get(rule_of(existing)))
            {
                if !later.overrides(earlier) {
                    return;
                }
            }
        }
        map.insert(key, entry);
    }

    /// Rebuild the entries of `apis` from the backend. A rule whose discovery fails keeps
    /// its previous entries; the errors are returned.
    async fn rebuild(&self, apis: &[Api]) -> (Snapshot, Vec<String>, u64) {
        let old = self.snapshot();
        let mut snap = Snapshot::default();
        let mut errors = Vec::new();
        let mut series = 0;
        if apis.contains(&Api::Custom) {
            for (idx, rule) in self.rules.custom.iter().enumerate() {
                let (res, n) = self.discover_custom(idx, rule).await;
                series += n;
                match res {
                    Ok(entries) => {
                        for (k, v) in entries {
                            self.claim(&mut snap.custom, k, v, |e| e.rule, Api::Custom);
                        }
                    }
                    Err(e) => {
                        errors.push(e);
                        for (k, v) in old.custom.iter().filter(|(_, v)| v.rule == idx) {
                            self.claim(
                                &mut snap.custom,
                                k.clone(),
                                v.clone(),
                                |e| e.rule,
                                Api::Custom,
                            );
                        }
                    }
                }
            }
        } else {
            snap.custom = old.custom.clone();
        }
        if apis.contains(&Api::External) {
            for (idx, rule) in self.rules.external.iter().enumerate() {
                let (res, n) = self.discover_external(idx, rule).await;
                series += n;
                match res {
                    Ok(entries) => {
                        for (k, v) in entries {
                            self.claim(&mut snap.external, k, v, |e| e.rule, Api::External);
                        }
                    }
                    Err(e) => {
                        errors.push(e);
                        for (k, v) in old.external.iter().filter(|(_, v)| v.rule == idx) {
                            self.claim(
                                &mut snap.external,
                                k.clone(),
                                v.clone(),
                                |e| e.rule,
                                Api::External,
                            );
                        }
                    }
                }
            }
        } else {
            snap.external = old.external.clone();
        }
        (snap, errors, series)
    }

    /// Relist every rule and swap in the result. Returns the per-rule errors (the registry
    /// is still replaced, keeping the failed rules' previous entries).
    pub async fn relist(&self) -> Vec<String> {
        let _guard = self.targeted.lock().await;
        let start = Instant::now();
        let (snap, errors, series) = self.rebuild(&[Api::Custom, Api::External]).await;
        self.metrics
            .observe_relist(start.elapsed().as_secs_f64(), series, errors.is_empty());
        for e in &errors {
            tracing::warn!(error = %e, "discovery failed for a rule; keeping its previous metrics");
        }
        tracing::debug!(
            custom = snap.custom.len(),
            external = snap.external.len(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "discovery relist done"
        );
        self.swap(snap);
        let total = self.rules.custom.len() + self.rules.external.len();
        if errors.len() < total || total == 0 {
            self.ready.store(true, Ordering::Release);
        }
        if let Ok(mut n) = self.negative.lock() {
            n.clear();
        }
        errors
    }

    /// Relist every `interval` forever.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.relist().await;
        }
    }

    fn negative_hit(&self, api: Api, metric: &str) -> bool {
        let Ok(mut n) = self.negative.lock() else {
            return false;
        };
        match n.get(&(api, metric.to_string())) {
            Some(t) if t.elapsed() < self.negative_ttl => true,
            Some(_) => {
                n.remove(&(api, metric.to_string()));
                false
            }
            None => false,
        }
    }

    async fn targeted_lookup(&self, api: Api, metric: &str, present: impl Fn(&Snapshot) -> bool) {
        if self.negative_hit(api, metric) {
            return;
        }
        let _guard = self.targeted.lock().await;
        // Another request may have refreshed the registry while this one waited.
        if present(&self.snapshot()) || self.negative_hit(api, metric) {
            return;
        }
        let (snap, errors, _) = self.rebuild(&[api]).await;
        for e in &errors {
            tracing::warn!(error = %e, metric, "targeted discovery failed for a rule");
        }
        let found = present(&snap);
        self.swap(snap);
        if !found {
            if let Ok(mut n) = self.negative.lock() {
                n.insert((api, metric.to_string()), Instant::now());
            }
        }
    }

    /// The entry for a custom metric of a resource, with a targeted lookup when unknown.
    pub async fn custom(&self, gr: &GroupResource, metric: &str) -> Option<CustomEntry> {
        let key = (gr.clone(), metric.to_string());
        if let Some(e) = self.snapshot().custom.get(&key) {
            return Some(e.clone());
        }
        self.targeted_lookup(Api::Custom, metric, |s| s.custom.contains_key(&key))
            .await;
        self.snapshot().custom.get(&key).cloned()
    }

    /// The entry for an external metric, with a targeted lookup when unknown.
    pub async fn external(&self, metric: &str) -> Option<ExternalEntry> {
        if let Some(e) = self.snapshot().external.get(metric) {
            return Some(e.clone());
        }
        self.targeted_lookup(Api::External, metric, |s| s.external.contains_key(metric))
            .await;
        self.snapshot().external.get(metric).cloned()
    }
}
