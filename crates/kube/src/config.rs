//! A kubeconfig context's TLS settings and static credentials, read with kube's kubeconfig
//! parser, for HTTP clients other than the Kubernetes one (Prometheus through
//! `--prometheus-auth-config`). Settings such a client cannot honour (exec and auth-provider
//! plugins, impersonation, proxies) are errors naming them.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Kubeconfig};
use secrecy::{ExposeSecret, SecretString};

use crate::error::error_chain;
use crate::KubeError;

/// Connection settings for one API server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeConfig {
    /// Base URL, e.g. `https://10.96.0.1:443`.
    pub server: String,
    /// PEM CA bundle that signs the server's certificate; `None` uses the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip server certificate verification (`insecure-skip-tls-verify`).
    pub insecure: bool,
    /// Name to verify the server certificate against instead of the URL's host.
    pub tls_server_name: Option<String>,
    /// A static bearer token.
    pub token: Option<String>,
    /// A file holding a bearer token, re-read as it rotates (projected service account tokens).
    pub token_file: Option<PathBuf>,
    /// PEM client certificate and key.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// HTTP basic auth (`username`/`password`), used when there is no bearer token.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The default namespace of the context.
    pub namespace: Option<String>,
}

pub use crate::client::SERVICE_ACCOUNT_DIR;

impl KubeConfig {
    /// Reads a kubeconfig file, using `context` or its `current-context`.
    pub fn from_kubeconfig_file(
        path: &Path,
        context: Option<&str>,
    ) -> Result<KubeConfig, KubeError> {
        let err = |message: String| KubeError::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let file = Kubeconfig::read_from(path).map_err(|e| err(error_chain(&e)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        KubeConfig::from_parsed(file, base, context).map_err(err)
    }

    /// Parses kubeconfig text; relative file references are resolved against `base`.
    pub fn from_kubeconfig(
        text: &str,
        base: &Path,
        context: Option<&str>,
    ) -> Result<KubeConfig, String> {
        let file = Kubeconfig::from_yaml(text).map_err(|e| error_chain(&e))?;
        KubeConfig::from_parsed(file, base, context)
    }

    fn from_parsed(
        file: Kubeconfig,
        base: &Path,
        context: Option<&str>,
    ) -> Result<KubeConfig, String> {
        let context_name = context
            .map(str::to_string)
            .or(file.current_context.clone())
            .filter(|c| !c.is_empty())
            .ok_or("no context selected and no current-context set")?;
        let ctx = file
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.clone())
            .ok_or_else(|| format!("context {context_name:?} not found"))?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| {
                format!(
                    "cluster {:?} of context {context_name:?} not found",
                    ctx.cluster
                )
            })?;
        let user = match ctx.user.as_deref() {
            Some(name) if !name.is_empty() => file
                .auth_infos
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.auth_info.clone().unwrap_or_default())
                .ok_or_else(|| format!("user {name:?} of context {context_name:?} not found"))?,
            _ => AuthInfo::default(),
        };
        let unsupported = unsupported_settings(&user, &cluster);
        if !unsupported.is_empty() {
            return Err(format!(
                "context {context_name:?} uses {}, which promhpa does not support; use a token, tokenFile, username/password or a client certificate",
                unsupported.join(", ")
            ));
        }
        let secret = |s: &Option<SecretString>| {
            s.as_ref()
                .map(|s| s.expose_secret().to_string())
                .filter(|s| !s.is_empty())
        };
        let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let token = secret(&user.token);
        let password = secret(&user.password);
        let username = set(&user.username);
        let has_token = token.is_some() || set(&user.token_file).is_some();
        if has_token && (username.is_some() || password.is_some()) {
            return Err(format!(
                "more than one authentication method found for the user of context {context_name:?}: token and username/password; only one is allowed"
            ));
        }
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let data_or_file = |data: Option<String>,
                            file: &Option<String>,
                            what: &str|
         -> Result<Option<Vec<u8>>, String> {
            if let Some(data) = data.filter(|d| !d.is_empty()) {
                let cleaned: String = data.split_whitespace().collect();
                return base64::engine::general_purpose::STANDARD
                    .decode(cleaned)
                    .map(Some)
                    .map_err(|e| format!("{what}-data is not base64: {e}"));
            }
            match file.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => std::fs::read(resolve(f))
                    .map(Some)
                    .map_err(|e| format!("reading {what} {f}: {e}")),
                None => Ok(None),
            }
        };
        let server = set(&cluster.server)
            .ok_or_else(|| format!("cluster {:?} has no server", ctx.cluster))?;
        Ok(KubeConfig {
            server: server.trim_end_matches('/').to_string(),
            ca_pem: data_or_file(
                cluster.certificate_authority_data.clone(),
                &cluster.certificate_authority,
                "certificate-authority",
            )?,
            insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
            tls_server_name: set(&cluster.tls_server_name),
            token,
            token_file: set(&user.token_file).as_deref().map(resolve),
            client_cert_pem: data_or_file(
                user.client_certificate_data.clone(),
                &user.client_certificate,
                "client-certificate",
            )?,
            client_key_pem: data_or_file(
                secret(&user.client_key_data),
                &user.client_key,
                "client-key",
            )?,
            username,
            password,
            namespace: set(&ctx.namespace),
        })
    }
}

