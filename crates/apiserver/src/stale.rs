//! Stale values, bounded (`--stale-value-max-age`): the last answer promhpa gave to each
//! metric request, served again when the backend fails, for at most a configured age.
//!
//! A request is identified by its path (API, version, namespace, resource, object name or
//! `*`, metric) and query parameters other than `timeout` (`labelSelector`,
//! `metricLabelSelector`, field selectors). What is remembered is bounded three ways:
//! an answer's body is dropped once it is older than the maximum age, or sooner when the
//! bodies together pass [`MAX_BYTES`] (oldest first); only its time is kept then, so that
//! a later failure can say when the last answer was, and that too is forgotten
//! [`FORGET_AFTER`] later or when more than [`MAX_ENTRIES`] requests are remembered.
//!
//! ```
//! use promhpa_apiserver::stale::{Recall, StaleAnswers};
//! use std::time::Duration;
//!
//! let answers = StaleAnswers::new(Duration::from_secs(30));
//! answers.remember("/apis/x", "{}".into(), 1_700_000_000_000);
//! assert!(matches!(answers.recall("/apis/x"), Recall::Fresh { .. }));
//! assert!(matches!(answers.recall("/apis/y"), Recall::Unknown));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::time::Instant;

/// The most requests remembered at once (answers and times of past answers).
pub const MAX_ENTRIES: usize = 10_000;
/// The most bytes of answer bodies kept at once.
pub const MAX_BYTES: usize = 32 << 20;
/// How long after its body expired the time of a request's last answer is kept.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// At most one log line per this interval says that stale values are being served.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What is remembered of a request's last answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Recall {
    /// An answer younger than the maximum age: its body, when it was given (Unix ms) and
    /// its age.
    Fresh {
        body: Bytes,
        answered_ms: i64,
        age: Duration,
    },
    /// The last answer is too old to be served (or its body had to be dropped): when it
    /// was given and its age.
    TooOld { answered_ms: i64, age: Duration },
    /// No answer to this request is remembered.
    Unknown,
}

struct Entry {
    /// Position in [`Inner::order`].
    seq: u64,
    at: Instant,
    answered_ms: i64,
    body: Option<Bytes>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Arc<str>, Entry>,
    /// Entries by the time of their last answer, oldest first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    /// Entries before this position have no body. Bodies are dropped oldest first, and a
    /// new answer always goes to the end, so the entries with a body are a suffix of
    /// `order`.
    bodies_from: u64,
    bytes: usize,
}

/// The last answers to metric requests, for serving when the backend fails.
pub struct StaleAnswers {
    max_age: Duration,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
    log: Mutex<LogLimit>,
}

