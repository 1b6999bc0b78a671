//! The one place YAML text becomes a tree: every node keeps the line it starts on, so that
//! every validation message can point into the file.

use std::collections::HashMap;

use granit_parser::{ErrorKind, Event, Marker, Parser, ScalarStyle, ScanError};

/// Aliases may not expand a document beyond this many nodes (guards against "billion laughs").
const MAX_NODES: usize = 200_000;

/// A YAML node with the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A scalar; `quoted` is true for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        quoted: bool,
        block: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order (duplicates kept, so they can be reported).
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false, .. } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Whether Helm's templates treat the value as empty (`if .Values.x` is false): null,
    /// an empty mapping, list or string, `false` or zero.
    pub fn is_helm_empty(&self) -> bool {
        match &self.value {
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
            Value::Scalar { text, quoted, .. } => {
                text.is_empty()
                    || (!quoted
                        && (self.is_null()
                            || matches!(text.as_str(), "false" | "False" | "FALSE" | "0")))
            }
        }
    }

    /// The node's type as a YAML user would call it, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
        }
    }

    /// Whether this is a `|` or `>` block scalar.
    pub fn is_block(&self) -> bool {
        matches!(self.value, Value::Scalar { block: true, .. })
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Look up a key of a mapping (the first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }
}

/// Why text could not be read as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub message: String,
}

/// How many times a space is put after a `:` that directly precedes a flow collection (see
/// [`parse_all`]); the text is parsed again each time.
const MAX_SPACED_VALUES: usize = 100;

/// Parse every document of `text` (`---`-separated). Empty when the text holds no document
/// at all (empty, or only comments).
pub(crate) fn parse_all(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut spaced: Option<String> = None;
    let mut spaces = 0;
    loop {
        let current = spaced.as_deref().unwrap_or(text);
        let e = match build(current) {
            Ok(builder) => return finish(current, builder),
            Err(e) => e,
        };
        // In a flow collection `{key:[a]}` and `[key:{a: b}]` hold `key: [a]` and `key: {a: b}`,
        // as Go's YAML reads them; the parser wants a blank after that `:`. One is put there
        // and the text read again: lines, and every scalar, stay as they are.
        let colon = e
            .marker()
            .byte_offset()
            .filter(|&at| current.get(at..).is_some_and(|rest| rest.starts_with(':')));
        match colon {
            Some(at)
                if *e.kind() == ErrorKind::FlowMappingValueAdjacentCollection
                    && spaces < MAX_SPACED_VALUES =>
            {
                spaces += 1;
                let mut next = String::with_capacity(current.len() + 1);
                next.push_str(&current[..=at]);
                next.push(' ');
                next.push_str(&current[at + 1..]);
                spaced = Some(next);
            }
            _ => {
                return Err(YamlError {
                    line: e.marker().line().max(1),
                    message: format!(
                        "not valid YAML: {} (column {})",
                        e.info(),
                        e.marker().col() + 1
                    ),
                })
            }
        }
    }
}

/// Read the events of `text` into a tree.
fn build(text: &str) -> Result<Builder, ScanError> {
    // Comments are not needed; without their capture no run of comment lines can exceed the
    // parser's buffer for them.
    let options = granit_parser::options! { emit_comments: false };
    let mut builder = Builder::default();
    for next in Parser::new_from_str_with_options(text, options) {
        let (event, span) = next?;
        match event {
            // An empty node (`key:` with nothing after it) spans no text; the parser reads it
            // as `~` (or, tagged, as ""). It is "" here, on the line of what follows it.
            Event::Scalar(_, ScalarStyle::Plain, anchor, _) if span.start == span.end => {
                let line = empty_node_line(text, &span.start, builder.expects_value());
                builder.on_event(
                    Event::Scalar("".into(), ScalarStyle::Plain, anchor, None),
                    line,
                );
            }
            event => builder.on_event(event, span.start.line()),
        }
    }
    Ok(builder)
}