/// The settings of a kubeconfig user or cluster that change how requests are made and that
/// a client built from [`KubeConfig`] cannot honour, by their kubeconfig names.
fn unsupported_settings(user: &AuthInfo, cluster: &Cluster) -> Vec<&'static str> {
    let mut found = Vec::new();
    if user.exec.is_some() {
        found.push("an exec credential plugin (users[].user.exec)");
    }
    if user.auth_provider.is_some() {
        found.push("an auth-provider plugin (users[].user.auth-provider)");
    }
    for (set, name) in [
        (
            user.impersonate.is_some(),
            "impersonation (users[].user.as)",
        ),
        (
            user.impersonate_uid.is_some(),
            "impersonation (users[].user.as-uid)",
        ),
        (
            user.impersonate_groups.is_some(),
            "impersonation (users[].user.as-groups)",
        ),
        (
            user.impersonate_user_extra.is_some(),
            "impersonation (users[].user.as-user-extra)",
        ),
    ] {
        if set {
            found.push(name);
        }
    }
    if cluster.proxy_url.as_deref().is_some_and(|p| !p.is_empty()) {
        found.push("a proxy (clusters[].cluster.proxy-url)");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: kind-dev
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:39211/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
- name: prod
  cluster:
    server: https://prod.example.com
    certificate-authority: certs/prod-ca.crt
contexts:
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev, namespace: shop}
- name: prod
  context: {cluster: prod, user: robot}
- name: sso
  context: {cluster: prod, user: sso}
users:
- name: kind-dev
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
- name: robot
  user:
    tokenFile: tokens/robot
- name: sso
  user:
    exec: {command: kubelogin}
"#;

    #[test]
    fn kubeconfig_current_context_with_inline_data() {
        let c = KubeConfig::from_kubeconfig(KUBECONFIG, Path::new("/etc/kube"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server, "https://127.0.0.1:39211");
        assert_eq!(
            c.ca_pem.as_deref(),
            Some(&b"-----BEGIN CERTIFICATE-----\n"[..])
        );
        assert_eq!(c.client_cert_pem.as_deref(), Some(&b"cert"[..]));
        assert_eq!(c.client_key_pem.as_deref(), Some(&b"key"[..]));
        assert_eq!(c.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn kubeconfig_files_are_relative_to_the_kubeconfig() {
        let err =
            KubeConfig::from_kubeconfig(KUBECONFIG, Path::new("/nonexistent/kube"), Some("prod"))
                .err()
                .unwrap_or_default();
        assert!(err.contains("certs/prod-ca.crt"), "{err}");
        let dir = std::env::temp_dir().join(format!("promhpa-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("certs")).unwrap_or_default();
        std::fs::write(dir.join("certs/prod-ca.crt"), "CA").unwrap_or_default();
        let c = KubeConfig::from_kubeconfig(KUBECONFIG, &dir, Some("prod"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(c.token_file, Some(dir.join("tokens/robot")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unsupported_and_missing_entries_are_errors() {
        let err = KubeConfig::from_kubeconfig(KUBECONFIG, Path::new("/"), Some("sso"))
            .err()
            .unwrap_or_default();
        assert!(err.contains("exec"), "{err}");
        let err = KubeConfig::from_kubeconfig(KUBECONFIG, Path::new("/"), Some("nope"))
            .err()
            .unwrap_or_default();
        assert!(err.contains("\"nope\" not found"), "{err}");
    }

    #[test]
    fn basic_auth_and_settings_that_cannot_be_honoured() {
        let kubeconfig = |user: &str, cluster_extra: &str| {
            format!(
                "current-context: c\nclusters:\n- name: c\n  cluster:\n    server: https://prom:9090\n{cluster_extra}contexts:\n- name: c\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n{user}"
            )
        };
        let c = KubeConfig::from_kubeconfig(
            &kubeconfig("    username: adapter\n    password: s3cret\n", ""),
            Path::new("/"),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.username.as_deref(), Some("adapter"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(c.token, None);

        let err = KubeConfig::from_kubeconfig(
            &kubeconfig("    token: t\n    username: adapter\n    password: p\n", ""),
            Path::new("/"),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("more than one authentication method"), "{err}");

        let err = KubeConfig::from_kubeconfig(
            &kubeconfig(
                "    token: t\n    as: admin\n    as-groups: [system:masters]\n",
                "    proxy-url: socks5://127.0.0.1:1080\n",
            ),
            Path::new("/"),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("users[].user.as)"), "{err}");
        assert!(err.contains("users[].user.as-groups"), "{err}");
        assert!(err.contains("clusters[].cluster.proxy-url"), "{err}");

        let err = KubeConfig::from_kubeconfig(
            &kubeconfig("    auth-provider: {name: oidc}\n", ""),
            Path::new("/"),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("auth-provider"), "{err}");
    }
}
