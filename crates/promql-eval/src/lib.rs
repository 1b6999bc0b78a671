//! promhpa-promql-eval: an in-memory series store and a PromQL evaluator over
//! promql-parser's AST that follows Prometheus 3.x, with Prometheus-exact
//! `histogram_quantile`.
//!
//! - [`store`]: interned label sets, per-series sample buffers, retention and a series limit;
//! - [`eval`], [`functions`], [`quantile`]: the evaluator (instant and range queries);
//! - [`exposition`]: text exposition format and OpenMetrics ingest;
//! - [`backend::EmbeddedBackend`]: all of it behind `promhpa_core::backend::Backend`;
//! - [`testscript`]: Prometheus-style PromQL test scripts; [`json`]: `/api/v1/query` bodies;
//! - [`demo`]: generated demo traffic.
//!
//! ```
//! use promhpa_promql_eval::{instant_query, parse, EvalOptions, Labels, Store, Value};
//!
//! let mut store = Store::new();
//! let labels = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
//! store.append(&labels, 0, 1.0).unwrap();
//! let expr = parse("sum by (job) (up)").unwrap();
//! let Value::Vector(v) = instant_query(&store, &expr, 10_000, EvalOptions::default()).unwrap()
//! else { panic!() };
//! assert_eq!(v[0].v, 1.0);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod aggregate;
pub mod backend;
pub mod demo;
pub mod eval;
pub mod exposition;
pub mod functions;
pub mod gofloat;
pub mod json;
pub mod labels;
pub mod quantile;
pub mod store;
pub mod testscript;
pub mod timefmt;
pub mod value;

pub use backend::EmbeddedBackend;
pub use eval::{instant_query, parse, range_query, EvalOptions};
pub use labels::Labels;
pub use store::{Store, StoreLimits};
pub use value::{Sample, SeriesPoints, Value};

/// Errors of the store, the evaluator and the script runner.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("parse error in {query:?}: {message}")]
    Parse { query: String, message: String },
    #[error("unsupported construct: {0}")]
    Unsupported(String),
    #[error("execution error: {0}")]
    Execution(String),
    #[error("series limit of {limit} reached; rejected new series {labels}")]
    SeriesLimit { limit: usize, labels: String },
    #[error("exposition line {line}: {message}")]
    Exposition { line: usize, message: String },
    #[error("reading {path}: {message}")]
    Io { path: String, message: String },
}
