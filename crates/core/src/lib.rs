//! Shared vocabulary of promhpa: resources, label selectors, Kubernetes quantities,
//! durations, and the two traits the architecture rests on — [`Backend`] (where metric
//! values come from) and [`ObjectLookup`] (which Kubernetes objects a request is about).
//!
//! This crate does no IO. Its traits return boxed futures so that async implementations
//! (the Prometheus client, the Kubernetes watch caches) and synchronous ones (the embedded
//! evaluator, a static object file) fit behind the same object-safe interface.
//!
//! ```
//! use promhpa_core::GroupResource;
//! let gr: GroupResource = "deployments.apps".parse().unwrap();
//! assert_eq!(gr.group, "apps");
//! assert_eq!(gr.resource, "deployments");
//! assert_eq!(gr.to_string(), "deployments.apps");
//! ```

pub mod backend;
pub mod duration;
pub mod gofmt;
pub mod lookup;
pub mod path;
pub mod pod;
pub mod quantity;
pub mod selector;
pub mod time;
pub mod timing;
pub mod tls;
pub mod url_text;
#[cfg(feature = "yaml")]
pub mod yaml;

pub use backend::{
    Backend, BackendError, BoxFuture, Labels, QueryValue, RangeSeries, Sample, SeriesInfo,
    TimedAnswer,
};
pub use lookup::{GroupResource, LookupError, ObjectLookup, ResourceMapping};
