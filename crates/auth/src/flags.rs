//! Authentication settings from the `--client-ca-file` and `--requestheader-*` flags.

use std::path::PathBuf;

use crate::authn::{AuthnSources, RequestHeaderConfig};
use crate::x509::CaBundle;
use crate::AuthError;

/// The flag values, with Kubernetes' defaults for the header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnFlags {
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--requestheader-client-ca-file`.
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`; empty allows any certificate of the request-header CA.
    pub requestheader_allowed_names: Vec<String>,
    /// `--requestheader-username-headers`, default `x-remote-user`.
    pub requestheader_username_headers: Vec<String>,
    /// `--requestheader-uid-headers`, default none.
    pub requestheader_uid_headers: Vec<String>,
    /// `--requestheader-group-headers`, default `x-remote-group`.
    pub requestheader_group_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix`, default `x-remote-extra-`.
    pub requestheader_extra_headers_prefix: Vec<String>,
}

impl Default for AuthnFlags {
    fn default() -> Self {
        AuthnFlags {
            client_ca_file: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: vec!["x-remote-user".to_string()],
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: vec!["x-remote-group".to_string()],
            requestheader_extra_headers_prefix: vec!["x-remote-extra-".to_string()],
        }
    }
}

impl AuthnFlags {
    /// Reads the CA files named by the flags (again on every call, so a caller that calls
    /// this when the files change follows their rotation). Flags naming no file leave the
    /// corresponding authenticator to the `extension-apiserver-authentication` configmap.
    pub fn load(&self) -> Result<AuthnSources, AuthError> {
        let read = |path: &PathBuf| -> Result<CaBundle, AuthError> {
            let name = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| AuthError::InvalidCaBundle {
                name: name.clone(),
                message: e.to_string(),
            })?;
            CaBundle::from_pem(&name, &pem)
        };
        let client_ca = self
            .client_ca_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(read)
            .transpose()?;
        let request_header = self
            .requestheader_client_ca_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(read)
            .transpose()?
            .map(|ca| RequestHeaderConfig {
                ca,
                allowed_names: self.requestheader_allowed_names.clone(),
                username_headers: self.requestheader_username_headers.clone(),
                uid_headers: self.requestheader_uid_headers.clone(),
                group_headers: self.requestheader_group_headers.clone(),
                extra_headers_prefixes: self.requestheader_extra_headers_prefix.clone(),
            });
        Ok(AuthnSources {
            request_header,
            client_ca,
        })
    }
}
