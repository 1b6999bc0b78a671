//! Decoding the three file shapes into rules, validating everything and collecting every
//! problem with its path and line.

use promhpa_core::GroupResource;
use promql_parser::parser::{self as promql, Expr};
use regex::Regex;

use crate::gotmpl::Template;
use crate::render::{Matchers, QUERY_FIELDS};
use crate::resources::{self, LabelTemplate, ResourceMapper};
use crate::yaml::{self, Node, Value};
use crate::{
    ConfigError, ConfigErrors, FileShape, PrometheusSettings, ResourceRule, ResourceRules, Rule,
    RuleKind, RuleSet, SeriesFilter,
};

/// The rules the prometheus-community chart adds when `rules.default` is true (its default).
/// The rules the prometheus-adapter chart renders by default (`rules.default: true`), as YAML.
pub const HELM_DEFAULT_RULES: &str = include_str!("helm_default_rules.yaml");

pub(crate) struct Ctx {
    source: String,
    /// Added to every line (for the text inside a ConfigMap's `config.yaml`).
    line_offset: usize,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<ConfigError>,
    /// Problems that make one rule unable to serve without stopping the file from loading
    /// (prometheus-adapter starts with them and fails at query time).
    pub(crate) broken: Vec<ConfigError>,
    /// The names in the rule file's `backends` section, when rules may name one; `None`
    /// where no rule may (Helm values, rule objects).
    pub(crate) backends: Option<Vec<String>>,
}

impl Ctx {
    pub(crate) fn new(source: &str) -> Ctx {
        Ctx {
            source: source.to_string(),
            line_offset: 0,
            errors: Vec::new(),
            warnings: Vec::new(),
            broken: Vec::new(),
            backends: None,
        }
    }

    fn broken(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.broken.push(ConfigError {
            source_name: self.source.clone(),
            line: line + self.line_offset,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn error(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            source_name: self.source.clone(),
            line: line + self.line_offset,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn warn(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            source_name: self.source.clone(),
            line: line + self.line_offset,
            path: path.to_string(),
            message: message.into(),
        });
    }
}

fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// Edits (insert, delete or replace a character, or swap two adjacent ones) that turn `a`
/// into `b`, letter case aside.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // Rows i-2, i-1 and i of the table of distances between prefixes of a and b.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous[b.len()]
}

/// The candidate closest to `name`, when it is close enough to be a typo of it.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .map(|(_, c)| c)
}

pub(crate) fn suggestion(key: &str, allowed: &[&str]) -> String {
    let best = allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, a)) if d <= (a.len() / 3).max(2) => format!(" (did you mean \"{a}\"?)"),
        _ => format!(
            " (expected one of: {})",
            allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The known entries of a mapping; unknown and duplicate keys are reported. A null node is
/// an empty mapping. `None` when the node is not a mapping.
pub(crate) fn fields<'a>(
    ctx: &mut Ctx,
    node: &'a Node,
    path: &str,
    allowed: &[&str],
    strict: bool,
) -> Option<Vec<(&'a str, &'a Node)>> {
    if node.is_null() {
        return Some(Vec::new());
    }
    let Some(entries) = node.as_map() else {
        ctx.error(
            node.line,
            path,
            format!("expected a mapping, got {}", node.type_name()),
        );
        return None;
    };
    let mut out: Vec<(&str, &Node)> = Vec::new();
    for (k, v) in entries {
        let Some(key) = k
            .as_scalar()
            .filter(|_| !k.is_null() || k.as_scalar() == Some("null"))
        else {
            ctx.error(
                k.line,
                path,
                format!("keys must be strings, got {}", k.type_name()),
            );
            continue;
        };
        if out.iter().any(|(seen, _)| *seen == key) {
            ctx.error(k.line, &join_path(path, key), "duplicate key");
            continue;
        }
        if allowed.contains(&key) {
            out.push((key, v));
        } else if strict {
            ctx.error(
                k.line,
                &join_path(path, key),
                format!("unknown field \"{key}\"{}", suggestion(key, allowed)),
            );
        }
    }
    Some(out)
}

pub(crate) fn get<'a>(entries: &[(&'a str, &'a Node)], key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// A string field; null is absent. Non-scalars are type errors.
pub(crate) fn string(ctx: &mut Ctx, node: Option<&Node>, path: &str) -> Option<String> {
    let node = node?;
    if node.is_null() {
        return None;
    }
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            ctx.error(
                node.line,
                path,
                format!("expected a string, got {}", node.type_name()),
            );
            None
        }
    }
}

pub(crate) fn boolean(ctx: &mut Ctx, node: Option<&Node>, path: &str) -> Option<bool> {
    let node = node?;
    if node.is_null() {
        return None;
    }
    if let Value::Scalar {
        text,
        quoted: false,
        ..
    } = &node.value
    {
        match text.as_str() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
                return Some(true)
            }
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
            | "N" => return Some(false),
            _ => {}
        }
    }
    ctx.error(
        node.line,
        path,
        format!(
            "expected a boolean (true or false), got {}",
            match &node.value {
                Value::Scalar { text, .. } => format!("\"{text}\""),
                _ => node.type_name().to_string(),
            }
        ),
    );
    None
}

pub(crate) fn sequence<'a>(ctx: &mut Ctx, node: Option<&'a Node>, path: &str) -> Vec<&'a Node> {
    let Some(node) = node else {
        return Vec::new();
    };
    if node.is_null() {
        return Vec::new();
    }
    match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => {
            ctx.error(
                node.line,
                path,
                format!("expected a list, got {}", node.type_name()),
            );
            Vec::new()
        }
    }
}

