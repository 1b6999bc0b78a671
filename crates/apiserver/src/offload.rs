//! A backend that computes its answers itself (the embedded evaluator) does so inside
//! `query`, without ever waiting. Run on a serving thread, one evaluation would hold up every
//! other request of that thread (all the streams of the aggregator's HTTP/2 connection), and
//! identical requests arriving meanwhile could not join it in the [`crate::coalesce`]r.
//! [`Offloaded`] runs such a backend's work on the runtime's blocking threads instead.

use std::sync::Arc;

use promhpa_core::backend::{Backend, BackendError, BoxFuture, QueryValue, SeriesInfo};

/// `inner`, whose every call runs on a blocking thread of the calling runtime.
pub struct Offloaded {
    inner: Arc<dyn Backend>,
}

impl Offloaded {
    pub fn new(inner: Arc<dyn Backend>) -> Offloaded {
        Offloaded { inner }
    }

    /// Run `work` (which drives a future of `inner` that never waits on the runtime) on a
    /// blocking thread.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&tokio::runtime::Handle, &dyn Backend) -> Result<T, BackendError>
            + Send
            + 'static,
    ) -> BoxFuture<'static, Result<T, BackendError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let address = inner.address();
            tokio::task::spawn_blocking(move || work(&handle, inner.as_ref()))
                .await
                .unwrap_or_else(|e| {
                    Err(BackendError::Unavailable {
                        address,
                        message: format!("the evaluation did not finish: {e}"),
                    })
                })
        })
    }
}

impl Backend for Offloaded {
    fn address(&self) -> String {
        self.inner.address()
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        let promql = promql.to_string();
        self.run(move |rt, b| rt.block_on(b.query(&promql, at_ms)))
    }

    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        let promql = promql.to_string();
        self.run(move |rt, b| rt.block_on(b.query_range(&promql, start_ms, end_ms, step_ms)))
    }

    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        let selector = selector.to_string();
        self.run(move |rt, b| rt.block_on(b.series_names(&selector, since_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promhpa_promql_eval::{EmbeddedBackend, Labels};

    /// Answers every query with the name of the thread that evaluated it.
    struct Where;

    impl Backend for Where {
        fn address(&self) -> String {
            "where".into()
        }
        fn query<'a>(
            &'a self,
            _: &'a str,
            at_ms: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            let value = std::thread::current().name().unwrap_or("").to_string();
            Box::pin(async move {
                Ok(QueryValue::String {
                    value,
                    timestamp_ms: at_ms,
                })
            })
        }
        fn query_range<'a>(
            &'a self,
            promql: &'a str,
            start_ms: i64,
            _: i64,
            _: i64,
        ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
            self.query(promql, start_ms)
        }
        fn series_names<'a>(
            &'a self,
            _: &'a str,
            _: i64,
        ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_work_runs_off_the_calling_thread_and_answers_as_the_backend() {
        let here = std::thread::current().name().unwrap_or("").to_string();
        let there = match Offloaded::new(Arc::new(Where)).query("x", 1).await {
            Ok(QueryValue::String { value, .. }) => value,
            other => panic!("{other:?}"),
        };
        assert_ne!(there, here);

        let embedded = Arc::new(EmbeddedBackend::default());
        embedded
            .append(
                &Labels::from_pairs([("__name__", "up"), ("job", "a")]),
                1_000,
                1.0,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let offloaded = Offloaded::new(embedded.clone());
        assert_eq!(
            offloaded.query("sum(up)", 2_000).await,
            embedded.query("sum(up)", 2_000).await
        );
        assert_eq!(
            offloaded.query_range("up", 1_000, 3_000, 1_000).await,
            embedded.query_range("up", 1_000, 3_000, 1_000).await
        );
        assert_eq!(
            offloaded.series_names("up", 0).await,
            embedded.series_names("up", 0).await
        );
        assert!(offloaded.query("sum(", 2_000).await.is_err());
    }
}
