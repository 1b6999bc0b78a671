//! The [`Backend`] trait: the one interface through which promhpa reads metric values.
//!
//! Implemented by the Prometheus HTTP client (`promhpa-prom`) and by the embedded
//! evaluator (`promhpa-promql-eval`). Rules, discovery, the API server and `simulate`
//! only ever see this trait.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future, so that [`Backend`] and [`crate::ObjectLookup`] stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A series' labels, `__name__` included when the backend returned it. Sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
    /// Sample time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// One series of a range query result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    /// `(timestamp_ms, value)` pairs in time order.
    pub points: Vec<(i64, f64)>,
}

/// The result of a query, in the shapes Prometheus' HTTP API defines.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Vector(Vec<Sample>),
    Scalar { value: f64, timestamp_ms: i64 },
    Matrix(Vec<RangeSeries>),
    String { value: String, timestamp_ms: i64 },
}

impl QueryValue {
    /// The Prometheus API name of this result type (`vector`, `scalar`, `matrix`, `string`).
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryValue::Vector(_) => "vector",
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::Matrix(_) => "matrix",
            QueryValue::String { .. } => "string",
        }
    }
}

/// A metric name and the set of label names one or more of its series carry.
///
/// Discovery needs no label values, only which names exist with which label names, so this
/// is all a backend hands back; one entry per distinct `(name, label-name set)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesInfo {
    pub name: String,
    pub label_names: BTreeSet<String>,
}

/// Why a backend could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BackendError {
    /// The backend could not be reached, or did not answer in time. Maps to 503.
    #[error("backend {address} unavailable: {message}")]
    Unavailable { address: String, message: String },
    /// The backend answered and rejected the query (bad PromQL, execution error...).
    #[error("backend rejected query: {error_type}: {message}")]
    Query { error_type: String, message: String },
    /// The backend answered with something promhpa could not understand.
    #[error("unexpected response from backend {address}: {message}")]
    Protocol { address: String, message: String },
    /// The query uses something the backend does not support (the embedded evaluator).
    #[error("unsupported query: {0}")]
    Unsupported(String),
}

/// The answer to [`Backend::query_timed`]: the query's result, and the time spent decoding
/// the backend's response into it when there was a response to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedAnswer {
    pub result: Result<QueryValue, BackendError>,
    pub decode: Option<std::time::Duration>,
}

/// Where metric values come from: a Prometheus-compatible server or the embedded evaluator.
pub trait Backend: Send + Sync {
    /// A short human description, e.g. `https://prometheus:9090` or `embedded`.
    fn address(&self) -> String;

    /// Evaluate `promql` as an instant query at `at_ms` (milliseconds since the epoch).
    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>>;

    /// [`Backend::query`] within a time budget: a backend that can tell the server it asks
    /// to stop after `timeout` (Prometheus' `timeout=`) and to give up waiting by then does
    /// so. The default ignores the budget; callers enforce it on their side as well.
    fn query_within<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        let _ = timeout;
        self.query(promql, at_ms)
    }

    /// [`Backend::query_within`], also saying how long decoding the backend's answer took,
    /// so that a caller can tell the round trip from the decoding in its timings. The
    /// default answers as `query_within` and reports no decoding (the embedded evaluator
    /// decodes nothing); a client of a remote server overrides it.
    fn query_timed<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, TimedAnswer> {
        let answer = self.query_within(promql, at_ms, timeout);
        Box::pin(async move {
            TimedAnswer {
                result: answer.await,
                decode: None,
            }
        })
    }

    /// Evaluate `promql` as a range query; the result is a [`QueryValue::Matrix`].
    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>>;

    /// Metric names and label-name sets of the series matching the series selector
    /// `selector` that had samples in `[since_ms, now]`.
    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>>;
}

impl<T: Backend + ?Sized> Backend for std::sync::Arc<T> {
    fn address(&self) -> String {
        (**self).address()
    }
    fn query<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        (**self).query(promql, at_ms)
    }
    fn query_within<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        (**self).query_within(promql, at_ms, timeout)
    }
    fn query_timed<'a>(
        &'a self,
        promql: &'a str,
        at_ms: i64,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, TimedAnswer> {
        (**self).query_timed(promql, at_ms, timeout)
    }
    fn query_range<'a>(
        &'a self,
        promql: &'a str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> BoxFuture<'a, Result<QueryValue, BackendError>> {
        (**self).query_range(promql, start_ms, end_ms, step_ms)
    }
    fn series_names<'a>(
        &'a self,
        selector: &'a str,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<SeriesInfo>, BackendError>> {
        (**self).series_names(selector, since_ms)
    }
}
