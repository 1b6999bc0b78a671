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

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid yaml in {context}: {source}")]
    Yaml {
        context: String,
        #[source]
        /// The YAML error, or the error of the object the YAML holds.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid case {id}: {message}")]
    Case { id: String, message: String },
    #[error("invalid input: {0}")]
    Input(String),
}