/// Go's RE2 syntax in the form Rust's `regex` crate reads the same way: a `{` that does not
/// start a repetition (`{2}`, `{2,}`, `{2,5}`) is a literal in Go and an error here, and
/// `\Q...\E` quotes literal text in Go only.
pub(crate) fn go_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if chars.get(i + 1) == Some(&'Q') && !in_class => {
                i += 2;
                while i < chars.len() {
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                        i += 2;
                        break;
                    }
                    out.push_str(&regex::escape(&chars[i].to_string()));
                    i += 1;
                }
                continue;
            }
            '\\' => {
                out.push(c);
                if let Some(n) = chars.get(i + 1) {
                    out.push(*n);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // `[]` and `[^]` at the start of a class are literal brackets.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class && !starts_repetition(&chars[i + 1..]) => out.push_str("\\{"),
            '}' if !in_class => {
                // A `}` that closes a repetition was copied with it; any other is literal.
                out.push_str("\\}");
            }
            _ => out.push(c),
        }
        if c == '{' && !in_class && starts_repetition(&chars[i + 1..]) {
            // Copy the whole `{n,m}`.
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                out.push(chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push('}');
            }
        }
        i += 1;
    }
    out
}

/// Whether the text after a `{` is `n}`, `n,}` or `n,m}`.
fn starts_repetition(rest: &[char]) -> bool {
    let digits = |s: &[char]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some('}') => true,
        Some(',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&'}')
        }
        _ => false,
    }
}

/// Compile a regular expression written for Go. One that does not compile breaks the rule
/// (prometheus-adapter refuses to start with an invalid one; a pattern Go reads and this
/// crate cannot must not stop the other rules from being served).
fn compile_regex(ctx: &mut Ctx, line: usize, path: &str, pattern: &str) -> Option<Regex> {
    match Regex::new(&go_regex(pattern)) {
        Ok(r) => Some(r),
        Err(e) => {
            let msg = e.to_string();
            let short = msg.lines().last().unwrap_or(&msg).trim().to_string();
            ctx.broken(
                line,
                path,
                format!("invalid regular expression \"{pattern}\": {short}"),
            );
            None
        }
    }
}

/// The warning of a file without rules (empty, comments only, `{}`), which
/// prometheus-adapter starts with too (the chart renders one with its default rules off).
const NO_RULES: &str = "the file holds no rules: nothing is served (expected `rules`, `externalRules` or `resourceRules`)";

/// Entry point: any of the three shapes.
pub(crate) fn compile(text: &str, source_name: &str) -> Result<RuleSet, ConfigErrors> {
    let mut ctx = Ctx::new(source_name);
    let set = compile_text(&mut ctx, text, true);
    if ctx.errors.is_empty() {
        let mut set = set.unwrap_or_default();
        set.warnings = ctx.warnings;
        set.broken = ctx.broken;
        set.shadowed = crate::precedence::shadowed(&set, source_name);
        Ok(set)
    } else {
        // The file is refused; what would only have broken a rule is listed with the rest,
        // so that one run shows every problem.
        let mut errors = ctx.errors;
        errors.extend(ctx.broken);
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors { errors })
    }
}

fn compile_text(ctx: &mut Ctx, text: &str, allow_configmap: bool) -> Option<RuleSet> {
    let root = match yaml::parse_all(text).map(pick_document) {
        Ok(Some(root)) => root,
        Ok(None) => {
            ctx.warn(1, "", NO_RULES);
            return Some(RuleSet::default());
        }
        Err(e) => {
            ctx.error(e.line, "", e.message);
            return None;
        }
    };
    if root.is_null() || root.as_map().is_some_and(|m| m.is_empty()) {
        ctx.warn(root.line, "", NO_RULES);
        return Some(RuleSet::default());
    }
    if root.as_map().is_none() {
        ctx.error(
            root.line,
            "",
            format!(
                "expected a mapping with `rules`, `externalRules` or `resourceRules` at the top level, got {}",
                root.type_name()
            ),
        );
        return None;
    }
    if root.get("kind").and_then(Node::as_scalar) == Some(crate::objects::KIND) {
        ctx.error(
            root.line,
            "kind",
            "this is a MetricRule object, not a rule file: validate it with `promhpa check -f FILE` and apply it to the cluster",
        );
        return None;
    }
    // Another Kubernetes object (an HPA, a Deployment...) given by mistake: say so once
    // rather than list each of its fields as unknown.
    if let (Some(kind), Some(api_version)) = (
        root.get("kind").and_then(Node::as_scalar),
        root.get("apiVersion").and_then(Node::as_scalar),
    ) {
        let rule_keys = ["rules", "externalRules", "resourceRules", "data"];
        if !rule_keys.iter().any(|k| root.get(k).is_some()) {
            ctx.error(
                root.get("kind").map(|k| k.line).unwrap_or(root.line),
                "kind",
                format!(
                    "this is a {kind} ({api_version}), not a rule file: expected a prometheus-adapter config (`rules`, `externalRules`, `resourceRules`), its Helm values or its ConfigMap"
                ),
            );
            return None;
        }
    }
    let is_configmap = root.get("data").is_some()
        && (root.get("kind").is_some() || root.get("apiVersion").is_some());
    if is_configmap && allow_configmap {
        return compile_configmap(ctx, &root);
    }
    // An umbrella chart's values carry the adapter chart's under its name.
    if let Some(sub) = root
        .get("prometheus-adapter")
        .filter(|n| n.as_map().is_some() && root.get("rules").is_none())
    {
        let (errors, warnings, broken) = (ctx.errors.len(), ctx.warnings.len(), ctx.broken.len());
        let mut set = compile_helm(ctx, sub);
        let prefix = |list: &mut Vec<ConfigError>, from: usize| {
            for e in &mut list[from..] {
                e.path = join_path("prometheus-adapter", &e.path);
            }
        };
        prefix(&mut ctx.errors, errors);
        prefix(&mut ctx.warnings, warnings);
        prefix(&mut ctx.broken, broken);
        set.shape = crate::FileShape::HelmValues;
        return Some(set);
    }
    // Helm values' `rules` is a mapping of the chart's keys; a `rules` mapping without them
    // is an adapter config missing its list's `-`, refused as the adapter refuses it.
    let helm = root.get("rules").is_some_and(|r| {
        r.as_map().is_some_and(|m| {
            m.iter()
                .any(|(k, _)| k.as_scalar().is_some_and(|k| HELM_RULES_KEYS.contains(&k)))
        })
    }) || root.get("prometheus").is_some()
        || root.get("image").is_some()
        || root.get("replicas").is_some();
    let mut set = if helm {
        compile_helm(ctx, &root)
    } else {
        compile_adapter(ctx, &root)
    };
    set.shape = if helm {
        crate::FileShape::HelmValues
    } else {
        crate::FileShape::AdapterConfig
    };
    Some(set)
}

