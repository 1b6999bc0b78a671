//! Rendering promhpa's installation (what `promhpa manifests` prints): its Kubernetes objects from the Helm values of the
//! prometheus-community/prometheus-adapter chart, so an installation moves with the values
//! it already has — or from the rule file an adapter already runs.
//!
//! The objects are those the chart installs for the same values (ServiceAccount, ConfigMap of
//! rules, Deployment, Service, APIServices, RBAC, PodDisruptionBudget, TLS Secret or
//! cert-manager Issuers and Certificates, extra manifests) with the same names and the same
//! Deployment selector, so `kubectl apply` can take over a release. Differences, each
//! deliberate:
//! - the image is promhpa's (unless `--image` or a non-adapter `image.repository` says
//!   otherwise); a repository of prometheus-adapter's image under any registry or mirror
//!   (`.../prometheus-adapter`, `.../k8s-prometheus-adapter-amd64`) is replaced too, its tag
//!   dropped, with a warning;
//! - `v1beta2.custom.metrics.k8s.io` is registered next to `v1beta1`, since promhpa serves both;
//! - RBAC grants only what promhpa reads: no cluster-wide `configmaps` in
//!   `<name>-resource-reader` (the one ConfigMap read, `kube-system/extension-apiserver-authentication`,
//!   comes with the `extension-apiserver-authentication-reader` binding) and no `nodes/stats` in
//!   `<name>-metrics`. Rules whose series map to configmaps need list/watch on them granted
//!   for `*` requests, as any resource the role does not name;
//! - with resource metrics, the ClusterRole `<name>-aggregated-metrics-reader` lets the
//!   view, edit and admin roles read `metrics.k8s.io` (kubectl top), as metrics-server's
//!   `system:aggregated-metrics-reader` does (the chart has none);
//! - the custom-metrics ClusterRole is bound to the HPA controller
//!   (`kube-system/horizontal-pod-autoscaler`), the subject that reads the metrics;
//! - the APIServices name the Service's port (`spec.service.port`) when `service.port` is not
//!   443, where the chart leaves it out and the aggregator calls 443;
//! - with `customAnnotations` set and cert-manager off, the APIServices carry those
//!   annotations alone: the chart adds `cert-manager.io/inject-ca-from` too;
//! - `app.kubernetes.io/managed-by` is `promhpa` and there is no `helm.sh/chart` label;
//! - a PodDisruptionBudget with `minAvailable` gets no `maxUnavailable` (the chart's default
//!   1 would be rendered next to it, and the API server refuses both), with a warning;
//! - values that give no rule at all are refused instead of installing an adapter that serves
//!   nothing.
//!
//! Every input `promhpa check` accepts is accepted:
//! - Helm values (also an umbrella chart's `prometheus-adapter:` section) render as the chart
//!   renders them;
//! - a prometheus-adapter config (`rules`, `externalRules`, `resourceRules`), or a ConfigMap
//!   manifest holding one in `data."config.yaml"`, becomes the `config.yaml` of the rendered
//!   ConfigMap byte for byte, and registers the metrics APIs its rules serve
//!   (`custom.metrics.k8s.io` for `rules`, `external.metrics.k8s.io` for `externalRules`,
//!   `metrics.k8s.io` for `resourceRules`). Everything else comes from Helm values given with
//!   it, or the chart's defaults, which the output names in a comment. The input ConfigMap is
//!   not reused: the Deployment mounts the rendered one, in the release namespace.
//!
//! A rule file that does not load, or that has no rule, is an error.

use promhpa_core::yaml;
use promhpa_rules::{FileShape, Rule, RuleSet};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

mod error;

pub use error::DeployError;

pub const CHART_NAME: &str = "prometheus-adapter";
/// prometheus-adapter's image repository, the chart's default: values naming it (or a
/// mirror of it) get promhpa's image instead.
const ADAPTER_REPOSITORY: &str = "registry.k8s.io/prometheus-adapter/prometheus-adapter";
/// promhpa's released image.
const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/promhpa/promhpa";

/// What an input file was given as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// Helm values of the prometheus-adapter chart.
    HelmValues,
    /// A rule file: an adapter config or a ConfigMap holding one.
    Config,
    /// Either, told apart by content.
    Either,
}

/// One input: its text, where it came from (for messages) and what it was given as.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub source: String,
    pub text: String,
    pub given: Given,
}

/// An installation: the YAML stream (headed by the notes as comments), warnings about the
/// inputs, and notes on what was assumed.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub yaml: String,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    /// The command-line arguments promhpa's container is given (`extraArguments` included).
    pub args: Vec<String>,
}

/// Render the installation the inputs describe, applied in order (later Helm values win, as
/// with `helm -f`; one rule file at most), for `release`, with `prometheus_url` overriding
/// the values' Prometheus.
pub fn render_installation(
    inputs: &[InputFile],
    release: Release,
    prometheus: Option<&str>,
) -> Result<Rendered, DeployError> {
    let mut warnings = Vec::new();
    let mut values = chart_defaults();
    let mut rule_file: Option<RuleFile> = None;
    let mut values_files = Vec::new();
    let mut prometheus_given = prometheus.is_some();
    for input in inputs {
        let (source, given) = (&input.source, input.given);
        match read_input(&input.text, source)? {
            Input::Values(values) if given == Given::Config => {
                // An empty file is no Helm values either: a rule file without rules.
                return Err(if values.as_object().is_some_and(|v| v.is_empty()) {
                    DeployError::EmptyConfig {
                        file: source.clone(),
                    }
                } else {
                    DeployError::ValuesGivenAsConfig {
                        file: source.clone(),
                    }
                });
            }
            Input::Rules(_) if given == Given::HelmValues => {
                return Err(DeployError::ConfigGivenAsValues {
                    file: source.clone(),
                })
            }
            Input::Values(user) => {
                warnings.extend(unknown_keys(&user).iter().map(|key| key.warning(source)));
                prometheus_given |= truthy(get(&user, "prometheus.url"));
                values_files.push((source, user.get("rules").is_some()));
                merge_values(&mut values, user);
            }
            Input::Rules(file) => {
                if let Some(first) = &rule_file {
                    return Err(DeployError::SecondRuleFile {
                        file: source.clone(),
                        first: first.origin.clone(),
                    });
                }
                rule_file = Some(file);
            }
        }
    }
    if let Some(url) = prometheus {
        merge_values(
            &mut values,
            json!({"prometheus": {"url": url, "port": null, "path": ""}}),
        );
    }

    let mut notes = Vec::new();
    let rules = match &rule_file {
        Some(file) => {
            for (source, has_rules) in &values_files {
                if *has_rules {
                    warnings.push(format!(
                        "{source}: rules are ignored: the installation runs the rules of {}",
                        file.origin
                    ));
                }
            }
            let n = names(&values, &release);
            notes.push(format!(
                "the rules are {}, copied as written into config.yaml of ConfigMap {}/{}, \
                 which the Deployment mounts",
                file.origin, n.namespace, n.fullname
            ));
            if values_files.is_empty() {
                notes.push(format!(
                    "everything else is the prometheus-adapter chart's default values (release \
                     {}, namespace {}); add Helm values files with --helm-values to change them",
                    release.name, n.namespace
                ));
            }
            file.rules()
        }
        None => chart_rules(&values)?,
    };
    if !prometheus_given {
        notes.push(format!(
            "Prometheus is assumed at the chart's default {}: pass --prometheus-url (or \
             prometheus.url in Helm values) if it is elsewhere",
            prometheus_url(&values)?
        ));
    }
    if !values_files.is_empty() {
        notes.push(helm_release_note(&release));
    }
    warnings.extend(rules.warnings.iter().cloned());
    warnings.extend(container_image(&values, &release).1);
    warnings.extend(pdb_warning(&values));
    let objects = render_with(&values, &release, &rules)?;
    let mut yaml = String::new();
    for note in &notes {
        yaml.push_str(&format!("# {note}\n"));
    }
    yaml.push_str(&to_yaml_stream(&objects)?);
    Ok(Rendered {
        yaml,
        warnings,
        notes,
        args: promhpa_args(&objects, &names(&values, &release).fullname),
    })
}

/// The args of promhpa's container, in the Deployment rendered for it: the first named
/// `fullname` (an extra manifest comes after it).
fn promhpa_args(objects: &[Value], fullname: &str) -> Vec<String> {
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == fullname)
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].as_array())
        .map(|args| args.iter().map(scalar).collect())
        .unwrap_or_default()
}

/// What to do before applying objects that replace a Helm release's in place: Helm's record
/// of the release still lists them (`helm uninstall` would delete promhpa, `helm upgrade` or
/// a controller reconciling the release would bring the adapter back).
fn helm_release_note(release: &Release) -> String {
    format!(
        "these objects replace those of Helm release {name}, which Helm still lists as its own: \
         first stop what reconciles the release (suspend the Flux HelmRelease or the Argo CD \
         Application), then make Helm forget it without deleting anything \
         (kubectl -n {namespace} delete secret -l owner=helm,name={name}), then apply; \
         otherwise helm uninstall deletes promhpa and helm upgrade puts the adapter back",
        name = release.name,
        namespace = release.namespace,
    )
}

/// The warning for a PodDisruptionBudget given both minAvailable and maxUnavailable (the
/// chart's default 1 stays unless set to null), of which only minAvailable is rendered.
fn pdb_warning(values: &Value) -> Option<String> {
    let budget = |key: &str| get(values, &format!("podDisruptionBudget.{key}"));
    let both = truthy(budget("enabled"))
        && truthy(budget("minAvailable"))
        && truthy(budget("maxUnavailable"));
    both.then(|| {
        format!(
            "podDisruptionBudget sets minAvailable ({}) and maxUnavailable ({}, the chart's \
             default unless set), which the API server refuses together: the \
             PodDisruptionBudget gets minAvailable alone (the chart would render both and \
             fail); set podDisruptionBudget.maxUnavailable: null in the values to say so",
            scalar(budget("minAvailable")),
            scalar(budget("maxUnavailable")),
        )
    })
}

/// One input file, as `manifests` reads it.
#[derive(Debug, Clone)]
pub enum Input {
    /// Helm values of the chart.
    Values(Value),
    /// A rule file the installation runs as written.
    Rules(RuleFile),
}

/// A prometheus-adapter config (on its own or from a ConfigMap) that promhpa loads.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// The config, byte for byte as written.
    pub text: String,
    /// Where it comes from, for messages: `FILE (prometheus-adapter config)`.
    pub origin: String,
    /// Custom rules that can answer requests (broken ones left out).
    pub custom: usize,
    /// External rules that can answer requests.
    pub external: usize,
    /// Whether its resource rules can answer requests.
    pub resource: bool,
    pub warnings: Vec<String>,
}

impl RuleFile {
    /// The rules an installation of this file runs: the text as written, and a metrics API
    /// registered for each kind of rule it has.
    pub fn rules(&self) -> Rules {
        Rules {
            config: RuleConfig::Text(self.text.clone()),
            custom: self.custom > 0,
            external: self.external > 0,
            resource: self.resource,
            warnings: self.warnings.clone(),
        }
    }
}

/// Reads one input file: Helm values of the chart, a prometheus-adapter config, or a
/// ConfigMap manifest holding either (the first ConfigMap with `config.yaml` of a
/// multi-document file, as `promhpa check` reads it). A rule file that does not load or has
/// no rule is an error.
pub fn read_input(text: &str, source: &str) -> Result<Input, DeployError> {
    let set = match RuleSet::from_yaml(text, source) {
        Ok(set) => set,
        // Values that set no rules are not a rule file; the chart's rules apply.
        Err(_) if plain_values(text) => return values_input(parse_values(text)?, source),
        Err(errors) => {
            return Err(DeployError::RulesDoNotLoad {
                file: source.to_string(),
                cause: errors,
            })
        }
    };
    // An empty file loads as a rule file without rules; as input here it is values that
    // set nothing, and the chart's rules apply.
    let no_rules = set.rules().next().is_none() && set.resource.is_none();
    if no_rules && set.shape == FileShape::AdapterConfig && plain_values(text) {
        return values_input(parse_values(text)?, source);
    }
    match set.shape {
        FileShape::HelmValues => values_input(
            parse_values(text).map_err(|cause| DeployError::ValuesFile {
                file: source.to_string(),
                cause: Box::new(cause),
            })?,
            source,
        ),
        FileShape::AdapterConfig => {
            rule_file(text, format!("{source} (prometheus-adapter config)"), &set)
        }
        FileShape::ConfigMap => {
            let (inner, name) =
                configmap_config(text).map_err(|cause| DeployError::ConfigMapConfig {
                    file: source.to_string(),
                    cause: Box::new(cause),
                })?;
            let inner_set = RuleSet::from_yaml(&inner, source).map_err(|cause| {
                DeployError::ConfigMapConfigDoesNotLoad {
                    file: source.to_string(),
                    cause,
                }
            })?;
            if inner_set.shape == FileShape::HelmValues {
                let values =
                    parse_values(&inner).map_err(|cause| DeployError::ConfigMapValues {
                        file: source.to_string(),
                        cause: Box::new(cause),
                    })?;
                return values_input(values, source);
            }
            // The file's own load reports lines of the file, not of config.yaml.
            rule_file(
                &inner,
                format!("the config.yaml of {source} (ConfigMap {name}, not used itself)"),
                &set,
            )
        }
    }
}

/// The key under which a chart that includes prometheus-adapter as a dependency (an
/// umbrella chart) keeps its values.
const UMBRELLA_KEY: &str = "prometheus-adapter";

/// Helm values, unless not one of their keys is a value of the chart. An umbrella chart's
/// values (a `prometheus-adapter:` mapping and no `rules`) give that section, as the rule
/// loader reads them.
fn values_input(mut values: Value, source: &str) -> Result<Input, DeployError> {
    if values.get("rules").is_none() {
        if let Some(section) = values.get_mut(UMBRELLA_KEY).filter(|v| v.is_object()) {
            eprintln!("note: {source}: reading its `{UMBRELLA_KEY}:` section (an umbrella chart's values)");
            let section = section.take();
            values = section;
        }
    }
    let unknown: Vec<UnknownKey> = unknown_keys(&values)
        .into_iter()
        .filter(|key| key.top_level && key.retired.is_none())
        .collect();
    if !unknown.is_empty() && values.as_object().is_some_and(|m| m.len() == unknown.len()) {
        let section = match unknown.as_slice() {
            [key] if values[&key.path].is_object() => Some(key.path.clone()),
            _ => None,
        };
        let keys = unknown
            .into_iter()
            .map(|key| match key.did_you_mean {
                Some(meant) => format!("{} (did you mean {meant:?}?)", key.path),
                None => key.path,
            })
            .collect();
        return Err(DeployError::ForeignValues {
            file: source.to_string(),
            keys,
            section,
        });
    }
    Ok(Input::Values(values))
}

