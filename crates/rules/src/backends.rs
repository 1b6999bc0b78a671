//! The rule file's `backends` section: Prometheus-compatible servers besides the one the
//! command-line flags describe (which is always there, named `default`). A rule picks one
//! with `backend: NAME`; its discovery and its queries go there.
//!
//! ```yaml
//! backends:
//! - name: mimir-team-a
//!   url: https://mimir.monitoring.svc/prometheus
//!   caFile: /etc/promhpa/mimir-ca.crt
//!   headers:
//!     X-Scope-OrgID: team-a
//! - name: thanos
//!   url: https://thanos-query.monitoring.svc:10902
//!   caFile: /etc/promhpa/thanos-ca.crt
//!   bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
//!   queryParameters:
//!     dedup: "true"
//!     partial_response: "false"
//! ```
//!
//! Only file names appear here, never secrets: a token or password is read from its file
//! (and re-read when the file changes) by the client that uses it.

use crate::load::{boolean, fields, get, sequence, string, suggestion, Ctx};
use crate::yaml::{Node, Value};
use promhpa_core::url_text::redacted;

/// The name a rule may use for the backend the flags describe.
pub const DEFAULT_BACKEND: &str = "default";

/// One entry of `backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Unique, a DNS label (`thanos`, `mimir-team-a`).
    pub name: String,
    /// Line of the entry in the rule file, for messages.
    pub line: usize,
    /// Base URL: scheme, host, optional port and path prefix (`/prometheus` for Mimir); the
    /// API paths are appended to it.
    pub url: String,
    /// Extra query parameters sent with every call (Thanos `dedup`, `partial_response`).
    pub query_parameters: Vec<(String, String)>,
    /// Extra headers sent with every call (Mimir/Cortex `X-Scope-OrgID`).
    pub headers: Vec<(String, String)>,
    /// PEM CA bundle that verifies the server instead of the system roots.
    pub ca_file: Option<String>,
    /// Client certificate and key for mutual TLS.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// Name to verify the server's certificate against instead of the URL's host.
    pub tls_server_name: Option<String>,
    /// File holding a bearer token.
    pub bearer_token_file: Option<String>,
    /// Basic auth user and the file holding the password.
    pub basic_auth: Option<(String, String)>,
    /// Skip certificate verification (for tests only).
    pub insecure_skip_tls_verify: bool,
}

impl BackendSpec {
    /// Whether `other` describes the same connection (everything but where it is written).
    pub fn same_connection(&self, other: &BackendSpec) -> bool {
        BackendSpec {
            line: other.line,
            ..self.clone()
        } == *other
    }
}

const BACKEND_KEYS: &[&str] = &[
    "name",
    "url",
    "queryParameters",
    "headers",
    "caFile",
    "certFile",
    "keyFile",
    "tlsServerName",
    "bearerTokenFile",
    "basicAuth",
    "insecureSkipTLSVerify",
];

/// Whether `name` is a DNS label (RFC 1123), as Kubernetes names go.
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// An HTTP header field name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// An HTTP header value promhpa can send as written: visible ASCII, spaces and tabs.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|c| c == b'\t' || (b' '..=b'~').contains(&c))
}

/// Why `url` cannot be a backend's base URL, if it cannot.
fn url_problem(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme == "https" || scheme == "http" => rest,
        Some((scheme, _)) => {
            return Some(format!(
                "the scheme must be https or http, not \"{scheme}\""
            ))
        }
        None => {
            return Some(
                "expected an absolute URL such as https://prometheus.monitoring.svc:9090".into(),
            )
        }
    };
    if url.contains('#') {
        return Some("a URL fragment (#...) has no meaning here".into());
    }
    if url.contains('?') {
        return Some("write query parameters under `queryParameters`, not in the URL".into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if authority.contains('@') {
        return Some(
            "credentials in the URL are not accepted here; use `basicAuth` with a passwordFile"
                .into(),
        );
    }
    if host.is_empty() || host.starts_with(':') {
        return Some("the URL has no host".into());
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
        if port.parse::<u16>().is_err() {
            return Some(format!("\"{port}\" is not a port number"));
        }
    }
    None
}

/// `key: value` pairs of a mapping of strings, in file order.
fn string_map(ctx: &mut Ctx, node: Option<&Node>, path: &str) -> Vec<(String, String, usize)> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Vec::new();
    };
    let Value::Map(entries) = &node.value else {
        ctx.error(
            node.line,
            path,
            format!("expected a mapping of strings, got {}", node.type_name()),
        );
        return Vec::new();
    };
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for (k, v) in entries {
        let Some(key) = k.as_scalar() else {
            ctx.error(
                k.line,
                path,
                format!("keys must be strings, got {}", k.type_name()),
            );
            continue;
        };
        let kpath = format!("{path}.{key}");
        if out.iter().any(|(seen, _, _)| seen == key) {
            ctx.error(k.line, &kpath, "duplicate key");
            continue;
        }
        let Some(value) = v.as_scalar().filter(|_| !v.is_null()) else {
            ctx.error(
                v.line,
                &kpath,
                format!("expected a string, got {}", v.type_name()),
            );
            continue;
        };
        out.push((key.to_string(), value.to_string(), k.line));
    }
    out
}

