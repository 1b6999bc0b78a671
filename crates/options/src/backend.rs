//! The metrics-backend flags shared by `serve`, `explain` and `simulate`: where values come
//! from (Prometheus or the embedded evaluator), the rule file, and the objects selectors are
//! matched against.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use promhpa_apiserver::objects::StaticObjects;
use promhpa_core::backend::{Backend, BackendError};
use promhpa_core::duration::parse_go_duration;
use promhpa_core::gofmt::parse_go_bool;
use promhpa_core::lookup::ObjectLookup;
use promhpa_core::timing::CallTimings;
use promhpa_prom::{parse_header_flag, PromClient, PromConfig, Verb};
use promhpa_rules::RuleSet;

use crate::OptionsError;

use promhpa_core::time::now_ms;
use promhpa_core::url_text::redacted;

/// A file path where an empty value means none, as pflag string flags take it.
fn path_or_empty(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// prometheus-adapter's backend flags (same names and meanings), the rule file, the object
/// file and `--demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendFlags {
    /// URL of the Prometheus API (path prefix and query parameters are kept). Without it,
    /// the embedded evaluator is the backend.
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// PEM CA bundle that signed Prometheus' serving certificate.
    #[arg(long, value_name = "FILE")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// File with a bearer token for Prometheus; re-read when it changes. Sent instead of the
    /// token or password of --prometheus-auth-config / --prometheus-auth-incluster.
    #[arg(long, value_name = "FILE")]
    pub prometheus_token_file: Option<PathBuf>,
    /// kubeconfig file used to configure auth when connecting to Prometheus: its current
    /// context's user (token, tokenFile, username/password, client certificate) and cluster
    /// (certificate-authority, insecure-skip-tls-verify, tls-server-name). Its server is not
    /// used: queries go to --prometheus-url. Not with --prometheus-ca-file or
    /// --prometheus-client-tls-cert-file/key-file.
    #[arg(long, value_name = "FILE", value_parser = path_or_empty)]
    pub prometheus_auth_config: Option<PathBuf>,
    /// Use the pod's service account when connecting to Prometheus: its token (re-read when
    /// it rotates) and its CA, as the in-cluster kubeconfig does. Not with
    /// --prometheus-auth-config, --prometheus-ca-file or --prometheus-client-tls-cert-file/key-file.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_parser = parse_go_bool,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub prometheus_auth_incluster: bool,
    /// Extra header sent to Prometheus, `key=value`; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub prometheus_header: Vec<String>,
    /// HTTP method for queries: GET (switching to POST for long queries) or POST.
    #[arg(long, default_value = "GET", value_name = "VERB")]
    pub prometheus_verb: String,
    /// Client certificate for mutual TLS with Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_client_tls_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS with Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_client_tls_key_file: Option<PathBuf>,
    /// Basic auth user for Prometheus (the password comes from PROMHPA_PROMETHEUS_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub prometheus_user: Option<String>,
    #[arg(
        long,
        env = "PROMHPA_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub prometheus_password: Option<String>,
    /// Deadline of one Prometheus query (also sent as `timeout=`); keep it below the
    /// aggregator's own request timeout.
    #[arg(long, default_value = "20s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub prometheus_query_timeout: Duration,

    /// Rule file (prometheus-adapter config, Helm values or ConfigMap).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubernetes objects (YAML/JSON, lists allowed) that label selectors are matched against.
    #[arg(long, value_name = "FILE")]
    pub objects: Option<PathBuf>,
    /// Exposition file (text format or OpenMetrics) loaded into the embedded evaluator at
    /// start; samples without a timestamp are stamped with the start time. Repeatable.
    /// Only without --prometheus-url.
    #[arg(long, value_name = "FILE")]
    pub load_exposition: Vec<PathBuf>,
    /// Built-in demo traffic from the embedded evaluator, with the demo rule file and
    /// object set unless --config/--objects are given. Ignores --prometheus-url.
    #[arg(long)]
    pub demo: bool,
}

use promhpa_promql_eval::demo::OBJECTS as DEMO_OBJECTS;
use promhpa_promql_eval::demo::RULES as DEMO_RULES;