/// The documents read from `text` by `builder`.
fn finish(text: &str, builder: Builder) -> Result<Vec<Node>, YamlError> {
    if let Some(err) = builder.error {
        return Err(err);
    }
    let mut roots = builder.roots;
    // A block scalar that runs to the end of text without a final line break has no line
    // break to keep (as Go's YAML reads it: `config.yaml: |-` around a file ending in
    // `metricsQuery: |`); the scanner here adds one.
    let last_line = text.rsplit('\n').next().unwrap_or("").trim();
    let ends_document = last_line == "---" || last_line == "...";
    if builder.last_scalar_block
        && !last_line.is_empty()
        && !last_line.starts_with('#')
        && !ends_document
    {
        if let Some(Node {
            value: Value::Scalar { text: value, .. },
            ..
        }) = roots.last_mut().and_then(last_scalar_mut)
        {
            if value.ends_with('\n') {
                value.pop();
            }
        }
    }
    Ok(roots)
}

/// The line given to an empty node that the parser places at `mark`: the line of the next
/// token (comments and blank lines skipped), the end of a text without a final line break
/// counting as the line after its last one. An empty mapping value is placed at its `:`;
/// the `:` is passed over, except in a flow collection where a `,`, `}` or `]` follows it:
/// there the value is on the line of its `:`.
fn empty_node_line(text: &str, mark: &Marker, value: bool) -> usize {
    let Some(start) = mark.byte_offset().filter(|&at| text.is_char_boundary(at)) else {
        return mark.line();
    };
    let rest = &text[start..];
    let (rest, colon) = match rest.strip_prefix(':') {
        Some(after) if value => (after, true),
        _ => (rest, false),
    };
    let mut breaks = 0;
    let mut chars = rest.chars().peekable();
    let mut in_comment = false;
    let next = loop {
        match chars.next() {
            None => break None,
            Some('\r') => {
                chars.next_if_eq(&'\n');
                breaks += 1;
                in_comment = false;
            }
            Some('\n') => {
                breaks += 1;
                in_comment = false;
            }
            Some(_) if in_comment => {}
            Some(' ' | '\t') => {}
            Some('#') => in_comment = true,
            Some(c) => break Some(c),
        }
    };
    match next {
        Some(',' | '}' | ']') if colon => mark.line(),
        Some(_) => mark.line() + breaks,
        None if text.ends_with(['\n', '\r']) => mark.line() + breaks,
        None => mark.line() + breaks + 1,
    }
}

/// The scalar that comes last in `node`, in document order.
fn last_scalar_mut(node: &mut Node) -> Option<&mut Node> {
    if matches!(node.value, Value::Scalar { .. }) {
        return Some(node);
    }
    match &mut node.value {
        Value::Seq(items) => items.last_mut().and_then(last_scalar_mut),
        Value::Map(entries) => entries.last_mut().and_then(|(_, v)| last_scalar_mut(v)),
        Value::Scalar { .. } => None,
    }
}

/// Parse the first document of `text`; `Ok(None)` when there is none.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    Ok(parse_all(text)?.into_iter().next())
}

enum Frame {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    roots: Vec<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    error: Option<YamlError>,
    /// Whether the last scalar read was a `|` or `>` block.
    last_scalar_block: bool,
}

fn node_size(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(node_size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_size(k) + node_size(v))
                .sum::<usize>()
        }
    }
}

