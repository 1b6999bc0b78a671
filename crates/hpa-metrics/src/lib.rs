//! An HPA's metrics as `promhpa explain` and `promhpa simulate` read them:
//!
//! - [`fetch::HpaFetcher`]: each metric of an HPA now, asked of the metrics API `serve` runs
//!   (called in-process), per pod of the scale target where the controller reads per pod;
//! - [`lookup::TargetPodsLookup`]: the scale target's pods answered from what was already
//!   read of them, so explaining one HPA needs no cluster-wide pod cache;
//! - [`history`]: each metric of an HPA over time, as a range query rendered from the rule
//!   file the way `serve` renders the HPA's request, and the replica count beside it.
//!
//! The scale target itself is `promhpa_hpa::target`'s, read from a cluster by
//! `promhpa_kube::hpa`.

pub mod fetch;
pub mod history;
pub mod lookup;

pub use fetch::{Fetched, HpaFetcher};
pub use lookup::TargetPodsLookup;
