//! The flags of `promhpa serve` (also what `promhpa` does with no subcommand):
//! prometheus-adapter's, with the same names and meanings, and promhpa's own.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use promhpa_apiserver::server::{self, TlsVersion};
use promhpa_core::backend::Backend;
use promhpa_core::duration::parse_go_duration;
use promhpa_core::gofmt::parse_go_bool;
use promhpa_core::timing::CallTimings;

use crate::{BackendFlags, LimitFlags, OptionsError};

/// prometheus-adapter's flags (same names and meanings), plus promhpa's own.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeFlags {
    #[command(flatten)]
    pub backend: BackendFlags,

    /// Refuse to start when a rule of --config is broken (it loads, as in
    /// prometheus-adapter, but cannot serve) or warned about, instead of serving the others.
    #[arg(long)]
    pub strict_rules: bool,

    /// How often the --config file is checked for changes (a change, or SIGHUP, reloads it
    /// without a restart; a file that does not load leaves the running rules in place).
    #[arg(long, default_value = "2s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub config_reload_interval: Duration,

    /// Also serve the cluster's MetricRule objects (metrics.promhpa.io/v1alpha1, the CRD of
    /// deploy/overlays/metric-rules): each team's rules in its own namespace only, beside
    /// --config's rules and never over them; each object's status says what it serves.
    #[arg(long)]
    pub metric_rules: bool,

    /// How often discovery relists every rule's seriesQuery (prometheus-adapter's default;
    /// its chart passes 1m). A metric requested before a relist found it is looked up on
    /// request.
    #[arg(long, default_value = "10m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub metrics_relist_interval: Duration,
    /// How far back discovery looks for series (default, or 0: the relist interval; never
    /// less than it).
    #[arg(long, value_parser = parse_go_duration, value_name = "DURATION")]
    pub metrics_max_age: Option<Duration>,

    /// Targets the embedded evaluator scrapes (YAML: `targets:` with `url`, `interval`,
    /// `timeout`, `caFile`, `bearerTokenFile`, `insecureSkipVerify`, `labels`). Only
    /// without --prometheus-url.
    #[arg(long, value_name = "FILE")]
    pub scrape_config: Option<PathBuf>,
    /// How long the embedded evaluator keeps samples.
    #[arg(long, default_value = "10m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub retention: Duration,
    /// The most series the embedded evaluator holds; samples of further series are dropped.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_series: usize,

    /// HTTPS port (default 443, as prometheus-adapter's; 6443 with --demo).
    #[arg(long, value_name = "PORT")]
    pub secure_port: Option<u16>,
    /// Address to listen on (default 0.0.0.0; 127.0.0.1 with --demo).
    #[arg(long)]
    pub bind_address: Option<IpAddr>,
    /// Directory for the self-signed serving certificate when none is given.
    #[arg(long, default_value = "apiserver.local.config/certificates")]
    pub cert_dir: PathBuf,
    /// Serving certificate (PEM, with any intermediates after it); re-read when it changes.
    /// Without it a self-signed pair is generated into --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of --tls-cert-file (PEM); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Minimum TLS version supported. Possible values: VersionTLS10, VersionTLS11,
    /// VersionTLS12, VersionTLS13 (default VersionTLS12). TLS 1.0 and 1.1 are not
    /// implemented: they are accepted with a warning, and TLS 1.2 stays the minimum.
    #[arg(long, value_name = "VERSION", value_parser = tls_min_version)]
    pub tls_min_version: Option<TlsVersion>,
    /// Comma-separated list of cipher suites for the server (Go names). If omitted, all
    /// offered suites are used. Offered: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
    /// TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    /// TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    /// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    /// TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256. Go's CBC, RSA-key-exchange, 3DES and RC4
    /// suites are accepted with a warning but not offered; a list with nothing to offer is an
    /// error. The TLS 1.3 suites are all offered unless the list names some.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SUITES",
        value_parser = tls_cipher_suite
    )]
    pub tls_cipher_suites: Vec<String>,
    /// Serve without delegated authentication and authorization: anyone who can reach the
    /// port reads every metric. For local use only; implied by --demo.
    #[arg(long)]
    pub insecure_skip_delegated_auth: bool,
    /// How long open connections may finish after SIGTERM.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub shutdown_grace_period: Duration,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// When a backend query fails, serve the last answer to the same request if it is
    /// younger than this, instead of a 503 (the HPA cannot tell it is old). 0 (default):
    /// off.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub stale_value_max_age: Duration,
    /// Answer a query from memory for this long after an identical one succeeded, on top
    /// of sharing identical concurrent queries. 0 (default): off.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub query_cache_ttl: Duration,

    /// Forward requests for external metrics that no rule serves to this metrics server
    /// (https://host:port, e.g. KEDA's keda-operator-metrics-apiserver), so that promhpa can
    /// own the external.metrics.k8s.io APIService beside it; discovery lists both servers'
    /// metrics. http:// only for 127.0.0.1, ::1 or localhost.
    #[arg(long, value_name = "URL")]
    pub forward_unknown_external_metrics_to: Option<String>,
    /// Forward requests for custom metrics that no rule serves to this metrics server
    /// (https://host:port), as --forward-unknown-external-metrics-to does for external ones.
    #[arg(long, value_name = "URL")]
    pub forward_unknown_custom_metrics_to: Option<String>,
    /// CA bundle that signed the certificate of the server forwarded to (required for
    /// https://; re-read when it changes).
    #[arg(long, value_name = "FILE")]
    pub forward_ca_file: Option<PathBuf>,
    /// Client certificate promhpa presents to the server forwarded to (re-read when it
    /// changes); with --forward-client-key-file.
    #[arg(long, value_name = "FILE")]
    pub forward_client_cert_file: Option<PathBuf>,
    /// Private key of --forward-client-cert-file.
    #[arg(long, value_name = "FILE")]
    pub forward_client_key_file: Option<PathBuf>,
    /// Bearer token promhpa sends to the server forwarded to, re-read when it changes.
    /// Without it and without a client certificate, the pod's service account token is sent
    /// when there is one. The caller's credentials are never forwarded.
    #[arg(long, value_name = "FILE")]
    pub forward_token_file: Option<PathBuf>,

    /// Log verbosity (klog style: 0-2 info, 3-5 debug, 6+ trace).
    #[arg(long = "v", short = 'v', default_value_t = 0)]
    pub verbosity: u8,
    /// `text` (klog's lines: `I1206 13:31:26.308339   12345 serve.rs:83] message key=value`)
    /// or `json` (one object per line).
    #[arg(long, default_value = "text")]
    pub log_format: String,

    /// CA bundle that signs the front proxy's (the aggregator's) client certificate; only
    /// then are the --requestheader-username-headers believed. Default: from
    /// kube-system/extension-apiserver-authentication.
    #[arg(long, value_name = "FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names allowed for the front proxy's client certificate (empty: any
    /// certificate the request-header CA signed).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub requestheader_allowed_names: Vec<String>,
    /// Request headers to read the user name from (default X-Remote-User).
    #[arg(long, value_delimiter = ',', value_name = "HEADERS")]
    pub requestheader_username_headers: Vec<String>,
    /// Request headers to read groups from (default X-Remote-Group).
    #[arg(long, value_delimiter = ',', value_name = "HEADERS")]
    pub requestheader_group_headers: Vec<String>,
    /// Header prefixes to read extra user information from (default X-Remote-Extra-).
    #[arg(long, value_delimiter = ',', value_name = "PREFIXES")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Request headers to read the user's UID from.
    #[arg(long, value_delimiter = ',', value_name = "HEADERS")]
    pub requestheader_uid_headers: Vec<String>,
    /// CA bundle for client certificates: a certificate it signs authenticates as its
    /// common name (user) and organizations (groups).
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// kubeconfig of the cluster that checks bearer tokens (TokenReview) and holds
    /// extension-apiserver-authentication (default: --kubeconfig, else in-cluster).
    #[arg(long, value_name = "FILE")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Do not read missing CAs from kube-system/extension-apiserver-authentication.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub authentication_skip_lookup: Option<String>,
    /// Start even when extension-apiserver-authentication cannot be read.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub authentication_tolerate_lookup_failure: Option<String>,
    /// How long TokenReview answers are cached (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub authentication_token_webhook_cache_ttl: Option<String>,
    /// Authorize requests that carry no credentials as `system:anonymous` (group
    /// `system:unauthenticated`), as Kubernetes' delegated authentication does, so they get
    /// 403 unless RBAC grants them; false answers them 401 (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub anonymous_auth: Option<String>,
    /// kubeconfig of the cluster that authorizes requests (SubjectAccessReview) (default:
    /// --kubeconfig, else in-cluster).
    #[arg(long, value_name = "FILE")]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths served without authorization (default /healthz,/readyz,/livez).
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    pub authorization_always_allow_paths: Vec<String>,
    /// How long an allowed SubjectAccessReview is cached (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,
    /// How long a denied SubjectAccessReview is cached (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,
    /// kubeconfig of the cluster promhpa serves (default: in a pod its service account,
    /// elsewhere $KUBECONFIG or ~/.kube/config, as kubectl).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig for the watch caches that match labelSelectors to objects (default:
    /// --kubeconfig, else in-cluster); unused with --objects.
    #[arg(long, value_name = "FILE")]
    pub lister_kubeconfig: Option<PathBuf>,
    /// Serve HTTP/1.1 only: HTTP/2 is not offered in the TLS handshake.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_go_bool,
        value_name = "BOOL"
    )]
    pub disable_http2: Option<bool>,
    /// How often the API server's resources are discovered again (how labelSelectors and
    /// rules' resources find their kinds), as prometheus-adapter's --discovery-interval (0:
    /// the default).
    #[arg(long, default_value = "10m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub discovery_interval: Duration,
    // Accepted so that existing Deployments parse unchanged; they mean nothing here and a
    // warning says so at start.
    #[command(flatten)]
    pub inert: crate::inert::InertFlags,
}

