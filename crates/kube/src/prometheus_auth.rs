//! `--prometheus-auth-config` and `--prometheus-auth-incluster`: Prometheus credentials from a
//! kubeconfig file or from the pod's service account, taken as prometheus-adapter takes them
//! (a client-go transport built from the kubeconfig; the URL stays `--prometheus-url`).
//!
//! How they combine with the other Prometheus flags, where prometheus-adapter either refuses
//! or silently drops one side:
//! - both at once: refused, as prometheus-adapter refuses them;
//! - with `--prometheus-ca-file`, `--prometheus-client-tls-cert-file/key-file`: refused.
//!   prometheus-adapter would use the CA file and drop the kubeconfig or service account
//!   entirely (and it uses the client certificate flags only with a CA file);
//! - with `--prometheus-token-file`: the token file's token is sent in place of the
//!   kubeconfig's token or password or the service account token, as prometheus-adapter does;
//!   the TLS settings still come from the kubeconfig or the service account;
//! - with `--prometheus-user` (promhpa's own): refused; put username/password in the kubeconfig.
//!
//! ```
//! use promhpa_kube::prometheus_auth::{apply, PrometheusAuthError};
//! use promhpa_prom::PromConfig;
//! let mut config = PromConfig::new("https://prometheus:9090");
//! config.ca_file = Some("/etc/prometheus-ca/ca.crt".into());
//! let err = apply(None, true, &mut config).err();
//! assert!(matches!(err, Some(PrometheusAuthError::CaFile { .. })));
//! ```

use std::path::{Path, PathBuf};

use promhpa_prom::{InlinePem, PromConfig};

use crate::config::{KubeConfig, SERVICE_ACCOUNT_DIR};
use crate::KubeError;

/// Environment variable naming another directory to read the service account from (for tests;
/// a warning says when it is used).
pub const SERVICE_ACCOUNT_DIR_ENV: &str = "PROMHPA_SERVICE_ACCOUNT_DIR";

const KUBECONFIG_FLAG: &str = "--prometheus-auth-config";
const INCLUSTER_FLAG: &str = "--prometheus-auth-incluster";

/// Prometheus credentials that cannot be had from a kubeconfig or the service account, or
/// flags that cannot go with them; each message names the flags and the file.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusAuthError {
    #[error("--prometheus-auth-config and --prometheus-auth-incluster cannot be combined: may not use both in-cluster auth and an explicit kubeconfig at the same time")]
    BothSources,
    /// `from` is the flag the credentials come from.
    #[error("{from} cannot be combined with --prometheus-ca-file (prometheus-adapter would use the CA file and silently drop the {from} credentials); {}", ca_file_fix(from))]
    CaFile { from: &'static str },
    #[error("{from} cannot be combined with --prometheus-client-tls-cert-file/--prometheus-client-tls-key-file (prometheus-adapter ignores them without --prometheus-ca-file); put the client certificate in a kubeconfig's client-certificate/client-key and pass it with --prometheus-auth-config")]
    ClientCertificate { from: &'static str },
    #[error("{from} cannot be combined with --prometheus-user; put username/password in a kubeconfig's user and pass it with --prometheus-auth-config")]
    User { from: &'static str },
    #[error("--prometheus-auth-config: {0} (unable to construct auth configuration for connecting to Prometheus)")]
    Kubeconfig(KubeError),
    #[error("--prometheus-auth-config {}: specifying a root certificates file with the insecure flag is not allowed (certificate-authority and insecure-skip-tls-verify are both set)", .0.display())]
    CaWithInsecure(PathBuf),
    #[error("--prometheus-auth-config {}: client-key-data or client-key must be specified with client-certificate", .0.display())]
    CertificateWithoutKey(PathBuf),
    #[error("--prometheus-auth-config {}: client-certificate-data or client-certificate must be specified with client-key", .0.display())]
    KeyWithoutCertificate(PathBuf),
    #[error("--prometheus-auth-incluster: no service account token at {} (is a service account token mounted in this pod?)", .0.display())]
    NoServiceAccountToken(PathBuf),
}

/// How to send the service account's credentials, or the kubeconfig's, with a CA of one's own.
fn ca_file_fix(from: &str) -> &'static str {
    if from == KUBECONFIG_FLAG {
        "put the CA in the kubeconfig's certificate-authority instead"
    } else {
        "to send the service account token to a Prometheus with its own CA, pass --prometheus-token-file=/var/run/secrets/kubernetes.io/serviceaccount/token with --prometheus-ca-file instead"
    }
}

/// Where the service account's token and CA are mounted.
fn service_account_dir() -> PathBuf {
    match std::env::var_os(SERVICE_ACCOUNT_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            tracing::warn!(
                dir = %dir.display(),
                "--prometheus-auth-incluster: reading the service account from {SERVICE_ACCOUNT_DIR_ENV} instead of {SERVICE_ACCOUNT_DIR}"
            );
            dir
        }
        None => PathBuf::from(SERVICE_ACCOUNT_DIR),
    }
}

