//! Float parsing and formatting the way Go's `strconv` does it, which is what Prometheus uses
//! for `le` labels, sample values and API output.

/// Parses `s` like Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1p-2`)
/// literals, digit-separating underscores per Go literal rules, `Inf`/`Infinity`/`NaN` in any
/// case with an optional sign on the infinities.
pub fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if body.eq_ignore_ascii_case("nan") {
        if body.len() != s.len() {
            return None;
        }
        return Some(f64::NAN);
    }
    let cleaned: String;
    let body = if body.contains('_') {
        if !underscores_ok(body) {
            return None;
        }
        cleaned = body.chars().filter(|c| *c != '_').collect();
        cleaned.as_str()
    } else {
        body
    };
    let is_hex = body.len() > 2 && body.as_bytes()[0] == b'0' && body.as_bytes()[1] | 0x20 == b'x';
    let v = if is_hex {
        parse_hex_float(&body[2..].to_ascii_lowercase())?
    } else {
        if body.is_empty()
            || !body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            || !body.bytes().any(|c| c.is_ascii_digit())
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.to_ascii_lowercase().is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut m: u64 = 0;
    let mut e2: i32 = exp;
    let mut sticky = false;
    for c in int_part.chars() {
        let d = c.to_digit(16)? as u64;
        if m >> 58 == 0 {
            m = m * 16 + d;
        } else {
            e2 = e2.checked_add(4)?;
            sticky |= d != 0;
        }
    }
    for c in frac_part.chars() {
        let d = c.to_digit(16)? as u64;
        if m >> 58 == 0 {
            m = m * 16 + d;
            e2 = e2.checked_sub(4)?;
        } else {
            sticky |= d != 0;
        }
    }
    if sticky {
        m |= 1;
    }
    Some(m as f64 * 2f64.powi(e2))
}

/// Formats like Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus' spellings of the
/// special values (`+Inf`, `-Inf`, `NaN`): `count_values`' label values, and sample values
/// in the HTTP API between 1e-6 and 1e21 ([`format_api_sample`]).
pub fn format_api_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Formats like Go's `strconv.FormatFloat(v, 'g', -1, 64)`.
pub fn format_go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, exp) = shortest_digits(v);
    // Go decides between %e and %f with precision 6 when printing the shortest form.
    if !(-4..6).contains(&exp) {
        exponent_form(v, &digits, exp)
    } else {
        let sign = if v < 0.0 { "-" } else { "" };
        format!("{sign}{}", format_api_float(v.abs()))
    }
}

/// The shortest round-trip decimal digits of a finite `v` (no sign, no point) and the
/// exponent of the first digit, from Rust's `{:e}`.
fn shortest_digits(v: f64) -> (String, i32) {
    let e = format!("{:e}", v.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    (mant.chars().filter(|c| c.is_ascii_digit()).collect(), exp)
}

/// `d.ddde±XX` as Go's `%e` writes it: at least two exponent digits.
fn exponent_form(v: f64, digits: &str, exp: i32) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let mut m = digits[..1].to_string();
    if digits.len() > 1 {
        m.push('.');
        m.push_str(&digits[1..]);
    }
    let es = if exp < 0 { '-' } else { '+' };
    format!("{sign}{m}e{es}{:02}", exp.abs())
}

/// A sample value as Prometheus' HTTP API writes it (`jsonutil.MarshalFloat`): Go's `'f'`
/// shortest form, but `'e'` (`1e+21`, `1e-07`) when the magnitude is at least 1e21 or
/// below 1e-6.
pub fn format_api_sample(v: f64) -> String {
    let a = v.abs();
    if a.is_finite() && a != 0.0 && !(1e-6..1e21).contains(&a) {
        let (digits, exp) = shortest_digits(v);
        exponent_form(v, &digits, exp)
    } else {
        format_api_float(v)
    }
}

/// Formats like Prometheus' `FormatOpenMetricsFloat`: Go `%g` shortest, with `.0` appended
/// when the result has neither a `.` nor an exponent (`1` → `1.0`).
pub fn format_openmetrics_float(v: f64) -> String {
    let s = format_go_g(v);
    if v.is_nan() || v.is_infinite() || s.contains('e') || s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_spellings() {
        assert_eq!(parse_go_float("0x1p-1"), Some(0.5));
        assert_eq!(parse_go_float("1_000"), Some(1000.0));
        assert_eq!(parse_go_float("1__0"), None);
        assert_eq!(parse_go_float("_1"), None);
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("-infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_go_float("INF"), Some(f64::INFINITY));
        assert!(parse_go_float("nan").is_some_and(f64::is_nan));
        assert_eq!(parse_go_float("-nan"), None);
        assert_eq!(parse_go_float(".2"), Some(0.2));
        assert_eq!(parse_go_float("2.0e-1"), Some(0.2));
        assert_eq!(parse_go_float("Hello World"), None);
        assert_eq!(parse_go_float(""), None);
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_g(1e6), "1e+06");
        assert_eq!(format_go_g(100000.0), "100000");
        assert_eq!(format_go_g(0.0001), "0.0001");
        assert_eq!(format_go_g(0.00001), "1e-05");
        assert_eq!(format_go_g(1234567.0), "1.234567e+06");
        assert_eq!(format_openmetrics_float(1.0), "1.0");
        assert_eq!(format_openmetrics_float(0.25), "0.25");
        assert_eq!(format_openmetrics_float(f64::INFINITY), "+Inf");
        assert_eq!(format_api_float(0.1), "0.1");
        assert_eq!(format_api_float(1e21), "1000000000000000000000");
        assert_eq!(format_go_g(-1.5e-300), "-1.5e-300");
    }

    /// Prometheus' `jsonutil.MarshalFloat`: exponent form from 1e21 up and below 1e-6.
    #[test]
    fn api_samples_switch_to_exponent_form_where_prometheus_does() {
        assert_eq!(format_api_sample(1e21), "1e+21");
        assert_eq!(format_api_sample(-1e21), "-1e+21");
        assert_eq!(
            format_api_sample(999999999999999900000.0),
            "999999999999999900000"
        );
        assert_eq!(format_api_sample(1e-7), "1e-07");
        assert_eq!(format_api_sample(1e-6), "0.000001");
        assert_eq!(format_api_sample(5e-324), "5e-324");
        assert_eq!(
            format_api_sample(5.54062238439351e34),
            "5.54062238439351e+34"
        );
        assert_eq!(format_api_sample(1.5e300), "1.5e+300");
        assert_eq!(format_api_sample(0.0), "0");
        assert_eq!(format_api_sample(-0.0), "-0");
        assert_eq!(format_api_sample(f64::NAN), "NaN");
        assert_eq!(format_api_sample(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_api_sample(0.1), "0.1");
    }
}
