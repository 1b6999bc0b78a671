//! `promhpa check`: validate a rule file and summarise every rule, and validate `MetricRule`
//! objects before they are applied.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use promhpa_rules::check::{
    object_files, ObjectTally, Outcome, ResourceRulesState, ResourceSample, RuleSample, Verdict,
};
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
            let why = match Outcome::of(&set, strict) {
                Outcome::ServesEveryRule => return ExitCode::SUCCESS,
                Outcome::WarningsRefused => {
                    "--strict refuses warnings, as serve --strict-rules does".to_string()
                }
                Outcome::Broken { problems } => format!(
                    "serve would start without the broken rule{} (and refuse with --strict-rules)",
                    if problems == 1 { "" } else { "s" }
                ),
            };
            eprintln!("{}: {why}", config.display());
            ExitCode::from(EXIT_NOT_CLEAN)
        }
        Err(errors) => {
            let n = errors.errors.len();
            for e in &errors.errors {
                eprintln!("{e}");
            }
            if !errors.unreadable() {
                eprintln!(
                    "{}: {n} error{} found; prometheus-adapter refuses such a file too, and so does promhpa",
                    config.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// Validate MetricRule objects: one line per object, its problems under it. Exit 1 when an
/// object is invalid (promhpa would not serve it) or a file is not a file of objects.
fn check_objects(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut tally = ObjectTally::default();
    for file in object_files(paths)? {
        let source = file.display().to_string();
        let text = match super::read_file(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{source}: {e}");
                tally.refuse_file();
                continue;
            }
        };
        let objects = match promhpa_rules::objects::parse_metric_rules(&text, &source) {
            Ok(o) => o,
            Err(errors) => {
                for e in &errors.errors {
                    eprintln!("{e}");
                }
                tally.refuse_file();
                continue;
            }
        };
        for o in objects {
            tally.add(&o);
            match &o.rule {
                Ok(rule) => {
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
                    println!("{source}: MetricRule {}: INVALID", o.key());
                    for e in errors {
                        println!("  {}: {}", e.path, e.message);
                    }
                }
            }
            for w in &o.warnings {
                println!("  warning: {}: {}", w.path, w.message);
            }
        }
    }
    println!(
        "MetricRule objects: {} ok, {} invalid, {}",
        tally.ok,
        tally.invalid,
        plural(tally.warnings, "warning")
    );
    // As kubectl says of files without objects: nothing was checked, which a CI gate must
    // not take for a pass.
    if tally.ok + tally.invalid == 0 {
        eprintln!("error: no MetricRule objects passed to check");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if tally.passes() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The one-line verdict: "4 rules ok, 1 broken, 2 warnings".
fn verdict(set: &RuleSet) -> String {
    let v = Verdict::of(set);
    let mut parts = vec![format!("{} ok", plural(v.ok_rules, "rule"))];
    if v.broken_rules > 0 {
        parts.push(format!("{} broken", v.broken_rules));
    }
    match v.resource {
        ResourceRulesState::Broken => parts.push("resource rules broken".to_string()),
        ResourceRulesState::Ok => parts.push("resource rules ok".to_string()),
        ResourceRulesState::Absent => {}
    }
    parts.push(plural(v.warnings, "warning"));
    parts.join(", ")
}

/// The readable summary `check` prints for a file that loads: the verdict first, then each
/// rule, then what is broken, shadowed or warned about.
fn summary(set: &RuleSet, source: &str) -> String {
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
            "\nbroken (promhpa serves every other rule; prometheus-adapter fails every request for these, or does not start at all when a template or regex does not compile):"
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
    let RuleSample {
        request: sample,
        served_as,
        query,
    } = RuleSample::of(rule);
    let example = match served_as {
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
    match query {
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
    let sample = ResourceSample::of(rule);
    match sample.pods_query {
        Ok(q) => {
            let _ = writeln!(out, "  pods query: {}", one_line(&q));
        }
        Err(e) => {
            let _ = writeln!(out, "  pods query: {e}");
        }
    }
    match sample.node_query {
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
