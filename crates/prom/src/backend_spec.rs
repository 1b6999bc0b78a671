//! The client of a rule file's `backends` entry ([`promhpa_rules::BackendSpec`]): its own
//! URL and query parameters, TLS, bearer token file, basic auth and headers; the query
//! settings (verb, timeout) are the caller's.

use std::path::PathBuf;
use std::time::Duration;

use promhpa_rules::BackendSpec;

use crate::{PromClient, PromConfig, PromError, Verb};

/// Why the client of a rule file's `backends` entry cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BackendSpecError {
    #[error("invalid url: {0}")]
    Url(url::ParseError),
    #[error("reading basicAuth.passwordFile {file}: {error}")]
    PasswordFile { file: String, error: std::io::Error },
    #[error(transparent)]
    Client(#[from] PromError),
}

/// The client settings of a `backends` entry. A basic-auth password file is read now (the
/// entry's client is made anew when the rule file changes it); a token file is re-read by
/// the client whenever it changes.
pub fn spec_config(
    spec: &BackendSpec,
    verb: Verb,
    timeout: Duration,
) -> Result<PromConfig, BackendSpecError> {
    let url = if spec.query_parameters.is_empty() {
        spec.url.clone()
    } else {
        url::Url::parse_with_params(&spec.url, &spec.query_parameters)
            .map_err(BackendSpecError::Url)?
            .to_string()
    };
    let mut config = PromConfig::new(url);
    config.verb = verb;
    config.query_timeout = timeout;
    config.ca_file = spec.ca_file.as_ref().map(PathBuf::from);
    config.client_cert_file = spec.cert_file.as_ref().map(PathBuf::from);
    config.client_key_file = spec.key_file.as_ref().map(PathBuf::from);
    config.tls_server_name = spec.tls_server_name.clone();
    config.token_file = spec.bearer_token_file.as_ref().map(PathBuf::from);
    config.insecure_skip_verify = spec.insecure_skip_tls_verify;
    config.headers = spec.headers.clone();
    if let Some((user, file)) = &spec.basic_auth {
        let password =
            std::fs::read_to_string(file).map_err(|error| BackendSpecError::PasswordFile {
                file: file.clone(),
                error,
            })?;
        config.basic_auth = Some((
            user.clone(),
            password.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    Ok(config)
}

/// The client of a `backends` entry, made from [`spec_config`].
pub fn spec_client(
    spec: &BackendSpec,
    verb: Verb,
    timeout: Duration,
) -> Result<PromClient, BackendSpecError> {
    Ok(PromClient::new(spec_config(spec, verb, timeout)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_entries_that_cannot_be_clients_say_why_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let spec = |url: &str| BackendSpec {
            name: "thanos".into(),
            line: 3,
            url: url.into(),
            query_parameters: vec![("dedup".into(), "true".into())],
            headers: Vec::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_server_name: None,
            bearer_token_file: None,
            basic_auth: None,
            insecure_skip_tls_verify: false,
        };
        let err = |spec: &BackendSpec| {
            spec_client(spec, Verb::Get, Duration::from_secs(1))
                .err()
                .map(|e| format!("{:#}", anyhow::Error::new(e)))
                .unwrap_or_default()
        };
        assert_eq!(
            err(&spec("/prometheus")),
            "invalid url: relative URL without a base"
        );
        let password = dir.path().join("password");
        let mut s = spec("https://thanos:9090");
        s.basic_auth = Some(("adapter".into(), password.display().to_string()));
        let e = err(&s);
        assert!(
            e.starts_with(&format!(
                "reading basicAuth.passwordFile {}: ",
                password.display()
            )) && e.matches("No such file").count() == 1,
            "{e}"
        );
        std::fs::write(&password, "pw\n").unwrap_or_else(|e| panic!("{e}"));
        let c =
            spec_config(&s, Verb::Post, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.url, "https://thanos:9090/?dedup=true");
        assert_eq!(c.basic_auth, Some(("adapter".into(), "pw".into())));
        assert_eq!(c.verb, Verb::Post);
        let ca = dir.path().join("ca.crt");
        s.ca_file = Some(ca.display().to_string());
        let e = err(&s);
        assert!(
            e.starts_with(&format!("reading prometheus ca file {}: ", ca.display()))
                && e.matches("No such file").count() == 1,
            "{e}"
        );
    }
}
