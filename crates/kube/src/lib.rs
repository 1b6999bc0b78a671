//! The Kubernetes client layer of promhpa: credentials, API discovery, watch caches for object
//! lookup, scale subresources, delegated authentication, MetricRule objects — all through
//! kube-rs (`kube`, `kube-runtime`) with `k8s-openapi` types.
//!
//! - [`client::ClusterAccess`] loads credentials with kube's loader (kubeconfig files, merged
//!   `KUBECONFIG` lists, contexts, exec credential plugins, in-cluster service accounts) and
//!   builds a [`kube::Client`]; [`client::context_namespace`] is the namespace kubectl would
//!   use from a kubeconfig.
//! - [`discovery::Discovery`] maps `po`, `pod`, `pods`, `Pod`, `deployments.apps` and CRDs
//!   to group/version/resource/kind from API discovery, refreshed periodically and on a miss.
//! - [`cache::ObjectCache`] is a metadata-only watch cache of one resource kept by kube's
//!   watcher (LIST once, then WATCH; resumed after a closed watch, relisted after 410 Gone),
//!   holding only names and labels.
//! - [`lookup::KubeObjectLookup`] implements [`promhpa_core::ObjectLookup`] over both,
//!   starting a cache the first time its resource is asked for.
//! - [`delegated`] builds the delegated authentication and authorization guard, creating
//!   TokenReviews and SubjectAccessReviews for `promhpa-auth`; [`authconfig`] follows
//!   `kube-system/extension-apiserver-authentication`.
//! - [`scale`] reads what the HPA controller reads of a scale target: its `scale`
//!   subresource, the full pods its selector matches, and the namespace's HPAs; [`hpa`]
//!   reads an HPA and its scale target with its pods as `promhpa_hpa::target` describes them.
//! - [`config::KubeConfig`] is a kubeconfig user's and cluster's TLS settings and static
//!   credentials, for clients other than the Kubernetes one (Prometheus);
//!   [`prometheus_auth`] turns them, or the pod's service account, into the Prometheus
//!   client's settings (`--prometheus-auth-config`, `--prometheus-auth-incluster`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use promhpa_core::{ObjectLookup, selector::LabelSelector};
//! use promhpa_kube::{client::ClusterAccess, discovery::Discovery, lookup::KubeObjectLookup};
//!
//! let client = ClusterAccess::default().client()?;
//! let discovery = Arc::new(Discovery::new(client.clone(), Duration::from_secs(10)));
//! let lookup = KubeObjectLookup::new(client, discovery, Duration::from_secs(30))
//!     .with_periodic_discovery(Duration::from_secs(600));
//! let pods = lookup.resolve("po").await?;
//! let selector: LabelSelector = "app=web".parse()?;
//! let names = lookup.names(&pods.group_resource, Some("shop"), &selector).await?;
//! # let _ = names; Ok(()) }
//! ```

pub mod authconfig;
pub mod cache;
pub mod client;
pub mod config;
pub mod delegated;
pub mod discovery;
mod error;
pub mod hpa;
pub mod lookup;
pub mod metric_rules;
pub mod prometheus_auth;
pub mod scale;

pub use error::KubeError;
pub use kube::{self, Client};
pub use lookup::KubeObjectLookup;