fn rule_file(text: &str, origin: String, set: &RuleSet) -> Result<Input, DeployError> {
    let (custom, external, resource) = working_rules(set);
    if custom == 0 && external == 0 && !resource {
        return Err(nothing_served(origin, set));
    }
    Ok(Input::Rules(RuleFile {
        text: text.to_string(),
        origin,
        custom,
        external,
        resource,
        warnings: loader_reports(set),
    }))
}

/// The custom and external rules of `set` that can answer requests, and whether its resource
/// rules can: broken rules are installed (serve starts without them) but serve nothing.
fn working_rules(set: &RuleSet) -> (usize, usize, bool) {
    let working = |rules: &[Rule]| rules.iter().filter(|r| r.broken().is_none()).count();
    let resource_broken = set
        .broken
        .iter()
        .any(|b| b.path.starts_with("resourceRules") || b.path.starts_with("rules.resource"));
    (
        working(&set.custom),
        working(&set.external),
        set.resource.is_some() && !resource_broken,
    )
}

/// The error for a loaded rule file that would give an installation serving nothing.
fn nothing_served(origin: String, set: &RuleSet) -> DeployError {
    DeployError::NothingServed {
        origin,
        no_rules: set.rules().next().is_none() && set.resource.is_none(),
        reports: loader_reports(set),
    }
}

/// The loader's reports on a file it loads: broken rules, then warnings.
fn loader_reports(set: &RuleSet) -> Vec<String> {
    let broken = set
        .broken
        .iter()
        .map(|b| format!("{b} (broken: serve starts without this rule)"));
    broken
        .chain(set.warnings.iter().map(ToString::to_string))
        .collect()
}

/// Whether a file the rule loader refuses still reads as Helm values: nothing, or a mapping
/// with neither a rule section nor the fields of a Kubernetes object.
fn plain_values(text: &str) -> bool {
    const RULE_FILE_KEYS: [&str; 6] = [
        "rules",
        "externalRules",
        "resourceRules",
        "apiVersion",
        "kind",
        "data",
    ];
    let plain = |m: &Map<String, Value>| !RULE_FILE_KEYS.iter().any(|k| m.contains_key(*k));
    match yaml::from_str::<Value>(text) {
        Ok(Value::Null) => true,
        Ok(Value::Object(m)) => {
            plain(&m)
                && match m.get(UMBRELLA_KEY) {
                    Some(Value::Object(section)) => plain(section),
                    _ => true,
                }
        }
        _ => false,
    }
}

/// The text of `data."config.yaml"` of the ConfigMap a manifest file holds (the first with
/// that key, else the first document), and the ConfigMap's `namespace/name`.
pub fn configmap_config(text: &str) -> Result<(String, String), DeployError> {
    let mut chosen = None;
    for document in yaml::documents::<Value>(text) {
        let doc = document?;
        let has_config = doc.get("kind").and_then(Value::as_str) == Some("ConfigMap")
            && doc.get("data").and_then(|d| d.get("config.yaml")).is_some();
        if has_config {
            chosen = Some(doc);
            break;
        }
        if chosen.is_none() {
            chosen = Some(doc);
        }
    }
    let doc = chosen.ok_or(DeployError::NoDocument)?;
    let config = doc
        .get("data")
        .and_then(|d| d.get("config.yaml"))
        .and_then(Value::as_str)
        .ok_or(DeployError::NoConfigYaml)?;
    let field = |key: &str| {
        doc.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = match (field("namespace"), field("name")) {
        (ns, name) if ns.is_empty() => name,
        (ns, name) => format!("{ns}/{name}"),
    };
    Ok((config.to_string(), name))
}

/// The chart's values whose keys its templates read one at a time (`.Values.tls.enable`, or
/// `.minAvailable` inside `with .Values.podDisruptionBudget`), each with every key read, set
/// in the chart's values.yaml or not (`rules.resource`, `service.clusterIP`, `dnsPolicy`).
/// A key listed here that has an entry of its own is such a map too. Anything else is the
/// user's to fill and is not checked: maps the templates hand whole to `toYaml` (`resources`,
/// `affinity`, probes, `strategy`, the annotations and labels maps, `dnsConfig`,
/// `rules.resource`), lists and scalars.
const CHART_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "nameOverride",
            "fullnameOverride",
            "namespaceOverride",
            "customAnnotations",
            "customLabels",
            "image",
            "logLevel",
            "metricsRelistInterval",
            "listenPort",
            "prometheus",
            "replicas",
            "revisionHistoryLimit",
            "strategy",
            "deploymentAnnotations",
            "podAnnotations",
            "podLabels",
            "podSecurityContext",
            "securityContext",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "nodeSelector",
            "affinity",
            "topologySpreadConstraints",
            "tolerations",
            "priorityClassName",
            "hostNetwork",
            "dnsPolicy",
            "dnsConfig",
            "automountServiceAccountToken",
            "serviceAccount",
            "rbac",
            "rules",
            "service",
            "tls",
            "certManager",
            "podDisruptionBudget",
            "env",
            "extraArguments",
            "extraContainers",
            "extraVolumes",
            "extraVolumeMounts",
            "extraManifests",
        ],
    ),
    ("image", &["repository", "tag", "pullPolicy", "pullSecrets"]),
    ("prometheus", &["url", "port", "path"]),
    (
        "rbac",
        &[
            "create",
            "useAuthReaderClusterRole",
            "externalMetrics",
            "customMetrics",
        ],
    ),
    ("rbac.externalMetrics", &["resources"]),
    ("rbac.customMetrics", &["resources"]),
    (
        "serviceAccount",
        &[
            "create",
            "name",
            "annotations",
            "automountServiceAccountToken",
        ],
    ),
    (
        "rules",
        &["default", "custom", "existing", "external", "resource"],
    ),
    (
        "service",
        &["annotations", "port", "type", "clusterIP", "ipDualStack"],
    ),
    (
        "service.ipDualStack",
        &["enabled", "ipFamilies", "ipFamilyPolicy"],
    ),
    ("tls", &["enable", "ca", "key", "certificate"]),
    ("hostNetwork", &["enabled"]),
    (
        "podDisruptionBudget",
        &[
            "enabled",
            "minAvailable",
            "maxUnavailable",
            "unhealthyPodEvictionPolicy",
        ],
    ),
    (
        "certManager",
        &[
            "enabled",
            "caCertDuration",
            "certDuration",
            "caCertRevisionHistoryLimit",
            "certRevisionHistoryLimit",
        ],
    ),
];

/// The keys the chart reads in the map of values at `path` (dotted, "" for the top level),
/// or `None` when it takes that map as a whole.
fn chart_keys(path: &str) -> Option<&'static [&'static str]> {
    CHART_KEYS
        .iter()
        .find(|(at, _)| *at == path)
        .map(|(_, keys)| *keys)
}

/// A key of Helm values the chart does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Its dotted path: `replica`, `service.nodePort`.
    pub path: String,
    /// Whether it is a key of the values' top level.
    pub top_level: bool,
    /// The dotted path of the chart's key next to it that it is likely a misspelling of.
    pub did_you_mean: Option<String>,
    /// Why a value of earlier versions of the chart is not taken, for such a key.
    pub retired: Option<String>,
}

impl UnknownKey {
    /// The warning for it, in values from `source`.
    pub fn warning(&self, source: &str) -> String {
        if let Some(why) = &self.retired {
            return format!(
                "{source}: {:?} is a value of earlier versions of the prometheus-adapter chart; {why}",
                self.path
            );
        }
        let hint = match &self.did_you_mean {
            Some(key) => format!(" (did you mean {key:?}?)"),
            None => String::new(),
        };
        format!(
            "{source}: {:?} is not a value of the prometheus-adapter chart; ignored{hint}",
            self.path
        )
    }
}

/// Keys of `values` the chart does not read (typos, values of another chart or version), at
/// every depth of the maps whose keys it reads one by one; the keys under an unknown key are
/// not listed on their own.
pub fn unknown_keys(values: &Value) -> Vec<UnknownKey> {
    let mut found = Vec::new();
    unknown_keys_under(values, "", &mut found);
    found
}

fn unknown_keys_under(values: &Value, path: &str, found: &mut Vec<UnknownKey>) {
    let (Some(map), Some(known)) = (values.as_object(), chart_keys(path)) else {
        return;
    };
    let dotted = |key: &str| match path {
        "" => key.to_string(),
        _ => format!("{path}.{key}"),
    };
    for (key, value) in map {
        if known.contains(&key.as_str()) {
            unknown_keys_under(value, &dotted(key), found);
        } else if path.is_empty() && RETIRED_KEYS.contains(&key.as_str()) {
            found.extend(retired_key(key, value));
        } else {
            found.push(UnknownKey {
                path: dotted(key),
                top_level: path.is_empty(),
                did_you_mean: near_miss(key, known).map(dotted),
                retired: None,
            });
        }
    }
}

/// The user the chart's default `securityContext` runs the container as.
const DEFAULT_RUN_AS_USER: u64 = 10001;

/// Top-level keys of earlier versions of the chart that its current templates no longer read.
const RETIRED_KEYS: &[&str] = &["psp", "runAsUser"];

/// What to say about the retired key `key` set to `value`, unless it asks for nothing that is
/// lost: PodSecurityPolicies not created, or the user the container runs as anyway.
fn retired_key(key: &str, value: &Value) -> Option<UnknownKey> {
    let (path, why) = match key {
        "psp" if truthy(&value["create"]) => (
            "psp.create".to_string(),
            "PodSecurityPolicy was removed in Kubernetes 1.25, and none is rendered".to_string(),
        ),
        "runAsUser" if value.as_u64() != Some(DEFAULT_RUN_AS_USER) => (
            key.to_string(),
            format!(
                "the container now runs as securityContext.runAsUser ({DEFAULT_RUN_AS_USER} \
                 unless set there), so runAsUser: {} is ignored; set securityContext.runAsUser",
                scalar(value)
            ),
        ),
        _ => return None,
    };
    Some(UnknownKey {
        path,
        top_level: true,
        did_you_mean: None,
        retired: Some(why),
    })
}

/// The key of `known` that `key` most likely misspells: the same but for case, else the
/// nearest within two edits (one for keys of three letters or fewer, where two edits reach
/// unrelated words), the first listed on a tie.
fn near_miss<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (promhpa_rules::edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= if k.chars().count() <= 3 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Parses a values document; an empty file is an empty map.
pub fn parse_values(text: &str) -> Result<Value, DeployError> {
    let value: Value = yaml::from_str(text)?;
    match value {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(value),
        other => Err(DeployError::ValuesNotMapping {
            found: type_name(&other),
        }),
    }
}

/// The release being rendered.
#[derive(Debug, Clone)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub image: Option<String>,
}

/// The rule file an installation runs and the metrics APIs it registers.
#[derive(Debug, Clone)]
pub struct Rules {
    pub config: RuleConfig,
    /// Register `custom.metrics.k8s.io` (v1beta1 and v1beta2).
    pub custom: bool,
    /// Register `external.metrics.k8s.io`.
    pub external: bool,
    /// Register `metrics.k8s.io`.
    pub resource: bool,
    /// What the rule loader reported without refusing the file.
    pub warnings: Vec<String>,
}

/// Where the Deployment reads its rule file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleConfig {
    /// `config.yaml` of the ConfigMap rendered with the release.
    Text(String),
    /// A ConfigMap of the release namespace that is not rendered (`rules.existing`).
    Existing(String),
}

