//! The Kubernetes HorizontalPodAutoscaler's replica recommendation (autoscaling/v2), as
//! kube-controller-manager computes it, in pure functions: per-metric proposals
//! ([`calc`]), one reconcile with legacy or `behavior` normalization ([`controller`]),
//! the conformance-case format ([`conformance`]), replaying history ([`simulate`]),
//! explaining a decision ([`explain`]), reading pods and scale targets from Kubernetes
//! objects ([`objects`]), and an HPA's scale target with its pods and the rules the controller
//! checks its selector by ([`target`]).

pub mod calc;
pub mod conformance;
pub mod controller;
pub mod explain;
pub mod objects;
pub mod simulate;
pub mod spec;
pub mod target;

pub use calc::{
    ConditionStatus, ControllerConfig, Observed, Pod, PodPhase, Proposal, ZeroReplicas,
};
pub use controller::{reconcile, ControllerState, MetricsInput, Outcome, TickInput};
pub use spec::{HorizontalPodAutoscaler, HpaSpec};

/// The most replicas `explain` and `simulate` model: each is a pod of its own, and a
/// cluster holds at most about 150,000 pods.
pub const MAX_SIMULATED_REPLICAS: i32 = 100_000;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// YAML that does not parse.
    #[error("invalid yaml in {context}: {cause}")]
    Yaml {
        context: String,
        /// Part of the message, not a source: printed once.
        cause: String,
    },
    /// A document that parses but is not a valid object: the field and what is wrong.
    #[error("invalid {kind} in {context}: {field}: {cause}")]
    Object {
        kind: &'static str,
        context: String,
        /// Where in the object, e.g. `spec.metrics[0].pods.target.averageValue`.
        field: String,
        cause: String,
    },
    #[error("invalid case {id}: {message}")]
    Case { id: String, message: String },
    #[error("invalid input: {0}")]
    Input(String),
}