#[derive(Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl StaleAnswers {
    /// Answers served for at most `max_age`, within the default bounds.
    pub fn new(max_age: Duration) -> Self {
        StaleAnswers::with_bounds(max_age, MAX_ENTRIES, MAX_BYTES)
    }

    /// Answers served for at most `max_age`, at most `max_entries` requests and
    /// `max_bytes` of bodies remembered.
    pub fn with_bounds(max_age: Duration, max_entries: usize, max_bytes: usize) -> Self {
        StaleAnswers {
            max_age,
            max_entries: max_entries.max(1),
            max_bytes,
            inner: Mutex::new(Inner::default()),
            log: Mutex::new(LogLimit::default()),
        }
    }

    /// How old an answer may be and still be served.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember `body` as the answer given now (`answered_ms`, Unix ms) to request `key`.
    pub fn remember(&self, key: &str, body: Bytes, answered_ms: i64) {
        self.remember_at(key, body, answered_ms, Instant::now());
    }

    fn remember_at(&self, key: &str, body: Bytes, answered_ms: i64, now: Instant) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        // A body larger than all bodies may be is not kept; the time of the answer is.
        let body = (body.len() <= self.max_bytes).then_some(body);
        let added = body.as_ref().map_or(0, Bytes::len);
        let entry = Entry {
            seq,
            at: now,
            answered_ms,
            body,
        };
        let key: Arc<str> = match inner.entries.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        if let Some(old) = inner.entries.insert(key.clone(), entry) {
            inner.order.remove(&old.seq);
            inner.bytes -= old.body.as_ref().map_or(0, Bytes::len);
        }
        inner.order.insert(seq, key);
        inner.bytes += added;
        self.sweep(inner, now);
    }

    /// What is remembered of the last answer to request `key`.
    pub fn recall(&self, key: &str) -> Recall {
        self.recall_at(key, Instant::now())
    }

    fn recall_at(&self, key: &str, now: Instant) -> Recall {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        match inner.entries.get(key) {
            None => Recall::Unknown,
            Some(e) => {
                let age = now.saturating_duration_since(e.at);
                match &e.body {
                    Some(body) if age < self.max_age => Recall::Fresh {
                        body: body.clone(),
                        answered_ms: e.answered_ms,
                        age,
                    },
                    _ => Recall::TooOld {
                        answered_ms: e.answered_ms,
                        age,
                    },
                }
            }
        }
    }

    /// Requests remembered, and the bytes of the bodies kept.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }

    /// A stale answer was served: whether to log it now (at most once per
    /// [`LOG_INTERVAL`]), with the number served without a log line since the last one.
    pub fn log_served(&self) -> Option<u64> {
        self.log_served_at(Instant::now())
    }

    fn log_served_at(&self, now: Instant) -> Option<u64> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match log.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                log.suppressed += 1;
                None
            }
            _ => {
                log.last = Some(now);
                Some(std::mem::take(&mut log.suppressed))
            }
        }
    }

    /// Drop bodies past the maximum age or the byte budget, then forget entries past
    /// [`FORGET_AFTER`] or the count, oldest first.
    fn sweep(&self, inner: &mut Inner, now: Instant) {
        while let Some((&seq, key)) = inner.order.range(inner.bodies_from..).next() {
            let Some(entry) = inner.entries.get_mut(key) else {
                break;
            };
            let expired = now.saturating_duration_since(entry.at) >= self.max_age;
            if !expired && inner.bytes <= self.max_bytes {
                break;
            }
            if let Some(body) = entry.body.take() {
                inner.bytes -= body.len();
            }
            inner.bodies_from = seq + 1;
        }
        let forget = self.max_age.saturating_add(FORGET_AFTER);
        while let Some((&seq, key)) = inner.order.first_key_value() {
            let Some(entry) = inner.entries.get(key) else {
                break;
            };
            let old = now.saturating_duration_since(entry.at) >= forget;
            if !old && inner.entries.len() <= self.max_entries {
                break;
            }
            let key = key.clone();
            if let Some(entry) = inner.entries.remove(&key) {
                inner.bytes -= entry.body.as_ref().map_or(0, Bytes::len);
            }
            inner.order.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn served_within_the_age_then_only_the_time_is_known() {
        let a = StaleAnswers::new(Duration::from_secs(5));
        let t0 = Instant::now();
        a.remember_at("k", body("one"), 1_000, t0);
        match a.recall_at("k", t0 + Duration::from_secs(4)) {
            Recall::Fresh {
                body,
                answered_ms,
                age,
            } => {
                assert_eq!(&body[..], b"one");
                assert_eq!(answered_ms, 1_000);
                assert_eq!(age, Duration::from_secs(4));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.recall_at("k", t0 + Duration::from_secs(5)),
            Recall::TooOld {
                answered_ms: 1_000,
                age: Duration::from_secs(5)
            }
        );
        // The body is gone once expired; the time stays until FORGET_AFTER.
        assert_eq!(a.size(), (1, 0));
        assert!(matches!(
            a.recall_at("k", t0 + Duration::from_secs(5) + FORGET_AFTER),
            Recall::Unknown
        ));
        assert_eq!(a.size(), (0, 0));
    }

    #[test]
    fn a_new_answer_replaces_the_old_one() {
        let a = StaleAnswers::new(Duration::from_secs(5));
        let t0 = Instant::now();
        a.remember_at("k", body("one"), 1_000, t0);
        a.remember_at("other", body("x"), 1_000, t0);
        a.remember_at("k", body("three"), 2_000, t0 + Duration::from_secs(3));
        assert_eq!(a.size(), (2, 6));
        // "other" expired, "k" was answered again and is still fresh.
        assert!(matches!(
            a.recall_at("other", t0 + Duration::from_secs(6)),
            Recall::TooOld { .. }
        ));
        match a.recall_at("k", t0 + Duration::from_secs(6)) {
            Recall::Fresh {
                body, answered_ms, ..
            } => {
                assert_eq!(&body[..], b"three");
                assert_eq!(answered_ms, 2_000);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.size(), (2, 5));
        assert_eq!(a.recall_at("nothing", t0), Recall::Unknown);
    }

    #[test]
    fn the_count_and_the_bytes_are_bounded() {
        let a = StaleAnswers::with_bounds(Duration::from_secs(60), 3, 10);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            a.remember_at(
                k,
                body("xxx"),
                i as i64,
                t0 + Duration::from_millis(i as u64),
            );
        }
        // Four requests, three remembered: the oldest is forgotten.
        assert_eq!(a.size(), (3, 9));
        let now = t0 + Duration::from_secs(1);
        assert_eq!(a.recall_at("a", now), Recall::Unknown);
        assert!(matches!(a.recall_at("b", now), Recall::Fresh { .. }));
        // Past the byte budget the oldest bodies go first; their times stay.
        a.remember_at("e", body("yyyyy"), 9, now);
        assert_eq!(a.size(), (3, 8));
        assert!(matches!(a.recall_at("c", now), Recall::TooOld { .. }));
        assert!(matches!(a.recall_at("d", now), Recall::Fresh { .. }));
        assert!(matches!(a.recall_at("e", now), Recall::Fresh { .. }));
        // A body larger than the whole budget is not kept, and displaces nothing.
        a.remember_at("f", body("zzzzzzzzzzzz"), 10, now);
        assert!(matches!(a.recall_at("f", now), Recall::TooOld { .. }));
        assert!(matches!(a.recall_at("e", now), Recall::Fresh { .. }));
        // An entry answered again after its body was dropped keeps the new body.
        a.remember_at("d", body("ww"), 11, now);
        assert!(matches!(a.recall_at("d", now), Recall::Fresh { .. }));
        let (entries, bytes) = a.size();
        assert!(entries <= 3 && bytes <= 10, "{entries} {bytes}");
    }

    #[test]
    fn logging_is_rate_limited() {
        let a = StaleAnswers::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(a.log_served_at(t0), Some(0));
        assert_eq!(a.log_served_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(a.log_served_at(t0 + Duration::from_secs(2)), None);
        assert_eq!(a.log_served_at(t0 + Duration::from_secs(11)), Some(2));
    }
}
