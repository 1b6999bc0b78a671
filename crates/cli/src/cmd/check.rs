//! `promhpa check`: validate a rule file and summarise every rule.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use promhpa_rules::{FileShape, ResourceRule, Rule, RuleKind, RuleSet};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The rule file: prometheus-adapter config, Helm values, or a ConfigMap manifest.
    #[arg(long)]
    pub config: PathBuf,
    /// Fail on warnings too, as `serve --strict-rules` refuses to start on them (for CI
    /// pipelines).
    #[arg(long)]
    pub strict: bool,
}

/// Exit code when the file loads but some rules are broken (or, with --strict, warned
/// about); a file that does not load exits 1.
const EXIT_NOT_CLEAN: u8 = 2;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match RuleSet::load(&args.config) {
        Ok(set) => {
            print!("{}", summary(&set, &args.config.display().to_string()));
            let fails = !set.broken.is_empty() || (args.strict && !set.warnings.is_empty());
            if fails {
                let why = if set.broken.is_empty() {
                    "--strict refuses warnings, as serve --strict-rules does".to_string()
                } else {
                    format!(
                        "serve would start without the broken rule{} (and refuse with --strict-rules)",
                        if set.broken.len() == 1 { "" } else { "s" }
                    )
                };
                eprintln!("{}: {why}", args.config.display());
                return Ok(ExitCode::from(EXIT_NOT_CLEAN));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let n = errors.errors.len();
            for e in &errors.errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {n} error{} found; prometheus-adapter refuses such a file too, and so does promhpa",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The one-line verdict: "4 rules ok, 1 broken, 2 warnings".
pub fn verdict(set: &RuleSet) -> String {
    let rules = set.rules().count();
    let broken = set.rules().filter(|r| r.broken().is_some()).count();
    let resource_broken = set
        .broken
        .iter()
        .any(|b| b.path.starts_with("resourceRules") || b.path.starts_with("rules.resource"));
    let mut parts = vec![format!("{} ok", plural(rules - broken, "rule"))];
    if broken > 0 {
        parts.push(format!("{broken} broken"));
    }
    if resource_broken {
        parts.push("resource rules broken".to_string());
    } else if set.resource.is_some() {
        parts.push("resource rules ok".to_string());
    }
    parts.push(plural(set.warnings.len(), "warning"));
    parts.join(", ")
}

/// The readable summary `check` prints for a file that loads: the verdict first, then each
/// rule, then what is broken, shadowed or warned about.
pub fn summary(set: &RuleSet, source: &str) -> String {
    let mut out = String::new();
    let shape = match set.shape {
        FileShape::AdapterConfig => "prometheus-adapter config",
        FileShape::HelmValues => "Helm values",
        FileShape::ConfigMap => "ConfigMap",
    };
    let status = if set.broken.is_empty() {
        "OK"
    } else {
        "BROKEN RULES"
    };
    let _ = writeln!(out, "{source}: {status}: {}", verdict(set));
    let _ = writeln!(
        out,
        "{shape}: {}, {}, {}",
        plural(set.custom.len(), "custom rule"),
        plural(set.external.len(), "external rule"),
        if set.resource.is_some() {
            "resource rules for cpu and memory"
        } else {
            "no resource rules"
        }
    );
    if let Some(p) = &set.prometheus {
        let _ = writeln!(
            out,
            "prometheus: url={} port={} path={}",
            p.url.as_deref().unwrap_or("-"),
            p.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            p.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("-"),
        );
    }
    for rule in set.rules() {
        out.push('\n');
        describe_rule(&mut out, rule);
    }
    if let Some(res) = &set.resource {
        for r in [&res.cpu, &res.memory] {
            out.push('\n');
            describe_resource_rule(&mut out, r);
        }
        if let Some(ms) = res.window_ms {
            let _ = writeln!(
                out,
                "  window:     {}",
                promhpa_core::duration::PromDuration(ms)
            );
        }
    }
    if !set.broken.is_empty() {
        let _ = writeln!(
            out,
            "\nbroken (prometheus-adapter loads these and fails every request for them; promhpa serves every other rule):"
        );
        for b in &set.broken {
            let _ = writeln!(out, "  {b}");
        }
    }
    for s in &set.shadowed {
        let _ = writeln!(out, "\nshadowed: {s}");
    }
    for w in &set.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    out
}

fn describe_rule(out: &mut String, rule: &Rule) {
    let kind = match rule.kind() {
        RuleKind::Custom => "custom",
        RuleKind::External if rule.namespaced() => "external",
        RuleKind::External => "external, not namespaced",
    };
    let broken = if rule.broken().is_some() {
        ", BROKEN"
    } else {
        ""
    };
    if rule.line() == 0 {
        let _ = writeln!(out, "{}: {kind}{broken}", rule.origin());
    } else {
        let _ = writeln!(
            out,
            "{} (line {}): {kind}{broken}",
            rule.origin(),
            rule.line()
        );
    }
    let _ = writeln!(out, "  series:     {}", rule.series_query());
    let filters = rule.series_filters();
    if !filters.is_empty() {
        let parts: Vec<String> = filters
            .iter()
            .map(|(is, p)| format!("{} {p}", if *is { "is" } else { "isNot" }))
            .collect();
        let _ = writeln!(out, "  filters:    {}", parts.join("; "));
    }
    let (matches, as_) = rule.name_mapping();
    let sample = rule.sample_request();
    let example = match rule.metric_name_for(&sample.series) {
        Some(name) => format!("{} → {name}", sample.series),
        None => format!("{} is not served", sample.series),
    };
    let _ = writeln!(
        out,
        "  name:       matches {matches:?} as {as_:?} ({example})"
    );
    let _ = writeln!(out, "  resources:  {}", rule.resources().describe());
    let _ = writeln!(out, "  template:   {}", one_line(rule.metrics_query()));
    let request = match (&sample.resource, &sample.namespace) {
        (Some(r), Some(ns)) => format!("{r} {} in namespace {ns}", sample.names.join(",")),
        (Some(r), None) => format!("{r} {}", sample.names.join(",")),
        (None, Some(ns)) => format!("namespace {ns}"),
        (None, None) => "no namespace".to_string(),
    };
    match rule.sample_query() {
        Ok(q) => {
            let _ = writeln!(out, "  sample:     {request}");
            let _ = writeln!(out, "  query:      {}", one_line(&q));
        }
        Err(e) => {
            let _ = writeln!(out, "  sample:     {request}: {e}");
        }
    }
}

fn describe_resource_rule(out: &mut String, rule: &ResourceRule) {
    let _ = writeln!(out, "{}: resource metrics", rule.path());
    let _ = writeln!(out, "  resources:  {}", rule.resources().describe());
    let _ = writeln!(out, "  container:  label {}", rule.container_label());
    let names = ["placeholder-a".to_string(), "placeholder-b".to_string()];
    match rule.render_container_query("default", &names) {
        Ok(q) => {
            let _ = writeln!(out, "  pods query: {}", one_line(&q));
        }
        Err(e) => {
            let _ = writeln!(out, "  pods query: {e}");
        }
    }
    match rule.render_node_query(&names[..1]) {
        Ok(q) => {
            let _ = writeln!(out, "  node query: {}", one_line(&q));
        }
        Err(e) => {
            let _ = writeln!(out, "  node query: {e}");
        }
    }
}

/// Collapse runs of whitespace (multi-line templates) into single spaces for display.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
