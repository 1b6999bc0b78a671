//! `promhpa serve` (also what `promhpa` does with no subcommand): serve the custom and
//! external metrics APIs over TLS with prometheus-adapter's flags.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use promhpa_apiserver::coalesce::Coalescer;
use promhpa_apiserver::{metrics::SelfMetrics, server, Registry, ServerBuilder};
use promhpa_core::lookup::ObjectLookup;
use promhpa_options::serve::compatibility_warnings;
use promhpa_options::ServeFlags;

mod cluster;
mod klog;

pub use promhpa_options::{FlagErrors, ServeConfig};

/// The flags of `promhpa serve`, boxed so the subcommand enum stays small.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub flags: Box<ServeFlags>,
}

fn init_logging(args: &ServeFlags) {
    // promhpa's own crates follow --v (debug from 3, trace, with every query sent, from 6);
    // dependencies (HTTP/2 frames, TLS) stay at info until 8, or as RUST_LOG says.
    const OURS: &[&str] = &[
        "promhpa",
        "promhpa_apiserver",
        "promhpa_prom",
        "promhpa_kube",
        "promhpa_rules",
        "promhpa_auth",
        "promhpa_scrape",
        "promhpa_http_client",
        "promhpa_promql_eval",
        "promhpa_options",
    ];
    let (deps, ours) = match args.verbosity {
        0..=2 => ("info", None),
        3..=5 => ("info", Some("debug")),
        6..=7 => ("info", Some("trace")),
        _ => ("debug", Some("trace")),
    };
    let mut level = deps.to_string();
    if let Some(ours) = ours {
        for c in OURS {
            level.push_str(&format!(",{c}={ours}"));
        }
    }
    // The HTTP/2 library warns once per connection a client breaks the protocol on (too many
    // reset streams, a bad frame): the client's doing, which Go's server does not log, and a
    // hostile client could fill the log with them. Shown from --v=6.
    if args.verbosity < 6 {
        level.push_str(",h2=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only for a person at a terminal; container logs are pipes and files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if args.log_format == "json" {
        builder.event_format(klog::KubeJson).try_init()
    } else {
        builder.event_format(klog::Klog::new()).try_init()
    };
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received; draining connections");
}

/// Serve with flags `ServeConfig::from_flags` has checked; what fails now (a file, a server,
/// the cluster) is a runtime error.
pub fn run(config: ServeConfig) -> anyhow::Result<ExitCode> {
    let ServeConfig {
        flags: mut args,
        serving_tls,
        serving_cert,
        limits: serving_limits,
        delegated_auth,
        forward,
    } = config;
    init_logging(&args);
    for w in compatibility_warnings(&args) {
        tracing::warn!("{w}");
    }
    for w in &serving_tls.warnings {
        tracing::warn!("{w}");
    }
    let metrics = Arc::new(SelfMetrics::default());
    let forward = forward.build(metrics.clone())?.map(Arc::new);
    let rules = args.backend.load_rules()?;
    // Loaded now, whether from --config or built in (--demo): an alert on the age of the
    // last successful load must not fire for a server that has no file to reload.
    metrics.rules_loaded();
    if args.strict_rules && !rules.is_clean() {
        let problems: Vec<String> = rules
            .strict_errors()
            .iter()
            .map(|e| e.to_string())
            .collect();
        bail!(
            "--strict-rules: the rule file has {} broken rule{} and {} warning{}:\n{}",
            rules.broken.len(),
            if rules.broken.len() == 1 { "" } else { "s" },
            rules.warnings.len(),
            if rules.warnings.len() == 1 { "" } else { "s" },
            problems.join("\n")
        );
    }
    let has_resource_rules = rules.resource.is_some();
    if args.scrape_config.is_none() && args.backend.load_exposition.is_empty() {
        args.backend.adopt_rule_file_prometheus(&rules);
    }
    let (backend, scraping) = args.metrics_backend(Some(&metrics.prometheus_calls()))?;
    // The embedded evaluator computes each answer in place: on the serving threads that
    // would hold up the other requests of a connection, so it runs on blocking threads.
    let backend: Arc<dyn promhpa_core::backend::Backend> =
        if args.backend.demo || args.backend.prometheus_url.is_none() {
            Arc::new(promhpa_apiserver::offload::Offloaded::new(backend))
        } else {
            backend
        };
    let connect = args.backend.connector(Some(&metrics.prometheus_calls()))?;
    let backends = promhpa_apiserver::backends::Backends::build(
        promhpa_apiserver::backends::BackendRef::new(backend.clone()),
        &rules.backends,
        Some(&connect),
        None,
    )
    .map_err(|e| {
        let source = args
            .backend
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        anyhow::anyhow!("{source}: {e}")
    })?;
    for (name, address) in backends.list().into_iter().skip(1) {
        tracing::info!(backend = %name, %address, "backend of the rule file");
    }
    let (cert, key) = match serving_cert {
        Some(pair) => pair,
        None => server::ensure_self_signed(&args.cert_dir, &[])?,
    };
    let resolver = Arc::new(server::ReloadingCert::new(&cert, &key)?);
    let tls = server::tls_config_with(resolver, &serving_tls)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if let Some(s) = scraping {
            s.start()?;
        }
        let lookup: Arc<dyn ObjectLookup> = args
            .backend
            .build_lookup(
                &promhpa_kube::client::ClusterAccess::kubeconfig(
                    args.lister_kubeconfig.as_deref().or(args.kubeconfig.as_deref()),
                ),
                args.discovery_interval,
            )?;
        if rules.resource.is_some() {
            // metrics.k8s.io lists running pods from a cache of their own: filled now, the
            // HPA's first CPU request after a start does not wait for its list.
            let lookup = lookup.clone();
            tokio::spawn(async move {
                let everything = promhpa_core::selector::LabelSelector::everything();
                let _ = lookup.running_pods(None, &everything).await;
            });
        }
        let (guard, _delegated_auth) = if args.backend.demo || args.insecure_skip_delegated_auth {
            tracing::warn!("delegated authentication and authorization are off: anyone who can reach this port reads every metric");
            (None, None)
        } else {
            let (guard, handle) = cluster::guard(&delegated_auth).await?;
            (Some(guard), Some(handle))
        };
        // A certificate the backend's CA does not vouch for will not fix itself: stop
        // instead of serving errors forever. Unreachable backends may come up later.
        args.backend.check_prometheus(&*backend).await?;
        let max_age = args.metrics_max_age.unwrap_or(args.metrics_relist_interval);
        let registry = Arc::new(
            Registry::new(
                Arc::new(rules),
                backends,
                lookup.clone(),
                metrics.clone(),
                max_age,
            )
            .with_connector(connect),
        );
        if args.metric_rules {
            cluster::serve_metric_rules(
                args.lister_kubeconfig.as_deref().or(args.kubeconfig.as_deref()),
                registry.clone(),
                args.metrics_relist_interval.min(Duration::from_secs(30)),
            )?;
        }
        let mut builder = ServerBuilder::new(registry, lookup, metrics, tls)
            .guard(guard)
            .forward(forward)
            .coalescer(
                Coalescer::default()
                    .with_result_ttl(args.query_cache_ttl)
                    .with_stale_answers(args.stale_value_max_age),
            )
            .limits(serving_limits)
            .shutdown_grace_period(args.shutdown_grace_period)
            .relist_interval(args.metrics_relist_interval);
        if let Some(path) = &args.backend.config {
            builder = builder.reload_rule_file(
                path.clone(),
                args.strict_rules,
                args.config_reload_interval,
            );
        }
        if args.backend.demo {
            builder = builder.merge(promhpa_apiserver::demo_nodes::router(
                promhpa_apiserver::demo_nodes::nodes_of(promhpa_promql_eval::demo::OBJECTS)?,
            ));
        }
        let bind = args.bind_address.unwrap_or(if args.backend.demo {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([0, 0, 0, 0])
        });
        let addr = SocketAddr::new(bind, args.secure_port());
        let server = builder.bind(addr).await.map_err(|e| {
            // The default port, 443 as prometheus-adapter's, needs privileges outside a
            // container that grants them.
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024
            {
                " (ports below 1024 need privileges: pass --secure-port, e.g. 6443, as the manifests do)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("listening on {addr}{hint}"))
        })?;
        tracing::info!(%addr, cert = %cert.display(), resource_metrics = has_resource_rules, "serving custom.metrics.k8s.io, external.metrics.k8s.io and, with resourceRules, metrics.k8s.io");
        server.serve(shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}
