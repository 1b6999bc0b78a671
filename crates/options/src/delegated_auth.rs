//! Delegated authentication and authorization from the flags Kubernetes' servers (and
//! prometheus-adapter) take for them: `--requestheader-*`, `--client-ca-file`,
//! `--authentication-*`, `--authorization-*` and `--kubeconfig`.

use std::time::Duration;

use promhpa_auth::AuthnFlags;
use promhpa_kube::delegated::DelegatedAuthOptions;

use crate::ServeFlags;

fn flag_bool(name: &str, value: &Option<String>, errors: &mut Vec<String>) -> bool {
    match value.as_deref() {
        None => false,
        Some(v) => promhpa_core::gofmt::parse_go_bool(v).unwrap_or_else(|_| {
            errors.push(format!("invalid --{name} \"{v}\": expected true or false"));
            false
        }),
    }
}

fn flag_ttl(name: &str, value: &Option<String>, errors: &mut Vec<String>) -> Duration {
    let default = Duration::from_secs(10);
    match value {
        None => default,
        Some(v) => promhpa_core::duration::parse_go_duration(v).unwrap_or_else(|e| {
            errors.push(format!("invalid --{name} \"{v}\": {e}"));
            default
        }),
    }
}

/// The delegated-auth settings from prometheus-adapter's (Kubernetes') flags, or every flag
/// whose value is not one.
pub fn delegated_auth_options(flags: &ServeFlags) -> Result<DelegatedAuthOptions, Vec<String>> {
    let mut authn = AuthnFlags {
        client_ca_file: flags.client_ca_file.clone(),
        requestheader_client_ca_file: flags.requestheader_client_ca_file.clone(),
        requestheader_allowed_names: flags.requestheader_allowed_names.clone(),
        ..AuthnFlags::default()
    };
    if !flags.requestheader_username_headers.is_empty() {
        authn.requestheader_username_headers = flags.requestheader_username_headers.clone();
    }
    if !flags.requestheader_group_headers.is_empty() {
        authn.requestheader_group_headers = flags.requestheader_group_headers.clone();
    }
    if !flags.requestheader_extra_headers_prefix.is_empty() {
        authn.requestheader_extra_headers_prefix = flags.requestheader_extra_headers_prefix.clone();
    }
    if !flags.requestheader_uid_headers.is_empty() {
        authn.requestheader_uid_headers = flags.requestheader_uid_headers.clone();
    }
    let mut errors = Vec::new();
    let mut options = DelegatedAuthOptions {
        authn,
        authentication_kubeconfig: flags
            .authentication_kubeconfig
            .clone()
            .or_else(|| flags.kubeconfig.clone()),
        authorization_kubeconfig: flags
            .authorization_kubeconfig
            .clone()
            .or_else(|| flags.kubeconfig.clone()),
        token_cache_ttl: flag_ttl(
            "authentication-token-webhook-cache-ttl",
            &flags.authentication_token_webhook_cache_ttl,
            &mut errors,
        ),
        authorized_ttl: flag_ttl(
            "authorization-webhook-cache-authorized-ttl",
            &flags.authorization_webhook_cache_authorized_ttl,
            &mut errors,
        ),
        unauthorized_ttl: flag_ttl(
            "authorization-webhook-cache-unauthorized-ttl",
            &flags.authorization_webhook_cache_unauthorized_ttl,
            &mut errors,
        ),
        skip_lookup: flag_bool(
            "authentication-skip-lookup",
            &flags.authentication_skip_lookup,
            &mut errors,
        ),
        tolerate_lookup_failure: flag_bool(
            "authentication-tolerate-lookup-failure",
            &flags.authentication_tolerate_lookup_failure,
            &mut errors,
        ),
        anonymous: flags.anonymous_auth.is_none()
            || flag_bool("anonymous-auth", &flags.anonymous_auth, &mut errors),
        ..DelegatedAuthOptions::default()
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    if !flags.authorization_always_allow_paths.is_empty() {
        options.always_allow_paths = flags.authorization_always_allow_paths.clone();
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse;
    use std::path::Path;

    fn flags(args: &[&str]) -> ServeFlags {
        parse(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn adapter_auth_flags_become_delegated_auth_options() {
        let f = flags(&[
            "--requestheader-client-ca-file=/ca/front-proxy.crt",
            "--requestheader-allowed-names=front-proxy-client,aggregator",
            "--requestheader-username-headers=X-Remote-User",
            "--client-ca-file=/ca/client.crt",
            "--authentication-skip-lookup",
            "--authorization-webhook-cache-authorized-ttl=30s",
            "--authorization-always-allow-paths=/healthz,/metrics",
            "--kubeconfig=/etc/kube/config",
        ]);
        let o = delegated_auth_options(&f).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            o.authn.requestheader_allowed_names,
            vec!["front-proxy-client", "aggregator"]
        );
        assert_eq!(
            o.authn.requestheader_username_headers,
            vec!["X-Remote-User"]
        );
        assert_eq!(o.authn.requestheader_group_headers, vec!["x-remote-group"]);
        assert!(o.skip_lookup);
        assert!(!o.tolerate_lookup_failure);
        // Requests without credentials are authorized as system:anonymous unless told not.
        assert!(o.anonymous);
        let strict = delegated_auth_options(&flags(&["--anonymous-auth=false"]))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!strict.anonymous);
        assert!(delegated_auth_options(&flags(&["--anonymous-auth=maybe"])).is_err());
        assert_eq!(o.authorized_ttl, Duration::from_secs(30));
        assert_eq!(o.unauthorized_ttl, Duration::from_secs(10));
        assert_eq!(o.always_allow_paths, vec!["/healthz", "/metrics"]);
        assert_eq!(
            o.authorization_kubeconfig.as_deref(),
            Some(Path::new("/etc/kube/config"))
        );
    }

    #[test]
    fn bad_flag_values_are_errors() {
        let f = flags(&[
            "--authentication-skip-lookup=maybe",
            "--authentication-token-webhook-cache-ttl=soon",
        ]);
        let e = delegated_auth_options(&f).err().unwrap_or_default();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e[1],
            "invalid --authentication-skip-lookup \"maybe\": expected true or false"
        );
        assert!(
            e[0].starts_with("invalid --authentication-token-webhook-cache-ttl \"soon\""),
            "{e:?}"
        );
    }
}
