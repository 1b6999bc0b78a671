//! Running as a kubectl plugin: installed (or linked) as `kubectl-promhpa` on the PATH,
//! `kubectl promhpa explain web -n shop` runs this binary with `explain web -n shop`. Then
//! it names itself `kubectl promhpa` in help, and reads the cluster as kubectl does: the
//! current kubeconfig (`$KUBECONFIG`'s files merged, else `~/.kube/config`) and its
//! context's namespace, unless `--kubeconfig`, `--context` or `-n` say otherwise.

use std::ffi::OsStr;
use std::path::Path;

use promhpa_kube::kube::config::Kubeconfig;

/// The name kubectl looks for on the PATH.
pub const PLUGIN_BINARY: &str = "kubectl-promhpa";

/// Whether `argv0` (the program name as invoked) is the kubectl plugin's.
pub fn invoked_as_plugin(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .and_then(OsStr::to_str)
        .map(|n| n.strip_suffix(".exe").unwrap_or(n))
        == Some(PLUGIN_BINARY)
}

/// The current context of the kubeconfig kubectl would read: `$KUBECONFIG`'s files merged,
/// else `~/.kube/config`.
pub fn kubectl_context() -> Option<String> {
    Kubeconfig::read()
        .ok()?
        .current_context
        .filter(|c| !c.is_empty())
}

/// The namespace of a kubeconfig's current context, if it names one.
pub fn context_namespace(kubeconfig: &Path) -> Option<String> {
    let config = Kubeconfig::read_from(kubeconfig).ok()?;
    namespace_of(&config, config.current_context.as_deref()?)
}

fn namespace_of(config: &Kubeconfig, context: &str) -> Option<String> {
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

/// `explain` as kubectl users expect it: the current kubeconfig (`$KUBECONFIG`'s files
/// merged) and its context's namespace.
pub fn explain_defaults(args: &mut super::explain::Args) {
    if args.kubeconfig.is_none()
        && args.context.is_none()
        && args.backend.objects.is_none()
        && !args.backend.demo
    {
        args.context = kubectl_context();
    }
    if args.name.is_some() && args.namespace.is_none() {
        args.namespace = match (&args.kubeconfig, &args.context) {
            (Some(path), None) => context_namespace(path),
            (path, Some(context)) => path
                .as_deref()
                .map_or_else(Kubeconfig::read, Kubeconfig::read_from)
                .ok()
                .and_then(|config| namespace_of(&config, context)),
            (None, None) => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_is_recognised_by_its_file_name() {
        assert!(invoked_as_plugin(Some(OsStr::new("kubectl-promhpa"))));
        assert!(invoked_as_plugin(Some(OsStr::new(
            "/usr/local/bin/kubectl-promhpa"
        ))));
        assert!(invoked_as_plugin(Some(OsStr::new("kubectl-promhpa.exe"))));
        assert!(!invoked_as_plugin(Some(OsStr::new("promhpa"))));
        assert!(!invoked_as_plugin(Some(OsStr::new(
            "/bin/kubectl-promhpa-old"
        ))));
        assert!(!invoked_as_plugin(None));
    }

    #[test]
    fn the_namespace_comes_from_the_current_context() {
        let dir = std::env::temp_dir().join(format!("promhpa-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: a\n  context: {cluster: c, namespace: one}\n- name: b\n  context: {cluster: c, namespace: shop}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(context_namespace(&path).as_deref(), Some("shop"));
        std::fs::write(
            &path,
            "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(context_namespace(&path), None);
        assert_eq!(context_namespace(&dir.join("missing")), None);
    }
}
