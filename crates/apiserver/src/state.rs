//! How the API server's state is put together: `serve` adds to it the request guard, the
//! query cache and forwarding; a tool that asks the metrics API in-process (`explain`) uses
//! it as built.

use std::sync::Arc;

use promhpa_core::lookup::ObjectLookup;

use crate::api::{AppState, RequestGuard};
use crate::coalesce::Coalescer;
use crate::forward::Forwarder;
use crate::metrics::SelfMetrics;
use crate::registry::Registry;

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
