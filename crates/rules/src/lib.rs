//! Rule files in prometheus-adapter's format (and the Helm-values and ConfigMap shapes users
//! paste), compiled into a validated [`RuleSet`]: metric naming, resource mapping in both
//! directions, which rule serves a metric name, and rendering of `metricsQuery` templates to
//! PromQL.
//!
//! No IO beyond reading the file handed to [`RuleSet::load`] and listing the directories
//! handed to [`check::object_files`]. What `promhpa check` reports is worked out in [`check`].
//!
//! ```
//! use promhpa_core::{selector::LabelSelector, GroupResource};
//! use promhpa_rules::RuleSet;
//!
//! let rules = RuleSet::from_yaml(
//!     r#"
//! rules:
//! - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
//!   resources:
//!     overrides:
//!       namespace: {resource: namespace}
//!       pod: {resource: pod}
//!   name: {matches: "^(.*)_total$", as: "${1}_per_second"}
//!   metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
//! "#,
//!     "example.yaml",
//! )
//! .unwrap();
//! let rule = &rules.custom[0];
//! assert_eq!(rule.metric_name_for("http_requests_total").as_deref(), Some("http_requests_per_second"));
//! let promql = rule
//!     .render_custom(
//!         "http_requests_total",
//!         Some("shop"),
//!         &GroupResource::new("", "pods"),
//!         &["web-1".to_string(), "web-2".to_string()],
//!         &LabelSelector::everything(),
//!     )
//!     .unwrap();
//! assert_eq!(
//!     promql,
//!     r#"sum(rate(http_requests_total{namespace="shop",pod=~"web-1|web-2"}[2m])) by (pod)"#
//! );
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use regex::Regex;

mod backends;
pub mod check;
mod gotmpl;
mod isolation;
mod load;
pub mod objects;
mod precedence;
mod render;
mod resources;
mod serving;
mod yaml;

pub use backends::{is_dns_label, BackendSpec, DEFAULT_BACKEND};
pub use load::{closest, edit_distance, HELM_DEFAULT_RULES};
pub use render::{is_valid_label_name, quote_meta};
pub use resources::namespaces as namespaces_resource;
pub use resources::{
    normalize as normalize_resource, normalize_known as builtin_resource, ResourceMapper,
};
pub use serving::{request_resource, NotServed, Serving};

use gotmpl::Template;
use render::{Matchers, PartError};

/// Every problem found in a rule file, each with its path (`rules[3].metricsQuery`) and line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// The message of a file that could not be read at all.
const UNREADABLE: &str = "reading the rule file: ";

impl ConfigErrors {
    /// The file could not be read (missing, a directory, no permission): its content was
    /// not judged.
    pub fn unreadable(&self) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|e| e.message.starts_with(UNREADABLE))
    }
}

/// One problem in a rule file.
///
/// `line` is 0 for problems in rules that do not come from the file (the chart's default
/// rules); they are then shown without a line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source_name}{}: {}{message}", line_suffix(*.line), path_prefix(.path))]
pub struct ConfigError {
    pub source_name: String,
    pub line: usize,
    pub path: String,
    pub message: String,
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Why a query could not be rendered for a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("rule {rule} has no label for resource \"{resource}\"")]
    NoLabelForResource { rule: String, resource: String },
    #[error("invalid label selector key \"{key}\": {message}")]
    InvalidSelectorKey { key: String, message: String },
    #[error("rendering {rule}.metricsQuery: {message}")]
    Template { rule: String, message: String },
    #[error("label selector operator {operator} on \"{key}\" cannot be expressed in PromQL")]
    UnsupportedOperator { key: String, operator: String },
    /// The rule loaded (as prometheus-adapter loads it) but cannot produce a query.
    #[error("rule {rule} is broken: {reason}")]
    Broken { rule: String, reason: String },
    /// A rule of a namespace asked for another namespace, or a query that could read
    /// another namespace's series.
    #[error("{rule} serves namespace \"{namespace}\" only: {message}")]
    Isolation {
        rule: String,
        namespace: String,
        message: String,
    },
}

