//! The discovery registry: which metrics are served, for which resources, by which rule.
//!
//! Built from each rule's `seriesQuery` through [`Backend::series_names`] (metric names and
//! label-name sets only), replaced atomically after each relist, and kept — rule by rule —
//! when a relist fails. The rule set is part of each snapshot, so a reloaded rule file
//! ([`Registry::reload`]) replaces rules and entries in one step: a request sees the old
//! rules with the old entries or the new with the new, never a mix. A request for a metric the registry does not know triggers a
//! targeted relist of the rules of that API (coalesced, and remembered briefly when it
//! finds nothing) instead of failing until the next periodic relist.

use promhpa_core::time::now_ms;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, SeriesInfo};
use promhpa_core::lookup::{GroupResource, ObjectLookup};
use promhpa_rules::{Rule, RuleSet};

use crate::backends::{Backends, Connect};
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

/// The previous entries, and for each rule the index of the previous rule whose entries it
/// may keep ([`carried_over`]).
type Kept<'a, K, E> = Option<(&'a BTreeMap<K, E>, &'a [Option<usize>])>;

/// The first wait before a failed relist is tried again.
const RELIST_RETRY: Duration = Duration::from_secs(5);

/// An entry that names the rule serving it.
trait ServedBy {
    /// Index of the rule in its list ([`RuleSet::custom`] or [`RuleSet::external`]).
    fn rule(&self) -> usize;
    /// The same entry, served by the rule at `index` (the rule moved in a reloaded file).
    fn moved_to(self, index: usize) -> Self;
}

impl ServedBy for CustomEntry {
    fn rule(&self) -> usize {
        self.rule
    }
    fn moved_to(mut self, index: usize) -> Self {
        self.rule = index;
        self
    }
}

impl ServedBy for ExternalEntry {
    fn rule(&self) -> usize {
        self.rule
    }
    fn moved_to(mut self, index: usize) -> Self {
        self.rule = index;
        self
    }
}

/// For each rule of `new`, the index in `old` of a rule that discovers the same metrics
/// ([`Rule::discovery_key`]): when a reloaded file's discovery fails, such a rule keeps what
/// it served before.
fn carried_over(old: &RuleSet, new: &RuleSet, api: Api) -> Vec<Option<usize>> {
    fn list(set: &RuleSet, api: Api) -> &[Rule] {
        match api {
            Api::Custom => &set.custom,
            Api::External => &set.external,
        }
    }
    // The rule's key, and what its backend is: a backend of the same name that now points
    // elsewhere does not serve what the old one found.
    let key = |set: &RuleSet, r: &Rule| {
        let backend = r
            .backend()
            .and_then(|name| set.backends.iter().find(|b| b.name == name));
        format!("{}\u{0}{backend:?}", r.discovery_key())
    };
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in list(old, api).iter().enumerate() {
        by_key.entry(key(old, r)).or_default().push(i);
    }
    list(new, api)
        .iter()
        .map(|r| {
            let candidates = by_key.get_mut(&key(new, r))?;
            (!candidates.is_empty()).then(|| candidates.remove(0))
        })
        .collect()
}

/// One immutable view of the served metrics and the rules that serve them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rules: Arc<RuleSet>,
    /// The backends `rules` read from (the rule file's `backends` and the default one).
    pub backends: Arc<Backends>,
    pub custom: BTreeMap<(GroupResource, String), CustomEntry>,
    pub external: BTreeMap<String, ExternalEntry>,
    /// The rules of `MetricRule` objects, by namespace, and what they serve there.
    pub namespaces: BTreeMap<String, NamespaceRules>,
}

/// The rule objects of one namespace and the metrics they serve in it (never a metric the
/// rule file serves for the same resource).
#[derive(Debug, Clone, Default)]
pub struct NamespaceRules {
    /// The valid objects' rules, by object name, as a rule set (`custom`, `external`).
    pub rules: Arc<RuleSet>,
    /// The object name of each rule of `rules.custom` / `rules.external`.
    pub custom_objects: Vec<String>,
    pub external_objects: Vec<String>,
    pub custom: BTreeMap<(GroupResource, String), CustomEntry>,
    pub external: BTreeMap<String, ExternalEntry>,
    /// (rule index, metric) an object exposes but another rule serves: the rule file, or an
    /// object of the namespace whose name sorts first.
    pub custom_shadowed: Vec<(usize, String)>,
    pub external_shadowed: Vec<(usize, String)>,
}

