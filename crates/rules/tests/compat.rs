//! Replays `../shared/compat/golden.tsv` — real-world prometheus-adapter rule files and, for
//! each request, the PromQL prometheus-adapter's own code renders — through promhpa's loader
//! and renderer. Every row must give the same PromQL, or the same refusal, unless it is one of
//! the differences listed in `docs/compatibility.md` (matched here by `documented_difference`).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::{Rule, RuleKind, RuleSet};
use promql_parser::parser::{self, Expr};

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat")
}

/// `\n`, `\t`, `\r` and `\\` as the corpus README describes.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[derive(Debug)]
struct Row {
    file: String,
    rule: String,
    origin: String,
    series: String,
    request: String,
    metric: String,
    ok: bool,
    answer: String,
}

fn rows() -> Vec<Row> {
    let path = compat_dir().join("golden.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the compatibility corpus lies in ../shared beside the repository)",
            path.display()
        )
    });
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 9, "golden row with {} columns: {l}", f.len());
            Row {
                file: f[0].to_string(),
                rule: f[2].to_string(),
                origin: f[3].to_string(),
                series: f[4].to_string(),
                request: f[5].to_string(),
                metric: f[6].to_string(),
                ok: f[7] == "ok",
                answer: unescape(f[8]),
            }
        })
        .collect()
}

/// A parsed request of the golden file.
#[derive(Debug)]
enum Request {
    Custom {
        resource: GroupResource,
        namespace: Option<String>,
        names: Vec<String>,
        selector: LabelSelector,
    },
    External {
        namespace: String,
        selector: LabelSelector,
    },
}

fn parse_request(text: &str) -> Request {
    let words: Vec<&str> = text.splitn(4, ' ').collect();
    let selector = |rest: Option<&&str>| -> LabelSelector {
        match rest.and_then(|r| r.strip_prefix("sel ")) {
            Some(s) => s.parse().unwrap(),
            None => LabelSelector::everything(),
        }
    };
    match words[0] {
        "pods" => {
            let rest: Vec<&str> = text.splitn(4, ' ').collect();
            Request::Custom {
                resource: GroupResource::new("", "pods"),
                namespace: Some(rest[1].to_string()),
                names: rest[2].split(',').map(str::to_string).collect(),
                selector: selector(rest.get(3)),
            }
        }
        "namespace" => Request::Custom {
            resource: GroupResource::new("", "namespaces"),
            namespace: None,
            names: vec![words[2].to_string()],
            selector: LabelSelector::everything(),
        },
        "node" => Request::Custom {
            resource: GroupResource::new("", "nodes"),
            namespace: None,
            names: vec![words[2].to_string()],
            selector: LabelSelector::everything(),
        },
        kind @ ("service" | "deployment" | "ingress") => Request::Custom {
            resource: match kind {
                "service" => GroupResource::new("", "services"),
                "deployment" => GroupResource::new("apps", "deployments"),
                _ => GroupResource::new("networking.k8s.io", "ingresses"),
            },
            namespace: Some(words[1].to_string()),
            names: vec![words[2].to_string()],
            selector: LabelSelector::everything(),
        },
        "external" => {
            let rest: Vec<&str> = text.splitn(3, ' ').collect();
            Request::External {
                namespace: rest[1].to_string(),
                selector: selector(rest.get(2)),
            }
        }
        other => panic!("unknown request kind {other:?} in {text:?}"),
    }
}

/// The label names a series found by `rule` carries, as the corpus' harness made them:
/// those its `seriesQuery` names, those its overrides map, and the pod and namespace labels
/// of its `resources.template`.
fn series_labels(rule: &Rule) -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = rule
        .resources()
        .override_labels()
        .map(str::to_string)
        .collect();
    for gr in [
        GroupResource::new("", "pods"),
        GroupResource::new("", "namespaces"),
    ] {
        labels.extend(rule.label_for_resource(&gr));
    }
    if let Some(Ok(Expr::VectorSelector(vs))) = rule
        .discoverable()
        .then(|| parser::parse(rule.series_query()))
    {
        for m in &vs.matchers.matchers {
            if m.name != "__name__" {
                labels.insert(m.name.clone());
            }
        }
    }
    labels
}

/// The rule at `origin` (`rules.custom[0]`, `rules[3]`, `externalRules[1]`).
fn rule_at<'a>(set: &'a RuleSet, origin: &str) -> Option<&'a Rule> {
    set.rules().find(|r| r.path() == origin)
}

/// Whether `candidate` finds `series` in the corpus' harness, which gives each rule the
/// series of its own rows: the row's rule, or a rule whose `seriesQuery` names that series.
fn finds(candidate: &Rule, row_rule: &Rule, series: &str) -> bool {
    candidate.path() == row_rule.path() || candidate.selected_series_name() == Some(series)
}

