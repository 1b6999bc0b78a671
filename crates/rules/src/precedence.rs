//! Which rule serves a metric when several expose the same name for the same resource.
//!
//! prometheus-adapter's series registry keeps the rule that comes last in the file (the
//! chart puts `rules.default` before `rules.custom`, so a user's rule beats the chart's
//! generic one). The registry does the same with the series it discovers; here the same
//! question is answered ahead of discovery, from what each rule's `seriesQuery` says about
//! the series it selects, so that `check` can name the rules a later one shadows.

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self as promql, Expr, VectorSelector};

use crate::{ConfigError, Rule, RuleSet};

/// A series a rule selects, as far as its `seriesQuery` tells: a name, when it names one,
/// and the labels it requires.
struct Selected {
    name: String,
    labels: BTreeSet<String>,
}

fn selector(rule: &Rule) -> Option<VectorSelector> {
    // Only a discoverable rule's seriesQuery has passed the loader's size and nesting limits.
    if !rule.discoverable() {
        return None;
    }
    match promql::parse(rule.series_query()) {
        Ok(Expr::VectorSelector(vs)) => Some(vs),
        _ => None,
    }
}

fn selected(rule: &Rule) -> Option<Selected> {
    let vs = selector(rule)?;
    let name = rule.selected_series_name()?.to_string();
    let mut labels: BTreeSet<String> = rule
        .resources()
        .overrides
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    for m in &vs.matchers.matchers {
        if m.name != "__name__" && !matches!(m.op, MatchOp::Equal if m.value.is_empty()) {
            labels.insert(m.name.clone());
        }
    }
    Some(Selected { name, labels })
}

/// Whether `rule`'s `seriesQuery` would select a series with this name and label names
/// (label values unknown: only whether a label must be present or absent is checked).
fn selects(rule: &Rule, series: &Selected) -> bool {
    let Some(vs) = selector(rule) else {
        return false;
    };
    if vs.name.as_deref().is_some_and(|n| n != series.name) {
        return false;
    }
    vs.matchers.matchers.iter().all(|m| {
        if m.name == "__name__" {
            return m.is_match(&series.name);
        }
        let present = series.labels.contains(&m.name);
        match &m.op {
            // `label=""` requires the label to be absent.
            MatchOp::Equal if m.value.is_empty() => !present,
            // `label!=""` requires it present; other matchers on a present label may hold.
            MatchOp::NotEqual if m.value.is_empty() => present,
            MatchOp::Equal => present,
            _ => true,
        }
    })
}

/// The rules shadowed by a later rule of the same API: for the series a later rule names,
/// an earlier rule that also selects it and exposes the same metric name for one of the
/// same resources.
pub(crate) fn shadowed(set: &RuleSet, source: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for list in [&set.custom, &set.external] {
        for (j, later) in list.iter().enumerate() {
            let Some(series) = selected(later) else {
                continue;
            };
            let Some(metric) = later.metric_name_for(&series.name) else {
                continue;
            };
            let later_resources = later.resources_for_labels(&series.labels);
            for earlier in &list[..j] {
                if !selects(earlier, &series)
                    || earlier.metric_name_for(&series.name).as_deref() != Some(metric.as_str())
                {
                    continue;
                }
                let shared: Vec<String> = earlier
                    .resources_for_labels(&series.labels)
                    .into_iter()
                    .filter(|r| later_resources.contains(r))
                    .map(|r| r.to_string())
                    .collect();
                let external = matches!(earlier.kind(), crate::RuleKind::External);
                if shared.is_empty() && !external {
                    continue;
                }
                let scope = if external {
                    String::new()
                } else {
                    format!(" for {}", shared.join(", "))
                };
                out.push(ConfigError {
                    source_name: source.to_string(),
                    line: earlier.line(),
                    path: earlier.origin(),
                    message: format!(
                        "{} also exposes \"{metric}\" from series {}{scope} and comes later, so it serves that metric, as in prometheus-adapter",
                        later.origin(),
                        series.name
                    ),
                });
            }
        }
    }
    out
}
