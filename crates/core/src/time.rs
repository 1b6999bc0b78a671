//! Calendar arithmetic and times as Kubernetes and Prometheus write them: RFC 3339 and Unix
//! seconds. Shared by the API server (sample timestamps), the evaluator (date functions, API
//! times) and the HPA simulation (history files).

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `2024-05-01T12:30:00Z`, `2024-05-01T12:30:00.250+02:00` and the like into
/// milliseconds since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if y > 99_999 || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut c = hms.splitn(3, ':');
    let (h, mi, se) = (num(c.next()?)?, num(c.next()?)?, num(c.next()?)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let millis = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        num(frac)?;
        num(&digits)?
    };
    let offset_s = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z[1..].split_once(':')?;
            sign * (num(zh)? * 3600 + num(zm)? * 60)
        }
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    secs.checked_mul(1000)?.checked_add(millis)
}

/// Parses a time as Prometheus' API does: Unix seconds (`1700000000.5`) or RFC 3339.
pub fn parse_api_time_ms(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs.abs() < 9.2e15 {
            return Some((secs * 1000.0).round() as i64);
        }
        return None;
    }
    parse_rfc3339_ms(s)
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the epoch as an RFC 3339 UTC time with second precision
/// (`2024-05-01T12:30:00Z`, `metav1.Time`'s JSON form).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    if !(0..=9999).contains(&y) {
        // Outside four digits: what `format!` writes (a sign, more digits).
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        );
    }
    // Written digit by digit: every answer carries a timestamp per item.
    let mut out = [0u8; 20];
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, (sod % 3600) / 60);
    put(17, 2, sod % 60);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        out[at] = c;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// The current time in milliseconds since the Unix epoch (0 for a clock before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_format_would() {
        let by_format = |ms: i64| {
            let secs = ms.div_euclid(1000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                sod / 3600,
                (sod % 3600) / 60,
                sod % 60
            )
        };
        let mut ms: i64 = -70_000_000_000_000;
        while ms < 300_000_000_000_000 {
            assert_eq!(format_rfc3339(ms), by_format(ms), "{ms}");
            ms += 7_919_123_457;
        }
        for ms in [
            0,
            -1,
            999,
            1_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_001,
        ] {
            assert_eq!(format_rfc3339(ms), by_format(ms), "{ms}");
        }
    }

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [
            0,
            -1000,
            1_709_208_000_000,
            4_102_444_800_000,
            -62_135_596_800_000,
        ] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(format_rfc3339(1_709_208_000_250), "2024-02-29T12:00:00Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:00:00.25Z"),
            Some(1_709_208_000_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T14:00:00+02:00"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(parse_rfc3339_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2024-01-01"), None);
        assert_eq!(parse_rfc3339_ms("2024-01-01T00:00:00"), None);
        assert_eq!(parse_api_time_ms("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_api_time_ms("NaN"), None);
        assert_eq!(parse_rfc3339_ms("99999999999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2024-01-01T00:00:00Zjunk"), None);
        assert_eq!(parse_rfc3339_ms("2024-01-01T00:00:00.ä5Z"), None);
    }
}
