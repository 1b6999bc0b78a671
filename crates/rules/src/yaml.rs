//! The one place YAML text becomes a tree: every node keeps the line it starts on, so that
//! every validation message can point into the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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

/// Parse every document of `text` (`---`-separated). Empty when the text holds no document
/// at all (empty, or only comments).
pub(crate) fn parse_all(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(YamlError {
            line: e.marker().line().max(1),
            message: format!("not valid YAML: {}", e.info()),
        });
    }
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

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line().max(1);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.nodes += 1;
                let quoted = style != TScalarStyle::Plain;
                let block = matches!(style, TScalarStyle::Literal | TScalarStyle::Folded);
                self.last_scalar_block = block;
                self.push_node(
                    Node {
                        line,
                        value: Value::Scalar {
                            text,
                            quoted,
                            block,
                        },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
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
                None => {
                    self.error = Some(YamlError {
                        line,
                        message: "alias refers to an unknown anchor".into(),
                    })
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
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
}
