//! Which rule serves a metric name: the series a rule names in its `seriesQuery`, the rules
//! that expose that series under the name, and the one among them that wins (the later rule,
//! as in prometheus-adapter's registry; a broken rule never takes a metric from a working
//! one). `promhpa query` and the history `simulate` reads ask it; the discovery registry
//! answers the same question from the series it found.

use promhpa_core::GroupResource;

use crate::resources::normalize;
use crate::{Rule, RuleSet};

/// Why no rule of a section serves a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotServed {
    /// No rule names a series in its `seriesQuery` that it serves under the metric's name.
    #[error("no {section} rule names a series for metric \"{metric}\" in its seriesQuery")]
    NoSeries {
        section: &'static str,
        metric: String,
    },
    /// No rule serves the series at all.
    #[error(
        "no {section} rule serves series \"{series}\" (checked {checked} rule{})",
        if *.checked == 1 { "" } else { "s" }
    )]
    NoRule {
        section: &'static str,
        series: String,
        checked: usize,
    },
    /// Rules serve the series, under other names (`served`: which rule, as what name).
    #[error(
        "no {section} rule serves series \"{series}\" as metric \"{metric}\": {}",
        .served.join("; ")
    )]
    OtherName {
        section: &'static str,
        series: String,
        metric: String,
        served: Vec<String>,
    },
}

/// The rule that serves a metric, and the series it serves it from.
#[derive(Debug, Clone)]
pub struct Serving<'a> {
    pub rule: &'a Rule,
    pub series: String,
    /// The rules exposing the metric from the same series, in file order, `rule` among them.
    pub exposing: Vec<&'a Rule>,
}

impl Serving<'_> {
    /// What a user asking for the metric should know: the other rules that expose it (and
    /// lose to `rule`), and the backend `rule` reads from when it is not the default one.
    pub fn notes(&self, set: &RuleSet) -> Vec<String> {
        let mut notes = Vec::new();
        if self.exposing.len() > 1 {
            let others: Vec<String> = self
                .exposing
                .iter()
                .filter(|r| r.path() != self.rule.path())
                .map(|r| r.origin())
                .collect();
            notes.push(format!(
                "{} also expose{} this metric; {} serves it (the later rule wins, as in prometheus-adapter; a broken rule never takes a metric from a working one)",
                others.join(", "),
                if others.len() == 1 { "s" } else { "" },
                self.rule.origin()
            ));
        }
        if let Some(name) = self.rule.backend() {
            let url = set
                .backends
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.url.as_str())
                .unwrap_or_default();
            notes.push(format!(
                "{} reads from backend \"{name}\" ({url})",
                self.rule.origin()
            ));
        }
        notes
    }
}

/// The series the rule serving `metric` names in its `seriesQuery`, among the rules that
/// name one (a rule whose `name.as` takes any series would otherwise claim other rules'
/// series); the later rule wins as in the registry.
fn own_series<'a>(rules: impl IntoIterator<Item = &'a Rule>, metric: &str) -> Option<&'a str> {
    let naming: Vec<&Rule> = rules
        .into_iter()
        .filter(|r| {
            r.selected_series_name()
                .is_some_and(|s| r.metric_name_for(s).as_deref() == Some(metric))
        })
        .collect();
    Rule::serving(naming).and_then(Rule::selected_series_name)
}

/// The resource a request names (`pods`, `deployment`, `deployments.apps`), resolved as
/// rules resolve theirs.
pub fn request_resource(text: &str) -> GroupResource {
    let parsed: GroupResource = text.parse().unwrap_or_default();
    normalize(&parsed.group, &parsed.resource)
}

impl RuleSet {
    /// The rules of the external section, or of the custom one.
    pub fn section(&self, external: bool) -> &[Rule] {
        if external {
            &self.external
        } else {
            &self.custom
        }
    }