/// What promhpa answers for one row: the PromQL, or why it refuses.
fn answer(set: &RuleSet, row: &Row) -> Result<String, String> {
    let rule = rule_at(set, &row.origin).ok_or_else(|| format!("no rule at {}", row.origin))?;
    if let Some(reason) = rule.broken() {
        return Err(format!("rule {} is broken: {reason}", rule.path()));
    }
    let metric = rule
        .metric_name_for(&row.series)
        .ok_or_else(|| format!("{} does not serve series {}", rule.path(), row.series))?;
    if metric != row.metric {
        return Err(format!(
            "{} exposes {metric} for {}, the adapter {}",
            rule.path(),
            row.series,
            row.metric
        ));
    }
    match parse_request(&row.request) {
        Request::External {
            namespace,
            selector,
        } => {
            // The last external rule exposing this name for this series answers.
            let winner = set
                .external
                .iter()
                .rev()
                .find(|r| {
                    finds(r, rule, &row.series)
                        && r.metric_name_for(&row.series).as_deref() == Some(metric.as_str())
                })
                .unwrap_or(rule);
            winner
                .render_external(&row.series, Some(&namespace), &selector)
                .map_err(|e| e.to_string())
        }
        Request::Custom {
            resource,
            namespace,
            names,
            selector,
        } => {
            // The registry: the last rule exposing this metric for this resource from this
            // series answers.
            let winner = set
                .custom
                .iter()
                .rev()
                .find(|r| {
                    finds(r, rule, &row.series)
                        && r.metric_name_for(&row.series).as_deref() == Some(metric.as_str())
                        && r.resources_for_labels(&series_labels(r))
                            .contains(&resource)
                })
                .ok_or_else(|| "not found: metric not registered for this resource".to_string())?;
            if let Some(reason) = winner.broken() {
                return Err(format!("rule {} is broken: {reason}", winner.path()));
            }
            winner
                .render_custom(
                    &row.series,
                    namespace.as_deref(),
                    &resource,
                    &names,
                    &selector,
                )
                .map_err(|e| e.to_string())
        }
    }
}

/// Differences listed in docs/compatibility.md, with the reason each is expected.
fn documented_difference(row: &Row, ours: &Result<String, String>) -> Option<&'static str> {
    let ours_ok = ours.as_ref().ok();
    // Regex metacharacters in `=~` values are escaped (docs: "Regex metacharacters are
    // escaped inside =~ and !~").
    if let Some(q) = ours_ok {
        if row.ok && q.replace("\\\\", "") == row.answer.replace("\\\\", "") {
            return Some("regex metacharacters escaped");
        }
    }
    None
}

#[test]
fn every_golden_row_renders_the_adapters_promql() {
    let rows = rows();
    assert!(rows.len() > 400, "only {} golden rows", rows.len());
    let mut loaded: BTreeMap<String, Result<RuleSet, String>> = BTreeMap::new();
    let (mut same, mut both_refuse, mut documented) = (0, 0, 0);
    let mut failures = Vec::new();
    for row in &rows {
        let set = loaded.entry(row.file.clone()).or_insert_with(|| {
            RuleSet::load(&compat_dir().join("files").join(&row.file)).map_err(|e| e.to_string())
        });
        let adapter_refuses_file = !row.ok
            && (row.answer.starts_with("adapter would not start")
                || row
                    .answer
                    .starts_with("unable to parse metrics discovery config"));
        let ours = match set {
            Ok(set) => answer(set, row),
            Err(e) => Err(format!("file refused: {e}")),
        };
        match (&ours, row.ok) {
            (Ok(q), true) if *q == row.answer => same += 1,
            (Err(_), false) => both_refuse += 1,
            _ => {
                if documented_difference(row, &ours).is_some() {
                    documented += 1;
                } else {
                    failures.push(format!(
                        "{} {} ({}) series {} request {:?}\n  adapter: {}{}\n  promhpa: {:?}",
                        row.file,
                        row.rule,
                        row.origin,
                        row.series,
                        row.request,
                        if row.ok { "" } else { "error: " },
                        row.answer,
                        ours
                    ));
                }
            }
        }
        // A file the adapter refuses may be refused; a file it runs must load.
        if !adapter_refuses_file {
            if let Err(e) = set {
                failures.push(format!(
                    "{}: prometheus-adapter starts with this file, promhpa refuses it: {e}",
                    row.file
                ));
            }
        }
    }
    failures.dedup();
    eprintln!(
        "{} rows: {same} identical, {both_refuse} refused by both, {documented} documented differences, {} failures",
        rows.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_file_the_adapter_accepts_loads() {
    let text = std::fs::read_to_string(compat_dir().join("files.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 || f[2] != "ok" {
            continue;
        }
        count += 1;
        let path = compat_dir().join("files").join(f[0]);
        match RuleSet::load(&path) {
            Ok(set) => {
                let want = f[3];
                let custom = set.rules().filter(|r| r.kind() == RuleKind::Custom).count();
                let external = set.external.len();
                let summary = format!(
                    "rules={custom} externalRules={external} resourceRules={}",
                    set.resource.is_some()
                        || set
                            .broken
                            .iter()
                            .any(|b| b.path.starts_with("resourceRules")
                                || b.path.starts_with("rules.resource"))
                );
                if !want.starts_with(&summary) {
                    failures.push(format!("{}: adapter {want}, promhpa {summary}", f[0]));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", f[0])),
        }
    }
    assert!(count > 30, "only {count} accepted files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
