//! What the tests against a real Prometheus share.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::{Duration, Instant};

use promhpa_core::backend::{Backend, BackendError, QueryValue, Sample};
use promhpa_prom::PromClient;
use promhpa_test_support::Prometheus;

pub use promhpa_core::time::now_ms;

/// The samples of `promql` once it returns `series` of them (after Prometheus' first
/// scrapes), asked through `client` every 250 ms for at most a minute.
pub async fn scraped(
    client: &PromClient,
    prom: &Prometheus,
    promql: &str,
    series: usize,
) -> Vec<Sample> {
    let start = Instant::now();
    loop {
        match client.query(promql, now_ms()).await {
            Ok(QueryValue::Vector(v)) if v.len() == series => return v,
            Ok(_) | Err(BackendError::Unavailable { .. }) => {}
            Err(e) => panic!("query failed: {e}\n{}", prom.log()),
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no data: {}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
