//! Helpers shared by promhpa's tests: locating the shared conformance suites and seeds,
//! a throw-away certificate authority ([`pki::TestPki`]), and a real Prometheus serving
//! HTTPS on 127.0.0.1 that scrapes a test target ([`prometheus::Prometheus`]), the same
//! for VictoriaMetrics ([`victoria::VictoriaMetrics`]), and a large cluster's
//! `/api/v1/series` answer written piece by piece ([`series_body::SeriesBody`]).

use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_shared_directory() {
        let dir = shared_dir().unwrap_or_else(|e| panic!("{e}"));
        assert!(dir.join("conformance").join("README.md").is_file());
    }
}
