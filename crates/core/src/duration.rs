//! Go-style durations (`30s`, `1m30s`, `-90s`, `1.5h`, `250ms`) as used by Kubernetes flags
//! and the conformance files, and Prometheus durations (`5m`, `1d`, `2w`) as used in PromQL.

use std::fmt;

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration \"{input}\": {message}")]
pub struct DurationError {
    pub input: String,
    pub message: String,
}

/// Parse a Go `time.ParseDuration` string into signed milliseconds (sub-millisecond parts are
/// truncated toward zero). Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. `0` alone is allowed.
pub fn parse_go_duration_ms(input: &str) -> Result<i64, DurationError> {
    let err = |m: &str| DurationError {
        input: input.to_string(),
        message: m.to_string(),
    };
    let mut s = input.trim();
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(err("empty duration"));
    }
    let mut total_ns: f64 = 0.0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let num: f64 = s[start..i].parse().map_err(|_| err("expected a number"))?;
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit_ns = match &s[ustart..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit")),
            u => return Err(err(&format!("unknown unit \"{u}\""))),
        };
        total_ns += num * unit_ns;
    }
    let ms = (total_ns / 1e6).trunc() as i64;
    Ok(if negative { -ms } else { ms })
}

/// Parse a non-negative Go duration (`20s`, `1m30s`), as duration flags take them.
pub fn parse_go_duration(input: &str) -> Result<std::time::Duration, DurationError> {
    let ms = parse_go_duration_ms(input)?;
    u64::try_from(ms)
        .map(std::time::Duration::from_millis)
        .map_err(|_| DurationError {
            input: input.to_string(),
            message: "must not be negative".into(),
        })
}

/// Parse a Prometheus duration (`5m`, `1h30m`, `1d`, `2w`, `1y`, `500ms`) into milliseconds.
pub fn parse_prometheus_duration_ms(input: &str) -> Result<i64, DurationError> {
    let err = |m: &str| DurationError {
        input: input.to_string(),
        message: m.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty duration"));
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let num: i64 = s[start..i]
            .parse()
            .map_err(|_| err("expected a whole number"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            "" => return Err(err("missing unit")),
            u => return Err(err(&format!("unknown unit \"{u}\""))),
        };
        total = num
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("duration out of range"))?;
    }
    Ok(total)
}

/// A millisecond duration printed the way Prometheus prints durations (`1m30s`, `5m`, `0s`).
pub struct PromDuration(pub i64);

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        for (unit, size) in [
            ("y", 31_536_000_000),
            ("w", 604_800_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// Milliseconds as Go's `time.Duration.String` prints them (`3m0s`, `1h0m0s`, `1.5s`,
/// `250ms`, `0s`), the form `metav1.Duration` takes in JSON.
pub fn format_go_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    if abs < 1000 {
        return format!("{sign}{abs}ms");
    }
    let (h, rest) = (abs / 3_600_000, abs % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_go_duration_ms("-90s"), Ok(-90_000));
        assert_eq!(parse_go_duration_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_go_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_go_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_go_duration_ms("0"), Ok(0));
        assert!(parse_go_duration_ms("5").is_err());
        assert!(parse_go_duration_ms("5x").is_err());
        assert!(parse_go_duration_ms("").is_err());
    }

    #[test]
    fn go_durations_of_flags_are_not_negative() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_go_duration("-1s").map_err(|e| e.to_string()),
            Err("invalid duration \"-1s\": must not be negative".to_string())
        );
        assert!(parse_go_duration("20").is_err());
    }

    #[test]
    fn prometheus_durations() {
        assert_eq!(parse_prometheus_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_prometheus_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_prometheus_duration_ms("1d"), Ok(86_400_000));
        assert!(parse_prometheus_duration_ms("1.5m").is_err());
        assert_eq!(PromDuration(90_000).to_string(), "1m30s");
        assert_eq!(PromDuration(300_000).to_string(), "5m");
        assert_eq!(PromDuration(0).to_string(), "0s");
    }

    #[test]
    fn formats_as_go_prints_durations() {
        for (ms, want) in [
            (0, "0s"),
            (250, "250ms"),
            (1500, "1.5s"),
            (30_000, "30s"),
            (180_000, "3m0s"),
            (90_500, "1m30.5s"),
            (3_600_000, "1h0m0s"),
            (-15_000, "-15s"),
        ] {
            assert_eq!(format_go_duration_ms(ms), want);
            assert_eq!(parse_go_duration_ms(want), Ok(ms), "{want}");
        }
    }
}
