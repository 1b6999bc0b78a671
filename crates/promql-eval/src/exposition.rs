//! Ingest of the Prometheus text exposition format (0.0.4) and OpenMetrics text.

use std::collections::HashMap;

use crate::gofloat::{format_openmetrics_float, parse_go_float};
use crate::labels::Labels;
use crate::store::Store;
use crate::testscript::parse_series_labels;
use crate::EvalError;

/// What an ingest did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    /// Samples appended.
    pub samples: usize,
    /// Samples dropped because their series would have exceeded the series limit.
    pub rejected: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    Histogram,
    Summary,
    Other,
}

/// A sample line: its series is either known from the scrape cache or still to be created.
struct Parsed<'t> {
    raw_series: &'t str,
    series: ParsedSeries,
    t: Option<i64>,
    v: f64,
}

enum ParsedSeries {
    Known(crate::store::SeriesId),
    New(Labels),
}

/// Splits a sample line into its series part (`name{...}`) and the rest, honouring quotes
/// inside the label list.
fn split_series(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] != b'{' && !b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && b[i] == b'{' {
        let mut in_quote = false;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' if in_quote => i += 1,
                b'"' => in_quote = !in_quote,
                b'}' if !in_quote => return Some((&line[..=i], &line[i + 1..])),
                _ => {}
            }
            i += 1;
        }
        return None;
    }
    Some((&line[..i], &line[i..]))
}

/// True when the text is OpenMetrics (it ends with `# EOF`).
pub fn is_openmetrics(text: &str) -> bool {
    text.lines().any(|l| l.trim_end() == "# EOF")
}

fn family_of(name: &str, types: &HashMap<String, Family>) -> Family {
    if let Some(f) = types.get(name) {
        return *f;
    }
    for suffix in ["_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(f) = types.get(base) {
                return *f;
            }
        }
    }
    Family::Other
}

/// Parses exposition `text` and appends its samples to `store`. Samples without a timestamp
/// are stamped `default_ts_ms`; timestamps in the text are milliseconds (text format) or
/// seconds (OpenMetrics). `extra` labels (a target's labels) are added to every series; a
/// scraped label of the same name is kept as `exported_<name>`, as Prometheus does without
/// `honor_labels`.
/// `le` of histograms and `quantile` of summaries are normalised as Prometheus 3.x does
/// (`1` → `1.0`). A malformed line rejects the whole text, as a failed scrape does.
pub fn ingest(
    store: &mut Store,
    text: &str,
    default_ts_ms: i64,
    extra: &Labels,
) -> Result<IngestStats, EvalError> {
    ingest_tracking(store, text, default_ts_ms, extra, None)
}

