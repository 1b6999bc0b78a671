//! Label matchers and template data for a request, built in prometheus-adapter's order and
//! form (see `docs/compatibility.md` for the deliberate differences).

use std::collections::BTreeMap;

use promhpa_core::selector::{LabelSelector, Operator};

use crate::gotmpl::{go_quote, FieldKind, Val};

pub(crate) const QUERY_FIELDS: &[(&str, FieldKind)] = &[
    ("Series", FieldKind::Str),
    ("LabelMatchers", FieldKind::Str),
    ("LabelValuesByName", FieldKind::Map),
    ("GroupBy", FieldKind::Str),
    ("GroupBySlice", FieldKind::List),
];

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escape RE2 metacharacters as Go's `regexp.QuoteMeta` does.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn label_eq(label: &str, value: &str) -> String {
    format!("{label}={}", go_quote(value))
}
pub(crate) fn label_neq(label: &str, value: &str) -> String {
    format!("{label}!={}", go_quote(value))
}
pub(crate) fn label_matches(label: &str, expr: &str) -> String {
    format!("{label}=~{}", go_quote(expr))
}
pub(crate) fn label_not_matches(label: &str, expr: &str) -> String {
    format!("{label}!~{}", go_quote(expr))
}

/// Why a selector could not be turned into matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartError {
    InvalidKey(String, String),
    UnsupportedOperator(String, &'static str),
}

/// Matchers accumulated for one request.
#[derive(Debug, Default)]
pub(crate) struct Matchers {
    pub exprs: Vec<String>,
    pub values_by_name: BTreeMap<String, String>,
}

impl Matchers {
    /// Append the metric selector's requirements, in the selector's (key-sorted) order.
    pub fn push_selector(&mut self, selector: &LabelSelector) -> Result<(), PartError> {
        for req in selector.requirements() {
            if !is_valid_label_name(&req.key) {
                return Err(PartError::InvalidKey(
                    req.key.clone(),
                    "not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*); the metric selector cannot be turned into PromQL".into(),
                ));
            }
            let values = &req.values;
            let expr = match (req.operator, values.len()) {
                (Operator::Exists, 0) => label_neq(&req.key, ""),
                (Operator::DoesNotExist, 0) => label_eq(&req.key, ""),
                (Operator::Equals | Operator::DoubleEquals, 1) => label_eq(&req.key, &values[0]),
                (Operator::NotEquals, 1) => label_neq(&req.key, &values[0]),
                (Operator::In | Operator::Equals | Operator::DoubleEquals, _) => {
                    label_matches(&req.key, &alternation(values))
                }
                (Operator::NotIn | Operator::NotEquals, _) => {
                    label_not_matches(&req.key, &alternation(values))
                }
                (Operator::GreaterThan, _) => {
                    return Err(PartError::UnsupportedOperator(req.key.clone(), "gt"))
                }
                (Operator::LessThan, _) => {
                    return Err(PartError::UnsupportedOperator(req.key.clone(), "lt"))
                }
                (Operator::Exists | Operator::DoesNotExist, _) => {
                    return Err(PartError::UnsupportedOperator(
                        req.key.clone(),
                        "exists with values",
                    ))
                }
            };
            self.exprs.push(expr);
            self.values_by_name
                .insert(req.key.clone(), values.join("|"));
        }
        Ok(())
    }

    pub fn push_eq(&mut self, label: &str, value: &str) {
        self.exprs.push(label_eq(label, value));
        self.values_by_name
            .insert(label.to_string(), value.to_string());
    }

    /// The resource label: `=` for one name, `=~` over the escaped names for several.
    pub fn push_names(&mut self, label: &str, names: &[String]) {
        if names.len() > 1 {
            self.exprs.push(label_matches(label, &alternation(names)));
        } else {
            self.exprs.push(label_eq(
                label,
                names.first().map(String::as_str).unwrap_or(""),
            ));
        }
        self.values_by_name
            .insert(label.to_string(), names.join("|"));
    }

    pub fn into_data(self, series: &str, group_by: Vec<String>) -> Val {
        Val::Struct(
            "naming.queryTemplateArgs",
            vec![
                ("Series", Val::Str(series.to_string())),
                ("LabelMatchers", Val::Str(self.exprs.join(","))),
                ("LabelValuesByName", Val::Map(self.values_by_name)),
                ("GroupBy", Val::Str(group_by.join(","))),
                (
                    "GroupBySlice",
                    Val::List(group_by.into_iter().map(Val::Str).collect()),
                ),
            ],
        )
    }
}

fn alternation(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote_meta(v))
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quote_meta_escapes_re2_metacharacters() {
        assert_eq!(quote_meta("a.b|c*"), "a\\.b\\|c\\*");
        assert_eq!(quote_meta("web-1"), "web-1");
        assert_eq!(
            quote_meta("(x)[y]{z}^$?+\\"),
            "\\(x\\)\\[y\\]\\{z\\}\\^\\$\\?\\+\\\\"
        );
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("pod"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("app.kubernetes.io/name"));
        assert!(!is_valid_label_name("1abc"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn selector_operators_render_like_prometheus_adapter() {
        let sel: LabelSelector = "a=1,b!=2,c in (x,y),d notin (z),e,!f,g in (v)"
            .parse()
            .unwrap();
        let mut m = Matchers::default();
        m.push_selector(&sel).unwrap();
        assert_eq!(
            m.exprs,
            vec![
                r#"a="1""#,
                r#"b!="2""#,
                r#"c=~"x|y""#,
                r#"d!~"z""#,
                r#"e!="""#,
                r#"f="""#,
                r#"g=~"v""#,
            ]
        );
        assert_eq!(m.values_by_name["c"], "x|y");
        assert_eq!(m.values_by_name["e"], "");
    }

    #[test]
    fn unsupported_and_invalid_keys_are_errors() {
        let sel: LabelSelector = "a>1".parse().unwrap();
        assert_eq!(
            Matchers::default().push_selector(&sel),
            Err(PartError::UnsupportedOperator("a".into(), "gt"))
        );
        let sel: LabelSelector = "app.kubernetes.io/name=web".parse().unwrap();
        assert!(matches!(
            Matchers::default().push_selector(&sel),
            Err(PartError::InvalidKey(k, _)) if k == "app.kubernetes.io/name"
        ));
    }
}
