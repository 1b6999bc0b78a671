//! Why serving could not start.

use std::path::PathBuf;

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("reading {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("generating a self-signed serving certificate: {0}")]
    Generate(String),
    #[error("configuring tls: {0}")]
    Tls(String),
}
