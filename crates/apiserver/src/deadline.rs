//! The deadline of the request being served, as the generic API server derives it: the
//! caller's `timeout=` query parameter (the aggregator forwards the time its client has
//! left) when it is shorter than `--request-timeout`, otherwise `--request-timeout`.
//!
//! The serving layer sets it around each request ([`scope`]); handlers read what is left
//! with [`remaining`] and give backend queries that budget instead of a fixed one.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Run `fut` with `deadline` as the current request's deadline.
pub async fn scope<F: Future>(deadline: Instant, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// The current request's deadline, when the serving layer set one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the current request's deadline (zero when it has passed), or `None`
/// outside a request with a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The budget of a backend call made for the current request: what is left, less a
/// margin (a tenth, at most one second) so that the backend's failure, which names it,
/// reaches the client before the request's own timeout does. `fallback` without a deadline.
pub fn backend_budget(fallback: Duration) -> Duration {
    match remaining() {
        Some(left) => left.saturating_sub((left / 10).min(Duration::from_secs(1))),
        None => fallback,
    }
}

/// Parse a `timeout=` value as Go's `time.ParseDuration` does (`1.5s`, `250ms`, `1m30s`).
pub fn parse_timeout_param(value: &str) -> Result<Duration, String> {
    let ms = promhpa_core::duration::parse_go_duration_ms(value).map_err(|e| e.to_string())?;
    // Go's durations are nanoseconds in an int64: about 292 years at most, and a longer one
    // does not parse.
    if ms.unsigned_abs() > (i64::MAX / 1_000_000) as u64 {
        return Err(format!("time: invalid duration \"{value}\""));
    }
    Ok(Duration::from_millis(ms.max(0) as u64))
}

/// The timeout of a request: the caller's when it is positive and shorter than
/// `request_timeout`, otherwise `request_timeout` (as the generic API server clamps it).
pub fn effective_timeout(caller: Option<Duration>, request_timeout: Duration) -> Duration {
    match caller {
        Some(c) if !c.is_zero() && c < request_timeout => c,
        _ => request_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_timeouts_are_clamped_like_the_generic_apiserver() {
        let max = Duration::from_secs(60);
        assert_eq!(effective_timeout(None, max), max);
        assert_eq!(
            effective_timeout(Some(Duration::from_secs(5)), max),
            Duration::from_secs(5)
        );
        assert_eq!(effective_timeout(Some(Duration::ZERO), max), max);
        assert_eq!(effective_timeout(Some(Duration::from_secs(600)), max), max);
        assert!(parse_timeout_param("99999999h")
            .unwrap_err()
            .contains("invalid duration"));
        assert_eq!(
            parse_timeout_param("2562047h").unwrap(),
            Duration::from_secs(2_562_047 * 3600)
        );
        assert_eq!(
            parse_timeout_param("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_timeout_param("soon").is_err());
    }

    #[tokio::test]
    async fn the_budget_leaves_a_margin_inside_the_deadline() {
        assert_eq!(
            backend_budget(Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        let budget = scope(deadline, async { backend_budget(Duration::from_secs(7)) }).await;
        assert!(budget <= Duration::from_millis(1800), "{budget:?}");
        assert!(budget > Duration::from_millis(1000), "{budget:?}");
        let late = scope(Instant::now(), async {
            backend_budget(Duration::from_secs(7))
        })
        .await;
        assert_eq!(late, Duration::ZERO);
    }
}
