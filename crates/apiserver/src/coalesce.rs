//! Query coalescing: concurrent requests that render the same PromQL share one backend
//! query, but only while it is young. A query older than [`Coalescer::max_join_age`] is
//! neither joined nor waited on: the next request asks the backend itself, so a stalled
//! backend that answers again serves new requests at once instead of after the stalled
//! query gives up. A request that joined a query which failed asks once more itself (if it
//! has time left), since the backend may have recovered since the query was sent; a
//! failure that was only the leader's deadline passing is never taken as the answer by a
//! request with time left.
//!
//! Two memories sit beside it, both off unless configured: a result cache
//! ([`Coalescer::with_result_ttl`], `--query-cache-ttl`) answers an identical query from
//! memory for a short time after it succeeded, and the request's last answers
//! ([`Coalescer::with_stale_answers`], `--stale-value-max-age`) are kept for serving when
//! the backend fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use promhpa_core::backend::{Backend, BackendError, QueryValue, TimedAnswer};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backends::BackendRef;
use crate::stale::StaleAnswers;

/// A finished query's result, and whether it failed only because its leader's deadline
/// passed (which says nothing to a request with time left).
type Outcome = Option<(Result<QueryValue, BackendError>, bool)>;

/// How long a query in flight may be joined by identical requests unless configured.
pub const DEFAULT_MAX_JOIN_AGE: Duration = Duration::from_secs(1);

/// The most results the result cache holds; past it new results are not cached until
/// older ones expire.
pub const MAX_CACHED_RESULTS: usize = 10_000;

/// Where a query's result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This request asked the backend.
    Backend,
    /// An identical query in flight answered it.
    Shared,
    /// The result cache answered it.
    Cache,
}

/// Results of recent successful queries by PromQL, each answered from memory for `ttl`.
struct ResultCache {
    ttl: Duration,
    entries: Mutex<CachedResults>,
}

#[derive(Default)]
struct CachedResults {
    by_query: HashMap<String, (Instant, QueryValue)>,
    last_sweep: Option<Instant>,
}

impl ResultCache {
    fn get(&self, promql: &str) -> Option<QueryValue> {
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match m.by_query.get(promql) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            _ => None,
        }
    }

    fn put(&self, promql: &str, value: &QueryValue) {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Expired results are dropped once per TTL, so the cache holds about what one TTL
        // of distinct queries produced, and never more than MAX_CACHED_RESULTS.
        if m.last_sweep
            .is_none_or(|t| now.duration_since(t) >= self.ttl)
            || m.by_query.len() >= MAX_CACHED_RESULTS
        {
            let ttl = self.ttl;
            m.by_query
                .retain(|_, (at, _)| now.duration_since(*at) < ttl);
            m.last_sweep = Some(now);
        }
        if m.by_query.len() < MAX_CACHED_RESULTS || m.by_query.contains_key(promql) {
            m.by_query.insert(promql.to_string(), (now, value.clone()));
        }
    }
}

/// What [`Coalescer::answer`] gives.
#[derive(Debug)]
pub struct Answer {
    pub result: Result<QueryValue, BackendError>,
    pub source: Source,
    /// The time spent decoding the backend's response, when this request asked the
    /// backend and the backend reports it.
    pub decode: Option<Duration>,
}

impl Answer {
    fn new(result: Result<QueryValue, BackendError>, source: Source) -> Answer {
        Answer {
            result,
            source,
            decode: None,
        }
    }
}

struct InFlight {
    id: u64,
    started: Instant,
    result: watch::Receiver<Outcome>,
}

/// Shares in-flight instant queries between identical requests.
pub struct Coalescer {
    inflight: Mutex<HashMap<String, InFlight>>,
    next_id: AtomicU64,
    max_join_age: Duration,
    results: Option<ResultCache>,
    answers: Option<StaleAnswers>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer::new(DEFAULT_MAX_JOIN_AGE)
    }
}

/// Removes the in-flight entry when the leading request finishes or is dropped, unless a
/// newer query for the same PromQL has taken its place.
struct Leader<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    id: u64,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut m = self
            .coalescer
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.get(self.key).is_some_and(|e| e.id == self.id) {
            m.remove(self.key);
        }
    }
}

