//! A subset of Go's `text/template` with `<<` and `>>` as delimiters, as prometheus-adapter
//! uses for `metricsQuery`, `containerQuery`, `nodeQuery` and `resources.template`.
//!
//! Templates are parsed once (at load time) and executed per request. Supported: text,
//! `<<pipeline>>` output, trim markers (`<<-`, `->>`), comments, field chains on `.`, `$` and
//! variables, map keys as fields, parenthesised pipelines, `|` pipelines, variable declaration
//! and assignment, `if`/`else if`/`else`, `range` (with `$i, $e :=`), `with`, `end`, and the
//! functions `and`, `or`, `not`, `len`, `index`, `print`, `printf`, `println`, `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, plus `join` (sprig's `join SEP LIST`). Anything else is a parse
//! error that names the construct, so a template never renders something different from Go.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value seen by a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// Go's invalid value: a missing map key reached through a field, printed `<no value>`.
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Val>),
    /// A `map[string]string` (keys iterate sorted, as Go's templates do).
    Map(BTreeMap<String, String>),
    /// The data struct: named fields.
    Struct(&'static str, Vec<(&'static str, Val)>),
}

impl Val {
    fn go_type(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Str(_) => "string",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Bool(_) => "bool",
            Val::List(_) => "[]string",
            Val::Map(_) => "map[string]string",
            Val::Struct(name, _) => name,
        }
    }

    fn truth(&self) -> bool {
        match self {
            Val::Nil => false,
            Val::Str(s) => !s.is_empty(),
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Bool(b) => *b,
            Val::List(l) => !l.is_empty(),
            Val::Map(m) => !m.is_empty(),
            Val::Struct(..) => true,
        }
    }

    /// Go's `%v` / `fmt.Fprint` form.
    fn print(&self, out: &mut String) {
        match self {
            Val::Nil => out.push_str("<no value>"),
            Val::Str(s) => out.push_str(s),
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => out.push_str(&go_float_g(*f)),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    item.print(out);
                }
                out.push(']');
            }
            Val::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{k}:{v}");
                }
                out.push(']');
            }
            Val::Struct(_, fields) => {
                out.push('{');
                for (i, (_, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.print(out);
                }
                out.push('}');
            }
        }
    }

    fn to_display(&self) -> String {
        let mut s = String::new();
        self.print(&mut s);
        s
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which `%v` uses for floats.
fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest `%g` switches to the exponent form below 1e-4 and from 1e+06 on.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

pub(crate) use promhpa_core::gofmt::go_quote;

/// A parse or execution error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

/// The kind of a top-level data field, for load-time checks of field chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Str,
    List,
    Map,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    nodes: Vec<TNode>,
}

#[derive(Debug, Clone)]
enum TNode {
    Text(String),
    Output(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<TNode>,
        otherwise: Vec<TNode>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<TNode>,
        otherwise: Vec<TNode>,
    },
    With {
        pipe: Pipeline,
        body: Vec<TNode>,
        otherwise: Vec<TNode>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    vars: Vec<String>,
    /// `=` instead of `:=`.
    assign: bool,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Paren(Box<Pipeline>, Vec<String>),
}

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "join",
];
const UNSUPPORTED_FUNCS: &[&str] = &["call", "html", "js", "urlquery", "slice"];

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    /// Start of an action; `trim` when written `<<-`.
    Open,
    Close,
    Ident(String),
    /// `.A.B` (the names without dots).
    Field(Vec<String>),
    /// `.A.B` directly after `)`.
    Chain(Vec<String>),
    Dot,
    Var(String, Vec<String>),
    Str(String),
    Num(String),
    Char,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let mut rest = src;
    let mut trim_next_text = false;
    loop {
        let Some(open) = rest.find("<<") else {
            let mut text = rest.to_string();
            if trim_next_text {
                text = text.trim_start().to_string();
            }
            if !text.is_empty() {
                toks.push(Tok::Text(text));
            }
            return Ok(toks);
        };
        let mut text = rest[..open].to_string();
        if trim_next_text {
            text = text.trim_start().to_string();
        }
        let mut after = &rest[open + 2..];
        if after.starts_with('-') && after[1..].starts_with([' ', '\t', '\n', '\r']) {
            text = text.trim_end().to_string();
            after = &after[1..];
        }
        if !text.is_empty() {
            toks.push(Tok::Text(text));
        }
        // comments
        let trimmed = after.trim_start();
        if trimmed.starts_with("/*") {
            let Some(end) = trimmed.find("*/") else {
                return err("unclosed comment");
            };
            let tail = &trimmed[end + 2..];
            let tail_trim = tail.trim_start();
            let (tail, trim) = if let Some(t) = tail_trim.strip_prefix("->>") {
                (t, true)
            } else if let Some(t) = tail.strip_prefix(">>") {
                (t, false)
            } else {
                return err("comment ends before closing delimiter");
            };
            trim_next_text = trim;
            rest = tail;
            continue;
        }
        toks.push(Tok::Open);
        let (consumed, trim) = lex_action(after, &mut toks)?;
        toks.push(Tok::Close);
        trim_next_text = trim;
        rest = &after[consumed..];
    }
}

