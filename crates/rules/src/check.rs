//! What `promhpa check` finds: for a rule file that loads, how many rules serve, how many are
//! broken, whether the resource rules work, and whether `serve` would run every rule; for
//! each rule, the sample request it is shown with and the query that request renders; for
//! `MetricRule` objects, the files a path names and the tally of valid, invalid and warned
//! objects. How it is worded is the binary's business.

use std::path::PathBuf;

use crate::objects::MetricRuleObject;
use crate::{RenderError, ResourceRule, Rule, RuleSet, SampleRequest};

/// The resource rules (`resourceRules`, Helm: `rules.resource`) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceRulesState {
    /// The file has none.
    Absent,
    Ok,
    /// One of them is broken.
    Broken,
}

/// The counts a file's one-line verdict reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Custom and external rules that can serve.
    pub ok_rules: usize,
    /// Custom and external rules that are broken.
    pub broken_rules: usize,
    pub resource: ResourceRulesState,
    pub warnings: usize,
}

impl Verdict {
    pub fn of(set: &RuleSet) -> Verdict {
        let rules = set.rules().count();
        let broken_rules = set.rules().filter(|r| r.broken().is_some()).count();
        let resource_broken = set
            .broken
            .iter()
            .any(|b| b.path.starts_with("resourceRules") || b.path.starts_with("rules.resource"));
        let resource = if resource_broken {
            ResourceRulesState::Broken
        } else if set.resource.is_some() {
            ResourceRulesState::Ok
        } else {
            ResourceRulesState::Absent
        };
        Verdict {
            ok_rules: rules - broken_rules,
            broken_rules,
            resource,
            warnings: set.warnings.len(),
        }
    }
}

/// What `serve` would make of a file that loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule is served (with `strict`: and nothing is warned about).
    ServesEveryRule,
    /// Some rules are broken: `serve` starts without them, and `--strict-rules` refuses the
    /// file. `problems` counts the broken entries found when loading.
    Broken { problems: usize },
    /// Nothing is broken, but `strict` was asked for and something is warned about.
    WarningsRefused,
}

impl Outcome {
    /// The outcome for a file that loads; `strict` refuses warnings as `serve
    /// --strict-rules` does.
    pub fn of(set: &RuleSet, strict: bool) -> Outcome {
        if !set.broken.is_empty() {
            Outcome::Broken {
                problems: set.broken.len(),
            }
        } else if strict && !set.warnings.is_empty() {
            Outcome::WarningsRefused
        } else {
            Outcome::ServesEveryRule
        }
    }
}

/// A rule's sample request, the metric name its series is served as, and the query the
/// request renders.
#[derive(Debug, Clone)]
pub struct RuleSample {
    pub request: SampleRequest,
    /// What the sample series is served as; `None` when the rule's naming does not serve it.
    pub served_as: Option<String>,
    pub query: Result<String, RenderError>,
}

impl RuleSample {
    pub fn of(rule: &Rule) -> RuleSample {
        let request = rule.sample_request();
        RuleSample {
            served_as: rule.metric_name_for(&request.series),
            query: rule.sample_query(),
            request,
        }
    }
}

/// The pod names a resource rule's sample queries are rendered for (the node query takes
/// the first as a node name).
pub const RESOURCE_SAMPLE_NAMES: [&str; 2] = ["placeholder-a", "placeholder-b"];

/// The namespace of a resource rule's sample pods query.
pub const RESOURCE_SAMPLE_NAMESPACE: &str = "default";

/// The queries a resource rule renders for sample pods and a sample node.
#[derive(Debug, Clone)]
pub struct ResourceSample {
    pub pods_query: Result<String, RenderError>,
    pub node_query: Result<String, RenderError>,
}

impl ResourceSample {
    pub fn of(rule: &ResourceRule) -> ResourceSample {
        let names = RESOURCE_SAMPLE_NAMES.map(str::to_string);
        ResourceSample {
            pods_query: rule.render_container_query(RESOURCE_SAMPLE_NAMESPACE, &names),
            node_query: rule.render_node_query(&names[..1]),
        }
    }
}

/// A directory among the paths given that could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("reading directory {}: {error}", dir.display())]
pub struct ReadDirError {
    pub dir: PathBuf,
    pub error: std::io::Error,
}

/// The files of `MetricRule` objects that `paths` name: files as given, and each
/// directory's `.yaml`, `.yml` and `.json` files in name order.
pub fn object_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadDirError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() != "-" && p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|error| ReadDirError {
                    dir: p.clone(),
                    error,
                })?
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

/// The tally of checked `MetricRule` objects and of files that held none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectTally {
    pub ok: usize,
    pub invalid: usize,
    pub warnings: usize,
    /// Files that could not be read, or are not files of objects.
    pub refused_files: usize,
}

impl ObjectTally {
    /// Count one object: valid or invalid, and its warnings.
    pub fn add(&mut self, object: &MetricRuleObject) {
        if object.rule.is_ok() {
            self.ok += 1;
        } else {
            self.invalid += 1;
        }
        self.warnings += object.warnings.len();
    }