/// The error of a query that got no answer within `budget`.
fn timed_out(backend: &dyn Backend, budget: Duration) -> BackendError {
    BackendError::Unavailable {
        address: backend.address(),
        message: format!(
            "no answer within {}ms (the request's deadline)",
            budget.as_millis()
        ),
    }
}

impl Coalescer {
    /// A coalescer that lets requests join a query for at most `max_join_age` after it
    /// was sent.
    pub fn new(max_join_age: Duration) -> Self {
        Coalescer {
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max_join_age,
            results: None,
            answers: None,
        }
    }

    /// Answer a query from memory for `ttl` after an identical one succeeded (zero: never).
    pub fn with_result_ttl(mut self, ttl: Duration) -> Self {
        self.results = (!ttl.is_zero()).then(|| ResultCache {
            ttl,
            entries: Mutex::new(CachedResults::default()),
        });
        self
    }

    /// Keep the last answer to each request for serving when the backend fails, for at
    /// most `max_age` (zero: never).
    pub fn with_stale_answers(mut self, max_age: Duration) -> Self {
        self.answers = (!max_age.is_zero()).then(|| StaleAnswers::new(max_age));
        self
    }

    /// The last answers to requests, when stale values are served.
    pub fn answers(&self) -> Option<&StaleAnswers> {
        self.answers.as_ref()
    }

    /// How long after it was sent a query may still be joined.
    pub fn max_join_age(&self) -> Duration {
        self.max_join_age
    }

    /// Evaluate `promql` at `at_ms` within `budget`, or wait for an identical query sent
    /// less than [`Coalescer::max_join_age`] ago — until it answers, the budget runs out, or
    /// it turns that old, whichever comes first; in the last case ask the backend anew.
    /// With a result cache, a result younger than its TTL is the answer. Returns the
    /// result and where it came from.
    pub async fn query(
        &self,
        backend: &BackendRef,
        promql: &str,
        at_ms: i64,
        budget: Duration,
    ) -> (Result<QueryValue, BackendError>, Source) {
        let answer = self.answer(backend, promql, at_ms, budget).await;
        (answer.result, answer.source)
    }

    /// [`Coalescer::query`], also saying how long decoding the backend's response took
    /// when this request asked the backend itself.
    pub async fn answer(
        &self,
        backend: &BackendRef,
        promql: &str,
        at_ms: i64,
        budget: Duration,
    ) -> Answer {
        let key = &format!("{}\n{promql}", backend.id);
        let backend = &backend.client;
        if let Some(v) = self.results.as_ref().and_then(|c| c.get(key)) {
            return Answer::new(Ok(v), Source::Cache);
        }
        let deadline = Instant::now() + budget;
        let mut retried = false;
        loop {
            let (follower, leader) = {
                let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                match m.get(key) {
                    Some(e) if e.started.elapsed() < self.max_join_age => (
                        Some((e.result.clone(), e.started + self.max_join_age)),
                        None,
                    ),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        m.insert(
                            key.to_string(),
                            InFlight {
                                id,
                                started: Instant::now(),
                                result: rx,
                            },
                        );
                        (None, Some((tx, id)))
                    }
                }
            };
            if let Some((tx, id)) = leader {
                let guard = Leader {
                    coalescer: self,
                    key,
                    id,
                };
                let TimedAnswer { result, decode } = ask(backend, promql, at_ms, deadline).await;
                let ran_out = result.is_err() && Instant::now() >= deadline;
                if let (Some(cache), Ok(v)) = (&self.results, &result) {
                    cache.put(key, v);
                }
                // Past this point no request can join: only those already waiting get a
                // copy of the result.
                drop(guard);
                if tx.receiver_count() > 0 {
                    let _ = tx.send(Some((result.clone(), ran_out)));
                }
                return Answer {
                    result,
                    source: Source::Backend,
                    decode,
                };
            }
            let Some((mut rx, stale_at)) = follower else {
                continue;
            };
            let until = deadline.min(stale_at);
            let waited = tokio::time::timeout_at(until, rx.wait_for(Option::is_some)).await;
            let shared: Outcome = match waited {
                Ok(Ok(v)) => v.clone(),
                // The leading request went away before answering: ask again.
                Ok(Err(_)) => None,
                Err(_) if Instant::now() >= deadline => {
                    return Answer::new(Err(timed_out(backend.as_ref(), budget)), Source::Shared)
                }
                // The shared query is too old to wait on any longer: ask again.
                Err(_) => None,
            };
            let time_left = Instant::now() < deadline;
            match shared {
                // The leader ran out of time, this request has some left: ask again.
                Some((Err(_), true)) if time_left => {}
                // A failure of a query sent before this request arrived may be over by
                // now: ask once more before passing it on.
                Some((Err(_), false)) if time_left && !retried => retried = true,
                Some((result, _)) => return Answer::new(result, Source::Shared),
                None => {}
            }
        }
    }
}