/// `--tls-min-version`: a Go version name; empty means the default.
fn tls_min_version(s: &str) -> Result<TlsVersion, String> {
    if s.trim().is_empty() {
        return Ok(TlsVersion::Tls12);
    }
    s.parse()
}

/// One `--tls-cipher-suites` name, checked against Go's names.
fn tls_cipher_suite(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Ok(String::new());
    }
    server::check_cipher_suite_name(s)?;
    Ok(s.trim().to_string())
}

impl ServeFlags {
    /// `--secure-port`: 443 as in prometheus-adapter, 6443 for `--demo` (a port a user may
    /// open without privileges, where the demo's kubeconfig points).
    pub fn secure_port(&self) -> u16 {
        self.secure_port
            .unwrap_or(if self.backend.demo { 6443 } else { 443 })
    }
}

/// The --forward-* flags.
pub fn forward_options(args: &ServeFlags) -> promhpa_apiserver::forward::ForwardOptions {
    promhpa_apiserver::forward::ForwardOptions {
        external_url: args.forward_unknown_external_metrics_to.clone(),
        custom_url: args.forward_unknown_custom_metrics_to.clone(),
        ca_file: args.forward_ca_file.clone(),
        client_cert_file: args.forward_client_cert_file.clone(),
        client_key_file: args.forward_client_key_file.clone(),
        token_file: args.forward_token_file.clone(),
        service_account_token: Some(
            std::path::Path::new(promhpa_kube::config::SERVICE_ACCOUNT_DIR).join("token"),
        ),
    }
}

