//! The embedded backend: a thread-safe store plus the evaluator behind
//! [`promhpa_core::backend::Backend`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, PoisonError, RwLock};

use promhpa_core::backend::{
    Backend, BackendError, BoxFuture, QueryValue, RangeSeries, Sample as CoreSample, SeriesInfo,
};
use promql_parser::parser::Expr;

use crate::eval::{
    instant_query, parse, range_query, result_order_is_significant, unwrap_parens, EvalOptions,
    Evaluator,
};
use crate::exposition::{self, IngestStats};
use crate::labels::{Labels, METRIC_NAME};
use crate::store::{stale_nan, SeriesId, Store, StoreLimits};
use crate::value::{SeriesPoints, Value};
use crate::EvalError;

/// An in-memory Prometheus: samples are appended or ingested from expositions, and queries
/// are answered by the embedded evaluator. Shared between tasks behind an `Arc`; readers
/// (queries) run concurrently, writers (ingest) take the store briefly.
#[derive(Debug)]
pub struct EmbeddedBackend {
    store: RwLock<Store>,
    opts: EvalOptions,
    /// Per target (its labels, rendered): the series its last successful scrape exposed.
    last_scrape: Mutex<HashMap<String, HashSet<SeriesId>>>,
}

impl Default for EmbeddedBackend {
    fn default() -> Self {
        Self::new(StoreLimits::default())
    }
}

fn to_backend_error(e: EvalError) -> BackendError {
    match e {
        EvalError::Unsupported(m) => BackendError::Unsupported(m),
        EvalError::Parse { message, .. } => BackendError::Query {
            error_type: "bad_data".into(),
            message,
        },
        other => BackendError::Query {
            error_type: "execution".into(),
            message: other.to_string(),
        },
    }
}

fn to_range_series(s: SeriesPoints) -> RangeSeries {
    RangeSeries {
        labels: s.labels.to_map(),
        points: s.points,
    }
}

