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

/// The text of an input file, or of standard input for `-`, as kubectl's `-f -` reads it.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin().lock())
    } else {
        std::fs::read_to_string(path)
    }
}