/// The document to read from a (possibly multi-document) file: the first ConfigMap that
/// carries `config.yaml`, else the first non-empty document.
fn pick_document(docs: Vec<Node>) -> Option<Node> {
    let is_adapter_configmap = |d: &Node| {
        d.get("kind").and_then(Node::as_scalar) == Some("ConfigMap")
            && d.get("data")
                .and_then(|data| data.get("config.yaml"))
                .is_some()
    };
    if let Some(i) = docs.iter().position(is_adapter_configmap) {
        return docs.into_iter().nth(i);
    }
    docs.into_iter().find(|d| !d.is_null())
}

fn compile_configmap(ctx: &mut Ctx, root: &Node) -> Option<RuleSet> {
    if let Some(kind) = root.get("kind").and_then(Node::as_scalar) {
        if kind != "ConfigMap" {
            ctx.error(
                root.get("kind").map(|k| k.line).unwrap_or(1),
                "kind",
                format!("expected a ConfigMap manifest, got kind \"{kind}\""),
            );
            return None;
        }
    }
    let data = root.get("data")?;
    let Some(entries) = data.as_map() else {
        ctx.error(
            data.line,
            "data",
            format!("expected a mapping, got {}", data.type_name()),
        );
        return None;
    };
    let Some((key_node, value)) = entries
        .iter()
        .find(|(k, _)| k.as_scalar() == Some("config.yaml"))
    else {
        let keys: Vec<String> = entries
            .iter()
            .filter_map(|(k, _)| k.as_scalar().map(|s| format!("\"{s}\"")))
            .collect();
        ctx.error(
            data.line,
            "data",
            format!(
                "the ConfigMap has no \"config.yaml\" key (it has: {})",
                if keys.is_empty() {
                    "nothing".to_string()
                } else {
                    keys.join(", ")
                }
            ),
        );
        return None;
    };
    let Some(inner) = value.as_scalar() else {
        ctx.error(
            value.line,
            "data.\"config.yaml\"",
            format!("expected a string, got {}", value.type_name()),
        );
        return None;
    };
    // A block scalar (`config.yaml: |`) starts on the line after its key; a quoted one on
    // the key's line.
    let saved = ctx.line_offset;
    ctx.line_offset += if value.is_block() {
        key_node.line
    } else {
        key_node.line.saturating_sub(1)
    };
    let set = compile_text(ctx, inner, false);
    ctx.line_offset = saved;
    set.map(|mut s| {
        s.shape = FileShape::ConfigMap;
        s
    })
}

fn compile_adapter(ctx: &mut Ctx, root: &Node) -> RuleSet {
    let mut set = RuleSet::default();
    let Some(top) = fields(
        ctx,
        root,
        "",
        &["rules", "externalRules", "resourceRules", "backends"],
        true,
    ) else {
        return set;
    };
    set.backends = crate::backends::compile_backends(ctx, get(&top, "backends"));
    let saved_backends = ctx
        .backends
        .replace(set.backends.iter().map(|b| b.name.clone()).collect());
    for (i, node) in sequence(ctx, get(&top, "rules"), "rules")
        .into_iter()
        .enumerate()
    {
        if let Some(rule) = compile_rule(ctx, node, &format!("rules[{i}]"), RuleKind::Custom) {
            set.custom.push(rule);
        }
    }
    for (i, node) in sequence(ctx, get(&top, "externalRules"), "externalRules")
        .into_iter()
        .enumerate()
    {
        if let Some(rule) = compile_rule(
            ctx,
            node,
            &format!("externalRules[{i}]"),
            RuleKind::External,
        ) {
            set.external.push(rule);
        }
    }
    if let Some(node) = get(&top, "resourceRules").filter(|n| !n.is_null()) {
        set.resource = compile_resource_rules(ctx, node, "resourceRules");
    }
    ctx.backends = saved_backends;
    if top.iter().all(|(k, _)| *k == "backends") {
        ctx.error(
            root.line,
            "",
            "no rules: expected `rules`, `externalRules` or `resourceRules`",
        );
    }
    set
}

/// The keys of the chart's `rules` value.
const HELM_RULES_KEYS: &[&str] = &["default", "custom", "external", "resource", "existing"];

/// The entries of a mapping the chart reads; keys it does not read are warned about (the
/// chart ignores them, so the installation runs without them), never refused.
fn helm_fields<'a>(
    ctx: &mut Ctx,
    node: &'a Node,
    path: &str,
    allowed: &[&str],
) -> Option<Vec<(&'a str, &'a Node)>> {
    let entries = fields(ctx, node, path, allowed, false)?;
    for (k, _) in node.as_map().unwrap_or_default() {
        if let Some(key) = k.as_scalar().filter(|key| !allowed.contains(key)) {
            let hint = if key == "rules" && path == "prometheus" {
                " (rules belong at the top level of the values, as `rules:`)".to_string()
            } else {
                suggestion(key, allowed)
            };
            ctx.warn(
                k.line,
                &join_path(path, key),
                format!("the chart does not read \"{key}\" here, so it is ignored{hint}"),
            );
        }
    }
    Some(entries)
}

