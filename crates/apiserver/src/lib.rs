//! The Kubernetes aggregated API server of promhpa: `custom.metrics.k8s.io` (v1beta1,
//! v1beta2), `external.metrics.k8s.io` (v1beta1) and, with `resourceRules`,
//! `metrics.k8s.io` (v1beta1, [`resource`]) served over rustls from a
//! [`promhpa_core::Backend`] and a rule set.
//!
//! - [`backends::Backends`]: the default backend and those of the rule file's `backends`.
//! - [`registry::Registry`]: which metrics exist, kept current by relisting each rule's
//!   `seriesQuery`.
//! - [`api::router`] over a [`state::AppState`]: discovery, metric values, `Status` errors,
//!   health, self-metrics, OpenAPI; an optional [`state::RequestGuard`] authenticates and
//!   authorizes requests.
//! - [`server::serve`]: TLS 1.2+ with certificate reload, client certificates passed to
//!   the guard as [`promhpa_core::tls::PeerCertificates`].
//! - [`reload::RuleFileReloader`]: the rule file reloaded when it changes or on SIGHUP.
//! - [`metrics::SelfMetrics`]: `/metrics`, promhpa's own series and, with
//!   [`apiserver_metrics`], those of prometheus-adapter's that its users alert on.
//! - [`debug`]: `/debug/promhpa/rules` and `/debug/promhpa/query`, the operator's view of
//!   discovery and of the PromQL a request would send.
//! - [`objects::StaticObjects`]: an object lookup backed by a file of Kubernetes objects.
//! - [`demo_nodes`]: the core API's Node objects of the demo object set, for `serve --demo`.
//! - [`coalesce::Coalescer`]: identical queries shared, optionally cached; with
//!   [`stale::StaleAnswers`], the last answer served when the backend fails.
//! - [`forward::Forwarder`]: requests for metrics no rule serves passed to another metrics
//!   server (KEDA's), whose resources discovery lists beside promhpa's.
//!
//! ```
//! use promhpa_apiserver::types::rfc3339;
//! assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod answer;
pub mod api;
pub mod apiserver_metrics;
pub mod auth_guard;
pub mod backends;
pub mod coalesce;
pub mod deadline;
pub mod debug;
pub mod demo_nodes;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod objects;
pub mod offload;
mod process;
pub mod registry;
pub mod reload;
mod request;
pub mod resource;
pub mod rule_objects;
pub mod server;
pub mod stale;
pub mod state;
mod table;
pub mod types;

pub use api::router;
pub use error::ApiError;
pub use objects::StaticObjects;
pub use registry::Registry;
pub use server::{Server, ServerBuilder};
pub use state::{AppState, RequestGuard};
