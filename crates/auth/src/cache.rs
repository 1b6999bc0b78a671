//! A small time-to-live cache and the clock it (and certificate validity) is measured with.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Where the current time comes from; injectable so that tests control expiry.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Entry<V> {
    stored: SystemTime,
    ttl: Duration,
    value: V,
}

impl<V> Entry<V> {
    fn fresh(&self, now: SystemTime) -> bool {
        // A clock that went backwards expires the entry rather than extending it.
        match now.duration_since(self.stored) {
            Ok(age) => age < self.ttl,
            Err(_) => false,
        }
    }
}

/// A map whose entries expire `ttl` after they were stored. Bounded: when full, expired
/// entries are dropped first, then the oldest.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The value stored for `key` if it has not expired at `now`.
    pub fn get(&self, key: &K, now: SystemTime) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|e| e.fresh(now))
            .map(|e| e.value.clone())
    }

    /// Stores `value` for `ttl` from `now`; a zero `ttl` stores nothing.
    pub fn insert(&self, key: K, value: V, ttl: Duration, now: SystemTime) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| e.fresh(now));
            if entries.len() >= self.capacity {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.stored)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                stored: now,
                ttl,
                value,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        let cache = TtlCache::new(10);
        cache.insert("a", 1, Duration::from_secs(10), clock.now());
        clock.advance(Duration::from_secs(9));
        assert_eq!(cache.get(&"a", clock.now()), Some(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get(&"a", clock.now()), None);
    }

    #[test]
    fn zero_ttl_stores_nothing_and_capacity_is_bounded() {
        let now = SystemTime::UNIX_EPOCH;
        let cache = TtlCache::new(2);
        cache.insert(1, 1, Duration::ZERO, now);
        assert!(cache.is_empty());
        for k in 0..5 {
            cache.insert(
                k,
                k,
                Duration::from_secs(60),
                now + Duration::from_secs(k as u64),
            );
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&4, now + Duration::from_secs(5)), Some(4));
        assert_eq!(cache.get(&0, now + Duration::from_secs(5)), None);
    }
}