/// Lex one action body; returns the bytes consumed (including `>>`) and whether it ended
/// with a trim marker.
fn lex_action(s: &str, toks: &mut Vec<Tok>) -> Result<(usize, bool), TemplateError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < bytes.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        if s[i..].starts_with(">>") {
            return Ok((i + 2, false));
        }
        if c.is_whitespace() {
            let ws_end = i + s[i..]
                .find(|ch: char| !ch.is_whitespace())
                .unwrap_or(s.len() - i);
            if s[ws_end..].starts_with("->>") {
                return Ok((ws_end + 3, true));
            }
            i = ws_end;
            continue;
        }
        match c {
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                // fields after a parenthesised pipeline
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                if s[i..].starts_with(":=") {
                    toks.push(Tok::Declare);
                    i += 2;
                } else {
                    return err("expected :=");
                }
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let (value, len) = lex_quoted(&s[i..])?;
                toks.push(Tok::Str(value));
                i += len;
            }
            '`' => {
                let Some(end) = s[i + 1..].find('`') else {
                    return err("unterminated raw quoted string");
                };
                toks.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            '\'' => {
                toks.push(Tok::Char);
                let end = s[i + 1..].find('\'').map(|e| i + e + 2).unwrap_or(s.len());
                i = end;
            }
            '.' => {
                let name_len = s[i + 1..]
                    .find(|ch: char| !ident_char(ch))
                    .unwrap_or(s.len() - i - 1);
                if name_len == 0 {
                    if s[i + 1..].starts_with(|ch: char| ch.is_ascii_digit()) {
                        let len = number_len(&s[i..]);
                        toks.push(Tok::Num(s[i..i + len].to_string()));
                        i += len;
                    } else {
                        toks.push(Tok::Dot);
                        i += 1;
                    }
                } else {
                    let (chain, len) = lex_chain(&s[i..]);
                    let adjacent = i > 0 && s[..i].ends_with(')');
                    toks.push(if adjacent {
                        Tok::Chain(chain)
                    } else {
                        Tok::Field(chain)
                    });
                    i += len;
                }
            }
            '$' => {
                let name_len = s[i + 1..]
                    .find(|ch: char| !ident_char(ch))
                    .unwrap_or(s.len() - i - 1);
                let name = s[i..i + 1 + name_len].to_string();
                i += 1 + name_len;
                let (chain, len) = lex_chain(&s[i..]);
                toks.push(Tok::Var(name, chain));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let len = number_len(&s[i..]);
                if len == 0 {
                    return err(format!("bad character {c:?} in action"));
                }
                toks.push(Tok::Num(s[i..i + len].to_string()));
                i += len;
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = s[i..]
                    .find(|ch: char| !ident_char(ch))
                    .unwrap_or(s.len() - i);
                toks.push(Tok::Ident(s[i..i + len].to_string()));
                i += len;
            }
            c => return err(format!("bad character {c:?} in action")),
        }
    }
    err("unclosed action")
}

/// A run of `.name` selectors at the start of `s`: (names, bytes consumed).
fn lex_chain(s: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut i = 0;
    while s[i..].starts_with('.') {
        let len = s[i + 1..]
            .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .unwrap_or(s.len() - i - 1);
        if len == 0 {
            break;
        }
        names.push(s[i + 1..i + 1 + len].to_string());
        i += 1 + len;
    }
    (names, i)
}

fn number_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c.is_ascii_alphanumeric()
            || c == '.'
            || c == '_'
            || ((c == '-' || c == '+')
                && (i == 0 || matches!(s[..i].chars().last(), Some('e' | 'E' | 'p' | 'P'))));
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    if len == 1 && (s.starts_with('-') || s.starts_with('+')) {
        return 0;
    }
    len
}

/// A Go double-quoted string literal at the start of `s`: (value, bytes consumed).
fn lex_quoted(s: &str) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => return err("unterminated quoted string"),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return err("unterminated quoted string");
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut hex = String::new();
                        for _ in 0..n {
                            match chars.next() {
                                Some((_, h)) => hex.push(h),
                                None => return err("unterminated quoted string"),
                            }
                        }
                        let code = u32::from_str_radix(&hex, 16)
                            .map_err(|_| TemplateError(format!("invalid escape \\{e}{hex}")))?;
                        match char::from_u32(code) {
                            Some(ch) => out.push(ch),
                            None => return err(format!("invalid escape \\{e}{hex}")),
                        }
                    }
                    other => return err(format!("unknown escape sequence \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    err("unterminated quoted string")
}

// ---------------------------------------------------------------- parser

struct TParser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    fields: &'a [(&'static str, FieldKind)],
    /// Declared variables, one frame per control structure.
    scopes: Vec<Vec<String>>,
    /// Whether dot is the root data at this point (outside range/with).
    dot_is_root: Vec<bool>,
    /// Current nesting of control structures and parentheses.
    depth: usize,
}

/// Templates nesting deeper than this are refused (no input may exhaust the stack).
const MAX_PARSE_DEPTH: usize = 64;

enum Stop {
    End,
    Else,
    ElseIf(Pipeline),
    Eof,
}

