//! Rule files in prometheus-adapter's format (and the Helm-values and ConfigMap shapes users
//! paste), compiled into a validated [`RuleSet`]: metric naming, resource mapping in both
//! directions, and rendering of `metricsQuery` templates to PromQL.
//!
//! No IO beyond reading the file handed to [`RuleSet::load`].

use std::collections::BTreeSet;
use std::path::Path;

use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;

/// Every problem found in a rule file, each with its path (`rules[3].metricsQuery`) and line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// One problem in a rule file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{source_name}:{line}: {path}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub line: usize,
    pub path: String,
    pub message: String,
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
}

/// Which section of the rule file a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `rules` (Helm: `rules.custom`, `rules.default`).
    Custom,
    /// `externalRules` (Helm: `rules.external`).
    External,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    kind: RuleKind,
    /// `rules[3]`, `externalRules[0]`: used in every message about this rule.
    path: String,
    series_query: String,
}

impl Rule {
    pub fn kind(&self) -> RuleKind {
        self.kind
    }

    /// The rule's position in its file, e.g. `rules[3]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `seriesQuery` series selector, as written.
    pub fn series_query(&self) -> &str {
        &self.series_query
    }

    /// The metric name this rule serves for a discovered series name, after `seriesFilters`
    /// and `name.matches`/`name.as`; `None` when the rule does not serve that series.
    pub fn metric_name_for(&self, _series_name: &str) -> Option<String> {
        None
    }

    /// The resources a series with these label names can describe (label → resource).
    pub fn resources_for_labels(&self, _label_names: &BTreeSet<String>) -> Vec<GroupResource> {
        Vec::new()
    }

    /// The label that holds names of `resource` in this rule's series (resource → label).
    pub fn label_for_resource(&self, _resource: &GroupResource) -> Option<String> {
        None
    }

    /// Whether this rule's metrics are namespaced (`resources.namespaced`, default true).
    pub fn namespaced(&self) -> bool {
        true
    }

    /// The PromQL for a custom-metrics request: `names` of `resource` objects (one or many)
    /// in `namespace`, with the metric label selector of the request.
    pub fn render_custom(
        &self,
        _series_name: &str,
        _namespace: Option<&str>,
        _resource: &GroupResource,
        _names: &[String],
        _metric_selector: &LabelSelector,
    ) -> Result<String, RenderError> {
        Err(RenderError::Template {
            rule: self.path.clone(),
            message: "not implemented".into(),
        })
    }

    /// The PromQL for an external-metrics request in `namespace` with the request's selector.
    pub fn render_external(
        &self,
        _series_name: &str,
        _namespace: Option<&str>,
        _metric_selector: &LabelSelector,
    ) -> Result<String, RenderError> {
        Err(RenderError::Template {
            rule: self.path.clone(),
            message: "not implemented".into(),
        })
    }
}

/// `prometheus.url` and `prometheus.port` from a Helm values file, when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrometheusSettings {
    pub url: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
}

/// A validated rule file.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub custom: Vec<Rule>,
    pub external: Vec<Rule>,
    pub prometheus: Option<PrometheusSettings>,
}

impl RuleSet {
    /// Read and compile a rule file in any accepted shape.
    pub fn load(path: &Path) -> Result<RuleSet, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                source_name: path.display().to_string(),
                line: 0,
                path: String::new(),
                message: e.to_string(),
            }],
        })?;
        RuleSet::from_yaml(&text, &path.display().to_string())
    }

    /// Compile rule-file text; `source_name` is used in error messages.
    pub fn from_yaml(_text: &str, source_name: &str) -> Result<RuleSet, ConfigErrors> {
        Err(ConfigErrors {
            errors: vec![ConfigError {
                source_name: source_name.to_string(),
                line: 0,
                path: String::new(),
                message: "not implemented".into(),
            }],
        })
    }
}
