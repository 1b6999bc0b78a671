//! Query results in the JSON shape of Prometheus' HTTP API (`/api/v1/query`).

use std::fmt::Write;

use crate::gofloat::format_api_sample;
use crate::labels::Labels;
use crate::value::{SeriesPoints, Value};

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn metric(labels: &Labels, out: &mut String) {
    out.push('{');
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        escape(n, out);
        out.push(':');
        escape(v, out);
    }
    out.push('}');
}

/// Writes milliseconds as seconds the way Prometheus' API does: whole seconds, then, when
/// there is a fraction, a dot and exactly three digits (`1.500`, `0.007`).
fn timestamp(t_ms: i64, out: &mut String) {
    let abs = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    let _ = write!(out, "{}", abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

fn point(t_ms: i64, v: f64, out: &mut String) {
    out.push('[');
    timestamp(t_ms, out);
    out.push(',');
    escape(&format_api_sample(v), out);
    out.push(']');
}

fn matrix(series: &[SeriesPoints], out: &mut String) {
    out.push('[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        metric(&s.labels, out);
        out.push_str(",\"values\":[");
        for (j, (t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            point(*t, *v, out);
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// Renders an instant query's result evaluated at `ts_ms` as the body of a successful
/// `/api/v1/query` response.
pub fn query_response(value: &Value, ts_ms: i64) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar(v) => point(ts_ms, *v, &mut out),
        Value::String(s) => {
            out.push('[');
            timestamp(ts_ms, &mut out);
            out.push(',');
            escape(s, &mut out);
            out.push(']');
        }
        Value::Vector(v) => {
            out.push('[');
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                metric(&s.labels, &mut out);
                out.push_str(",\"value\":");
                point(ts_ms, s.v, &mut out);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(m) => matrix(m, &mut out),
    }
    out.push_str("}}");
    out
}

/// Renders a range query's result as the body of a successful `/api/v1/query_range`
/// response.
pub fn query_range_response(series: &[SeriesPoints]) -> String {
    let mut out =
        String::from("{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":");
    matrix(series, &mut out);
    out.push_str("}}");
    out
}

/// Renders an error the way Prometheus' API does.
pub fn error_response(error_type: &str, message: &str) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    escape(error_type, &mut out);
    out.push_str(",\"error\":");
    escape(message, &mut out);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Sample;

    #[test]
    fn timestamps_like_prometheus() {
        let mut out = String::new();
        for t in [0, 1_500, 7, -1_250, 3_000_000] {
            timestamp(t, &mut out);
            out.push(' ');
        }
        assert_eq!(out, "0 1.500 0.007 -1.250 3000 ");
    }

    #[test]
    fn vector_shape() {
        let v = Value::Vector(vec![Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            t: 0,
            v: f64::INFINITY,
        }]);
        assert_eq!(
            query_response(&v, 1_500),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.500,"+Inf"]}]}}"#
        );
    }
}