/// Which section of the rule file a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `rules` (Helm: `rules.custom`, `rules.default`).
    Custom,
    /// `externalRules` (Helm: `rules.external`).
    External,
}

/// One `seriesFilters` entry.
#[derive(Debug, Clone)]
pub struct SeriesFilter {
    regex: Regex,
    /// `is` (true) or `isNot` (false).
    positive: bool,
}

impl SeriesFilter {
    fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name) == self.positive
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    kind: RuleKind,
    /// `rules[3]`, `externalRules[0]`: used in every message about this rule.
    path: String,
    series_query: String,
    line: usize,
    /// `seriesFilters`, then `name.matches` when given.
    filters: Vec<SeriesFilter>,
    explicit_filters: usize,
    name_matches: Regex,
    name_as: String,
    resources: ResourceMapper,
    namespaced: bool,
    metrics_query: Template,
    metrics_query_source: String,
    /// The metric name `seriesQuery` selects, when it names one.
    sample_series: Option<String>,
    /// Why the rule cannot serve (prometheus-adapter loads it and fails at query time).
    broken: Option<String>,
    /// Whether `seriesQuery` is a series selector the backend can be asked for.
    discoverable: bool,
    /// `seriesQuery` in a canonical form (matchers sorted, spacing and quoting normalised):
    /// rules with the same key select the same series.
    series_key: String,
    /// For a rule object of a namespace: the namespace label and the namespace every request
    /// and every series selector is held to.
    pinned: Option<(String, String)>,
    /// The entry of `backends` that discovery and queries go to; `None` for the default.
    backend: Option<String>,
}

/// A made-up request a rule can answer, used to validate and to show a sample query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRequest {
    pub series: String,
    pub namespace: Option<String>,
    /// `None` for external rules.
    pub resource: Option<GroupResource>,
    pub names: Vec<String>,
}

impl Rule {
    pub fn kind(&self) -> RuleKind {
        self.kind
    }

    /// The rule's position in its file, e.g. `rules[3]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The line of the file the rule starts on (0 for the chart's default rules).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Why this rule cannot produce a query, when it cannot. Such a rule is loaded, as
    /// prometheus-adapter loads it, and every request it would serve fails with this reason.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The namespace a rule object is held to (`None` for the rules of the file).
    /// The name of the backend in the rule file's `backends` this rule reads from; `None`
    /// for the one the flags describe.
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    pub fn pinned_namespace(&self) -> Option<&str> {
        self.pinned.as_ref().map(|(_, ns)| ns.as_str())
    }

    /// Hold this rule to `namespace`, whose label is `label`.
    pub(crate) fn pin_to_namespace(&mut self, label: &str, namespace: &str) {
        self.pinned = Some((label.to_string(), namespace.to_string()));
        self.namespaced = true;
        self.series_key = format!("{}@{namespace}", self.series_key);
    }

    pub(crate) fn set_path(&mut self, path: String) {
        self.path = path;
    }

    /// The series selector discovery asks the backend for: `seriesQuery`, restricted to the
    /// rule's namespace for a rule object.
    pub fn discovery_query(&self) -> String {
        let q = self.series_query.trim();
        let Some((label, ns)) = &self.pinned else {
            return q.to_string();
        };
        let matcher = format!("{label}={}", promhpa_core::gofmt::go_quote(ns));
        match q.strip_suffix('}').and_then(|head| head.rsplit_once('{')) {
            Some((name, inner)) if inner.trim().is_empty() => format!("{name}{{{matcher}}}"),
            Some((name, inner)) => format!("{name}{{{inner},{matcher}}}"),
            None => format!("{q}{{{matcher}}}"),
        }
    }

    fn isolation(&self, message: impl Into<String>) -> RenderError {
        RenderError::Isolation {
            rule: self.path.clone(),
            namespace: self.pinned_namespace().unwrap_or_default().to_string(),
            message: message.into(),
        }
    }