/// The chart's default values (chart 5.x), the base user values are merged over.
pub fn chart_defaults() -> Value {
    let mut values = json!({
        "affinity": {},
        "topologySpreadConstraints": [],
        "nameOverride": "",
        "fullnameOverride": "",
        "image": {"repository": ADAPTER_REPOSITORY, "tag": "", "pullPolicy": "IfNotPresent", "pullSecrets": []},
        "logLevel": 4,
        "metricsRelistInterval": "1m",
        "listenPort": 6443,
        "nodeSelector": {},
        "priorityClassName": "",
        "namespaceOverride": "",
        "customAnnotations": {},
        "customLabels": {},
        "prometheus": {"url": "http://prometheus.default.svc", "port": 9090, "path": ""},
        "replicas": 1,
        "podSecurityContext": {"fsGroup": 10001},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": DEFAULT_RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    });
    let security = json!({
        "rbac": {
            "create": true,
            "useAuthReaderClusterRole": false,
            "externalMetrics": {"resources": ["*"]},
            "customMetrics": {"resources": ["*"]}
        },
        "automountServiceAccountToken": true,
        "serviceAccount": {"create": true, "name": null, "annotations": {}, "automountServiceAccountToken": true},
        "dnsConfig": {},
        "resources": {},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"},
            "initialDelaySeconds": 30,
            "timeoutSeconds": 5
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"},
            "initialDelaySeconds": 30,
            "timeoutSeconds": 5
        },
        "startupProbe": {}
    });
    let rest = json!({
        "rules": {"default": true, "custom": [], "existing": null, "external": []},
        "service": {
            "annotations": {},
            "port": 443,
            "type": "ClusterIP",
            "ipDualStack": {"enabled": false, "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack"}
        },
        "tls": {"enable": false, "ca": "", "key": "", "certificate": ""},
        "env": [],
        "extraArguments": [],
        "extraContainers": [],
        "extraVolumes": [],
        "extraVolumeMounts": [],
        "tolerations": [],
        "podLabels": {},
        "podAnnotations": {},
        "deploymentAnnotations": {},
        "hostNetwork": {"enabled": false},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "podDisruptionBudget": {"enabled": false, "minAvailable": null, "maxUnavailable": 1, "unhealthyPodEvictionPolicy": null},
        "certManager": {"enabled": false, "caCertDuration": "43800h", "certDuration": "8760h"},
        "extraManifests": [],
        "revisionHistoryLimit": 10
    });
    merge_values(&mut values, security);
    merge_values(&mut values, rest);
    values
}

/// The chart's built-in rules (`rules.default: true`), as the rule loader reads them:
/// container metrics per pod, then every other namespaced series, counters as 5-minute rates.
fn default_rules() -> Vec<Value> {
    yaml::from_str(promhpa_rules::HELM_DEFAULT_RULES).unwrap_or_default()
}

/// Merges `over` into `base` as Helm merges values: maps recursively, everything else
/// replaced, and `null` removing a default.
pub fn merge_values(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_values(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn get<'a>(values: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(values, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}

/// Helm's truthiness: false, 0, "", null and empty collections are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A scalar as Helm prints it in a template (`{{ .Values.x }}`).
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or(default)
}

/// Truncates to 63 characters and drops trailing dashes, like the chart's name helpers.
fn dns_name(s: &str) -> String {
    let truncated: String = s.chars().take(63).collect();
    truncated.trim_end_matches('-').to_string()
}

struct Names {
    name: String,
    fullname: String,
    namespace: String,
    service_account: String,
}

fn names(values: &Value, release: &Release) -> Names {
    let name = dns_name(str_or(get(values, "nameOverride"), CHART_NAME));
    let fullname = match get(values, "fullnameOverride")
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(full) => dns_name(full),
        None if release.name.contains(&name) => dns_name(&release.name),
        None => dns_name(&format!("{}-{}", release.name, name)),
    };
    let namespace = str_or(get(values, "namespaceOverride"), &release.namespace).to_string();
    let sa_name = get(values, "serviceAccount.name");
    let service_account = if truthy(get(values, "serviceAccount.create")) {
        str_or(sa_name, &fullname).to_string()
    } else {
        str_or(sa_name, "default").to_string()
    };
    Names {
        name,
        fullname,
        namespace,
        service_account,
    }
}

/// Renders every object, in the order `kubectl apply` should create them: `rules` decide
/// the rule ConfigMap and the metrics APIs, `values` everything else.
pub fn render_with(
    values: &Value,
    release: &Release,
    rules: &Rules,
) -> Result<Vec<Value>, DeployError> {
    let n = names(values, release);
    let selector = json!({
        "app.kubernetes.io/name": n.name,
        "app.kubernetes.io/instance": release.name,
    });
    let mut labels = selector.clone();
    if let Some(map) = labels.as_object_mut() {
        map.insert("app.kubernetes.io/component".into(), "metrics".into());
        map.insert("app.kubernetes.io/part-of".into(), n.name.clone().into());
        map.insert("app.kubernetes.io/managed-by".into(), "promhpa".into());
        map.insert(
            "app.kubernetes.io/version".into(),
            env!("CARGO_PKG_VERSION").into(),
        );
        if let Some(custom) = get(values, "customLabels").as_object() {
            for (k, v) in custom {
                map.insert(k.clone(), Value::String(scalar(v)));
            }
        }
    }
    let custom_annotations = get(values, "customAnnotations").clone();
    let meta = |name: &str, namespace: Option<&str>| {
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        if let Some(ns) = namespace {
            m.insert("namespace".into(), ns.into());
        }
        m.insert("labels".into(), labels.clone());
        if truthy(&custom_annotations) {
            m.insert("annotations".into(), custom_annotations.clone());
        }
        Value::Object(m)
    };
    let ns = Some(n.namespace.as_str());
    let rbac = truthy(get(values, "rbac.create"));
    let (custom, external, resource) = (rules.custom, rules.external, rules.resource);
    let tls = truthy(get(values, "tls.enable"));
    let sa_subject =
        json!([{"kind": "ServiceAccount", "name": n.service_account, "namespace": n.namespace}]);
    let hpa_subject = json!([{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"}]);
    let role_ref = |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    let binding = |kind: &str,
                   name: &str,
                   namespace: Option<&str>,
                   role_kind: &str,
                   role: &str,
                   subjects: &Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": meta(name, namespace),
            "roleRef": role_ref(role_kind, role),
            "subjects": subjects,
        })
    };
    let cluster_role = |name: &str, rules: Value| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(name, None),
            "rules": rules,
        })
    };

    let mut objects = Vec::new();

    if truthy(get(values, "serviceAccount.create")) {
        let mut m = meta(&n.service_account, ns);
        let mut annotations = get(values, "serviceAccount.annotations").clone();
        merge_values(&mut annotations, custom_annotations.clone());
        if truthy(&annotations) {
            m["annotations"] = annotations;
        }
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": m,
            "automountServiceAccountToken": get(values, "serviceAccount.automountServiceAccountToken"),
        }));
    }

    let existing_rules = match &rules.config {
        RuleConfig::Existing(name) => Some(name.as_str()),
        RuleConfig::Text(_) => None,
    };
    let mut config_checksum = String::new();
    if let RuleConfig::Text(config) = &rules.config {
        config_checksum = hex(&Sha256::digest(config.as_bytes()));
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(&n.fullname, ns),
            "data": {"config.yaml": config},
        }));
    }

    if tls {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(&n.fullname, ns),
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64(scalar(get(values, "tls.certificate")).as_bytes()),
                "tls.key": base64(scalar(get(values, "tls.key")).as_bytes()),
            },
        }));
    }

    let cert_manager = truthy(get(values, "certManager.enabled"));
    if cert_manager {
        let root_cert = format!("{}-root-cert", n.fullname);
        let self_signed = format!("{}-self-signed-issuer", n.fullname);
        let root_issuer = format!("{}-root-issuer", n.fullname);
        let cert_manager_object = |kind: &str, name: &str, spec: Value| json!({"apiVersion": "cert-manager.io/v1", "kind": kind, "metadata": meta(name, ns), "spec": spec});
        objects.push(cert_manager_object(
            "Issuer",
            &self_signed,
            json!({"selfSigned": {}}),
        ));
        objects.push(cert_manager_object(
            "Certificate",
            &root_cert,
            with_revision_limit(
                json!({
                    "secretName": root_cert,
                    "duration": get(values, "certManager.caCertDuration"),
                    "issuerRef": {"name": self_signed},
                    "commonName": "ca.webhook.prometheus-adapter",
                    "isCA": true,
                }),
                get(values, "certManager.caCertRevisionHistoryLimit"),
            ),
        ));
        objects.push(cert_manager_object(
            "Issuer",
            &root_issuer,
            json!({"ca": {"secretName": root_cert}}),
        ));
        objects.push(cert_manager_object(
            "Certificate",
            &format!("{}-cert", n.fullname),
            with_revision_limit(
                json!({
                    "secretName": n.fullname,
                    "duration": get(values, "certManager.certDuration"),
                    "issuerRef": {"name": root_issuer},
                    "dnsNames": [
                        n.fullname,
                        format!("{}.{}", n.fullname, n.namespace),
                        format!("{}.{}.svc", n.fullname, n.namespace),
                    ],
                }),
                get(values, "certManager.certRevisionHistoryLimit"),
            ),
        ));
    }

    if rbac {
        // The chart also grants configmaps, which promhpa does not read: its one ConfigMap,
        // kube-system/extension-apiserver-authentication, is the auth reader's.
        objects.push(cluster_role(&format!("{}-resource-reader", n.name), json!([{"apiGroups": [""], "resources": ["namespaces", "pods", "services"], "verbs": ["get", "list", "watch"]}])));
        objects.push(binding(
            "ClusterRoleBinding",
            &format!("{}-resource-reader", n.name),
            None,
            "ClusterRole",
            &format!("{}-resource-reader", n.name),
            &sa_subject,
        ));
        objects.push(binding(
            "ClusterRoleBinding",
            &format!("{}-system-auth-delegator", n.name),
            None,
            "ClusterRole",
            "system:auth-delegator",
            &sa_subject,
        ));
        if truthy(get(values, "rbac.useAuthReaderClusterRole")) {
            objects.push(binding(
                "ClusterRoleBinding",
                &format!("{}-auth-reader", n.name),
                None,
                "ClusterRole",
                "extension-apiserver-authentication-reader",
                &sa_subject,
            ));
        } else {
            objects.push(binding(
                "RoleBinding",
                &format!("{}-auth-reader", n.name),
                Some("kube-system"),
                "Role",
                "extension-apiserver-authentication-reader",
                &sa_subject,
            ));
        }
        if custom {
            let role = format!("{}-server-resources", n.name);
            objects.push(cluster_role(&role, json!([{"apiGroups": ["custom.metrics.k8s.io"], "resources": get(values, "rbac.customMetrics.resources"), "verbs": ["*"]}])));
            objects.push(binding(
                "ClusterRoleBinding",
                &format!("{}-hpa-controller", n.name),
                None,
                "ClusterRole",
                &role,
                &hpa_subject,
            ));
        }
        if external {
            let role = format!("{}-external-metrics", n.name);
            objects.push(cluster_role(&role, json!([{"apiGroups": ["external.metrics.k8s.io"], "resources": get(values, "rbac.externalMetrics.resources"), "verbs": ["list", "get", "watch"]}])));
            objects.push(binding(
                "ClusterRoleBinding",
                &format!("{}-hpa-controller-external-metrics", n.name),
                None,
                "ClusterRole",
                &role,
                &hpa_subject,
            ));
        }
        if resource {
            let role = format!("{}-metrics", n.name);
            // Resource metrics list pods and nodes; the chart's nodes/stats (the kubelet's
            // summary API) is not read.
            objects.push(cluster_role(&role, json!([{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}])));
            objects.push(binding(
                "ClusterRoleBinding",
                &format!("{}-hpa-controller-metrics", n.name),
                None,
                "ClusterRole",
                &role,
                &sa_subject,
            ));
            // Whoever may view, edit or administer a namespace may read its metrics
            // (kubectl top), as with metrics-server; named apart from metrics-server's
            // system:aggregated-metrics-reader, which stays as it is.
            let mut reader = cluster_role(
                &format!("{}-aggregated-metrics-reader", n.name),
                json!([{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]),
            );
            if let Some(labels) = reader["metadata"]["labels"].as_object_mut() {
                for role in ["view", "edit", "admin"] {
                    labels.insert(
                        format!("rbac.authorization.k8s.io/aggregate-to-{role}"),
                        "true".into(),
                    );
                }
            }
            objects.push(reader);
        }
    }

    objects.push(deployment(
        values,
        release,
        &n,
        &meta(&n.fullname, ns),
        &labels,
        &selector,
        existing_rules,
        &config_checksum,
    )?);

    let mut service_meta = meta(&n.fullname, ns);
    let mut service_annotations = get(values, "service.annotations").clone();
    merge_values(&mut service_annotations, custom_annotations.clone());
    if truthy(&service_annotations) {
        service_meta["annotations"] = service_annotations;
    }
    let mut service_spec = json!({
        "ports": [{"port": get(values, "service.port"), "name": "https", "protocol": "TCP", "targetPort": "https"}],
        "selector": selector,
        "type": get(values, "service.type"),
    });
    if truthy(get(values, "service.ipDualStack.enabled")) {
        service_spec["ipFamilies"] = get(values, "service.ipDualStack.ipFamilies").clone();
        service_spec["ipFamilyPolicy"] = get(values, "service.ipDualStack.ipFamilyPolicy").clone();
    }
    if truthy(get(values, "service.clusterIP")) {
        service_spec["clusterIP"] = get(values, "service.clusterIP").clone();
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": service_meta, "spec": service_spec}));

    let api_service = |group: &str, version: &str, priority: u32| {
        let mut service = json!({"name": n.fullname, "namespace": n.namespace});
        // The aggregator connects to 443 unless told: another service port is named.
        let port = get(values, "service.port");
        let port = port
            .as_i64()
            .or_else(|| port.as_str().and_then(|p| p.trim().parse().ok()));
        if let Some(p) = port.filter(|p| *p != 443) {
            service["port"] = p.into();
        }
        let mut spec = json!({
            "service": service,
            "group": group,
            "version": version,
            "groupPriorityMinimum": 100,
            "versionPriority": priority,
        });
        if tls {
            spec["caBundle"] = base64(scalar(get(values, "tls.ca")).as_bytes()).into();
        } else if !cert_manager {
            spec["insecureSkipTLSVerify"] = true.into();
        }
        let mut metadata = meta(&format!("{version}.{group}"), None);
        if cert_manager {
            // cert-manager's CA injector fills caBundle from the root certificate.
            let root = format!("{}/{}-root-cert", n.namespace, n.fullname);
            let mut annotations = json!({
                "certmanager.k8s.io/inject-ca-from": root,
                "cert-manager.io/inject-ca-from": root,
            });
            merge_values(&mut annotations, custom_annotations.clone());
            metadata["annotations"] = annotations;
        }
        json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": metadata,
            "spec": spec,
        })
    };
    if custom {
        objects.push(api_service("custom.metrics.k8s.io", "v1beta1", 100));
        objects.push(api_service("custom.metrics.k8s.io", "v1beta2", 200));
    }
    if external {
        objects.push(api_service("external.metrics.k8s.io", "v1beta1", 100));
    }
    if resource {
        objects.push(api_service("metrics.k8s.io", "v1beta1", 100));
    }

    if truthy(get(values, "podDisruptionBudget.enabled")) {
        let mut spec = Map::new();
        for key in [
            "minAvailable",
            "maxUnavailable",
            "unhealthyPodEvictionPolicy",
        ] {
            let v = get(values, &format!("podDisruptionBudget.{key}"));
            if truthy(v) {
                spec.insert(key.into(), v.clone());
            }
        }
        // The API server refuses a budget with both (the chart renders both when
        // minAvailable is set over its default maxUnavailable: 1); minAvailable is the one
        // set on purpose. pdb_warning says so.
        if spec.contains_key("minAvailable") {
            spec.remove("maxUnavailable");
        }
        spec.insert("selector".into(), json!({"matchLabels": selector}));
        objects.push(json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(&n.fullname, ns),
            "spec": spec,
        }));
    }

    if let Some(extra) = get(values, "extraManifests").as_array() {
        for (i, manifest) in extra.iter().enumerate() {
            let object = match manifest {
                // A template is named before YAML trips over it.
                Value::String(text) if text.contains("{{") => {
                    return Err(DeployError::ExtraManifestTemplate {
                        index: i,
                        at: "(the text)".into(),
                    })
                }
                Value::String(text) => yaml::from_str(text)
                    .map_err(|cause| DeployError::ExtraManifestYaml { index: i, cause })?,
                other => other.clone(),
            };
            if !object.is_object() {
                return Err(DeployError::ExtraManifestNotObject {
                    index: i,
                    found: type_name(&object),
                });
            }
            // The chart renders these through `tpl`; promhpa has no Helm template engine,
            // and an object with `{{ ... }}` left in it would be refused when applied.
            if let Some(at) = template_in(&object, String::new()) {
                return Err(DeployError::ExtraManifestTemplate { index: i, at });
            }
            objects.push(in_release_namespace(object, &release.namespace));
        }
    }
    Ok(objects)
}