impl BackendFlags {
    /// The rule set: `--config`, the demo rules with `--demo`, or no rules.
    pub fn load_rules(&self) -> Result<RuleSet, OptionsError> {
        let rules = match &self.config {
            Some(path) => RuleSet::load(path).map_err(|source| OptionsError::RuleFile {
                path: path.clone(),
                source,
            })?,
            None if self.demo => RuleSet::from_yaml(DEMO_RULES, "demo/rules.yaml")
                .map_err(OptionsError::DemoRules)?,
            None => {
                tracing::warn!("no --config given: no metrics will be served");
                RuleSet::default()
            }
        };
        for w in &rules.warnings {
            tracing::warn!("{w}");
        }
        for b in &rules.broken {
            tracing::error!("broken rule, not served (every request for its metrics fails): {b}");
        }
        if !rules.broken.is_empty() {
            let n = rules.rules().filter(|r| r.broken().is_none()).count();
            tracing::error!(
                broken = rules.broken.len(),
                served = n,
                "the rule file has broken rules; every other rule is served (`promhpa check --config FILE` lists them, --strict-rules refuses such a file)"
            );
        }
        for s in &rules.shadowed {
            tracing::info!("{s}");
        }
        Ok(rules)
    }

    /// Without `--prometheus-url`, take Prometheus from a Helm values file's
    /// `prometheus.url`/`port`/`path`, joined the way the chart joins them.
    pub fn adopt_rule_file_prometheus(&mut self, rules: &RuleSet) {
        // Loaded exposition files mean the embedded evaluator is the backend.
        if self.prometheus_url.is_some() || self.demo || !self.load_exposition.is_empty() {
            return;
        }
        if let Some(p) = rules.prometheus.as_ref().and_then(|p| p.joined_url()) {
            tracing::info!(url = %redacted(&p), "using prometheus from the rule file's prometheus settings");
            self.prometheus_url = Some(p);
        }
    }