    /// For a rule object: the request must be for its namespace.
    fn check_request_namespace(&self, namespace: Option<&str>) -> Result<(), RenderError> {
        match (&self.pinned, namespace) {
            (None, _) => Ok(()),
            (Some((_, pinned)), Some(ns)) if ns == pinned => Ok(()),
            (Some(_), Some(ns)) => {
                Err(self.isolation(format!("the request is for namespace \"{ns}\"")))
            }
            (Some(_), None) => Err(self.isolation("the request is not for a namespace")),
        }
    }

    /// `seriesQuery` in a canonical form: two rules whose keys are equal select the same
    /// series, so discovery asks the backend once for both.
    pub fn series_key(&self) -> &str {
        &self.series_key
    }

    /// What decides the metrics discovery finds for this rule (its kind, series query,
    /// filters, naming, resources, namespacing and backend), not where it sits in the file
    /// nor how its values are queried: two rules with equal keys discover the same metrics.
    pub fn discovery_key(&self) -> String {
        format!(
            "{:?}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{:?}\u{0}{:?}",
            self.kind,
            self.series_key,
            self.filters,
            self.name_matches.as_str(),
            self.name_as,
            self.resources,
            self.namespaced,
            self.pinned,
            self.backend,
        )
    }

    /// Whether this rule may serve a metric named `metric`: when its `seriesQuery` names one
    /// series, whether that series is served under this name; otherwise (a regex or a
    /// label-only selector) it may.
    pub fn could_serve(&self, metric: &str) -> bool {
        if !self.discoverable {
            return false;
        }
        match &self.sample_series {
            Some(series) => self.metric_name_for(series).as_deref() == Some(metric),
            None => true,
        }
    }

    /// Whether this rule, coming later in the file, serves a metric that `earlier` also
    /// exposes for the same resource. As in prometheus-adapter's series registry the later
    /// rule wins — except that a broken rule never takes a metric from a working one.
    pub fn overrides(&self, earlier: &Rule) -> bool {
        !(self.broken.is_some() && earlier.broken.is_none())
    }