    /// Count a file that could not be read or parsed as objects.
    pub fn refuse_file(&mut self) {
        self.refused_files += 1;
    }

    /// Whether every object is valid and every file held objects: promhpa would serve them.
    pub fn passes(&self) -> bool {
        self.invalid == 0 && self.refused_files == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::parse_metric_rules;

    const RULE: &str = "- seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: \"^(.*)_total$\", as: \"${1}_per_second\"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
";

    const BROKEN: &str = "- seriesQuery: 'queue_depth{namespace!=\"\"}'
  resources: {overrides: {namespace: {resource: namespace}}}
";

    const RESOURCE: &str = "resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(node_cpu_seconds_total{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(node_memory_MemTotal_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}}
    containerLabel: container
  window: 3m
";

    fn set(yaml: &str) -> RuleSet {
        RuleSet::from_yaml(yaml, "test.yaml").expect("loads")
    }

    #[test]
    fn a_clean_file_serves_every_rule() {
        let set = set(&format!("rules:\n{RULE}{RESOURCE}"));
        assert_eq!(
            Verdict::of(&set),
            Verdict {
                ok_rules: 1,
                broken_rules: 0,
                resource: ResourceRulesState::Ok,
                warnings: 0,
            }
        );
        assert_eq!(Outcome::of(&set, false), Outcome::ServesEveryRule);
        assert_eq!(Outcome::of(&set, true), Outcome::ServesEveryRule);
    }

    #[test]
    fn a_broken_rule_is_counted_and_fails_the_check() {
        let set = set(&format!("rules:\n{RULE}{BROKEN}"));
        let verdict = Verdict::of(&set);
        assert_eq!(
            (verdict.ok_rules, verdict.broken_rules, verdict.resource),
            (1, 1, ResourceRulesState::Absent)
        );
        assert_eq!(
            Outcome::of(&set, false),
            Outcome::Broken {
                problems: set.broken.len()
            }
        );
        assert!(!set.broken.is_empty());
    }

    #[test]
    fn strict_refuses_warnings_only() {
        // No label maps to namespaces: requests in a namespace cannot be answered.
        let set = set("rules:
- seriesQuery: 'jobs_total'
  resources: {overrides: {job: {group: batch, resource: job}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
");
        assert!(set.broken.is_empty() && !set.warnings.is_empty());
        assert_eq!(Verdict::of(&set).warnings, set.warnings.len());
        assert_eq!(Outcome::of(&set, false), Outcome::ServesEveryRule);
        assert_eq!(Outcome::of(&set, true), Outcome::WarningsRefused);
    }

    #[test]
    fn a_rule_sample_says_what_it_is_served_as_and_renders() {
        let set = set(&format!("rules:\n{RULE}"));
        let sample = RuleSample::of(&set.custom[0]);
        assert_eq!(sample.request, set.custom[0].sample_request());
        assert_eq!(
            sample.served_as.as_deref(),
            Some("http_requests_per_second")
        );
        let query = sample.query.expect("renders");
        assert!(
            query.starts_with("sum(rate(http_requests_total{"),
            "{query}"
        );
    }

    #[test]
    fn resource_samples_render_for_placeholder_pods_and_a_node() {
        let set = set(RESOURCE);
        let res = set.resource.as_ref().expect("resource rules");
        let cpu = ResourceSample::of(&res.cpu);
        let pods = cpu.pods_query.expect("pods query");
        assert!(pods.contains("placeholder-a|placeholder-b"), "{pods}");
        assert!(pods.contains("namespace=\"default\""), "{pods}");
        let node = cpu.node_query.expect("node query");
        assert!(
            node.contains("placeholder-a") && !node.contains("placeholder-b"),
            "{node}"
        );
    }

    #[test]
    fn objects_are_tallied() {
        let objects = parse_metric_rules(
            "apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: good, namespace: team-a}
spec:
  seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
---
apiVersion: metrics.promhpa.io/v1alpha1
kind: MetricRule
metadata: {name: bad, namespace: team-a}
spec:
  seriesQuery: 'queue_depth{namespace!=\"\"}'
",
            "objects.yaml",
        )
        .expect("objects");
        let mut tally = ObjectTally::default();
        assert!(tally.passes());
        for o in &objects {
            tally.add(o);
        }
        assert_eq!((tally.ok, tally.invalid), (1, 1));
        assert!(!tally.passes());
        let mut files = ObjectTally {
            ok: 3,
            ..ObjectTally::default()
        };
        assert!(files.passes());
        files.refuse_file();
        assert!(!files.passes());
    }

    #[test]
    fn object_files_lists_a_directory_s_object_files_in_order() {
        let dir = std::env::temp_dir().join(format!("promhpa-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for f in ["b.yaml", "a.json", "c.yml", "notes.txt"] {
            std::fs::write(dir.join(f), "").expect("write");
        }
        let single = PathBuf::from("given.txt");
        let files = object_files(&[dir.clone(), single.clone()]).expect("lists");
        assert_eq!(
            files,
            [
                dir.join("a.json"),
                dir.join("b.yaml"),
                dir.join("c.yml"),
                single
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
