//! Runner for Prometheus-style PromQL test scripts (`load`, `eval instant at`, `eval_fail`,
//! `eval_ordered`, `eval range from ... to ... step`, `clear`, `#` comments).

use std::collections::HashMap;

use crate::eval::{instant_query, parse, range_query, EvalOptions};
use crate::labels::Labels;
use crate::store::{stale_nan, Store};
use crate::value::Value;
use crate::EvalError;

/// Outcome of running one script.
#[derive(Debug, Default, Clone)]
pub struct ScriptReport {
    /// Number of `eval` cases that passed.
    pub passed: usize,
    /// One line per failing case: `file:line: command: reason`.
    pub failures: Vec<String>,
}

/// Parses a Prometheus/model duration such as `5m`, `1h30m`, `90s`, `0`, `250ms`.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    promhpa_core::duration::parse_prometheus_duration_ms(s).ok()
}

/// One value of a series description: a sample, a gap (`_`) or a staleness marker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeqValue {
    Value(f64),
    Omitted,
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        "stale" => Some(stale_nan()),
        _ => {
            if s.is_empty()
                || !s
                    .bytes()
                    .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return None;
            }
            s.parse().ok()
        }
    }
}

/// Expands series values in Prometheus' notation: `1 2 _ stale`, `0+10x100`, `5x3`,
/// `1-1x4`, `_x3`.
pub fn expand_values(text: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok == "_" {
            out.push(SeqValue::Omitted);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: u64 = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            out.extend((0..n).map(|_| SeqValue::Omitted));
            continue;
        }
        if let Some(xpos) = tok.rfind('x') {
            let (head, times) = (&tok[..xpos], &tok[xpos + 1..]);
            let times: u64 = times
                .parse()
                .map_err(|_| format!("bad repetition count in {tok:?}"))?;
            // Split the head into a start value and a signed increment.
            let hb = head.as_bytes();
            let mut split = None;
            for i in 1..hb.len() {
                if (hb[i] == b'+' || hb[i] == b'-') && !matches!(hb[i - 1], b'e' | b'E') {
                    split = Some(i);
                }
            }
            let (start, incr) = match split {
                Some(i) => (&head[..i], &head[i..]),
                None => (head, "0"),
            };
            let mut v =
                parse_number(start).ok_or_else(|| format!("bad value {start:?} in {tok:?}"))?;
            let d = parse_number(incr).ok_or_else(|| format!("bad increment in {tok:?}"))?;
            out.push(SeqValue::Value(v));
            for _ in 0..times {
                v += d;
                out.push(SeqValue::Value(v));
            }
            continue;
        }
        out.push(SeqValue::Value(
            parse_number(tok).ok_or_else(|| format!("bad value {tok:?}"))?,
        ));
    }
    Ok(out)
}

fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().ok_or("expected a quoted string")?;
    if quote != '"' && quote != '\'' && quote != '`' {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, &s[1 + i + c.len_utf8()..]));
        }
        if c == '\\' && quote != '`' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other)
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

/// Parses `name{a="b", ...}` at the start of `s`; returns the labels and the rest.
pub fn parse_series_labels(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if name_end > 0 {
        pairs.push(("__name__".into(), s[..name_end].to_string()));
    }
    let mut rest = &s[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            let (lname, r) = if rest.starts_with('"') {
                parse_quoted(rest)?
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return Err(format!("bad label list at {rest:?}"));
                }
                (rest[..end].to_string(), &rest[end..])
            };
            let r = r.trim_start();
            match r.strip_prefix('=') {
                Some(r) => {
                    let (value, r) = parse_quoted(r.trim_start())?;
                    pairs.push((lname, value));
                    rest = r;
                }
                None => {
                    // A lone quoted string is the metric name.
                    pairs.push(("__name__".into(), lname));
                    rest = r;
                }
            }
        }
    } else if name_end == 0 {
        return Err(format!("expected a series description at {s:?}"));
    }
    Ok((Labels::from_pairs(pairs), rest))
}

/// A result series as the runner compares it: labels (none for a scalar) and values.
type GotSeries = (Option<Labels>, Vec<SeqValue>);

struct Expected {
    labels: Option<Labels>,
    values: Vec<SeqValue>,
}

fn values_equal(expected: f64, got: f64) -> bool {
    if expected.is_nan() || got.is_nan() {
        return expected.is_nan() && got.is_nan();
    }
    if expected == got {
        return true;
    }
    (expected - got).abs() <= 1e-12 * expected.abs().max(got.abs())
}

enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// A store without retention or series limits, for scripts.
fn unbounded_store() -> Store {
    Store::with_limits(crate::store::StoreLimits {
        retention_ms: i64::MAX / 4,
        max_series: usize::MAX,
    })
}

