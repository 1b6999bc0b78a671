//! Decoding of Prometheus API response bodies into typed results.

use std::collections::BTreeMap;
use std::fmt;

use promhpa_core::backend::{QueryValue, RangeSeries, Sample, SeriesInfo};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
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

/// The `data` of a query response, its `result` decoded by its `resultType` in one pass.
/// Prometheus writes `resultType` first; a `result` that comes before it is held as a JSON
/// value until the type is known.
struct QueryData {
    result_type: String,
    result: QueryResult,
}

enum QueryResult {
    Vector(Vec<RawSample>),
    Matrix(Vec<RawSeries>),
    Scalar((f64, SampleValue)),
    String((f64, String)),
    /// A type this client does not know; its result is skipped.
    Other,
}

impl QueryResult {
    fn decode<'de, D: Deserializer<'de>>(result_type: &str, d: D) -> Result<Self, D::Error> {
        Ok(match result_type {
            "vector" => QueryResult::Vector(Deserialize::deserialize(d)?),
            "matrix" => QueryResult::Matrix(Deserialize::deserialize(d)?),
            "scalar" => QueryResult::Scalar(Deserialize::deserialize(d)?),
            "string" => QueryResult::String(Deserialize::deserialize(d)?),
            _ => {
                IgnoredAny::deserialize(d)?;
                QueryResult::Other
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum DataKey {
    ResultType,
    Result,
    #[serde(other)]
    Other,
}

/// Decodes the `result` that follows a known `resultType`.
struct ResultOf<'t>(&'t str);

impl<'de> de::DeserializeSeed<'de> for ResultOf<'_> {
    type Value = QueryResult;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<QueryResult, D::Error> {
        QueryResult::decode(self.0, d)
    }
}

impl<'de> Deserialize<'de> for QueryData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DataV;
        impl<'de> Visitor<'de> for DataV {
            type Value = QueryData;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("query data with resultType and result")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryData, A::Error> {
                let mut result_type: Option<String> = None;
                let mut result: Option<QueryResult> = None;
                let mut early: Option<serde_json::Value> = None;
                while let Some(key) = map.next_key::<DataKey>()? {
                    match key {
                        DataKey::ResultType => result_type = Some(map.next_value()?),
                        DataKey::Result => match &result_type {
                            Some(t) => result = Some(map.next_value_seed(ResultOf(t))?),
                            None => early = Some(map.next_value()?),
                        },
                        DataKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let result_type =
                    result_type.ok_or_else(|| de::Error::missing_field("resultType"))?;
                let result = match (result, early) {
                    (Some(r), _) => r,
                    (None, Some(v)) => QueryResult::decode(&result_type, v).map_err(|e| {
                        de::Error::custom(format!("decoding {result_type} result: {e}"))
                    })?,
                    (None, None) => return Err(de::Error::missing_field("result")),
                };
                Ok(QueryData {
                    result_type,
                    result,
                })
            }
        }
        d.deserialize_map(DataV)
    }
}

/// A sample value as Prometheus writes it, a JSON string (`"1.25"`, `"NaN"`, `"+Inf"`),
/// parsed where it is read instead of kept as a string.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueV;
        impl Visitor<'_> for ValueV {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sample value string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                parse_sample_value(v).map(SampleValue).map_err(E::custom)
            }
        }
        d.deserialize_str(ValueV)
    }
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, SampleValue),
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, SampleValue)>,
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
    match data.result {
        QueryResult::Vector(raw) => Ok(QueryValue::Vector(
            raw.into_iter()
                .map(|s| Sample {
                    labels: s.metric,
                    value: s.value.1 .0,
                    timestamp_ms: ts_ms(s.value.0),
                })
                .collect(),
        )),
        QueryResult::Matrix(raw) => Ok(QueryValue::Matrix(
            raw.into_iter()
                .map(|s| RangeSeries {
                    labels: s.metric,
                    points: s.values.into_iter().map(|(t, v)| (ts_ms(t), v.0)).collect(),
                })
                .collect(),
        )),
        QueryResult::Scalar((t, v)) => Ok(QueryValue::Scalar {
            value: v.0,
            timestamp_ms: ts_ms(t),
        }),
        QueryResult::String((t, v)) => Ok(QueryValue::String {
            value: v,
            timestamp_ms: ts_ms(t),
        }),
        QueryResult::Other => Err(format!("unknown result type \"{}\"", data.result_type)),
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
    fn the_result_may_come_before_its_type() {
        let body = br#"{"data":{"result":[{"value":[1.5,"2"],"metric":{"pod":"a"}}],
            "extra":{"x":[1]},"resultType":"vector"},"status":"success","warnings":["w"]}"#;
        let QueryValue::Vector(v) = parse_query_response(body).unwrap() else {
            panic!("not a vector")
        };
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].value, v[0].timestamp_ms), (2.0, 1500));
        assert_eq!(v[0].labels.get("pod").map(String::as_str), Some("a"));
        let QueryValue::String {
            value,
            timestamp_ms,
        } = parse_query_response(
            br#"{"status":"success","data":{"resultType":"string","result":[3,"a \"b\""]}}"#,
        )
        .unwrap()
        else {
            panic!("not a string")
        };
        assert_eq!((value.as_str(), timestamp_ms), ("a \"b\"", 3000));
        let err = parse_query_response(
            br#"{"status":"success","data":{"resultType":"histogram","result":[]}}"#,
        )
        .unwrap_err();
        assert!(err.contains("unknown result type \"histogram\""), "{err}");
        assert!(parse_query_response(br#"{"status":"success","data":{"result":[]}}"#).is_err());
        assert!(parse_query_response(
            br#"{"status":"success","data":{"result":[{"value":[1,"z"]}],"resultType":"vector"}}"#
        )
        .is_err());
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