/// One warning for each flag given that has no effect: prometheus-adapter's that mean
/// nothing here, and those that the other flags leave unused.
pub fn compatibility_warnings(args: &ServeFlags) -> Vec<String> {
    let mut out = args.inert.warnings();
    let b = &args.backend;
    let plain_http = b
        .prometheus_url
        .as_deref()
        .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("http://"));
    if plain_http && !b.demo {
        for (given, flag) in [
            (b.prometheus_ca_file.is_some(), "--prometheus-ca-file"),
            (
                b.prometheus_client_tls_cert_file.is_some(),
                "--prometheus-client-tls-cert-file",
            ),
            (
                b.prometheus_client_tls_key_file.is_some(),
                "--prometheus-client-tls-key-file",
            ),
        ] {
            if given {
                out.push(format!(
                    "{flag} not used: --prometheus-url is http://, so queries use no TLS"
                ));
            }
        }
    }
    if args.lister_kubeconfig.is_some() && (b.objects.is_some() || b.demo) {
        out.push(format!(
            "--lister-kubeconfig not used: objects come from {}",
            if b.demo { "--demo" } else { "--objects" }
        ));
    }
    out
}

/// The embedded evaluator and the targets it scrapes once the runtime runs.
pub struct Scraping {
    backend: Arc<promhpa_promql_eval::EmbeddedBackend>,
    config: promhpa_scrape::ScrapeConfig,
    retention: Duration,
}

