//! Query coalescing: concurrent requests that render the same PromQL share one backend query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use promhpa_core::backend::{Backend, BackendError, QueryValue};
use tokio::sync::watch;

type Outcome = Option<Result<QueryValue, BackendError>>;

/// Shares in-flight instant queries between identical requests.
#[derive(Default)]
pub struct Coalescer {
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

/// Removes the in-flight entry when the leading request finishes or is dropped.
struct Leader<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.coalescer.inflight.lock() {
            m.remove(self.key);
        }
    }
}

impl Coalescer {
    /// Evaluate `promql` at `at_ms`, or wait for an identical query already in flight.
    /// Returns the result and whether it was shared.
    pub async fn query(
        &self,
        backend: &Arc<dyn Backend>,
        promql: &str,
        at_ms: i64,
    ) -> (Result<QueryValue, BackendError>, bool) {
        let (follower, leader_tx) = {
            let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match m.get(promql) {
                Some(rx) => (Some(rx.clone()), None),
                None => {
                    let (tx, rx) = watch::channel(None);
                    m.insert(promql.to_string(), rx);
                    (None, Some(tx))
                }
            }
        };
        if let Some(tx) = leader_tx {
            let guard = Leader {
                coalescer: self,
                key: promql,
            };
            let result = backend.query(promql, at_ms).await;
            drop(guard);
            let _ = tx.send(Some(result.clone()));
            return (result, false);
        }
        if let Some(mut rx) = follower {
            if let Ok(v) = rx.wait_for(Option::is_some).await {
                if let Some(result) = v.clone() {
                    return (result, true);
                }
            }
        }
        // The leading request went away before answering: ask on our own.
        (backend.query(promql, at_ms).await, false)
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
        let backend: Arc<dyn Backend> = gate.clone();
        let c = Arc::new(Coalescer::default());
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (c, b) = (c.clone(), backend.clone());
            tasks.push(tokio::spawn(async move { c.query(&b, "up", 1).await }));
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
            shared += usize::from(s);
        }
        assert_eq!(gate.calls.load(Ordering::SeqCst), 1);
        assert_eq!(shared, 4);
        // Nothing stays in flight afterwards.
        assert!(c.inflight.lock().unwrap().is_empty());
    }
}
