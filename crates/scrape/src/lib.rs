//! Scraping for the embedded backend (`promhpa serve --scrape-config`): a YAML file of static targets, and one task per
//! target that fetches its exposition on its interval and records it (with `up`,
//! `scrape_duration_seconds` and `scrape_samples_scraped`) in an [`EmbeddedBackend`].
//!
//! ```yaml
//! targets:
//! - url: https://10.0.0.5:8443/metrics
//!   interval: 15s          # default 15s
//!   timeout: 10s           # default 10s; at most the interval
//!   caFile: /etc/ca.pem    # CA bundle for the target's certificate
//!   bearerTokenFile: /var/run/token
//!   insecureSkipVerify: false
//!   labels: {team: search} # added to every series; may override job and instance
//!   sampleLimit: 50000     # more samples fail the scrape; default 0, no limit
//!   bodySizeLimit: 10MiB   # a larger answer fails the scrape; default 0, no limit
//! ```
//!
//! Like Prometheus, every series of a target gets `job` (default `promhpa`) and `instance`
//! (the URL's `host:port`, with the scheme's default port filled in).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use promhpa_core::time::now_ms;
use promhpa_core::url_text::redacted;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use promhpa_core::duration::parse_go_duration_ms;
use promhpa_http_client::{ClientSettings, Pem};
use promhpa_promql_eval::{EmbeddedBackend, Labels};
use serde::Deserialize;

/// The `job` label of a target whose `labels` do not set one.
pub const DEFAULT_JOB: &str = "promhpa";
const DEFAULT_INTERVAL: &str = "15s";
const DEFAULT_TIMEOUT: &str = "10s";

/// What can go wrong reading a scrape configuration or preparing a target.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("reading scrape config {path}: {message}")]
    Read { path: String, message: String },
    #[error("scrape config {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("scrape target {url}: {message}")]
    Target { url: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// `targets:` with nothing after it is no targets.
    #[serde(default)]
    targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTarget {
    url: String,
    interval: Option<String>,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    sample_limit: usize,
    body_size_limit: Option<String>,
}

/// One static target, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: url::Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    /// `job`, `instance` and the configured extra labels.
    pub labels: BTreeMap<String, String>,
    /// The most samples one scrape may carry; 0 is no limit.
    pub sample_limit: usize,
    /// The largest answer in bytes; 0 is no limit.
    pub body_size_limit: u64,
}

/// A byte size as Prometheus writes it: `512`, `10KB`, `10MB`, `10MiB`, `1GB`...
fn byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bodySizeLimit {s:?}: expected a size such as 10MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "bodySizeLimit {s:?}: unknown unit {other:?} (B, KB, KiB, MB, MiB, GB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("bodySizeLimit {s:?} is too large"))
}

/// The targets of a scrape configuration file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeConfig {
    pub targets: Vec<Target>,
}

fn positive_duration(s: &str, what: &str) -> Result<Duration, String> {
    let ms = parse_go_duration_ms(s).map_err(|e| format!("{what}: {e}"))?;
    if ms <= 0 {
        return Err(format!("{what} \"{s}\" must be positive"));
    }
    Ok(Duration::from_millis(ms as u64))
}

fn is_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ScrapeConfig {
    /// Reads and validates a scrape configuration file.
    pub fn load(path: &Path) -> Result<ScrapeConfig, ScrapeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScrapeError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates the text of a scrape configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ScrapeConfig, ScrapeError> {
        let invalid = |message: String| ScrapeError::Invalid {
            path: origin.to_string(),
            message,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig { targets: None }
        } else {
            promhpa_core::yaml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        let raw_targets = raw.targets.unwrap_or_default();
        let mut targets = Vec::with_capacity(raw_targets.len());
        for (i, t) in raw_targets.into_iter().enumerate() {
            let shown = redacted(&t.url);
            let ctx = |m: String| invalid(format!("targets[{i}] ({shown}): {m}"));
            let url = url::Url::parse(&t.url).map_err(|e| ctx(format!("invalid url: {e}")))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(ctx(format!(
                    "url scheme must be http or https, got {:?}",
                    url.scheme()
                )));
            }
            let host = url
                .host_str()
                .ok_or_else(|| ctx("url has no host".to_string()))?;
            let port = url
                .port_or_known_default()
                .ok_or_else(|| ctx("url has no port".to_string()))?;
            let interval = positive_duration(
                t.interval.as_deref().unwrap_or(DEFAULT_INTERVAL),
                "interval",
            )
            .map_err(ctx)?;
            // Unset, the timeout is the default capped at the interval, as Prometheus caps it.
            let timeout = match t.timeout.as_deref() {
                Some(given) => positive_duration(given, "timeout").map_err(ctx)?,
                None => positive_duration(DEFAULT_TIMEOUT, "timeout")
                    .map_err(ctx)?
                    .min(interval),
            };
            if timeout > interval {
                return Err(ctx(format!(
                    "timeout {timeout:?} must not be longer than interval {interval:?}"
                )));
            }
            let mut labels = BTreeMap::new();
            labels.insert("job".to_string(), DEFAULT_JOB.to_string());
            labels.insert("instance".to_string(), format!("{host}:{port}"));
            for (k, v) in t.labels.unwrap_or_default() {
                if !is_label_name(&k) || k.starts_with("__") {
                    return Err(ctx(format!("invalid label name {k:?}")));
                }
                labels.insert(k, v);
            }
            let body_size_limit = match &t.body_size_limit {
                Some(b) => byte_size(b).map_err(ctx)?,
                None => 0,
            };
            targets.push(Target {
                url,
                interval,
                timeout,
                ca_file: t.ca_file,
                bearer_token_file: t.bearer_token_file,
                insecure_skip_verify: t.insecure_skip_verify,
                labels,
                sample_limit: t.sample_limit,
                body_size_limit,
            });
        }
        // Two targets with the same labels would write the same `up` series and mark each
        // other's series stale (the kubelet's /metrics and /metrics/cadvisor on one
        // host:port, say): refused, naming both.
        for (i, a) in targets.iter().enumerate() {
            if let Some((j, b)) = targets
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, b)| b.labels == a.labels)
            {
                return Err(invalid(format!(
                    "targets[{i}] ({}) and targets[{j}] ({}) have the same labels {}: give one of them a label of its own (e.g. job)",
                    a.shown_url(),
                    b.shown_url(),
                    a.store_labels()
                )));
            }
        }
        Ok(ScrapeConfig { targets })
    }
}

