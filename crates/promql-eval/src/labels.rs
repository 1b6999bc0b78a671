//! Label sets: sorted `(name, value)` pairs with shared, interned strings.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of labels. Names are unique and values never empty (an empty value means the
/// label is absent, as in Prometheus).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(Arc<str>, Arc<str>)>);

impl Labels {
    /// An empty label set.
    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order; a later pair wins over an earlier one with
    /// the same name, and pairs with an empty value are dropped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut out = Labels::empty();
        for (n, v) in pairs {
            out.set(n.as_ref(), v.as_ref());
        }
        out
    }

    /// Builds from already-shared strings.
    pub fn from_arcs(mut pairs: Vec<(Arc<str>, Arc<str>)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = later.1.clone();
                true
            } else {
                false
            }
        });
        Labels(pairs)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The metric name, if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => {
                if value.is_empty() {
                    self.0.remove(i);
                } else {
                    self.0[i].1 = Arc::from(value);
                }
            }
            Err(i) => {
                if !value.is_empty() {
                    self.0.insert(i, (Arc::from(name), Arc::from(value)));
                }
            }
        }
    }

    /// Sets a label from shared strings (cheap when copying between label sets).
    pub fn set_arc(&mut self, name: &Arc<str>, value: &Arc<str>) {
        match self.0.binary_search_by(|(n, _)| n.cmp(name)) {
            Ok(i) => {
                if value.is_empty() {
                    self.0.remove(i);
                } else {
                    self.0[i].1 = value.clone();
                }
            }
            Err(i) => {
                if !value.is_empty() {
                    self.0.insert(i, (name.clone(), value.clone()));
                }
            }
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(n, _)| (**n).cmp(name)) {
            self.0.remove(i);
        }
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| &**n != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A copy with only the given label names.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| names.iter().any(|k| k.as_str() == &**n))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the given label names.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| !names.iter().any(|k| k.as_str() == &**n))
                .cloned()
                .collect(),
        )
    }

    /// Iterates over `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The shared pairs.
    pub fn pairs(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.0
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `BTreeMap` copy, the shape of [`promhpa_core::backend::Labels`].
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        self.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            write!(f, "{name}")?;
        }
        write!(f, "{{")?;
        let mut first = true;
        for (n, v) in self.iter() {
            if n == METRIC_NAME {
                continue;
            }
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{n}=\"")?;
            for c in v.chars() {
                match c {
                    '"' => write!(f, "\\\"")?,
                    '\\' => write!(f, "\\\\")?,
                    '\n' => write!(f, "\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            write!(f, "\"")?;
        }
        write!(f, "}}")
    }
}

/// Shares equal strings between label sets, so a million series with the same label names
/// and few distinct values use each string's memory once.
#[derive(Default, Debug)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        let arc: Arc<str> = Arc::from(s);
        self.strings.insert(arc.clone());
        arc
    }

    /// Re-creates `labels` with interned strings.
    pub fn intern_labels(&mut self, labels: &Labels) -> Labels {
        Labels(
            labels
                .0
                .iter()
                .map(|(n, v)| (self.intern(n), self.intern(v)))
                .collect(),
        )
    }

    /// Drops strings no longer used by anything but the interner.
    pub fn collect_garbage(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Number of distinct strings held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}
