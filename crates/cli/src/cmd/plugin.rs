//! Running as a kubectl plugin: installed (or linked) as `kubectl-promhpa` on the PATH,
//! `kubectl promhpa explain web -n shop` runs this binary with `explain web -n shop`. Then
//! it names itself `kubectl promhpa` in help, and reads the cluster as kubectl does: the
//! current kubeconfig (`$KUBECONFIG`, else `~/.kube/config`) and its context's namespace,
//! unless `--kubeconfig` or `-n` say otherwise.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

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

/// The kubeconfig kubectl would read: the first existing file of `$KUBECONFIG` (a
/// path list), else `~/.kube/config` if it exists.
pub fn kubectl_kubeconfig() -> Option<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list).find(|p| p.is_file());
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".kube").join("config")).filter(|p| p.is_file())
}

/// The namespace of a kubeconfig's current context, if it names one.
pub fn context_namespace(kubeconfig: &Path) -> Option<String> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).ok()?;
    let current = doc.get("current-context")?.as_str()?;
    doc.get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(yaml_serde::Value::as_str) == Some(current))?
        .get("context")?
        .get("namespace")?
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// `explain` as kubectl users expect it: the current kubeconfig and its namespace.
pub fn explain_defaults(args: &mut super::explain::Args) {
    if args.kubeconfig.is_none() && args.backend.objects.is_none() && !args.backend.demo {
        args.kubeconfig = kubectl_kubeconfig();
    }
    if args.name.is_some() && args.namespace.is_none() {
        args.namespace = args.kubeconfig.as_deref().and_then(context_namespace);
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