/// [`ingest`], also collecting into `stamped` the series whose samples carried no timestamp
/// of their own (the ones a scrape's staleness tracking covers).
pub(crate) fn ingest_tracking(
    store: &mut Store,
    text: &str,
    default_ts_ms: i64,
    extra: &Labels,
    mut stamped: Option<&mut Vec<crate::store::SeriesId>>,
) -> Result<IngestStats, EvalError> {
    let openmetrics = is_openmetrics(text);
    // The scrape cache is kept per target: two targets may expose identical text.
    let target_key = extra.to_string();
    let mut types: HashMap<String, Family> = HashMap::new();
    let mut parsed: Vec<Parsed> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.split_whitespace();
            match parts.next() {
                Some("TYPE") => {
                    let name = parts.next().unwrap_or("");
                    let family = match parts.next() {
                        Some("histogram") | Some("gaugehistogram") => Family::Histogram,
                        Some("summary") => Family::Summary,
                        _ => Family::Other,
                    };
                    types.insert(name.to_string(), family);
                }
                Some("EOF") => break,
                _ => {}
            }
            continue;
        }
        let err = |message: String| EvalError::Exposition {
            line: lineno,
            message,
        };
        let (raw_series, rest) =
            split_series(line).ok_or_else(|| err("unterminated label list".into()))?;
        let series = match store.scrape_cache_get(&target_key, raw_series) {
            Some(id) => ParsedSeries::Known(id),
            None => {
                let (labels, after) = parse_series_labels(raw_series).map_err(err)?;
                if !after.trim().is_empty() {
                    return Err(err(format!("unexpected text {after:?} in series")));
                }
                if labels.metric_name().is_none() {
                    return Err(err("sample without a metric name".into()));
                }
                ParsedSeries::New(labels)
            }
        };
        // Drop an OpenMetrics exemplar.
        let rest = match rest.find(" # ") {
            Some(p) if openmetrics => &rest[..p],
            _ => rest,
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| err("missing sample value".into()))?;
        let v = parse_go_float(value).ok_or_else(|| err(format!("bad sample value {value:?}")))?;
        let t = match fields.next() {
            None => None,
            Some(ts) if openmetrics => {
                let secs: f64 = ts
                    .parse()
                    .map_err(|_| err(format!("bad timestamp {ts:?}")))?;
                Some((secs * 1000.0).round() as i64)
            }
            Some(ts) => Some(
                ts.parse::<i64>()
                    .map_err(|_| err(format!("bad timestamp {ts:?}")))?,
            ),
        };
        if fields.next().is_some() {
            return Err(err("unexpected text after the timestamp".into()));
        }
        parsed.push(Parsed {
            raw_series,
            series,
            t,
            v,
        });
    }
    let mut stats = IngestStats::default();
    for p in parsed {
        let id = match p.series {
            ParsedSeries::Known(id) => id,
            ParsedSeries::New(mut labels) => {
                let name = labels.metric_name().unwrap_or("").to_string();
                let normalise = match family_of(&name, &types) {
                    Family::Histogram if name.ends_with("_bucket") => Some("le"),
                    Family::Summary => Some("quantile"),
                    _ => None,
                };
                if let Some(label) = normalise {
                    if let Some(f) = labels.get(label).and_then(parse_go_float) {
                        labels.set(label, &format_openmetrics_float(f));
                    }
                }
                for (n, v) in extra.iter() {
                    if let Some(existing) = labels.get(n).map(str::to_string) {
                        let mut exported = format!("exported_{n}");
                        while labels.get(&exported).is_some() {
                            exported = format!("exported_{exported}");
                        }
                        labels.set(&exported, &existing);
                    }
                    labels.set(n, v);
                }
                match store.series_id(&labels) {
                    Ok(id) => {
                        store.scrape_cache_put(&target_key, p.raw_series, id);
                        id
                    }
                    Err(_) => {
                        stats.rejected += 1;
                        continue;
                    }
                }
            }
        };
        if p.t.is_none() {
            if let Some(ids) = stamped.as_deref_mut() {
                ids.push(id);
            }
        }
        store.append_id(id, p.t.unwrap_or(default_ts_ms), p.v);
        stats.samples += 1;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingests_text_format_with_normalised_le() {
        let text = "# HELP x_seconds A histogram.\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"1\"} 3\nx_seconds_bucket{le=\"+Inf\"} 5 1000\nx_seconds_count 5\nup{job=\"a\\\"b\"} 1\n";
        let mut store = Store::new();
        let extra = Labels::from_pairs([("instance", "i")]);
        let stats = ingest(&mut store, text, 42, &extra).unwrap();
        assert_eq!(stats.samples, 4);
        let all = store.select(&[]);
        let mut le: Vec<_> = all.iter().filter_map(|s| s.labels.get("le")).collect();
        le.sort();
        assert_eq!(le, vec!["+Inf", "1.0"]);
        let find = |name: &str, le: Option<&str>| {
            all.iter()
                .find(|s| s.labels.metric_name() == Some(name) && s.labels.get("le") == le)
                .map(|s| s.samples.clone())
                .unwrap()
        };
        assert_eq!(find("x_seconds_bucket", Some("+Inf")), vec![(1000, 5.0)]);
        assert_eq!(find("x_seconds_bucket", Some("1.0")), vec![(42, 3.0)]);
        let up = all
            .iter()
            .find(|s| s.labels.metric_name() == Some("up"))
            .unwrap();
        assert_eq!(up.labels.get("job"), Some("a\"b"));
        assert!(all.iter().all(|s| s.labels.get("instance") == Some("i")));
        let mut store = Store::new();
        let extra = Labels::from_pairs([("namespace", "monitoring")]);
        ingest(&mut store, "m{namespace=\"prod\"} 1\n", 0, &extra).unwrap();
        let s = &store.select(&[])[0];
        assert_eq!(s.labels.get("namespace"), Some("monitoring"));
        assert_eq!(s.labels.get("exported_namespace"), Some("prod"));
    }

    #[test]
    fn openmetrics_timestamps_are_seconds_and_exemplars_ignored() {
        let text = "# TYPE c counter\nc_total 7 1.5 # {trace=\"x\"} 1 1.4\n# EOF\n";
        let mut store = Store::new();
        ingest(&mut store, text, 0, &Labels::empty()).unwrap();
        assert_eq!(store.select(&[])[0].samples, vec![(1500, 7.0)]);
    }

    #[test]
    fn malformed_line_rejects_everything() {
        let mut store = Store::new();
        let r = ingest(&mut store, "a 1\nb{ 2\n", 0, &Labels::empty());
        assert!(matches!(r, Err(EvalError::Exposition { line: 2, .. })));
        assert_eq!(store.series_count(), 0);
    }
}
