//! Strings quoted as Go quotes them (`strconv.Quote`, `%q`): Kubernetes builds its messages
//! with it, and prometheus-adapter builds its label matchers with it, so promhpa's messages and
//! queries must quote the same way. Booleans parsed as Go parses them (`strconv.ParseBool`),
//! as the flags of prometheus-adapter and Kubernetes take them.

use std::fmt::Write as _;

/// A value that Go's `strconv.ParseBool` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid boolean \"{0}\": expected true or false")]
pub struct BoolError(pub String);

/// A boolean as Go's `strconv.ParseBool` reads it: `1`, `t`, `T`, `true`, `TRUE`, `True` and
/// `0`, `f`, `F`, `false`, `FALSE`, `False`.
pub fn parse_go_bool(s: &str) -> Result<bool, BoolError> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(BoolError(s.to_string())),
    }
}

/// `s` quoted as Go's `%q` does it: `\"` and `\\`, the short escapes `\a \b \f \n \r \t \v`,
/// `\xNN` for other ASCII controls, `\uNNNN` / `\UNNNNNNNN` for characters Go does not
/// print (controls, separators other than the ASCII space, invisible formatting characters,
/// private use and noncharacters), everything else as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() || is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint` for a non-ASCII character, without Unicode's tables of unassigned
/// code points: controls, separators, the common invisible formatting characters, private use
/// and noncharacters are not printable.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c.is_control() || c.is_whitespace() || (u & 0xfffe) == 0xfffe {
        return false;
    }
    !matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e000}'..='\u{f8ff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_go_parses_them() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "tRuE", "", " true"] {
            assert_eq!(parse_go_bool(bad), Err(BoolError(bad.to_string())), "{bad}");
        }
        assert_eq!(
            BoolError("yes".into()).to_string(),
            "invalid boolean \"yes\": expected true or false"
        );
    }

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(go_quote("web-1"), r#""web-1""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{1}\u{7f}"), r#""\n\t\x01\x7f""#);
        assert_eq!(go_quote("é ü 日本"), "\"é ü 日本\"");
        assert_eq!(go_quote("a\u{200b}b\u{a0}"), r#""a\u200bb\u00a0""#);
        assert_eq!(go_quote("\u{10ffff}"), r#""\U0010ffff""#);
    }
}
