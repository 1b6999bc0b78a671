//! The HPA controller's settings, for the commands that run its algorithm (`explain`,
//! `simulate`): kube-controller-manager's `--horizontal-pod-autoscaler-*` flags under short
//! names, and how a target at zero replicas is treated.

use std::time::Duration;

use promhpa_core::duration::parse_go_duration;
use promhpa_hpa::{ControllerConfig, ZeroReplicas};

/// A tolerance: a finite number, 0 or more, as the controller's own flag and an HPA's
/// `behavior.*.tolerance` must be.
fn non_negative_ratio(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("must be 0 or more, got {v}")),
        Err(_) => Err(format!("expected a number such as 0.1, got {s:?}")),
    }
}

/// The controller settings that change a recommendation.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerFlags {
    /// --horizontal-pod-autoscaler-tolerance: no scaling while the usage ratio is within
    /// this of 1.
    #[arg(long, default_value_t = 0.1, value_parser = non_negative_ratio, value_name = "RATIO")]
    pub tolerance: f64,

    /// --horizontal-pod-autoscaler-downscale-stabilization: the highest recommendation of
    /// this window is followed when scaling down.
    #[arg(long, default_value = "5m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub downscale_stabilization: Duration,

    /// How the controller treats a target at zero replicas: `condition` (Kubernetes 1.36+
    /// with HPAScaleToZero, the 1.37 default: only a target the HPA scaled to zero itself,
    /// marked by its ScaledToZero condition, is autoscaled from zero), `gate-off` (1.36+
    /// without the gate) or `legacy` (up to 1.35: minReplicas 0 autoscales from zero).
    #[arg(long, default_value = "condition", value_name = "MODE")]
    pub zero_replicas: ZeroReplicas,
}

impl ControllerFlags {
    /// The controller's configuration with these settings, the others at their defaults.
    pub fn config(&self) -> ControllerConfig {
        ControllerConfig {
            tolerance: self.tolerance,
            downscale_stabilization_ms: i64::try_from(self.downscale_stabilization.as_millis())
                .unwrap_or(i64::MAX),
            zero_replicas: self.zero_replicas,
            ..ControllerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse;

    #[test]
    fn the_flags_become_the_controller_configuration() {
        let c = parse::<ControllerFlags>(&[])
            .unwrap_or_else(|e| panic!("{e}"))
            .config();
        assert_eq!(c.tolerance, 0.1);
        assert_eq!(c.downscale_stabilization_ms, 300_000);
        assert_eq!(c.zero_replicas, ZeroReplicas::default());
        let c = parse::<ControllerFlags>(&[
            "--tolerance=0.05",
            "--downscale-stabilization=1m30s",
            "--zero-replicas=legacy",
        ])
        .unwrap_or_else(|e| panic!("{e}"))
        .config();
        assert_eq!(c.tolerance, 0.05);
        for bad in ["--tolerance=-1", "--tolerance=NaN", "--tolerance=ten"] {
            assert!(parse::<ControllerFlags>(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(c.downscale_stabilization_ms, 90_000);
        assert_eq!(c.zero_replicas, ZeroReplicas::Legacy);
        let e = parse::<ControllerFlags>(&["--downscale-stabilization=soon"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("--downscale-stabilization"), "{e}");
    }
}
