//! Connecting to the Kubernetes API with kube's configuration loader: a kubeconfig file (or
//! the `KUBECONFIG` list, merged, or `~/.kube/config`) with its current or a chosen context,
//! or the pod's service account. Everything kube's loader understands works: exec credential
//! plugins, client certificates and keys as files or data, tokens and token files (re-read as
//! they rotate), `proxy-url`, `tls-server-name`, `insecure-skip-tls-verify`, impersonation.
//! What it cannot honour is an error naming the setting.

use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use kube::config::{ExecInteractiveMode, KubeConfigOptions, Kubeconfig};
use tower::util::MapRequestLayer;

use crate::error::error_chain;
use crate::KubeError;

/// Where the service account's credentials are mounted in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Which cluster credentials to use: a kubeconfig file and a context of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterAccess {
    /// The kubeconfig file (`--kubeconfig`); without one, the service account in a pod, else
    /// `$KUBECONFIG` (a list of files, merged) or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use instead of the kubeconfig's `current-context` (`--context`).
    pub context: Option<String>,
}

impl ClusterAccess {
    pub fn kubeconfig(path: Option<&Path>) -> Self {
        ClusterAccess {
            kubeconfig: path
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf),
            context: None,
        }
    }

    /// The client configuration these credentials give.
    pub fn config(&self) -> Result<kube::Config, KubeError> {
        let (kubeconfig, source) = match &self.kubeconfig {
            Some(path) => (read(path)?, path.display().to_string()),
            None if self.context.is_none() && in_a_pod() => {
                return kube::Config::incluster()
                    .map_err(|e| KubeError::InCluster(error_chain(&e)));
            }
            None => match Kubeconfig::from_env() {
                Ok(Some(merged)) => {
                    tracing::info!("no --kubeconfig and not in a pod: using $KUBECONFIG");
                    (merged, "$KUBECONFIG".to_string())
                }
                Ok(None) => match home_kubeconfig() {
                    Some(path) => {
                        tracing::info!(
                            "no --kubeconfig and not in a pod: using {}",
                            path.display()
                        );
                        (read(&path)?, path.display().to_string())
                    }
                    None => return Err(KubeError::InCluster(
                        "not in a pod, and no kubeconfig given, in $KUBECONFIG or at $HOME/.kube/config"
                            .into(),
                    )),
                },
                Err(e) => {
                    return Err(KubeError::Kubeconfig {
                        path: "$KUBECONFIG".into(),
                        message: error_chain(&e),
                    })
                }
            },
        };
        from_kubeconfig(kubeconfig, self.context.as_deref(), &source)
    }

    /// A client for these credentials. Runs an exec credential plugin now, if the user has
    /// one. Must be called inside a tokio runtime.
    pub fn client(&self) -> Result<kube::Client, KubeError> {
        let config = self.config()?;
        client(config)
    }
}

/// A client for `config`. Must be called inside a tokio runtime.
///
/// Requests are not retried by the client: callers decide (discovery skips an unavailable
/// group at once, watches back off, reviews fail fast and are cached). A token file is read
/// here, trimmed as client-go does, and re-read every minute.
pub fn client(mut config: kube::Config) -> Result<kube::Client, KubeError> {
    let server = config.cluster_url.to_string();
    config.default_retry = false;
    let hint = config
        .auth_info
        .exec
        .as_ref()
        .and_then(|e| Some((e.command.clone()?, e.install_hint.clone()?)));
    let auth = &mut config.auth_info;
    let token_file =
        if auth.token.is_none() && auth.username.is_none() && auth.auth_provider.is_none() {
            auth.token_file.take().filter(|f| !f.is_empty())
        } else {
            None
        };
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| {
        let mut message = error_chain(&e);
        if let Some((command, hint)) = hint.filter(|_| command_not_found(&e)) {
            message = format!("exec credential plugin {command:?} not found: {hint}");
        }
        KubeError::Transport {
            path: server,
            message,
        }
    })?;
    Ok(match token_file {
        Some(path) => {
            let file = Arc::new(TokenFile::new(PathBuf::from(path)));
            builder
                .with_layer(&MapRequestLayer::new(
                    move |mut request: http::Request<kube::client::Body>| {
                        if let Some(value) = file.header() {
                            request
                                .headers_mut()
                                .insert(http::header::AUTHORIZATION, value);
                        }
                        request
                    },
                ))
                .build()
        }
        None => builder.build(),
    })
}

/// How long a token read from a file is used before the file is read again.
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// A bearer token file, re-read as it rotates (projected service account tokens); the last
/// token read is kept while the file cannot be read.
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, http::HeaderValue)>>,
}

impl TokenFile {
    fn new(path: PathBuf) -> Self {
        TokenFile {
            path,
            cached: Mutex::new(None),
        }
    }

    fn header(&self) -> Option<http::HeaderValue> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read_at, value)) = cached.as_ref() {
            if read_at.elapsed() < TOKEN_FILE_REFRESH {
                return Some(value.clone());
            }
        }
        let read = std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|token| {
                let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|e| e.to_string())?;
                value.set_sensitive(true);
                Ok(value)
            });
        match read {
            Ok(value) => {
                *cached = Some((Instant::now(), value.clone()));
                Some(value)
            }
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "reading bearer token file");
                cached.as_ref().map(|(_, v)| v.clone())
            }
        }
    }
}