    /// The rule that serves a metric all of `rules` (in file order) expose for the same
    /// resource: see [`Rule::overrides`].
    pub fn serving<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Option<&'a Rule> {
        rules
            .into_iter()
            .fold(None, |winner: Option<&Rule>, r| match winner {
                Some(w) if !r.overrides(w) => Some(w),
                _ => Some(r),
            })
    }

    /// Whether the backend can be asked for this rule's series (`seriesQuery` is a valid
    /// series selector); a rule whose `seriesQuery` is not serves nothing.
    pub fn discoverable(&self) -> bool {
        self.discoverable
    }

    /// Where the rule is, for messages: `rules[3]`, or `rules.default[2] (chart default)`.
    pub fn origin(&self) -> String {
        if self.line == 0 && self.path.starts_with("rules.default[") {
            format!("{} (chart default)", self.path)
        } else {
            self.path.clone()
        }
    }

    /// The `seriesQuery` series selector, as written.
    pub fn series_query(&self) -> &str {
        &self.series_query
    }

    /// The `metricsQuery` template, as written.
    pub fn metrics_query(&self) -> &str {
        &self.metrics_query_source
    }

    /// A request this rule can answer: the series `seriesQuery` names (or
    /// `placeholder_series`), namespace `default` when a label maps to namespaces, the first
    /// resource the rule maps (pods for a template), and two object names.
    pub fn sample_request(&self) -> SampleRequest {
        let mut req = self.sample_request_any_namespace();
        if let Some(ns) = self.pinned_namespace() {
            req.namespace = Some(ns.to_string());
        }
        req
    }

    fn sample_request_any_namespace(&self) -> SampleRequest {
        let series = self
            .sample_series
            .clone()
            .or_else(|| self.series_from_name_pattern())
            .unwrap_or_else(|| "placeholder_series".to_string());
        let has_ns = self.label_for_resource(&resources::namespaces()).is_some();
        let names = vec!["placeholder-a".to_string(), "placeholder-b".to_string()];
        match self.kind {
            RuleKind::External => SampleRequest {
                series,
                namespace: (self.namespaced && has_ns).then(|| "default".to_string()),
                resource: None,
                names: Vec::new(),
            },
            RuleKind::Custom => {
                let resource = self
                    .resources
                    .overrides
                    .iter()
                    .map(|(_, gr)| gr.clone())
                    .find(|gr| *gr != resources::namespaces())
                    .unwrap_or_else(|| {
                        if self.resources.template.is_some() {
                            GroupResource::new("", "pods")
                        } else {
                            resources::namespaces()
                        }
                    });
                let namespace =
                    (resource != resources::namespaces() && has_ns).then(|| "default".to_string());
                SampleRequest {
                    series,
                    namespace,
                    resource: Some(resource),
                    names,
                }
            }
        }
    }

    /// A series name built from `name.matches` (`^container_(.*)_total$` →
    /// `container_example_total`) when the rule accepts it.
    fn series_from_name_pattern(&self) -> Option<String> {
        let mut p = self.name_matches.as_str().to_string();
        p = p.trim_start_matches('^').trim_end_matches('$').to_string();
        for wild in ["(.*)", "(.+)", ".*", ".+"] {
            p = p.replace(wild, "example");
        }
        let valid = !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !p.starts_with(|c: char| c.is_ascii_digit());
        (valid && self.accepts_series(&p) && self.name_matches.is_match(&p)).then_some(p)
    }

    /// The query for [`Rule::sample_request`].
    pub fn sample_query(&self) -> Result<String, RenderError> {
        let req = self.sample_request();
        match &req.resource {
            None => self.render_external(
                &req.series,
                req.namespace.as_deref(),
                &LabelSelector::everything(),
            ),
            Some(resource) => self.render_custom(
                &req.series,
                req.namespace.as_deref(),
                resource,
                &req.names,
                &LabelSelector::everything(),
            ),
        }
    }

    /// The `seriesFilters`, as (`is`, pattern) pairs.
    pub fn series_filters(&self) -> Vec<(bool, &str)> {
        self.filters
            .iter()
            .take(self.explicit_filters)
            .map(|f| (f.positive, f.regex.as_str()))
            .collect()
    }

    /// The metric name `seriesQuery` selects, when it names exactly one
    /// (`http_requests_total{...}` or `{__name__="http_requests_total",...}`).
    pub fn selected_series_name(&self) -> Option<&str> {
        self.sample_series.as_deref()
    }

    /// `name.matches` (`.*` when not given) and the effective `name.as`.
    pub fn name_mapping(&self) -> (&str, &str) {
        (self.name_matches.as_str(), &self.name_as)
    }

    /// The compiled `resources` block.
    pub fn resources(&self) -> &ResourceMapper {
        &self.resources
    }

    /// Whether a discovered series name passes `seriesFilters` and `name.matches`.
    pub fn accepts_series(&self, series_name: &str) -> bool {
        self.filters.iter().all(|f| f.matches(series_name))
    }

    /// The metric name this rule serves for a discovered series name, after `seriesFilters`
    /// and `name.matches`/`name.as`; `None` when the rule does not serve that series.
    pub fn metric_name_for(&self, series_name: &str) -> Option<String> {
        if !self.accepts_series(series_name) {
            return None;
        }
        let caps = self.name_matches.captures(series_name)?;
        Some(go_expand(&self.name_matches, &self.name_as, &caps))
    }

    /// The resources a series with these label names can describe (label → resource).
    /// Labels matched through `resources.template` resolve only to built-in Kubernetes
    /// resources; use [`Rule::resources_for_labels_with`] to resolve others.
    pub fn resources_for_labels(&self, label_names: &BTreeSet<String>) -> Vec<GroupResource> {
        self.resources_for_labels_with(label_names, &|g, r| resources::normalize_known(g, r))
    }

    /// [`Rule::resources_for_labels`] with a custom resolver for template-derived
    /// `(group, resource)` pairs (e.g. backed by API discovery).
    pub fn resources_for_labels_with(
        &self,
        label_names: &BTreeSet<String>,
        resolve: &dyn Fn(&str, &str) -> Option<GroupResource>,
    ) -> Vec<GroupResource> {
        self.resources
            .resources_for_labels_with(label_names.iter().map(String::as_str), resolve)
    }

    /// The label that holds names of `resource` in this rule's series (resource → label).
    pub fn label_for_resource(&self, resource: &GroupResource) -> Option<String> {
        self.resources.label_for_resource(resource)
    }

    /// Whether this rule's metrics are namespaced (`resources.namespaced`, default true).
    pub fn namespaced(&self) -> bool {
        self.namespaced
    }

    fn no_label(&self, resource: &GroupResource) -> RenderError {
        RenderError::NoLabelForResource {
            rule: self.path.clone(),
            resource: resource.to_string(),
        }
    }

    fn part_error(e: PartError) -> RenderError {
        match e {
            PartError::InvalidKey(key, message) => RenderError::InvalidSelectorKey { key, message },
            PartError::UnsupportedOperator(key, op) => RenderError::UnsupportedOperator {
                key,
                operator: op.to_string(),
            },
        }
    }

    fn execute(&self, data: &gotmpl::Val) -> Result<String, RenderError> {
        if let Some(reason) = &self.broken {
            return Err(RenderError::Broken {
                rule: self.origin(),
                reason: reason.clone(),
            });
        }
        let out = self
            .metrics_query
            .execute(data)
            .map_err(|e| RenderError::Template {
                rule: self.path.clone(),
                message: e.0,
            })?;
        if out.is_empty() {
            return Err(RenderError::Template {
                rule: self.path.clone(),
                message: "empty query produced by metrics query template".into(),
            });
        }
        if let Some((label, ns)) = &self.pinned {
            isolation::check(&out, label, ns).map_err(|m| self.isolation(m))?;
        }
        Ok(out)
    }

    /// The PromQL for a custom-metrics request: `names` of `resource` objects (one or many)
    /// in `namespace`, with the metric label selector of the request.
    ///
    /// Matchers come in prometheus-adapter's order: the metric selector's requirements
    /// (sorted by key), then the namespace label, then the resource label (`=` for one
    /// name, `=~"a|b"` for several). `.GroupBy` is the resource label.
    pub fn render_custom(
        &self,
        series_name: &str,
        namespace: Option<&str>,
        resource: &GroupResource,
        names: &[String],
        metric_selector: &LabelSelector,
    ) -> Result<String, RenderError> {
        self.check_request_namespace(namespace)?;
        let data = self.custom_data(
            series_name,
            namespace,
            resource,
            names,
            metric_selector,
            &[],
        )?;
        self.execute(&data)
    }

    fn custom_data(
        &self,
        series_name: &str,
        namespace: Option<&str>,
        resource: &GroupResource,
        names: &[String],
        metric_selector: &LabelSelector,
        extra_group_by: &[String],
    ) -> Result<gotmpl::Val, RenderError> {
        let mut m = Matchers::default();
        m.push_selector(metric_selector).map_err(Self::part_error)?;
        if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
            let nsr = resources::namespaces();
            let label = self
                .label_for_resource(&nsr)
                .ok_or_else(|| self.no_label(&nsr))?;
            m.push_eq(&label, ns);
        }
        let label = self
            .label_for_resource(resource)
            .ok_or_else(|| self.no_label(resource))?;
        m.push_names(&label, names);
        let mut group_by = vec![label];
        group_by.extend(extra_group_by.iter().cloned());
        Ok(m.into_data(series_name, group_by))
    }

    /// The PromQL for an external-metrics request in `namespace` with the request's selector.
    ///
    /// Matchers: the selector's requirements (sorted by key), then the namespace label when
    /// the rule is namespaced and a namespace is given. `.GroupBy` is empty.
    pub fn render_external(
        &self,
        series_name: &str,
        namespace: Option<&str>,
        metric_selector: &LabelSelector,
    ) -> Result<String, RenderError> {
        self.check_request_namespace(namespace)?;
        let mut m = Matchers::default();
        m.push_selector(metric_selector).map_err(Self::part_error)?;
        if self.namespaced {
            if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
                let nsr = resources::namespaces();
                let label = self
                    .label_for_resource(&nsr)
                    .ok_or_else(|| self.no_label(&nsr))?;
                m.push_eq(&label, ns);
            }
        }
        self.execute(&m.into_data(series_name, Vec::new()))
    }
}

