//! A real VictoriaMetrics (Debian's `victoria-metrics` binary) for tests: single-node,
//! serving its Prometheus-compatible API over HTTPS on 127.0.0.1 with a certificate from a
//! test CA, scraping test targets every second.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pki::TestPki;
use crate::prometheus::{free_port, wait_for_port};

/// A running VictoriaMetrics; killed when dropped.
pub struct VictoriaMetrics {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// CA that signed the serving certificate (PEM file).
    pub ca_file: PathBuf,
}

impl VictoriaMetrics {
    /// Start VictoriaMetrics over HTTPS (certificate from `pki`) scraping `targets` every
    /// second. Samples are searchable about a second after they are scraped.
    pub fn start_https(pki: &TestPki, targets: &[u16]) -> Result<VictoriaMetrics, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port()?;
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let scrape = dir.path().join("scrape.yml");
        std::fs::write(
            &scrape,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: test\n  honor_labels: true\n  static_configs:\n  - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .map_err(|e| format!("writing {}: {e}", scrape.display()))?;
        let args = vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            "-tls".to_string(),
            format!("-tlsCertFile={}", pki.server_cert.display()),
            format!("-tlsKeyFile={}", pki.server_key.display()),
            format!("-promscrape.config={}", scrape.display()),
            // Answer with the newest samples (the default hides the last 30 s).
            "-search.latencyOffset=1s".to_string(),
            "-search.disableCache".to_string(),
            "-retentionPeriod=1d".to_string(),
            "-loggerLevel=ERROR".to_string(),
        ];
        let child = spawn(&args, dir.path())?;
        let mut vm = VictoriaMetrics {
            child,
            port,
            dir,
            ca_file: pki.ca_cert.clone(),
        };
        if let Err(e) = wait_for_port(port, Duration::from_secs(30)) {
            return Err(format!("{e}; log:\n{}", vm.log()));
        }
        if let Ok(Some(status)) = vm.child.try_wait() {
            return Err(format!(
                "victoria-metrics exited with {status}; log:\n{}",
                vm.log()
            ));
        }
        Ok(vm)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("victoria-metrics.log")).unwrap_or_default()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], dir: &Path) -> Result<Child, String> {
    let log = std::fs::File::create(dir.join("victoria-metrics.log"))
        .map_err(|e| format!("opening victoria-metrics log: {e}"))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cloning victoria-metrics log: {e}"))?;
    Command::new("victoria-metrics")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("starting victoria-metrics (Debian package `victoria-metrics`): {e}"))
}