/// The rules added from the chart's defaults, labelled as such and without lines of the
/// user's file.
fn compile_helm_default_rules(ctx: &mut Ctx, set: &mut RuleSet) {
    let Ok(Some(doc)) = yaml::parse(HELM_DEFAULT_RULES) else {
        ctx.error(
            0,
            "rules.default",
            "the built-in chart default rules do not parse",
        );
        return;
    };
    let mut inner = Ctx::new(&ctx.source);
    for (i, node) in sequence(&mut inner, Some(&doc), "rules.default")
        .into_iter()
        .enumerate()
    {
        if let Some(mut rule) = compile_rule(
            &mut inner,
            node,
            &format!("rules.default[{i}]"),
            RuleKind::Custom,
        ) {
            rule.line = 0;
            set.custom.push(rule);
        }
    }
    let relabel = |mut e: ConfigError| {
        e.line = 0;
        if let Some(end) = e.path.find(']') {
            e.path.insert_str(end + 1, " (chart default)");
        }
        e
    };
    ctx.errors.extend(inner.errors.into_iter().map(relabel));
    ctx.warnings.extend(inner.warnings.into_iter().map(relabel));
    ctx.broken.extend(inner.broken.into_iter().map(relabel));
}

fn compile_helm(ctx: &mut Ctx, root: &Node) -> RuleSet {
    let mut set = RuleSet::default();
    let Some(top) = fields(ctx, root, "", &["rules", "prometheus"], false) else {
        return set;
    };
    if let Some(prom) = get(&top, "prometheus").filter(|n| !n.is_helm_empty()) {
        if let Some(p) = helm_fields(ctx, prom, "prometheus", &["url", "port", "path"]) {
            let url = string(ctx, get(&p, "url"), "prometheus.url");
            let path = string(ctx, get(&p, "path"), "prometheus.path");
            let port = get(&p, "port").and_then(|n| {
                let text = string(ctx, Some(n), "prometheus.port")?;
                match text.parse::<u16>() {
                    Ok(port) => Some(port),
                    Err(_) => {
                        ctx.error(
                            n.line,
                            "prometheus.port",
                            format!("expected a port number (0-65535), got \"{text}\""),
                        );
                        None
                    }
                }
            });
            set.prometheus = Some(PrometheusSettings { url, port, path });
        }
    }
    for (key, helm_key) in [
        ("externalRules", "rules.external"),
        ("resourceRules", "rules.resource"),
    ] {
        let entry = root
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_scalar() == Some(key)));
        if let Some((k, _)) = entry {
            ctx.warn(
                k.line,
                key,
                format!("the chart does not read `{key}` at the top level of its values, so it is ignored; write it as `{helm_key}`"),
            );
        }
    }
    let rules = match get(&top, "rules").filter(|n| !n.is_helm_empty()) {
        Some(n) => helm_fields(ctx, n, "rules", HELM_RULES_KEYS).unwrap_or_default(),
        None => Vec::new(),
    };
    // The chart renders a section only when its value is not empty (`{}`, `[]`, null).
    let section = |key: &str| get(&rules, key).filter(|n| !n.is_helm_empty());
    let default = match get(&rules, "default") {
        Some(n) if n.is_null() => false,
        Some(n) => boolean(ctx, Some(n), "rules.default").unwrap_or(false),
        None => true,
    };
    if let Some(existing) = string(ctx, section("existing"), "rules.existing") {
        if !existing.is_empty() {
            let line = get(&rules, "existing").map(|n| n.line).unwrap_or(1);
            ctx.warn(
                line,
                "rules.existing",
                format!(
                    "the chart then reads rules from the ConfigMap \"{existing}\", which is not in this file; load that ConfigMap instead"
                ),
            );
        }
    }
    if default {
        compile_helm_default_rules(ctx, &mut set);
    }
    for (i, node) in sequence(ctx, section("custom"), "rules.custom")
        .into_iter()
        .enumerate()
    {
        if let Some(rule) = compile_rule(ctx, node, &format!("rules.custom[{i}]"), RuleKind::Custom)
        {
            set.custom.push(rule);
        }
    }
    for (i, node) in sequence(ctx, section("external"), "rules.external")
        .into_iter()
        .enumerate()
    {
        if let Some(rule) = compile_rule(
            ctx,
            node,
            &format!("rules.external[{i}]"),
            RuleKind::External,
        ) {
            set.external.push(rule);
        }
    }
    if let Some(node) = section("resource") {
        set.resource = compile_resource_rules(ctx, node, "rules.resource");
    }
    set
}

const RULE_KEYS: &[&str] = &[
    "seriesQuery",
    "seriesFilters",
    "resources",
    "name",
    "metricsQuery",
    "backend",
];

