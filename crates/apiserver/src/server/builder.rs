//! A running server put together from its pieces: the registry and object lookup it answers
//! from, the request guard, forwarding, the query cache, the TLS configuration, limits and
//! self-metrics. [`ServerBuilder::bind`] starts what runs beside the requests (discovery's
//! relist, the rule file's reload, returning memory after a flood), listens and starts the
//! threads that will serve connections;
//! [`Server::serve`] serves until shutdown and drains.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use promhpa_core::lookup::ObjectLookup;
use tokio::net::TcpListener;

use super::{memory, workers, Listening, ServingLimits};
use crate::coalesce::Coalescer;
use crate::forward::Forwarder;
use crate::metrics::SelfMetrics;
use crate::registry::Registry;
use crate::reload::{ignore_hangup_without_rule_file, RuleFileReloader};
use crate::state::{AppState, RequestGuard};

/// The rule file reloaded while serving.
struct RuleFile {
    path: PathBuf,
    strict: bool,
    poll: Duration,
}

/// The pieces of a server; [`ServerBuilder::bind`] starts it.
pub struct ServerBuilder {
    registry: Arc<Registry>,
    lookup: Arc<dyn ObjectLookup>,
    metrics: Arc<SelfMetrics>,
    tls: Arc<rustls::ServerConfig>,
    guard: Option<Arc<dyn RequestGuard>>,
    forward: Option<Arc<Forwarder>>,
    coalescer: Coalescer,
    routes: Option<Router>,
    limits: ServingLimits,
    grace: Duration,
    relist_interval: Duration,
    rule_file: Option<RuleFile>,
}

impl ServerBuilder {
    /// A server answering from `registry` (its objects found with `lookup`, its work counted
    /// in `metrics`) over TLS with `tls`. Until told otherwise: every request proceeds,
    /// nothing is forwarded or cached, the default [`ServingLimits`], 10 s to drain,
    /// discovery relisted every minute and no rule file watched.
    pub fn new(
        registry: Arc<Registry>,
        lookup: Arc<dyn ObjectLookup>,
        metrics: Arc<SelfMetrics>,
        tls: Arc<rustls::ServerConfig>,
    ) -> ServerBuilder {
        ServerBuilder {
            registry,
            lookup,
            metrics,
            tls,
            guard: None,
            forward: None,
            coalescer: Coalescer::default(),
            routes: None,
            limits: ServingLimits::default(),
            grace: Duration::from_secs(10),
            relist_interval: Duration::from_secs(60),
            rule_file: None,
        }
    }

    /// Requests are authenticated and authorized by `guard` (health probes excepted).
    pub fn guard(mut self, guard: Option<Arc<dyn RequestGuard>>) -> ServerBuilder {
        self.guard = guard;
        self
    }

    /// Requests for metrics no rule serves go to `forward`.
    pub fn forward(mut self, forward: Option<Arc<Forwarder>>) -> ServerBuilder {
        self.forward = forward;
        self
    }

    /// Backend queries go through `coalescer` (which may cache answers and keep stale ones).
    pub fn coalescer(mut self, coalescer: Coalescer) -> ServerBuilder {
        self.coalescer = coalescer;
        self
    }

    /// `routes` are served beside the metrics APIs.
    pub fn merge(mut self, routes: Router) -> ServerBuilder {
        self.routes = Some(match self.routes.take() {
            Some(before) => before.merge(routes),
            None => routes,
        });
        self
    }

    /// Connections and requests are held within `limits`.
    pub fn limits(mut self, limits: ServingLimits) -> ServerBuilder {
        self.limits = limits;
        self
    }

    /// After shutdown, open connections have up to `grace` to finish.
    pub fn shutdown_grace_period(mut self, grace: Duration) -> ServerBuilder {
        self.grace = grace;
        self
    }

    /// Discovery relists every rule's series query every `interval`.
    pub fn relist_interval(mut self, interval: Duration) -> ServerBuilder {
        self.relist_interval = interval;
        self
    }

    /// The rule file `path`, whose content the registry serves, is checked for changes every
    /// `poll` (and on SIGHUP) and reloaded when it loads (with `strict`, only when nothing
    /// in it is broken or warned about). Without one, SIGHUP is logged and ignored.
    pub fn reload_rule_file(
        mut self,
        path: PathBuf,
        strict: bool,
        poll: Duration,
    ) -> ServerBuilder {
        self.rule_file = Some(RuleFile { path, strict, poll });
        self
    }

    /// Start relisting, reloading the rule file and returning memory after floods, then
    /// listen on `addr` and start the serving threads. Must be called within a Tokio runtime.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<Server> {
        tokio::spawn(self.registry.clone().run(self.relist_interval));
        tokio::spawn(memory::run(self.metrics.clone()));
        match self.rule_file {
            Some(RuleFile { path, strict, poll }) => {
                let reloader = RuleFileReloader::new(
                    path,
                    self.registry.clone(),
                    self.metrics.clone(),
                    strict,
                );
                tokio::spawn(reloader.run(poll));
            }
            None => {
                tokio::spawn(ignore_hangup_without_rule_file());
            }
        }
        let state = AppState::new(self.registry, self.lookup, self.metrics.clone())
            .with_guard(self.guard)
            .with_coalescer(Arc::new(self.coalescer))
            .with_forward(self.forward);
        let mut app = crate::api::router(state);
        if let Some(routes) = self.routes {
            app = app.merge(routes);
        }
        let listener = listen(addr)?;
        let workers = workers::Workers::start(workers::default_count()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("starting the serving threads: {e}"))
        })?;
        Ok(Server {
            listening: Listening {
                listener,
                tls: self.tls,
                app,
                limits: self.limits,
                metrics: Some(self.metrics),
                workers,
            },
            grace: self.grace,
        })
    }
}

/// A server listening, not yet accepting connections.
pub struct Server {
    listening: Listening,
    grace: Duration,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listening.listener.local_addr()
    }

    /// Serve until `shutdown` resolves, then stop accepting and let open connections
    /// finish within the grace period.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        self.listening.serve(shutdown, self.grace).await
    }
}

/// A listener on `addr`. `0.0.0.0`, the default of `--bind-address`, is every interface of
/// both address families, as Go listens on it (one IPv6 socket that takes IPv4 too): an
/// IPv6 or dual-stack cluster's aggregator reaches promhpa as it reached
/// prometheus-adapter. Where IPv6 is off, it is IPv4 alone.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = |domain, only_v6: bool| -> std::io::Result<Socket> {
        let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        if domain == Domain::IPV6 {
            socket.set_only_v6(only_v6)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    };
    let open = |socket: Socket, at: SocketAddr| -> std::io::Result<TcpListener> {
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        TcpListener::from_std(socket.into())
    };
    if addr.ip() == std::net::IpAddr::from([0, 0, 0, 0]) {
        let any = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), addr.port());
        if let Ok(listener) = socket(Domain::IPV6, false).and_then(|s| open(s, any)) {
            return Ok(listener);
        }
    }
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    // An explicit `::` takes IPv4 as well, as in Go; any other address is its own family.
    open(socket(domain, !addr.ip().is_unspecified())?, addr)
}
