//! What the end-to-end tests of the binary share: starting `promhpa` on a free port and
//! asking it with `kubectl get --raw`.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod gate;

use promhpa_test_support::{free_port, ScratchDir, TestPki};
use serde_json::Value;

// Not every test binary that includes this module asks for the time.
#[allow(unused_imports)]
pub use promhpa_core::time::now_ms;

/// Wait (up to 30 s) until `f` holds; the failure names `what` and shows the server's log.
pub fn wait_for(what: &str, server: &Promhpa, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waiting for {what}: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh directory under the system's temporary directory, removed at the end of a test
/// that passes.
pub fn tempfile_dir(name: &str) -> ScratchDir {
    ScratchDir::new(name).unwrap()
}

/// The arguments of `serve` with a real Prometheus at `prometheus_url` trusted through
/// `pki`'s CA, the rule file `rules`, the object file `objects`, `pki`'s serving certificate,
/// and no delegated authentication (kubectl talks to promhpa directly, with no API server in
/// front); a test adds its own.
pub fn serve_args(
    pki: &TestPki,
    prometheus_url: &str,
    rules: &Path,
    objects: &Path,
) -> Vec<String> {
    vec![
        format!("--prometheus-url={prometheus_url}"),
        format!("--prometheus-ca-file={}", pki.ca_cert.display()),
        format!("--config={}", rules.display()),
        format!("--objects={}", objects.display()),
        format!("--tls-cert-file={}", pki.server_cert.display()),
        format!("--tls-private-key-file={}", pki.server_key.display()),
        "--insecure-skip-delegated-auth".into(),
    ]
}

/// The `promhpa` binary serving on 127.0.0.1 and a free port, its log in a file.
pub struct Promhpa {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Promhpa {
    pub fn start(args: &[String], dir: &Path) -> Promhpa {
        let port = free_port().unwrap();
        let log = dir.join(format!("promhpa-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .args(args)
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Promhpa { child, port, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Promhpa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubectl` with a kubeconfig pointing at one promhpa.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
}

impl Kubectl {
    pub fn new(dir: &Path, port: u16, ca: &Path) -> Kubectl {
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: promhpa\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\nusers:\n- name: test\n  user: {{token: test-token}}\ncontexts:\n- name: test\n  context: {{cluster: promhpa, user: test}}\ncurrent-context: test\n",
                ca.display()
            ),
        )
        .unwrap();
        Kubectl {
            kubeconfig,
            cache: dir.join("kube-cache"),
        }
    }

    /// `kubectl` that authenticates to one promhpa with a client certificate.
    pub fn with_client_cert(dir: &Path, port: u16, ca: &Path, cert: &Path, key: &Path) -> Kubectl {
        let name = format!("kubeconfig-cert-{port}");
        let kubeconfig = dir.join(&name);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: promhpa\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\nusers:\n- name: cert\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: cert\n  context: {{cluster: promhpa, user: cert}}\ncurrent-context: cert\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        Kubectl {
            kubeconfig,
            cache: dir.join(format!("{name}-cache")),
        }
    }

    pub fn raw(&self, path: &str) -> Output {
        Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.cache.display()))
            .arg("--request-timeout=30s")
            .args(["get", "--raw", path])
            .output()
            .unwrap()
    }

    pub fn json(&self, path: &str) -> Value {
        let out = self.raw(path);
        assert!(
            out.status.success(),
            "kubectl get --raw {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The error kubectl prints for a failed request.
    pub fn error(&self, path: &str) -> String {
        let out = self.raw(path);
        assert!(
            !out.status.success(),
            "kubectl get --raw {path} should fail, got {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// What `take` makes of the answer of `path`, once it makes something of it; asks every
    /// 200 ms for up to a minute, and fails naming `what`.
    pub fn wait_for_raw<T>(
        &self,
        server: &Promhpa,
        path: &str,
        what: &str,
        take: impl Fn(&[u8]) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let out = self.raw(path);
            if let Some(t) = out.status.success().then(|| take(&out.stdout)).flatten() {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The answer of `path` once it has a first item (the backends may need a scrape or two
    /// first); waits up to a minute.
    pub fn wait_first_item(&self, server: &Promhpa, path: &str) -> Value {
        self.wait_for_raw(server, path, &format!("{path} not served"), |body| {
            let v: Value = serde_json::from_slice(body).unwrap();
            (!v["items"][0].is_null()).then_some(v)
        })
    }

    /// Wait (up to a minute) until `/readyz` answers 200 `ok`.
    pub fn wait_ready(&self, server: &Promhpa) {
        self.wait_for_raw(server, "/readyz", "promhpa never became ready", |body| {
            (String::from_utf8_lossy(body).trim() == "ok").then_some(())
        })
    }
}