    /// The Prometheus connection flags that are given, by flag name.
    fn prometheus_flags_given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut note = |set: bool, name: &'static str| {
            if set {
                given.push(name);
            }
        };
        // Only --demo leaves a URL unused (it is never taken from the rule file then).
        note(
            self.demo && self.prometheus_url.is_some(),
            "--prometheus-url",
        );
        note(self.prometheus_ca_file.is_some(), "--prometheus-ca-file");
        note(
            self.prometheus_token_file.is_some(),
            "--prometheus-token-file",
        );
        note(
            self.prometheus_auth_config
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty()),
            "--prometheus-auth-config",
        );
        note(
            self.prometheus_auth_incluster,
            "--prometheus-auth-incluster",
        );
        note(
            self.prometheus_client_tls_cert_file.is_some(),
            "--prometheus-client-tls-cert-file",
        );
        note(
            self.prometheus_client_tls_key_file.is_some(),
            "--prometheus-client-tls-key-file",
        );
        note(!self.prometheus_header.is_empty(), "--prometheus-header");
        note(self.prometheus_user.is_some(), "--prometheus-user");
        given
    }

    /// Every problem the Prometheus flags show without reading a file: a verb or header
    /// that is not one, and, unless `--demo` leaves them unused, a URL that is not one and
    /// flags that cannot go together. The URL may come from a Helm values file instead of
    /// `--prometheus-url`, so the combinations are checked without one too.
    pub fn flag_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.prometheus_verb.parse::<Verb>().is_err() {
            errors.push(format!(
                "invalid --prometheus-verb \"{}\": expected GET or POST",
                self.prometheus_verb
            ));
        }
        for h in &self.prometheus_header {
            if parse_header_flag(h).is_err() {
                errors.push(format!(
                    "invalid --prometheus-header \"{h}\": expected key=value with a valid header name and value"
                ));
            }
        }
        if self.demo {
            return errors;
        }
        if let Some(url) = &self.prometheus_url {
            match url::Url::parse(url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(_) => errors.push(format!(
                    "invalid --prometheus-url \"{}\": scheme must be http or https",
                    redacted(url)
                )),
                Err(e) => errors.push(format!(
                    "invalid --prometheus-url \"{}\": {e}",
                    redacted(url)
                )),
            }
        }
        match (
            &self.prometheus_client_tls_cert_file,
            &self.prometheus_client_tls_key_file,
        ) {
            (Some(_), None) => errors.push(
                "--prometheus-client-tls-cert-file needs --prometheus-client-tls-key-file".into(),
            ),
            (None, Some(_)) => errors.push(
                "--prometheus-client-tls-key-file needs --prometheus-client-tls-cert-file".into(),
            ),
            _ => {}
        }
        let mut given = PromConfig::new(String::new());
        given.ca_file = self.prometheus_ca_file.clone();
        given.client_cert_file = self.prometheus_client_tls_cert_file.clone();
        given.client_key_file = self.prometheus_client_tls_key_file.clone();
        given.basic_auth = self
            .prometheus_user
            .as_ref()
            .map(|u| (u.clone(), String::new()));
        errors.extend(
            promhpa_kube::prometheus_auth::flag_errors(
                self.prometheus_auth_config.as_deref(),
                self.prometheus_auth_incluster,
                &given,
            )
            .iter()
            .map(|e| e.to_string()),
        );
        errors
    }

    /// Says which Prometheus connection flags go unused because the embedded evaluator is
    /// the backend.
    pub fn warn_unused_prometheus_flags(&self) {
        if let Some(message) = self.unused_prometheus_flags() {
            tracing::warn!("{message}");
        }
    }

    /// Which Prometheus connection flags go unused, and why, if any do.
    pub fn unused_prometheus_flags(&self) -> Option<String> {
        let given = self.prometheus_flags_given();
        if given.is_empty() {
            return None;
        }
        let why = if self.demo {
            "--demo serves from the embedded evaluator"
        } else {
            "there is no --prometheus-url, so the embedded evaluator is the backend"
        };
        Some(format!("{} not used: {why}", given.join(", ")))
    }

    /// The backend: Prometheus when `--prometheus-url` is given, the demo traffic with
    /// `--demo`, otherwise the embedded evaluator with the `--load-exposition` files. A
    /// Prometheus client counts the time of its calls in `calls` when given.
    pub fn build_backend(
        &self,
        calls: Option<&Arc<CallTimings>>,
    ) -> Result<Arc<dyn Backend>, OptionsError> {
        if self.demo {
            self.warn_unused_prometheus_flags();
            let backend = promhpa_promql_eval::demo::demo_backend();
            tracing::info!("demo: embedded evaluator with generated traffic");
            return Ok(backend);
        }
        let Some(url) = &self.prometheus_url else {
            self.warn_unused_prometheus_flags();
            tracing::info!(
                "no --prometheus-url: using the embedded PromQL evaluator as the backend"
            );
            let backend = promhpa_promql_eval::EmbeddedBackend::default();
            self.load_expositions(&backend)?;
            return Ok(Arc::new(backend));
        };
        if !self.load_exposition.is_empty() {
            return Err(OptionsError::ExpositionWithPrometheus);
        }
        let mut config = self.prom_config(url)?;
        config.call_timings = calls.cloned();
        Ok(Arc::new(PromClient::new(config)?))
    }

    /// Makes the client of each `backends` entry of the rule file: its own URL, TLS, auth,
    /// headers and query parameters; the query settings (verb, timeout) of the flags. The
    /// clients count the time of their calls in `calls` when given.
    pub fn connector(
        &self,
        calls: Option<&Arc<CallTimings>>,
    ) -> Result<promhpa_apiserver::backends::Connect, OptionsError> {
        let verb = self.prometheus_verb.parse::<Verb>()?;
        let timeout = self.prometheus_query_timeout;
        let calls = calls.cloned();
        Ok(Arc::new(move |spec: &promhpa_rules::BackendSpec| {
            let mut config = promhpa_prom::backend_spec::spec_config(spec, verb, timeout)?;
            config.call_timings = calls.clone();
            let client = PromClient::new(config)?;
            Ok(Arc::new(client) as Arc<dyn Backend>)
        }))
    }

    /// The Prometheus client settings of the flags, for `url`.
    pub fn prom_config(&self, url: &str) -> Result<PromConfig, OptionsError> {
        let mut config = PromConfig::new(url.to_string());
        config.ca_file = self.prometheus_ca_file.clone();
        config.client_cert_file = self.prometheus_client_tls_cert_file.clone();
        config.client_key_file = self.prometheus_client_tls_key_file.clone();
        config.token_file = self.prometheus_token_file.clone();
        for h in &self.prometheus_header {
            config.headers.push(parse_header_flag(h)?);
        }
        config.verb = self.prometheus_verb.parse::<Verb>()?;
        config.query_timeout = self.prometheus_query_timeout;
        if let Some(user) = &self.prometheus_user {
            config.basic_auth = Some((
                user.clone(),
                self.prometheus_password.clone().unwrap_or_default(),
            ));
        } else if self.prometheus_password.is_some() {
            tracing::warn!(
                "PROMHPA_PROMETHEUS_PASSWORD (--prometheus-password) is set but not used: it is the password of --prometheus-user, which is not given"
            );
        }
        promhpa_kube::prometheus_auth::apply(
            self.prometheus_auth_config.as_deref(),
            self.prometheus_auth_incluster,
            &mut config,
        )?;
        Ok(config)
    }

    /// Load the --load-exposition files into `backend`, stamping samples without a
    /// timestamp with the current time.
    pub fn load_expositions(
        &self,
        backend: &promhpa_promql_eval::EmbeddedBackend,
    ) -> Result<(), OptionsError> {
        let now = now_ms();
        for file in &self.load_exposition {
            let stats = backend
                .ingest_file(file, now, &promhpa_promql_eval::Labels::empty())
                .map_err(|source| OptionsError::Exposition {
                    path: file.clone(),
                    source,
                })?;
            tracing::info!(file = %file.display(), samples = stats.samples, "loaded exposition file");
        }
        Ok(())
    }

    /// The text of the object file (`--objects`, or the demo objects with `--demo`).
    pub fn objects_text(&self) -> Result<Option<(String, String)>, OptionsError> {
        match &self.objects {
            Some(p) => Ok(Some((
                std::fs::read_to_string(p).map_err(|source| OptionsError::ReadObjects {
                    path: p.clone(),
                    source,
                })?,
                p.display().to_string(),
            ))),
            None if self.demo => Ok(Some((
                DEMO_OBJECTS.to_string(),
                "demo/objects.yaml".to_string(),
            ))),
            None => Ok(None),
        }
    }

    /// The object lookup: the object file, the demo objects, or `cluster`, whose API
    /// resources are discovered again every `rediscover`. Must run inside a tokio runtime.
    pub fn build_lookup(
        &self,
        cluster: &promhpa_kube::client::ClusterAccess,
        rediscover: Duration,
    ) -> Result<Arc<dyn ObjectLookup>, OptionsError> {
        match self.objects_text()? {
            Some((text, source)) => Ok(Arc::new(StaticObjects::from_text(&text, &source)?)),
            None => {
                let client = cluster
                    .client()
                    .map_err(OptionsError::ObjectLookupCredentials)?;
                Ok(Arc::new(promhpa_kube::KubeObjectLookup::for_cluster(
                    client, rediscover,
                )))
            }
        }
    }

    /// With `--prometheus-url`, ask Prometheus once: a certificate its CA does not vouch for
    /// will not fix itself, so that is an error naming the flag that fixes it; a Prometheus
    /// that does not answer yet is only a warning, as it may come up later.
    pub async fn check_prometheus(&self, backend: &dyn Backend) -> Result<(), OptionsError> {
        if self.prometheus_url.is_none() || self.demo {
            return Ok(());
        }
        match backend.query("1", now_ms()).await {
            Err(BackendError::Unavailable { address, message })
                if message.to_lowercase().contains("invalid peer certificate") =>
            {
                let fix = certificate_fix(
                    &message,
                    self.prometheus_auth_config
                        .as_ref()
                        .is_some_and(|p| !p.as_os_str().is_empty()),
                    self.prometheus_auth_incluster,
                    self.prometheus_ca_file.is_some(),
                );
                return Err(OptionsError::PrometheusCertificate {
                    address,
                    message,
                    fix,
                });
            }
            Err(e) => tracing::warn!(error = %e, "prometheus is not answering yet"),
            Ok(_) => tracing::info!(address = %backend.address(), "prometheus reachable"),
        }
        Ok(())
    }
}

