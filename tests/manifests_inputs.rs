//! `promhpa manifests` run as a user runs it, on every input `promhpa check` accepts: the
//! real rule files of `../shared/compat/files` and small files of each shape. The output is
//! read back by a real `kubectl kustomize` (which needs no cluster) and checked object by
//! object.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use promhpa_rules::{FileShape, RuleSet};
use serde_json::Value;

fn promhpa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn compat_dir() -> PathBuf {
    promhpa_test_support::shared_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join("compat/files")
}

/// The objects as `kubectl kustomize` reads and writes them back.
fn through_kubectl(manifests: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("manifests.yaml"), manifests).unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n- manifests.yaml\n",
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("running kubectl kustomize: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize refuses the manifests: {}",
        stderr(&out)
    );
    promhpa_core::yaml::documents(&stdout(&out))
        .into_iter()
        .map(|doc| doc.unwrap())
        .collect()
}

fn by_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

fn api_services(objects: &[Value]) -> BTreeSet<String> {
    by_kind(objects, "APIService")
        .iter()
        .map(|o| text(&o["metadata"]["name"]))
        .collect()
}

/// The one Deployment, its container args and the `config.yaml` of the ConfigMap it mounts.
fn deployment_and_config(objects: &[Value]) -> (Vec<String>, String) {
    let deployments = by_kind(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    let deployment = deployments[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let args: Vec<String> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let config_map = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .map(|v| text(&v["configMap"]["name"]))
        .unwrap();
    let namespace = &deployment["metadata"]["namespace"];
    let cm = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"] == config_map.as_str()
                && o["metadata"]["namespace"] == *namespace
        })
        .unwrap_or_else(|| panic!("the mounted ConfigMap {config_map} is not rendered"));
    let service = by_kind(objects, "Service")[0];
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    for api in by_kind(objects, "APIService") {
        assert_eq!(api["spec"]["service"]["name"], service["metadata"]["name"]);
        assert_eq!(
            api["spec"]["service"]["namespace"],
            service["metadata"]["namespace"]
        );
    }
    (args, text(&cm["data"]["config.yaml"]))
}

/// The APIServices an installation of `set` needs: one per kind of rule that can answer
/// (a broken rule fails every request, so it needs none).
fn needed_apis(set: &RuleSet) -> BTreeSet<String> {
    let working = |rules: &[promhpa_rules::Rule]| rules.iter().any(|r| r.broken().is_none());
    let resource_broken = set
        .broken
        .iter()
        .any(|b| b.path.starts_with("resourceRules") || b.path.starts_with("rules.resource"));
    let mut apis = BTreeSet::new();
    if working(&set.custom) {
        apis.insert("v1beta1.custom.metrics.k8s.io".to_string());
        apis.insert("v1beta2.custom.metrics.k8s.io".to_string());
    }
    if working(&set.external) {
        apis.insert("v1beta1.external.metrics.k8s.io".to_string());
    }
    if set.resource.is_some() && !resource_broken {
        apis.insert("v1beta1.metrics.k8s.io".to_string());
    }
    apis
}

fn counts(set: &RuleSet) -> (usize, usize, bool) {
    (set.custom.len(), set.external.len(), set.resource.is_some())
}

/// The `config.yaml` of the ConfigMap the rule loader reads from a manifest file.
fn configmap_config(text: &str) -> Option<String> {
    let docs: Vec<Value> = promhpa_core::yaml::documents(text)
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let has = |d: &&Value| d["kind"] == "ConfigMap" && d["data"]["config.yaml"].is_string();
    docs.iter()
        .find(has)
        .or(docs.first())
        .and_then(|d| d["data"]["config.yaml"].as_str())
        .map(String::from)
}

