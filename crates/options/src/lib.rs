//! promhpa's command-line options, in groups as Kubernetes' servers keep theirs: each group
//! declares its flags (prometheus-adapter's names and meanings, and promhpa's own), checks
//! their values, and builds what they describe. The binary puts the groups on its
//! subcommands and wires what they build together.
//!
//! - [`BackendFlags`]: where values come from (Prometheus or the embedded evaluator), the rule
//!   file, and the objects label selectors are matched against; shared by `serve`, `explain`
//!   and `simulate`.
//! - [`LimitFlags`]: timeouts and caps on client connections and requests.

pub mod backend;
pub mod limits;

pub use backend::BackendFlags;
pub use limits::LimitFlags;