/// Applies `--prometheus-auth-config` (`kubeconfig`; an empty path is none, as with pflag)
/// and `--prometheus-auth-incluster` (`incluster`) to `config`, which already holds the other
/// Prometheus flags: `--prometheus-ca-file` as `ca_file`, the client certificate flags as
/// `client_cert_file`/`client_key_file`, `--prometheus-token-file` as `token_file` and
/// `--prometheus-user` as `basic_auth`.
pub fn apply(
    kubeconfig: Option<&Path>,
    incluster: bool,
    config: &mut PromConfig,
) -> Result<(), PrometheusAuthError> {
    if let Some(e) = flag_errors(kubeconfig, incluster, config)
        .into_iter()
        .next()
    {
        return Err(e);
    }
    match kubeconfig.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => from_kubeconfig(path, config),
        None if incluster => from_service_account(&service_account_dir(), config),
        None => Ok(()),
    }
}

/// Every way `--prometheus-auth-config` (`kubeconfig`) and `--prometheus-auth-incluster`
/// (`incluster`) go against each other and the other Prometheus flags in `config` (as
/// [`apply`] takes them), found without reading a file. With both given, the other flags are
/// named against `--prometheus-auth-config`.
pub fn flag_errors(
    kubeconfig: Option<&Path>,
    incluster: bool,
    config: &PromConfig,
) -> Vec<PrometheusAuthError> {
    let kubeconfig = kubeconfig.filter(|p| !p.as_os_str().is_empty());
    let mut errors = Vec::new();
    let from = match (kubeconfig, incluster) {
        (None, false) => return errors,
        (Some(_), true) => {
            errors.push(PrometheusAuthError::BothSources);
            KUBECONFIG_FLAG
        }
        (Some(_), false) => KUBECONFIG_FLAG,
        (None, true) => INCLUSTER_FLAG,
    };
    if config.ca_file.is_some() {
        errors.push(PrometheusAuthError::CaFile { from });
    }
    if config.client_cert_file.is_some() || config.client_key_file.is_some() {
        errors.push(PrometheusAuthError::ClientCertificate { from });
    }
    if config.basic_auth.is_some() {
        errors.push(PrometheusAuthError::User { from });
    }
    errors
}

/// The current context's user and cluster TLS settings of a kubeconfig file.
fn from_kubeconfig(path: &Path, config: &mut PromConfig) -> Result<(), PrometheusAuthError> {
    let kc =
        KubeConfig::from_kubeconfig_file(path, None).map_err(PrometheusAuthError::Kubeconfig)?;
    let origin = |what: &str| format!("{what} of --prometheus-auth-config {}", path.display());
    if kc.insecure && kc.ca_pem.is_some() {
        return Err(PrometheusAuthError::CaWithInsecure(path.to_path_buf()));
    }
    if let Some(ca) = kc.ca_pem {
        config.ca_pem = Some(InlinePem {
            source: origin("certificate-authority"),
            pem: ca,
        });
    }
    if kc.insecure {
        tracing::warn!(
            kubeconfig = %path.display(),
            "--prometheus-auth-config sets insecure-skip-tls-verify: Prometheus' certificate is not verified"
        );
        config.insecure_skip_verify = true;
    }
    config.tls_server_name = kc.tls_server_name;
    match (kc.client_cert_pem, kc.client_key_pem) {
        (Some(cert), Some(key)) => {
            config.client_identity_pem = Some((
                InlinePem {
                    source: origin("client-certificate"),
                    pem: cert,
                },
                InlinePem {
                    source: origin("client-key"),
                    pem: key,
                },
            ));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(PrometheusAuthError::CertificateWithoutKey(
                path.to_path_buf(),
            ))
        }
        (None, Some(_)) => {
            return Err(PrometheusAuthError::KeyWithoutCertificate(
                path.to_path_buf(),
            ))
        }
    }
    let has_credentials = kc.token.is_some() || kc.token_file.is_some() || kc.username.is_some();
    if config.token_file.is_some() {
        if has_credentials {
            tracing::warn!(
                kubeconfig = %path.display(),
                "--prometheus-token-file is sent instead of the token or password of --prometheus-auth-config's user, as prometheus-adapter does"
            );
        }
        return Ok(());
    }
    // As in client-go, a tokenFile (re-read as it changes) wins over a token.
    config.token_file = kc.token_file;
    config.bearer_token = kc.token;
    if let Some(user) = kc.username {
        config.basic_auth = Some((user, kc.password.unwrap_or_default()));
    }
    if kc.server != config.url.trim_end_matches('/') {
        tracing::info!(
            kubeconfig = %path.display(),
            server = %kc.server,
            "--prometheus-auth-config: using its current context's credentials; its server is not used, queries go to --prometheus-url"
        );
    }
    Ok(())
}