#[test]
fn every_compat_file_check_accepts_renders_a_working_installation() {
    let mut files: Vec<PathBuf> = fs::read_dir(compat_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no rule files in {}",
        compat_dir().display()
    );
    let mut rendered = BTreeSet::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let path = file.to_str().unwrap();
        let input = match RuleSet::load(file) {
            Ok(set) => set,
            Err(e) => {
                let first = e.errors.first().map(ToString::to_string);
                println!("skipped {name}: the rule loader refuses it ({first:?})");
                continue;
            }
        };
        // check accepts it too (exit 2 says some rules are broken, and serve starts without them).
        let check = promhpa(&["check", "--config", path]);
        assert_ne!(check.status.code(), Some(1), "{name}: {}", stderr(&check));
        let out = promhpa(&["manifests", "-f", path, "-n", "monitoring"]);
        assert!(
            out.status.success(),
            "{name}: check accepts it but manifests fails: {}",
            stderr(&out)
        );
        let objects = through_kubectl(&stdout(&out));
        let (args, config) = deployment_and_config(&objects);
        assert!(
            args.contains(&"--config=/etc/adapter/config.yaml".to_string()),
            "{name}: {args:?}"
        );
        assert!(
            args.iter().any(|a| a.starts_with("--prometheus-url=")),
            "{name}: {args:?}"
        );
        let installed = RuleSet::from_yaml(&config, &format!("{name} (rendered)"))
            .unwrap_or_else(|e| panic!("{name}: the rendered config.yaml does not load: {e}"));
        assert_eq!(
            counts(&installed),
            counts(&input),
            "{name}: rules installed"
        );
        let apis = api_services(&objects);
        let needed = needed_apis(&input);
        // A rule file runs as written and registers exactly what its rules serve; Helm
        // values register what the chart registers, which covers every kind of rule.
        let verbatim = match input.shape {
            FileShape::AdapterConfig => Some(fs::read_to_string(file).unwrap()),
            FileShape::ConfigMap => {
                configmap_config(&fs::read_to_string(file).unwrap()).filter(|inner| {
                    RuleSet::from_yaml(inner, &name).is_ok_and(|s| s.shape != FileShape::HelmValues)
                })
            }
            FileShape::HelmValues => None,
        };
        match verbatim {
            Some(original) => {
                assert_eq!(config, original, "{name}: config.yaml as written");
                assert_eq!(apis, needed, "{name}: APIServices");
            }
            None => assert!(apis.is_superset(&needed), "{name}: {apis:?} ⊉ {needed:?}"),
        }
        assert!(!apis.is_empty(), "{name}: no APIService");
        rendered.insert(format!("{:?}", input.shape));
        println!("rendered {name}: {} objects, {apis:?}", objects.len());
    }
    assert!(
        rendered.contains("HelmValues") && rendered.contains("ConfigMap"),
        "rendered shapes: {rendered:?}"
    );
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

const ADAPTER_CONFIG: &str = r#"# the shop's request rate, per pod
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
"#;

#[test]
fn an_adapter_config_is_installed_as_written_with_the_charts_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "config.yaml", ADAPTER_CONFIG);
    let out = promhpa(&["manifests", "--config", &config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--prometheus-url"), "{err}");
    assert!(err.contains("http://prometheus.default.svc:9090"), "{err}");
    assert!(
        stdout(&out).starts_with("# "),
        "the assumptions head the output"
    );
    let objects = through_kubectl(&stdout(&out));
    let (args, installed) = deployment_and_config(&objects);
    assert_eq!(installed, ADAPTER_CONFIG);
    assert!(args.contains(&"--prometheus-url=http://prometheus.default.svc:9090".to_string()));
    assert_eq!(
        api_services(&objects),
        [
            "v1beta1.custom.metrics.k8s.io",
            "v1beta1.external.metrics.k8s.io",
            "v1beta2.custom.metrics.k8s.io"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );

    // --prometheus-url sets the Deployment's flag as given; nothing is assumed then.
    let out = promhpa(&[
        "manifests",
        "--config",
        &config,
        "--prometheus-url",
        "https://prometheus.monitoring.svc:9090/prom",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("assumed"), "{}", stderr(&out));
    let (args, _) = deployment_and_config(&through_kubectl(&stdout(&out)));
    assert!(
        args.contains(&"--prometheus-url=https://prometheus.monitoring.svc:9090/prom".to_string()),
        "{args:?}"
    );
}

#[test]
fn a_configmap_and_helm_values_together_give_rules_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let indented: String = ADAPTER_CONFIG
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let cm = write(
        dir.path(),
        "cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: adapter-config\n  namespace: custom-metrics\ndata:\n  config.yaml: |\n{indented}"
        ),
    );
    let values = write(
        dir.path(),
        "values.yaml",
        "replicas: 2\nprometheus: {url: http://prom.monitoring.svc, port: 9090}\nrules: {default: true}\n",
    );
    let out = promhpa(&[
        "manifests",
        "--helm-values",
        &values,
        "--config",
        &cm,
        "-n",
        "metrics",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The published -f spelling takes both kinds, in order, and says what replaces it.
    let old = promhpa(&["manifests", "-f", &values, "-f", &cm, "-n", "metrics"]);
    assert!(old.status.success(), "{}", stderr(&old));
    assert_eq!(stdout(&old), stdout(&out));
    assert!(
        stderr(&old).contains("manifests -f/--values is deprecated: give Helm values with --helm-values and a rule file (adapter config or ConfigMap) with --config"),
        "{}",
        stderr(&old)
    );
    assert!(!stderr(&out).contains("deprecated"), "{}", stderr(&out));
    // Each flag takes one kind of file.
    let swapped = promhpa(&["manifests", "--helm-values", &cm]);
    assert!(!swapped.status.success());
    assert!(
        stderr(&swapped).contains("pass it with --config"),
        "{}",
        stderr(&swapped)
    );
    let swapped = promhpa(&["manifests", "--config", &values]);
    assert!(!swapped.status.success());
    assert!(
        stderr(&swapped).contains("pass it with --helm-values"),
        "{}",
        stderr(&swapped)
    );
    // -o FILE still writes the file, with a warning; --output-file is its new name.
    let file = dir.path().join("out.yaml");
    let old = promhpa(&["manifests", "--config", &cm, "-o", file.to_str().unwrap()]);
    assert!(old.status.success(), "{}", stderr(&old));
    assert!(
        stderr(&old).contains("use --output-file FILE"),
        "{}",
        stderr(&old)
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("kind: Deployment"));
    let err = stderr(&out);
    assert!(err.contains("rules are ignored"), "{err}");
    assert!(!err.contains("assumed"), "{err}");
    let objects = through_kubectl(&stdout(&out));
    let (args, installed) = deployment_and_config(&objects);
    assert_eq!(installed, ADAPTER_CONFIG);
    assert!(args.contains(&"--prometheus-url=http://prom.monitoring.svc:9090".to_string()));
    let deployment = by_kind(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["namespace"], "metrics");
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "adapter-config"),
        "the input ConfigMap is not rendered"
    );
}

#[test]
fn inputs_that_cannot_be_installed_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty-rules.yaml", "rules: []\n", "has no rules"),
        (
            "empty-cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  config.yaml: |\n    rules: []\n",
            "has no rules",
        ),
        (
            "typo.yaml",
            "rules:\n- seriesQuery: 'up'\n  metricQuery: 'up'\n",
            "metricQuery",
        ),
        (
            "no-rules-values.yaml",
            "rules: {default: false}\nreplicas: 2\n",
            "no rules",
        ),
    ];
    for (name, contents, message) in cases {
        let path = write(dir.path(), name, contents);
        let out = promhpa(&["manifests", "-f", &path]);
        assert!(!out.status.success(), "{name}: exit 0");
        assert!(stdout(&out).is_empty(), "{name}: {}", stdout(&out));
        assert!(stderr(&out).contains(message), "{name}: {}", stderr(&out));
    }
    let a = write(dir.path(), "a.yaml", ADAPTER_CONFIG);
    let b = write(dir.path(), "b.yaml", ADAPTER_CONFIG);
    let out = promhpa(&["manifests", "-f", &a, "-f", &b]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a second rule file"),
        "{}",
        stderr(&out)
    );
}

