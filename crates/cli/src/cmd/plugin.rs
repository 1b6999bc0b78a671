//! Running as a kubectl plugin: installed (or linked) as `kubectl-promhpa` on the PATH,
//! `kubectl promhpa explain web -n shop` runs this binary with `explain web -n shop`. Then
//! it names itself `kubectl promhpa` in help, and reads the cluster as kubectl does: the
//! current kubeconfig (`$KUBECONFIG`'s files merged, else `~/.kube/config`) and its
//! context's namespace, unless `--kubeconfig`, `--context` or `-n` say otherwise
//! ([`promhpa_kube::client::context_namespace`]).

use std::ffi::OsStr;
use std::path::Path;

use promhpa_kube::client::{context_namespace, kubectl_current_context};

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

/// `explain` as kubectl users expect it: the current kubeconfig (`$KUBECONFIG`'s files
/// merged) and its context's namespace.
pub fn explain_defaults(args: &mut super::explain::Args) {
    if args.kubeconfig.is_none()
        && args.context.is_none()
        && args.backend.objects.is_none()
        && !args.backend.demo
    {
        args.context = kubectl_current_context();
    }
    if args.name.is_some() && args.namespace.is_none() {
        args.namespace = match (&args.kubeconfig, &args.context) {
            (None, None) => None,
            (path, context) => context_namespace(path.as_deref(), context.as_deref()),
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
}
