//! YAML through serde, read and written the same way everywhere: with serde-saphyr, the YAML
//! library kube-client brings. (Rule files have their own reader, which keeps every node's
//! line for its messages.)
//!
//! Reading follows YAML 1.2 where the Rust type leaves it open, as JSON does: `yes`, `on`
//! and `012` are strings. Errors are one line that ends with where the problem is
//! (`... at line 3, column 7`).
//!
//! ```
//! use promhpa_core::yaml;
//! let v: serde_json::Value = yaml::from_str("a: yes\nb: 012\nc:\n").unwrap();
//! assert_eq!(v, serde_json::json!({"a": "yes", "b": "012", "c": null}));
//! let err = yaml::from_str::<serde_json::Value>("a: [1\n").unwrap_err();
//! assert!(err.to_string().contains("line 1"), "{err}");
//! ```

use serde::de::{Deserialize, DeserializeOwned};
use serde::Serialize;

pub use serde_saphyr::{Error, SerializeError};

/// The reading rules.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // YAML 1.2 booleans only: `yes`, `no`, `on`, `off` are strings
        strict_booleans: true,
        // a plain `key:`, `~` or `null` read into a string is its text
        null_as_string: true,
        // where no type is asked for, `012` and `1_000` are strings (not YAML 1.2 numbers)
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        // where no type is asked for, `.inf` and `.nan` are numbers (null in a JSON value)
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        // comments are skipped, not kept (nothing to buffer however many there are)
        emit_comments: false,
        // messages on one line
        with_snippet: false,
    }
}

/// The one document of `text` as a `T`. Text without a document (empty, or only comments)
/// reads as null; text with several documents is an error.
pub fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Every document of `text` (`---`-separated) as a `T`, in order. A document that is not a
/// `T` is an error in its place and the next ones are still read; text that is not YAML
/// ends the list with its error. Empty documents (and `null` ones) are left out.
pub fn documents<T: DeserializeOwned>(text: &str) -> Vec<Result<T, Error>> {
    let mut bytes = text.as_bytes();
    serde_saphyr::read_with_options(&mut bytes, options()).collect()
}

/// `value` as a YAML document: block style, two-space indentation, list items at their key's
/// indentation, strings with line breaks as `|` blocks, and strings that must be quoted in
/// single quotes where they can be (`'{job!=""}'`), so also those that a YAML 1.1 reader
/// (Go's YAML, so kubectl) would take for something else (`'on'`, `'1.0'`).
pub fn to_string(value: &serde_json::Value) -> Result<String, SerializeError> {
    serde_saphyr::to_string_with_options(&Quoting(value), writing_options())
}

/// The writing rules.
fn writing_options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        // a long string stays on its line instead of being folded into a `>` block
        folded_wrap_chars: usize::MAX,
    }
}

/// A JSON value whose strings that must be quoted are written in single quotes, which need
/// no escapes, unless they hold a single quote or a character only double quotes can write.
struct Quoting<'a>(&'a serde_json::Value);

impl Serialize for Quoting<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            serde_json::Value::String(text) if single_quoted(text) => {
                serde_saphyr::SingleQuoted(text.as_str()).serialize(serializer)
            }
            serde_json::Value::Array(items) => serializer.collect_seq(items.iter().map(Quoting)),
            serde_json::Value::Object(fields) => {
                serializer.collect_map(fields.iter().map(|(k, v)| (k, Quoting(v))))
            }
            other => other.serialize(serializer),
        }
    }
}

/// Whether `text` is to be written in single quotes: it must be quoted (the serializer
/// would write it in double quotes), it holds no single quote, and no character that needs
/// an escape.
fn single_quoted(text: &str) -> bool {
    let double_quoted = serde_saphyr::to_string_with_options(&text, writing_options())
        .is_ok_and(|written| written.starts_with('"'));
    let unfit = |c: char| {
        c == '\''
            || c.is_control()
            || matches!(
                c,
                '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
            )
    };
    double_quoted && !text.chars().any(unfit)
}

/// Remove the fields that are null from every object in `value`, as the Kubernetes API
/// server reads an object: a null field is one not set (so `metrics:` with nothing after it
/// is no list rather than a null where a list belongs).
pub fn drop_null_fields(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            fields.retain(|_, v| !v.is_null());
            fields.values_mut().for_each(drop_null_fields);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_fields),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn scalars_read_as_yaml_1_2_where_the_type_is_open() {
        let v: Value =
            from_str("a: on\nb: 0755\nc: 1_000\nd: 0x1F\ne: .inf\nf: ~\ng: 1.5\nh: true\n")
                .unwrap();
        assert_eq!(
            v,
            json!({"a": "on", "b": "0755", "c": "1_000", "d": 31, "e": null, "f": null,
                   "g": 1.5, "h": true})
        );
    }

    #[test]
    fn a_null_read_into_a_string_is_its_text() {
        #[derive(serde::Deserialize)]
        struct S {
            a: String,
            b: String,
        }
        let s: S = from_str("a:\nb: ~\n").unwrap();
        assert_eq!((s.a.as_str(), s.b.as_str()), ("", "~"));
    }

    #[test]
    fn empty_text_is_null_and_several_documents_are_an_error() {
        assert_eq!(from_str::<Value>("# nothing\n").unwrap(), Value::Null);
        let err = from_str::<Value>("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn documents_are_read_one_by_one() {
        let docs = documents::<Value>("a: 1\n---\n---\nb: x\n---\nb: [\n");
        assert_eq!(docs.len(), 3, "{docs:?}");
        assert_eq!(docs[0].as_ref().unwrap(), &json!({"a": 1}));
        assert_eq!(docs[1].as_ref().unwrap(), &json!({"b": "x"}));
        let err = docs[2].as_ref().unwrap_err().to_string();
        assert!(err.contains("line 6"), "{err}");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct N {
            n: i32,
        }
        let typed = documents::<N>("n: x\n---\nn: 2\n");
        assert!(typed[0].is_err() && typed[1].is_ok(), "{typed:?}");
        assert!(documents::<Value>("").is_empty());
    }

    #[test]
    fn written_yaml_reads_back_and_is_plain_for_a_yaml_1_1_reader() {
        let v = json!({
            "on": "yes",
            "version": "1.0",
            "query": "sum(rate(x[2m])) by (namespace, pod) / on(namespace, pod) group_left sum(kube_pod_info) by (namespace, pod)",
            "config": "rules:\n- a\n",
            "list": [{"name": "a", "port": 1}],
            "empty": {},
            "selector": "{job!=\"\"}",
            "tab": "a\tb",
            "quote": "it's: x",
        });
        let text = to_string(&v).unwrap();
        assert_eq!(from_str::<Value>(&text).unwrap(), v);
        assert!(text.contains("\"on\": 'yes'\n"), "{text}");
        assert!(text.contains("version: '1.0'\n"), "{text}");
        assert!(text.contains("selector: '{job!=\"\"}'\n"), "{text}");
        assert!(text.contains("tab: \"a\\tb\"\n"), "{text}");
        assert!(text.contains("quote: \"it's: x\"\n"), "{text}");
        assert!(text.contains("query: sum(rate(x[2m]))"), "{text}");
        assert!(text.contains("config: |\n  rules:\n  - a\n"), "{text}");
        assert!(text.contains("list:\n- name: a\n  port: 1\n"), "{text}");
    }

    #[test]
    fn null_fields_are_dropped_at_every_depth() {
        let mut v = json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}, null]});
        drop_null_fields(&mut v);
        assert_eq!(v, json!({"b": {"d": 1}, "e": [{}, null]}));
    }
}
