//! Rules as namespaced Kubernetes objects: `MetricRule` (`metrics.promhpa.io/v1alpha1`), one
//! rule each, owned by the team of its namespace.
//!
//! A `MetricRule` carries the fields of a rule of the file under `spec` (`seriesQuery`,
//! `seriesFilters`, `resources`, `name`, `metricsQuery`) and `spec.api` (`custom`, the
//! default, or `external`). It is compiled alone — an invalid object never affects another —
//! and strictly: anything that would make a rule of the file broken makes the object invalid,
//! with the same messages as `promhpa check` (`spec.metricsQuery: ...`).
//!
//! Isolation: a rule of namespace `team-a` is pinned to it. It answers requests for that
//! namespace only, discovery asks the backend only for its series in that namespace, and
//! every series selector of each query it renders must carry the namespace matcher
//! (`<<.LabelMatchers>>`): a template that drops it, or names another namespace, is refused
//! when the object loads and at every request.

use crate::load::{self, Ctx};
use crate::yaml::{self, Node, Value};
use crate::{ConfigError, ConfigErrors, Rule, RuleKind};

/// The API group, version and kind of rule objects.
pub const GROUP: &str = "metrics.promhpa.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "MetricRule";
/// The resource (plural) name of rule objects.
pub const RESOURCE: &str = "metricrules";

/// One `MetricRule` object, compiled.
#[derive(Debug, Clone)]
pub struct MetricRuleObject {
    pub namespace: String,
    pub name: String,
    /// `metadata.generation`, echoed as the status' `observedGeneration`.
    pub generation: Option<i64>,
    /// The rule, or why the object is invalid (field path and reason).
    pub rule: Result<Rule, Vec<ConfigError>>,
    pub warnings: Vec<ConfigError>,
}

impl MetricRuleObject {
    /// `team-a/checkout-latency`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The rule objects of a file or an API answer: one object, a `List`, or several
/// `---`-separated documents (JSON is YAML too). Documents of other kinds are errors; a
/// document that is not an object at all makes the whole text an error.
pub fn parse_metric_rules(text: &str, source: &str) -> Result<Vec<MetricRuleObject>, ConfigErrors> {
    let fail = |line: usize, message: String| ConfigErrors {
        errors: vec![ConfigError {
            source_name: source.to_string(),
            line,
            path: String::new(),
            message,
        }],
    };
    let docs = yaml::parse_all(text).map_err(|e| fail(e.line, e.message))?;
    let mut items: Vec<Node> = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc.get("kind").and_then(Node::as_scalar).unwrap_or("");
        if kind == "List" || kind.ends_with("List") && kind != KIND {
            match doc.get("items").map(|i| &i.value) {
                Some(Value::Seq(list)) => items.extend(list.iter().cloned()),
                _ => items.extend(Vec::new()),
            }
        } else {
            items.push(doc);
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for item in &items {
        let kind = item.get("kind").and_then(Node::as_scalar).unwrap_or("");
        if kind != KIND {
            errors.push(ConfigError {
                source_name: source.to_string(),
                line: item.line,
                path: "kind".to_string(),
                message: format!("expected kind {KIND} ({GROUP}/{VERSION}), got \"{kind}\""),
            });
            continue;
        }
        out.push(compile_object(item, source));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors { errors })
    }
}

fn compile_object(item: &Node, source: &str) -> MetricRuleObject {
    let meta = item.get("metadata");
    let text = |key: &str| {
        meta.and_then(|m| m.get(key))
            .and_then(Node::as_scalar)
            .unwrap_or("")
            .to_string()
    };
    let namespace = text("namespace");
    let name = text("name");
    let generation = meta
        .and_then(|m| m.get("generation"))
        .and_then(Node::as_scalar)
        .and_then(|g| g.parse().ok());
    let mut warnings = Vec::new();
    let rule = compile_spec(item, &namespace, &name, source, &mut warnings);
    MetricRuleObject {
        namespace,
        name,
        generation,
        rule,
        warnings,
    }
}

fn compile_spec(
    item: &Node,
    namespace: &str,
    name: &str,
    source: &str,
    warnings: &mut Vec<ConfigError>,
) -> Result<Rule, Vec<ConfigError>> {
    let error = |line: usize, path: &str, message: String| {
        vec![ConfigError {
            source_name: source.to_string(),
            line,
            path: path.to_string(),
            message,
        }]
    };
    if name.is_empty() {
        return Err(error(item.line, "metadata.name", "missing".into()));
    }
    if namespace.is_empty() {
        return Err(error(
            item.line,
            "metadata.namespace",
            "missing: a MetricRule is namespaced and serves its namespace only".into(),
        ));
    }
    let Some(spec) = item.get("spec") else {
        return Err(error(item.line, "spec", "missing".into()));
    };
    let Some(entries) = spec.as_map() else {
        return Err(error(
            spec.line,
            "spec",
            format!("expected a mapping, got {}", spec.type_name()),
        ));
    };
    let mut kind = RuleKind::Custom;
    let mut rest = Vec::new();
    for (k, v) in entries {
        if k.as_scalar() != Some("api") {
            rest.push((k.clone(), v.clone()));
            continue;
        }
        match v.as_scalar() {
            _ if v.is_null() => {}
            Some("custom") => {}
            Some("external") => kind = RuleKind::External,
            other => {
                return Err(error(
                    v.line,
                    "spec.api",
                    format!(
                        "expected \"custom\" or \"external\", got {}",
                        other
                            .map(|s| format!("\"{s}\""))
                            .unwrap_or_else(|| v.type_name().to_string())
                    ),
                ))
            }
        }
    }
    let rule_node = Node {
        line: spec.line,
        value: Value::Map(rest),
    };
    let mut ctx = Ctx::new(source);
    let compiled = load::compile_rule_node(&mut ctx, &rule_node, "spec", kind);
    warnings.append(&mut ctx.warnings);
    let mut errors = std::mem::take(&mut ctx.errors);
    errors.append(&mut ctx.broken);
    let mut rule = match compiled {
        Some(r) if errors.is_empty() => r,
        _ => return Err(errors),
    };
    let Some(label) = rule.label_for_resource(&crate::resources::namespaces()) else {
        return Err(error(
            spec.line,
            "spec.resources",
            "no label is mapped to namespaces; a MetricRule serves its own namespace only, so map one (e.g. `overrides: {namespace: {resource: namespace}}` or `template: <<.Resource>>`)".into(),
        ));
    };
    rule.pin_to_namespace(&label, namespace);
    rule.set_path(format!("MetricRule {namespace}/{name}"));
    if let Err(e) = rule.sample_query() {
        return Err(error(spec.line, "spec.metricsQuery", e.to_string()));
    }
    Ok(rule)
}