/// What fixes a certificate Prometheus presents that does not verify, by what is wrong with
/// it: an issuer promhpa does not trust is fixed by the CA it is given, a name or a validity
/// period by the certificate (or the URL, or the clock), never by another CA.
fn certificate_fix(
    message: &str,
    auth_config: bool,
    incluster: bool,
    ca_file: bool,
) -> &'static str {
    let message = message.to_lowercase();
    if message.contains("not valid for name") || message.contains("notvalidforname") {
        return if auth_config {
            "the certificate does not carry the host name of --prometheus-url: set tls-server-name in the --prometheus-auth-config kubeconfig to a name it carries, or use such a name in the URL"
        } else {
            "the certificate does not carry the host name of --prometheus-url: use a name it carries in the URL"
        };
    }
    if message.contains("expired")
        || message.contains("not valid yet")
        || message.contains("notvalidyet")
    {
        return "the certificate is outside its validity period: renew it, or check this machine's clock";
    }
    if message.contains("unknownissuer")
        || message.contains("badsignature")
        || message.contains("unknown issuer")
    {
        return if auth_config {
            "set the certificate-authority (and tls-server-name if the name differs) of the --prometheus-auth-config kubeconfig"
        } else if incluster {
            "--prometheus-auth-incluster trusts the service account's CA only"
        } else if ca_file {
            "the --prometheus-ca-file given did not sign it: pass the CA that did (the issuer of Prometheus' certificate, or the root above the intermediate it sends), not the certificate itself"
        } else {
            "pass --prometheus-ca-file with the CA that signed it"
        };
    }
    "Prometheus serves a certificate no client accepts as it is: replace it"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse;

    fn flags(args: &[&str]) -> BackendFlags {
        let mut all = vec!["--prometheus-url=https://prometheus:9090"];
        all.extend_from_slice(args);
        parse(&all).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flags_the_demo_leaves_unused_are_named() {
        let demo = flags(&["--demo", "--prometheus-ca-file=/ca.crt"]);
        assert_eq!(
            demo.prometheus_flags_given(),
            vec!["--prometheus-url", "--prometheus-ca-file"]
        );
        // Without --demo the URL is the backend; only the other flags could go unused.
        assert!(flags(&[]).prometheus_flags_given().is_empty());
    }

    #[test]
    fn the_bool_flag_takes_go_values_only_after_an_equals_sign() {
        assert!(flags(&["--prometheus-auth-incluster"]).prometheus_auth_incluster);
        assert!(flags(&["--prometheus-auth-incluster=T"]).prometheus_auth_incluster);
        assert!(!flags(&["--prometheus-auth-incluster=false"]).prometheus_auth_incluster);
        assert!(!flags(&[]).prometheus_auth_incluster);
        let err = parse::<BackendFlags>(&["--prometheus-auth-incluster=yes"])
            .err()
            .unwrap_or_default();
        assert!(err.contains("invalid boolean \"yes\""), "{err}");
    }

    #[test]
    fn the_auth_flags_reach_the_prometheus_settings() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let k = dir.path().join("k");
        std::fs::write(
            &k,
            "apiVersion: v1\nkind: Config\ncurrent-context: prom\nclusters:\n- name: prom\n  cluster:\n    server: https://kubernetes.default.svc\ncontexts:\n- name: prom\n  context: {cluster: prom, user: adapter}\nusers:\n- name: adapter\n  user:\n    username: adapter\n    password: pw\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let auth = format!("--prometheus-auth-config={}", k.display());
        let c = flags(&[&auth])
            .prom_config("https://prometheus:9090")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.basic_auth, Some(("adapter".into(), "pw".into())));
        // The other flags are what the credentials are checked against.
        for (flag, named) in [
            ("--prometheus-ca-file=/ca", "--prometheus-ca-file"),
            (
                "--prometheus-client-tls-key-file=/k",
                "--prometheus-client-tls-cert-file",
            ),
            ("--prometheus-user=u", "--prometheus-user"),
            ("--prometheus-auth-incluster", "--prometheus-auth-incluster"),
        ] {
            let e = flags(&[&auth, flag])
                .prom_config("https://prometheus:9090")
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                e.starts_with("--prometheus-auth-config") && e.contains(named),
                "{flag}: {e}"
            );
        }
    }

    #[test]
    fn a_certificate_that_does_not_verify_is_given_the_fix_for_what_is_wrong() {
        let issuer = "invalid peer certificate: UnknownIssuer";
        let name = "invalid peer certificate: certificate not valid for name \"prometheus\"; certificate is only valid for localhost or 127.0.0.1";
        let expired = "invalid peer certificate: certificate expired: verification time 1800000000 (UNIX), but certificate is not valid after 1700000000 (100000000 seconds ago)";
        let early = "invalid peer certificate: certificate not valid yet: verification time 1 (UNIX), but certificate is not valid before 2 (1 seconds in future)";
        let usage = "invalid peer certificate: certificate does not allow extended key usage for server authentication, allows client authentication";
        assert!(certificate_fix(issuer, false, false, false).contains("pass --prometheus-ca-file"));
        assert!(certificate_fix(issuer, true, false, false).contains("certificate-authority"));
        assert!(certificate_fix(issuer, false, true, false).contains("service account's CA"));
        for (auth_config, incluster) in [(false, false), (true, false), (false, true)] {
            for message in [name, expired, early, usage] {
                let fix = certificate_fix(message, auth_config, incluster, false);
                assert!(!fix.contains("CA"), "{message}: {fix}");
            }
        }
        assert!(certificate_fix(name, true, false, false).contains("tls-server-name"));
        assert!(
            certificate_fix(name, false, false, false).contains("host name of --prometheus-url")
        );
        assert!(certificate_fix(expired, false, false, false).contains("validity period"));
        assert!(certificate_fix(early, false, false, false).contains("clock"));
        assert!(certificate_fix(usage, false, false, false).contains("replace it"));
        assert!(certificate_fix(issuer, false, false, true).contains("did not sign it"));
    }
}