    /// The rule of the external or custom section that serves `metric` from `series`
    /// (when not given: the series the serving rule names in its `seriesQuery`).
    pub fn serving_metric(
        &self,
        external: bool,
        metric: &str,
        series: Option<&str>,
    ) -> Result<Serving<'_>, NotServed> {
        let candidates = self.section(external);
        let section = if external { "external" } else { "custom" };
        let series = match series {
            Some(s) => s.to_string(),
            // Each rule only ever sees the series its own seriesQuery selects.
            None => own_series(candidates, metric)
                .ok_or_else(|| NotServed::NoSeries {
                    section,
                    metric: metric.to_string(),
                })?
                .to_string(),
        };
        // A rule whose seriesQuery names one series never sees another; a rule that selects
        // by regex may.
        let selects = |r: &Rule| r.selected_series_name().is_none_or(|n| n == series);
        let exposing: Vec<&Rule> = candidates
            .iter()
            .filter(|r| selects(r) && r.metric_name_for(&series).as_deref() == Some(metric))
            .collect();
        let Some(rule) = Rule::serving(exposing.iter().copied()) else {
            let served: Vec<String> = candidates
                .iter()
                .filter(|r| selects(r))
                .filter_map(|r| {
                    r.metric_name_for(&series)
                        .map(|n| format!("{} serves it as \"{n}\"", r.path()))
                })
                .collect();
            if served.is_empty() {
                return Err(NotServed::NoRule {
                    section,
                    series,
                    checked: candidates.len(),
                });
            }
            return Err(NotServed::OtherName {
                section,
                series,
                metric: metric.to_string(),
                served,
            });
        };
        Ok(Serving {
            rule,
            series,
            exposing,
        })
    }
}

impl Rule {
    /// Whether this rule could produce a metric named `metric`, to explain why a request
    /// for it found nothing: through the metric name written at the start of its
    /// `seriesQuery` when it has one, otherwise by taking `metric` as a series name.
    pub fn could_produce(&self, metric: &str) -> bool {
        let q = self.series_query().trim();
        let literal: String = q
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let candidate = if literal.is_empty() { metric } else { &literal };
        self.metric_name_for(candidate).as_deref() == Some(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
backends:
- name: long-term
  url: https://thanos.example:9090
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: '{__name__=~"^queue_.*",namespace!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(irate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
  backend: long-term
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#;

    fn rules() -> RuleSet {
        RuleSet::from_yaml(RULES, "rules.yaml").expect("rules")
    }

    #[test]
    fn the_later_rule_naming_the_series_serves_the_metric() {
        let set = rules();
        let s = set
            .serving_metric(false, "http_requests_per_second", None)
            .expect("served");
        assert_eq!(s.series, "http_requests_total");
        assert_eq!(s.rule.path(), "rules[2]");
        assert_eq!(s.exposing.len(), 2);
        let notes = s.notes(&set);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("rules[0] also exposes this metric; rules[2] serves it"));
        assert_eq!(
            notes[1],
            "rules[2] reads from backend \"long-term\" (https://thanos.example:9090)"
        );
    }

    #[test]
    fn a_series_given_is_served_by_the_rules_that_select_it() {
        let set = rules();
        let s = set
            .serving_metric(false, "queue_length", Some("queue_length"))
            .expect("served");
        assert_eq!(s.rule.path(), "rules[1]");
        assert!(s.notes(&set).is_empty());
        let s = set
            .serving_metric(true, "queue_depth", None)
            .expect("served");
        assert_eq!(s.rule.path(), "externalRules[0]");
    }

    #[test]
    fn why_no_rule_serves_a_metric() {
        let set = rules();
        assert_eq!(
            set.serving_metric(false, "nothing", None)
                .expect_err("no series")
                .to_string(),
            "no custom rule names a series for metric \"nothing\" in its seriesQuery"
        );
        assert_eq!(
            set.serving_metric(true, "x", Some("y"))
                .expect_err("no rule")
                .to_string(),
            "no external rule serves series \"y\" (checked 1 rule)"
        );
        assert_eq!(
            set.serving_metric(false, "http_requests", Some("http_requests_total"))
                .expect_err("other name")
                .to_string(),
            "no custom rule serves series \"http_requests_total\" as metric \"http_requests\": rules[0] serves it as \"http_requests_per_second\"; rules[1] serves it as \"http_requests_total\"; rules[2] serves it as \"http_requests_per_second\""
        );
    }

    #[test]
    fn a_rule_could_produce_the_metrics_its_series_query_names() {
        let set = rules();
        assert!(set.custom[0].could_produce("http_requests_per_second"));
        assert!(!set.custom[0].could_produce("http_requests_total"));
        assert!(set.custom[1].could_produce("queue_length"));
    }
}
