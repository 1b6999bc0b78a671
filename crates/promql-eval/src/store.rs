//! The in-memory series store: interned label sets, per-series time-sorted sample buffers, a
//! retention window and a series limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use promql_parser::label::Matcher;

use crate::labels::{Interner, Labels, METRIC_NAME};
use crate::EvalError;

/// The bit pattern Prometheus uses for staleness markers (a NaN that is not the usual NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is a staleness marker.
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Identifies a series inside one [`Store`].
pub type SeriesId = u64;

/// One series: its labels and its samples in time order.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    /// `(timestamp_ms, value)`, strictly increasing timestamps.
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// The samples with `from < t <= to`.
    pub fn range(&self, from_exclusive: i64, to_inclusive: i64) -> &[(i64, f64)] {
        let lo = self.samples.partition_point(|(t, _)| *t <= from_exclusive);
        let hi = self.samples.partition_point(|(t, _)| *t <= to_inclusive);
        if lo >= hi {
            &[]
        } else {
            &self.samples[lo..hi]
        }
    }
}

/// Limits that bound the store's memory.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Samples older than the newest sample minus this are dropped (milliseconds).
    pub retention_ms: i64,
    /// The most series the store accepts; samples of further new series are rejected.
    pub max_series: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            retention_ms: 2 * 60 * 60 * 1000,
            max_series: 1_000_000,
        }
    }
}

/// In-memory time series store.
///
/// Series live in a slab indexed by [`SeriesId`]; a per-metric-name index keeps each name's
/// series in label order, so selections come out in the order Prometheus' storage returns
/// them without sorting at query time.
#[derive(Debug, Default)]
pub struct Store {
    interner: Interner,
    series: Vec<Option<Series>>,
    free: Vec<usize>,
    live: usize,
    /// Series by the hash of their labels (the labels themselves live in the slab only);
    /// `collisions` holds further series whose labels hash the same.
    by_hash: HashMap<u64, SeriesId>,
    collisions: HashMap<u64, Vec<SeriesId>>,
    by_name: HashMap<Arc<str>, BTreeMap<OrdLabels, SeriesId>>,
    limits: StoreLimits,
    newest_ms: Option<i64>,
    scrape_cache: HashMap<String, HashMap<Box<str>, SeriesId>>,
    scrape_cache_len: usize,
}

/// The hash the series index uses for a label set.
fn labels_hash(labels: &Labels) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(labels)
}

/// Interned labels ordered with [`cmp_labels`], which skips reading strings that are the same
/// allocation; the order is the same as `Labels`' own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrdLabels(Labels);

impl PartialOrd for OrdLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        cmp_labels(&self.0, &other.0)
    }
}

