//! `promhpa check`: validate a rule file and summarise every rule, and validate `MetricRule`
//! objects before they are applied.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use promhpa_rules::{FileShape, ResourceRule, Rule, RuleKind, RuleSet};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).multiple(true).args(["config", "filename"])))]
pub struct Args {
    /// The rule file: prometheus-adapter config, Helm values, or a ConfigMap manifest.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// MetricRule objects (metrics.promhpa.io/v1alpha1) to validate before applying them: a
    /// file (YAML or JSON, a List, or `---` documents) or a directory of such files.
    /// Repeatable.
    #[arg(short = 'f', long, value_name = "PATH")]
    pub filename: Vec<PathBuf>,
    /// Fail on warnings too, as `serve --strict-rules` refuses to start on them (for CI
    /// pipelines).
    #[arg(long)]
    pub strict: bool,
}

/// Exit code when the file loads but some rules are broken (or, with --strict, warned
/// about); a file that does not load exits 1.
const EXIT_NOT_CLEAN: u8 = 2;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    if let Some(config) = &args.config {
        code = check_rule_file(config, args.strict);
    }
    if !args.filename.is_empty() {
        let objects = check_objects(&args.filename)?;
        if objects != ExitCode::SUCCESS {
            code = objects;
        }
    }
    Ok(code)
}

fn check_rule_file(config: &std::path::Path, strict: bool) -> ExitCode {
    match RuleSet::load(config) {
        Ok(set) => {
            print!("{}", summary(&set, &config.display().to_string()));
            let fails = !set.broken.is_empty() || (strict && !set.warnings.is_empty());
            if fails {
                let why = if set.broken.is_empty() {
                    "--strict refuses warnings, as serve --strict-rules does".to_string()
                } else {
                    format!(
                        "serve would start without the broken rule{} (and refuse with --strict-rules)",
                        if set.broken.len() == 1 { "" } else { "s" }
                    )
                };
                eprintln!("{}: {why}", config.display());
                return ExitCode::from(EXIT_NOT_CLEAN);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let n = errors.errors.len();
            for e in &errors.errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {n} error{} found; prometheus-adapter refuses such a file too, and so does promhpa",
                config.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// The files `-f` names: files as given, directories' `.yaml`, `.yml` and `.json` files.
fn object_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("reading directory {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Validate MetricRule objects: one line per object, its problems under it. Exit 1 when an
/// object is invalid (promhpa would not serve it) or a file is not a file of objects.
fn check_objects(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut ok, mut invalid, mut warned) = (0, 0, 0);
    let mut failed = false;
    for file in object_files(paths)? {
        let source = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{source}: {e}");
                failed = true;
                continue;
            }
        };
        let objects = match promhpa_rules::objects::parse_metric_rules(&text, &source) {
            Ok(o) => o,
            Err(errors) => {
                for e in &errors.errors {
                    eprintln!("{e}");
                }
                failed = true;
                continue;
            }
        };
        for o in objects {
            match &o.rule {
                Ok(rule) => {
                    ok += 1;
                    let api = match rule.kind() {
                        RuleKind::Custom => "custom",
                        RuleKind::External => "external",
                    };
                    let (matches, as_) = rule.name_mapping();
                    println!(
                        "{source}: MetricRule {}: OK: {api} metrics, name matches {matches:?} as {as_:?}, namespace {} only",
                        o.key(),
                        o.namespace
                    );
                    if let Ok(q) = rule.sample_query() {
                        println!("  sample query: {}", one_line(&q));
                    }
                }
                Err(errors) => {
                    invalid += 1;
                    println!("{source}: MetricRule {}: INVALID", o.key());
                    for e in errors {
                        println!("  {}: {}", e.path, e.message);
                    }
                }
            }
            for w in &o.warnings {
                warned += 1;
                println!("  warning: {}: {}", w.path, w.message);
            }
        }
    }
    println!(
        "MetricRule objects: {ok} ok, {invalid} invalid, {}",
        plural(warned, "warning")
    );
    Ok(if failed || invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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
    for b in &set.backends {
        let mut extras = Vec::new();
        for (k, _) in &b.headers {
            extras.push(format!("header {k}"));
        }
        for (k, v) in &b.query_parameters {
            extras.push(format!("{k}={v}"));
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(" ({})", extras.join(", "))
        };
        let _ = writeln!(out, "backend {}: {}{extras}", b.name, b.url);
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
    if let Some(b) = rule.backend() {
        let _ = writeln!(out, "  backend:    {b}");
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
