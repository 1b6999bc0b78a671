//! Durations counted into histograms without a lock, and the timings of the calls a
//! Prometheus client makes, kept per server and API endpoint so that `/metrics` can show
//! them whichever client (the flags' backend, a rule file's `backends` entry) made the call.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A histogram of durations whose upper bounds are nanoseconds, so that an observation
/// compares integers. Each bucket counts the observations that fall in it alone (the last
/// count is of those above every bound); the exposition adds them up. The total is the sum
/// of the buckets, so a scrape racing an observation still sees `+Inf` equal to `_count`.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    buckets: [AtomicU64; N],
    above: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram with the upper bounds `bounds`, in ascending order.
    pub const fn new(bounds: &'static [u64; N]) -> Self {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            above: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds.partition_point(|b| *b < nanos);
        match self.buckets.get(i) {
            Some(bucket) => bucket.fetch_add(1, Ordering::Relaxed),
            None => self.above.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The observations counted so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .chain(std::iter::once(&self.above))
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Appends the `_bucket`, `_sum` and `_count` samples of `name` with `labels` (the
    /// inside of the braces, without `le`; empty for none).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.above.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        if labels.is_empty() {
            let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
        } else {
            let _ = writeln!(
                out,
                "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {cumulative}"
            );
        }
    }
}

/// The upper bounds Prometheus' client libraries give a histogram by default (5 ms to 10 s),
/// in nanoseconds.
pub const DEFAULT_BUCKETS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// An endpoint of Prometheus' HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromApi {
    Query = 0,
    QueryRange = 1,
    Series = 2,
}

impl PromApi {
    /// Every endpoint, in the order of their numbers.
    pub const ALL: [PromApi; 3] = [PromApi::Query, PromApi::QueryRange, PromApi::Series];

    /// The endpoint's path under the server's base URL.
    pub fn path(self) -> &'static str {
        match self {
            PromApi::Query => "/api/v1/query",
            PromApi::QueryRange => "/api/v1/query_range",
            PromApi::Series => "/api/v1/series",
        }
    }
}

/// How long the calls to one server took, per endpoint: from sending the request until its
/// answer's body was read (or failed to be), for calls the server answered.
#[derive(Debug)]
pub struct ServerCalls {
    server: String,
    by_api: [Histogram<{ DEFAULT_BUCKETS.len() }>; 3],
}

impl ServerCalls {
    fn new(server: &str) -> ServerCalls {
        ServerCalls {
            server: server.to_string(),
            by_api: [const { Histogram::new(&DEFAULT_BUCKETS) }; 3],
        }
    }

    /// The server, as its client names it in these timings.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// One call to `api` took `d`.
    pub fn observe(&self, api: PromApi, d: Duration) {
        self.by_api[api as usize].observe(d);
    }

    /// The histogram of the calls to `api`.
    pub fn of(&self, api: PromApi) -> &Histogram<{ DEFAULT_BUCKETS.len() }> {
        &self.by_api[api as usize]
    }
}

/// The [`ServerCalls`] of every server a client was made for. A client made again for the
/// same server (a rule file reloaded) adds to the same timings, so they never go back to 0
/// while the process runs.
#[derive(Debug, Default)]
pub struct CallTimings {
    servers: Mutex<Vec<Arc<ServerCalls>>>,
}

impl CallTimings {
    /// The timings of the calls to `server`, made the first time it is named.
    pub fn server(&self, server: &str) -> Arc<ServerCalls> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = servers.iter().find(|s| s.server == server) {
            return s.clone();
        }
        let s = Arc::new(ServerCalls::new(server));
        servers.push(s.clone());
        s
    }

    /// Every server's timings, ordered by server.
    pub fn servers(&self) -> Vec<Arc<ServerCalls>> {
        let mut all = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.sort_by(|a, b| a.server.cmp(&b.server));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [u64; 3] = [1_000, 25_000, 1_000_000_000];

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_nanos(1_000));
        h.observe(Duration::from_nanos(1_001));
        h.observe(Duration::from_secs(2));
        assert_eq!(h.count(), 3);
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "a=\"b\"");
        assert_eq!(
            out,
            "x_seconds_bucket{a=\"b\",le=\"0.000001\"} 1\n\
             x_seconds_bucket{a=\"b\",le=\"0.000025\"} 2\n\
             x_seconds_bucket{a=\"b\",le=\"1\"} 2\n\
             x_seconds_bucket{a=\"b\",le=\"+Inf\"} 3\n\
             x_seconds_sum{a=\"b\"} 2.000002001\n\
             x_seconds_count{a=\"b\"} 3\n"
        );
        let mut out = String::new();
        Histogram::new(&BOUNDS).render(&mut out, "y", "");
        assert!(out.starts_with("y_bucket{le=\"0.000001\"} 0\n"), "{out}");
        assert!(out.ends_with("y_sum 0\ny_count 0\n"), "{out}");
    }

    #[test]
    fn default_buckets_print_as_the_client_libraries_print_them() {
        let mut out = String::new();
        Histogram::new(&DEFAULT_BUCKETS).render(&mut out, "d", "");
        let les: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("d_bucket{le=\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(
            les,
            [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                "+Inf"
            ]
        );
    }

    #[test]
    fn a_server_named_again_keeps_its_timings() {
        let t = CallTimings::default();
        t.server("https://b")
            .observe(PromApi::Series, Duration::from_millis(3));
        t.server("https://a");
        let again = t.server("https://b");
        assert_eq!(again.of(PromApi::Series).count(), 1);
        assert_eq!(again.of(PromApi::Query).count(), 0);
        let names: Vec<String> = t.servers().iter().map(|s| s.server().to_string()).collect();
        assert_eq!(names, ["https://a", "https://b"]);
    }
}