/// What one rule object serves, for its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReport {
    /// Metric names served (`pods/http_requests_p95`, or the name for external metrics).
    pub metrics: Vec<String>,
    /// Metric names the rule file (or an earlier object of the namespace) serves instead.
    pub shadowed: Vec<String>,
}

/// A registry entry with the rule set it was found with.
#[derive(Debug, Clone)]
pub struct Served<E> {
    pub rules: Arc<RuleSet>,
    /// The backends of `rules`.
    pub backends: Arc<Backends>,
    pub entry: E,
}

impl<E> std::ops::Deref for Served<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.entry
    }
}

impl Served<CustomEntry> {
    /// The rule that serves the metric.
    pub fn rule(&self) -> Option<&Rule> {
        self.rules.custom.get(self.entry.rule)
    }
}

impl Served<ExternalEntry> {
    /// The rule that serves the metric.
    pub fn rule(&self) -> Option<&Rule> {
        self.rules.external.get(self.entry.rule)
    }
}

/// Which API a targeted lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Custom,
    External,
}

/// The registry and what it needs to refresh itself.
pub struct Registry {
    /// Makes the clients of a reloaded rule file's new `backends` entries.
    connect: Option<Connect>,
    lookup: Arc<dyn ObjectLookup>,
    metrics: Arc<SelfMetrics>,
    max_age: Duration,
    negative_ttl: Duration,
    snapshot: RwLock<Arc<Snapshot>>,
    ready: AtomicBool,
    /// Why the last relist failed for every rule, while none has succeeded yet.
    not_ready: std::sync::Mutex<Option<String>>,
    /// Whether the last relist failed for some rule: its recovery is logged once.
    relist_failing: AtomicBool,
    /// Told by a reload whose discovery failed: the relist loop then tries again soon.
    retry_soon: tokio::sync::Notify,
    /// When each rule (by path) was last asked again by a targeted lookup: its answer stands
    /// for every name the rule could produce, so that requests for names that never appear
    /// (one name or thousands) cost each rule at most one lookup per `negative_ttl`.
    looked_up: Mutex<HashMap<String, Instant>>,
    targeted: tokio::sync::Mutex<()>,
}

/// How long a rule's targeted lookup stands for every name it could produce: short enough
/// that a client asking every second for a metric that just appeared gets it on its next
/// request, long enough that a flood of requests for names that never appear costs each rule
/// at most two lookups a second.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_millis(500);

/// Result of discovering one rule.
type RuleResult<T> = Result<Vec<T>, String>;

/// One discovery pass: the backends it asks, and the series fetched so far by backend and
/// canonical `seriesQuery`.
struct Fetched {
    backends: Arc<Backends>,
    series: HashMap<(Option<String>, String), SeriesResult>,
    /// Fetched ahead, all at once, and not yet counted by a rule's discovery.
    prefetched: HashSet<(Option<String>, String)>,
}

/// How many distinct `seriesQuery`s one discovery pass fetches at once.
const SERIES_FETCH_CONCURRENCY: usize = 8;

/// A `seriesQuery`'s series, or why they could not be fetched.
type SeriesResult = Result<Arc<Vec<SeriesInfo>>, String>;

impl Fetched {
    fn new(backends: &Arc<Backends>) -> Fetched {
        Fetched {
            backends: backends.clone(),
            series: HashMap::new(),
            prefetched: HashSet::new(),
        }
    }
}

