//! The serving limits' flags: kube-apiserver's names where it has the setting
//! (`--max-requests-inflight`, `--request-timeout`, `--http2-max-streams-per-connection`),
//! promhpa's own for the connection timeouts Go's server takes from code.

use std::time::Duration;

use promhpa_apiserver::server::ServingLimits;

use promhpa_core::duration::parse_go_duration;

/// Timeouts and caps on client connections and requests.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitFlags {
    /// The maximum number of requests served at once; past it the answer is a 429
    /// TooManyRequests Status with Retry-After. Health probes are not counted. 0: no limit.
    #[arg(long, default_value_t = 400, value_name = "N")]
    pub max_requests_inflight: usize,
    /// The longest a request may take before a 504 Timeout Status; a caller's shorter
    /// `timeout=` query parameter (the aggregator forwards its own) wins, and backend
    /// queries get what is left of it (at most --prometheus-query-timeout).
    #[arg(long, default_value = "1m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// The maximum number of open client connections. At the limit a new connection closes
    /// the one that has waited longest without a request in flight (still in its TLS
    /// handshake, sending headers, or idle), or is refused when all are serving. 0: no limit.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,
    /// Time allowed for a client's TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub tls_handshake_timeout: Duration,
    /// Time allowed to receive a complete request head (request line and headers): from the
    /// end of the handshake for the first request, from its first byte for later ones.
    #[arg(long, default_value = "10s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub request_header_timeout: Duration,
    /// How long a connection without a request in flight stays open (keep-alive).
    #[arg(long, default_value = "90s", value_parser = parse_go_duration, value_name = "DURATION")]
    pub idle_connection_timeout: Duration,
    /// The largest request head accepted, in bytes (HTTP/1.1 request line and headers,
    /// HTTP/2 header list); larger HTTP/1.1 heads get 431.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_request_header_bytes: usize,
    /// Concurrent streams a client may open on one HTTP/2 connection (0: 250, Go's default).
    #[arg(long, default_value_t = 250, value_name = "N")]
    pub http2_max_streams_per_connection: u32,
}

impl LimitFlags {
    /// The serving limits, or every flag whose value cannot be one.
    pub fn limits(&self) -> Result<ServingLimits, Vec<String>> {
        let mut errors = Vec::new();
        for (flag, d) in [
            ("--request-timeout", self.request_timeout),
            ("--tls-handshake-timeout", self.tls_handshake_timeout),
            ("--request-header-timeout", self.request_header_timeout),
            ("--idle-connection-timeout", self.idle_connection_timeout),
        ] {
            if d.is_zero() {
                errors.push(format!("{flag} must be positive"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ServingLimits {
            tls_handshake_timeout: self.tls_handshake_timeout,
            request_header_timeout: self.request_header_timeout,
            idle_timeout: self.idle_connection_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            max_requests_inflight: self.max_requests_inflight,
            max_request_header_bytes: self.max_request_header_bytes,
            // 0 is Go's default, as for the generic API server.
            http2_max_streams_per_connection: match self.http2_max_streams_per_connection {
                0 => 250,
                n => n,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parse;

    #[test]
    fn defaults_match_the_generic_apiserver_where_it_has_them() {
        let f: LimitFlags = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        let l = f.limits().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.max_requests_inflight, 400);
        assert_eq!(l.request_timeout, Duration::from_secs(60));
        assert_eq!(l.idle_timeout, Duration::from_secs(90));
        assert_eq!(l.max_request_header_bytes, 1 << 20);
        let f: LimitFlags = parse(&["--request-timeout=0s"]).unwrap_or_else(|e| panic!("{e}"));
        let e = f.limits().err().unwrap_or_default();
        assert_eq!(e, vec!["--request-timeout must be positive"]);
        // 0 streams is the generic API server's default: Go's 250.
        let f: LimitFlags =
            parse(&["--http2-max-streams-per-connection=0"]).unwrap_or_else(|e| panic!("{e}"));
        let l = f.limits().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(l.http2_max_streams_per_connection, 250);
    }
}