/// Kinds whose objects have no namespace, of Kubernetes and of the add-ons most often
/// installed beside the adapter.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeSnapshotClass",
];

/// An extra manifest as Helm applies it: an object of a namespaced kind that names no
/// namespace goes to the release's, not to whichever namespace `kubectl apply` would pick
/// from its context. (A namespace on an object of a cluster-scoped kind the list above
/// misses is dropped by the API server.)
fn in_release_namespace(mut object: Value, namespace: &str) -> Value {
    let cluster_scoped = object["kind"]
        .as_str()
        .is_some_and(|kind| CLUSTER_SCOPED_KINDS.contains(&kind));
    // A List's items are objects of their own; Helm applies each.
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = in_release_namespace(item.take(), namespace);
        }
        return object;
    }
    if !cluster_scoped {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let unset = meta
                .get("namespace")
                .is_none_or(|ns| ns.is_null() || ns.as_str() == Some(""));
            if unset {
                meta.insert("namespace".into(), namespace.into());
            }
        }
    }
    object
}

/// `spec` of a cert-manager Certificate with `revisionHistoryLimit` when `limit` is set,
/// as the chart writes it.
fn with_revision_limit(mut spec: Value, limit: &Value) -> Value {
    // As the chart's `if`: 0 or empty leaves it out.
    if truthy(limit) {
        spec["revisionHistoryLimit"] = limit.clone();
    }
    spec
}

/// Where in `v` a string holds a Helm template action (`{{ .Release.Name }}`).
fn template_in(v: &Value, at: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains("{{") => Some(if at.is_empty() {
            "(the object)".into()
        } else {
            at
        }),
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            template_in(
                v,
                if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                },
            )
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| template_in(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

/// The rule file the chart writes into its ConfigMap: default and custom rules, external
/// rules and resource rules.
fn rule_config(values: &Value) -> Result<String, DeployError> {
    let mut config = Map::new();
    let mut rules = Vec::new();
    if truthy(get(values, "rules.default")) {
        rules.extend(default_rules());
    }
    if let Some(custom) = get(values, "rules.custom").as_array() {
        rules.extend(custom.iter().cloned());
    } else if truthy(get(values, "rules.custom")) {
        return Err(DeployError::CustomRulesNotList);
    }
    if !rules.is_empty() {
        config.insert("rules".into(), Value::Array(rules));
    }
    let external = get(values, "rules.external");
    if truthy(external) {
        if !external.is_array() {
            return Err(DeployError::ExternalRulesNotList);
        }
        config.insert("externalRules".into(), external.clone());
    }
    let resource = get(values, "rules.resource");
    if truthy(resource) {
        config.insert("resourceRules".into(), resource.clone());
    }
    yaml::to_string(&Value::Object(config)).map_err(DeployError::SerialiseRuleFile)
}

/// The Prometheus URL the Deployment passes, joined from `prometheus.url`, `port` and `path`
/// as the chart joins them.
fn prometheus_url(values: &Value) -> Result<String, DeployError> {
    let mut url = scalar(get(values, "prometheus.url"));
    if url.contains("{{") {
        return Err(DeployError::PrometheusUrlTemplate { url });
    }
    let port = get(values, "prometheus.port");
    if truthy(port) {
        url.push(':');
        url.push_str(&scalar(port));
    }
    url.push_str(&scalar(get(values, "prometheus.path")));
    Ok(url)
}

/// The rules of the chart's values, as the chart's ConfigMap template writes them, after
/// checking that they load and serve at least one metrics API.
pub fn chart_rules(values: &Value) -> Result<Rules, DeployError> {
    let custom = truthy(get(values, "rules.default")) || truthy(get(values, "rules.custom"));
    let external = truthy(get(values, "rules.external"));
    let resource = truthy(get(values, "rules.resource"));
    if let Some(existing) = get(values, "rules.existing")
        .as_str()
        .filter(|s| !s.is_empty())
    {
        return Ok(Rules {
            config: RuleConfig::Existing(existing.to_string()),
            custom,
            external,
            resource,
            warnings: Vec::new(),
        });
    }
    if !(custom || external || resource) {
        return Err(DeployError::NoRules);
    }
    let text = rule_config(values)?;
    let origin = "the rule file rendered from the values";
    let set = RuleSet::from_yaml(&text, origin)
        .map_err(|cause| DeployError::ValuesRulesDoNotLoad { cause })?;
    if working_rules(&set) == (0, 0, false) {
        return Err(nothing_served(origin.to_string(), &set));
    }
    Ok(Rules {
        config: RuleConfig::Text(text),
        custom,
        external,
        resource,
        warnings: loader_reports(&set),
    })
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    values: &Value,
    release: &Release,
    n: &Names,
    metadata: &Value,
    labels: &Value,
    selector: &Value,
    existing_rules: Option<&str>,
    config_checksum: &str,
) -> Result<Value, DeployError> {
    let mut metadata = metadata.clone();
    let mut annotations = get(values, "customAnnotations").clone();
    merge_values(
        &mut annotations,
        get(values, "deploymentAnnotations").clone(),
    );
    if truthy(&annotations) {
        metadata["annotations"] = annotations;
    }
    // The serving certificate comes from the chart's Secret or from cert-manager.
    let tls = truthy(get(values, "tls.enable")) || truthy(get(values, "certManager.enabled"));
    let port = get(values, "listenPort");

    let mut args = vec![format!("--secure-port={}", scalar(port))];
    if tls {
        args.push("--tls-cert-file=/var/run/serving-cert/tls.crt".into());
        args.push("--tls-private-key-file=/var/run/serving-cert/tls.key".into());
    }
    args.push("--cert-dir=/tmp/cert".into());
    args.push(format!("--prometheus-url={}", prometheus_url(values)?));
    args.push(format!(
        "--metrics-relist-interval={}",
        scalar(get(values, "metricsRelistInterval"))
    ));
    args.push(format!("--v={}", scalar(get(values, "logLevel"))));
    args.push("--config=/etc/adapter/config.yaml".into());
    if let Some(extra) = get(values, "extraArguments").as_array() {
        args.extend(extra.iter().map(scalar));
    }

    let (image, _) = container_image(values, release);

    let mut container = json!({
        "name": CHART_NAME,
        "image": image,
        "imagePullPolicy": get(values, "image.pullPolicy"),
        "args": args,
        "ports": [{"containerPort": port, "name": "https"}],
    });
    for (key, value_key) in [
        ("env", "env"),
        ("livenessProbe", "livenessProbe"),
        ("readinessProbe", "readinessProbe"),
        ("startupProbe", "startupProbe"),
        ("resources", "resources"),
        ("securityContext", "securityContext"),
    ] {
        let v = get(values, value_key);
        if truthy(v) {
            container[key] = v.clone();
        }
    }
    let mut mounts: Vec<Value> = get(values, "extraVolumeMounts")
        .as_array()
        .cloned()
        .unwrap_or_default();
    mounts.push(json!({"mountPath": "/etc/adapter/", "name": "config", "readOnly": true}));
    mounts.push(json!({"mountPath": "/tmp", "name": "tmp"}));
    if tls {
        mounts.push(json!({"mountPath": "/var/run/serving-cert", "name": "volume-serving-cert", "readOnly": true}));
    }
    container["volumeMounts"] = Value::Array(mounts);

    let mut containers = vec![container];
    if let Some(extra) = get(values, "extraContainers").as_array() {
        containers.extend(extra.iter().cloned());
    }

    let mut volumes: Vec<Value> = get(values, "extraVolumes")
        .as_array()
        .cloned()
        .unwrap_or_default();
    volumes.push(
        json!({"name": "config", "configMap": {"name": existing_rules.unwrap_or(&n.fullname)}}),
    );
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    if tls {
        volumes.push(json!({"name": "volume-serving-cert", "secret": {"secretName": n.fullname}}));
    }

    let mut pod_labels = labels.clone();
    merge_values(&mut pod_labels, get(values, "podLabels").clone());
    let mut pod_annotations = Map::new();
    if !config_checksum.is_empty() {
        pod_annotations.insert("checksum/config".into(), config_checksum.into());
    }
    for key in ["podAnnotations", "customAnnotations"] {
        if let Some(map) = get(values, key).as_object() {
            pod_annotations.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    let mut pod_spec = json!({
        "automountServiceAccountToken": get(values, "automountServiceAccountToken"),
        "serviceAccountName": n.service_account,
        "containers": containers,
        "nodeSelector": get(values, "nodeSelector"),
        "affinity": get(values, "affinity"),
        "topologySpreadConstraints": get(values, "topologySpreadConstraints"),
        "tolerations": get(values, "tolerations"),
        "volumes": volumes,
    });
    if truthy(get(values, "hostNetwork.enabled")) {
        pod_spec["hostNetwork"] = true.into();
    }
    for key in ["dnsPolicy", "dnsConfig", "priorityClassName"] {
        let v = get(values, key);
        if truthy(v) {
            pod_spec[key] = v.clone();
        }
    }
    if truthy(get(values, "podSecurityContext")) {
        pod_spec["securityContext"] = get(values, "podSecurityContext").clone();
    }
    if let Some(secrets) = get(values, "image.pullSecrets")
        .as_array()
        .filter(|s| !s.is_empty())
    {
        pod_spec["imagePullSecrets"] = secrets
            .iter()
            .map(|s| match s {
                Value::Object(_) => s.clone(),
                other => json!({"name": scalar(other)}),
            })
            .collect();
    }

    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": get(values, "replicas"),
            "revisionHistoryLimit": get(values, "revisionHistoryLimit"),
            "strategy": get(values, "strategy"),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }))
}

/// Whether an image repository is prometheus-adapter's under any registry or mirror: its
/// last path segment is `prometheus-adapter` (registry.k8s.io, k8s.gcr.io, a proxy's copy) or
/// starts with `k8s-prometheus-adapter` (the images of directxman12 and quay.io/coreos).
fn is_adapter_repository(repository: &str) -> bool {
    let last = repository.rsplit('/').next().unwrap_or(repository);
    // A tag or digest written into the repository does not change what it names.
    let last = last.split(['@', ':']).next().unwrap_or(last);
    last == CHART_NAME || last.starts_with("k8s-prometheus-adapter")
}

/// The image the Deployment runs, and a warning when the values named another: `--image`
/// wins; prometheus-adapter's repository (wherever it is mirrored) gives promhpa's released
/// image, its tag dropped; any other repository is kept, with its tag or promhpa's version.
fn container_image(values: &Value, release: &Release) -> (String, Option<String>) {
    if let Some(image) = &release.image {
        return (image.clone(), None);
    }
    let version = env!("CARGO_PKG_VERSION");
    let repository = scalar(get(values, "image.repository"));
    let tag = scalar(get(values, "image.tag"));
    if repository.is_empty() || is_adapter_repository(&repository) {
        let image = format!("{DEFAULT_IMAGE_REPOSITORY}:{version}");
        let chart_default = repository.is_empty() || repository == ADAPTER_REPOSITORY;
        if chart_default && tag.is_empty() {
            // The chart's default image: the switch this command is for.
            return (image, None);
        }
        let given = match (repository.is_empty(), tag.is_empty()) {
            (true, _) => format!("(no repository, tag {tag})"),
            (false, true) => repository,
            (false, false) => format!("{repository}:{tag}"),
        };
        let dropped = if tag.is_empty() {
            String::new()
        } else {
            format!(" (image.tag {tag} is dropped)")
        };
        let warning = format!(
            "the values' image {given} is prometheus-adapter's, not promhpa's: the \
             Deployment runs {image} instead{dropped}; pass --image to run promhpa's image \
             from a mirror or another registry"
        );
        return (image, Some(warning));
    }
    let image = if tag.is_empty() {
        format!("{repository}:{version}")
    } else {
        format!("{repository}:{tag}")
    };
    (image, None)
}