/// YAML 1.1 merge keys (`<<: *base`, `<<: [*a, *b]`): the merged mappings' entries are added
/// where the mapping does not set the key itself.
fn apply_merge_keys(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge =
        |k: &Node| matches!(&k.value, Value::Scalar { text, quoted: false, .. } if text == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| is_merge(k));
    for (key, value) in merges {
        let sources: Vec<Node> = match value.value {
            Value::Map(_) => vec![value],
            Value::Seq(items) => items,
            // not mergeable: keep it so that it is reported as an unknown key
            _ => {
                own.push((key, value));
                continue;
            }
        };
        for source in sources {
            if let Value::Map(src) = source.value {
                for (k, v) in src {
                    let present = own
                        .iter()
                        .any(|(o, _)| o.as_scalar().is_some() && o.as_scalar() == k.as_scalar());
                    if !present {
                        own.push((k, v));
                    }
                }
            }
        }
    }
    own
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.roots.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl Builder {
    /// Whether the next node is the value of a mapping entry.
    fn expects_value(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: Some(_),
                ..
            })
        )
    }

    fn unknown_anchor(&mut self, line: usize) {
        self.error = Some(YamlError {
            line,
            message: "alias refers to an unknown anchor".into(),
        });
    }

    /// Take one parser event that starts on (1-based) `line`.
    fn on_event(&mut self, ev: Event<'_>, line: usize) {
        if self.error.is_some() {
            return;
        }
        let line = line.max(1);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.nodes += 1;
                let quoted = style != ScalarStyle::Plain;
                let block = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded);
                self.last_scalar_block = block;
                self.push_node(
                    Node {
                        line,
                        value: Value::Scalar {
                            text: text.into_owned(),
                            quoted,
                            block,
                        },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(_, anchor, _) => self.stack.push(Frame::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(_, anchor, _) => self.stack.push(Frame::Map {
                line,
                anchor,
                entries: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        line,
                        anchor,
                        items,
                    }) => (
                        Node {
                            line,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        line,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            line,
                            value: Value::Map(apply_merge_keys(entries)),
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.nodes += 1;
                self.push_node(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    self.nodes += node_size(&node);
                    if self.nodes > MAX_NODES {
                        self.error = Some(YamlError {
                            line,
                            message: format!(
                                "aliases expand the document beyond {MAX_NODES} nodes"
                            ),
                        });
                        return;
                    }
                    self.push_node(node, 0);
                }
                None => self.unknown_anchor(line),
            },
            // only with `emit_unresolved_aliases`, which is off: the parser fails instead
            Event::UnresolvedAlias(_) => self.unknown_anchor(line),
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(..)
            | Event::DocumentEnd => {}
            // presentation only (anchor names, comments), and events of later parser versions
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_block_scalar_ending_the_text_keeps_no_line_break_it_does_not_have() {
        let q = |text: &str| {
            parse(text)
                .unwrap()
                .unwrap()
                .get("q")
                .unwrap()
                .as_scalar()
                .unwrap()
                .to_string()
        };
        assert_eq!(q("q: |\n  sum(x)\n"), "sum(x)\n");
        assert_eq!(q("q: |\n  sum(x)"), "sum(x)");
        assert_eq!(q("q: |\n  sum(x)\n# end"), "sum(x)\n");
        assert_eq!(q("q: |\n  sum(x)\n..."), "sum(x)\n");
    }

    #[test]
    fn lines_are_one_based_and_kept_per_node() {
        let doc = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap().unwrap();
        let b = doc.get("b").unwrap();
        let Value::Seq(items) = &b.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].line, 4);
        assert_eq!(items[1].as_scalar(), Some("y"));
        assert!(matches!(items[1].value, Value::Scalar { quoted: true, .. }));
        assert_eq!(doc.get("a").unwrap().line, 1);
    }

    #[test]
    fn empty_and_comment_only_text_has_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# nothing\n").unwrap(), None);
    }

    #[test]
    fn invalid_yaml_reports_a_line() {
        let err = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.message.starts_with("not valid YAML"));
    }

    #[test]
    fn every_document_is_returned() {
        let docs = parse_all("---\na: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].get("b").unwrap().line, 4);
    }

    #[test]
    fn aliases_are_expanded() {
        let doc = parse("a: &x {k: v}\nb: *x\n").unwrap().unwrap();
        assert_eq!(
            doc.get("b").unwrap().get("k").unwrap().as_scalar(),
            Some("v")
        );
    }

    #[test]
    fn merge_keys_fill_in_missing_entries() {
        let doc = parse("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n")
            .unwrap()
            .unwrap();
        let m = doc.get("m").unwrap();
        assert_eq!(m.get("x").unwrap().as_scalar(), Some("1"));
        assert_eq!(m.get("y").unwrap().as_scalar(), Some("3"));
        assert!(m.get("<<").is_none());
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
    }

    /// The value of `key` in the first mapping of `text`.
    fn value_of(text: &str, key: &str) -> Node {
        parse(text).unwrap().unwrap().get(key).unwrap().clone()
    }

    #[test]
    fn an_empty_value_is_an_empty_plain_scalar_on_the_line_of_what_follows_it() {
        let empty = |line| Node {
            line,
            value: Value::Scalar {
                text: String::new(),
                quoted: false,
                block: false,
            },
        };
        assert_eq!(value_of("a:\n# note\n\nb: 1\n", "a"), empty(4));
        assert_eq!(value_of("a:\n  b:\nc: 1\n", "a").get("b"), Some(&empty(3)));
        // the end of a text without a final line break is the line after its last one
        assert_eq!(value_of("a:", "a"), empty(2));
        assert_eq!(value_of("a:\n", "a"), empty(2));
        assert_eq!(value_of("a:\n# note", "a"), empty(3));
        assert_eq!(value_of("x: 1\na: &anchor\nb: 1\n", "a"), empty(3));
        assert_eq!(value_of("a: !!str\nb: 1\n", "a"), empty(2));
        // in a flow mapping a value left out before `,` or `}` is on the line of its `:`
        assert_eq!(value_of("{a:\n, b: 1}\n", "a"), empty(1));
        assert_eq!(value_of("{b: 1,\n a:\n}\n", "a"), empty(2));
        assert_eq!(value_of("{b: 1,\n a\n}\n", "a"), empty(3));
        let doc = parse("- # none\n- x\n").unwrap().unwrap();
        let Value::Seq(items) = &doc.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0], empty(2));
        // a `~` written out stays what it is
        assert_eq!(value_of("a: ~\n", "a").as_scalar(), Some("~"));
        assert!(value_of("a: ~\n", "a").is_null());
    }

    #[test]
    fn a_flow_mapping_value_may_follow_its_colon_directly() {
        let doc = parse("a: {k:[x, y], m:{n: 1}}\nb: 2\n").unwrap().unwrap();
        let a = doc.get("a").unwrap();
        let Value::Seq(items) = &a.get("k").unwrap().value else {
            panic!("not a seq")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(a.get("m").unwrap().get("n").unwrap().as_scalar(), Some("1"));
        assert_eq!(doc.get("b").unwrap().line, 2);
        // a quoted key's `:` may be followed by anything; in a plain scalar it is text
        assert!(parse("{\"k\":[x]}").unwrap().unwrap().get("k").is_some());
        assert_eq!(value_of("{u: a:b}", "u").as_scalar(), Some("a:b"));
    }

    #[test]
    fn an_empty_block_scalar_at_the_end_is_empty() {
        assert_eq!(value_of("q: |\n", "q").as_scalar(), Some(""));
        assert_eq!(value_of("q: >\n", "q").as_scalar(), Some(""));
        assert_eq!(value_of("q: |", "q").as_scalar(), Some(""));
        assert_eq!(value_of("q: |\n  x\n  ", "q").as_scalar(), Some("x\n"));
    }

    #[test]
    fn a_byte_order_mark_starting_the_text_is_not_content() {
        let doc = parse("\u{feff}rules: []\n").unwrap().unwrap();
        assert!(doc.get("rules").is_some());
        assert_eq!(parse("\u{feff}# only a comment\n").unwrap(), None);
    }

    #[test]
    fn long_runs_of_comments_are_read() {
        let comments = "# note\n".repeat(500);
        let doc = parse(&format!("a:\n{comments}- x\n{comments}b:\n{comments}- y\n"))
            .unwrap()
            .unwrap();
        // the list `b` holds starts after the third run
        assert_eq!(doc.get("b").unwrap().line, 1504);
    }
}
