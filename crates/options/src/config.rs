//! `serve`'s flags checked before anything starts. Every problem the flags show by
//! themselves (values out of range, flags that go together or not at all, flags that mean
//! nothing without another) is found here, without reading a file or reaching a server, so
//! that all of them are reported at once as a usage error. What only the files, Prometheus or
//! the cluster can tell is found when serving starts.

use std::path::PathBuf;

use promhpa_apiserver::forward::ForwardOptions;
use promhpa_apiserver::server::{ResolvedTls, ServingLimits, TlsOptions};
use promhpa_kube::delegated::DelegatedAuthOptions;

use crate::delegated_auth::delegated_auth_options;
use crate::serve::forward_options;
use crate::ServeFlags;

/// The flag problems of a `serve` command line, one message each, each naming its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagErrors(Vec<String>);

impl FlagErrors {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for FlagErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// `serve`'s flags with what is worked out from them alone.
pub struct ServeConfig {
    pub flags: ServeFlags,
    /// The TLS versions and cipher suites served, and the warnings about what was asked for.
    pub serving_tls: ResolvedTls,
    /// `--tls-cert-file` and `--tls-private-key-file`; none: a self-signed pair in
    /// `--cert-dir`.
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    pub limits: ServingLimits,
    pub delegated_auth: DelegatedAuthOptions,
    pub forward: ForwardOptions,
}

impl ServeConfig {
    /// The configuration of `flags`, or every problem of them.
    pub fn from_flags(mut flags: ServeFlags) -> Result<ServeConfig, FlagErrors> {
        let mut errors = Vec::new();
        // 0 means the default, as in prometheus-adapter.
        if flags.discovery_interval.is_zero() {
            flags.discovery_interval = std::time::Duration::from_secs(600);
        }
        if flags.metrics_max_age.is_some_and(|d| d.is_zero()) {
            flags.metrics_max_age = None;
        }
        if let Some(max_age) = flags
            .metrics_max_age
            .filter(|m| *m < flags.metrics_relist_interval)
        {
            errors.push(format!(
                "--metrics-max-age ({}) must not be less than --metrics-relist-interval ({})",
                promhpa_core::duration::format_go_duration_ms(max_age.as_millis() as i64),
                promhpa_core::duration::format_go_duration_ms(
                    flags.metrics_relist_interval.as_millis() as i64
                ),
            ));
        }
        if flags.log_format != "text" && flags.log_format != "json" {
            errors.push(format!(
                "invalid --log-format \"{}\": expected text or json",
                flags.log_format
            ));
        }
        let serving_tls = TlsOptions {
            min_version: flags.tls_min_version,
            cipher_suites: flags.tls_cipher_suites.clone(),
            disable_http2: flags.disable_http2.unwrap_or(false),
        }
        .resolve()
        .map_err(|e| errors.push(e.to_string()))
        .ok();
        let serving_cert = match (&flags.tls_cert_file, &flags.tls_private_key_file) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                errors.push(
                    "--tls-cert-file and --tls-private-key-file must be given together".into(),
                );
                None
            }
        };
        let limits = flags.limits.limits().map_err(|e| errors.extend(e)).ok();
        let delegated_auth = delegated_auth_options(&flags)
            .map_err(|e| errors.extend(e))
            .ok();
        let forward = forward_options(&flags);
        errors.extend(forward.flag_errors().iter().map(|e| e.to_string()));
        errors.extend(flags.backend.flag_errors());
        if !flags.backend.demo
            && flags.backend.prometheus_url.is_some()
            && (flags.scrape_config.is_some() || !flags.backend.load_exposition.is_empty())
        {
            errors.push("--scrape-config and --load-exposition feed the embedded evaluator and cannot be combined with --prometheus-url".into());
        }
        if flags.retention.as_millis() == 0 {
            errors.push("--retention must be positive".into());
        }
        match (serving_tls, limits, delegated_auth) {
            (Some(serving_tls), Some(limits), Some(delegated_auth)) if errors.is_empty() => {
                Ok(ServeConfig {
                    flags,
                    serving_tls,
                    serving_cert,
                    limits,
                    delegated_auth,
                    forward,
                })
            }
            _ => Err(FlagErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse;

    fn config(args: &[&str]) -> Result<ServeConfig, FlagErrors> {
        ServeConfig::from_flags(parse(args).unwrap_or_else(|e| panic!("{e}")))
    }

    fn errors(args: &[&str]) -> Vec<String> {
        match config(args) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(str::to_string).collect(),
        }
    }

    #[test]
    fn independent_flag_errors_are_all_reported() {
        let e = errors(&[
            "--tls-cert-file=/etc/tls/tls.crt",
            "--forward-token-file=/var/run/forward/token",
        ]);
        assert_eq!(
            e,
            vec![
                "--tls-cert-file and --tls-private-key-file must be given together",
                "--forward-token-file given without --forward-unknown-external-metrics-to or --forward-unknown-custom-metrics-to: there is nothing to forward to",
            ]
        );
    }

    #[test]
    fn each_kind_of_problem_names_its_flags() {
        let e = errors(&[
            "--log-format=xml",
            "--request-timeout=0s",
            "--authentication-skip-lookup=maybe",
            "--prometheus-url=https://prometheus:9090",
            "--load-exposition=/tmp/metrics.prom",
            "--prometheus-auth-incluster",
            "--prometheus-ca-file=/etc/prometheus/ca.crt",
            "--prometheus-verb=PUT",
            "--retention=0s",
            "--tls-cipher-suites=TLS_RSA_WITH_AES_128_GCM_SHA256",
        ]);
        for says in [
            "invalid --log-format \"xml\"",
            "none of the --tls-cipher-suites can be offered",
            "--request-timeout must be positive",
            "invalid --authentication-skip-lookup \"maybe\"",
            "invalid --prometheus-verb \"PUT\"",
            "--prometheus-auth-incluster cannot be combined with --prometheus-ca-file",
            "cannot be combined with --prometheus-url",
            "--retention must be positive",
        ] {
            assert_eq!(
                e.iter().filter(|m| m.contains(says)).count(),
                1,
                "{says}: {e:#?}"
            );
        }
        assert_eq!(e.len(), 8, "{e:#?}");
    }

    #[test]
    fn files_are_not_read_and_demo_ignores_the_prometheus_flags() {
        let c = config(&[
            "--tls-cert-file=/nonexistent/tls.crt",
            "--tls-private-key-file=/nonexistent/tls.key",
            "--forward-unknown-external-metrics-to=https://keda.keda.svc",
            "--forward-ca-file=/nonexistent/ca.crt",
            "--prometheus-auth-config=/nonexistent/kubeconfig",
        ])
        .map_err(|e| e.to_string());
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.serving_cert,
            Some((
                PathBuf::from("/nonexistent/tls.crt"),
                PathBuf::from("/nonexistent/tls.key")
            ))
        );
        assert!(errors(&[
            "--demo",
            "--prometheus-url=https://prometheus:9090",
            "--load-exposition=/tmp/metrics.prom",
            "--prometheus-auth-incluster",
            "--prometheus-ca-file=/etc/prometheus/ca.crt",
        ])
        .is_empty());
    }
}