impl EmbeddedBackend {
    /// An empty backend with the given retention and series limit.
    pub fn new(limits: StoreLimits) -> Self {
        EmbeddedBackend {
            store: RwLock::new(Store::with_limits(limits)),
            opts: EvalOptions::default(),
            last_scrape: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the evaluation options (lookback, default subquery step).
    pub fn with_options(mut self, opts: EvalOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Appends one sample.
    pub fn append(&self, labels: &Labels, t_ms: i64, v: f64) -> Result<(), EvalError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        store.append(labels, t_ms, v)
    }

    /// Ingests a text exposition or OpenMetrics body scraped at `t_ms` (see
    /// [`exposition::ingest`]), then drops samples beyond the retention window.
    pub fn ingest_exposition(
        &self,
        text: &str,
        t_ms: i64,
        extra: &Labels,
    ) -> Result<IngestStats, EvalError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let stats = exposition::ingest(&mut store, text, t_ms, extra)?;
        store.enforce_retention();
        Ok(stats)
    }

    /// Ingests an exposition file (text format or OpenMetrics) as if scraped at `t_ms`, with
    /// `extra` labels; errors name the file.
    pub fn ingest_file(
        &self,
        path: &std::path::Path,
        t_ms: i64,
        extra: &Labels,
    ) -> Result<IngestStats, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.ingest_exposition(&text, t_ms, extra)
            .map_err(|e| EvalError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Records one scrape of a target the way Prometheus does: on success the body's
    /// samples get the target's labels (`job`, `instance`, extra labels) and `t_ms` as their
    /// timestamp; in every case `up` (1 or 0), `scrape_duration_seconds` and
    /// `scrape_samples_scraped` are written for the target. A body that does not parse counts
    /// as a failed scrape. Series the previous successful scrape exposed that this one does
    /// not (all of them when it fails) get a staleness marker at `t_ms`, so queries stop
    /// seeing them at once instead of after the lookback. Returns the ingest statistics of a
    /// successful scrape.
    pub fn record_scrape(
        &self,
        target: &Labels,
        t_ms: i64,
        duration_seconds: f64,
        body: Result<&str, String>,
    ) -> Result<IngestStats, EvalError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        // The target's report series first, so that a store short of room refuses the
        // body's new series rather than the report saying how the target is.
        let report = ["up", "scrape_duration_seconds", "scrape_samples_scraped"].map(|name| {
            let mut labels = target.clone();
            labels.set(METRIC_NAME, name);
            store.admitted_series_id(&labels)
        });
        let mut seen = Vec::new();
        let outcome = match body {
            Ok(text) => {
                exposition::ingest_tracking(&mut store, text, t_ms, target, Some(&mut seen))
            }
            Err(message) => Err(EvalError::Io {
                path: format!("scrape of {target}"),
                message,
            }),
        };
        let current: HashSet<SeriesId> = if outcome.is_ok() {
            seen.into_iter().collect()
        } else {
            HashSet::new()
        };
        {
            let mut last = self
                .last_scrape
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let key = target.to_string();
            if let Some(previous) = last.get(&key) {
                for id in previous.difference(&current) {
                    store.append_id(*id, t_ms, stale_nan());
                }
            }
            if current.is_empty() {
                last.remove(&key);
            } else {
                last.insert(key, current);
            }
        }
        let (up, scraped) = match &outcome {
            // Every sample the target exposed, as Prometheus counts them, those the store
            // had no room for included.
            Ok(stats) => (1.0, (stats.samples + stats.rejected) as f64),
            Err(_) => (0.0, 0.0),
        };
        for (id, v) in report.into_iter().zip([up, duration_seconds, scraped]) {
            if let Some(id) = id {
                store.append_id(id, t_ms, v);
            }
        }
        // Relative to the scrape's time, not to the newest sample: one sample a broken
        // exporter stamps in the future must not age every other series out.
        let cutoff = t_ms.saturating_sub(store.limits().retention_ms);
        store.drop_before(cutoff);
        outcome
    }

    /// Drops samples beyond the retention window.
    pub fn enforce_retention(&self) {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        store.enforce_retention();
    }

    /// Drops samples older than the retention window before `now_ms` (the clock, for data
    /// scraped now: a sample stamped in the future does not move the window).
    pub fn enforce_retention_at(&self, now_ms: i64) {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let cutoff = now_ms.saturating_sub(store.limits().retention_ms);
        store.drop_before(cutoff);
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .series_count()
    }

    /// Evaluates an instant query.
    pub fn query_value(&self, promql: &str, at_ms: i64) -> Result<Value, EvalError> {
        let expr = parse(promql)?;
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let mut value = instant_query(&store, &expr, at_ms, self.opts)?;
        if let Value::Vector(v) = &mut value {
            if !result_order_is_significant(&expr) {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
        }
        Ok(value)
    }

    /// Evaluates a range query.
    pub fn query_range_value(
        &self,
        promql: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<SeriesPoints>, EvalError> {
        let expr = parse(promql)?;
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        range_query(&store, &expr, start_ms, end_ms, step_ms, self.opts)
    }

    /// Metric names and label-name sets (without `__name__`) of the series matching the
    /// series selector that have a sample at or after `since_ms`.
    pub fn series_infos(
        &self,
        selector: &str,
        since_ms: i64,
    ) -> Result<Vec<SeriesInfo>, EvalError> {
        let expr = parse(selector)?;
        let Expr::VectorSelector(vs) = unwrap_parens(&expr) else {
            return Err(EvalError::Execution(format!(
                "series selector expected, got {selector:?}"
            )));
        };
        let matchers = Evaluator::selector_matchers(vs)?;
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let mut seen: HashSet<SeriesInfo> = HashSet::new();
        for series in store.select(&matchers) {
            if series.samples.last().is_none_or(|(t, _)| *t < since_ms) {
                continue;
            }
            let name = series.labels.metric_name().unwrap_or("").to_string();
            let label_names: BTreeSet<String> = series
                .labels
                .iter()
                .filter(|(n, _)| *n != METRIC_NAME)
                .map(|(n, _)| n.to_string())
                .collect();
            seen.insert(SeriesInfo { name, label_names });
        }
        let mut out: Vec<SeriesInfo> = seen.into_iter().collect();
        out.sort();
        Ok(out)
    }
}

impl Backend for EmbeddedBackend {
    fn address(&self) -> String {
        "embedded".into()
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async move {
            let value = self.query_value(promql, at_ms).map_err(to_backend_error)?;
            Ok(match value {
                Value::Scalar(v) => QueryValue::Scalar {
                    value: v,
                    timestamp_ms: at_ms,
                },
                Value::String(s) => QueryValue::String {
                    value: s,
                    timestamp_ms: at_ms,
                },
                Value::Vector(v) => QueryValue::Vector(
                    v.into_iter()
                        .map(|s| CoreSample {
                            labels: s.labels.to_map(),
                            value: s.v,
                            timestamp_ms: at_ms,
                        })
                        .collect(),
                ),
                Value::Matrix(m) => {
                    QueryValue::Matrix(m.into_iter().map(to_range_series).collect())
                }
            })
        })
    }

    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        Box::pin(async move {
            let series = self
                .query_range_value(promql, start_ms, end_ms, step_ms)
                .map_err(to_backend_error)?;
            Ok(QueryValue::Matrix(
                series.into_iter().map(to_range_series).collect(),
            ))
        })
    }

    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        Box::pin(async move {
            self.series_infos(selector, since_ms)
                .map_err(to_backend_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    /// Retention for scraped data runs on the clock: a sample a broken exporter stamps far
    /// in the future does not age every other series out.
    #[test]
    fn a_future_sample_does_not_move_the_retention_window() {
        let b = EmbeddedBackend::default();
        let now = 1_800_000_000_000;
        let target = Labels::from_pairs([("job", "a")]);
        b.record_scrape(&target, now, 0.01, Ok("ok 1\nfuture 1 1796578382640297\n"))
            .unwrap();
        let before = b.series_count();
        assert!(before >= 2, "{before}");
        b.enforce_retention_at(now);
        assert_eq!(b.series_count(), before);
        // Once the window has passed the scrape, only the future sample is left.
        b.enforce_retention_at(now + 3 * 60 * 60 * 1000);
        assert_eq!(b.series_count(), 1);
    }

    /// Drives a future that never waits (the embedded backend's futures are ready at once).
    fn ready<T>(fut: impl Future<Output = T>) -> T {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("embedded backend future was not ready"),
        }
    }

    fn backend() -> Arc<EmbeddedBackend> {
        let b = Arc::new(EmbeddedBackend::default());
        let text = "# TYPE http_requests_total counter\nhttp_requests_total{pod=\"a\",code=\"200\"} 10\nhttp_requests_total{pod=\"b\"} 20\nqueue_depth{queue=\"q\"} 3\n";
        b.ingest_exposition(text, 0, &Labels::empty()).unwrap();
        let text =
            "http_requests_total{pod=\"a\",code=\"200\"} 70\nhttp_requests_total{pod=\"b\"} 20\n";
        b.ingest_exposition(text, 60_000, &Labels::empty()).unwrap();
        b
    }

    #[test]
    fn instant_query_through_the_trait() {
        let b = backend();
        let dynb: Arc<dyn Backend> = b;
        let v =
            ready(dynb.query("sum by (pod) (increase(http_requests_total[2m]))", 60_000)).unwrap();
        let QueryValue::Vector(v) = v else {
            panic!("{v:?}")
        };
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels.get("pod").map(String::as_str), Some("a"));
        assert!(v[0].value > 60.0, "extrapolated increase {}", v[0].value);
        assert_eq!(v[1].value, 0.0);
        assert!(v.iter().all(|s| s.timestamp_ms == 60_000));
    }

    #[test]
    fn range_query_and_errors() {
        let b = backend();
        let v = ready(b.query_range("queue_depth * 2", 0, 120_000, 60_000)).unwrap();
        let QueryValue::Matrix(m) = v else {
            panic!("{v:?}")
        };
        assert_eq!(m[0].points, vec![(0, 6.0), (60_000, 6.0), (120_000, 6.0)]);
        let err = ready(b.query("sum(", 0)).unwrap_err();
        assert!(matches!(err, BackendError::Query { .. }), "{err:?}");
        let err = ready(b.query("limitk(1, queue_depth)", 0)).unwrap_err();
        assert!(matches!(err, BackendError::Unsupported(_)), "{err:?}");
    }

    #[test]
    fn scrapes_record_up_and_target_labels() {
        let b = EmbeddedBackend::default();
        let target = Labels::from_pairs([("job", "demo"), ("instance", "127.0.0.1:8080")]);
        b.record_scrape(&target, 0, 0.01, Ok("requests_total 5\n"))
            .unwrap();
        let other = Labels::from_pairs([("job", "demo"), ("instance", "127.0.0.1:8081")]);
        b.record_scrape(&other, 0, 0.01, Ok("requests_total 7\n"))
            .unwrap();
        assert!(b
            .record_scrape(&target, 15_000, 0.02, Err("connection refused".into()))
            .is_err());
        let Value::Vector(v) = b.query_value("up", 15_000).unwrap() else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].v, 0.0);
        assert_eq!(v[1].v, 1.0);
        assert_eq!(v[0].labels.get("instance"), Some("127.0.0.1:8080"));
        let Value::Vector(v) = b
            .query_value("requests_total{job=\"demo\"}", 15_000)
            .unwrap()
        else {
            panic!()
        };
        // The failed scrape marked the first target's series stale, as Prometheus does.
        assert_eq!(v.iter().map(|s| s.v).collect::<Vec<_>>(), vec![7.0]);
        let Value::Vector(v) = b
            .query_value("requests_total{job=\"demo\"}", 14_999)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.iter().map(|s| s.v).collect::<Vec<_>>(), vec![5.0, 7.0]);
        let Value::Vector(v) = b.query_value("scrape_samples_scraped", 0).unwrap() else {
            panic!()
        };
        assert_eq!(v[0].v, 1.0);
    }

    /// A target first scraped when the store is full still reports itself: its samples are
    /// refused, its `up`, duration and sample count are not, and the scrape succeeded.
    #[test]
    fn a_full_store_still_admits_each_targets_scrape_report() {
        let b = EmbeddedBackend::new(StoreLimits {
            retention_ms: 60_000,
            max_series: 5,
        });
        let first = Labels::from_pairs([("job", "a")]);
        let stats = b.record_scrape(&first, 0, 0.01, Ok("x 1\ny 2\n")).unwrap();
        assert_eq!(stats.rejected, 0);
        let second = Labels::from_pairs([("job", "b")]);
        let stats = b.record_scrape(&second, 0, 0.01, Ok("z 3\n")).unwrap();
        assert_eq!(stats.rejected, 1);
        let Value::Vector(v) = b.query_value("up", 0).unwrap() else {
            panic!()
        };
        assert_eq!(v.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 1.0]);
        let Value::Vector(v) = b
            .query_value("scrape_samples_scraped{job=\"b\"}", 0)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0]);
        assert!(b
            .query_value("z", 0)
            .is_ok_and(|v| matches!(v, Value::Vector(v) if v.is_empty())));
        assert!(b
            .record_scrape(&second, 15_000, 0.01, Err("connection refused".into()))
            .is_err());
        let Value::Vector(v) = b.query_value("up{job=\"b\"}", 15_000).unwrap() else {
            panic!()
        };
        assert_eq!(v.iter().map(|s| s.v).collect::<Vec<_>>(), vec![0.0]);
    }

    #[test]
    fn queries_run_while_samples_are_ingested() {
        let b = Arc::new(EmbeddedBackend::default());
        let mut demo = crate::demo::DemoTraffic::new(0);
        demo.advance(0);
        b.ingest_exposition(&demo.exposition(0), 0, &Labels::empty())
            .unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut answered = 0;
                    for i in 0..200 {
                        let q = "sum by (pod) (rate(http_requests_total[1m]))";
                        if let Value::Vector(v) = b.query_value(q, i * 1_000).unwrap() {
                            answered += usize::from(!v.is_empty());
                        }
                        ready(b.series_names("{__name__=~\"http_.*\"}", 0)).unwrap();
                    }
                    answered
                })
            })
            .collect();
        for step in 1..=40 {
            let t = step * 5_000;
            demo.advance(t);
            b.ingest_exposition(&demo.exposition(t), t, &Labels::empty())
                .unwrap();
        }
        for r in readers {
            r.join().unwrap();
        }
        let Value::Vector(v) = b
            .query_value("sum by (pod) (rate(http_requests_total[1m]))", 200_000)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.len(), 5);
        assert!(v.iter().all(|s| s.v > 0.0), "{v:?}");
    }

    #[test]
    fn ingests_files_and_names_them_in_errors() {
        let dir = std::env::temp_dir().join(format!("promhpa-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.prom");
        std::fs::write(&good, "queue_depth{queue=\"a\"} 4\n").unwrap();
        let bad = dir.join("bad.prom");
        std::fs::write(&bad, "queue_depth{ 4\n").unwrap();
        let b = EmbeddedBackend::default();
        let stats = b.ingest_file(&good, 1_000, &Labels::empty()).unwrap();
        assert_eq!(stats.samples, 1);
        let err = b.ingest_file(&bad, 1_000, &Labels::empty()).unwrap_err();
        assert!(err.to_string().contains("bad.prom"), "{err}");
        let err = b
            .ingest_file(&dir.join("missing.prom"), 1_000, &Labels::empty())
            .unwrap_err();
        assert!(err.to_string().contains("missing.prom"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn series_names_lists_name_and_label_sets_since() {
        let b = backend();
        let infos = ready(b.series_names("{__name__=~\".+\"}", 30_000)).unwrap();
        // queue_depth's only sample is at 0, before `since`.
        assert_eq!(infos.len(), 2);
        assert!(infos.iter().all(|i| i.name == "http_requests_total"));
        let sets: Vec<Vec<&str>> = infos
            .iter()
            .map(|i| i.label_names.iter().map(String::as_str).collect())
            .collect();
        assert!(sets.contains(&vec!["code", "pod"]));
        assert!(sets.contains(&vec!["pod"]));
        assert!(ready(b.series_names("sum(x)", 0)).is_err());
    }
}
