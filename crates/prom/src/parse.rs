//! Decoding of Prometheus API response bodies into typed results.

use std::collections::BTreeMap;

use promhpa_core::backend::{QueryValue, RangeSeries, Sample, SeriesInfo};
use serde::Deserialize;

use crate::series::SeriesScanner;

/// The body Prometheus sends with `"status": "error"`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    pub status: String,
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    #[serde(default)]
    pub error: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Parse a sample value string: decimal numbers, `NaN`, `+Inf`, `-Inf`.
pub fn parse_sample_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|_| format!("invalid sample value \"{s}\"")),
    }
}

fn ts_ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// Parse the body of `/api/v1/query` or `/api/v1/query_range`.
pub fn parse_query_response(body: &[u8]) -> Result<QueryValue, String> {
    let env: Envelope<QueryData> =
        serde_json::from_slice(body).map_err(|e| format!("decoding query response: {e}"))?;
    if env.status != "success" {
        return Err(format!("query failed: {}: {}", env.error_type, env.error));
    }
    let data = env
        .data
        .ok_or_else(|| "query response has no data".to_string())?;
    let bad = |e: serde_json::Error| format!("decoding {} result: {e}", data.result_type);
    match data.result_type.as_str() {
        "vector" => {
            let raw: Vec<RawSample> = serde_json::from_value(data.result.clone()).map_err(bad)?;
            let mut out = Vec::with_capacity(raw.len());
            for s in raw {
                out.push(Sample {
                    labels: s.metric,
                    value: parse_sample_value(&s.value.1)?,
                    timestamp_ms: ts_ms(s.value.0),
                });
            }
            Ok(QueryValue::Vector(out))
        }
        "matrix" => {
            let raw: Vec<RawSeries> = serde_json::from_value(data.result.clone()).map_err(bad)?;
            let mut out = Vec::with_capacity(raw.len());
            for s in raw {
                let mut points = Vec::with_capacity(s.values.len());
                for (t, v) in s.values {
                    points.push((ts_ms(t), parse_sample_value(&v)?));
                }
                out.push(RangeSeries {
                    labels: s.metric,
                    points,
                });
            }
            Ok(QueryValue::Matrix(out))
        }
        "scalar" => {
            let (t, v): (f64, String) = serde_json::from_value(data.result.clone()).map_err(bad)?;
            Ok(QueryValue::Scalar {
                value: parse_sample_value(&v)?,
                timestamp_ms: ts_ms(t),
            })
        }
        "string" => {
            let (t, v): (f64, String) = serde_json::from_value(data.result.clone()).map_err(bad)?;
            Ok(QueryValue::String {
                value: v,
                timestamp_ms: ts_ms(t),
            })
        }
        other => Err(format!("unknown result type \"{other}\"")),
    }
}

/// Parse the body of `/api/v1/series` into distinct metric names with their label-name sets,
/// sorted.
pub fn parse_series_response(body: &[u8]) -> Result<Vec<SeriesInfo>, String> {
    let mut scanner = SeriesScanner::new();
    scanner.feed(body)?;
    scanner.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000.5,"1.25"]},
            {"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]},
            {"metric":{"pod":"c"},"value":[1700000000.5,"+Inf"]},
            {"metric":{"pod":"d"},"value":[1700000000.5,"-Inf"]}]}}"#;
        let QueryValue::Vector(v) = parse_query_response(body).unwrap() else {
            panic!("not a vector")
        };
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].value, 1.25);
        assert_eq!(v[0].timestamp_ms, 1_700_000_000_500);
        assert_eq!(v[0].labels.get("pod").map(String::as_str), Some("a"));
        assert!(v[1].value.is_nan());
        assert_eq!(v[2].value, f64::INFINITY);
        assert_eq!(v[3].value, f64::NEG_INFINITY);
    }

    #[test]
    fn scalar_matrix_and_errors() {
        let QueryValue::Scalar {
            value,
            timestamp_ms,
        } = parse_query_response(
            br#"{"status":"success","data":{"resultType":"scalar","result":[12.0,"3"]}}"#,
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!((value, timestamp_ms), (3.0, 12_000));
        let QueryValue::Matrix(m) = parse_query_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m[0].points, vec![(1000, 1.0), (2000, 2.0)]);
        assert!(parse_query_response(b"<html>").is_err());
        assert!(parse_query_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#
        )
        .is_err());
        let err = parse_query_response(
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("bad_data") && err.contains("parse error"),
            "{err}"
        );
    }

    #[test]
    fn series_are_reduced_to_names_and_label_sets() {
        let body = br#"{"status":"success","data":[
            {"__name__":"up","job":"a","instance":"x"},
            {"__name__":"up","job":"b","instance":"y"},
            {"__name__":"up","job":"b"},
            {"__name__":"http_requests_total","pod":"p","namespace":"n"}]}"#;
        let s = parse_series_response(body).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "http_requests_total");
        assert_eq!(
            s[1].label_names
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            vec!["instance", "job"]
        );
        assert_eq!(s[2].label_names.len(), 1);
        assert!(parse_series_response(br#"{"status":"success","data":[1]}"#).is_err());
    }
}
