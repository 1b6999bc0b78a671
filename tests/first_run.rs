//! What a new user meets first, run against the binary: `serve --help` documents the
//! flags the README names, logs to a pipe carry no colour codes, `kubectl top node` works
//! on the demo, and the binary works as a kubectl plugin.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{tempfile_dir, Kubectl, Promhpa};
use promhpa_test_support::TestPki;

fn promhpa(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn serve_help_describes_every_flag_the_readme_documents() {
    let out = promhpa(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--client-ca-file",
        "--requestheader-client-ca-file",
        "--requestheader-allowed-names",
        "--requestheader-username-headers",
        "--requestheader-group-headers",
        "--requestheader-extra-headers-prefix",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
        "--lister-kubeconfig",
        "--tls-cert-file",
        "--tls-private-key-file",
    ] {
        // clap prints `  --flag <VALUE>` and the description on the lines that follow.
        let at = help
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{flag} ")) || l.trim() == flag)
            .unwrap_or_else(|| panic!("{flag} is not in serve --help:\n{help}"));
        let description = help.lines().nth(at + 1).unwrap_or_default().trim();
        assert!(
            !description.is_empty() && !description.starts_with("--"),
            "{flag} has no description:\n{help}"
        );
    }
    // The README points at every one of them.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    for flag in [
        "--kubeconfig",
        "--client-ca-file",
        "--lister-kubeconfig",
        "--tls-cert-file",
    ] {
        assert!(readme.contains(flag), "{flag} not in README");
    }
}

#[test]
fn the_demo_logs_without_colour_and_kubectl_top_node_works() {
    let dir = tempfile_dir("first-run");
    let pki = TestPki::generate("first-run-ca", "first-run").unwrap();
    let server = Promhpa::start(
        &[
            "serve".to_string(),
            "--demo".to_string(),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
        ],
        &dir,
    );
    let kubectl = Kubectl::new(&dir, server.port, &pki.ca_cert);
    kubectl.wait_ready(&server);
    // The log goes to a file here, as a container's log goes to a pipe: no ANSI escapes.
    let log = server.log();
    // klog's lines: `I1206 13:31:26.308339   12345 serve.rs:228] serving ...`.
    assert!(
        log.lines()
            .any(|l| l.starts_with("I1") || l.starts_with("I0"))
            && log.contains("] "),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log:\n{log:?}"
    );

    let top = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubectl.kubeconfig.display()))
        .arg(format!("--cache-dir={}", kubectl.cache.display()))
        .args(["top", "node"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&top.stderr),
        server.log()
    );
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, node) in rows.iter().zip(["demo-node-1", "demo-node-2"]) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0], node, "{text}");
        assert!(cols[1].ends_with('m') && cols[2].ends_with('%'), "{text}");
        assert!(cols[3].ends_with("Mi") && cols[4].ends_with('%'), "{text}");
    }

    // `kubectl get` asks for a Table and shows its columns, as with metrics-server: the
    // usage, then the window.
    let get = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kubectl.kubeconfig.display()))
            .arg(format!("--cache-dir={}", kubectl.cache.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = get(&["get", "nodemetrics.metrics.k8s.io"]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "CPU", "MEMORY", "WINDOW"], "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    for (row, node) in lines[1..].iter().zip(["demo-node-1", "demo-node-2"]) {
        assert_eq!(row[0], node, "{text}");
        assert!(row[1].ends_with('m') && row[2].ends_with("Mi"), "{text}");
    }
    let text = get(&["get", "podmetrics.metrics.k8s.io", "--all-namespaces"]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAMESPACE", "NAME", "CPU", "MEMORY", "WINDOW"],
        "{text}"
    );
    assert!(lines.len() > 1, "{text}");
    // The same rows as JSON, with the objects' metadata, for `-o wide` and `-o name`.
    let text = get(&[
        "get",
        "podmetrics.metrics.k8s.io",
        "--all-namespaces",
        "-o",
        "name",
    ]);
    assert!(
        text.lines()
            .all(|l| l.starts_with("podmetrics.metrics.k8s.io/")),
        "{text}"
    );
}

/// A directory holding `kubectl-promhpa` (a symlink to the binary), and PATH with it first.
fn plugin_path(dir: &Path) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_promhpa"), bin.join("kubectl-promhpa")).unwrap();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

#[test]
fn the_binary_works_as_a_kubectl_plugin() {
    let dir = tempfile_dir("plugin");
    let path = plugin_path(&dir);
    let kubectl = |args: &[&str], kubeconfig: &Path| {
        Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &dir)
            .output()
            .unwrap()
    };
    // The current context names namespace shop; its server is a port nobody listens on.
    let port = promhpa_test_support::free_port().unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: other\n  context: {{cluster: c, user: u, namespace: elsewhere}}\n- name: shop\n  context: {{cluster: c, user: u, namespace: shop}}\ncurrent-context: shop\n"
        ),
    )
    .unwrap();

    let list = kubectl(&["plugin", "list"], &kubeconfig);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("kubectl-promhpa"),
        "{listed}{}",
        String::from_utf8_lossy(&list.stderr)
    );

    let help = kubectl(&["promhpa", "--help"], &kubeconfig);
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: kubectl promhpa"), "{help}");
    assert!(
        help.contains("explain") && help.contains("simulate"),
        "{help}"
    );

    // Without arguments the plugin explains itself instead of serving.
    let bare = kubectl(&["promhpa"], &kubeconfig);
    assert!(bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stdout).contains("Usage: kubectl promhpa"));
    // Flags without a command never start a server.
    let flags = kubectl(&["promhpa", "--v=3"], &kubeconfig);
    assert_eq!(flags.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&flags.stderr).contains("kubectl promhpa needs a command"),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );

    // `kubectl promhpa explain web` reads HPA web from the current context's cluster and
    // namespace, as any kubectl command would; -n overrides the namespace.
    let explain = kubectl(&["promhpa", "explain", "web"], &kubeconfig);
    assert!(!explain.status.success());
    let err = String::from_utf8_lossy(&explain.stderr);
    assert!(err.contains("HorizontalPodAutoscaler shop/web"), "{err}");
    let explain = kubectl(&["promhpa", "explain", "web", "-n", "jobs"], &kubeconfig);
    let err = String::from_utf8_lossy(&explain.stderr);
    assert!(err.contains("HorizontalPodAutoscaler jobs/web"), "{err}");

    // Under its own name the binary keeps its own help and default (no kubeconfig guessing).
    let own = promhpa(&["--help"]);
    assert!(String::from_utf8_lossy(&own.stdout).contains("Usage: promhpa"));
}

/// `--bind-address=0.0.0.0`, the default outside the demo, listens as Go listens on it: on
/// every interface of both address families, so an IPv6 or dual-stack cluster's aggregator
/// reaches promhpa. Where this machine has no IPv6 loopback, only IPv4 is checked.
#[test]
fn the_unspecified_address_takes_ipv4_and_ipv6_clients() {
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};
    let dir = tempfile_dir("dual-stack");
    let port = promhpa_test_support::free_port().unwrap();
    let log = dir.join("promhpa.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(["serve", "--demo", "--bind-address=0.0.0.0"])
        .arg(format!("--secure-port={port}"))
        .arg(format!("--cert-dir={}", dir.join("certs").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let connects = |addr: SocketAddr| TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while connects(v4).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not listening: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if ipv6 {
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        assert!(
            connects(v6).is_ok(),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    } else {
        eprintln!("no IPv6 loopback here: only IPv4 was checked");
    }
    let _ = child.kill();
    let _ = child.wait();
}