/// Go's `regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`; the longest run of
/// letters, digits and `_` after `$` is the name; unknown groups expand to nothing; a `$`
/// not followed by a valid reference stays literal.
fn go_expand(re: &Regex, template: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len = body
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(body.len());
        if name_len == 0 || (brace && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..name_len];
        rest = &body[name_len + usize::from(brace)..];
        let number = if name.bytes().all(|b| b.is_ascii_digit())
            && !(name.len() > 1 && name.starts_with('0'))
        {
            name.parse::<usize>().ok()
        } else {
            None
        };
        let m = match number {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = m {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// One of `resourceRules.cpu` / `resourceRules.memory`.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    path: String,
    container_query: Template,
    container_query_source: String,
    /// `nodeQuery`, or why it cannot be rendered (missing, not a template, no label for
    /// nodes): node requests then fail naming why, pod metrics are still served
    /// (prometheus-adapter loads such a rule too, and answers node requests with nothing).
    node_query: Result<Template, String>,
    node_query_source: String,
    resources: ResourceMapper,
    container_label: String,
}

impl ResourceRule {
    /// `resourceRules.cpu` or `rules.resource.memory`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn container_label(&self) -> &str {
        &self.container_label
    }

    pub fn resources(&self) -> &ResourceMapper {
        &self.resources
    }

    pub fn container_query(&self) -> &str {
        &self.container_query_source
    }

    pub fn node_query(&self) -> &str {
        &self.node_query_source
    }

    fn run(
        &self,
        template: &Template,
        field: &str,
        data: &gotmpl::Val,
    ) -> Result<String, RenderError> {
        let out = template.execute(data).map_err(|e| RenderError::Template {
            rule: format!("{}.{field}", self.path),
            message: e.0,
        })?;
        if out.is_empty() {
            return Err(RenderError::Template {
                rule: format!("{}.{field}", self.path),
                message: "empty query produced by template".into(),
            });
        }
        Ok(out)
    }

    fn data(
        &self,
        namespace: Option<&str>,
        resource: &GroupResource,
        names: &[String],
        extra_group_by: Vec<String>,
    ) -> Result<gotmpl::Val, RenderError> {
        let no_label = |r: &GroupResource| RenderError::NoLabelForResource {
            rule: self.path.clone(),
            resource: r.to_string(),
        };
        let mut m = Matchers::default();
        if let Some(ns) = namespace.filter(|ns| !ns.is_empty()) {
            let nsr = resources::namespaces();
            let label = self
                .resources
                .label_for_resource(&nsr)
                .ok_or_else(|| no_label(&nsr))?;
            m.push_eq(&label, ns);
        }
        let label = self
            .resources
            .label_for_resource(resource)
            .ok_or_else(|| no_label(resource))?;
        m.push_names(&label, names);
        let mut group_by = vec![label];
        group_by.extend(extra_group_by);
        Ok(m.into_data("", group_by))
    }

    /// `containerQuery` for pods `names` in `namespace`, grouped by pod and container label.
    pub fn render_container_query(
        &self,
        namespace: &str,
        pod_names: &[String],
    ) -> Result<String, RenderError> {
        // Without a container label (prometheus-adapter loads such a rule), pods are
        // grouped alone and their containers named "".
        let extra = if self.container_label.is_empty() {
            Vec::new()
        } else {
            vec![self.container_label.clone()]
        };
        let data = self.data(
            Some(namespace),
            &GroupResource::new("", "pods"),
            pod_names,
            extra,
        )?;
        self.run(&self.container_query, "containerQuery", &data)
    }

    /// `nodeQuery` for nodes `names`, grouped by the node label.
    pub fn render_node_query(&self, node_names: &[String]) -> Result<String, RenderError> {
        let template = self
            .node_query
            .as_ref()
            .map_err(|reason| RenderError::Broken {
                rule: format!("{}.nodeQuery", self.path),
                reason: reason.clone(),
            })?;
        let data = self.data(
            None,
            &GroupResource::new("", "nodes"),
            node_names,
            Vec::new(),
        )?;
        self.run(template, "nodeQuery", &data)
    }
}

/// `resourceRules` (Helm: `rules.resource`): what `metrics.k8s.io` serves.
#[derive(Debug, Clone)]
pub struct ResourceRules {
    pub cpu: ResourceRule,
    pub memory: ResourceRule,
    /// `window` in milliseconds, when given.
    pub window_ms: Option<i64>,
}

/// Which shape the file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileShape {
    /// prometheus-adapter's own config (`rules`, `externalRules`, `resourceRules`).
    #[default]
    AdapterConfig,
    /// prometheus-community Helm chart values (`rules: {default, custom, external, resource}`).
    HelmValues,
    /// A ConfigMap manifest carrying the adapter config under `data."config.yaml"`.
    ConfigMap,
}

