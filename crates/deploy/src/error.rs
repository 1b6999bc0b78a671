//! Why an installation cannot be rendered from the inputs. `file` is the name an input was
//! given by, as messages show it. A wrapped error is the source, printed after the message,
//! unless the message already holds its text (the rule loader's errors): a chain of causes
//! names each once.

use promhpa_core::yaml;
use promhpa_rules::ConfigErrors;

/// A failure to read the inputs of `promhpa manifests` or to render their installation.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Text that is not YAML.
    #[error("parsing YAML")]
    Yaml(#[from] yaml::Error),
    #[error("values must be a mapping, found {found}")]
    ValuesNotMapping { found: &'static str },
    /// A file read as Helm values whose values do not parse.
    #[error("values file {file}")]
    ValuesFile {
        file: String,
        #[source]
        cause: Box<DeployError>,
    },
    /// A file that is not a rule file the loader accepts and not plain Helm values either.
    #[error(
        "{cause}\n{file}: {} error{}: its rules do not load, so it cannot be installed",
        .cause.errors.len(),
        plural(.cause.errors.len())
    )]
    RulesDoNotLoad { file: String, cause: ConfigErrors },
    /// A rule file that loads but would give an installation serving nothing: it has no rule
    /// (`no_rules`), or every rule is broken. `reports` are the loader's, one a line.
    #[error("{}", nothing_served(.origin, *.no_rules, .reports))]
    NothingServed {
        origin: String,
        no_rules: bool,
        reports: Vec<String>,
    },
    /// Helm values whose keys are all foreign to the chart. `section` is the one key, when
    /// there is one and it holds a mapping: maybe the values of a chart that includes
    /// prometheus-adapter.
    #[error(
        "{file}: none of its keys ({}) is a value of the prometheus-adapter chart, and it is \
         neither a prometheus-adapter config nor a ConfigMap{}",
        .keys.join(", "),
        umbrella_hint(.section.as_deref())
    )]
    ForeignValues {
        file: String,
        keys: Vec<String>,
        section: Option<String>,
    },
    #[error("{file}: reading the ConfigMap's config.yaml")]
    ConfigMapConfig {
        file: String,
        #[source]
        cause: Box<DeployError>,
    },
    #[error("{cause}\n{file}: the ConfigMap's config.yaml does not load")]
    ConfigMapConfigDoesNotLoad { file: String, cause: ConfigErrors },
    #[error("{file}: the Helm values in the ConfigMap's config.yaml")]
    ConfigMapValues {
        file: String,
        #[source]
        cause: Box<DeployError>,
    },
    /// A manifest file without a document.
    #[error("no document")]
    NoDocument,
    /// A ConfigMap manifest without `data."config.yaml"`, or not a string.
    #[error("no data.\"config.yaml\" string")]
    NoConfigYaml,
    #[error("{file} holds Helm values, not a rule file: pass it with --helm-values")]
    ValuesGivenAsConfig { file: String },
    #[error("{file} has no rules (it is empty), so an installation would serve no metrics API")]
    EmptyConfig { file: String },
    #[error(
        "{file} is a rule file (adapter config or ConfigMap), not Helm values: pass it with \
         --config"
    )]
    ConfigGivenAsValues { file: String },
    #[error(
        "{file}: a second rule file after {first}: give one prometheus-adapter config or \
         ConfigMap, with any number of Helm values files"
    )]
    SecondRuleFile { file: String, first: String },
    #[error(
        "the values give no rules (rules.default is false and rules.custom, rules.external and \
         rules.resource are empty), so the installation would serve no metrics API: add rules, \
         or name a ConfigMap that holds them with rules.existing"
    )]
    NoRules,
    #[error("rules.custom must be a list of rules")]
    CustomRulesNotList,
    #[error("rules.external must be a list of rules")]
    ExternalRulesNotList,
    /// The rule file rendered from the values does not load.
    #[error("the rules of the values do not load:\n{cause}")]
    ValuesRulesDoNotLoad { cause: ConfigErrors },
    #[error("serialising the rule file")]
    SerialiseRuleFile(#[source] yaml::SerializeError),
    #[error(
        "prometheus.url {url:?} uses a Helm template, which promhpa manifests does not evaluate"
    )]
    PrometheusUrlTemplate { url: String },
    #[error("extraManifests[{index}]: parsing YAML")]
    ExtraManifestYaml {
        index: usize,
        #[source]
        cause: yaml::Error,
    },
    #[error("extraManifests[{index}] must be an object, found {found}")]
    ExtraManifestNotObject { index: usize, found: &'static str },
    #[error("extraManifests[{index}].{at} uses a Helm template, which promhpa manifests does not evaluate; write the value out")]
    ExtraManifestTemplate { index: usize, at: String },
    #[error("serialising a manifest")]
    SerialiseManifest(#[source] yaml::SerializeError),
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Why a loaded rule file would give an installation that serves nothing.
fn nothing_served(origin: &str, no_rules: bool, reports: &[String]) -> String {
    let mut message = if no_rules {
        format!(
            "{origin} has no rules (rules, externalRules and resourceRules are empty or \
             absent), so an installation would serve no metrics API"
        )
    } else {
        format!("every rule of {origin} is broken, so an installation would serve nothing:")
    };
    for report in reports {
        message.push_str(&format!("\n{report}"));
    }
    message
}

fn umbrella_hint(section: Option<&str>) -> String {
    match section {
        Some(key) => format!(
            "; if these are the values of a chart that includes prometheus-adapter, give the \
             contents of `{key}:` in a file of their own"
        ),
        None => String::new(),
    }
}