/// `-o json` or `-o yaml` is an output format everywhere else: here it is refused, not
/// taken as the name of a file to write.
#[test]
fn an_output_format_given_to_o_is_not_taken_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../rules/generic-application.yaml"
    );
    for format in ["json", "yaml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_promhpa"))
            .current_dir(dir.path())
            .args(["manifests", "-o", format, "--config", rules])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("prints YAML only"),
            "{}",
            stderr(&out)
        );
        assert!(!dir.path().join(format).exists());
    }
}

/// Names the API server or Helm would refuse, and a Prometheus URL the Deployment could not
/// start with, are refused before anything is rendered.
#[test]
fn names_and_urls_that_cannot_work_are_refused() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../rules/generic-application.yaml"
    );
    for (flag, says) in [
        ("--prometheus-url=not a url", "invalid --prometheus-url"),
        ("--prometheus-url=ftp://p:21", "invalid --prometheus-url"),
        ("--release-name=", "invalid release name"),
        ("--namespace=Bad_NS!", "invalid namespace"),
    ] {
        let out = promhpa(&["manifests", "--config", rules, flag]);
        assert!(!out.status.success(), "{flag}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{flag}: {}", stderr(&out));
    }
    let out = promhpa(&["manifests", "--config", rules, "--release-name=metrics.v2"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Extra arguments that `promhpa serve` would refuse are refused when rendering, rather
/// than found by a pod that crash-loops once the APIServices point at it; the adapter's
/// flags that do nothing here, a flag given twice and the chart's own args pass.
#[test]
fn extra_arguments_serve_would_refuse_are_refused_when_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let values = |extra: &str| {
        write(
            dir.path(),
            "values.yaml",
            &format!("extraArguments:\n{extra}"),
        )
    };
    let bad = values("- --bogus-flag=1\n");
    let out = promhpa(&["manifests", "--helm-values", &bad]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("would not start promhpa") && err.contains("--bogus-flag"),
        "{err}"
    );
    let fine = values(
        "- --v=6\n- --metrics-relist-interval=30s\n- --enable-priority-and-fairness=false\n",
    );
    let out = promhpa(&["manifests", "--helm-values", &fine]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("--metrics-relist-interval=30s"));
    // Another program's Deployment among the extra manifests keeps its own args.
    let other = write(
        dir.path(),
        "other.yaml",
        "extraManifests:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: exporter}\n  spec:\n    selector: {matchLabels: {app: exporter}}\n    template:\n      metadata: {labels: {app: exporter}}\n      spec: {containers: [{name: exporter, image: exporter, args: [--web.listen-address=:9100]}]}\n",
    );
    let out = promhpa(&["manifests", "--helm-values", &other]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("--web.listen-address=:9100"));
}
