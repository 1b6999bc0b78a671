//! A pod's lifecycle phase, read the same way wherever a pod object is read: the HPA tools'
//! replica calculation, and which pods metrics.k8s.io reports.

use serde::Serialize;

/// Pod lifecycle phase (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// The phase named as the API spells it, or `None` for a name the API does not have.
    pub fn parse(name: &str) -> Option<PodPhase> {
        Some(match name {
            "Pending" => PodPhase::Pending,
            "Running" => PodPhase::Running,
            "Succeeded" => PodPhase::Succeeded,
            "Failed" => PodPhase::Failed,
            "Unknown" => PodPhase::Unknown,
            _ => return None,
        })
    }

    /// The phase of a pod with this `status`. A pod object without a status (as objects
    /// written by hand usually are) is taken to be running; a status without a phase, or with
    /// one the API does not have, is `Unknown`, as the API server reports such a pod.
    #[cfg(feature = "yaml")]
    pub fn of_status(status: Option<&serde_json::Value>) -> PodPhase {
        match status.filter(|s| !s.is_null()) {
            None => PodPhase::Running,
            Some(status) => status
                .get("phase")
                .and_then(serde_json::Value::as_str)
                .and_then(PodPhase::parse)
                .unwrap_or(PodPhase::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_api_s() {
        for (name, phase) in [
            ("Pending", PodPhase::Pending),
            ("Running", PodPhase::Running),
            ("Succeeded", PodPhase::Succeeded),
            ("Failed", PodPhase::Failed),
            ("Unknown", PodPhase::Unknown),
        ] {
            assert_eq!(PodPhase::parse(name), Some(phase));
        }
        assert_eq!(PodPhase::parse("running"), None);
        assert_eq!(PodPhase::parse(""), None);
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn without_a_status_a_pod_runs_and_with_one_its_phase_says() {
        use serde_json::json;
        assert_eq!(PodPhase::of_status(None), PodPhase::Running);
        assert_eq!(
            PodPhase::of_status(Some(&serde_json::Value::Null)),
            PodPhase::Running
        );
        assert_eq!(
            PodPhase::of_status(Some(&json!({"phase": "Pending"}))),
            PodPhase::Pending
        );
        assert_eq!(
            PodPhase::of_status(Some(&json!({"phase": "Running"}))),
            PodPhase::Running
        );
        assert_eq!(PodPhase::of_status(Some(&json!({}))), PodPhase::Unknown);
        assert_eq!(
            PodPhase::of_status(Some(&json!({"phase": "Sleeping"}))),
            PodPhase::Unknown
        );
        assert_eq!(
            PodPhase::of_status(Some(&json!({"phase": 3}))),
            PodPhase::Unknown
        );
    }
}