impl Template {
    /// Parse `src`. `fields` lists the data's top-level fields, checked at parse time.
    pub(crate) fn parse(
        src: &str,
        fields: &[(&'static str, FieldKind)],
    ) -> Result<Template, TemplateError> {
        let toks = lex(src)?;
        let mut p = TParser {
            toks,
            pos: 0,
            fields,
            scopes: vec![vec!["$".to_string()]],
            dot_is_root: vec![true],
            depth: 0,
        };
        let (nodes, stop) = p.parse_list()?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => err("unexpected <<end>>"),
            Stop::Else | Stop::ElseIf(_) => err("unexpected <<else>>"),
        }
    }

    /// Execute against `data` (a [`Val::Struct`]).
    pub(crate) fn execute(&self, data: &Val) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut vars = vec![("$".to_string(), data.clone())];
        exec_list(&self.nodes, data, &mut vars, &mut out, 0)?;
        Ok(out)
    }
}

impl TParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_close(&mut self, what: &str) -> Result<(), TemplateError> {
        match self.next() {
            Some(Tok::Close) => Ok(()),
            _ => err(format!("unexpected token in {what}")),
        }
    }

    fn parse_list(&mut self) -> Result<(Vec<TNode>, Stop), TemplateError> {
        self.depth += 1;
        let result = self.parse_list_inner();
        self.depth -= 1;
        result
    }

    fn parse_list_inner(&mut self) -> Result<(Vec<TNode>, Stop), TemplateError> {
        if self.depth > MAX_PARSE_DEPTH {
            return err(format!(
                "template nests deeper than {MAX_PARSE_DEPTH} levels"
            ));
        }
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, Stop::Eof)),
                Some(Tok::Text(t)) => nodes.push(TNode::Text(t)),
                Some(Tok::Open) => {
                    if let Some(Tok::Ident(kw)) = self.peek().cloned() {
                        match kw.as_str() {
                            "end" => {
                                self.pos += 1;
                                self.expect_close("end")?;
                                return Ok((nodes, Stop::End));
                            }
                            "else" => {
                                self.pos += 1;
                                if let Some(Tok::Ident(k)) = self.peek() {
                                    if k == "if" {
                                        self.pos += 1;
                                        let cond = self.parse_pipeline("if", true)?;
                                        return Ok((nodes, Stop::ElseIf(cond)));
                                    }
                                    if k == "with" {
                                        return err("unsupported action <<else with>>");
                                    }
                                }
                                self.expect_close("else")?;
                                return Ok((nodes, Stop::Else));
                            }
                            "if" => {
                                self.pos += 1;
                                nodes.push(self.parse_if()?);
                                continue;
                            }
                            "range" => {
                                self.pos += 1;
                                nodes.push(self.parse_range_with(true)?);
                                continue;
                            }
                            "with" => {
                                self.pos += 1;
                                nodes.push(self.parse_range_with(false)?);
                                continue;
                            }
                            "define" | "template" | "block" | "break" | "continue" => {
                                return err(format!("unsupported action <<{kw}>>"));
                            }
                            _ => {}
                        }
                    }
                    let pipe = self.parse_pipeline("command", true)?;
                    nodes.push(TNode::Output(pipe));
                }
                Some(_) => return err("unexpected token"),
            }
        }
    }

    fn parse_if(&mut self) -> Result<TNode, TemplateError> {
        let cond = self.parse_pipeline("if", true)?;
        self.parse_if_rest(cond)
    }

    fn parse_if_rest(&mut self, cond: Pipeline) -> Result<TNode, TemplateError> {
        self.depth += 1;
        let result = self.parse_if_rest_inner(cond);
        self.depth -= 1;
        result
    }

    fn parse_if_rest_inner(&mut self, cond: Pipeline) -> Result<TNode, TemplateError> {
        self.scopes.push(Vec::new());
        let (then, stop) = self.parse_list()?;
        self.scopes.pop();
        let otherwise = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return err("unexpected EOF in if: missing <<end>>"),
            Stop::Else => {
                self.scopes.push(Vec::new());
                let (body, stop) = self.parse_list()?;
                self.scopes.pop();
                match stop {
                    Stop::End => body,
                    _ => return err("expected <<end>> after <<else>> in if"),
                }
            }
            Stop::ElseIf(c) => vec![self.parse_if_rest(c)?],
        };
        Ok(TNode::If {
            cond,
            then,
            otherwise,
        })
    }

    fn parse_range_with(&mut self, is_range: bool) -> Result<TNode, TemplateError> {
        let name = if is_range { "range" } else { "with" };
        self.scopes.push(Vec::new());
        let pipe = self.parse_pipeline(name, true)?;
        if is_range && pipe.vars.len() > 2 {
            return err("too many declarations in range");
        }
        if !is_range && pipe.vars.len() > 1 {
            return err("too many declarations in with");
        }
        self.dot_is_root.push(false);
        let (body, stop) = self.parse_list()?;
        self.dot_is_root.pop();
        let otherwise = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return err(format!("unexpected EOF in {name}: missing <<end>>")),
            Stop::Else => {
                let (b, stop) = self.parse_list()?;
                match stop {
                    Stop::End => b,
                    _ => return err(format!("expected <<end>> after <<else>> in {name}")),
                }
            }
            Stop::ElseIf(_) => return err(format!("unsupported <<else if>> in {name}")),
        };
        self.scopes.pop();
        Ok(if is_range {
            TNode::Range {
                pipe,
                body,
                otherwise,
            }
        } else {
            TNode::With {
                pipe,
                body,
                otherwise,
            }
        })
    }

    fn var_declared(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|v| v == name))
    }

    /// Parse a pipeline up to `>>` (when `to_close`) or `)`.
    fn parse_pipeline(&mut self, ctx: &str, to_close: bool) -> Result<Pipeline, TemplateError> {
        let mut vars = Vec::new();
        let mut assign = false;
        // declarations: $x := / $x, $y := / $x =
        let save = self.pos;
        if let Some(Tok::Var(v, chain)) = self
            .peek()
            .cloned()
            .filter(|t| matches!(t, Tok::Var(_, c) if c.is_empty()))
        {
            let _ = chain;
            self.pos += 1;
            match self.peek().cloned() {
                Some(Tok::Declare) => {
                    self.pos += 1;
                    vars.push(v);
                }
                Some(Tok::Assign) => {
                    self.pos += 1;
                    if !self.var_declared(&v) {
                        return err(format!("undefined variable \"{v}\""));
                    }
                    vars.push(v);
                    assign = true;
                }
                Some(Tok::Comma) if ctx == "range" => {
                    self.pos += 1;
                    match (self.next(), self.next()) {
                        (Some(Tok::Var(v2, c2)), Some(Tok::Declare)) if c2.is_empty() => {
                            vars.push(v);
                            vars.push(v2);
                        }
                        _ => return err("expected second variable in range declaration"),
                    }
                }
                _ => self.pos = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.parse_command()?;
            if cmd.args.is_empty() {
                return err(format!("missing value for {ctx}"));
            }
            cmds.push(cmd);
            match self.next() {
                Some(Tok::Pipe) => continue,
                Some(Tok::Close) if to_close => break,
                Some(Tok::RParen) if !to_close => break,
                Some(t) => return err(format!("unexpected {t:?} in {ctx}")),
                None => return err(format!("unclosed action in {ctx}")),
            }
        }
        if !assign {
            if let Some(scope) = self.scopes.last_mut() {
                scope.extend(vars.iter().cloned());
            }
        }
        // a pipeline's later commands must be callable with the piped value
        for cmd in cmds.iter().skip(1) {
            if !matches!(cmd.args.first(), Some(Arg::Func(_))) && cmd.args.len() > 1 {
                return err("non-function in pipeline stage has arguments");
            }
        }
        Ok(Pipeline { vars, assign, cmds })
    }

    fn parse_command(&mut self) -> Result<Command, TemplateError> {
        let mut args = Vec::new();
        loop {
            let tok = match self.peek() {
                None | Some(Tok::Close) | Some(Tok::Pipe) | Some(Tok::RParen) => break,
                Some(t) => t.clone(),
            };
            self.pos += 1;
            let arg = match tok {
                Tok::Dot => Arg::Dot,
                Tok::Field(chain) => {
                    self.check_fields(&chain)?;
                    Arg::Field(chain)
                }
                Tok::Chain(_) => return err("unexpected field chain"),
                Tok::Var(v, chain) => {
                    if !self.var_declared(&v) {
                        return err(format!("undefined variable \"{v}\""));
                    }
                    if v == "$" && !chain.is_empty() {
                        self.check_root_fields(&chain)?;
                    }
                    Arg::Var(v, chain)
                }
                Tok::Ident(name) => match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    n if FUNCS.contains(&n) => Arg::Func(name),
                    n if UNSUPPORTED_FUNCS.contains(&n) => {
                        return err(format!("unsupported function \"{n}\""))
                    }
                    "if" | "range" | "with" | "else" | "end" | "define" | "template" | "block" => {
                        return err(format!("unexpected keyword \"{name}\" in command"))
                    }
                    n => return err(format!("function \"{n}\" not defined")),
                },
                Tok::Str(s) => Arg::Str(s),
                Tok::Num(n) => parse_number(&n)?,
                Tok::Char => return err("unsupported character constant"),
                Tok::LParen => {
                    self.depth += 1;
                    if self.depth > MAX_PARSE_DEPTH {
                        return err(format!(
                            "template nests deeper than {MAX_PARSE_DEPTH} levels"
                        ));
                    }
                    let inner = self.parse_pipeline("parenthesized pipeline", false);
                    self.depth -= 1;
                    let inner = inner?;
                    let mut chain = Vec::new();
                    self.field_chain(&mut chain);
                    Arg::Paren(Box::new(inner), chain)
                }
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return err("unexpected declaration in command")
                }
                Tok::Open | Tok::Text(_) => return err("unexpected token in command"),
                Tok::Close | Tok::Pipe | Tok::RParen => break,
            };
            args.push(arg);
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
            return err("can't give argument to non-function");
        }
        Ok(Command { args })
    }

    fn field_chain(&mut self, chain: &mut Vec<String>) {
        if let Some(Tok::Chain(c)) = self.peek().cloned() {
            self.pos += 1;
            chain.extend(c);
        }
    }

    fn check_fields(&self, chain: &[String]) -> Result<(), TemplateError> {
        if self.dot_is_root.last().copied().unwrap_or(true) {
            self.check_root_fields(chain)
        } else {
            Ok(())
        }
    }

    fn check_root_fields(&self, chain: &[String]) -> Result<(), TemplateError> {
        let Some(first) = chain.first() else {
            return Ok(());
        };
        let Some((_, kind)) = self.fields.iter().find(|(n, _)| n == first) else {
            let known: Vec<&str> = self.fields.iter().map(|(n, _)| *n).collect();
            return err(format!(
                "unknown field \".{first}\" (available: {})",
                known
                    .iter()
                    .map(|k| format!(".{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let max_depth = if *kind == FieldKind::Map { 2 } else { 1 };
        if chain.len() > max_depth {
            return err(format!(
                "field \".{}\" has no field \".{}\"",
                first, chain[max_depth]
            ));
        }
        Ok(())
    }
}

fn parse_number(n: &str) -> Result<Arg, TemplateError> {
    let clean: String = n.chars().filter(|c| *c != '_').collect();
    if let Ok(i) = clean.parse::<i64>() {
        return Ok(Arg::Int(i));
    }
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = if body.starts_with("0x") || body.starts_with("0X") {
        Some(16)
    } else if body.starts_with("0o") || body.starts_with("0O") {
        Some(8)
    } else if body.starts_with("0b") || body.starts_with("0B") {
        Some(2)
    } else {
        None
    };
    if let Some(r) = radix {
        if let Ok(i) = i64::from_str_radix(&body[2..], r) {
            return Ok(Arg::Int(if neg { -i } else { i }));
        }
    }
    match clean.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            if f.fract() == 0.0 && f.abs() < 9.0e15 && !n.contains(['.', 'e', 'E']) {
                Ok(Arg::Int(f as i64))
            } else {
                Ok(Arg::Float(f))
            }
        }
        _ => err(format!("bad number syntax: \"{n}\"")),
    }
}

// ---------------------------------------------------------------- execution

const MAX_DEPTH: usize = 100;
const MAX_OUTPUT: usize = 1 << 20;

fn exec_list(
    nodes: &[TNode],
    dot: &Val,
    vars: &mut Vec<(String, Val)>,
    out: &mut String,
    depth: usize,
) -> Result<(), TemplateError> {
    if depth > MAX_DEPTH {
        return err("template nesting too deep");
    }
    for node in nodes {
        if out.len() > MAX_OUTPUT {
            return err("template output too large");
        }
        match node {
            TNode::Text(t) => out.push_str(t),
            TNode::Output(pipe) => {
                let v = eval_pipeline(pipe, dot, vars)?;
                if pipe.vars.is_empty() {
                    v.print(out);
                }
            }
            TNode::If {
                cond,
                then,
                otherwise,
            } => {
                let mark = vars.len();
                let v = eval_pipeline(cond, dot, vars)?;
                let branch = if v.truth() { then } else { otherwise };
                exec_list(branch, dot, vars, out, depth + 1)?;
                vars.truncate(mark);
            }
            TNode::With {
                pipe,
                body,
                otherwise,
            } => {
                let mark = vars.len();
                let v = eval_pipeline(pipe, dot, vars)?;
                if v.truth() {
                    exec_list(body, &v, vars, out, depth + 1)?;
                } else {
                    exec_list(otherwise, dot, vars, out, depth + 1)?;
                }
                vars.truncate(mark);
            }
            TNode::Range {
                pipe,
                body,
                otherwise,
            } => {
                let mark = vars.len();
                let v = eval_cmds(&pipe.cmds, dot, vars)?;
                let items: Vec<(Val, Val)> = match &v {
                    Val::List(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (Val::Int(i as i64), item.clone()))
                        .collect(),
                    Val::Map(m) => m
                        .iter()
                        .map(|(k, v)| (Val::Str(k.clone()), Val::Str(v.clone())))
                        .collect(),
                    Val::Nil => Vec::new(),
                    other => {
                        return err(format!("range can't iterate over {}", other.to_display()))
                    }
                };
                if items.is_empty() {
                    exec_list(otherwise, dot, vars, out, depth + 1)?;
                }
                for (key, elem) in items {
                    let inner = vars.len();
                    match pipe.vars.as_slice() {
                        [e] => vars.push((e.clone(), elem.clone())),
                        [k, e] => {
                            vars.push((k.clone(), key));
                            vars.push((e.clone(), elem.clone()));
                        }
                        _ => {}
                    }
                    exec_list(body, &elem, vars, out, depth + 1)?;
                    vars.truncate(inner);
                }
                vars.truncate(mark);
            }
        }
    }
    Ok(())
}

fn eval_pipeline(
    pipe: &Pipeline,
    dot: &Val,
    vars: &mut Vec<(String, Val)>,
) -> Result<Val, TemplateError> {
    let v = eval_cmds(&pipe.cmds, dot, vars)?;
    if let Some(name) = pipe.vars.first() {
        if pipe.assign {
            if let Some(slot) = vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v.clone();
            }
        } else {
            vars.push((name.clone(), v.clone()));
        }
    }
    Ok(v)
}

fn eval_cmds(cmds: &[Command], dot: &Val, vars: &[(String, Val)]) -> Result<Val, TemplateError> {
    let mut piped: Option<Val> = None;
    for cmd in cmds {
        piped = Some(eval_command(cmd, dot, vars, piped)?);
    }
    Ok(piped.unwrap_or(Val::Nil))
}

fn eval_command(
    cmd: &Command,
    dot: &Val,
    vars: &[(String, Val)],
    piped: Option<Val>,
) -> Result<Val, TemplateError> {
    let Some(first) = cmd.args.first() else {
        return err("empty command");
    };
    if let Arg::Func(name) = first {
        // and/or short-circuit
        if name == "and" || name == "or" {
            let count = cmd.args.len() - 1 + usize::from(piped.is_some());
            if count == 0 {
                return err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut last = Val::Nil;
            for a in &cmd.args[1..] {
                last = eval_arg(a, dot, vars)?;
                if (name == "and") != last.truth() {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut args = Vec::with_capacity(cmd.args.len());
        for a in &cmd.args[1..] {
            args.push(eval_arg(a, dot, vars)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        return call_func(name, args);
    }
    if piped.is_some() {
        return err("can't give argument to non-function");
    }
    eval_arg(first, dot, vars)
}

fn eval_arg(arg: &Arg, dot: &Val, vars: &[(String, Val)]) -> Result<Val, TemplateError> {
    match arg {
        Arg::Dot => Ok(dot.clone()),
        Arg::Field(chain) => walk_fields(dot, chain),
        Arg::Var(name, chain) => {
            let Some((_, v)) = vars.iter().rev().find(|(n, _)| n == name) else {
                return err(format!("undefined variable \"{name}\""));
            };
            walk_fields(v, chain)
        }
        Arg::Func(name) => call_func(name, Vec::new()),
        Arg::Str(s) => Ok(Val::Str(s.clone())),
        Arg::Int(i) => Ok(Val::Int(*i)),
        Arg::Float(f) => Ok(Val::Float(*f)),
        Arg::Bool(b) => Ok(Val::Bool(*b)),
        Arg::Nil => err("nil is not a command"),
        Arg::Paren(p, chain) => {
            let v = eval_cmds(&p.cmds, dot, vars)?;
            walk_fields(&v, chain)
        }
    }
}

/// Follow `.A.B` from `v`, cloning only the value reached.
fn walk_fields(v: &Val, chain: &[String]) -> Result<Val, TemplateError> {
    let Some((f, rest)) = chain.split_first() else {
        return Ok(v.clone());
    };
    match v {
        Val::Struct(name, fields) => match fields.iter().find(|(n, _)| n == f) {
            Some((_, fv)) => walk_fields(fv, rest),
            None => err(format!("can't evaluate field {f} in type {name}")),
        },
        Val::Map(m) => {
            let next = m.get(f).map(|s| Val::Str(s.clone())).unwrap_or(Val::Nil);
            walk_fields(&next, rest)
        }
        Val::Nil => err(format!("nil data; no entry for key \"{f}\"")),
        other => err(format!(
            "can't evaluate field {f} in type {}",
            other.go_type()
        )),
    }
}

fn want_args(name: &str, args: &[Val], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call_func(name: &str, args: Vec<Val>) -> Result<Val, TemplateError> {
    match name {
        "not" => {
            want_args(name, &args, 1)?;
            Ok(Val::Bool(!args[0].truth()))
        }
        "len" => {
            want_args(name, &args, 1)?;
            match &args[0] {
                Val::Str(s) => Ok(Val::Int(s.len() as i64)),
                Val::List(l) => Ok(Val::Int(l.len() as i64)),
                Val::Map(m) => Ok(Val::Int(m.len() as i64)),
                other => err(format!(
                    "error calling len: len of type {}",
                    other.go_type()
                )),
            }
        }
        "index" => {
            let mut it = args.into_iter();
            let Some(mut v) = it.next() else {
                return err("wrong number of args for index: want at least 1 got 0");
            };
            for key in it {
                v = match (&v, &key) {
                    (Val::Map(m), Val::Str(k)) => Val::Str(m.get(k).cloned().unwrap_or_default()),
                    (Val::List(l), Val::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                            Some(x) => x.clone(),
                            None => {
                                return err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (Val::Str(s), Val::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                            Some(b) => Val::Int(i64::from(*b)),
                            None => {
                                return err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (Val::Nil, _) => return err("error calling index: index of untyped nil"),
                    (a, b) => {
                        return err(format!(
                            "error calling index: cannot index {} with {}",
                            a.go_type(),
                            b.go_type()
                        ))
                    }
                };
            }
            Ok(v)
        }
        "print" => Ok(Val::Str(go_sprint(&args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Val::to_display).collect();
            Ok(Val::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            let mut it = args.into_iter();
            let fmt = match it.next() {
                Some(Val::Str(s)) => s,
                Some(other) => {
                    return err(format!(
                        "wrong type for value; expected string; got {}",
                        other.go_type()
                    ))
                }
                None => return err("wrong number of args for printf: want at least 1 got 0"),
            };
            Ok(Val::Str(go_sprintf(&fmt, &it.collect::<Vec<_>>())))
        }
        "join" => {
            want_args(name, &args, 2)?;
            let sep = match &args[0] {
                Val::Str(s) => s.clone(),
                other => other.to_display(),
            };
            match &args[1] {
                Val::List(items) => Ok(Val::Str(
                    items
                        .iter()
                        .map(Val::to_display)
                        .collect::<Vec<_>>()
                        .join(&sep),
                )),
                Val::Str(s) => Ok(Val::Str(s.clone())),
                other => err(format!(
                    "error calling join: cannot join {}",
                    other.go_type()
                )),
            }
        }
        "eq" => {
            if args.len() < 2 {
                return err("wrong number of args for eq: want at least 2");
            }
            let first = &args[0];
            for other in &args[1..] {
                if compare(first, other)? == std::cmp::Ordering::Equal {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, &args, 2)?;
            if name != "ne" && !matches!(args[0], Val::Str(_) | Val::Int(_) | Val::Float(_)) {
                return err(format!("error calling {name}: invalid type for comparison"));
            }
            let ord = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Ok(Val::Bool(match name {
                "ne" => ord != Equal,
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            }))
        }
        other => err(format!("function \"{other}\" not defined")),
    }
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Ok(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Less)),
        (Val::Bool(x), Val::Bool(y)) => Ok(x.cmp(y)),
        (Val::Nil, Val::Nil) => Ok(Ordering::Equal),
        (x, y) => err(format!(
            "incompatible types for comparison: {} and {}",
            x.go_type(),
            y.go_type()
        )),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn go_sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        a.print(&mut out);
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %f %e %g %x %t %%`, with
/// flags `-`, `+`, `0`, width and precision.
fn go_sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut argi = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width: Option<usize> = None;
        while let Some(&d) = chars.peek() {
            if let Some(v) = d.to_digit(10) {
                width = Some(
                    width
                        .unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(v as usize)
                        .min(1000),
                );
                chars.next();
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0usize;
            while let Some(&d) = chars.peek() {
                if let Some(v) = d.to_digit(10) {
                    p = p.saturating_mul(10).saturating_add(v as usize).min(1000);
                    chars.next();
                } else {
                    break;
                }
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let bad = |out: &mut String| {
            let _ = write!(out, "%!{verb}({}={})", arg.go_type(), arg.to_display());
        };
        let body = match (verb, arg) {
            ('s' | 'v', Val::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('v', Val::Float(f)) => go_float_g(*f),
            ('v', other) => other.to_display(),
            ('s', Val::List(_) | Val::Map(_) | Val::Struct(..)) => arg.to_display(),
            ('q', Val::Str(s)) => go_quote(s),
            ('d', Val::Int(i)) => {
                if plus && *i >= 0 {
                    format!("+{i}")
                } else {
                    i.to_string()
                }
            }
            ('x', Val::Int(i)) => format!("{i:x}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Val::Bool(b)) => b.to_string(),
            ('f' | 'F', Val::Float(f)) => format!("{:.*}", prec.unwrap_or(6), f),
            ('e', Val::Float(f)) => go_float_e(*f, prec.unwrap_or(6)),
            ('g', Val::Float(f)) => go_float_g(*f),
            _ => {
                bad(&mut out);
                continue;
            }
        };
        let len = body.chars().count();
        let pad = width.unwrap_or(0).saturating_sub(len);
        if minus {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g' | 'x') {
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(d) => (&body[..1], d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&body);
        }
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.go_type(), a.to_display()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn go_float_e(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let exp: i32 = e.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{m}e{sign}{:02}", exp.abs())
        }
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIELDS: &[(&str, FieldKind)] = &[
        ("Series", FieldKind::Str),
        ("LabelMatchers", FieldKind::Str),
        ("LabelValuesByName", FieldKind::Map),
        ("GroupBy", FieldKind::Str),
        ("GroupBySlice", FieldKind::List),
    ];

    fn data() -> Val {
        let mut m = BTreeMap::new();
        m.insert("namespace".to_string(), "ns1".to_string());
        m.insert("pod".to_string(), "a|b".to_string());
        Val::Struct(
            "naming.queryTemplateArgs",
            vec![
                ("Series", Val::Str("http_requests_total".into())),
                (
                    "LabelMatchers",
                    Val::Str("namespace=\"ns1\",pod=~\"a|b\"".into()),
                ),
                ("LabelValuesByName", Val::Map(m)),
                ("GroupBy", Val::Str("pod,container".into())),
                (
                    "GroupBySlice",
                    Val::List(vec![Val::Str("pod".into()), Val::Str("container".into())]),
                ),
            ],
        )
    }

    fn render(src: &str) -> Result<String, TemplateError> {
        Template::parse(src, FIELDS)?.execute(&data())
    }

    #[test]
    fn renders_fields_and_text() {
        assert_eq!(
            render("sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)").unwrap(),
            "sum(rate(http_requests_total{namespace=\"ns1\",pod=~\"a|b\"}[2m])) by (pod,container)"
        );
    }

    #[test]
    fn map_fields_index_and_missing_keys() {
        assert_eq!(render("<<.LabelValuesByName.pod>>").unwrap(), "a|b");
        assert_eq!(
            render("<<index .LabelValuesByName \"namespace\">>").unwrap(),
            "ns1"
        );
        assert_eq!(render("<<index .LabelValuesByName \"nope\">>").unwrap(), "");
        assert_eq!(render("<<.LabelValuesByName.nope>>").unwrap(), "<no value>");
        assert_eq!(render("<<index .GroupBySlice 1>>").unwrap(), "container");
    }

    #[test]
    fn control_flow() {
        assert_eq!(
            render("<<range $i, $l := .GroupBySlice>><<if $i>>,<<end>>x_<<$l>><<end>>").unwrap(),
            "x_pod,x_container"
        );
        assert_eq!(
            render("<<if eq .Series \"other\">>A<<else if eq .Series \"http_requests_total\">>B<<else>>C<<end>>").unwrap(),
            "B"
        );
        assert_eq!(
            render("<<with .LabelValuesByName.pod>>[<<.>>]<<end>>").unwrap(),
            "[a|b]"
        );
        assert_eq!(
            render("<<range .LabelValuesByName>><<.>>;<<end>>").unwrap(),
            "ns1;a|b;"
        );
        assert_eq!(
            render("<<if and (gt (len .GroupBySlice) 1) (not false)>>many<<end>>").unwrap(),
            "many"
        );
        assert_eq!(render("<<or \"\" \"fallback\">>").unwrap(), "fallback");
    }

    #[test]
    fn functions_and_pipelines() {
        assert_eq!(
            render("<<.GroupBySlice | join \",\">>").unwrap(),
            "pod,container"
        );
        assert_eq!(
            render("<<join \"+\" .GroupBySlice>>").unwrap(),
            "pod+container"
        );
        assert_eq!(
            render("<<printf \"%s{%s}\" .Series .LabelMatchers>>").unwrap(),
            "http_requests_total{namespace=\"ns1\",pod=~\"a|b\"}"
        );
        assert_eq!(
            render("<<printf \"%q\" .Series>>").unwrap(),
            "\"http_requests_total\""
        );
        assert_eq!(
            render("<<printf \"%.2f|%d|%5s|%-3d|\" 0.955 7 \"ab\" 4>>").unwrap(),
            "0.95|7|   ab|4  |"
        );
        assert_eq!(render("<<printf \"%d\" \"x\">>").unwrap(), "%!d(string=x)");
        assert_eq!(
            render("<<.Series | printf \"%s_rate\">>").unwrap(),
            "http_requests_total_rate"
        );
        assert_eq!(render("<<$x := .GroupBy>><<$x>>").unwrap(), "pod,container");
        assert_eq!(render("<<print 1 2 \"a\" 3>>").unwrap(), "1 2a3");
        assert_eq!(render("<<.GroupBySlice>>").unwrap(), "[pod container]");
        assert_eq!(render("<<0.5>> <<1000000.0>>").unwrap(), "0.5 1e+06");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  <<- .GroupBy ->>  b").unwrap(), "apod,containerb");
        assert_eq!(render("a <</* note */>> b").unwrap(), "a  b");
        assert_eq!(render("a <<- /* note */ ->> b").unwrap(), "ab");
        // `<<-3>>` is a number, not a trim marker
        assert_eq!(render("<<-3>>").unwrap(), "-3");
    }

    #[test]
    fn parse_errors_name_the_construct() {
        let e = |s: &str| Template::parse(s, FIELDS).unwrap_err().0;
        assert!(e("<<.Foo>>").contains("unknown field \".Foo\""));
        assert!(e("<<.Series.Foo>>").contains("has no field"));
        assert!(e("<<upper .Series>>").contains("function \"upper\" not defined"));
        assert!(e("<<html .Series>>").contains("unsupported function \"html\""));
        assert!(e("<<template \"x\">>").contains("unsupported action <<template>>"));
        assert!(e("<<if .Series>>x").contains("missing <<end>>"));
        assert!(e("<<end>>").contains("unexpected <<end>>"));
        assert!(e("<<.Series").contains("unclosed action"));
        assert!(e("<<$y>>").contains("undefined variable"));
        assert!(e("<<.Series 1>>").contains("non-function"));
        assert!(e("<<\"abc>>").contains("unterminated"));
        let deep_ifs = "<<if 1>>".repeat(5000) + &"<<end>>".repeat(5000);
        assert!(e(&deep_ifs).contains("nests deeper"));
        let else_ifs = format!("<<if 1>>{}<<end>>", "<<else if 1>>".repeat(5000));
        assert!(e(&else_ifs).contains("nests deeper"));
        let deep_parens = format!("<<{}1{}>>", "(".repeat(5000), ")".repeat(5000));
        assert!(e(&deep_parens).contains("nests deeper"));
    }

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("tab\there\n"), "\"tab\\there\\n\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(go_quote("\u{200b}"), "\"\\u200b\"");
    }
}
