//! `--log-format=text`: log lines with klog's header, as Kubernetes components (and
//! prometheus-adapter) write them, so that the tools and habits made for those read promhpa's
//! too:
//!
//! ```text
//! W1206 13:31:26.308339   12345 serve.rs:83] --logtostderr is accepted for compatibility...
//! I1206 13:31:26.394947   12345 serve.rs:231] serving custom.metrics.k8s.io addr="127.0.0.1:6443"
//! ```
//!
//! The severity letter (`E`, `W`, `I`; debug and trace lines are `I`, as klog's verbose
//! lines are), the month and day, the UTC time to the microsecond, the process id, the
//! source file and line, then the message and its fields as `key=value` (strings quoted).
//! [`KubeJson`] is `--log-format=json`, as Kubernetes writes JSON logs.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The klog line format.
pub struct Klog {
    pid: u32,
}

impl Klog {
    pub fn new() -> Klog {
        Klog {
            pid: std::process::id(),
        }
    }
}

/// klog's severity letter.
fn severity(level: &Level) -> char {
    match *level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        _ => 'I',
    }
}

/// `MMDD hh:mm:ss.uuuuuu` in UTC for `micros` since the epoch.
fn timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (_, month, day) = promhpa_core::time::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{month:02}{day:02} {:02}:{:02}:{:02}.{:06}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        micros.rem_euclid(1_000_000)
    )
}

/// Now, as time since the epoch.
fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The file name (without its directories) of the line that logged, else its target.
fn source_file<'a>(meta: &'a tracing::Metadata<'a>) -> &'a str {
    meta.file()
        .map(|f| f.rsplit('/').next().unwrap_or(f))
        .unwrap_or_else(|| meta.target())
}

/// The message first, then the other fields as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            // Display-like values (`%addr`) come as Debug of their Display; quote them
            // when they hold spaces so that a line still splits into fields.
            let text = format!("{value:?}");
            if text.contains(' ') && !text.starts_with('"') {
                let _ = write!(self.rest, " {}={text:?}", field.name());
            } else {
                let _ = write!(self.rest, " {}={text}", field.name());
            }
        }
    }
}

impl<S, N> FormatEvent<S, N> for Klog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let micros = i64::try_from(since_epoch().as_micros()).unwrap_or(i64::MAX);
        let file = source_file(meta);
        let mut fields = Fields::default();
        event.record(&mut fields);
        // A message of several lines (a rule file's problems) keeps one entry: its further
        // lines are indented with a tab, as klog indents a multi-line value.
        let message = fields.message.trim_end().replace('\n', "\n\t");
        write!(
            writer,
            "{}{} {:>7} {}:{}] {}{}",
            severity(meta.level()),
            timestamp(micros),
            self.pid,
            file,
            meta.line().unwrap_or(0),
            message,
            fields.rest
        )?;
        writeln!(writer)
    }
}

/// `--log-format=json`: one object per line as Kubernetes components write them
/// (component-base's JSON format): `ts` (seconds since the epoch), `caller` (`file:line`),
/// `msg`, `v` (the verbosity: 0 for info, warning and error lines; 4 for debug, 6 for
/// trace), an `err` for error lines, then the fields at the top level.
pub struct KubeJson;

/// The fields of an event as JSON values.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: impl Into<serde_json::Value>) {
        self.rest.insert(field.name().to_string(), value.into());
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.put(field, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            // A Display value (`%addr`) comes as the Debug of its text; a Debug one as is.
            self.put(field, format!("{value:?}"));
        }
    }
}

impl<S, N> FormatEvent<S, N> for KubeJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ts = since_epoch().as_secs_f64();
        let file = source_file(meta);
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("ts".into(), serde_json::Value::from(ts));
        line.insert(
            "caller".into(),
            serde_json::Value::from(format!("{file}:{}", meta.line().unwrap_or(0))),
        );
        line.insert(
            "msg".into(),
            serde_json::Value::from(fields.message.trim_end()),
        );
        let v = match *meta.level() {
            Level::DEBUG => 4,
            Level::TRACE => 6,
            _ => 0,
        };
        if *meta.level() == Level::ERROR {
            let err = fields
                .rest
                .remove("error")
                .unwrap_or_else(|| serde_json::Value::from(fields.message.trim_end()));
            line.insert("err".into(), err);
        } else {
            line.insert("v".into(), serde_json::Value::from(v));
        }
        if *meta.level() == Level::WARN {
            line.insert("severity".into(), serde_json::Value::from("warning"));
        }
        for (k, value) in fields.rest {
            line.entry(k).or_insert(value);
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_header_is_klogs() {
        // 2026-12-06T13:31:26.308339Z
        assert_eq!(timestamp(1_796_563_886_308_339), "1206 13:31:26.308339");
        assert_eq!(timestamp(0), "0101 00:00:00.000000");
        assert_eq!(severity(&Level::ERROR), 'E');
        assert_eq!(severity(&Level::WARN), 'W');
        assert_eq!(severity(&Level::DEBUG), 'I');
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_has_the_header_the_message_and_the_fields() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Klog::new())
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], 6443).into();
            tracing::warn!(%addr, rule = "rules[0]", n = 3, "serving {} metrics", "custom");
            tracing::error!(reason = %"two words", "failed");
            tracing::error!("two problems:\nfirst\nsecond\n");
        });
        let text = String::from_utf8(buffer.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        let pid = format!(" {} klog.rs:", std::process::id());
        assert!(
            lines[0].starts_with('W') && lines[0].contains(&pid),
            "{text}"
        );
        assert!(
            lines[0]
                .ends_with("] serving custom metrics addr=127.0.0.1:6443 rule=\"rules[0]\" n=3"),
            "{text}"
        );
        assert!(lines[1].starts_with('E'), "{text}");
        assert!(
            lines[1].ends_with("] failed reason=\"two words\""),
            "{text}"
        );
    }

    #[test]
    fn json_lines_have_kubernetes_keys() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(KubeJson)
            .with_writer(move || out.clone())
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], 6443).into();
            tracing::info!(%addr, n = 3, "serving");
            tracing::error!(error = %"backend down", "query failed");
            tracing::trace!("query up");
        });
        let text = String::from_utf8(buffer.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["msg"], "serving");
        assert_eq!(lines[0]["v"], 0);
        assert_eq!(lines[0]["addr"], "127.0.0.1:6443");
        assert_eq!(lines[0]["n"], 3);
        assert!(lines[0]["ts"].as_f64().is_some_and(|t| t > 1.6e9), "{text}");
        assert!(
            lines[0]["caller"]
                .as_str()
                .is_some_and(|c| c.starts_with("klog.rs:")),
            "{text}"
        );
        assert_eq!(lines[1]["err"], "backend down");
        assert!(lines[1].get("v").is_none(), "{text}");
        assert_eq!(lines[2]["v"], 6);
    }
}
