//! A real Prometheus (Debian's `prometheus` binary) for tests, serving HTTPS on 127.0.0.1
//! with a certificate from a test CA, scraping a test target every second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pki::TestPki;

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("reading the bound port: {e}"))
}

/// Wait until `127.0.0.1:port` accepts TCP connections.
pub fn wait_for_port(port: u16, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "nothing listens on 127.0.0.1:{port} after {limit:?}"
    ))
}

/// Produces the body of the `n`th scrape (counting from 1).
pub type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// A plain-HTTP scrape target that serves an exposition-format body at any path: a fixed
/// text, or one computed from the scrape count (for counters that grow by a fixed amount
/// per scrape).
pub struct ScrapeTarget {
    pub port: u16,
    body: Arc<Mutex<String>>,
    generator: Arc<Mutex<Option<BodyFn>>>,
    stop: Arc<AtomicBool>,
}

impl ScrapeTarget {
    /// Serve the body `f(n)` on the `n`th scrape.
    pub fn start_with(f: BodyFn) -> Result<ScrapeTarget, String> {
        let t = ScrapeTarget::start("")?;
        if let Ok(mut g) = t.generator.lock() {
            *g = Some(f);
        }
        Ok(t)
    }

    pub fn start(body: &str) -> Result<ScrapeTarget, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding scrape target: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("scrape target address: {e}"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("scrape target nonblocking: {e}"))?;
        let body = Arc::new(Mutex::new(body.to_string()));
        let generator: Arc<Mutex<Option<BodyFn>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, g, s) = (body.clone(), generator.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        n += 1;
                        let f = g.lock().ok().and_then(|f| f.clone());
                        let text = match f {
                            Some(f) => f(n),
                            None => b.lock().map(|t| t.clone()).unwrap_or_default(),
                        };
                        let _ = serve_one(stream, &text);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(ScrapeTarget {
            port,
            body,
            generator,
            stop,
        })
    }

    /// Replace the served body (the next scrape sees it); stops any generator.
    pub fn set_body(&self, text: &str) {
        if let Ok(mut g) = self.generator.lock() {
            *g = None;
        }
        if let Ok(mut b) = self.body.lock() {
            *b = text.to_string();
        }
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(stream: TcpStream, text: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        text.len(),
        text
    )?;
    stream.flush()
}

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    /// Arguments it was started with, to start it again on the same port and data.
    args: Vec<String>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// CA that signed the serving certificate (PEM file).
    pub ca_file: PathBuf,
}

impl Prometheus {
    /// Start Prometheus over HTTPS (certificate from `pki`) scraping `targets` every second.
    pub fn start_https(pki: &TestPki, targets: &[u16]) -> Result<Prometheus, String> {
        Prometheus::start(pki, targets, false, None)
    }

    /// [`Prometheus::start_https`], also requiring a client certificate signed by `pki`'s CA.
    pub fn start_mtls(pki: &TestPki, targets: &[u16]) -> Result<Prometheus, String> {
        Prometheus::start(pki, targets, true, None)
    }

    /// [`Prometheus::start_https`], also requiring HTTP basic auth with `user`/`password`.
    pub fn start_basic_auth(
        pki: &TestPki,
        targets: &[u16],
        user: &str,
        password: &str,
    ) -> Result<Prometheus, String> {
        Prometheus::start(pki, targets, false, Some((user, password)))
    }

    fn start(
        pki: &TestPki,
        targets: &[u16],
        mtls: bool,
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Prometheus, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port()?;
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: test\n  honor_labels: true\n  static_configs:\n  - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        write(&config_path, &config)?;
        let web_path = dir.path().join("web.yml");
        let mut web = format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n",
            pki.server_cert.display(),
            pki.server_key.display(),
        );
        if mtls {
            web.push_str(&format!(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
                pki.ca_cert.display()
            ));
        }
        if let Some((user, password)) = basic_auth {
            let hash = bcrypt::hash(password, 4).map_err(|e| format!("bcrypt: {e}"))?;
            web.push_str(&format!("basic_auth_users:\n  {user}: '{hash}'\n"));
        }
        write(&web_path, &web)?;
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}", web_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--web.enable-remote-write-receiver".to_string(),
            "--log.level=warn".to_string(),
        ];
        let child = spawn(&args, dir.path())?;
        let mut p = Prometheus {
            child,
            args,
            port,
            ca_file: pki.ca_cert.clone(),
            dir,
        };
        if let Err(e) = wait_for_port(port, Duration::from_secs(30)) {
            return Err(format!("{e}; log:\n{}", p.log()));
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            return Err(format!(
                "prometheus exited with {status}; log:\n{}",
                p.log()
            ));
        }
        Ok(p)
    }

    /// The process id, e.g. to stop (SIGSTOP) and resume it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the process (SIGKILL), as a crash would end it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same port with the same data (after [`Prometheus::kill`]),
    /// and wait until it listens.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.child = spawn(&self.args, self.dir.path())?;
        wait_for_port(self.port, Duration::from_secs(30))
            .map_err(|e| format!("{e}; log:\n{}", self.log()))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Prometheus' own log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("prometheus.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `prometheus` with `args`, appending its output to `dir/prometheus.log`.
fn spawn(args: &[String], dir: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("prometheus.log"))
        .map_err(|e| format!("opening prometheus log: {e}"))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cloning prometheus log: {e}"))?;
    Command::new("prometheus")
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("starting prometheus (Debian package `prometheus`): {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