/// The embedded evaluator with --retention/--max-series, the --load-exposition files
/// loaded, and the --scrape-config targets read (scraping starts with the runtime).
fn embedded_backend(args: &ServeFlags) -> Result<(Arc<dyn Backend>, Scraping), OptionsError> {
    use promhpa_promql_eval::{EmbeddedBackend, StoreLimits};
    // Positive: ServeConfig::from_flags refuses a zero --retention.
    let retention_ms = i64::try_from(args.retention.as_millis()).unwrap_or(i64::MAX);
    let backend = Arc::new(EmbeddedBackend::new(StoreLimits {
        retention_ms,
        max_series: args.max_series,
    }));
    args.backend.load_expositions(&backend)?;
    args.backend.warn_unused_prometheus_flags();
    let config = match &args.scrape_config {
        Some(path) => promhpa_scrape::ScrapeConfig::load(path)?,
        None => promhpa_scrape::ScrapeConfig::default(),
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
    Ok((backend, scraping))
}

impl ServeFlags {
    /// The backend: the demo traffic with --demo, Prometheus with --prometheus-url (never
    /// with --scrape-config or --load-exposition: [`ServeConfig::from_flags`](crate::ServeConfig::from_flags)
    /// refuses them together), otherwise the embedded evaluator with its exposition files and
    /// the scrape targets to start once the runtime runs. A Prometheus client counts the
    /// time of its calls in `calls` when given.
    pub fn metrics_backend(
        &self,
        calls: Option<&Arc<CallTimings>>,
    ) -> Result<(Arc<dyn Backend>, Option<Scraping>), OptionsError> {
        if self.backend.demo || self.backend.prometheus_url.is_some() {
            return Ok((self.backend.build_backend(calls)?, None));
        }
        let (backend, scraping) = embedded_backend(self)?;
        Ok((backend, Some(scraping)))
    }
}

impl Scraping {
    /// Start scraping the targets. Must run inside a tokio runtime.
    pub fn start(self) -> Result<(), OptionsError> {
        // Retention is enforced a few times per window so memory stays bounded even when
        // every target is down.
        promhpa_scrape::spawn(self.backend, &self.config, self.retention / 4)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn parse(args: &[&str]) -> Result<ServeFlags, String> {
        testing::parse(args)
    }

    #[test]
    fn flags_without_meaning_here_warn_once_each() {
        let f = parse(&[
            "--logtostderr",
            "--audit-log-path=/var/log/audit.log",
            "--audit-policy-file=/etc/audit.yaml",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let w = compatibility_warnings(&f);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("--logtostderr is accepted for compatibility"));
        assert!(w[1].starts_with("--audit-policy-file") && w[1].contains("no effect"));
        assert!(w[2].starts_with("--audit-log-path"));
        let f = parse(&["--logtostderr=false"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(compatibility_warnings(&f).len(), 1);
        assert!(compatibility_warnings(&parse(&[]).unwrap_or_else(|e| panic!("{e}"))).is_empty());
        let e = parse(&["--logtostderr=sure"]).err().unwrap_or_default();
        assert!(e.contains("invalid boolean \"sure\""), "{e}");
    }

    /// Flags of Kubernetes' generic API server, custom-metrics-apiserver and klog, as a
    /// prometheus-adapter Deployment passes them.
    #[test]
    fn the_adapter_deployments_other_flags_parse_and_warn() {
        let f = parse(&[
            "--profiling=false",
            "--contention-profiling",
            "--enable-priority-and-fairness=false",
            "--tls-sni-cert-key",
            "/certs/a.crt,/certs/a.key:a.example.com",
            "--vmodule=rules=4",
            "--log_dir=/var/log",
            "--log-file",
            "/var/log/adapter.log",
            "--alsologtostderr",
            "--stderrthreshold=INFO",
            "--audit-log-maxage=30",
            "--audit-webhook-config-file=/etc/webhook.yaml",
            "--client-qps=50",
            "--client-burst=100",
            "--profiling=true",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let w = compatibility_warnings(&f);
        // One warning per flag, a repeated one included once.
        assert_eq!(w.len(), 13, "{w:#?}");
        for flag in [
            "--profiling",
            "--log-dir",
            "--log-file",
            "--tls-sni-cert-key",
            "--client-qps",
        ] {
            assert!(
                w.iter()
                    .any(|l| l.starts_with(&format!("{flag} is accepted"))),
                "{flag}: {w:#?}"
            );
        }
        assert!(w.iter().all(|l| l.contains("has no effect: ")), "{w:#?}");
        // Go booleans take their value after `=` only, and only Go's spellings.
        let e = parse(&["--profiling=maybe"]).err().unwrap_or_default();
        assert!(e.contains("invalid boolean \"maybe\""), "{e}");
        let e = parse(&["--vmodule"]).err().unwrap_or_default();
        assert!(e.contains("--vmodule"), "{e}");
        // Values are checked as pflag checks their types: numbers, integers, durations.
        for bad in [
            "--client-qps=abc",
            "--client-burst=1.5",
            "--log-flush-frequency=5",
            "--audit-log-maxage=a-month",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--log-flush-frequency=5s", "--client-qps=2.5"]).is_ok());
    }

    #[test]
    fn disable_http2_and_discovery_interval_take_effect() {
        let f = parse(&["--disable-http2", "--discovery-interval=90s"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.disable_http2, Some(true));
        assert_eq!(f.discovery_interval, Duration::from_secs(90));
        assert!(compatibility_warnings(&f).is_empty());
        let d = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (d.disable_http2, d.discovery_interval),
            (None, Duration::from_secs(600))
        );
        let c = crate::ServeConfig::from_flags(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.serving_tls.http2);
        let c = crate::ServeConfig::from_flags(d).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.serving_tls.http2);
        // 0, prometheus-adapter's own default, is the default.
        let z = parse(&["--discovery-interval=0s"]).unwrap_or_else(|e| panic!("{e}"));
        let c = crate::ServeConfig::from_flags(z).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.flags.discovery_interval, Duration::from_secs(600));
    }

    #[test]
    fn ports_and_discovery_default_as_in_prometheus_adapter() {
        let d = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.secure_port(), 443);
        assert_eq!(d.metrics_relist_interval, Duration::from_secs(600));
        let demo = parse(&["--demo"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(demo.secure_port(), 6443);
        let given = parse(&["--demo", "--secure-port=8443"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(given.secure_port(), 8443);
        let c = crate::ServeConfig::from_flags(
            parse(&["--metrics-max-age=0s"]).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.flags.metrics_max_age, None);
        let e = crate::ServeConfig::from_flags(
            parse(&["--metrics-relist-interval=1h", "--metrics-max-age=10m"])
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--metrics-max-age (10m0s) must not be less than --metrics-relist-interval (1h0m0s)")
        );
    }

    #[test]
    fn flags_left_unused_by_others_are_named() {
        let f = parse(&[
            "--prometheus-url=http://prometheus:9090",
            "--prometheus-ca-file=/ca.crt",
            "--objects=objects.yaml",
            "--lister-kubeconfig=/kubeconfig",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            compatibility_warnings(&f),
            vec![
                "--prometheus-ca-file not used: --prometheus-url is http://, so queries use no TLS",
                "--lister-kubeconfig not used: objects come from --objects",
            ]
        );
        let f = parse(&[
            "--prometheus-url=https://prometheus:9090",
            "--prometheus-ca-file=/ca.crt",
            "--lister-kubeconfig=/kubeconfig",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(compatibility_warnings(&f).is_empty());
    }

    #[test]
    fn tls_flags_take_go_names() {
        let f = parse(&[
            "--tls-min-version=VersionTLS13",
            "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA",
            "--tls-cipher-suites=TLS_AES_128_GCM_SHA256",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.tls_min_version, Some(TlsVersion::Tls13));
        assert_eq!(
            f.tls_cipher_suites,
            vec![
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_AES_128_GCM_SHA256"
            ]
        );
        let e = parse(&["--tls-min-version=1.3"]).err().unwrap_or_default();
        assert!(e.contains("unknown tls version \"1.3\""), "{e}");
        assert!(e.contains("VersionTLS12"), "{e}");
        let e = parse(&["--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,AES128"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("\"AES128\" not supported"), "{e}");
        assert!(e.contains("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), "{e}");
    }

    #[test]
    fn forward_flags_reach_the_forwarder() {
        let f = parse(&[
            "--forward-unknown-external-metrics-to=https://keda-operator-metrics-apiserver.keda.svc",
            "--forward-ca-file=/etc/keda-ca/ca.crt",
            "--forward-token-file=/var/run/forward/token",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let o = forward_options(&f);
        assert_eq!(
            o.external_url.as_deref(),
            Some("https://keda-operator-metrics-apiserver.keda.svc")
        );
        assert_eq!(o.custom_url, None);
        assert_eq!(o.ca_file, Some(PathBuf::from("/etc/keda-ca/ca.crt")));
        assert_eq!(o.token_file, Some(PathBuf::from("/var/run/forward/token")));
        assert_eq!(
            o.service_account_token,
            Some(PathBuf::from(
                "/var/run/secrets/kubernetes.io/serviceaccount/token"
            ))
        );
        let o = forward_options(&parse(&[]).unwrap_or_else(|e| panic!("{e}")));
        assert!(o.external_url.is_none() && o.custom_url.is_none());
    }

    #[test]
    fn cipher_suite_help_lists_what_is_offered() {
        let cmd = testing::command::<ServeFlags>();
        let help = cmd
            .get_arguments()
            .find(|a| a.get_id() == "tls_cipher_suites")
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for name in server::offered_cipher_suite_names() {
            assert!(help.contains(name), "{name} missing from: {help}");
        }
        assert_eq!(
            help.matches("TLS_").count(),
            server::offered_cipher_suite_names().len()
        );
    }
}