/// The service account token (re-read as it rotates) and CA mounted in `dir`.
fn from_service_account(dir: &Path, config: &mut PromConfig) -> Result<(), PrometheusAuthError> {
    let token = dir.join("token");
    if !token.is_file() {
        return Err(PrometheusAuthError::NoServiceAccountToken(token));
    }
    if config.token_file.is_some() {
        tracing::warn!(
            "--prometheus-token-file is sent instead of the service account token of --prometheus-auth-incluster, as prometheus-adapter does"
        );
    } else {
        config.token_file = Some(token);
    }
    let ca = dir.join("ca.crt");
    match std::fs::read(&ca) {
        Ok(pem) => {
            config.ca_pem = Some(InlinePem {
                source: format!("service account CA {}", ca.display()),
                pem,
            })
        }
        // client-go's in-cluster configuration goes on with the system roots then.
        Err(e) => tracing::warn!(
            "--prometheus-auth-incluster: cannot read the service account CA {}: {e}; verifying Prometheus with the system's root certificates",
            ca.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://prometheus:9090";

    /// The client settings of `--prometheus-url=URL`, the other flags as `flags` sets them,
    /// and the kubeconfig or service account.
    fn config(
        kubeconfig: Option<&Path>,
        incluster: bool,
        flags: impl FnOnce(&mut PromConfig),
    ) -> Result<PromConfig, PrometheusAuthError> {
        let mut c = PromConfig::new(URL);
        flags(&mut c);
        apply(kubeconfig, incluster, &mut c).map(|()| c)
    }

    fn err(r: Result<PromConfig, PrometheusAuthError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    fn kubeconfig(user: &str, cluster: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: prom\nclusters:\n- name: prom\n  cluster:\n    server: https://kubernetes.default.svc\n{cluster}contexts:\n- name: prom\n  context: {{cluster: prom, user: adapter}}\nusers:\n- name: adapter\n  user:\n{user}"
        )
    }

    #[test]
    fn kubeconfig_user_and_cluster_become_the_client_settings() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let token = write(dir.path(), "token", "from-file\n");
        let k = write(
            dir.path(),
            "k1",
            &kubeconfig(
                &format!("    token: fixed\n    tokenFile: {}\n", token.display()),
                "    certificate-authority-data: Q0E=\n    tls-server-name: prometheus.monitoring.svc\n",
            ),
        );
        let c = config(Some(&k), false, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.url, URL);
        assert_eq!(
            c.ca_pem.as_ref().map(|p| p.pem.clone()),
            Some(b"CA".to_vec())
        );
        assert!(c.ca_pem.as_ref().is_some_and(|p| p.source.contains("k1")));
        assert_eq!(
            c.tls_server_name.as_deref(),
            Some("prometheus.monitoring.svc")
        );
        assert_eq!(c.token_file, Some(token.clone()));
        assert_eq!(c.bearer_token.as_deref(), Some("fixed"));
        assert!(!c.insecure_skip_verify);

        let k = write(
            dir.path(),
            "k2",
            &kubeconfig(
                "    username: adapter\n    password: pw\n",
                "    insecure-skip-tls-verify: true\n",
            ),
        );
        let c = config(Some(&k), false, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.basic_auth, Some(("adapter".into(), "pw".into())));
        assert!(c.insecure_skip_verify);
        assert!(c.ca_pem.is_none());

        // --prometheus-token-file wins over the kubeconfig's password.
        let flag_token = write(dir.path(), "flag-token", "t");
        let c = config(Some(&k), false, |c| c.token_file = Some(flag_token.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.token_file, Some(flag_token));
        assert_eq!(c.basic_auth, None);
    }

    #[test]
    fn combinations_prometheus_adapter_would_drop_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let k = write(dir.path(), "k", &kubeconfig("    token: t\n", ""));
        let k = Some(k.as_path());
        let e = err(config(k, true, |_| {}));
        assert!(e.contains("cannot be combined"), "{e}");
        let e = err(config(k, false, |c| c.ca_file = Some("/etc/ca.crt".into())));
        assert!(
            e.contains("--prometheus-auth-config cannot be combined with --prometheus-ca-file"),
            "{e}"
        );
        let e = err(config(None, true, |c| c.ca_file = Some("/ca".into())));
        assert!(
            e.contains("--prometheus-token-file=/var/run/secrets"),
            "{e}"
        );
        let e = err(config(k, false, |c| c.client_cert_file = Some("/c".into())));
        assert!(e.contains("--prometheus-client-tls-cert-file"), "{e}");
        let e = err(config(k, false, |c| {
            c.basic_auth = Some(("u".into(), String::new()))
        }));
        assert!(e.contains("--prometheus-user"), "{e}");
        // An empty value is no kubeconfig, as in prometheus-adapter.
        assert!(config(Some(Path::new("")), false, |c| c.ca_file =
            Some("/ca".into()))
        .is_ok());
    }

    #[test]
    fn unsupported_kubeconfig_settings_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (user, cluster, named) in [
            ("    exec: {command: aws}\n", "", "users[].user.exec"),
            (
                "    auth-provider: {name: gcp}\n",
                "",
                "users[].user.auth-provider",
            ),
            ("    token: t\n    as: admin\n", "", "users[].user.as"),
            (
                "    token: t\n",
                "    proxy-url: http://proxy:3128\n",
                "clusters[].cluster.proxy-url",
            ),
        ] {
            let k = write(dir.path(), "k", &kubeconfig(user, cluster));
            let e = err(config(Some(&k), false, |_| {}));
            assert!(e.contains(named), "{e}");
            assert!(e.contains("--prometheus-auth-config"), "{e}");
        }
        let k = write(
            dir.path(),
            "k",
            &kubeconfig("    client-certificate-data: Y2VydA==\n", ""),
        );
        let e = err(config(Some(&k), false, |_| {}));
        assert!(e.contains("client-key"), "{e}");
    }

    #[test]
    fn every_conflict_of_the_flags_is_listed_without_reading_the_kubeconfig() {
        let mut c = PromConfig::new(URL);
        c.ca_file = Some("/etc/prometheus-ca/ca.crt".into());
        c.basic_auth = Some(("adapter".into(), String::new()));
        let missing = Path::new("/nonexistent/kubeconfig");
        let errors = flag_errors(Some(missing), true, &c);
        assert!(
            matches!(
                errors.as_slice(),
                [
                    PrometheusAuthError::BothSources,
                    PrometheusAuthError::CaFile {
                        from: KUBECONFIG_FLAG
                    },
                    PrometheusAuthError::User {
                        from: KUBECONFIG_FLAG
                    },
                ]
            ),
            "{errors:?}"
        );
        assert!(flag_errors(Some(missing), false, &PromConfig::new(URL)).is_empty());
        assert!(flag_errors(Some(Path::new("")), false, &c).is_empty());
    }

    #[test]
    fn service_account_token_and_ca() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut c = PromConfig::new(URL);
        let e = from_service_account(dir.path(), &mut c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no service account token at"), "{e}");
        let token = write(dir.path(), "token", "sa-token");
        // Without ca.crt the system roots are used, as client-go does.
        from_service_account(dir.path(), &mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.token_file, Some(token.clone()));
        assert!(c.ca_pem.is_none());
        write(dir.path(), "ca.crt", "CA");
        let mut c = PromConfig::new(URL);
        from_service_account(dir.path(), &mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ca_pem.map(|p| p.pem), Some(b"CA".to_vec()));
        // --prometheus-token-file wins over the service account token.
        let mut c = PromConfig::new(URL);
        c.token_file = Some("/etc/prom/token".into());
        from_service_account(dir.path(), &mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.token_file, Some(PathBuf::from("/etc/prom/token")));
    }
}
