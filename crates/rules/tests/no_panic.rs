//! No input makes the loader (or rendering) panic: arbitrary text, YAML-shaped noise, and
//! mutations of a valid rule file.
#![allow(clippy::unwrap_used)]

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::RuleSet;
use proptest::prelude::*;

const VALID: &str = r#"rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^x_.*"
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
    template: "<<.Group>>_<<.Resource>>"
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<range $i, $g := .GroupBySlice>><<if $i>>,<<end>><<$g>><<end>>)<<if .GroupBySlice>> * <<len .GroupBySlice>><<end>>'
externalRules:
- seriesQuery: 'q{a!=""}'
  resources: {namespaced: false}
  metricsQuery: '<<printf "%s{%s}" .Series .LabelMatchers>>'
resourceRules:
  cpu:
    containerQuery: 'sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(x{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  memory:
    containerQuery: 'sum(y{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(y{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {overrides: {node: {resource: node}, namespace: {resource: namespace}, pod: {resource: pod}}}
    containerLabel: container
  window: 1m
"#;

fn exercise(text: &str) {
    if let Ok(set) = RuleSet::from_yaml(text, "fuzz.yaml") {
        for rule in set.rules() {
            let _ = rule.sample_query();
            let _ = rule.metric_name_for("http_requests_total");
            let _ = rule.render_custom(
                "s",
                Some("ns"),
                &GroupResource::new("", "pods"),
                &["a".to_string(), "b.c".to_string()],
                &"k in (x,y),!z".parse::<LabelSelector>().unwrap(),
            );
            let _ = rule.render_external("s", Some("ns"), &LabelSelector::everything());
        }
    }
}

const TOKENS: &[&str] = &[
    "rules:",
    "externalRules:",
    "resourceRules:",
    "\n",
    "\n- ",
    "  ",
    "- ",
    ": ",
    "'",
    "\"",
    "{",
    "}",
    "[",
    "]",
    "<<",
    ">>",
    "<<-",
    " ->>",
    ".Series",
    ".LabelMatchers",
    "$",
    "$x := ",
    "if ",
    "range ",
    "else",
    "end",
    "|",
    "(",
    ")",
    "&a ",
    "*a",
    "!!str ",
    "seriesQuery",
    "metricsQuery",
    "name",
    "matches",
    "as",
    "resources",
    "overrides",
    "template",
    "namespaced",
    "true",
    "null",
    "~",
    "#",
    "---\n",
    "...\n",
    "x{a!=\"\"}",
    "sum(",
    "by (",
    "printf \"%d%q%",
    "index ",
    "len ",
    "\\",
    "\t",
    "é",
    "\u{200b}",
    "(?P<a>",
    "$1",
    "${",
    "apiVersion: v1\nkind: ConfigMap\ndata:\n  config.yaml: |\n    ",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        exercise(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..60)) {
        exercise(&tokens.concat());
    }

    #[test]
    fn mutated_valid_files_never_panic(
        cut in 0usize..VALID.len(),
        len in 0usize..40,
        insert in proptest::sample::select(TOKENS),
    ) {
        let mut text = VALID.to_string();
        let start = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(start..end, insert);
        exercise(&text);
    }
}

#[test]
fn the_valid_base_file_loads() {
    let set = RuleSet::from_yaml(VALID, "base.yaml").unwrap();
    assert_eq!(set.custom.len(), 1);
    assert_eq!(set.external.len(), 1);
    assert!(set.resource.is_some());
}

#[test]
fn deeply_nested_inputs_are_errors_not_stack_overflows() {
    let wrap = |query: &str| {
        format!(
            "rules:\n- seriesQuery: 'x{{a!=\"\"}}'\n  resources: {{template: '<<.Resource>>'}}\n  metricsQuery: '{query}'\n"
        )
    };
    let n = 50_000;
    let deep_parens = format!("{}x{}", "(".repeat(n), ")".repeat(n));
    let deep_ifs = format!("{}x{}", "<<if 1>>".repeat(n), "<<end>>".repeat(n));
    let else_ifs = format!("<<if 1>>x{}<<end>>", "<<else if 1>>".repeat(n));
    let deep_tmpl_parens = format!("<<{}1{}>>", "(".repeat(n), ")".repeat(n));
    // such a rule loads broken (prometheus-adapter would start with it), with a short reason
    let broken_reason = |text: &str| -> String {
        let set = RuleSet::from_yaml(text, "deep.yaml").unwrap();
        set.broken
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for query in [deep_parens, deep_ifs, else_ifs, deep_tmpl_parens] {
        let msg = broken_reason(&wrap(&query));
        assert!(
            msg.contains("deeper than") || msg.contains("longer than"),
            "{}",
            &msg[..200]
        );
        assert!(msg.len() < 2000, "messages stay readable");
    }
    let deep_series = format!(
        "rules:\n- seriesQuery: '{}x{}'\n  metricsQuery: 'x'\n",
        "(".repeat(n),
        ")".repeat(n)
    );
    assert!(!broken_reason(&deep_series).is_empty());
    let long = format!("x{}", " + x".repeat(n));
    let msg = broken_reason(&wrap(&long));
    assert!(msg.contains("longer than"), "{}", &msg[..200]);
    let deep_yaml = format!("rules: {}{}", "[".repeat(n), "]".repeat(n));
    assert!(RuleSet::from_yaml(&deep_yaml, "deep.yaml").is_err());
}
