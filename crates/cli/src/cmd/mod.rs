//! One module per subcommand; each has `Args` (clap) and `run(Args) -> Result<ExitCode>`.

pub mod check;
pub mod explain;
pub mod hpa_fetch;
pub mod hpa_history;
pub mod hpa_target;
pub mod manifests;
pub mod plugin;
pub mod promql;
pub mod query;
pub mod recommend;
pub mod serve;
pub mod simulate;
