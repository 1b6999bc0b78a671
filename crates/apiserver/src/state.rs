//! The state every request handler is given, and how it is put together: `serve` adds to
//! it the request guard, the query cache and forwarding; a tool that asks the metrics API
//! in-process (`explain`) uses it as built.

use std::sync::Arc;

use promhpa_core::backend::BoxFuture;
use promhpa_core::lookup::ObjectLookup;

use crate::coalesce::Coalescer;
use crate::error::ApiError;
use crate::forward::Forwarder;
use crate::metrics::SelfMetrics;
use crate::registry::Registry;

/// Decides whether a request may proceed (authentication and authorization). Health probes
/// are never passed to it.
pub trait RequestGuard: Send + Sync {
    fn check<'a>(
        &'a self,
        parts: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub lookup: Arc<dyn ObjectLookup>,
    pub metrics: Arc<SelfMetrics>,
    pub guard: Option<Arc<dyn RequestGuard>>,
    /// Identical concurrent queries share one backend call.
    pub coalescer: Arc<Coalescer>,
    /// Where requests for metrics no rule serves go (`--forward-unknown-*-metrics-to`).
    pub forward: Option<Arc<Forwarder>>,
}

impl AppState {
    /// The state of a server answering from `registry`, its objects found with `lookup`:
    /// no request guard (every request proceeds), identical concurrent queries shared but
    /// no answer cached, and no forwarding of metrics no rule serves.
    pub fn new(
        registry: Arc<Registry>,
        lookup: Arc<dyn ObjectLookup>,
        metrics: Arc<SelfMetrics>,
    ) -> AppState {
        AppState {
            registry,
            lookup,
            metrics,
            guard: None,
            coalescer: Arc::new(Coalescer::default()),
            forward: None,
        }
    }

    /// Requests are authenticated and authorized by `guard` (health probes excepted).
    pub fn with_guard(mut self, guard: Option<Arc<dyn RequestGuard>>) -> AppState {
        self.guard = guard;
        self
    }

    /// Queries go through `coalescer` (which may cache answers and keep stale ones).
    pub fn with_coalescer(mut self, coalescer: Arc<Coalescer>) -> AppState {
        self.coalescer = coalescer;
        self
    }

    /// Requests for metrics no rule serves go to `forward`.
    pub fn with_forward(mut self, forward: Option<Arc<Forwarder>>) -> AppState {
        self.forward = forward;
        self
    }
}
