//! Decoding of Prometheus API response bodies into typed results.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use promhpa_core::backend::{QueryValue, RangeSeries, Sample, SeriesInfo};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

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

/// The distinct `(name, label names)` pairs of a series list, collected while decoding so
/// that label values are never held beyond the series being read.
struct SeriesSet(HashSet<SeriesInfo>);

impl<'de> Deserialize<'de> for SeriesSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqV;
        impl<'de> Visitor<'de> for SeqV {
            type Value = SeriesSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of label sets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeriesSet, A::Error> {
                let mut set = HashSet::new();
                while let Some(info) = seq.next_element::<OneSeries>()? {
                    set.insert(info.0);
                }
                Ok(SeriesSet(set))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SeriesSet, E> {
                Ok(SeriesSet(HashSet::new()))
            }
        }
        d.deserialize_any(SeqV)
    }
}

struct OneSeries(SeriesInfo);

impl<'de> Deserialize<'de> for OneSeries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV;
        impl<'de> Visitor<'de> for MapV {
            type Value = OneSeries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OneSeries, A::Error> {
                let mut name = String::new();
                let mut label_names = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__name__" {
                        name = map.next_value::<String>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        label_names.insert(key);
                    }
                }
                Ok(OneSeries(SeriesInfo { name, label_names }))
            }
        }
        d.deserialize_map(MapV)
    }
}

/// Parse the body of `/api/v1/series` into distinct metric names with their label-name sets,
/// sorted.
pub fn parse_series_response(body: &[u8]) -> Result<Vec<SeriesInfo>, String> {
    let env: Envelope<SeriesSet> =
        serde_json::from_slice(body).map_err(|e| format!("decoding series response: {e}"))?;
    finish_series(env)
}

/// A blocking reader over body chunks sent through a channel; a sent error fails the read.
pub(crate) struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: std::sync::mpsc::Receiver<Result<bytes::Bytes, String>>) -> Self {
        ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.current = chunk,
                Ok(Err(message)) => return Err(std::io::Error::other(message)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// [`parse_series_response`] over a reader, decoding while the bytes arrive.
pub(crate) fn parse_series_reader(reader: impl std::io::Read) -> Result<Vec<SeriesInfo>, String> {
    let env: Envelope<SeriesSet> = serde_json::from_reader(std::io::BufReader::new(reader))
        .map_err(|e| format!("decoding series response: {e}"))?;
    finish_series(env)
}

fn finish_series(env: Envelope<SeriesSet>) -> Result<Vec<SeriesInfo>, String> {
    if env.status != "success" {
        return Err(format!(
            "series request failed: {}: {}",
            env.error_type, env.error
        ));
    }
    let mut out: Vec<SeriesInfo> = env
        .data
        .map(|s| s.0.into_iter().collect())
        .unwrap_or_default();
    out.sort();
    Ok(out)
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
        // The same body arriving in small chunks through the streaming reader.
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        for chunk in body.chunks(7) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).unwrap();
        }
        drop(tx);
        assert_eq!(parse_series_reader(ChannelReader::new(rx)).unwrap(), s);
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        tx.send(Ok(bytes::Bytes::from_static(b"{\"status\":\"succ")))
            .unwrap();
        tx.send(Err("connection reset".to_string())).unwrap();
        drop(tx);
        let err = parse_series_reader(ChannelReader::new(rx)).unwrap_err();
        assert!(err.contains("connection reset"), "{err}");
    }
}