fn compile_resources(
    ctx: &mut Ctx,
    node: Option<&Node>,
    path: &str,
) -> (ResourceMapper, Option<bool>) {
    let mut mapper = ResourceMapper::default();
    let Some(node) = node else {
        return (mapper, None);
    };
    let Some(res) = fields(
        ctx,
        node,
        path,
        &["template", "overrides", "namespaced"],
        true,
    ) else {
        return (mapper, None);
    };
    let namespaced = boolean(ctx, get(&res, "namespaced"), &join_path(path, "namespaced"));
    let tpath = join_path(path, "template");
    if let Some(src) = string(ctx, get(&res, "template"), &tpath) {
        if !src.is_empty() {
            match LabelTemplate::new(&src) {
                Ok(t) => mapper.template = Some(t),
                Err(e) => {
                    let line = get(&res, "template").map(|n| n.line).unwrap_or(node.line);
                    ctx.error(line, &tpath, e);
                }
            }
        }
    }
    let opath = join_path(path, "overrides");
    if let Some(ov) = get(&res, "overrides").filter(|n| !n.is_null()) {
        match ov.as_map() {
            None => ctx.error(
                ov.line,
                &opath,
                format!(
                    "expected a mapping of label to resource, got {}",
                    ov.type_name()
                ),
            ),
            Some(entries) => {
                let mut seen: Vec<(String, usize)> = Vec::new();
                let mut lines: Vec<(String, GroupResource, usize)> = Vec::new();
                for (k, v) in entries {
                    let Some(label) = k.as_scalar().map(str::to_string) else {
                        ctx.error(k.line, &opath, "label names must be strings");
                        continue;
                    };
                    let lpath = format!("{opath}.{label}");
                    if seen.iter().any(|(l, _)| *l == label) {
                        ctx.error(k.line, &lpath, "duplicate key");
                        continue;
                    }
                    seen.push((label.clone(), k.line));
                    if !crate::render::is_valid_label_name(&label) {
                        ctx.error(
                            k.line,
                            &lpath,
                            format!("\"{label}\" is not a valid Prometheus label name"),
                        );
                    }
                    let Some(gr) = fields(ctx, v, &lpath, &["group", "resource"], true) else {
                        continue;
                    };
                    let group = string(ctx, get(&gr, "group"), &format!("{lpath}.group"))
                        .unwrap_or_default();
                    let resource = string(ctx, get(&gr, "resource"), &format!("{lpath}.resource"))
                        .unwrap_or_default();
                    if resource.is_empty() {
                        ctx.error(
                            v.line,
                            &lpath,
                            "missing \"resource\" (e.g. {resource: pod})",
                        );
                        continue;
                    }
                    let normalized = resources::normalize(&group, &resource);
                    lines.push((label, normalized, k.line));
                }
                let mut overrides: Vec<(String, GroupResource)> = lines
                    .iter()
                    .map(|(l, g, _)| (l.clone(), g.clone()))
                    .collect();
                overrides.sort();
                for (i, (label, gr)) in overrides.iter().enumerate() {
                    if let Some((first, _)) = overrides[..i].iter().find(|(_, g)| g == gr) {
                        let line = lines
                            .iter()
                            .find(|(l, _, _)| l == label)
                            .map(|(_, _, line)| *line)
                            .unwrap_or(ov.line);
                        ctx.warn(
                            line,
                            &format!("{opath}.{label}"),
                            format!(
                                "labels \"{first}\" and \"{label}\" both map to resource \"{gr}\"; prometheus-adapter picks one of them at random at each start, promhpa always uses \"{first}\" in queries; keep only one"
                            ),
                        );
                    }
                }
                mapper.overrides = overrides;
            }
        }
    }
    (mapper, namespaced)
}

/// A series selector in one canonical form: the metric name, then the matchers sorted,
/// values quoted the same way, so that `up{a="1", b!=""}` and `{b!="",__name__="up",a='1'}`
/// are one key.
fn canonical_selector(vs: &promql_parser::parser::VectorSelector) -> String {
    let mut matchers: Vec<String> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| !(m.name == "__name__" && vs.name.is_some()))
        .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
        .collect();
    if let Some(name) = &vs.name {
        matchers.push(format!("__name__={name:?}"));
    }
    matchers.sort();
    let mut or: Vec<String> = vs
        .matchers
        .or_matchers
        .iter()
        .map(|group| {
            let mut g: Vec<String> = group
                .iter()
                .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
                .collect();
            g.sort();
            g.join(",")
        })
        .collect();
    or.sort();
    if or.is_empty() {
        format!("{{{}}}", matchers.join(","))
    } else {
        format!("{{{}}} or {{{}}}", matchers.join(","), or.join("} or {"))
    }
}

/// The metric name a series selector selects, for placeholder rendering.
fn selector_name(vs: &promql_parser::parser::VectorSelector) -> Option<String> {
    if let Some(n) = &vs.name {
        return Some(n.clone());
    }
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal))
        .map(|m| m.value.clone())
}

/// One rule from its YAML node (for rule objects, whose `spec` is a rule).
/// A rule's `backend`: `None` for the default one (absent or `default`).
fn compile_rule_backend(ctx: &mut Ctx, node: Option<&Node>, path: &str) -> Option<String> {
    let line = node.map(|n| n.line).unwrap_or_default();
    let name = string(ctx, node, path)
        .filter(|n| !n.is_empty() && n != crate::backends::DEFAULT_BACKEND)?;
    match &ctx.backends {
        Some(known) if known.contains(&name) => Some(name),
        Some(known) => {
            let message = crate::backends::unknown_backend(&name, known);
            ctx.error(line, path, message);
            None
        }
        None => {
            ctx.error(
                line,
                path,
                "only rules of a rule file (--config) may name a backend; these are served by the default one",
            );
            None
        }
    }
}

pub(crate) fn compile_rule_node(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    kind: RuleKind,
) -> Option<Rule> {
    compile_rule(ctx, node, path, kind)
}