/// Objects as one YAML stream, `---` between documents.
pub fn to_yaml_stream(objects: &[Value]) -> Result<String, DeployError> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&yaml::to_string(object).map_err(DeployError::SerialiseManifest)?);
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding, as Helm's `b64enc`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Renders Helm values as the chart does.
    fn render(values: &Value, release: &Release) -> Result<Vec<Value>, DeployError> {
        render_with(values, release, &chart_rules(values)?)
    }

    /// `e` and its causes, `: `-separated, as the binary prints an error.
    fn chain(e: &DeployError) -> String {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    fn release(namespace: &str) -> Release {
        Release {
            name: "prometheus-adapter".into(),
            namespace: namespace.into(),
            image: None,
        }
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {kind} {name} in {}",
                    kinds_and_names(objects).join(", ")
                )
            })
    }

    fn kinds_and_names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", scalar(&o["kind"]), scalar(&o["metadata"]["name"])))
            .collect()
    }

    fn args_of(deployment: &Value) -> Vec<String> {
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .map(|a| a.iter().map(scalar).collect())
            .unwrap_or_default()
    }

    fn config_of(configmap: &Value) -> Value {
        let text = configmap["data"]["config.yaml"]
            .as_str()
            .unwrap_or_default();
        yaml::from_str(text).unwrap_or_else(|e| panic!("config.yaml: {e}"))
    }

    /// The prometheus-adapter values block of the first seed (a TLS Prometheus with its CA
    /// in a ConfigMap and an external rule).
    fn seed_values() -> Value {
        let shared = promhpa_test_support::shared_dir().unwrap_or_else(|e| panic!("{e}"));
        let seed = fs::read_dir(shared.join("seeds"))
            .unwrap_or_else(|e| panic!("seeds: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("000_"))
            })
            .unwrap_or_else(|| panic!("no seed 000_*.txt in {}", shared.display()));
        let text = fs::read_to_string(&seed).unwrap_or_else(|e| panic!("{e}"));
        let section = text
            .split("### Prometheus Adapter Values")
            .nth(1)
            .unwrap_or_else(|| panic!("no values section in {}", seed.display()));
        let block = section
            .split("```yaml")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap_or_else(|| panic!("no yaml block in {}", seed.display()));
        parse_values(block).unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    #[test]
    fn chart_default_values_render_the_charts_objects() {
        let objects = render(&chart_defaults(), &release("monitoring"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let mut got: Vec<String> = kinds_and_names(&objects);
        got.sort();
        let mut want = vec![
            "APIService/v1beta1.custom.metrics.k8s.io",
            "APIService/v1beta2.custom.metrics.k8s.io",
            "ClusterRole/prometheus-adapter-resource-reader",
            "ClusterRole/prometheus-adapter-server-resources",
            "ClusterRoleBinding/prometheus-adapter-hpa-controller",
            "ClusterRoleBinding/prometheus-adapter-resource-reader",
            "ClusterRoleBinding/prometheus-adapter-system-auth-delegator",
            "ConfigMap/prometheus-adapter",
            "Deployment/prometheus-adapter",
            "RoleBinding/prometheus-adapter-auth-reader",
            "Service/prometheus-adapter",
            "ServiceAccount/prometheus-adapter",
        ];
        want.sort();
        assert_eq!(got, want);

        let deployment = find(&objects, "Deployment", "prometheus-adapter");
        assert_eq!(deployment["metadata"]["namespace"], "monitoring");
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"],
            json!({"app.kubernetes.io/name": "prometheus-adapter", "app.kubernetes.io/instance": "prometheus-adapter"})
        );
        assert_eq!(
            args_of(deployment),
            vec![
                "--secure-port=6443",
                "--cert-dir=/tmp/cert",
                "--prometheus-url=http://prometheus.default.svc:9090",
                "--metrics-relist-interval=1m",
                "--v=4",
                "--config=/etc/adapter/config.yaml",
            ]
        );
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            format!("ghcr.io/promhpa/promhpa:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
            true
        );
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "prometheus-adapter");
        let config = config_of(find(&objects, "ConfigMap", "prometheus-adapter"));
        let rules = config["rules"].as_array().map(Vec::len);
        assert_eq!(rules, Some(6), "the chart's six default rules");
        assert_eq!(
            config["rules"][1]["seriesFilters"][0]["isNot"],
            "^container_.*_seconds_total$"
        );
        assert!(config.get("externalRules").is_none());
        let checksum =
            &deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"];
        assert_eq!(checksum.as_str().map(str::len), Some(64));

        let reader = find(&objects, "RoleBinding", "prometheus-adapter-auth-reader");
        assert_eq!(reader["metadata"]["namespace"], "kube-system");
        assert_eq!(
            reader["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "prometheus-adapter", "namespace": "monitoring"})
        );
        let hpa = find(
            &objects,
            "ClusterRoleBinding",
            "prometheus-adapter-hpa-controller",
        );
        assert_eq!(hpa["subjects"][0]["name"], "horizontal-pod-autoscaler");
        let api = find(&objects, "APIService", "v1beta1.custom.metrics.k8s.io");
        assert_eq!(
            api["spec"]["service"],
            json!({"name": "prometheus-adapter", "namespace": "monitoring"})
        );
        assert_eq!(api["spec"]["insecureSkipTLSVerify"], true);
    }

    #[test]
    fn seed_values_render_tls_prometheus_and_external_rules() {
        let mut values = chart_defaults();
        merge_values(&mut values, seed_values());
        let objects = render(&values, &release("inferno-autoscaler-monitoring"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let deployment = find(&objects, "Deployment", "prometheus-adapter");
        assert_eq!(deployment["spec"]["replicas"], 2);
        let args = args_of(deployment);
        assert!(args.contains(&"--prometheus-url=https://kube-prometheus-stack-prometheus.inferno-autoscaler-monitoring.svc.cluster.local:9090".to_string()), "{args:?}");
        assert_eq!(
            args.last().map(String::as_str),
            Some("--prometheus-ca-file=/etc/prometheus-ca/ca.crt")
        );
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0],
            json!({"name": "prometheus-ca", "configMap": {"name": "prometheus-ca"}})
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            "/etc/prometheus-ca"
        );
        let config = config_of(find(&objects, "ConfigMap", "prometheus-adapter"));
        assert_eq!(
            config["externalRules"][0]["seriesQuery"],
            r#"inferno_desired_replicas{variant_name!="",exported_namespace!=""}"#
        );
        assert_eq!(
            config["externalRules"][0]["resources"]["overrides"]["variant_name"]["resource"],
            "deployment"
        );
        find(&objects, "APIService", "v1beta1.external.metrics.k8s.io");
        let ext = find(
            &objects,
            "ClusterRoleBinding",
            "prometheus-adapter-hpa-controller-external-metrics",
        );
        assert_eq!(
            ext["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"})
        );
        // The rendered stream is valid YAML, one document per object.
        let stream = to_yaml_stream(&objects).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let documents = yaml::documents::<Value>(&stream);
        assert!(documents.iter().all(Result::is_ok), "{documents:?}");
        assert_eq!(documents.len(), objects.len());
    }

    #[test]
    fn values_switch_objects_on_and_off() {
        let mut values = chart_defaults();
        let user = parse_values(
            r#"
fullnameOverride: metrics
rules:
  default: false
  existing: my-rules
  resource:
    cpu: {containerQuery: "x", nodeQuery: "y", resources: {template: "<<.Resource>>"}}
tls: {enable: true, ca: "CA", certificate: "CERT", key: "KEY"}
podDisruptionBudget: {enabled: true, minAvailable: 1, maxUnavailable: null}
customLabels: {team: platform}
image: {repository: registry.example.com/promhpa, tag: "1.2.3", pullSecrets: [regcred]}
extraManifests:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: extra}
"#,
        )
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
        merge_values(&mut values, user);
        let objects =
            render(&values, &release("default")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let names = kinds_and_names(&objects);
        assert!(
            !names.iter().any(|n| n == "ConfigMap/metrics"),
            "existing rules: no ConfigMap"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("APIService/v1beta1.custom")),
            "{names:?}"
        );
        find(&objects, "APIService", "v1beta1.metrics.k8s.io");
        find(&objects, "ConfigMap", "extra");
        let secret = find(&objects, "Secret", "metrics");
        assert_eq!(secret["data"]["tls.crt"], "Q0VSVA==");
        let api = find(&objects, "APIService", "v1beta1.metrics.k8s.io");
        assert_eq!(api["spec"]["caBundle"], "Q0E=");
        assert!(api["spec"].get("insecureSkipTLSVerify").is_none());
        let pdb = find(&objects, "PodDisruptionBudget", "metrics");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert!(pdb["spec"].get("maxUnavailable").is_none());
        let deployment = find(&objects, "Deployment", "metrics");
        assert_eq!(deployment["metadata"]["labels"]["team"], "platform");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.example.com/promhpa:1.2.3"
        );
        assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "my-rules");
        assert!(args_of(deployment)
            .contains(&"--tls-cert-file=/var/run/serving-cert/tls.crt".to_string()));

        let mut cm = chart_defaults();
        merge_values(&mut cm, json!({"certManager": {"enabled": true}}));
        let objects =
            render(&cm, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let cert = find(&objects, "Certificate", "prometheus-adapter-cert");
        assert_eq!(cert["spec"]["secretName"], "prometheus-adapter");
        assert_eq!(
            cert["spec"]["dnsNames"][2],
            "prometheus-adapter.monitoring.svc"
        );
        find(&objects, "Issuer", "prometheus-adapter-root-issuer");
        let api = find(&objects, "APIService", "v1beta1.custom.metrics.k8s.io");
        assert_eq!(
            api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "monitoring/prometheus-adapter-root-cert"
        );
        assert!(api["spec"].get("insecureSkipTLSVerify").is_none());
        let deployment = find(&objects, "Deployment", "prometheus-adapter");
        assert!(args_of(deployment)
            .contains(&"--tls-cert-file=/var/run/serving-cert/tls.crt".to_string()));
        assert!(!kinds_and_names(&objects).contains(&"Secret/prometheus-adapter".to_string()));
    }

    /// Compiles a rendered rule file with promhpa's own rule loader.
    fn compile_rules(text: &str, name: &str) -> promhpa_rules::RuleSet {
        promhpa_rules::RuleSet::from_yaml(text, name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn rendered_and_shipped_rule_files_compile() {
        let objects = render(&chart_defaults(), &release("default"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let cm = find(&objects, "ConfigMap", "prometheus-adapter");
        let rules = compile_rules(
            cm["data"]["config.yaml"].as_str().unwrap_or_default(),
            "chart defaults",
        );
        assert_eq!((rules.custom.len(), rules.external.len()), (6, 0));

        let mut values = chart_defaults();
        merge_values(&mut values, seed_values());
        let objects =
            render(&values, &release("default")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let cm = find(&objects, "ConfigMap", "prometheus-adapter");
        let rules = compile_rules(
            cm["data"]["config.yaml"].as_str().unwrap_or_default(),
            "seed values",
        );
        assert_eq!((rules.custom.len(), rules.external.len()), (6, 1));

        // The kustomize ConfigMaps are the rule files of rules/ (kustomize cannot read files
        // outside its directory, so they are copies that must not drift).
        for (file, source) in [
            ("base/config.yaml", "generic-application.yaml"),
            (
                "overlays/tls-prometheus/config.yaml",
                "seed-inferno-desired-replicas.yaml",
            ),
            (
                "overlays/resource-metrics/config.yaml",
                "resource-metrics.yaml",
            ),
        ] {
            let text = fs::read_to_string(deploy_dir().join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let original = fs::read_to_string(deploy_dir().join("../rules").join(source))
                .unwrap_or_else(|e| panic!("{source}: {e}"));
            assert!(
                text == original,
                "deploy/{file} differs from rules/{source}: cp rules/{source} deploy/{file}"
            );
            let rules = compile_rules(&text, file);
            assert!(
                rules.rules().count() > 0 || rules.resource.is_some(),
                "{file} has rules"
            );
        }
    }

    /// An adapter config with a comment, a custom and an external rule.
    const ADAPTER_CONFIG: &str = r#"# requests per second, per pod
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'   # from the broker's exporter
  resources: {namespaced: false}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
"#;

    /// resourceRules only, as kube-prometheus ships them.
    const RESOURCE_CONFIG: &str = r#"resourceRules:
  cpu:
    containerQuery: 'sum(rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>,container!=""}[5m])) by (<<.GroupBy>>)'
    nodeQuery: 'sum(rate(node_cpu_seconds_total{mode!="idle",<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  memory:
    containerQuery: 'sum(container_memory_working_set_bytes{<<.LabelMatchers>>,container!=""}) by (<<.GroupBy>>)'
    nodeQuery: 'sum(node_memory_MemTotal_bytes{<<.LabelMatchers>>} - node_memory_MemAvailable_bytes{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
    resources:
      overrides:
        node: {resource: node}
        namespace: {resource: namespace}
        pod: {resource: pod}
    containerLabel: container
  window: 5m
"#;

    /// `text` as the `config.yaml` of a ConfigMap manifest, after a Namespace document.
    fn configmap_manifest(text: &str) -> String {
        let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: custom-metrics}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adapter-config\n  \
             namespace: custom-metrics\ndata:\n  config.yaml: |\n{indented}"
        )
    }

    fn rule_file_of(input: Input) -> RuleFile {
        match input {
            Input::Rules(file) => file,
            Input::Values(v) => panic!("read as Helm values: {v}"),
        }
    }

    fn values_of(input: Input) -> Value {
        match input {
            Input::Values(v) => v,
            Input::Rules(file) => panic!("read as a rule file: {}", file.origin),
        }
    }

    fn api_services(objects: &[Value]) -> Vec<String> {
        let mut names: Vec<String> = by_kind(objects, "APIService")
            .iter()
            .map(|o| scalar(&o["metadata"]["name"]))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn adapter_config_is_installed_as_written() {
        let input =
            read_input(ADAPTER_CONFIG, "adapter.yaml").unwrap_or_else(|e| panic!("{}", chain(&e)));
        let file = rule_file_of(input);
        assert_eq!((file.custom, file.external, file.resource), (1, 1, false));
        assert_eq!(file.origin, "adapter.yaml (prometheus-adapter config)");
        let objects = render_with(&chart_defaults(), &release("monitoring"), &file.rules())
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let cm = find(&objects, "ConfigMap", "prometheus-adapter");
        assert_eq!(cm["metadata"]["namespace"], "monitoring");
        assert_eq!(cm["data"]["config.yaml"], ADAPTER_CONFIG, "byte for byte");
        assert_eq!(
            api_services(&objects),
            [
                "v1beta1.custom.metrics.k8s.io",
                "v1beta1.external.metrics.k8s.io",
                "v1beta2.custom.metrics.k8s.io"
            ]
        );
        find(
            &objects,
            "ClusterRoleBinding",
            "prometheus-adapter-hpa-controller-external-metrics",
        );
        let deployment = find(&objects, "Deployment", "prometheus-adapter");
        let args = args_of(deployment);
        assert!(args.contains(&"--config=/etc/adapter/config.yaml".to_string()));
        assert!(args.contains(&"--prometheus-url=http://prometheus.default.svc:9090".to_string()));
        assert_eq!(
            deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            "prometheus-adapter"
        );
        // The YAML stream carries the text unchanged too.
        let stream = to_yaml_stream(&objects).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let reread: Vec<Value> = yaml::documents(&stream)
            .into_iter()
            .map(|doc| doc.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let cm = find(&reread, "ConfigMap", "prometheus-adapter");
        assert_eq!(cm["data"]["config.yaml"], ADAPTER_CONFIG);

        // External rules alone register only the external API.
        let external_only = "externalRules:\n- seriesQuery: 'queue_depth{queue!=\"\"}'\n  resources: {namespaced: false}\n  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'\n";
        let file = rule_file_of(
            read_input(external_only, "external.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))),
        );
        let objects = render_with(&chart_defaults(), &release("default"), &file.rules())
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert_eq!(api_services(&objects), ["v1beta1.external.metrics.k8s.io"]);
        assert!(!kinds_and_names(&objects)
            .contains(&"ClusterRole/prometheus-adapter-server-resources".to_string()));
    }

    #[test]
    fn configmap_manifest_installs_its_config_yaml() {
        let manifest = configmap_manifest(RESOURCE_CONFIG);
        let file = rule_file_of(
            read_input(&manifest, "cm.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))),
        );
        assert_eq!((file.custom, file.external, file.resource), (0, 0, true));
        assert!(
            file.origin
                .contains("ConfigMap custom-metrics/adapter-config"),
            "{}",
            file.origin
        );
        assert_eq!(file.text, RESOURCE_CONFIG);
        let mut values = chart_defaults();
        merge_values(&mut values, json!({"fullnameOverride": "promhpa"}));
        let objects = render_with(&values, &release("monitoring"), &file.rules())
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        // The rendered ConfigMap, not the input one, is what the Deployment mounts.
        let cm = find(&objects, "ConfigMap", "promhpa");
        assert_eq!(cm["metadata"]["namespace"], "monitoring");
        assert_eq!(cm["data"]["config.yaml"], RESOURCE_CONFIG);
        assert!(!kinds_and_names(&objects).contains(&"ConfigMap/adapter-config".to_string()));
        assert_eq!(api_services(&objects), ["v1beta1.metrics.k8s.io"]);
        find(
            &objects,
            "ClusterRoleBinding",
            "prometheus-adapter-hpa-controller-metrics",
        );
        let rules = compile_rules(&scalar(&cm["data"]["config.yaml"]), "rendered");
        assert!(rules.resource.is_some());

        // A quoted (non-block) config.yaml reads the same.
        let quoted = format!(
            "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: c}}\ndata:\n  config.yaml: {}\n",
            serde_json::to_string(ADAPTER_CONFIG).unwrap_or_default()
        );
        let file =
            rule_file_of(read_input(&quoted, "q.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))));
        assert_eq!(file.text, ADAPTER_CONFIG);
        assert_eq!((file.custom, file.external), (1, 1));
    }

    #[test]
    fn configmap_holding_helm_values_renders_them_as_the_chart_does() {
        let values = "prometheus:\n  url: http://prom.monitoring.svc\n  port: 9091\nrules:\n  default: false\n  custom:\n  - seriesQuery: 'jobs_pending{namespace!=\"\"}'\n    resources: {template: <<.Resource>>}\n    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n";
        let user = values_of(
            read_input(&configmap_manifest(values), "cm.yaml")
                .unwrap_or_else(|e| panic!("{}", chain(&e))),
        );
        let mut merged = chart_defaults();
        merge_values(&mut merged, user);
        let objects =
            render(&merged, &release("default")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let args = args_of(find(&objects, "Deployment", "prometheus-adapter"));
        assert!(args.contains(&"--prometheus-url=http://prom.monitoring.svc:9091".to_string()));
        let config = config_of(find(&objects, "ConfigMap", "prometheus-adapter"));
        assert_eq!(config["rules"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            api_services(&objects),
            [
                "v1beta1.custom.metrics.k8s.io",
                "v1beta2.custom.metrics.k8s.io"
            ]
        );
    }

    #[test]
    fn helm_values_keep_the_charts_logic() {
        let text = "replicas: 3\nrules:\n  external:\n  - seriesQuery: 'queue_depth{queue!=\"\"}'\n    resources: {namespaced: false}\n    metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'\n  resource: {}\n";
        let user =
            values_of(read_input(text, "values.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))));
        let mut values = chart_defaults();
        merge_values(&mut values, user);
        let objects =
            render(&values, &release("default")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        // Default rules stay on; an empty `resource` section is an absent one.
        assert_eq!(
            api_services(&objects),
            [
                "v1beta1.custom.metrics.k8s.io",
                "v1beta1.external.metrics.k8s.io",
                "v1beta2.custom.metrics.k8s.io"
            ]
        );
        assert_eq!(
            find(&objects, "Deployment", "prometheus-adapter")["spec"]["replicas"],
            3
        );
        let config = config_of(find(&objects, "ConfigMap", "prometheus-adapter"));
        assert_eq!(config["rules"].as_array().map(Vec::len), Some(6));
        assert!(config.get("resourceRules").is_none());

        // Values without rules, empty ones and an umbrella chart's section are values too.
        for text in ["tls: {enable: false}\n", "", "{}\n"] {
            values_of(
                read_input(text, "v.yaml").unwrap_or_else(|e| panic!("{text:?}: {}", chain(&e))),
            );
        }
        let umbrella = "prometheus-adapter:\n  replicas: 2\n  prometheus: {url: http://p}\ngrafana: {enabled: true}\n";
        let section =
            values_of(read_input(umbrella, "u.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))));
        assert_eq!(
            section,
            json!({"replicas": 2, "prometheus": {"url": "http://p"}})
        );
    }

    #[test]
    fn broken_rules_are_installed_but_register_no_api() {
        // The custom rule has no metricsQuery: the adapter loads it and fails its requests.
        let text = "rules:\n- seriesQuery: 'jobs{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\nexternalRules:\n- seriesQuery: 'queue_depth{queue!=\"\"}'\n  resources: {namespaced: false}\n  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'\n";
        let file =
            rule_file_of(read_input(text, "b.yaml").unwrap_or_else(|e| panic!("{}", chain(&e))));
        assert_eq!((file.custom, file.external, file.resource), (0, 1, false));
        assert!(
            file.warnings
                .iter()
                .any(|w| w.contains("rules[0].metricsQuery")),
            "{:?}",
            file.warnings
        );
        let objects = render_with(&chart_defaults(), &release("default"), &file.rules())
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert_eq!(api_services(&objects), ["v1beta1.external.metrics.k8s.io"]);
        assert_eq!(
            find(&objects, "ConfigMap", "prometheus-adapter")["data"]["config.yaml"],
            text
        );

        let only_broken = "rules:\n- seriesQuery: 'jobs{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n";
        let message = refused(only_broken);
        assert!(message.contains("every rule"), "{message}");
        assert!(message.contains("metricsQuery"), "{message}");
    }

    fn refused(text: &str) -> String {
        match read_input(text, "in.yaml") {
            Ok(input) => panic!("accepted {text:?} as {input:?}"),
            Err(e) => chain(&e),
        }
    }

    #[test]
    fn inputs_that_cannot_be_installed_are_refused() {
        let empty_rules = refused("rules: []\nexternalRules: []\n");
        assert!(empty_rules.contains("has no rules"), "{empty_rules}");
        let empty_configmap = refused(&configmap_manifest("rules: []\n"));
        assert!(
            empty_configmap.contains("has no rules"),
            "{empty_configmap}"
        );
        let unknown = refused("rules:\n- seriesQuerry: 'up'\n  metricsQuery: 'up'\n");
        assert!(unknown.contains("seriesQuerry"), "{unknown}");
        assert!(unknown.contains("do not load"), "{unknown}");
        let broken = refused("rules:\n- seriesQuery: 'up\n  metricsQuery: up\n");
        assert!(broken.contains("in.yaml"), "{broken}");
        let no_config = refused(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {other.yaml: x}\n",
        );
        assert!(no_config.contains("config.yaml"), "{no_config}");
        let foreign = refused("grafana: {enabled: true}\nloki: {}\n");
        assert!(foreign.contains("none of its keys"), "{foreign}");
        let misspelt = refused("replica: 2\nlogLevl: 5\n");
        assert!(
            misspelt.contains(
                "(logLevl (did you mean \"logLevel\"?), replica (did you mean \"replicas\"?))"
            ),
            "{misspelt}"
        );

        let mut values = chart_defaults();
        merge_values(&mut values, json!({"rules": {"default": false}}));
        match chart_rules(&values) {
            Ok(rules) => panic!("values without rules accepted: {rules:?}"),
            Err(e) => assert!(e.to_string().contains("no rules"), "{e}"),
        }
        // rules.existing names a ConfigMap this cannot see: rendered as the chart does.
        merge_values(
            &mut values,
            json!({"rules": {"existing": "mine", "custom": [{"seriesQuery": "x"}]}}),
        );
        let rules = chart_rules(&values).unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert_eq!(rules.config, RuleConfig::Existing("mine".into()));
    }

    #[test]
    fn errors_name_each_cause_once() {
        let once = |text: &str, needle: &str| {
            assert_eq!(text.matches(needle).count(), 1, "{needle:?} in {text}");
        };
        let multidoc = refused("rules:\n  default: true\n---\nreplicas: 2\n");
        assert!(
            multidoc.starts_with("values file in.yaml: parsing YAML: multiple YAML documents"),
            "{multidoc}"
        );
        once(&multidoc, "multiple YAML documents");
        let metadata = refused(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, name: y}\ndata:\n  config.yaml: |\n    rules: []\n",
        );
        assert!(
            metadata.starts_with(
                "in.yaml: reading the ConfigMap's config.yaml: parsing YAML: duplicate mapping key"
            ),
            "{metadata}"
        );
        once(&metadata, "duplicate mapping key");
        let inner_values = refused(&configmap_manifest(
            "rules:\n  default: true\nreplicas: 2\nreplicas: 3\n",
        ));
        assert!(
            inner_values.starts_with(
                "in.yaml: the Helm values in the ConfigMap's config.yaml: parsing YAML: duplicate \
                 mapping key"
            ),
            "{inner_values}"
        );
        once(&inner_values, "duplicate mapping key");

        // Messages that hold the loader's errors have no source to print again.
        let loader = match read_input(
            "rules:\n- seriesQuerry: up\n  metricsQuery: up\n",
            "in.yaml",
        ) {
            Ok(input) => panic!("accepted {input:?}"),
            Err(e) => e,
        };
        assert!(std::error::Error::source(&loader).is_none());
        let text = chain(&loader);
        once(&text, "unknown field \"seriesQuerry\"");
        assert!(
            text.ends_with("\nin.yaml: 2 errors: its rules do not load, so it cannot be installed"),
            "{text}"
        );
        let mut values = chart_defaults();
        merge_values(
            &mut values,
            json!({"rules": {"default": false, "custom": [{"seriesQuerry": "up"}]}}),
        );
        let rendered = match chart_rules(&values) {
            Ok(rules) => panic!("accepted {rules:?}"),
            Err(e) => e,
        };
        assert!(std::error::Error::source(&rendered).is_none());
        let text = chain(&rendered);
        assert!(
            text.starts_with("the rules of the values do not load:\n"),
            "{text}"
        );
        once(&text, "unknown field \"seriesQuerry\"");

        let render_values = |extra: Value| {
            let mut values = chart_defaults();
            merge_values(&mut values, json!({"extraManifests": [extra]}));
            match render(&values, &release("default")) {
                Ok(objects) => panic!("rendered {objects:?}"),
                Err(e) => chain(&e),
            }
        };
        let extra = render_values(json!("a: [1"));
        assert!(
            extra.starts_with("extraManifests[0]: parsing YAML: unclosed bracket"),
            "{extra}"
        );
        assert_eq!(
            render_values(json!(3)),
            "extraManifests[0] must be an object, found a number"
        );
        match parse_values("- a\n") {
            Ok(v) => panic!("accepted {v:?}"),
            Err(e) => assert_eq!(chain(&e), "values must be a mapping, found a list"),
        }
    }

    #[test]
    fn extra_manifests_without_a_namespace_go_to_the_release_s_as_helm_puts_them() {
        let mut values = chart_defaults();
        merge_values(
            &mut values,
            json!({"namespaceOverride": "adapter", "extraManifests": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "placed", "namespace": "elsewhere"}},
                "{apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, metadata: {name: text, namespace: ''}}",
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "wide"}},
                {"apiVersion": "v1", "kind": "List", "items": [
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "listed"}},
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "made"}}
                ]}
            ]}),
        );
        let objects =
            render(&values, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let namespace_of =
            |kind: &str, name: &str| find(&objects, kind, name)["metadata"]["namespace"].clone();
        // The release's namespace, as `helm install -n monitoring` applies them, not the
        // chart's namespaceOverride, which its own templates use.
        assert_eq!(namespace_of("ConfigMap", "plain"), "monitoring");
        assert_eq!(namespace_of("ServiceMonitor", "text"), "monitoring");
        assert_eq!(namespace_of("Secret", "placed"), "elsewhere");
        assert_eq!(namespace_of("ClusterRole", "wide"), Value::Null);
        let list = objects
            .iter()
            .find(|o| o["kind"] == "List")
            .unwrap_or_else(|| panic!("no List in {objects:?}"));
        assert_eq!(list["items"][0]["metadata"]["namespace"], "monitoring");
        assert_eq!(list["items"][1]["metadata"]["namespace"], Value::Null);
    }

    /// Chart values promhpa cannot render as the chart would are refused or carried over:
    /// an extra manifest with a Helm template, a service port other than 443 (the
    /// APIServices name it), cert-manager's revision history limits.
    #[test]
    fn templates_ports_and_revision_limits() {
        let mut values = chart_defaults();
        merge_values(
            &mut values,
            json!({"extraManifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-extra"}}]}),
        );
        let e = render(&values, &release("monitoring"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("extraManifests[0].metadata.name uses a Helm template, which promhpa manifests does not evaluate; write the value out")
        );
        let mut values = chart_defaults();
        merge_values(
            &mut values,
            json!({"service": {"port": 8443}, "certManager": {"enabled": true, "caCertRevisionHistoryLimit": 3, "certRevisionHistoryLimit": 2}}),
        );
        let objects =
            render(&values, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let api = find(&objects, "APIService", "v1beta1.custom.metrics.k8s.io");
        assert_eq!(api["spec"]["service"]["port"], 8443);
        let cert = find(&objects, "Certificate", "prometheus-adapter-cert");
        assert_eq!(cert["spec"]["revisionHistoryLimit"], 2);
        let root = find(&objects, "Certificate", "prometheus-adapter-root-cert");
        assert_eq!(root["spec"]["revisionHistoryLimit"], 3);
        let defaults = render(&chart_defaults(), &release("monitoring"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let api = find(&defaults, "APIService", "v1beta1.custom.metrics.k8s.io");
        assert!(api["spec"]["service"].get("port").is_none(), "{api}");
    }
    /// The dotted paths `unknown_keys` gives for a values text, with the key each is
    /// taken for.
    fn unknown_of(text: &str) -> Vec<(String, Option<String>)> {
        let values = parse_values(text).unwrap_or_else(|e| panic!("{}", chain(&e)));
        unknown_keys(&values)
            .into_iter()
            .map(|key| (key.path, key.did_you_mean))
            .collect()
    }

    fn unknown(path: &str, did_you_mean: Option<&str>) -> (String, Option<String>) {
        (path.to_string(), did_you_mean.map(String::from))
    }

    #[test]
    fn unknown_top_level_keys_are_reported() {
        assert_eq!(
            unknown_of("replicas: 2\nreplica: 3\ndnsPolicy: ClusterFirst\nprometheus: {url: x}\n"),
            vec![unknown("replica", Some("replicas"))]
        );
        assert_eq!(
            unknown_of("LogLevel: 6\nnodeSelectors: {}\npsps: {create: true}\n"),
            vec![
                unknown("LogLevel", Some("logLevel")),
                unknown("nodeSelectors", Some("nodeSelector")),
                unknown("psps", None),
            ]
        );
        assert_eq!(unknown_keys(&seed_values()), Vec::<UnknownKey>::new());
        assert!(parse_values("- a\n- b\n").is_err());
    }

    #[test]
    fn keys_of_earlier_chart_versions_are_named_as_such_when_they_ask_for_something() {
        let warnings = |text: &str| -> Vec<String> {
            let values = parse_values(text).unwrap_or_else(|e| panic!("{}", chain(&e)));
            unknown_keys(&values)
                .iter()
                .map(|key| key.warning("old.yaml"))
                .collect()
        };
        // What the chart's earlier defaults said asks for nothing that is lost.
        assert_eq!(
            warnings("psp: {create: false}\nrunAsUser: 10001\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            warnings("psp: {create: true}\nrunAsUser: 1000\n"),
            vec![
                "old.yaml: \"psp.create\" is a value of earlier versions of the prometheus-adapter \
                 chart; PodSecurityPolicy was removed in Kubernetes 1.25, and none is rendered"
                    .to_string(),
                "old.yaml: \"runAsUser\" is a value of earlier versions of the prometheus-adapter \
                 chart; the container now runs as securityContext.runAsUser (10001 unless set \
                 there), so runAsUser: 1000 is ignored; set securityContext.runAsUser"
                    .to_string(),
            ]
        );
        // Not taken for another chart's values because they are its only keys.
        let values = values_input(
            parse_values("psp: {create: true}\n").unwrap_or_else(|e| panic!("{}", chain(&e))),
            "old.yaml",
        );
        assert!(matches!(values, Ok(Input::Values(_))));
    }

    #[test]
    fn unknown_nested_keys_are_reported_with_their_path() {
        let text = "\
service:
  nodePort: 30443
  loadBalancerIP: 10.0.0.1
  ipDualStack: {enabled: true, ipFamilyPolcy: SingleStack}
image: {digest: 'sha256:0123'}
prometheus:
  url: https://prometheus.monitoring.svc
  tls: {insecureSkipVerify: true}
rbac: {foo: bar, customMetrics: {resource: [pods]}}
tls: {enabled: true}
certManager: {enable: true}
podDisruptionBudget: {enabled: true, minAvaliable: 1}
hostNetwork: {Enabled: true}
";
        // Each with its dotted path, in the order of the keys (as a values file is read).
        assert_eq!(
            unknown_of(text),
            vec![
                unknown("certManager.enable", Some("certManager.enabled")),
                unknown("hostNetwork.Enabled", Some("hostNetwork.enabled")),
                unknown("image.digest", None),
                unknown(
                    "podDisruptionBudget.minAvaliable",
                    Some("podDisruptionBudget.minAvailable")
                ),
                unknown("prometheus.tls", None),
                unknown(
                    "rbac.customMetrics.resource",
                    Some("rbac.customMetrics.resources")
                ),
                unknown("rbac.foo", None),
                unknown(
                    "service.ipDualStack.ipFamilyPolcy",
                    Some("service.ipDualStack.ipFamilyPolicy")
                ),
                unknown("service.loadBalancerIP", None),
                unknown("service.nodePort", None),
                unknown("tls.enabled", Some("tls.enable")),
            ]
        );

        // manifests warns about each, once.
        let rendered = install(text, None);
        let warned: Vec<&String> = rendered
            .warnings
            .iter()
            .filter(|w| w.contains("is not a value of the prometheus-adapter chart"))
            .collect();
        assert_eq!(warned.len(), 11, "{warned:#?}");
        for warning in [
            "values.yaml: \"service.nodePort\" is not a value of the prometheus-adapter chart; ignored",
            "values.yaml: \"tls.enabled\" is not a value of the prometheus-adapter chart; \
             ignored (did you mean \"tls.enable\"?)",
        ] {
            assert!(warned.iter().any(|w| *w == warning), "{warning}\n{warned:#?}");
        }
        let top = install("replicas: 1\nreplica: 2\n", None);
        assert!(
            top.warnings.contains(
                &"values.yaml: \"replica\" is not a value of the prometheus-adapter chart; \
                  ignored (did you mean \"replicas\"?)"
                    .to_string()
            ),
            "{:#?}",
            top.warnings
        );
    }

    #[test]
    fn keys_the_templates_read_or_pass_through_are_not_reported() {
        // Read by the templates though the chart's values.yaml does not set them.
        let read = "\
dnsPolicy: ClusterFirstWithHostNet
service: {clusterIP: None}
rules:
  resource:
    cpu: {containerQuery: x, nodeQuery: y, resources: {overrides: {}}, containerLabel: container}
    window: 3m
    anything: {at: all}
certManager: {caCertRevisionHistoryLimit: 2, certRevisionHistoryLimit: 3}
podDisruptionBudget: {unhealthyPodEvictionPolicy: AlwaysAllow}
";
        assert_eq!(unknown_of(read), vec![]);
        // Handed whole to toYaml: any key is the user's business.
        let free = "\
resources: {limits: {cpu: 1, example.com/gpu: 1}, whatever: {}}
affinity: {podAntiAffinity: {anyKey: [1]}}
nodeSelector: {kubernetes.io/os: linux, pool: metrics}
securityContext: {privileged: false, made: up}
podSecurityContext: {fsGroup: 1, sysctls: []}
livenessProbe: {grpc: {port: 1}, made: up}
readinessProbe: {exec: {command: [true]}}
startupProbe: {failureThreshold: 30, periodSeconds: 10}
strategy: {type: Recreate, rollingUpdate: null, extra: 1}
customAnnotations: {a/b: c}
customLabels: {team: x}
podAnnotations: {prometheus.io/scrape: 'true'}
podLabels: {tier: metrics}
deploymentAnnotations: {reloader.stakater.com/auto: 'true'}
dnsConfig: {options: [{name: ndots, value: '2'}], made: up}
serviceAccount: {annotations: {eks.amazonaws.com/role-arn: arn}}
service: {annotations: {any.thing/goes: here}}
rbac: {customMetrics: {resources: [pods, {made: up}]}}
image: {pullSecrets: [{name: regcred, made: up}]}
extraManifests: [{apiVersion: v1, kind: ConfigMap, anything: 1}]
";
        assert_eq!(unknown_of(free), vec![]);
        // A structured value given as something else than a map has no keys to check.
        assert_eq!(unknown_of("tls: true\nservice: []\n"), vec![]);
    }

    #[test]
    fn the_charts_default_values_are_all_known() {
        assert_eq!(unknown_keys(&chart_defaults()), Vec::<UnknownKey>::new());
        // Keys the chart's values.yaml sets to nothing, which chart_defaults leaves out.
        let mut values = chart_defaults();
        for path in [
            "serviceAccount.name",
            "rules.existing",
            "podDisruptionBudget.minAvailable",
            "podDisruptionBudget.unhealthyPodEvictionPolicy",
            "certManager.caCertRevisionHistoryLimit",
            "certManager.certRevisionHistoryLimit",
        ] {
            let (map, key) = path
                .split_once('.')
                .unwrap_or_else(|| panic!("{path} has no map"));
            values[map][key] = Value::Null;
        }
        assert_eq!(unknown_keys(&values), Vec::<UnknownKey>::new());
        // Every structured map is named by its parent, and its parent is structured.
        for (path, _) in CHART_KEYS.iter().filter(|(path, _)| !path.is_empty()) {
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
            let parents = chart_keys(parent).unwrap_or_else(|| panic!("{path}: no {parent:?}"));
            assert!(parents.contains(&key), "{path}");
        }
    }

    #[test]
    fn edit_distance_counts_swaps_as_one_edit() {
        use promhpa_rules::edit_distance;
        assert_eq!(edit_distance("minAvaliable", "minAvailable"), 1);
        assert_eq!(edit_distance("enabled", "enable"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "AB"), 0);
        assert_eq!(near_miss("TLS", &["tls", "tl"]), Some("tls"));
        assert_eq!(near_miss("crt", &["ca", "key"]), None);
        assert_eq!(near_miss("prot", &["port", "path"]), Some("port"));
    }

    /// Renders one Helm values file as `manifests --helm-values` does, with `image` as
    /// `--image`.
    fn install(values: &str, image: Option<&str>) -> Rendered {
        let input = InputFile {
            source: "values.yaml".into(),
            text: values.into(),
            given: Given::HelmValues,
        };
        let release = Release {
            image: image.map(String::from),
            ..release("monitoring")
        };
        render_installation(&[input], release, None).unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    /// The image of the rendered Deployment.
    fn image_of(rendered: &Rendered) -> String {
        let objects: Vec<Value> = yaml::documents(&rendered.yaml)
            .into_iter()
            .map(|doc| doc.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let deployment = find(&objects, "Deployment", "prometheus-adapter");
        scalar(&deployment["spec"]["template"]["spec"]["containers"][0]["image"])
    }

    #[test]
    fn adapter_images_anywhere_give_promhpas_image_with_a_warning() {
        let promhpa = format!("ghcr.io/promhpa/promhpa:{}", env!("CARGO_PKG_VERSION"));
        let image_warnings = |r: &Rendered| -> Vec<String> {
            r.warnings
                .iter()
                .filter(|w| w.contains("prometheus-adapter's, not promhpa's"))
                .cloned()
                .collect()
        };
        // The chart's default repository, no tag: the expected switch, nothing to say.
        let plain = install("replicas: 1\n", None);
        assert_eq!(image_of(&plain), promhpa);
        assert_eq!(image_warnings(&plain), Vec::<String>::new());

        for repository in [
            "harbor.corp/proxy/prometheus-adapter/prometheus-adapter",
            "k8s.gcr.io/prometheus-adapter/prometheus-adapter",
            "directxman12/k8s-prometheus-adapter-amd64",
            "quay.io/coreos/k8s-prometheus-adapter-amd64",
            "registry.local:5000/prometheus-adapter",
        ] {
            let rendered = install(&format!("image: {{repository: {repository}}}\n"), None);
            assert_eq!(image_of(&rendered), promhpa, "{repository}");
            let warnings = image_warnings(&rendered);
            assert_eq!(warnings.len(), 1, "{repository}: {:?}", rendered.warnings);
            assert!(warnings[0].contains(repository), "{}", warnings[0]);
            assert!(warnings[0].contains(&promhpa), "{}", warnings[0]);
            assert!(warnings[0].contains("--image"), "{}", warnings[0]);
            assert!(!warnings[0].contains("dropped"), "{}", warnings[0]);
        }

        // A tag given with the adapter's repository is dropped, and said to be.
        let tagged = install("image: {tag: v0.11.2}\n", None);
        assert_eq!(image_of(&tagged), promhpa);
        let warnings = image_warnings(&tagged);
        assert_eq!(warnings.len(), 1, "{:?}", tagged.warnings);
        assert!(
            warnings[0].contains("registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.11.2"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("image.tag v0.11.2 is dropped"),
            "{}",
            warnings[0]
        );
        let mirrored = install(
            "image: {repository: harbor.corp/proxy/prometheus-adapter/prometheus-adapter, tag: v0.12.0}\n",
            None,
        );
        assert_eq!(image_of(&mirrored), promhpa);
        let warnings = image_warnings(&mirrored);
        assert!(
            warnings[0].contains("harbor.corp/proxy/prometheus-adapter/prometheus-adapter:v0.12.0")
                && warnings[0].contains("image.tag v0.12.0 is dropped"),
            "{warnings:?}"
        );

        // --image wins without a word; other repositories are kept as they are.
        let chosen = install(
            "image: {repository: directxman12/k8s-prometheus-adapter-amd64, tag: v0.5.0}\n",
            Some("harbor.corp/mirror/promhpa:1.0"),
        );
        assert_eq!(image_of(&chosen), "harbor.corp/mirror/promhpa:1.0");
        assert_eq!(image_warnings(&chosen), Vec::<String>::new());
        for (values, want) in [
            (
                "image: {repository: harbor.corp/mirror/promhpa, tag: \"1.0\"}\n",
                "harbor.corp/mirror/promhpa:1.0".to_string(),
            ),
            (
                "image: {repository: example.com/prometheus-adapter-fork/server}\n",
                format!(
                    "example.com/prometheus-adapter-fork/server:{}",
                    env!("CARGO_PKG_VERSION")
                ),
            ),
        ] {
            let kept = install(values, None);
            assert_eq!(image_of(&kept), want);
            assert_eq!(image_warnings(&kept), Vec::<String>::new());
        }
    }

    #[test]
    fn helm_values_note_how_to_take_the_release_from_helm() {
        let rendered = install("replicas: 2\n", None);
        let note = rendered
            .notes
            .iter()
            .find(|n| n.contains("owner=helm"))
            .unwrap_or_else(|| panic!("no note on the Helm release: {:?}", rendered.notes));
        assert!(
            note.contains(
                "kubectl -n monitoring delete secret -l owner=helm,name=prometheus-adapter"
            ),
            "{note}"
        );
        assert!(
            note.contains("HelmRelease") && note.contains("Argo CD"),
            "{note}"
        );
        assert!(rendered.yaml.starts_with("# "), "{}", rendered.yaml);
        assert!(rendered.yaml.contains(&format!("# {note}\n")));

        // A rule file alone is no Helm release.
        let config = InputFile {
            source: "config.yaml".into(),
            text: "rules:\n- seriesQuery: 'up{namespace!=\"\",pod!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n".into(),
            given: Given::Config,
        };
        let rendered = render_installation(&[config], release("monitoring"), None)
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert!(
            !rendered.notes.iter().any(|n| n.contains("owner=helm")),
            "{:?}",
            rendered.notes
        );
        assert!(!rendered.yaml.contains("owner=helm"));
    }

    /// The chart's defaults with `rules.resource` set, so metrics.k8s.io is registered.
    fn values_with_resource_rules() -> Value {
        let mut values = chart_defaults();
        merge_values(
            &mut values,
            json!({"rules": {"resource": {
                "cpu": {"containerQuery": "x", "nodeQuery": "y", "resources": {"template": "<<.Resource>>"}, "containerLabel": "container"},
                "memory": {"containerQuery": "x", "nodeQuery": "y", "resources": {"template": "<<.Resource>>"}, "containerLabel": "container"},
                "window": "3m"
            }}}),
        );
        values
    }

    #[test]
    fn rbac_grants_only_what_promhpa_reads() {
        let values = values_with_resource_rules();
        let objects =
            render(&values, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let reader = find(
            &objects,
            "ClusterRole",
            "prometheus-adapter-resource-reader",
        );
        assert_eq!(
            reader["rules"],
            json!([{"apiGroups": [""], "resources": ["namespaces", "pods", "services"], "verbs": ["get", "list", "watch"]}])
        );
        let metrics = find(&objects, "ClusterRole", "prometheus-adapter-metrics");
        assert_eq!(
            metrics["rules"],
            json!([{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}])
        );
        // Nothing rendered grants either anywhere.
        let stream = to_yaml_stream(&objects).unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert!(!stream.contains("configmaps"), "{stream}");
        assert!(!stream.contains("nodes/stats"), "{stream}");
        // The authentication ConfigMap is read through the auth reader's binding.
        let auth = find(&objects, "RoleBinding", "prometheus-adapter-auth-reader");
        assert_eq!(
            auth["roleRef"]["name"],
            "extension-apiserver-authentication-reader"
        );
    }

    #[test]
    fn resource_metrics_are_readable_by_viewers_as_with_metrics_server() {
        let reader_name = "prometheus-adapter-aggregated-metrics-reader";
        let defaults = render(&chart_defaults(), &release("monitoring"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert!(
            !kinds_and_names(&defaults).contains(&format!("ClusterRole/{reader_name}")),
            "no metrics.k8s.io, no reader"
        );

        // From Helm values' rules.resource.
        let mut values = values_with_resource_rules();
        let objects =
            render(&values, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        find(&objects, "APIService", "v1beta1.metrics.k8s.io");
        let reader = find(&objects, "ClusterRole", reader_name);
        let labels = &reader["metadata"]["labels"];
        for role in ["view", "edit", "admin"] {
            assert_eq!(
                labels[format!("rbac.authorization.k8s.io/aggregate-to-{role}")],
                "true",
                "{reader}"
            );
        }
        assert_eq!(labels["app.kubernetes.io/managed-by"], "promhpa");

        // The same role as deploy/overlays/resource-metrics grants.
        let overlay = kustomize(&deploy_dir().join("overlays/resource-metrics"));
        let shipped = find(&overlay, "ClusterRole", "promhpa-aggregated-metrics-reader");
        assert_eq!(reader["rules"], shipped["rules"]);
        for role in ["view", "edit", "admin"] {
            let key = format!("rbac.authorization.k8s.io/aggregate-to-{role}");
            assert_eq!(labels[&key], shipped["metadata"]["labels"][&key], "{key}");
        }

        // From an adapter config's resourceRules.
        let config = InputFile {
            source: "config.yaml".into(),
            text: fs::read_to_string(deploy_dir().join("overlays/resource-metrics/config.yaml"))
                .unwrap_or_else(|e| panic!("{e}")),
            given: Given::Config,
        };
        let rendered = render_installation(&[config], release("monitoring"), None)
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let objects: Vec<Value> = yaml::documents(&rendered.yaml)
            .into_iter()
            .map(|doc| doc.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        find(&objects, "APIService", "v1beta1.metrics.k8s.io");
        find(&objects, "ClusterRole", reader_name);

        // rbac.create: false renders no RBAC at all.
        merge_values(&mut values, json!({"rbac": {"create": false}}));
        let objects =
            render(&values, &release("monitoring")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        assert!(!kinds_and_names(&objects).contains(&format!("ClusterRole/{reader_name}")));
    }

    #[test]
    fn a_disruption_budget_never_gets_both_bounds() {
        let pdb_of = |r: &Rendered| -> Value {
            let objects: Vec<Value> = yaml::documents(&r.yaml)
                .into_iter()
                .map(|doc| doc.unwrap_or_else(|e| panic!("{e}")))
                .collect();
            find(&objects, "PodDisruptionBudget", "prometheus-adapter")["spec"].clone()
        };
        let said = |r: &Rendered| {
            r.warnings
                .iter()
                .filter(|w| w.contains("podDisruptionBudget"))
                .count()
        };
        // minAvailable over the chart's default maxUnavailable: 1.
        let rendered = install(
            "podDisruptionBudget: {enabled: true, minAvailable: 1}\n",
            None,
        );
        let spec = pdb_of(&rendered);
        assert_eq!(spec["minAvailable"], 1);
        assert!(spec.get("maxUnavailable").is_none(), "{spec}");
        assert_eq!(said(&rendered), 1, "{:?}", rendered.warnings);
        let warning = rendered
            .warnings
            .iter()
            .find(|w| w.contains("podDisruptionBudget"))
            .cloned()
            .unwrap_or_default();
        assert!(warning.contains("maxUnavailable: null"), "{warning}");

        // Said so in the values: nothing to warn about.
        let rendered = install(
            "podDisruptionBudget: {enabled: true, minAvailable: \"50%\", maxUnavailable: null}\n",
            None,
        );
        assert_eq!(pdb_of(&rendered)["minAvailable"], "50%");
        assert_eq!(said(&rendered), 0, "{:?}", rendered.warnings);
        // The chart's default alone.
        let rendered = install("podDisruptionBudget: {enabled: true}\n", None);
        assert_eq!(pdb_of(&rendered)["maxUnavailable"], 1);
        assert!(pdb_of(&rendered).get("minAvailable").is_none());
        assert_eq!(said(&rendered), 0, "{:?}", rendered.warnings);
        // Disabled: no budget, no warning.
        let rendered = install("podDisruptionBudget: {minAvailable: 1}\n", None);
        assert!(!rendered.yaml.contains("PodDisruptionBudget"));
        assert_eq!(said(&rendered), 0, "{:?}", rendered.warnings);
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar\xff"), "Zm9vYmFy/w==");
    }

    fn kustomize(dir: &Path) -> Vec<Value> {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("running kubectl kustomize: {e}"));
        assert!(
            out.status.success(),
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        yaml::documents(&text)
            .into_iter()
            .map(|doc| doc.unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn deploy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
    }

    fn by_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
        objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    #[test]
    fn kustomize_base_renders_an_aggregated_api_server() {
        let objects = kustomize(&deploy_dir());
        let kinds: BTreeSet<String> = objects.iter().map(|o| scalar(&o["kind"])).collect();
        for kind in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "RoleBinding",
            "APIService",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ConfigMap",
        ] {
            assert!(kinds.contains(kind), "missing {kind}");
        }
        let apis: BTreeSet<String> = by_kind(&objects, "APIService")
            .iter()
            .map(|o| scalar(&o["metadata"]["name"]))
            .collect();
        assert_eq!(
            apis,
            [
                "v1beta1.custom.metrics.k8s.io",
                "v1beta1.external.metrics.k8s.io",
                "v1beta2.custom.metrics.k8s.io"
            ]
            .into_iter()
            .map(String::from)
            .collect()
        );
        for api in by_kind(&objects, "APIService") {
            assert_eq!(api["spec"]["service"]["name"], "promhpa");
            assert_eq!(api["spec"]["service"]["namespace"], "promhpa");
        }
        let bindings = by_kind(&objects, "ClusterRoleBinding");
        let delegator = bindings
            .iter()
            .find(|b| b["roleRef"]["name"] == "system:auth-delegator");
        assert!(delegator.is_some_and(|b| b["subjects"][0]["name"] == "promhpa"));
        let hpa = bindings
            .iter()
            .find(|b| b["subjects"][0]["name"] == "horizontal-pod-autoscaler");
        let hpa = hpa.unwrap_or_else(|| panic!("no binding for the HPA controller"));
        assert_eq!(hpa["subjects"][0]["namespace"], "kube-system");
        let role = by_kind(&objects, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == hpa["roleRef"]["name"])
            .unwrap_or_else(|| panic!("HPA role missing"));
        let groups: BTreeSet<String> = role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["apiGroups"].as_array().cloned().unwrap_or_default())
            .map(|g| scalar(&g))
            .collect();
        assert!(
            groups.contains("custom.metrics.k8s.io") && groups.contains("external.metrics.k8s.io")
        );
        let reader = by_kind(&objects, "RoleBinding");
        assert_eq!(reader[0]["metadata"]["namespace"], "kube-system");
        assert_eq!(
            reader[0]["roleRef"]["name"],
            "extension-apiserver-authentication-reader"
        );

        let deployment = by_kind(&objects, "Deployment")[0];
        assert_eq!(deployment["spec"]["replicas"], 2);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert!(container["resources"]["requests"]["cpu"].is_string());
        assert!(container["resources"]["requests"]["memory"].is_string());
        // Readiness on /healthz, as the chart: not on metric discovery, which a Prometheus
        // down at start would hold up, taking the APIServices down with it.
        let probes: BTreeSet<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
            .iter()
            .map(|p| scalar(&container[*p]["httpGet"]["path"]))
            .collect();
        assert_eq!(
            probes,
            ["/healthz", "/livez"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        let args = args_of(deployment);
        for flag in [
            "--secure-port=",
            "--prometheus-url=",
            "--config=/etc/adapter/config.yaml",
            "--cert-dir=",
        ] {
            assert!(
                args.iter().any(|a| a.starts_with(flag)),
                "{flag} in {args:?}"
            );
        }
        // The generated rules ConfigMap is the one the Deployment mounts, and holds rules.
        let config_name = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "config")
            .map(|v| scalar(&v["configMap"]["name"]))
            .unwrap_or_default();
        let cm = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == config_name.as_str())
            .unwrap_or_else(|| panic!("ConfigMap {config_name} not rendered"));
        assert!(config_of(cm)["rules"]
            .as_array()
            .is_some_and(|r| !r.is_empty()));
        let pdb = by_kind(&objects, "PodDisruptionBudget")[0];
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            deployment["spec"]["selector"]["matchLabels"]
        );
        let svc = by_kind(&objects, "Service")[0];
        assert_eq!(
            svc["spec"]["selector"],
            deployment["spec"]["selector"]["matchLabels"]
        );
    }

    #[test]
    fn kustomize_resource_metrics_overlay_registers_metrics_k8s_io() {
        let objects = kustomize(&deploy_dir().join("overlays/resource-metrics"));
        let apis: BTreeSet<String> = by_kind(&objects, "APIService")
            .iter()
            .map(|o| scalar(&o["metadata"]["name"]))
            .collect();
        assert!(apis.contains("v1beta1.metrics.k8s.io"), "{apis:?}");
        let reader = objects
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRole"
                    && o["metadata"]["name"] == "promhpa-aggregated-metrics-reader"
            })
            .unwrap_or_else(|| panic!("no aggregated reader role"));
        assert_eq!(
            reader["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
            "true"
        );
        assert_eq!(reader["rules"][0]["apiGroups"][0], "metrics.k8s.io");
        let config = by_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|c| scalar(&c["metadata"]["name"]).starts_with("promhpa-config"))
            .unwrap_or_else(|| panic!("no rule ConfigMap"));
        let rules = compile_rules(&scalar(&config["data"]["config.yaml"]), "overlay");
        assert!(rules.resource.is_some());
    }

    #[test]
    fn kustomize_tls_overlay_passes_the_prometheus_ca() {
        let objects = kustomize(&deploy_dir().join("overlays/tls-prometheus"));
        let deployment = by_kind(&objects, "Deployment")[0];
        let args = args_of(deployment);
        assert!(
            args.contains(&"--prometheus-ca-file=/etc/prometheus-ca/ca.crt".to_string()),
            "{args:?}"
        );
        let pod = &deployment["spec"]["template"]["spec"];
        let url = pod["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "PROMETHEUS_URL")
            .map(|e| scalar(&e["value"]))
            .unwrap_or_default();
        assert!(url.starts_with("https://"), "{url}");
        let ca_name = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "prometheus-ca")
            .map(|v| scalar(&v["configMap"]["name"]))
            .unwrap_or_default();
        let ca = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == ca_name.as_str())
            .unwrap_or_else(|| panic!("CA ConfigMap {ca_name} not rendered"));
        assert!(scalar(&ca["data"]["ca.crt"]).starts_with("-----BEGIN CERTIFICATE-----"));
        let mounted = pod["containers"][0]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["name"] == "prometheus-ca" && m["mountPath"] == "/etc/prometheus-ca");
        assert!(mounted);
        let config_name = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "config")
            .map(|v| scalar(&v["configMap"]["name"]))
            .unwrap_or_default();
        let cm = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == config_name.as_str())
            .unwrap_or_else(|| panic!("rules ConfigMap {config_name} not rendered"));
        assert_eq!(
            config_of(cm)["externalRules"][0]["name"]["as"],
            "inferno_desired_replicas"
        );
    }

    #[test]
    fn manifests_render_the_same_kinds_as_the_kustomize_base() {
        let base = kustomize(&deploy_dir());
        let mut values = chart_defaults();
        merge_values(&mut values, seed_values());
        merge_values(
            &mut values,
            json!({"podDisruptionBudget": {"enabled": true}}),
        );
        let rendered =
            render(&values, &release("promhpa")).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let kinds = |objects: &[Value]| -> BTreeSet<String> {
            objects
                .iter()
                .map(|o| scalar(&o["kind"]))
                .filter(|k| k != "Namespace")
                .collect()
        };
        assert_eq!(kinds(&rendered), kinds(&base));
        let apis = |objects: &[Value]| -> BTreeSet<String> {
            by_kind(objects, "APIService")
                .iter()
                .map(|o| scalar(&o["metadata"]["name"]))
                .collect()
        };
        assert_eq!(apis(&rendered), apis(&base));
    }
}
