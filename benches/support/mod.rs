//! What the benches against a real Prometheus share: promhpa started in front of it, and an
//! HTTPS client that trusts the test CA.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use promhpa_test_support::{free_port, Prometheus, TestPki};

pub mod floor;
pub mod review;

/// TLS for a server of the bench's own on `pki`'s server certificate, offering `alpn`.
pub fn server_tls(pki: &TestPki, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// The CPU time in user space and in the kernel, in clock ticks, of the process or thread
/// whose `/proc` stat file is `stat`.
pub fn cpu_ticks_in(stat: &Path) -> (u64, u64) {
    let stat = std::fs::read_to_string(stat).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14
    // and stime 15.
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    (
        fields[11].parse::<u64>().unwrap(),
        fields[12].parse::<u64>().unwrap(),
    )
}

/// The `promhpa` binary serving `rules` over `objects` from `prom` on 127.0.0.1, with
/// `extra` flags; returns the process and its port.
pub fn start_promhpa(
    prom: &Prometheus,
    pki: &TestPki,
    rules: &Path,
    objects: &Path,
    extra: &[&str],
) -> (Child, u16) {
    let mut args = vec!["--insecure-skip-delegated-auth"];
    args.extend_from_slice(extra);
    start_promhpa_with(prom, pki, rules, objects, &args)
}

/// The binary the benches start: `PROMHPA_BIN` when set (to compare two builds under the
/// same bench), else the one cargo built with the bench.
pub fn promhpa_bin() -> std::path::PathBuf {
    std::env::var_os("PROMHPA_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_promhpa").into())
}

/// [`start_promhpa`] without turning delegated authentication and authorization off:
/// `extra` says how they are done.
pub fn start_promhpa_with(
    prom: &Prometheus,
    pki: &TestPki,
    rules: &Path,
    objects: &Path,
    extra: &[&str],
) -> (Child, u16) {
    let port = free_port().unwrap();
    let child = Command::new(promhpa_bin())
        .arg(format!("--prometheus-url={}", prom.url()))
        .arg(format!("--prometheus-ca-file={}", pki.ca_cert.display()))
        .arg(format!("--config={}", rules.display()))
        .arg(format!("--objects={}", objects.display()))
        .arg(format!("--tls-cert-file={}", pki.server_cert.display()))
        .arg(format!(
            "--tls-private-key-file={}",
            pki.server_key.display()
        ))
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

/// An HTTPS client trusting the test CA.
pub fn client(pki: &TestPki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}
