//! Kubernetes object lookup for promhpa: which objects a metric request is about, and what
//! resource names mean, read from a live cluster.
//!
//! - [`discovery::Discovery`] maps `po`, `pod`, `pods`, `Pod`, `deployments.apps` and CRDs
//!   to group/version/resource/kind from API discovery, refreshed periodically and on a miss.
//! - [`cache::ObjectCache`] is a metadata-only watch cache of one resource (LIST once, then
//!   WATCH; resumed after a closed watch, relisted after 410 Gone).
//! - [`lookup::KubeObjectLookup`] implements [`promhpa_core::ObjectLookup`] over both,
//!   starting a cache the first time its resource is asked for.
//! - [`config::KubeConfig`] reads kubeconfig files and in-cluster credentials, and
//!   [`http::HttpKubeApi`] talks to the API server (it also creates TokenReviews and
//!   SubjectAccessReviews for `promhpa-auth`).
//! - [`authconfig`] follows `kube-system/extension-apiserver-authentication`.
//! - [`scale`] reads what the HPA controller reads of a scale target: its `scale`
//!   subresource, the full pods its selector matches, and the namespace's HPAs.
//!
//! Everything Kubernetes-facing goes through the small [`api::KubeApi`] trait, so tests run
//! against recorded API server responses.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use promhpa_core::{ObjectLookup, selector::LabelSelector};
//! use promhpa_kube_lookup::{config::KubeConfig, discovery::Discovery, http::HttpKubeApi, lookup::KubeObjectLookup};
//!
//! let api: Arc<dyn promhpa_kube_lookup::api::KubeApi> = Arc::new(HttpKubeApi::new(KubeConfig::load(None)?)?);
//! let discovery = Arc::new(Discovery::new(api.clone(), Duration::from_secs(10)));
//! let lookup = KubeObjectLookup::new(api, discovery, Duration::from_secs(30))
//!     .with_periodic_discovery(Duration::from_secs(600));
//! let pods = lookup.resolve("po").await?;
//! let selector: LabelSelector = "app=web".parse()?;
//! let names = lookup.names(&pods.group_resource, Some("shop"), &selector).await?;
//! # let _ = names; Ok(()) }
//! ```

pub mod api;
pub mod authconfig;
pub mod cache;
pub mod config;
pub mod delegated;
pub mod discovery;
mod error;
pub mod http;
pub mod lookup;
pub mod scale;

pub use error::KubeError;
pub use lookup::KubeObjectLookup;