/// Builds a store from the `load` blocks of a script (honouring `clear`), ignoring its
/// `eval` commands. Errors name the first bad line.
pub fn load_script(text: &str) -> Result<Store, String> {
    let mut store = unbounded_store();
    let lines: Vec<&str> = text.lines().collect();
    let mut interval: Option<i64> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        if !indented {
            interval = None;
            if line == "clear" {
                store.clear();
            } else if let Some(rest) = line.strip_prefix("load ") {
                interval = Some(
                    parse_duration_ms(rest.trim())
                        .ok_or_else(|| format!("line {}: bad load interval", i + 1))?,
                );
            }
            continue;
        }
        let Some(interval) = interval else {
            continue;
        };
        let (labels, rest) =
            parse_series_labels(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let vals = expand_values(rest).map_err(|e| format!("line {}: {e}", i + 1))?;
        for (k, v) in vals.into_iter().enumerate() {
            if let SeqValue::Value(v) = v {
                store
                    .append(&labels, k as i64 * interval, v)
                    .map_err(|e| format!("line {}: {e}", i + 1))?;
            }
        }
    }
    Ok(store)
}

/// Runs a test script. `name` prefixes the failure lines.
pub fn run_script(name: &str, text: &str) -> ScriptReport {
    let mut report = ScriptReport::default();
    let mut store = unbounded_store();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let is_body = |l: &str| !l.trim().is_empty() && (l.starts_with(' ') || l.starts_with('\t'));
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "clear" {
            store.clear();
            continue;
        }
        if let Some(rest) = line.strip_prefix("load ") {
            let Some(interval) = parse_duration_ms(rest.trim()) else {
                report
                    .failures
                    .push(format!("{name}:{lineno}: {line}: bad load interval"));
                continue;
            };
            while i < lines.len() && (is_body(lines[i]) || lines[i].trim().starts_with('#')) {
                let l = lines[i].trim();
                let ln = i + 1;
                i += 1;
                if l.starts_with('#') {
                    continue;
                }
                let res = parse_series_labels(l).and_then(|(labels, rest)| {
                    let vals = expand_values(rest)?;
                    for (k, v) in vals.into_iter().enumerate() {
                        if let SeqValue::Value(v) = v {
                            store
                                .append(&labels, k as i64 * interval, v)
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    Ok(())
                });
                if let Err(e) = res {
                    report.failures.push(format!("{name}:{ln}: {l}: {e}"));
                }
            }
            continue;
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !cmd.starts_with("eval") {
            report
                .failures
                .push(format!("{name}:{lineno}: {line}: unknown command {cmd:?}"));
            continue;
        }
        let mut expect_fail = cmd == "eval_fail";
        let ordered = cmd == "eval_ordered";
        let parsed = parse_eval_header(rest);
        // Collect the expectation lines.
        let mut expected = Vec::new();
        let mut body_error = None;
        while i < lines.len() && is_body(lines[i]) {
            let l = lines[i].trim();
            i += 1;
            if l.starts_with('#') {
                continue;
            }
            if let Some(e) = l.strip_prefix("expect ") {
                if e.trim_start().starts_with("fail") {
                    expect_fail = true;
                }
                continue;
            }
            match parse_expected(l) {
                Ok(e) => expected.push(e),
                Err(e) => body_error = Some(e),
            }
        }
        let case = format!("{name}:{lineno}: {line}");
        let (kind, query) = match parsed {
            Ok(p) => p,
            Err(e) => {
                report.failures.push(format!("{case}: {e}"));
                continue;
            }
        };
        if let Some(e) = body_error {
            report.failures.push(format!("{case}: {e}"));
            continue;
        }
        let outcome = run_case(&store, kind, query, &expected, expect_fail, ordered);
        match outcome {
            Ok(()) => report.passed += 1,
            Err(reason) => report.failures.push(format!("{case}: {reason}")),
        }
    }
    report
}

fn parse_eval_header(rest: &str) -> Result<(EvalKind, &str), String> {
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.trim_start().split_once(' ').ok_or("missing expression")?;
        let at = parse_duration_ms(t).ok_or_else(|| format!("bad time {t:?}"))?;
        return Ok((EvalKind::Instant { at }, q.trim()));
    }
    if let Some(r) = rest.strip_prefix("range from ") {
        let mut it = r.trim_start().splitn(6, ' ');
        let start = it.next().and_then(parse_duration_ms);
        let to = it.next();
        let end = it.next().and_then(parse_duration_ms);
        let stepkw = it.next();
        let step = it.next().and_then(parse_duration_ms);
        let q = it.next();
        return match (start, to, end, stepkw, step, q) {
            (Some(start), Some("to"), Some(end), Some("step"), Some(step), Some(q)) => {
                Ok((EvalKind::Range { start, end, step }, q.trim()))
            }
            _ => Err("bad range eval header".into()),
        };
    }
    Err(format!("unsupported eval form {rest:?}"))
}

fn parse_expected(l: &str) -> Result<Expected, String> {
    let first = l.chars().next().unwrap_or(' ');
    if first == '{' || first.is_ascii_alphabetic() && !l.starts_with("NaN") && !l.starts_with("Inf")
    {
        let (labels, rest) = parse_series_labels(l)?;
        Ok(Expected {
            labels: Some(labels),
            values: expand_values(rest)?,
        })
    } else {
        Ok(Expected {
            labels: None,
            values: expand_values(l)?,
        })
    }
}

fn fmt_values(v: &[SeqValue]) -> String {
    v.iter()
        .map(|x| match x {
            SeqValue::Value(f) => crate::gofloat::format_api_float(*f),
            SeqValue::Omitted => "_".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_case(
    store: &Store,
    kind: EvalKind,
    query: &str,
    expected: &[Expected],
    expect_fail: bool,
    ordered: bool,
) -> Result<(), String> {
    let opts = EvalOptions::default();
    let result: Result<Vec<GotSeries>, EvalError> = parse(query).and_then(|expr| match kind {
        EvalKind::Instant { at } => instant_query(store, &expr, at, opts).map(|v| match v {
            Value::Scalar(f) => vec![(None, vec![SeqValue::Value(f)])],
            Value::Vector(samples) => samples
                .into_iter()
                .map(|s| (Some(s.labels), vec![SeqValue::Value(s.v)]))
                .collect(),
            Value::Matrix(m) => m
                .into_iter()
                .map(|s| {
                    (
                        Some(s.labels),
                        s.points.iter().map(|p| SeqValue::Value(p.1)).collect(),
                    )
                })
                .collect(),
            Value::String(_) => Vec::new(),
        }),
        EvalKind::Range { start, end, step } => range_query(store, &expr, start, end, step, opts)
            .map(|series| {
                let steps = ((end - start) / step + 1) as usize;
                series
                    .into_iter()
                    .map(|s| {
                        let mut vals = vec![SeqValue::Omitted; steps];
                        for (t, v) in s.points {
                            let idx = ((t - start) / step) as usize;
                            if idx < steps {
                                vals[idx] = SeqValue::Value(v);
                            }
                        }
                        let labels =
                            if s.labels.is_empty() && expected.iter().all(|e| e.labels.is_none()) {
                                None
                            } else {
                                Some(s.labels)
                            };
                        (labels, vals)
                    })
                    .collect()
            }),
    });
    let got = match (result, expect_fail) {
        (Err(_), true) => return Ok(()),
        (Ok(_), true) => return Err("expected an error, evaluation succeeded".into()),
        (Err(e), false) => return Err(format!("unexpected error: {e}")),
        (Ok(g), false) => g,
    };
    if got.len() != expected.len() {
        let got_s: Vec<String> = got
            .iter()
            .map(|(l, v)| {
                format!(
                    "{} {}",
                    l.as_ref().map(|l| l.to_string()).unwrap_or_default(),
                    fmt_values(v)
                )
            })
            .collect();
        return Err(format!(
            "expected {} result(s), got {}: [{}]",
            expected.len(),
            got.len(),
            got_s.join("; ")
        ));
    }
    // A scalar result may be written bare or as `{} value`.
    let got_scalar = got.len() == 1 && got[0].0.is_none();
    let mut by_labels: HashMap<Option<Labels>, (usize, Vec<SeqValue>)> = HashMap::new();
    for (pos, (l, v)) in got.into_iter().enumerate() {
        by_labels.insert(l, (pos, v));
    }
    for (pos, e) in expected.iter().enumerate() {
        let key = match &e.labels {
            Some(l) if got_scalar && l.is_empty() => None,
            other => other.clone(),
        };
        let Some((got_pos, got_vals)) = by_labels.get(&key) else {
            return Err(format!(
                "expected series {} not in the result",
                e.labels
                    .as_ref()
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "scalar".into())
            ));
        };
        if ordered && *got_pos != pos {
            return Err(format!(
                "expected {} at position {pos}, got it at {got_pos}",
                e.labels.as_ref().map(|l| l.to_string()).unwrap_or_default()
            ));
        }
        let same = got_vals.len() == e.values.len()
            && got_vals.iter().zip(&e.values).all(|(g, x)| match (g, x) {
                (SeqValue::Omitted, SeqValue::Omitted) => true,
                (SeqValue::Value(g), SeqValue::Value(x)) => values_equal(*x, *g),
                _ => false,
            });
        if !same {
            return Err(format!(
                "{}: expected {}, got {}",
                e.labels
                    .as_ref()
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "scalar".into()),
                fmt_values(&e.values),
                fmt_values(got_vals)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_notation() {
        let v = expand_values("0+10x3 _ stale 1x2 _x2 -1-1x1").unwrap();
        assert_eq!(v.len(), 4 + 1 + 1 + 3 + 2 + 2);
        assert_eq!(v[3], SeqValue::Value(30.0));
        assert_eq!(v[4], SeqValue::Omitted);
        assert!(matches!(v[5], SeqValue::Value(f) if crate::store::is_stale(f)));
        assert_eq!(v[12], SeqValue::Value(-2.0));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("0s"), Some(0));
        assert_eq!(parse_duration_ms("5x"), None);
    }

    #[test]
    fn failing_case_is_reported() {
        let r = run_script(
            "t",
            "load 1m\n  a{x=\"1\"} 1 2 3\n\neval instant at 2m a\n  a{x=\"1\"} 4\n\neval instant at 2m a\n  a{x=\"1\"} 3\n",
        );
        assert_eq!(r.passed, 1);
        assert_eq!(r.failures.len(), 1);
        assert!(r.failures[0].starts_with("t:4:"), "{:?}", r.failures);
    }
}