/// Compares label sets, taking equal shared strings (the interner makes equal strings the
/// same allocation) as equal without reading them.
fn cmp_labels(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (x, y) in a.pairs().iter().zip(b.pairs()) {
        let o = if Arc::ptr_eq(&x.0, &y.0) {
            Ordering::Equal
        } else {
            x.0.cmp(&y.0)
        };
        if o != Ordering::Equal {
            return o;
        }
        let o = if Arc::ptr_eq(&x.1, &y.1) {
            Ordering::Equal
        } else {
            x.1.cmp(&y.1)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

impl Store {
    /// An empty store with default limits (2 h retention, 1,000,000 series).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: StoreLimits) -> Self {
        Store {
            limits,
            ..Self::default()
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.live
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.series.iter().flatten().map(|s| s.samples.len()).sum()
    }

    /// The newest sample timestamp seen, if any.
    pub fn newest_timestamp(&self) -> Option<i64> {
        self.newest_ms
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        let limits = self.limits;
        *self = Store::with_limits(limits);
    }

    fn get(&self, id: SeriesId) -> Option<&Series> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    /// The series with exactly `labels`, whose hash is `hash`.
    fn lookup(&self, hash: u64, labels: &Labels) -> Option<SeriesId> {
        let same = |id: &SeriesId| self.get(*id).is_some_and(|s| s.labels == *labels);
        if let Some(id) = self.by_hash.get(&hash).filter(|id| same(id)) {
            return Some(*id);
        }
        self.collisions
            .get(&hash)
            .and_then(|ids| ids.iter().find(|id| same(id)).copied())
    }

    /// Removes `id` from the hash index, promoting a colliding series if there is one.
    fn forget_hash(&mut self, hash: u64, id: SeriesId) {
        if self.by_hash.get(&hash) == Some(&id) {
            self.by_hash.remove(&hash);
            if let Some(ids) = self.collisions.get_mut(&hash) {
                if let Some(next) = ids.pop() {
                    self.by_hash.insert(hash, next);
                }
                if ids.is_empty() {
                    self.collisions.remove(&hash);
                }
            }
        } else if let Some(ids) = self.collisions.get_mut(&hash) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.collisions.remove(&hash);
            }
        }
    }

    /// The id of the series with exactly these labels, creating it if the series limit
    /// allows.
    pub fn series_id(&mut self, labels: &Labels) -> Result<SeriesId, EvalError> {
        self.series_id_within(labels, true)
    }

    fn series_id_within(&mut self, labels: &Labels, limited: bool) -> Result<SeriesId, EvalError> {
        let hash = labels_hash(labels);
        if let Some(id) = self.lookup(hash, labels) {
            return Ok(id);
        }
        if limited && self.live >= self.limits.max_series {
            return Err(EvalError::SeriesLimit {
                limit: self.limits.max_series,
                labels: labels.to_string(),
            });
        }
        let labels = self.interner.intern_labels(labels);
        let series = Series {
            labels: labels.clone(),
            samples: Vec::new(),
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.series[i] = Some(series);
                i
            }
            None => {
                self.series.push(Some(series));
                self.series.len() - 1
            }
        };
        let id = index as SeriesId;
        self.live += 1;
        if let Some(name) = labels
            .pairs()
            .iter()
            .find(|(n, _)| &**n == METRIC_NAME)
            .map(|(_, v)| v.clone())
        {
            self.by_name
                .entry(name)
                .or_default()
                .insert(OrdLabels(labels.clone()), id);
        }
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(id);
            }
        }
        Ok(id)
    }

    /// Appends a sample to the series `id`. A sample at an existing timestamp replaces it; an
    /// older sample is inserted in order.
    pub fn append_id(&mut self, id: SeriesId, t: i64, v: f64) {
        if let Some(Some(series)) = self.series.get_mut(id as usize) {
            match series.samples.last() {
                None => series.samples.push((t, v)),
                Some((last, _)) if *last < t => series.samples.push((t, v)),
                _ => match series.samples.binary_search_by(|(st, _)| st.cmp(&t)) {
                    Ok(i) => series.samples[i].1 = v,
                    Err(i) => series.samples.insert(i, (t, v)),
                },
            }
            self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
        }
    }

    /// The series id remembered for a raw series text a target exposed.
    pub(crate) fn scrape_cache_get(&self, target: &str, raw: &str) -> Option<SeriesId> {
        self.scrape_cache
            .get(target)
            .and_then(|m| m.get(raw))
            .copied()
            .filter(|id| self.get(*id).is_some())
    }

    /// Remembers the series id of a raw series text a target exposed.
    pub(crate) fn scrape_cache_put(&mut self, target: &str, raw: &str, id: SeriesId) {
        if self.scrape_cache_len > 2 * self.limits.max_series.min(10_000_000) {
            self.scrape_cache.clear();
            self.scrape_cache_len = 0;
        }
        let per_target = match self.scrape_cache.get_mut(target) {
            Some(m) => m,
            None => self.scrape_cache.entry(target.to_string()).or_default(),
        };
        if per_target.insert(raw.into(), id).is_none() {
            self.scrape_cache_len += 1;
        }
    }

    /// Appends one sample to the series with these labels.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), EvalError> {
        let id = self.series_id(labels)?;
        self.append_id(id, t, v);
        Ok(())
    }

    /// The id of a series the store admits even beyond `max_series`: a scrape's own report
    /// (`up`, `scrape_duration_seconds`, `scrape_samples_scraped`), three series per
    /// configured target, which must say how the target is doing when its samples are the
    /// ones no longer admitted.
    pub fn admitted_series_id(&mut self, labels: &Labels) -> Option<SeriesId> {
        self.series_id_within(labels, false).ok()
    }

    /// Drops samples older than the retention window (relative to the newest sample) and
    /// series left without samples.
    pub fn enforce_retention(&mut self) {
        let Some(newest) = self.newest_ms else {
            return;
        };
        self.drop_before(newest.saturating_sub(self.limits.retention_ms));
    }

    /// Drops samples with a timestamp before `cutoff_ms`, and series left empty.
    pub fn drop_before(&mut self, cutoff_ms: i64) {
        let mut empty = Vec::new();
        for (i, slot) in self.series.iter_mut().enumerate() {
            let Some(series) = slot else {
                continue;
            };
            let keep_from = series.samples.partition_point(|(t, _)| *t < cutoff_ms);
            if keep_from > 0 {
                series.samples.drain(..keep_from);
            }
            if series.samples.is_empty() {
                empty.push(i);
            }
        }
        if empty.is_empty() {
            return;
        }
        self.scrape_cache.clear();
        self.scrape_cache_len = 0;
        for i in empty {
            if let Some(series) = self.series[i].take() {
                self.free.push(i);
                self.live -= 1;
                self.forget_hash(labels_hash(&series.labels), i as SeriesId);
                if let Some(name) = series.labels.metric_name() {
                    if let Some(map) = self.by_name.get_mut(name) {
                        map.remove(&OrdLabels(series.labels.clone()));
                        if map.is_empty() {
                            self.by_name.remove(name);
                        }
                    }
                }
            }
        }
        self.interner.collect_garbage();
    }

    /// The series matching every matcher (a `__name__` equality matcher uses the name
    /// index), ordered by labels as Prometheus' storage returns them.
    pub fn select<'a>(&'a self, matchers: &[Matcher]) -> Vec<&'a Series> {
        let name_eq = matchers.iter().find_map(|m| {
            if m.name == METRIC_NAME && matches!(m.op, promql_parser::label::MatchOp::Equal) {
                Some(m.value.as_str())
            } else {
                None
            }
        });
        let matches = |s: &Series| {
            matchers
                .iter()
                .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
        };
        match name_eq {
            Some(name) => match self.by_name.get(name) {
                Some(map) => map
                    .values()
                    .filter_map(|id| self.get(*id))
                    .filter(|s| matches(s))
                    .collect(),
                None => Vec::new(),
            },
            None => {
                let mut out: Vec<&Series> = self
                    .series
                    .iter()
                    .flatten()
                    .filter(|s| matches(s))
                    .collect();
                out.sort_unstable_by(|a, b| cmp_labels(&a.labels, &b.labels));
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_drops_old_samples_and_empty_series() {
        let mut store = Store::with_limits(StoreLimits {
            retention_ms: 1000,
            max_series: 10,
        });
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        store.append(&a, 0, 1.0).unwrap();
        store.append(&b, 500, 1.0).unwrap();
        store.append(&b, 2000, 2.0).unwrap();
        store.enforce_retention();
        assert_eq!(store.series_count(), 1);
        assert_eq!(store.sample_count(), 1);
    }

    #[test]
    fn series_limit_rejects_new_series_only() {
        let mut store = Store::with_limits(StoreLimits {
            retention_ms: 1000,
            max_series: 1,
        });
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        store.append(&a, 0, 1.0).unwrap();
        assert!(store.append(&b, 0, 1.0).is_err());
        store.append(&a, 1, 2.0).unwrap();
        assert_eq!(store.sample_count(), 2);
    }

    #[test]
    fn hash_collisions_keep_series_apart() {
        let mut store = Store::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let c = Labels::from_pairs([("__name__", "c")]);
        let ia = store.series_id(&a).unwrap();
        // Force b and c into a's hash bucket, as a collision would.
        let h = labels_hash(&a);
        for labels in [&b, &c] {
            let id = store.series_id(labels).unwrap();
            store.forget_hash(labels_hash(labels), id);
            store.collisions.entry(h).or_default().push(id);
        }
        assert_eq!(store.lookup(h, &a), Some(ia));
        let ib = store.lookup(h, &b).unwrap();
        assert_ne!(ib, ia);
        store.forget_hash(h, ia);
        assert_eq!(store.lookup(h, &a), None);
        assert_eq!(store.lookup(h, &b), Some(ib));
        assert!(store.lookup(h, &c).is_some());
    }

    #[test]
    fn out_of_order_samples_are_sorted_and_duplicates_replaced() {
        let mut store = Store::new();
        let a = Labels::from_pairs([("__name__", "a")]);
        store.append(&a, 10, 1.0).unwrap();
        store.append(&a, 5, 2.0).unwrap();
        store.append(&a, 10, 3.0).unwrap();
        let s = store.select(&[]);
        assert_eq!(s[0].samples, vec![(5, 2.0), (10, 3.0)]);
    }
}