/// `prometheus.url` and `prometheus.port` from a Helm values file, when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrometheusSettings {
    pub url: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
}

impl PrometheusSettings {
    /// The Prometheus URL: `url`, then `:port` and `path` when given, joined as the chart
    /// joins them for `--prometheus-url`; `None` without `url`.
    ///
    /// ```
    /// let p = promhpa_rules::PrometheusSettings {
    ///     url: Some("http://prometheus.monitoring.svc".into()),
    ///     port: Some(9090),
    ///     path: Some("/prom".into()),
    /// };
    /// assert_eq!(p.joined_url().as_deref(), Some("http://prometheus.monitoring.svc:9090/prom"));
    /// ```
    pub fn joined_url(&self) -> Option<String> {
        let url = self.url.as_ref()?;
        let port = self.port.map(|port| format!(":{port}")).unwrap_or_default();
        Some(format!("{url}{port}{}", self.path.as_deref().unwrap_or("")))
    }
}

/// A validated rule file.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub custom: Vec<Rule>,
    pub external: Vec<Rule>,
    pub prometheus: Option<PrometheusSettings>,
    /// `resourceRules` (Helm: `rules.resource`).
    pub resource: Option<ResourceRules>,
    /// Problems that do not stop the file from loading but make some requests fail
    /// (e.g. no label mapped to namespaces).
    pub warnings: Vec<ConfigError>,
    /// Rules that load (prometheus-adapter starts with them) but cannot serve: a missing
    /// `metricsQuery`, a template that renders invalid PromQL, a `seriesQuery` that is not a
    /// series selector. Every other rule is served; these fail each request with the reason.
    pub broken: Vec<ConfigError>,
    /// Rules that a later rule shadows (the same metric name for the same resource, where
    /// prometheus-adapter keeps the later one), as found when loading.
    pub shadowed: Vec<ConfigError>,
    pub shape: FileShape,
    /// The `backends` section: servers besides the default one, which rules may name.
    pub backends: Vec<BackendSpec>,
}

impl RuleSet {
    /// Read and compile a rule file in any accepted shape.
    pub fn load(path: &Path) -> Result<RuleSet, ConfigErrors> {
        // `-` is standard input, as kubectl's `-f -`.
        let read = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin().lock())
        } else {
            std::fs::read_to_string(path)
        };
        let text = read.map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                source_name: path.display().to_string(),
                line: 0,
                path: String::new(),
                message: format!("{UNREADABLE}{e}"),
            }],
        })?;
        RuleSet::from_yaml(&text, &path.display().to_string())
    }

    /// Compile rule-file text; `source_name` is used in error messages.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<RuleSet, ConfigErrors> {
        load::compile(text, source_name)
    }

    /// Every rule, custom then external.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.custom.iter().chain(self.external.iter())
    }

    /// Whether every rule can serve and nothing was warned about: what `--strict-rules`
    /// requires.
    pub fn is_clean(&self) -> bool {
        self.broken.is_empty() && self.warnings.is_empty()
    }

    /// The problems `--strict-rules` refuses: broken rules, then warnings.
    pub fn strict_errors(&self) -> Vec<ConfigError> {
        self.broken
            .iter()
            .chain(self.warnings.iter())
            .cloned()
            .collect()
    }
}
