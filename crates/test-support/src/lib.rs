//! Helpers shared by promhpa's tests: locating the shared conformance suites and seeds,
//! a throw-away certificate authority ([`pki::TestPki`]), and a real Prometheus serving
//! HTTPS on 127.0.0.1 that scrapes a test target ([`prometheus::Prometheus`]), the same
//! for VictoriaMetrics ([`victoria::VictoriaMetrics`]), and a large cluster's
//! `/api/v1/series` answer written piece by piece ([`series_body::SeriesBody`]), and
//! scratch directories that go away with the test ([`ScratchDir`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub mod fixtures;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod series_body;
pub mod victoria;

pub use pki::TestPki;
pub use prometheus::{free_port, wait_for_port, BodyFn, Prometheus, ScrapeTarget};
pub use victoria::VictoriaMetrics;

/// The `shared/` directory that holds `conformance/` and `seeds/`.
///
/// `PROMHPA_SHARED_DIR` wins when set; otherwise the first ancestor of `start` that has a
/// `shared/conformance` (or is itself such a directory's parent) is used. Returns an error
/// naming where it looked, so a missing suite fails the test instead of skipping it.
pub fn shared_dir_from(start: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PROMHPA_SHARED_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("conformance").is_dir() {
            return Ok(dir);
        }
        return Err(format!(
            "PROMHPA_SHARED_DIR={} has no conformance/ directory",
            dir.display()
        ));
    }
    for ancestor in start.ancestors() {
        let candidate = ancestor.join("shared");
        if candidate.join("conformance").is_dir() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no shared/conformance directory above {}; set PROMHPA_SHARED_DIR",
        start.display()
    ))
}

/// [`shared_dir_from`] starting at this crate's manifest directory.
pub fn shared_dir() -> Result<PathBuf, String> {
    shared_dir_from(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// A new, empty directory under the system's temporary directory, removed with what it
/// holds when dropped. A test that fails (its thread panicking) leaves it in place, and
/// with it the files to look at: logs, rule files, certificates.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A directory named `promhpa-<name>-<pid>-<n>`, unique within the process and, with
    /// the process id, among the test processes running at once.
    pub fn new(name: &str) -> std::io::Result<ScratchDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("promhpa-{name}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(ScratchDir(dir)),
                // Left by an earlier process that had the same id.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_goes_with_its_test() {
        let (kept, gone);
        {
            let a = ScratchDir::new("scratch").unwrap();
            let b = ScratchDir::new("scratch").unwrap();
            assert_ne!(a.path(), b.path());
            std::fs::create_dir(a.join("sub")).unwrap();
            std::fs::write(a.join("sub").join("file"), "x").unwrap();
            gone = a.to_path_buf();
            assert!(gone.join("sub").join("file").is_file());
            // One dropped while its thread panics stays, for the failure to be looked into.
            let dir = std::thread::spawn(|| {
                let d = ScratchDir::new("scratch").unwrap();
                let path = d.to_path_buf();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let _held = d;
                    panic!("a failing test");
                }));
                path
            });
            kept = dir.join().unwrap();
        }
        assert!(!gone.exists());
        assert!(kept.is_dir());
        std::fs::remove_dir_all(&kept).unwrap();
    }

    #[test]
    fn finds_the_shared_directory() {
        let dir = shared_dir().unwrap_or_else(|e| panic!("{e}"));
        assert!(dir.join("conformance").join("README.md").is_file());
    }
}
