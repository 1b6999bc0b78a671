//! `promhpa serve` (also what `promhpa` does with no subcommand): serve the custom and
//! external metrics APIs over TLS with prometheus-adapter's flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use promhpa_apiserver::objects::StaticObjects;
use promhpa_apiserver::{metrics::SelfMetrics, server, AppState, Registry};
use promhpa_core::backend::{Backend, BackendError};
use promhpa_core::duration::parse_go_duration_ms;
use promhpa_core::lookup::ObjectLookup;
use promhpa_prom::{parse_header_flag, PromClient, PromConfig, Verb};
use promhpa_rules::RuleSet;

mod scrape;

fn go_duration(s: &str) -> Result<Duration, String> {
    let ms = parse_go_duration_ms(s).map_err(|e| e.to_string())?;
    if ms < 0 {
        return Err(format!("duration \"{s}\" must not be negative"));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The flags of `promhpa serve`, boxed so the subcommand enum stays small.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub flags: Box<Flags>,
}

/// prometheus-adapter's flags (same names and meanings), plus promhpa's own.
#[derive(clap::Args, Debug, Clone)]
pub struct Flags {
    /// URL of the Prometheus API (path prefix and query parameters are kept). Without it,
    /// the embedded evaluator is the backend.
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// PEM CA bundle that signed Prometheus' serving certificate.
    #[arg(long, value_name = "FILE")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// File with a bearer token for Prometheus; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    /// Extra header sent to Prometheus, `key=value`; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub prometheus_header: Vec<String>,
    /// HTTP method for queries: GET (switching to POST for long queries) or POST.
    #[arg(long, default_value = "GET", value_name = "VERB")]
    pub prometheus_verb: String,
    /// Client certificate for mutual TLS with Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_client_tls_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS with Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_client_tls_key_file: Option<PathBuf>,
    /// Basic auth user for Prometheus (the password comes from PROMHPA_PROMETHEUS_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub prometheus_user: Option<String>,
    #[arg(
        long,
        env = "PROMHPA_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub prometheus_password: Option<String>,
    /// Deadline of one Prometheus query (also sent as `timeout=`); keep it below the
    /// aggregator's own request timeout.
    #[arg(long, default_value = "20s", value_parser = go_duration, value_name = "DURATION")]
    pub prometheus_query_timeout: Duration,
    /// Accepted for compatibility (kubeconfig-style Prometheus auth).
    #[arg(long, hide = true)]
    pub prometheus_auth_config: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub prometheus_auth_incluster: Option<String>,

    /// Rule file (prometheus-adapter config, Helm values or ConfigMap).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How often discovery relists every rule's seriesQuery.
    #[arg(long, default_value = "1m", value_parser = go_duration, value_name = "DURATION")]
    pub metrics_relist_interval: Duration,
    /// How far back discovery looks for series (default: the relist interval).
    #[arg(long, value_parser = go_duration, value_name = "DURATION")]
    pub metrics_max_age: Option<Duration>,
    /// Kubernetes objects (YAML/JSON, lists allowed) that label selectors are matched against.
    #[arg(long, value_name = "FILE")]
    pub objects: Option<PathBuf>,
    /// Serve built-in demo traffic from the embedded evaluator, with the demo rule file and
    /// object set unless --config/--objects are given. Ignores --prometheus-url.
    #[arg(long)]
    pub demo: bool,
    /// Targets the embedded evaluator scrapes (YAML: `targets:` with `url`, `interval`,
    /// `timeout`, `caFile`, `bearerTokenFile`, `insecureSkipVerify`, `labels`). Only
    /// without --prometheus-url.
    #[arg(long, value_name = "FILE")]
    pub scrape_config: Option<PathBuf>,
    /// Exposition file (text format or OpenMetrics) loaded into the embedded evaluator at
    /// start, stamped with the start time; repeatable.
    #[arg(long, value_name = "FILE")]
    pub load_exposition: Vec<PathBuf>,
    /// How long the embedded evaluator keeps samples.
    #[arg(long, default_value = "10m", value_parser = go_duration, value_name = "DURATION")]
    pub retention: Duration,
    /// The most series the embedded evaluator holds; samples of further series are dropped.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_series: usize,

    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Directory for the self-signed serving certificate when none is given.
    #[arg(long, default_value = "apiserver.local.config/certificates")]
    pub cert_dir: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve without delegated authentication and authorization: anyone who can reach the
    /// port reads every metric. For local use only; implied by --demo.
    #[arg(long)]
    pub insecure_skip_delegated_auth: bool,
    /// How long open connections may finish after SIGTERM.
    #[arg(long, default_value = "10s", value_parser = go_duration, value_name = "DURATION")]
    pub shutdown_grace_period: Duration,

    /// Log verbosity (klog style: 0-2 info, 3-5 debug, 6+ trace).
    #[arg(long = "v", short = 'v', default_value_t = 0)]
    pub verbosity: u8,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    pub log_format: String,

    // Accepted so that existing prometheus-adapter Deployments parse unchanged.
    #[arg(long, hide = true)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub requestheader_username_headers: Vec<String>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub requestheader_group_headers: Vec<String>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Vec<String>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,
    #[arg(long, hide = true)]
    pub client_ca_file: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub authentication_kubeconfig: Option<PathBuf>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub authentication_skip_lookup: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub authentication_tolerate_lookup_failure: Option<String>,
    #[arg(long, hide = true)]
    pub authentication_token_webhook_cache_ttl: Option<String>,
    #[arg(long, hide = true)]
    pub authorization_kubeconfig: Option<PathBuf>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub authorization_always_allow_paths: Vec<String>,
    #[arg(long, hide = true)]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,
    #[arg(long, hide = true)]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,
    #[arg(long, hide = true)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub lister_kubeconfig: Option<PathBuf>,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub tls_cipher_suites: Vec<String>,
    #[arg(long, hide = true)]
    pub tls_min_version: Option<String>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<String>,
    #[arg(long, hide = true)]
    pub audit_log_path: Option<String>,
    #[arg(long, hide = true)]
    pub audit_policy_file: Option<String>,
}

fn init_logging(args: &Flags) {
    // Dependencies stay at info unless asked for with RUST_LOG; promhpa's own crates follow --v.
    let level = match args.verbosity {
        0..=2 => "info",
        3..=5 => "info,promhpa=debug,promhpa_apiserver=debug,promhpa_prom=debug",
        _ => "debug,promhpa=trace,promhpa_apiserver=trace,promhpa_prom=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if args.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The embedded evaluator and the targets it scrapes once the runtime runs.
struct Scraping {
    backend: Arc<promhpa_promql_eval::EmbeddedBackend>,
    config: scrape::ScrapeConfig,
    retention: Duration,
}

/// The embedded evaluator with --retention/--max-series, the --load-exposition files
/// loaded, and the --scrape-config targets read (scraping starts with the runtime).
fn embedded_backend(args: &Flags) -> anyhow::Result<(Arc<dyn Backend>, Option<Scraping>)> {
    use promhpa_promql_eval::{EmbeddedBackend, Labels, StoreLimits};
    let retention_ms = i64::try_from(args.retention.as_millis()).unwrap_or(i64::MAX);
    if retention_ms <= 0 {
        bail!("--retention must be positive");
    }
    let backend = Arc::new(EmbeddedBackend::new(StoreLimits {
        retention_ms,
        max_series: args.max_series,
    }));
    let now = now_ms();
    for file in &args.load_exposition {
        let stats = backend
            .ingest_file(file, now, &Labels::empty())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading --load-exposition {}", file.display()))?;
        tracing::info!(file = %file.display(), samples = stats.samples, "loaded exposition file");
    }
    let config = match &args.scrape_config {
        Some(path) => scrape::ScrapeConfig::load(path)?,
        None => scrape::ScrapeConfig::default(),
    };
    for t in &config.targets {
        // Fail at startup on an unreadable CA file rather than on every scrape.
        t.client()?;
    }
    tracing::info!(
        targets = config.targets.len(),
        retention = ?args.retention,
        max_series = args.max_series,
        "no --prometheus-url: using the embedded PromQL evaluator as the backend"
    );
    let scraping = Scraping {
        backend: backend.clone(),
        config,
        retention: args.retention,
    };
    Ok((backend, Some(scraping)))
}

/// The backend chosen at startup: Prometheus when `--prometheus-url` is given, otherwise
/// the embedded evaluator.
fn build_backend(args: &Flags) -> anyhow::Result<(Arc<dyn Backend>, Option<Scraping>)> {
    if args.demo {
        return Ok((demo_backend(), None));
    }
    let Some(url) = &args.prometheus_url else {
        return embedded_backend(args);
    };
    if args.scrape_config.is_some() || !args.load_exposition.is_empty() {
        bail!("--scrape-config and --load-exposition feed the embedded evaluator and cannot be combined with --prometheus-url");
    }
    let mut config = PromConfig::new(url.clone());
    config.ca_file = args.prometheus_ca_file.clone();
    config.client_cert_file = args.prometheus_client_tls_cert_file.clone();
    config.client_key_file = args.prometheus_client_tls_key_file.clone();
    config.token_file = args.prometheus_token_file.clone();
    for h in &args.prometheus_header {
        config.headers.push(parse_header_flag(h)?);
    }
    config.verb = args.prometheus_verb.parse::<Verb>()?;
    config.query_timeout = args.prometheus_query_timeout;
    if let Some(user) = &args.prometheus_user {
        config.basic_auth = Some((
            user.clone(),
            args.prometheus_password.clone().unwrap_or_default(),
        ));
    }
    Ok((Arc::new(PromClient::new(config)?), None))
}

const DEMO_RULES: &str = include_str!("../../../../demo/rules.yaml");
const DEMO_OBJECTS: &str = include_str!("../../../../demo/objects.yaml");

/// The embedded evaluator fed by the demo traffic generator: five minutes of history at
/// start, then one scrape every five seconds (in a background thread).
fn demo_backend() -> Arc<dyn Backend> {
    use promhpa_promql_eval::demo::DemoTraffic;
    use promhpa_promql_eval::{EmbeddedBackend, Labels};
    let backend = Arc::new(EmbeddedBackend::default());
    let now = now_ms();
    let start = now - 300_000;
    let mut traffic = DemoTraffic::new(start);
    let mut t = start;
    while t <= now {
        traffic.advance(t);
        if let Err(e) = backend.ingest_exposition(&traffic.exposition(t), t, &Labels::empty()) {
            tracing::warn!(error = %e, "demo ingest failed");
        }
        t += 5_000;
    }
    let feed = backend.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(5));
        let t = now_ms();
        traffic.advance(t);
        if let Err(e) = feed.ingest_exposition(&traffic.exposition(t), t, &Labels::empty()) {
            tracing::warn!(error = %e, "demo ingest failed");
        }
    });
    tracing::info!("demo: embedded evaluator with generated traffic");
    backend
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let args = *args.flags;
    init_logging(&args);
    if args.log_format != "text" && args.log_format != "json" {
        bail!(
            "invalid --log-format \"{}\": expected text or json",
            args.log_format
        );
    }
    let rules = match &args.config {
        Some(path) => RuleSet::load(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading rule file {}", path.display()))?,
        None if args.demo => {
            RuleSet::from_yaml(DEMO_RULES, "demo/rules.yaml").map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => {
            tracing::warn!("no --config given: no metrics will be served");
            RuleSet::default()
        }
    };
    for w in &rules.warnings {
        tracing::warn!("{w}");
    }
    let mut args = args;
    if args.prometheus_url.is_none()
        && !args.demo
        && args.scrape_config.is_none()
        && args.load_exposition.is_empty()
    {
        // A Helm values file carries the chart's `prometheus.url`/`port`/`path`; the chart
        // joins them into --prometheus-url the same way.
        if let Some(p) = rules.prometheus.as_ref().and_then(|p| {
            p.url.as_ref().map(|u| {
                let port = p.port.map(|port| format!(":{port}")).unwrap_or_default();
                format!("{u}{port}{}", p.path.as_deref().unwrap_or(""))
            })
        }) {
            tracing::info!(url = %p, "using prometheus from the rule file's prometheus settings");
            args.prometheus_url = Some(p);
        }
    }
    let (backend, scraping) = build_backend(&args)?;
    let (cert, key) = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => server::ensure_self_signed(&args.cert_dir, &[])?,
        _ => bail!("--tls-cert-file and --tls-private-key-file must be given together"),
    };
    let resolver = Arc::new(server::ReloadingCert::new(&cert, &key)?);
    let tls = server::tls_config(resolver)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if let Some(s) = scraping {
            // Retention is enforced a few times per window so memory stays bounded even
            // when every target is down.
            scrape::spawn(s.backend, &s.config, s.retention / 4)?;
        }
        let lookup: Arc<dyn ObjectLookup> = match &args.objects {
            Some(p) => Arc::new(StaticObjects::load(p)?),
            None if args.demo => Arc::new(StaticObjects::from_text(DEMO_OBJECTS, "demo/objects.yaml")?),
            None => super::cluster::kube_lookup(
                args.lister_kubeconfig.as_deref().or(args.kubeconfig.as_deref()),
            )?,
        };
        let (guard, _delegated_auth) = if args.demo || args.insecure_skip_delegated_auth {
            tracing::warn!("delegated authentication and authorization are off: anyone who can reach this port reads every metric");
            (None, None)
        } else {
            let (guard, handle) = super::cluster::guard(&args).await?;
            (Some(guard), Some(handle))
        };
        // A certificate the backend's CA does not vouch for will not fix itself: say so and
        // stop instead of serving errors forever. Unreachable backends may come up later.
        if args.prometheus_url.is_some() && !args.demo {
            match backend.query("1", now_ms()).await {
                Err(BackendError::Unavailable { address, message })
                    if message.to_lowercase().contains("certificate") =>
                {
                    bail!(
                        "cannot verify the TLS certificate of prometheus {address}: {message} (pass --prometheus-ca-file with the CA that signed it)"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "prometheus is not answering yet"),
                Ok(_) => tracing::info!(address = %backend.address(), "prometheus reachable"),
            }
        }
        let metrics = Arc::new(SelfMetrics::default());
        let max_age = args.metrics_max_age.unwrap_or(args.metrics_relist_interval);
        let registry = Arc::new(Registry::new(
            Arc::new(rules),
            backend.clone(),
            lookup.clone(),
            metrics.clone(),
            max_age,
        ));
        tokio::spawn(registry.clone().run(args.metrics_relist_interval));
        let state = AppState {
            registry,
            backend,
            lookup,
            metrics,
            guard,
            coalescer: Default::default(),
        };
        let app = promhpa_apiserver::router(state);
        let addr = SocketAddr::new(args.bind_address, args.secure_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(%addr, cert = %cert.display(), "serving custom.metrics.k8s.io and external.metrics.k8s.io");
        server::serve(listener, tls, app, shutdown_signal(), args.shutdown_grace_period).await;
        Ok(ExitCode::SUCCESS)
    })
}