fn compile_rule(ctx: &mut Ctx, node: &Node, path: &str, kind: RuleKind) -> Option<Rule> {
    let errors_before = ctx.errors.len();
    let broken_before = ctx.broken.len();
    let f = fields(ctx, node, path, RULE_KEYS, true)?;
    // seriesQuery: prometheus-adapter starts with any string here and asks Prometheus for
    // it, which refuses; so the rule is broken, not the file.
    let sq_path = join_path(path, "seriesQuery");
    let sq_node = get(&f, "seriesQuery");
    let series_query = string(ctx, sq_node, &sq_path).unwrap_or_default();
    let sq_line = sq_node.map(|n| n.line).unwrap_or(node.line);
    let mut sample_series = None;
    let mut discoverable = false;
    let mut series_key = series_query.trim().to_string();
    if series_query.trim().is_empty() {
        ctx.broken(sq_line, &sq_path, "missing seriesQuery (a series selector such as 'http_requests_total{namespace!=\"\",pod!=\"\"}')");
    } else {
        match parse_promql(&series_query) {
            Ok(Expr::VectorSelector(vs)) => {
                if vs.offset.is_some() || vs.at.is_some() {
                    ctx.broken(sq_line, &sq_path, "a series selector cannot have offset or @ modifiers");
                } else {
                    discoverable = true;
                }
                sample_series = selector_name(&vs);
                series_key = canonical_selector(&vs);
            }
            Ok(_) => ctx.broken(
                sq_line,
                &sq_path,
                format!("\"{}\" is not a series selector (expected e.g. 'metric{{label!=\"\"}}', not an expression)", shorten(&series_query)),
            ),
            Err(e) => ctx.broken(
                sq_line,
                &sq_path,
                format!("\"{}\" is not a valid series selector: {}", shorten(&series_query), e.trim()),
            ),
        }
    }
    // seriesFilters
    let mut filters = Vec::new();
    let sf_path = join_path(path, "seriesFilters");
    for (i, fnode) in sequence(ctx, get(&f, "seriesFilters"), &sf_path)
        .into_iter()
        .enumerate()
    {
        let fpath = format!("{sf_path}[{i}]");
        let Some(ff) = fields(ctx, fnode, &fpath, &["is", "isNot"], true) else {
            continue;
        };
        let is = string(ctx, get(&ff, "is"), &format!("{fpath}.is")).filter(|s| !s.is_empty());
        let is_not =
            string(ctx, get(&ff, "isNot"), &format!("{fpath}.isNot")).filter(|s| !s.is_empty());
        match (is, is_not) {
            (Some(_), Some(_)) => ctx.error(
                fnode.line,
                &fpath,
                "a filter has either `is` or `isNot`, not both",
            ),
            (None, None) => ctx.error(fnode.line, &fpath, "a filter needs `is` or `isNot`"),
            (Some(p), None) => {
                if let Some(regex) = compile_regex(ctx, fnode.line, &format!("{fpath}.is"), &p) {
                    filters.push(SeriesFilter {
                        regex,
                        positive: true,
                    });
                }
            }
            (None, Some(p)) => {
                if let Some(regex) = compile_regex(ctx, fnode.line, &format!("{fpath}.isNot"), &p) {
                    filters.push(SeriesFilter {
                        regex,
                        positive: false,
                    });
                }
            }
        }
    }
    // resources
    let (resources, namespaced) =
        compile_resources(ctx, get(&f, "resources"), &join_path(path, "resources"));
    if kind == RuleKind::Custom && namespaced.is_some() {
        let line = get(&f, "resources").map(|n| n.line).unwrap_or(node.line);
        ctx.warn(
            line,
            &join_path(path, "resources.namespaced"),
            "resources.namespaced only applies to externalRules; for custom metrics the scope comes from the resource (prometheus-adapter ignores it here too)",
        );
    }
    // name
    let n_path = join_path(path, "name");
    let (mut name_matches, mut name_as) = (None, String::new());
    let mut matches_src = String::new();
    if let Some(nnode) = get(&f, "name") {
        if let Some(nf) = fields(ctx, nnode, &n_path, &["matches", "as"], true) {
            matches_src =
                string(ctx, get(&nf, "matches"), &format!("{n_path}.matches")).unwrap_or_default();
            name_as = string(ctx, get(&nf, "as"), &format!("{n_path}.as")).unwrap_or_default();
            if !matches_src.is_empty() {
                let line = get(&nf, "matches").map(|n| n.line).unwrap_or(nnode.line);
                name_matches = compile_regex(ctx, line, &format!("{n_path}.matches"), &matches_src);
            }
        }
    }
    let explicit_filters = filters.len();
    // A rule whose filters or name pattern did not compile cannot say which series it
    // serves, so it is not asked for any.
    if ctx.broken.len() > broken_before {
        discoverable = false;
    }
    let name_regex = match name_matches {
        Some(r) => {
            filters.push(SeriesFilter {
                regex: r.clone(),
                positive: true,
            });
            r
        }
        None => Regex::new(".*").ok()?,
    };
    if name_as.is_empty() {
        match name_regex.captures_len() {
            1 => name_as = "$0".into(),
            2 => name_as = "$1".into(),
            n => {
                let line = get(&f, "name").map(|n| n.line).unwrap_or(node.line);
                ctx.error(
                    line,
                    &format!("{n_path}.as"),
                    format!(
                        "name.matches \"{matches_src}\" has {} capture groups, so `as` must say which to use (e.g. \"$1\")",
                        n - 1
                    ),
                );
            }
        }
    }
    // metricsQuery
    let mq_path = join_path(path, "metricsQuery");
    let mq_node = get(&f, "metricsQuery");
    let mq_line = mq_node.map(|n| n.line).unwrap_or(node.line);
    let mq_src = string(ctx, mq_node, &mq_path).unwrap_or_default();
    let mut template = None;
    if mq_src.trim().is_empty() {
        ctx.broken(
            mq_line,
            &mq_path,
            "missing metricsQuery (e.g. 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)')",
        );
    } else {
        match Template::parse(&mq_src, QUERY_FIELDS) {
            Ok(t) => template = Some(t),
            Err(e) => ctx.broken(mq_line, &mq_path, format!("invalid template: {e}")),
        }
    }
    if ctx.errors.len() > errors_before {
        return None;
    }
    let backend = compile_rule_backend(ctx, get(&f, "backend"), &join_path(path, "backend"));
    if ctx.errors.len() > errors_before {
        return None;
    }
    let template_parsed = template.is_some();
    let mut rule = Rule {
        kind,
        path: path.to_string(),
        series_query,
        // In the file: a ConfigMap's config.yaml starts some lines down.
        line: node.line + ctx.line_offset,
        filters,
        explicit_filters,
        name_matches: name_regex,
        name_as,
        resources,
        namespaced: namespaced.unwrap_or(true),
        metrics_query: match template {
            Some(t) => t,
            None => Template::parse("", QUERY_FIELDS).ok()?,
        },
        metrics_query_source: mq_src,
        sample_series,
        broken: None,
        discoverable,
        series_key,
        pinned: None,
        backend,
    };
    if template_parsed {
        check_rule(ctx, &rule, mq_line, &mq_path);
    }
    if ctx.errors.len() > errors_before {
        return None;
    }
    if ctx.broken.len() > broken_before {
        let reasons: Vec<String> = ctx.broken[broken_before..]
            .iter()
            .map(|e| {
                let field = e
                    .path
                    .strip_prefix(path)
                    .map(|p| p.trim_start_matches('.'))
                    .unwrap_or(&e.path);
                if field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{field}: {}", e.message)
                }
            })
            .collect();
        rule.broken = Some(reasons.join("; "));
    }
    Some(rule)
}