fn in_a_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::env::var_os("KUBERNETES_SERVICE_PORT").is_some()
}

/// `~/.kube/config`, when it exists.
fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".kube").join("config")).filter(|p| p.exists())
}

fn read(path: &Path) -> Result<Kubeconfig, KubeError> {
    Kubeconfig::read_from(path).map_err(|e| KubeError::Kubeconfig {
        path: path.display().to_string(),
        message: error_chain(&e),
    })
}

/// The client configuration of `context` (or the current context) of a parsed kubeconfig;
/// `source` names it in errors.
pub fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
    source: &str,
) -> Result<kube::Config, KubeError> {
    let err = |message: String| KubeError::Kubeconfig {
        path: source.to_string(),
        message,
    };
    let context_name = context
        .map(str::to_string)
        .or_else(|| kubeconfig.current_context.clone())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| err("no context selected and no current-context set".into()))?;
    let user_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| err(format!("context {context_name:?} not found")))?
        .user
        .clone();
    let user = user_name.as_ref().and_then(|name| {
        kubeconfig
            .auth_infos
            .iter()
            .find(|u| &u.name == name)
            .and_then(|u| u.auth_info.as_ref())
    });
    if let Some(user) = user {
        check_user(user).map_err(|m| err(format!("user of context {context_name:?}: {m}")))?;
    }
    let options = KubeConfigOptions {
        context: Some(context_name.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = now(kube::Config::from_custom_kubeconfig(kubeconfig, &options))
        .ok_or_else(|| err("loading the kubeconfig did not complete".into()))?
        .map_err(|e| err(format!("context {context_name:?}: {}", error_chain(&e))))?;
    if let Some(exec) = config.auth_info.exec.as_mut() {
        interactive_mode(exec)
            .map_err(|m| err(format!("user of context {context_name:?}: {m}")))?;
    }
    Ok(config)
}

/// Settings of a kubeconfig user that would be silently ignored or mixed up: refused with
/// their names.
fn check_user(user: &kube::config::AuthInfo) -> Result<(), String> {
    let has_token =
        user.token.is_some() || user.token_file.as_deref().is_some_and(|t| !t.is_empty());
    let has_basic =
        user.username.as_deref().is_some_and(|u| !u.is_empty()) || user.password.is_some();
    if has_token && has_basic {
        return Err(
            "more than one authentication method found: token and username/password; only one is allowed"
                .into(),
        );
    }
    if let Some(key) = user.other.keys().next() {
        return Err(format!(
            "users[].user.{key} is not a setting promhpa knows; remove it or check its spelling"
        ));
    }
    Ok(())
}

/// client-go's `interactiveMode`: `Never` gives the plugin no terminal, `IfAvailable` one
/// only when standard input is a terminal (so a plugin in a pod is told not to prompt), and
/// `Always` requires one.
fn interactive_mode(exec: &mut kube::config::ExecConfig) -> Result<(), String> {
    let terminal = std::io::stdin().is_terminal();
    let command = exec.command.clone().unwrap_or_default();
    match exec.interactive_mode {
        Some(ExecInteractiveMode::Always) if !terminal => Err(format!(
            "exec credential plugin {command:?} has interactiveMode Always, but standard input is not a terminal"
        )),
        Some(ExecInteractiveMode::IfAvailable) | None if !terminal => {
            exec.interactive_mode = Some(ExecInteractiveMode::Never);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn command_not_found(e: &kube::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The output of a future that completes without waiting (kube's kubeconfig loading is
/// `async` but reads only what it was given), or `None` if it would wait.
fn now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// The current context of the kubeconfig kubectl would read: `$KUBECONFIG`'s files merged,
/// else `~/.kube/config`.
pub fn kubectl_current_context() -> Option<String> {
    Kubeconfig::read()
        .ok()?
        .current_context
        .filter(|c| !c.is_empty())
}

/// The namespace a kubeconfig's context names, as kubectl takes it: the kubeconfig at
/// `path` (default: kubectl's, `$KUBECONFIG`'s files merged, else `~/.kube/config`), the
/// context `context` (default: its current context). `None` when the file cannot be read
/// or the context names no namespace.
pub fn context_namespace(path: Option<&Path>, context: Option<&str>) -> Option<String> {
    let config = path
        .map_or_else(Kubeconfig::read, Kubeconfig::read_from)
        .ok()?;
    let context = match context {
        Some(c) => c,
        None => config.current_context.as_deref()?,
    };
    config
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_comes_from_the_context_kubectl_would_use() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: a\n  context: {cluster: c, namespace: one}\n- name: b\n  context: {cluster: c, namespace: shop}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            context_namespace(Some(&path), None).as_deref(),
            Some("shop")
        );
        assert_eq!(
            context_namespace(Some(&path), Some("a")).as_deref(),
            Some("one")
        );
        assert_eq!(context_namespace(Some(&path), Some("z")), None);
        std::fs::write(
            &path,
            "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(context_namespace(Some(&path), None), None);
        assert_eq!(
            context_namespace(Some(&dir.path().join("missing")), None),
            None
        );
    }
}