impl Target {
    /// The URL as logs and errors show it: a password in it is `xxxxx`, as Go's
    /// `url.Redacted` shows it.
    pub fn shown_url(&self) -> String {
        redacted(self.url.as_str())
    }

    /// The target's labels as the store takes them.
    pub fn store_labels(&self) -> Labels {
        Labels::from_pairs(self.labels.iter())
    }

    /// An HTTP client for this target: rustls, its CA bundle (instead of the system's
    /// roots, as Prometheus' `ca_file` does), its timeout.
    pub fn client(&self) -> Result<reqwest::Client, ScrapeError> {
        let mut settings = ClientSettings::new(self.timeout);
        settings.timeout = Some(self.timeout);
        settings.ca = self.ca_file.as_ref().map(|path| Pem::file("caFile", path));
        settings.insecure_skip_verify = self.insecure_skip_verify;
        settings.user_agent = Some(concat!("promhpa/", env!("CARGO_PKG_VERSION")));
        settings.build().map_err(|e| ScrapeError::Target {
            url: self.shown_url(),
            message: e.to_string(),
        })
    }
}

/// Fetches the target's exposition once; the error says why the scrape failed.
async fn fetch(client: &reqwest::Client, target: &Target) -> Result<String, String> {
    let mut req = client
        .get(target.url.clone())
        .header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1",
        )
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    if let Some(f) = &target.bearer_token_file {
        let token = tokio::fs::read_to_string(f)
            .await
            .map_err(|e| format!("reading bearerTokenFile {}: {e}", f.display()))?;
        req = req.bearer_auth(token.trim());
    }
    let mut resp = req.send().await.map_err(|e| describe(&e, &target.url))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let limit = target.body_size_limit;
    let too_big = || format!("body size limit exceeded: the answer is larger than {limit} bytes");
    if limit > 0 && resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e, &target.url))? {
        if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|e| format!("the answer is not UTF-8: {e}"))?;
    if target.sample_limit > 0 {
        let samples = sample_lines(&text);
        if samples > target.sample_limit {
            return Err(format!(
                "sample limit exceeded: {samples} samples, the limit is {}",
                target.sample_limit
            ));
        }
    }
    Ok(text)
}

/// The samples of an exposition: its lines that are neither blank nor comments.
fn sample_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.is_empty() && !l.starts_with('#')
        })
        .count()
}

/// A reqwest error with its causes, which carry the TLS or connection detail.
fn describe(e: &reqwest::Error, url: &url::Url) -> String {
    let mut msg = if e.is_timeout() {
        "scrape timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    // reqwest names the URL it was given, password included.
    if url.password().is_some() {
        msg = msg.replace(url.as_str(), &redacted(url.as_str()));
    }
    msg
}

/// Scrapes `target` once at the current time and records the outcome in `backend`.
/// Returns whether the scrape succeeded.
pub async fn scrape_once(
    backend: &EmbeddedBackend,
    client: &reqwest::Client,
    target: &Target,
    labels: &Labels,
) -> bool {
    let t = now_ms();
    let start = Instant::now();
    let body = fetch(client, target).await;
    let duration = start.elapsed().as_secs_f64();
    if let Err(e) = &body {
        tracing::warn!(target = %target.shown_url(), labels = %labels, error = %e, "scrape failed");
    }
    match backend.record_scrape(labels, t, duration, body.as_deref().map_err(Clone::clone)) {
        Ok(stats) => {
            if stats.rejected > 0 {
                tracing::warn!(target = %target.shown_url(), rejected = stats.rejected, "samples dropped: the embedded store holds --max-series series");
            }
            tracing::debug!(target = %target.shown_url(), samples = stats.samples, "scraped");
            true
        }
        Err(e) => {
            if body.is_ok() {
                tracing::warn!(target = %target.shown_url(), error = %e, "scrape failed");
            }
            false
        }
    }
}

/// Starts one task per target on the current tokio runtime, plus one that enforces the
/// store's retention every `retention_every`. A target whose client cannot be built (a
/// missing CA file) is an error before anything starts.
pub fn spawn(
    backend: Arc<EmbeddedBackend>,
    config: &ScrapeConfig,
    retention_every: Duration,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ScrapeError> {
    let mut prepared = Vec::with_capacity(config.targets.len());
    for target in &config.targets {
        prepared.push((target.clone(), target.client()?));
    }
    let mut handles = Vec::with_capacity(prepared.len() + 1);
    for (target, client) in prepared {
        let backend = backend.clone();
        handles.push(tokio::spawn(async move {
            let labels = target.store_labels();
            let mut ticker = tokio::time::interval(target.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tracing::info!(target = %target.shown_url(), interval = ?target.interval, "scraping");
            loop {
                ticker.tick().await;
                scrape_once(&backend, &client, &target, &labels).await;
            }
        }));
    }
    handles.push(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(retention_every.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            // Relative to the clock, not to the newest sample: one sample stamped in the
            // future by a broken exporter must not age every other series out.
            backend.enforce_retention_at(now_ms());
        }
    }));
    Ok(handles)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