/// Placeholder request for a rule, and whether it found a resource to use.
fn placeholder_names() -> Vec<String> {
    vec!["placeholder-a".to_string(), "placeholder-b".to_string()]
}

/// Render the rule for its sample request and check the result is PromQL.
fn check_rule(ctx: &mut Ctx, rule: &Rule, line: usize, path: &str) {
    let has_ns = rule.label_for_resource(&resources::namespaces()).is_some();
    let res_path = format!("{}.resources", rule.path);
    let rendered = match rule.kind {
        RuleKind::Custom if rule.resources.is_empty() => {
            ctx.warn(rule.line, &res_path, "no label is mapped to a Kubernetes resource (set resources.overrides or resources.template), so this rule serves no metric");
            let mut m = Matchers::default();
            m.push_eq("placeholder", "value");
            rule.metrics_query
                .execute(&m.into_data(&rule.sample_request().series, vec!["placeholder".into()]))
                .map_err(|e| e.0)
        }
        RuleKind::Custom => {
            // A rule of cluster-scoped resources only (nodes) needs no namespace label.
            if !has_ns && !rule.resources.only_cluster_scoped() {
                ctx.warn(rule.line, &res_path, "no label is mapped to namespaces, so requests for namespaced resources (e.g. pods) fail as in prometheus-adapter; add e.g. `namespace: {resource: namespace}` to resources.overrides");
            }
            rule.sample_query().map_err(|e| e.to_string())
        }
        RuleKind::External => {
            if rule.namespaced && !has_ns {
                ctx.warn(rule.line, &res_path, "the rule is namespaced (the default) but no label is mapped to namespaces, so requests in a namespace fail as in prometheus-adapter; map one or set `namespaced: false`");
            }
            rule.sample_query().map_err(|e| e.to_string())
        }
    };
    match rendered {
        Ok(q) => {
            if let Some(expr) = check_promql(ctx, line, path, &q) {
                if quantile_drops_le(&expr) {
                    ctx.warn(line, path, "histogram_quantile is applied to an aggregation that drops the `le` label, so the query returns no data; keep `le` in the aggregation, e.g. `sum by (le, <<.GroupBy>>) (...)`");
                }
            }
        }
        Err(e) => ctx.broken(
            line,
            path,
            format!("rendering with placeholder data failed: {e}"),
        ),
    }
}

/// Whether `expr` has a `histogram_quantile` whose buckets were aggregated without `le`.
fn quantile_drops_le(expr: &Expr) -> bool {
    match expr {
        Expr::Call(call) => {
            (call.func.name == "histogram_quantile"
                && call.args.args.get(1).is_some_and(|a| drops_le(a)))
                || call.args.args.iter().any(|a| quantile_drops_le(a))
        }
        Expr::Aggregate(a) => {
            quantile_drops_le(&a.expr) || a.param.as_deref().is_some_and(quantile_drops_le)
        }
        Expr::Unary(u) => quantile_drops_le(&u.expr),
        Expr::Binary(b) => quantile_drops_le(&b.lhs) || quantile_drops_le(&b.rhs),
        Expr::Paren(p) => quantile_drops_le(&p.expr),
        Expr::Subquery(s) => quantile_drops_le(&s.expr),
        _ => false,
    }
}

fn drops_le(expr: &Expr) -> bool {
    use promql_parser::parser::LabelModifier;
    match expr {
        Expr::Paren(p) => drops_le(&p.expr),
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio") {
                return false;
            }
            match &a.modifier {
                Some(LabelModifier::Include(l)) => !l.labels.iter().any(|x| x == "le"),
                Some(LabelModifier::Exclude(l)) => l.labels.iter().any(|x| x == "le"),
                None => true,
            }
        }
        _ => false,
    }
}

/// Deepest nesting of brackets in `text` (quoted strings included, which only overcounts).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Deeper queries are refused before parsing, so that no input can exhaust the stack.
const MAX_QUERY_NESTING: usize = 128;

/// `text`, cut to a length that reads well in a message.
fn shorten(text: &str) -> String {
    const MAX: usize = 400;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Longer queries are refused before parsing (parsing cost grows faster than length).
const MAX_QUERY_BYTES: usize = 32 * 1024;

/// Parse PromQL, refusing absurdly long or deeply nested text first.
fn parse_promql(query: &str) -> Result<Expr, String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!("the query is longer than {MAX_QUERY_BYTES} bytes"));
    }
    if nesting_depth(query) > MAX_QUERY_NESTING {
        return Err(format!(
            "brackets nest deeper than {MAX_QUERY_NESTING} levels"
        ));
    }
    promql::parse(query)
}

fn check_promql(ctx: &mut Ctx, line: usize, path: &str, query: &str) -> Option<Expr> {
    match parse_promql(query) {
        Ok(expr) => Some(expr),
        Err(e) => {
            ctx.broken(
                line,
                path,
                format!(
                    "renders to invalid PromQL: {}; rendered with placeholder data: {}",
                    e.trim(),
                    shorten(query)
                ),
            );
            None
        }
    }
}

