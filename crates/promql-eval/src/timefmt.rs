//! Times as Prometheus' HTTP API accepts them: Unix seconds with an optional fraction, or
//! RFC 3339.

pub use promhpa_core::time::{parse_api_time_ms, parse_rfc3339_ms};