impl Registry {
    /// A registry serving `rules` from `backends` (built for these rules, see
    /// [`Backends::build`]; a single backend converts into a set).
    pub fn new(
        rules: Arc<RuleSet>,
        backends: impl Into<Backends>,
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
            connect: None,
            lookup,
            metrics,
            max_age,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            snapshot: RwLock::new(Arc::new(Snapshot {
                rules,
                backends: Arc::new(backends.into()),
                ..Snapshot::default()
            })),
            ready: AtomicBool::new(false),
            not_ready: std::sync::Mutex::new(None),
            relist_failing: AtomicBool::new(false),
            retry_soon: tokio::sync::Notify::new(),
            looked_up: Mutex::new(HashMap::new()),
            targeted: tokio::sync::Mutex::new(()),
        }
    }

    /// How a reloaded rule file's new `backends` entries get their clients; without it a
    /// reload that adds or changes one is refused.
    pub fn with_connector(mut self, connect: Connect) -> Self {
        self.connect = Some(connect);
        self
    }

    /// The backends of the rule set being served now.
    pub fn backends(&self) -> Arc<Backends> {
        self.snapshot().backends.clone()
    }

    /// How long a rule's targeted lookup stands for every name it could produce.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The rule set being served now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.snapshot().rules.clone()
    }

    /// The current snapshot (cheap: one `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn swap_quietly(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        match self.snapshot.write() {
            Ok(mut s) => *s = snap,
            Err(p) => *p.into_inner() = snap,
        }
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

    /// [`Registry::is_ready`], or why not: no discovery has run yet, or the last one failed
    /// (for every rule) with this error.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_ready() {
            return Ok(());
        }
        let why = self.not_ready.lock().map(|w| w.clone()).unwrap_or_default();
        Err(match why {
            Some(e) => format!("metric discovery has not succeeded yet: {e}"),
            None => "metric discovery has not completed yet".to_string(),
        })
    }

    /// The series `rule`'s `seriesQuery` selects, asked from the backend once per pass for
    /// every rule with the same (canonical) `seriesQuery`; the count is of series fetched
    /// now (0 when another rule already fetched them).
    async fn series_of(
        &self,
        rule: &Rule,
        fetched: &mut Fetched,
    ) -> (Result<Arc<Vec<SeriesInfo>>, String>, u64) {
        let key = (
            rule.backend().map(str::to_string),
            rule.series_key().to_string(),
        );
        if let Some(done) = fetched.series.get(&key) {
            // A prefetched answer is counted by the first rule that uses it.
            let n = if fetched.prefetched.remove(&key) {
                done.as_ref().map(|i| i.len() as u64).unwrap_or(0)
            } else {
                0
            };
            return (done.clone(), n);
        }
        let since = now_ms() - self.max_age.as_millis() as i64;
        let result = match fetched.backends.for_rule(rule) {
            Ok(backend) => backend
                .client
                .series_names(&rule.discovery_query(), since)
                .await
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let n = result.as_ref().map(|i| i.len() as u64).unwrap_or(0);
        fetched.series.insert(key, result.clone());
        (result, n)
    }

    /// Fetches the distinct `seriesQuery`s of `rules` at once (a few at a time), so that a
    /// pass over many rules against a slow or dead backend takes one query timeout, not
    /// one per rule, as prometheus-adapter's discovery fetches in parallel.
    async fn prefetch<'r>(&self, rules: impl IntoIterator<Item = &'r Rule>, fetched: &mut Fetched) {
        let since = now_ms() - self.max_age.as_millis() as i64;
        let permits = Arc::new(tokio::sync::Semaphore::new(SERIES_FETCH_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        let mut asked = HashSet::new();
        for rule in rules.into_iter().filter(|r| r.discoverable()) {
            let key = (
                rule.backend().map(str::to_string),
                rule.series_key().to_string(),
            );
            if fetched.series.contains_key(&key) || !asked.insert(key.clone()) {
                continue;
            }
            let Ok(backend) = fetched.backends.for_rule(rule) else {
                continue;
            };
            let (client, query, permits) = (
                backend.client.clone(),
                rule.discovery_query(),
                permits.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = client
                    .series_names(&query, since)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                (key, result)
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok((key, result)) = done {
                fetched.prefetched.insert(key.clone());
                fetched.series.insert(key, result);
            }
        }
    }

    async fn discover_custom(
        &self,
        idx: usize,
        rule: &Rule,
        fetched: &mut Fetched,
    ) -> (RuleResult<((GroupResource, String), CustomEntry)>, u64) {
        if !rule.discoverable() {
            return (Ok(Vec::new()), 0);
        }
        let (infos, n) = match self.series_of(rule, fetched).await {
            (Ok(i), n) => (i, n),
            (Err(e), n) => return (Err(format!("{}: {e}", rule.path())), n),
        };
        let mut out = Vec::new();
        let mut scope_cache: HashMap<GroupResource, bool> = HashMap::new();
        let mut resolved: HashMap<(String, String), Option<GroupResource>> = HashMap::new();
        for info in infos.iter() {
            let Some(metric) = rule.metric_name_for(&info.name) else {
                continue;
            };
            let resources = self
                .resources_for_labels(rule, &info.label_names, &mut resolved)
                .await;
            for gr in resources {
                // A rule object answers requests in its namespace, which a request for a
                // namespace object (cluster-scoped) is not.
                if rule.pinned_namespace().is_some() && gr == GroupResource::new("", "namespaces") {
                    continue;
                }
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

    /// The resources a series with these label names describes. Labels matched through
    /// `resources.template` name built-in resources directly and any other resource through
    /// API discovery (so a custom resource installed after promhpa started is served once
    /// discovery knows it); `resolved` remembers each answer for one discovery pass.
    async fn resources_for_labels(
        &self,
        rule: &Rule,
        labels: &std::collections::BTreeSet<String>,
        resolved: &mut HashMap<(String, String), Option<GroupResource>>,
    ) -> Vec<GroupResource> {
        let asked = std::cell::RefCell::new(Vec::new());
        rule.resources_for_labels_with(labels, &|group, resource| {
            let known = promhpa_rules::builtin_resource(group, resource);
            if known.is_none() {
                asked
                    .borrow_mut()
                    .push((group.to_string(), resource.to_string()));
            }
            known
        });
        for (group, resource) in asked.into_inner() {
            if resolved.contains_key(&(group.clone(), resource.clone())) {
                continue;
            }
            let name = if group.is_empty() {
                resource.clone()
            } else {
                format!("{resource}.{group}")
            };
            let found = self
                .lookup
                .resolve(&name)
                .await
                .ok()
                .map(|m| m.group_resource)
                .filter(|gr| group.is_empty() || gr.group == group);
            resolved.insert((group, resource), found);
        }
        rule.resources_for_labels_with(labels, &|group, resource| {
            promhpa_rules::builtin_resource(group, resource).or_else(|| {
                resolved
                    .get(&(group.to_string(), resource.to_string()))
                    .cloned()
                    .flatten()
            })
        })
    }

    async fn discover_external(
        &self,
        idx: usize,
        rule: &Rule,
        fetched: &mut Fetched,
    ) -> (RuleResult<(String, ExternalEntry)>, u64) {
        if !rule.discoverable() {
            return (Ok(Vec::new()), 0);
        }
        let (infos, n) = match self.series_of(rule, fetched).await {
            (Ok(i), n) => (i, n),
            (Err(e), n) => return (Err(format!("{}: {e}", rule.path())), n),
        };
        let out = infos
            .iter()
            .filter_map(|info| {
                let metric = rule.metric_name_for(&info.name)?;
                Some((
                    metric,
                    ExternalEntry {
                        rule: idx,
                        series: info.name.clone(),
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
        list: &[Rule],
        map: &mut BTreeMap<K, V>,
        key: K,
        entry: V,
        rule_of: impl Fn(&V) -> usize,
    ) {
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

    /// Put what discovery `found` for each rule of `list` (by index) into `into`, the later
    /// rule winning a metric; a rule whose discovery failed (or was not asked, with an empty
    /// error) keeps its entries of `kept`, the previous snapshot's for the same rules.
    /// Returns the number of series fetched; errors are added to `errors`.
    fn merge<K: Ord + Clone, E: Clone + ServedBy>(
        list: &[Rule],
        kept: Kept<'_, K, E>,
        found: Vec<(RuleResult<(K, E)>, u64)>,
        into: &mut BTreeMap<K, E>,
        errors: &mut Vec<String>,
    ) -> u64 {
        let mut series = 0;
        for (idx, (result, n)) in found.into_iter().enumerate() {
            series += n;
            match result {
                Ok(entries) => {
                    for (k, v) in entries {
                        Self::claim(list, into, k, v, ServedBy::rule);
                    }
                }
                Err(e) => {
                    if !e.is_empty() {
                        errors.push(e);
                    }
                    let Some((old, from)) = kept else { continue };
                    let Some(Some(was)) = from.get(idx) else {
                        continue;
                    };
                    let previous = old.iter().filter(|(_, v)| v.rule() == *was);
                    for (k, v) in previous {
                        let v = v.clone().moved_to(idx);
                        Self::claim(list, into, k.clone(), v, ServedBy::rule);
                    }
                }
            }
        }
        series
    }

    /// Rebuild the entries of `apis` for `rules` from the backend. When `rules` is the rule
    /// set of the current snapshot, a rule whose discovery fails keeps its previous entries;
    /// the errors are returned.
    async fn rebuild(
        &self,
        rules: &Arc<RuleSet>,
        backends: &Arc<Backends>,
        apis: &[Api],
    ) -> (Snapshot, Vec<String>, u64) {
        self.rebuild_some(rules, backends, apis, &|_| true).await
    }

    /// [`Registry::rebuild`] for the rules `only` selects; the others keep their entries
    /// (when `rules` is the current rule set).
    async fn rebuild_some(
        &self,
        rules: &Arc<RuleSet>,
        backends: &Arc<Backends>,
        apis: &[Api],
        only: &(dyn Fn(&Rule) -> bool + Sync),
    ) -> (Snapshot, Vec<String>, u64) {
        let old = self.snapshot();
        let same_rules = Arc::ptr_eq(&old.rules, rules);
        let mut snap = Snapshot {
            rules: rules.clone(),
            backends: backends.clone(),
            ..Snapshot::default()
        };
        let mut errors = Vec::new();
        let mut series = 0;
        let mut fetched = Fetched::new(backends);
        let file_rules = apis
            .iter()
            .flat_map(|api| match api {
                Api::Custom => rules.custom.iter(),
                Api::External => rules.external.iter(),
            })
            .filter(|r| only(r));
        self.prefetch(file_rules, &mut fetched).await;
        if apis.contains(&Api::Custom) {
            let mut found = Vec::with_capacity(rules.custom.len());
            for (idx, rule) in rules.custom.iter().enumerate() {
                found.push(if only(rule) {
                    self.discover_custom(idx, rule, &mut fetched).await
                } else {
                    (Err(String::new()), 0)
                });
            }
            let from = if same_rules {
                (0..rules.custom.len()).map(Some).collect()
            } else {
                carried_over(&old.rules, rules, Api::Custom)
            };
            let kept = Some((&old.custom, from.as_slice()));
            series += Self::merge(&rules.custom, kept, found, &mut snap.custom, &mut errors);
        } else if same_rules {
            snap.custom = old.custom.clone();
        }
        if apis.contains(&Api::External) {
            let mut found = Vec::with_capacity(rules.external.len());
            for (idx, rule) in rules.external.iter().enumerate() {
                found.push(if only(rule) {
                    self.discover_external(idx, rule, &mut fetched).await
                } else {
                    (Err(String::new()), 0)
                });
            }
            let from = if same_rules {
                (0..rules.external.len()).map(Some).collect()
            } else {
                carried_over(&old.rules, rules, Api::External)
            };
            let kept = Some((&old.external, from.as_slice()));
            series += Self::merge(
                &rules.external,
                kept,
                found,
                &mut snap.external,
                &mut errors,
            );
        } else if same_rules {
            snap.external = old.external.clone();
        }
        // Rule objects, namespace by namespace, after the file's rules (which they never
        // override).
        for (ns, old_ns) in &old.namespaces {
            let mut fresh = NamespaceRules {
                rules: old_ns.rules.clone(),
                custom_objects: old_ns.custom_objects.clone(),
                external_objects: old_ns.external_objects.clone(),
                ..NamespaceRules::default()
            };
            let set = old_ns.rules.clone();
            for (idx, rule) in set.custom.iter().enumerate() {
                let keep = |fresh: &mut NamespaceRules| {
                    for (k, v) in old_ns.custom.iter().filter(|(_, v)| v.rule == idx) {
                        fresh.custom.insert(k.clone(), v.clone());
                    }
                    fresh.custom_shadowed.extend(
                        old_ns
                            .custom_shadowed
                            .iter()
                            .filter(|(i, _)| *i == idx)
                            .cloned(),
                    );
                };
                if !apis.contains(&Api::Custom) || !only(rule) {
                    keep(&mut fresh);
                    continue;
                }
                let (res, n) = self.discover_custom(idx, rule, &mut fetched).await;
                series += n;
                match res {
                    Ok(entries) => {
                        for (k, v) in entries {
                            if snap.custom.contains_key(&k) || fresh.custom.contains_key(&k) {
                                fresh
                                    .custom_shadowed
                                    .push((idx, format!("{}/{}", k.0, k.1)));
                            } else {
                                fresh.custom.insert(k, v);
                            }
                        }
                    }
                    Err(e) => {
                        errors.push(format!("namespace {ns}: {e}"));
                        keep(&mut fresh);
                    }
                }
            }
            for (idx, rule) in set.external.iter().enumerate() {
                let keep = |fresh: &mut NamespaceRules| {
                    for (k, v) in old_ns.external.iter().filter(|(_, v)| v.rule == idx) {
                        fresh.external.insert(k.clone(), v.clone());
                    }
                    fresh.external_shadowed.extend(
                        old_ns
                            .external_shadowed
                            .iter()
                            .filter(|(i, _)| *i == idx)
                            .cloned(),
                    );
                };
                if !apis.contains(&Api::External) || !only(rule) {
                    keep(&mut fresh);
                    continue;
                }
                let (res, n) = self.discover_external(idx, rule, &mut fetched).await;
                series += n;
                match res {
                    Ok(entries) => {
                        for (k, v) in entries {
                            if snap.external.contains_key(&k) || fresh.external.contains_key(&k) {
                                fresh.external_shadowed.push((idx, k));
                            } else {
                                fresh.external.insert(k, v);
                            }
                        }
                    }
                    Err(e) => {
                        errors.push(format!("namespace {ns}: {e}"));
                        keep(&mut fresh);
                    }
                }
            }
            snap.namespaces.insert(ns.clone(), fresh);
        }
        (snap, errors, series)
    }

    /// Serve these rule objects from now on (the valid ones; each namespace's rules in object
    /// name order): discover their series in their namespaces, then replace every
    /// namespace's rules and metrics in one step.
    pub async fn set_objects(&self, objects: &[promhpa_rules::objects::MetricRuleObject]) {
        let _guard = self.targeted.lock().await;
        let mut by_ns: BTreeMap<String, Vec<&promhpa_rules::objects::MetricRuleObject>> =
            BTreeMap::new();
        for o in objects.iter().filter(|o| o.rule.is_ok()) {
            by_ns.entry(o.namespace.clone()).or_default().push(o);
        }
        let old = self.snapshot();
        let mut staged = Snapshot {
            rules: old.rules.clone(),
            backends: old.backends.clone(),
            custom: old.custom.clone(),
            external: old.external.clone(),
            namespaces: BTreeMap::new(),
        };
        for (ns, mut list) in by_ns {
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let mut set = RuleSet::default();
            let mut nr = NamespaceRules::default();
            for o in list {
                if let Ok(rule) = &o.rule {
                    match rule.kind() {
                        promhpa_rules::RuleKind::Custom => {
                            set.custom.push(rule.clone());
                            nr.custom_objects.push(o.name.clone());
                        }
                        promhpa_rules::RuleKind::External => {
                            set.external.push(rule.clone());
                            nr.external_objects.push(o.name.clone());
                        }
                    }
                }
            }
            nr.rules = Arc::new(set);
            staged.namespaces.insert(ns, nr);
        }
        // Discover the objects' series with the staged namespaces as the "old" state.
        self.swap_quietly(staged);
        let current = self.snapshot();
        let (snap, errors, _) = self
            .rebuild_some(
                &current.rules,
                &current.backends,
                &[Api::Custom, Api::External],
                &|r| r.pinned_namespace().is_some(),
            )
            .await;
        for e in &errors {
            tracing::warn!(error = %e, "discovery failed for a MetricRule");
        }
        self.swap(snap);
    }

    /// What each rule object (`namespace/name`) serves now, for its status.
    pub fn object_reports(&self) -> BTreeMap<String, ObjectReport> {
        let snap = self.snapshot();
        let mut out: BTreeMap<String, ObjectReport> = BTreeMap::new();
        for (ns, nr) in &snap.namespaces {
            for (idx, name) in nr.custom_objects.iter().enumerate() {
                let report = out.entry(format!("{ns}/{name}")).or_default();
                for ((gr, metric), e) in &nr.custom {
                    if e.rule == idx {
                        report.metrics.push(format!("{gr}/{metric}"));
                    }
                }
                report.shadowed.extend(
                    nr.custom_shadowed
                        .iter()
                        .filter(|(i, _)| *i == idx)
                        .map(|(_, m)| m.clone()),
                );
            }
            for (idx, name) in nr.external_objects.iter().enumerate() {
                let report = out.entry(format!("{ns}/{name}")).or_default();
                for (metric, e) in &nr.external {
                    if e.rule == idx {
                        report.metrics.push(metric.clone());
                    }
                }
                report.shadowed.extend(
                    nr.external_shadowed
                        .iter()
                        .filter(|(i, _)| *i == idx)
                        .map(|(_, m)| m.clone()),
                );
            }
            for report in out.values_mut() {
                report.metrics.sort();
                report.metrics.dedup();
                report.shadowed.sort();
                report.shadowed.dedup();
            }
        }
        out
    }

    /// Relist every rule and swap in the result. Returns the per-rule errors (the registry
    /// is still replaced, keeping the failed rules' previous entries).
    pub async fn relist(&self) -> Vec<String> {
        let _guard = self.targeted.lock().await;
        let start = Instant::now();
        let current = self.snapshot();
        let rules = current.rules.clone();
        let (snap, errors, series) = self
            .rebuild(&rules, &current.backends, &[Api::Custom, Api::External])
            .await;
        self.metrics
            .observe_relist(start.elapsed().as_secs_f64(), series, errors.is_empty());
        self.metrics.record_rule_relists(
            rules.custom.iter().chain(&rules.external).map(|r| r.path()),
            &errors,
        );
        // Rules that share a series query, or a backend that is down, fail alike: one line
        // for each cause, naming its rules.
        for (cause, rules) in by_cause(&errors) {
            tracing::warn!(
                rules = %rules.join(", "),
                error = %cause,
                "discovery failed; these rules keep the metrics of their last successful discovery, if any"
            );
        }
        tracing::debug!(
            custom = snap.custom.len(),
            external = snap.external.len(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "discovery relist done"
        );
        if self
            .relist_failing
            .swap(!errors.is_empty(), Ordering::AcqRel)
            && errors.is_empty()
        {
            tracing::info!("discovery succeeds again for every rule");
        }
        self.swap(snap);
        let total = rules.custom.len() + rules.external.len();
        if errors.len() < total || total == 0 {
            self.ready.store(true, Ordering::Release);
        } else if let (Some(first), Ok(mut why)) = (errors.first(), self.not_ready.lock()) {
            *why = Some(first.clone());
        }
        self.forget_lookups();
        errors
    }

    /// Relist every `interval` forever; after a relist in which some rule failed, sooner:
    /// 5 s, doubling up to `interval`, so that a backend back up is seen within seconds
    /// rather than at the next interval. A reload whose discovery failed also brings the
    /// next relist to within 5 s.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let interval = interval.max(Duration::from_millis(100));
        let mut retry: Option<Duration> = None;
        loop {
            let errors = self.relist().await;
            let wait = if errors.is_empty() {
                retry = None;
                interval
            } else {
                let next = retry.map_or(RELIST_RETRY, |d| d * 2).min(interval);
                retry = Some(next);
                next
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.retry_soon.notified() => {
                    tokio::time::sleep(RELIST_RETRY.min(wait)).await;
                }
            }
        }
    }

    /// Why the last discovery of the rule at `path` failed, while none has succeeded since:
    /// a metric that rule could produce is then unavailable, not unknown.
    pub fn discovery_failure(&self, path: &str) -> Option<String> {
        self.metrics.rule_discovery_error(path)
    }

    /// After a relist or a reload every rule's series are fresh (or its rules new).
    fn forget_lookups(&self) {
        if let Ok(mut l) = self.looked_up.lock() {
            l.clear();
        }
    }

    /// The paths of the rules of `api` in `snap` that could produce `metric` and were not
    /// asked again within `negative_ttl`.
    fn due_for_lookup(&self, snap: &Snapshot, api: Api, metric: &str) -> HashSet<String> {
        let rules = match api {
            Api::Custom => &snap.rules.custom,
            Api::External => &snap.rules.external,
        };
        let Ok(looked_up) = self.looked_up.lock() else {
            return HashSet::new();
        };
        rules
            .iter()
            .filter(|r| r.could_serve(metric))
            .filter(|r| {
                looked_up
                    .get(r.path())
                    .is_none_or(|t| t.elapsed() >= self.negative_ttl)
            })
            .map(|r| r.path().to_string())
            .collect()
    }

    async fn targeted_lookup(&self, api: Api, metric: &str, present: impl Fn(&Snapshot) -> bool) {
        if self
            .due_for_lookup(&self.snapshot(), api, metric)
            .is_empty()
        {
            return;
        }
        let _guard = self.targeted.lock().await;
        // Another request may have refreshed the registry while this one waited.
        let current = self.snapshot();
        if present(&current) {
            return;
        }
        let due = self.due_for_lookup(&current, api, metric);
        if due.is_empty() {
            return;
        }
        // Only the rules that may serve this name, and were not just asked, are asked again.
        let (snap, errors, _) = self
            .rebuild_some(&current.rules, &current.backends, &[api], &|r| {
                due.contains(r.path())
            })
            .await;
        // Served before it is stamped: a request that finds the rule just looked up reads
        // what the lookup found. Stamped when the answer came: the requests that queued
        // behind this lookup while a slow backend answered are covered by it, not each the
        // cause of another.
        self.swap(snap);
        let answered = Instant::now();
        if let Ok(mut looked_up) = self.looked_up.lock() {
            for path in &due {
                looked_up.insert(path.clone(), answered);
            }
        }
        self.metrics
            .record_rule_lookups(due.iter().map(String::as_str), &errors);
        for e in &errors {
            tracing::warn!(error = %e, metric, "targeted discovery failed for a rule");
        }
    }

    /// Serve `rules` from now on: connect their new backends, discover their series, then
    /// replace rules, backends and entries in one step. Requests in flight finish with the
    /// snapshot they started with. Returns the rules whose discovery failed (they serve
    /// nothing until the next relist), or why the rules' backends cannot be connected
    /// (nothing changes then).
    pub async fn reload(
        &self,
        rules: RuleSet,
    ) -> Result<Vec<String>, crate::backends::BackendsError> {
        let _guard = self.targeted.lock().await;
        let start = Instant::now();
        let old = self.snapshot();
        let backends = Arc::new(Backends::build(
            old.backends.default_backend().clone(),
            &rules.backends,
            self.connect.as_ref(),
            Some(&old.backends),
        )?);
        let rules = Arc::new(rules);
        let (snap, errors, series) = self
            .rebuild(&rules, &backends, &[Api::Custom, Api::External])
            .await;
        self.metrics.record_rule_relists(
            rules.custom.iter().chain(&rules.external).map(|r| r.path()),
            &errors,
        );
        self.metrics
            .observe_relist(start.elapsed().as_secs_f64(), series, errors.is_empty());
        self.metrics.set_broken_rules(
            rules
                .rules()
                .filter(|r| r.broken().is_some())
                .map(|r| r.origin())
                .collect(),
        );
        for e in &errors {
            tracing::warn!(error = %e, "discovery failed for a reloaded rule; it serves what the same rule served before the reload, if any, until a relist succeeds");
        }
        if !errors.is_empty() {
            self.retry_soon.notify_one();
        }
        self.swap(snap);
        self.forget_lookups();
        Ok(errors)
    }

    /// The entry `in_file` finds in the rule file's metrics, else (for a request in a
    /// namespace) the one `in_objects` finds among that namespace's rule objects; when
    /// neither knows it, after a targeted lookup.
    async fn find<E: Clone>(
        &self,
        api: Api,
        metric: &str,
        namespace: Option<&str>,
        in_file: impl Fn(&Snapshot) -> Option<&E>,
        in_objects: impl Fn(&NamespaceRules) -> Option<&E>,
    ) -> Option<Served<E>> {
        let served = |s: &Snapshot| {
            if let Some(entry) = in_file(s) {
                return Some(Served {
                    rules: s.rules.clone(),
                    backends: s.backends.clone(),
                    entry: entry.clone(),
                });
            }
            let nr = s.namespaces.get(namespace?)?;
            Some(Served {
                rules: nr.rules.clone(),
                backends: s.backends.clone(),
                entry: in_objects(nr)?.clone(),
            })
        };
        if let Some(found) = served(&self.snapshot()) {
            return Some(found);
        }
        self.targeted_lookup(api, metric, |s| served(s).is_some())
            .await;
        served(&self.snapshot())
    }

    /// The entry for a custom metric of a resource: the rule file's, else that namespace's
    /// rule objects'; a targeted lookup when unknown.
    pub async fn custom(
        &self,
        gr: &GroupResource,
        metric: &str,
        namespace: Option<&str>,
    ) -> Option<Served<CustomEntry>> {
        let key = (gr.clone(), metric.to_string());
        self.find(
            Api::Custom,
            metric,
            namespace,
            |s| s.custom.get(&key),
            |nr| nr.custom.get(&key),
        )
        .await
    }

    /// The entry for an external metric: the rule file's, else that namespace's rule
    /// objects'; a targeted lookup when unknown.
    pub async fn external(
        &self,
        metric: &str,
        namespace: Option<&str>,
    ) -> Option<Served<ExternalEntry>> {
        self.find(
            Api::External,
            metric,
            namespace,
            |s| s.external.get(metric),
            |nr| nr.external.get(metric),
        )
        .await
    }
}

/// Errors of the form `rules[3]: cause`, grouped by cause in the order first seen.
fn by_cause(errors: &[String]) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for e in errors {
        let (rule, cause) = e.split_once(": ").unwrap_or(("", e.as_str()));
        match out.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, rules)) => rules.push(rule),
            None => out.push((cause, vec![rule])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::by_cause;

    #[test]
    fn errors_are_grouped_by_cause_in_order() {
        let errors = vec![
            "rules[0]: backend http://p:9090 unavailable: dns error".to_string(),
            "rules[2]: bad selector".to_string(),
            "rules[1]: backend http://p:9090 unavailable: dns error".to_string(),
        ];
        assert_eq!(
            by_cause(&errors),
            vec![
                (
                    "backend http://p:9090 unavailable: dns error",
                    vec!["rules[0]", "rules[1]"]
                ),
                ("bad selector", vec!["rules[2]"]),
            ]
        );
    }
}