fn compile_resource_rule(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ResourceRule> {
    let errors_before = ctx.errors.len();
    let broken_before = ctx.broken.len();
    let f = fields(
        ctx,
        node,
        path,
        &["containerQuery", "nodeQuery", "resources", "containerLabel"],
        true,
    )?;
    // containerQuery must work; a nodeQuery that cannot only costs node metrics
    // (prometheus-adapter serves pods then too, and answers node requests with nothing).
    let mut templates = Vec::new();
    for key in ["containerQuery", "nodeQuery"] {
        let kpath = join_path(path, key);
        let knode = get(&f, key);
        let line = knode.map(|n| n.line).unwrap_or(node.line);
        let src = string(ctx, knode, &kpath).unwrap_or_default();
        let parsed = if src.trim().is_empty() {
            Err(format!("missing {key}"))
        } else {
            Template::parse(&src, QUERY_FIELDS).map_err(|e| format!("invalid template: {e}"))
        };
        match parsed {
            Ok(t) => templates.push(Some((Ok(t), src, line))),
            Err(why) if key == "nodeQuery" => {
                ctx.warn(
                    line,
                    &kpath,
                    format!("{why}; node metrics (kubectl top node) fail, pod metrics are served"),
                );
                templates.push(Some((Err(why), src, line)));
            }
            Err(why) => {
                ctx.broken(line, &kpath, why);
                templates.push(None);
            }
        }
    }
    let (resources, namespaced) =
        compile_resources(ctx, get(&f, "resources"), &join_path(path, "resources"));
    if namespaced.is_some() {
        let line = node.line;
        ctx.error(
            line,
            &join_path(path, "resources.namespaced"),
            "unknown field \"namespaced\" for resource rules",
        );
    }
    let container_label = string(
        ctx,
        get(&f, "containerLabel"),
        &join_path(path, "containerLabel"),
    )
    .unwrap_or_default();
    if container_label.is_empty() {
        ctx.warn(
            node.line,
            &join_path(path, "containerLabel"),
            "missing containerLabel (the label holding the container name, e.g. container): pods are reported with one container named \"\", as prometheus-adapter reports them",
        );
    } else if !crate::render::is_valid_label_name(&container_label) {
        ctx.broken(
            node.line,
            &join_path(path, "containerLabel"),
            format!("\"{container_label}\" is not a valid Prometheus label name"),
        );
    }
    let mut it = templates.into_iter();
    let (Some(Some((Ok(cq), cq_src, cq_line))), Some(Some((nq, nq_src, nq_line)))) =
        (it.next(), it.next())
    else {
        return None;
    };
    if ctx.errors.len() > errors_before || ctx.broken.len() > broken_before {
        return None;
    }
    let rule = ResourceRule {
        path: path.to_string(),
        container_query: cq,
        container_query_source: cq_src,
        node_query: nq,
        node_query_source: nq_src,
        resources,
        container_label,
    };
    match rule.render_container_query("default", &placeholder_names()) {
        Ok(q) => {
            check_promql(ctx, cq_line, &join_path(path, "containerQuery"), &q);
        }
        Err(e) => ctx.broken(
            cq_line,
            &join_path(path, "containerQuery"),
            format!("rendering with placeholder data failed: {e}"),
        ),
    }
    let mut rule = rule;
    if rule.node_query.is_ok() {
        let npath = join_path(path, "nodeQuery");
        let failed = match rule.render_node_query(&placeholder_names()) {
            Ok(q) => parse_promql(&q).err().map(|e| {
                format!(
                    "renders to invalid PromQL: {}; rendered with placeholder data: {}",
                    e.trim(),
                    shorten(&q)
                )
            }),
            Err(e) => Some(format!("rendering with placeholder data failed: {e}")),
        };
        if let Some(why) = failed {
            ctx.warn(
                nq_line,
                &npath,
                format!("{why}; node metrics (kubectl top node) fail, pod metrics are served"),
            );
            rule.node_query = Err(why);
        }
    }
    (ctx.errors.len() == errors_before && ctx.broken.len() == broken_before).then_some(rule)
}

fn compile_resource_rules(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ResourceRules> {
    let f = fields(ctx, node, path, &["cpu", "memory", "window"], true)?;
    let mut window_ms = None;
    let wpath = join_path(path, "window");
    if let Some(w) = string(ctx, get(&f, "window"), &wpath) {
        match promhpa_core::duration::parse_prometheus_duration_ms(&w) {
            Ok(ms) => window_ms = Some(ms),
            Err(e) => {
                let line = get(&f, "window").map(|n| n.line).unwrap_or(node.line);
                ctx.error(
                    line,
                    &wpath,
                    format!("invalid duration \"{w}\": {}", e.message),
                );
            }
        }
    }
    let mut parts = Vec::new();
    for key in ["cpu", "memory"] {
        let kpath = join_path(path, key);
        match get(&f, key).filter(|n| !n.is_null()) {
            Some(n) => parts.push(compile_resource_rule(ctx, n, &kpath)),
            None => {
                ctx.broken(
                    node.line,
                    &kpath,
                    format!("missing {key} (containerQuery, nodeQuery, resources, containerLabel)"),
                );
                parts.push(None);
            }
        }
    }
    let mut it = parts.into_iter();
    match (it.next(), it.next()) {
        (Some(Some(cpu)), Some(Some(memory))) => Some(ResourceRules {
            cpu,
            memory,
            window_ms,
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_suggests_close_keys() {
        assert_eq!(edit_distance("seriesQuerry", "seriesQuery"), 1);
        assert!(suggestion("metricQuery", RULE_KEYS).contains("did you mean \"metricsQuery\""));
        assert!(suggestion("zzz", RULE_KEYS).contains("expected one of"));
    }

    #[test]
    fn helm_default_rules_compile() {
        let mut ctx = Ctx::new("t");
        let doc = yaml::parse(HELM_DEFAULT_RULES).unwrap().unwrap();
        let rules: Vec<_> = sequence(&mut ctx, Some(&doc), "rules.default")
            .into_iter()
            .enumerate()
            .filter_map(|(i, n)| {
                compile_rule(
                    &mut ctx,
                    n,
                    &format!("rules.default[{i}]"),
                    RuleKind::Custom,
                )
            })
            .collect();
        assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
        assert_eq!(rules.len(), 6);
    }
}
