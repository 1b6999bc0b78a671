//! Kubernetes label selectors, in their query-string form (`app=web,tier in (a,b),!canary`).
//!
//! Parsing follows `k8s.io/apimachinery/pkg/labels.Parse`: requirements are kept sorted by
//! key (stable for equal keys), the values of `in`/`notin` are sorted and de-duplicated, and
//! [`LabelSelector`]'s `Display` prints the canonical form Kubernetes prints.
//!
//! ```
//! use promhpa_core::selector::{LabelSelector, Operator};
//! let s: LabelSelector = "tier in (web,api), app=shop, !canary".parse().unwrap();
//! assert_eq!(s.to_string(), "app=shop,!canary,tier in (api,web)");
//! assert_eq!(s.requirements()[2].operator, Operator::In);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// `in (...)`
    In,
    /// `notin (...)`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key > N`
    GreaterThan,
    /// `key < N`
    LessThan,
}

/// One `key op values` requirement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and de-duplicated for `in`/`notin`; one value for `=`, `==`, `!=`, `>`, `<`;
    /// empty for exists/does-not-exist.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|w| w == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|w| w == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(b)) if self.operator == Operator::GreaterThan => v > b,
                    (Ok(v), Ok(b)) => v < b,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, first),
            Operator::LessThan => write!(f, "{}<{}", self.key, first),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => f.write_str(&self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Why a selector string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {message} (in selector \"{input}\")")]
pub struct SelectorError {
    pub input: String,
    pub message: String,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Build a selector from requirements; they are sorted by key as Kubernetes does.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        for r in &mut requirements {
            if matches!(r.operator, Operator::In | Operator::NotIn) {
                r.values.sort();
                r.values.dedup();
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// A selector of `key=value` requirements, e.g. from a `matchLabels` map.
    pub fn from_match_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_requirements(
            labels
                .into_iter()
                .map(|(k, v)| Requirement {
                    key: k.to_string(),
                    operator: Operator::Equals,
                    values: vec![v.to_string()],
                })
                .collect(),
        )
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Parser::new(input).parse()
    }
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            chars: input.chars().collect(),
            pos: 0,
        }
    }

    fn err(&self, message: impl Into<String>) -> SelectorError {
        SelectorError {
            input: self.input.to_string(),
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.pos + n <= self.chars.len()
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// A key or value: everything up to whitespace or one of `,()=!<>`.
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || ",()=!<>".contains(c) {
                break;
            }
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn parse(mut self) -> Result<LabelSelector, SelectorError> {
        let mut reqs = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(LabelSelector::everything());
        }
        loop {
            self.skip_ws();
            reqs.push(self.requirement()?);
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek().is_none() {
                        return Err(self.err("found '', expected: identifier after ','"));
                    }
                }
                Some(c) => {
                    return Err(self.err(format!("found '{c}', expected: ',' or 'end of string'")))
                }
            }
        }
        for r in &reqs {
            validate_key(&r.key).map_err(|m| self.err(m))?;
            for v in &r.values {
                validate_value(v).map_err(|m| self.err(m))?;
            }
        }
        Ok(LabelSelector::from_requirements(reqs))
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.eat("!") {
            self.skip_ws();
            let key = self.word();
            if key.is_empty() {
                return Err(self.err("found '!', expected: identifier"));
            }
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: vec![],
            });
        }
        let key = self.word();
        if key.is_empty() {
            let found = self.peek().map(String::from).unwrap_or_default();
            return Err(self.err(format!("found '{found}', expected: identifier")));
        }
        self.skip_ws();
        let op = if self.eat("==") {
            Operator::DoubleEquals
        } else if self.eat("!=") {
            Operator::NotEquals
        } else if self.eat("=") {
            Operator::Equals
        } else if self.eat(">") {
            Operator::GreaterThan
        } else if self.eat("<") {
            Operator::LessThan
        } else {
            let save = self.pos;
            let w = self.word();
            match w.as_str() {
                "in" => Operator::In,
                "notin" => Operator::NotIn,
                "" => {
                    return Ok(Requirement {
                        key,
                        operator: Operator::Exists,
                        values: vec![],
                    })
                }
                _ => {
                    self.pos = save;
                    return Err(self.err(format!(
                        "found '{w}', expected: in, notin, =, ==, !=, gt, lt"
                    )));
                }
            }
        };
        self.skip_ws();
        let values = match op {
            Operator::In | Operator::NotIn => {
                if !self.eat("(") {
                    return Err(self.err("found '', expected: '('"));
                }
                let mut values = Vec::new();
                loop {
                    self.skip_ws();
                    let v = self.word();
                    values.push(v);
                    self.skip_ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat(")") {
                        break;
                    }
                    return Err(self.err("found '', expected: ',', or ')'"));
                }
                // `in ()` is `in ("")` in Kubernetes' parser; keep that meaning.
                values
            }
            Operator::GreaterThan | Operator::LessThan => {
                let v = self.word();
                if v.parse::<i64>().is_err() {
                    return Err(self.err(format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer, got '{v}'"
                    )));
                }
                vec![v]
            }
            _ => vec![self.word()],
        };
        Ok(Requirement {
            key,
            operator: op,
            values,
        })
    }
}

/// Kubernetes label keys: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(format!(
                "invalid label key \"{key}\": prefix part must be a DNS subdomain"
            ));
        }
        let ok = p.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return Err(format!(
                "invalid label key \"{key}\": prefix part must be a DNS subdomain"
            ));
        }
    }
    if !qualified_name_ok(name) {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn qualified_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_value(v: &str) -> Result<(), String> {
    if v.is_empty() || qualified_name_ok(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LabelSelector {
        match s.parse() {
            Ok(sel) => sel,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_values() {
        assert_eq!(parse("b=2,a=1").to_string(), "a=1,b=2");
        assert_eq!(parse("x in (c, a ,b)").to_string(), "x in (a,b,c)");
        assert_eq!(
            parse("x notin (b,a),!y,z").to_string(),
            "x notin (a,b),!y,z"
        );
        assert_eq!(parse("a==1,b!=2").to_string(), "a==1,b!=2");
        assert_eq!(parse("").to_string(), "");
        assert_eq!(parse("  ").to_string(), "");
        assert_eq!(
            parse("app.kubernetes.io/name=web").to_string(),
            "app.kubernetes.io/name=web"
        );
        assert_eq!(parse("n>3").to_string(), "n>3");
        assert_eq!(parse("a=").to_string(), "a=");
    }

    #[test]
    fn matching() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "api")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(parse("app=web").matches(&labels));
        assert!(!parse("app!=web").matches(&labels));
        assert!(parse("tier in (api,db)").matches(&labels));
        assert!(parse("tier notin (db)").matches(&labels));
        assert!(parse("missing notin (db)").matches(&labels));
        assert!(parse("app,!canary").matches(&labels));
        assert!(!parse("canary").matches(&labels));
        assert!(parse("").matches(&labels));
    }

    #[test]
    fn errors() {
        for bad in [
            "a=b,", "=b", "a in b", "a in (b", "a b", "a>b", "a=b c", "-a=b", "a=-b-", ",",
        ] {
            assert!(bad.parse::<LabelSelector>().is_err(), "{bad} should fail");
        }
    }
}
