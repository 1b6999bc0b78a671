//! The trust settings published in `kube-system/extension-apiserver-authentication`.

use std::collections::BTreeMap;

use crate::authn::{AuthnSources, RequestHeaderConfig};
use crate::x509::CaBundle;
use crate::AuthError;

/// Namespace of the configmap the API server publishes its authentication settings in.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of that configmap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// Reads the client CA and request-header settings from the configmap's `data`.
/// Missing keys leave the corresponding authenticator off.
pub fn sources_from_configmap(data: &BTreeMap<String, String>) -> Result<AuthnSources, AuthError> {
    let client_ca = match data.get("client-ca-file").filter(|v| !v.trim().is_empty()) {
        Some(pem) => Some(CaBundle::from_pem("client-ca-file", pem.as_bytes())?),
        None => None,
    };
    let request_header = match data
        .get("requestheader-client-ca-file")
        .filter(|v| !v.trim().is_empty())
    {
        Some(pem) => Some(RequestHeaderConfig {
            ca: CaBundle::from_pem("requestheader-client-ca-file", pem.as_bytes())?,
            allowed_names: json_list(data, "requestheader-allowed-names")?,
            username_headers: json_list(data, "requestheader-username-headers")?,
            uid_headers: json_list(data, "requestheader-uid-headers")?,
            group_headers: json_list(data, "requestheader-group-headers")?,
            extra_headers_prefixes: json_list(data, "requestheader-extra-headers-prefix")?,
        }),
        None => None,
    };
    Ok(AuthnSources {
        request_header,
        client_ca,
    })
}

/// Flags win over the configmap: a client CA or request-header CA given on the command
/// line replaces what the configmap says for that authenticator.
pub fn merge_sources(flags: AuthnSources, configmap: AuthnSources) -> AuthnSources {
    AuthnSources {
        request_header: flags.request_header.or(configmap.request_header),
        client_ca: flags.client_ca.or(configmap.client_ca),
    }
}

fn json_list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>, AuthError> {
    match data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_str::<Option<Vec<String>>>(raw)
            .map(Option::unwrap_or_default)
            .map_err(|e| AuthError::ConfigMap(format!("{key}: {e}"))),
    }
}