/// One backend query that gives up at `deadline`.
async fn ask(
    backend: &Arc<dyn Backend>,
    promql: &str,
    at_ms: i64,
    deadline: Instant,
) -> TimedAnswer {
    let budget = deadline.saturating_duration_since(Instant::now());
    let gave_up = || TimedAnswer {
        result: Err(timed_out(backend.as_ref(), budget)),
        decode: None,
    };
    if budget.is_zero() {
        return gave_up();
    }
    match tokio::time::timeout_at(deadline, backend.query_timed(promql, at_ms, budget)).await {
        Ok(answer) => answer,
        Err(_) => gave_up(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promhpa_core::backend::{BoxFuture, SeriesInfo};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts queries and answers each after the test releases it.
    struct Gate {
        calls: AtomicUsize,
        release: tokio::sync::Notify,
    }

    impl Backend for Gate {
        fn address(&self) -> String {
            "gate".into()
        }
        fn query<'a>(
            &'a self,
            _promql: &'a str,
            at_ms: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                self.release.notified().await;
                Ok(QueryValue::Scalar {
                    value: n as f64,
                    timestamp_ms: at_ms,
                })
            })
        }
        fn query_range<'a>(
            &'a self,
            _: &'a str,
            _: i64,
            _: i64,
            _: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async { Err(BackendError::Unsupported("range".into())) })
        }
        fn series_names<'a>(
            &'a self,
            _: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[tokio::test]
    async fn identical_queries_share_one_call() {
        let gate = Arc::new(Gate {
            calls: AtomicUsize::new(0),
            release: tokio::sync::Notify::new(),
        });
        let backend = BackendRef::new(gate.clone());
        let c = Arc::new(Coalescer::default());
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (c, b) = (c.clone(), backend.clone());
            tasks.push(tokio::spawn(async move {
                c.query(&b, "up", 1, Duration::from_secs(30)).await
            }));
        }
        while gate.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.release.notify_waiters();
        let mut shared = 0;
        for t in tasks {
            let (r, s) = t.await.unwrap();
            assert_eq!(
                r.unwrap(),
                QueryValue::Scalar {
                    value: 1.0,
                    timestamp_ms: 1
                }
            );
            shared += usize::from(s == Source::Shared);
        }
        assert_eq!(gate.calls.load(Ordering::SeqCst), 1);
        assert_eq!(shared, 4);
        // Nothing stays in flight afterwards.
        assert!(c.inflight.lock().unwrap().is_empty());
    }

    /// The first query never answers; every later one answers at once.
    struct StallFirst {
        calls: AtomicUsize,
    }

    impl Backend for StallFirst {
        fn address(&self) -> String {
            "https://stalled.example".into()
        }
        fn query<'a>(
            &'a self,
            _promql: &'a str,
            at_ms: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                Ok(QueryValue::Scalar {
                    value: 7.0,
                    timestamp_ms: at_ms,
                })
            })
        }
        fn query_range<'a>(
            &'a self,
            _: &'a str,
            _: i64,
            _: i64,
            _: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async { Err(BackendError::Unsupported("range".into())) })
        }
        fn series_names<'a>(
            &'a self,
            _: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[tokio::test]
    async fn a_stalled_query_is_not_joined_once_it_is_old() {
        let stall = Arc::new(StallFirst {
            calls: AtomicUsize::new(0),
        });
        let backend = BackendRef::new(stall.clone());
        let c = Arc::new(Coalescer::new(Duration::from_secs(1)));
        let (c1, b1) = (c.clone(), backend.clone());
        let first =
            tokio::spawn(async move { c1.query(&b1, "up", 1, Duration::from_secs(2)).await });
        while stall.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A young stalled query is joined, and the joiner gives up at its own deadline.
        let (r, source) = c.query(&backend, "up", 2, Duration::from_millis(300)).await;
        assert_eq!(source, Source::Shared);
        match r {
            Err(BackendError::Unavailable { address, message }) => {
                assert_eq!(address, "https://stalled.example");
                assert!(message.contains("no answer within 300ms"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stall.calls.load(Ordering::SeqCst), 1);
        // One with time to spare waits only until the stalled query is a second old, then
        // asks the backend itself, and has its answer.
        let (r, source) = c.query(&backend, "up", 3, Duration::from_secs(5)).await;
        assert_eq!(source, Source::Backend);
        assert_eq!(
            r.unwrap(),
            QueryValue::Scalar {
                value: 7.0,
                timestamp_ms: 3
            }
        );
        assert_eq!(stall.calls.load(Ordering::SeqCst), 2);
        // Later requests do not join the stalled query either.
        let (r, _) = c.query(&backend, "up", 4, Duration::from_secs(5)).await;
        assert!(r.is_ok());
        assert_eq!(stall.calls.load(Ordering::SeqCst), 3);
        // The stalled leader ends at its own deadline, leaving nothing in flight.
        let (r, _) = first.await.unwrap();
        assert!(matches!(r, Err(BackendError::Unavailable { .. })), "{r:?}");
        assert!(c.inflight.lock().unwrap().is_empty());
    }
    /// Answers every query at once with the number of queries so far.
    struct Counting {
        calls: AtomicUsize,
    }

    impl Backend for Counting {
        fn address(&self) -> String {
            "counting".into()
        }
        fn query<'a>(
            &'a self,
            _promql: &'a str,
            at_ms: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(QueryValue::Scalar {
                    value: n as f64,
                    timestamp_ms: at_ms,
                })
            })
        }
        fn query_range<'a>(
            &'a self,
            _: &'a str,
            _: i64,
            _: i64,
            _: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            Box::pin(async { Err(BackendError::Unsupported("range".into())) })
        }
        fn series_names<'a>(
            &'a self,
            _: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[tokio::test]
    async fn the_result_cache_answers_identical_queries_within_its_ttl() {
        let counting = Arc::new(Counting {
            calls: AtomicUsize::new(0),
        });
        let backend = BackendRef::new(counting.clone());
        let budget = Duration::from_secs(5);
        // Off by default: every query asks.
        let c = Coalescer::default();
        c.query(&backend, "up", 1, budget).await.0.unwrap();
        let (_, source) = c.query(&backend, "up", 2, budget).await;
        assert_eq!(source, Source::Backend);
        assert_eq!(counting.calls.load(Ordering::SeqCst), 2);

        let c = Coalescer::default().with_result_ttl(Duration::from_secs(60));
        let (first, source) = c.query(&backend, "up", 3, budget).await;
        assert_eq!(source, Source::Backend);
        let (again, source) = c.query(&backend, "up", 4, budget).await;
        assert_eq!(source, Source::Cache);
        assert_eq!(again.unwrap(), first.unwrap());
        // Another query is not answered by it.
        let (_, source) = c.query(&backend, "down", 5, budget).await;
        assert_eq!(source, Source::Backend);
        assert_eq!(counting.calls.load(Ordering::SeqCst), 4);

        // Past the TTL the backend is asked again.
        let c = Coalescer::default().with_result_ttl(Duration::from_millis(1));
        c.query(&backend, "up", 6, budget).await.0.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, source) = c.query(&backend, "up", 7, budget).await;
        assert_eq!(source, Source::Backend);
        assert_eq!(counting.calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let backend = BackendRef::new(Arc::new(StallFirst {
            calls: AtomicUsize::new(0),
        }));
        let c = Coalescer::default().with_result_ttl(Duration::from_secs(60));
        let (r, _) = c.query(&backend, "up", 1, Duration::from_millis(50)).await;
        assert!(r.is_err());
        let (r, source) = c.query(&backend, "up", 2, Duration::from_secs(5)).await;
        assert!(r.is_ok());
        assert_eq!(source, Source::Backend);
    }
}