/// The `backends` section; problems are errors (the file is refused), since no earlier
/// adapter reads this section and a typo here would send queries to the wrong server.
pub(crate) fn compile_backends(ctx: &mut Ctx, node: Option<&Node>) -> Vec<BackendSpec> {
    let mut out: Vec<BackendSpec> = Vec::new();
    for (i, n) in sequence(ctx, node, "backends").into_iter().enumerate() {
        let path = format!("backends[{i}]");
        let errors_before = ctx.errors.len();
        let Some(f) = fields(ctx, n, &path, BACKEND_KEYS, true) else {
            continue;
        };
        let at = |key: &str| get(&f, key).map(|k| k.line).unwrap_or(n.line);
        let npath = format!("{path}.name");
        let name = string(ctx, get(&f, "name"), &npath).unwrap_or_default();
        if name.is_empty() {
            ctx.error(
                n.line,
                &npath,
                "every backend needs a name (a DNS label such as \"thanos\")",
            );
        } else if name == DEFAULT_BACKEND {
            ctx.error(
                at("name"),
                &npath,
                "\"default\" is the backend the command-line flags describe (--prometheus-url); choose another name",
            );
        } else if !is_dns_label(&name) {
            ctx.error(
                at("name"),
                &npath,
                format!("\"{name}\" is not a valid name: lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit"),
            );
        } else if let Some(first) = out.iter().find(|b| b.name == name) {
            ctx.error(
                at("name"),
                &npath,
                format!(
                    "the name \"{name}\" is already used by the backend on line {}",
                    first.line
                ),
            );
        }
        let upath = format!("{path}.url");
        let url = string(ctx, get(&f, "url"), &upath).unwrap_or_default();
        if url.is_empty() {
            ctx.error(n.line, &upath, "every backend needs a url");
        } else if let Some(problem) = url_problem(&url) {
            ctx.error(
                at("url"),
                &upath,
                format!("invalid URL \"{}\": {problem}", redacted(&url)),
            );
        }
        let url = url.trim_end_matches('/').to_string();
        let mut query_parameters = Vec::new();
        for (k, v, line) in string_map(
            ctx,
            get(&f, "queryParameters"),
            &format!("{path}.queryParameters"),
        ) {
            if k.is_empty() {
                ctx.error(
                    line,
                    &format!("{path}.queryParameters"),
                    "a parameter needs a name",
                );
            } else if matches!(
                k.as_str(),
                "query" | "time" | "timeout" | "match[]" | "start" | "end" | "step"
            ) {
                ctx.error(
                    line,
                    &format!("{path}.queryParameters.{k}"),
                    format!("\"{k}\" is set by promhpa on each call and cannot be fixed here"),
                );
            } else {
                query_parameters.push((k, v));
            }
        }
        let mut headers = Vec::new();
        for (k, v, line) in string_map(ctx, get(&f, "headers"), &format!("{path}.headers")) {
            let hpath = format!("{path}.headers.{k}");
            if !is_header_name(&k) {
                ctx.error(
                    line,
                    &hpath,
                    format!("\"{k}\" is not a valid HTTP header name"),
                );
            } else if k.eq_ignore_ascii_case("authorization") {
                ctx.error(
                    line,
                    &hpath,
                    "credentials do not belong in the rule file: use bearerTokenFile or basicAuth.passwordFile",
                );
            } else if !is_header_value(&v) {
                ctx.error(
                    line,
                    &hpath,
                    "the value may only hold printable ASCII, spaces and tabs",
                );
            } else {
                headers.push((k, v));
            }
        }
        let file = |ctx: &mut Ctx, key: &str| {
            string(ctx, get(&f, key), &format!("{path}.{key}")).filter(|s| !s.is_empty())
        };
        let ca_file = file(ctx, "caFile");
        let cert_file = file(ctx, "certFile");
        let key_file = file(ctx, "keyFile");
        let tls_server_name = file(ctx, "tlsServerName");
        let bearer_token_file = file(ctx, "bearerTokenFile");
        let insecure = boolean(
            ctx,
            get(&f, "insecureSkipTLSVerify"),
            &format!("{path}.insecureSkipTLSVerify"),
        )
        .unwrap_or(false);
        if cert_file.is_some() != key_file.is_some() {
            let (given, missing) = if cert_file.is_some() {
                ("certFile", "keyFile")
            } else {
                ("keyFile", "certFile")
            };
            ctx.error(
                at(given),
                &format!("{path}.{given}"),
                format!("{given} needs {missing} as well"),
            );
        }
        let mut basic_auth = None;
        if let Some(ba) = get(&f, "basicAuth").filter(|b| !b.is_null()) {
            let bpath = format!("{path}.basicAuth");
            if let Some(bf) = fields(ctx, ba, &bpath, &["username", "passwordFile"], true) {
                let user = string(ctx, get(&bf, "username"), &format!("{bpath}.username"))
                    .unwrap_or_default();
                let pw = string(
                    ctx,
                    get(&bf, "passwordFile"),
                    &format!("{bpath}.passwordFile"),
                )
                .unwrap_or_default();
                if user.is_empty() || pw.is_empty() {
                    ctx.error(
                        ba.line,
                        &bpath,
                        "basicAuth needs both username and passwordFile",
                    );
                } else {
                    basic_auth = Some((user, pw));
                }
            }
        }
        if bearer_token_file.is_some() && basic_auth.is_some() {
            ctx.error(
                at("basicAuth"),
                &path,
                "bearerTokenFile and basicAuth exclude each other: a request carries one Authorization header",
            );
        }
        if insecure && ca_file.is_some() {
            ctx.error(
                at("insecureSkipTLSVerify"),
                &format!("{path}.insecureSkipTLSVerify"),
                "insecureSkipTLSVerify and caFile exclude each other (there is no verification for the CA to take part in)",
            );
        }
        if url.starts_with("http://") {
            for (key, set) in [
                ("caFile", ca_file.is_some()),
                ("certFile", cert_file.is_some()),
                ("tlsServerName", tls_server_name.is_some()),
                ("insecureSkipTLSVerify", insecure),
            ] {
                if set {
                    ctx.error(
                        at(key),
                        &format!("{path}.{key}"),
                        format!("{key} applies to https URLs only, and the url is http"),
                    );
                }
            }
        }
        if ctx.errors.len() > errors_before {
            continue;
        }
        out.push(BackendSpec {
            name,
            line: n.line,
            url,
            query_parameters,
            headers,
            ca_file,
            cert_file,
            key_file,
            tls_server_name,
            bearer_token_file,
            basic_auth,
            insecure_skip_tls_verify: insecure,
        });
    }
    out
}

