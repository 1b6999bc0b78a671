//! promhpa's command-line options, in groups as Kubernetes' servers keep theirs: each group
//! declares its flags (prometheus-adapter's names and meanings, and promhpa's own), checks
//! their values, and builds what they describe. The binary puts the groups on its
//! subcommands and wires what they build together.
//!
//! - [`BackendFlags`]: where values come from (Prometheus or the embedded evaluator), the rule
//!   file, and the objects label selectors are matched against; shared by `serve`, `explain`
//!   and `simulate`.
//! - [`LimitFlags`]: timeouts and caps on client connections and requests.
//! - [`ControllerFlags`]: the HPA controller's settings for `explain` and `simulate`.
//! - [`ServeFlags`]: every flag of `serve`, with the groups above; [`ServeConfig`] is them
//!   checked, all problems at once, before anything starts. The delegated-auth flags become
//!   [`DelegatedAuthOptions`](promhpa_kube::delegated::DelegatedAuthOptions) in
//!   [`delegated_auth`].
//!
//! ```
//! use clap::Parser;
//! use promhpa_options::{ServeConfig, ServeFlags};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeFlags,
//! }
//!
//! let cli = Cli::parse_from(["promhpa", "--request-timeout=0s", "--log-format=xml"]);
//! let errors = ServeConfig::from_flags(cli.serve).err().map(|e| e.to_string());
//! assert_eq!(
//!     errors.as_deref(),
//!     Some("invalid --log-format \"xml\": expected text or json\n--request-timeout must be positive")
//! );
//! ```

pub mod backend;
pub mod config;
pub mod controller;
pub mod delegated_auth;
mod error;
pub mod inert;
pub mod limits;
pub mod serve;

pub use backend::BackendFlags;
pub use config::{FlagErrors, ServeConfig};
pub use controller::ControllerFlags;
pub use error::OptionsError;
pub use limits::LimitFlags;
pub use serve::ServeFlags;

/// Parsing one option group on its own, as the tests of each group do.
#[cfg(test)]
pub(crate) mod testing {
    use clap::{Args, CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Only<T: Args + FromArgMatches> {
        #[command(flatten)]
        flags: T,
    }

    /// The group `T` from a command line without the program name.
    pub fn parse<T: Args + FromArgMatches>(args: &[&str]) -> Result<T, String> {
        let all = std::iter::once("promhpa").chain(args.iter().copied());
        Only::<T>::try_parse_from(all)
            .map(|o| o.flags)
            .map_err(|e| e.to_string())
    }

    /// The command of the group `T` alone, for its help.
    pub fn command<T: Args + FromArgMatches>() -> clap::Command {
        Only::<T>::command()
    }
}
