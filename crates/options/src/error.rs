//! Why what the options describe cannot be built. Flag values are checked before (see
//! [`ServeConfig`](crate::ServeConfig)); these are the failures only a file, a server or the
//! cluster can show.

use std::path::PathBuf;

/// A failure to build what the options describe, naming the flag or file it comes from.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The messages of `source` name the file.
    #[error("loading the rule file (--config)")]
    RuleFile {
        path: PathBuf,
        #[source]
        source: promhpa_rules::ConfigErrors,
    },
    /// The rule file built into the binary for `--demo`.
    #[error(transparent)]
    DemoRules(promhpa_rules::ConfigErrors),
    #[error("loading --load-exposition {}", .path.display())]
    Exposition {
        path: PathBuf,
        #[source]
        source: promhpa_promql_eval::EvalError,
    },
    #[error("--load-exposition feeds the embedded evaluator and cannot be combined with --prometheus-url")]
    ExpositionWithPrometheus,
    #[error(transparent)]
    Prometheus(#[from] promhpa_prom::PromError),
    #[error(transparent)]
    PrometheusAuth(#[from] promhpa_kube::prometheus_auth::PrometheusAuthError),
    /// A certificate Prometheus' CA does not vouch for: it will not fix itself. `fix` names
    /// the flag that does.
    #[error("cannot verify the TLS certificate of prometheus {address}: {message} ({fix})")]
    PrometheusCertificate {
        address: String,
        message: String,
        fix: &'static str,
    },
    #[error("reading {}", .path.display())]
    ReadObjects {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Objects(#[from] promhpa_apiserver::objects::ObjectsError),
    #[error("loading Kubernetes credentials for object lookup; run in a cluster, pass --lister-kubeconfig, or give a static object file with --objects")]
    ObjectLookupCredentials(#[source] promhpa_kube::KubeError),
    #[error(transparent)]
    Scrape(#[from] promhpa_scrape::ScrapeError),
}