/// The error for a rule naming `name` when `known` are the backends defined.
pub(crate) fn unknown_backend(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!(
            "backend \"{name}\" is not defined: the rule file has no `backends` section (the flags describe the one named \"default\")"
        );
    }
    let mut names: Vec<&str> = known.iter().map(String::as_str).collect();
    names.push(DEFAULT_BACKEND);
    let hint = suggestion(name, &names);
    let hint = if hint.is_empty() {
        format!(" (defined: {})", names.join(", "))
    } else {
        hint
    };
    format!("backend \"{name}\" is not defined in `backends`{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert!(is_dns_label("thanos"));
        assert!(is_dns_label("mimir-team-a"));
        assert!(!is_dns_label("Thanos"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(""));
    }

    #[test]
    fn urls() {
        assert_eq!(url_problem("https://thanos:10902"), None);
        assert_eq!(url_problem("https://mimir.svc/prometheus"), None);
        assert_eq!(url_problem("http://[::1]:9090"), None);
        assert!(url_problem("thanos:10902").is_some());
        assert!(url_problem("ftp://x").is_some());
        assert!(url_problem("https://x/?dedup=true").is_some());
        assert!(url_problem("https://user:pw@x").is_some());
        assert!(url_problem("https://x:99999").is_some());
        assert!(url_problem("https:///prometheus").is_some());
    }

    #[test]
    fn headers() {
        assert!(is_header_name("X-Scope-OrgID"));
        assert!(!is_header_name("X Scope"));
        assert!(is_header_value("team-a|team-b"));
        assert!(!is_header_value("a\nb"));
    }
}
