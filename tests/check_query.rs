//! `promhpa check` and `promhpa query` run as a user would run them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn promhpa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_promhpa"))
        .args(args)
        .output()
        .unwrap()
}

fn rules_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../rules")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_summarises_a_valid_file() {
    let out = promhpa(&["check", "--config", &rules_file("istio-requests.yaml")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "{}: OK: 1 rule ok, 0 warnings\nprometheus-adapter config: 1 custom rule, 0 external rules",
            rules_file("istio-requests.yaml")
        )),
        "{text}"
    );
    assert!(text.contains("rules[0] (line 5): custom"), "{text}");
    assert!(
        text.contains("series:     istio_requests_total{namespace!=\"\",pod!=\"\"}"),
        "{text}"
    );
    assert!(
        text.contains("istio_requests_total → requests_per_second"),
        "{text}"
    );
    assert!(
        text.contains("namespace → namespaces, pod → pods"),
        "{text}"
    );
    assert!(text.contains(
        r#"query:      sum(rate(istio_requests_total{namespace="default",pod=~"placeholder-a|placeholder-b"}[2m])) by (pod)"#
    ), "{text}");
}

#[test]
fn check_lists_every_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("promhpa-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  metricQuery: 'sum(x)'\n- seriesQuery: 'sum(y)'\n  resources: {template: '<<.Resource>>'}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}'\n",
    )
    .unwrap();
    let out = promhpa(&["check", "--config", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad.yaml:3: rules[0].metricQuery: unknown field \"metricQuery\" (did you mean \"metricsQuery\"?)"), "{err}");
    assert!(err.contains("bad.yaml:4: rules[1].seriesQuery:"), "{err}");
    assert!(
        err.contains("bad.yaml:6: rules[1].metricsQuery: renders to invalid PromQL"),
        "{err}"
    );
    assert!(err.contains("errors found"), "{err}");
}

#[test]
fn check_reports_broken_rules_and_fails_only_then_or_when_strict() {
    let dir = std::env::temp_dir().join(format!("promhpa-check-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        "rules:\n  custom:\n  - seriesQuery: 'x_total{namespace!=\"\",pod!=\"\"}'\n    resources: {template: '<<.Resource>>'}\n",
    )
    .unwrap();
    let warned = dir.join("warned.yaml");
    std::fs::write(
        &warned,
        "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  resources: {overrides: {pod: {resource: pod}}}\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n",
    )
    .unwrap();
    let out = promhpa(&["check", "--config", broken.to_str().unwrap()]);
    let lenient = promhpa(&["check", "--config", warned.to_str().unwrap()]);
    let strict = promhpa(&["check", "--strict", "--config", warned.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();

    // the verdict comes first; the chart's six default rules are counted
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("broken.yaml: BROKEN RULES: 6 rules ok, 1 broken, 0 warnings"),
        "{text}"
    );
    assert!(
        text.contains("rules.default[0] (chart default): custom\n"),
        "{text}"
    );
    assert!(
        text.contains("rules.custom[0] (line 3): custom, BROKEN"),
        "{text}"
    );
    assert!(
        text.contains("broken.yaml:3: rules.custom[0].metricsQuery: missing metricsQuery"),
        "{text}"
    );
    assert!(stderr(&out).contains("serve would start without the broken rule"));

    assert_eq!(lenient.status.code(), Some(0), "{}", stdout(&lenient));
    assert!(stdout(&lenient).contains("OK: 1 rule ok, 1 warning"));
    assert_eq!(strict.status.code(), Some(2));
    assert!(stderr(&strict).contains("--strict refuses warnings"));
}

#[test]
fn query_prints_the_exact_promql_for_custom_metrics() {
    let out = promhpa(&[
        "query",
        "--config",
        &rules_file("istio-requests.yaml"),
        "--metric",
        "requests_per_second",
        "--series",
        "istio_requests_total",
        "--resource",
        "pods",
        "--namespace",
        "test",
        "--names",
        "podinfo-1,podinfo-2",
        "--metric-selector",
        "response_code in (200,201),reporter=destination",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "sum(rate(istio_requests_total{reporter=\"destination\",response_code=~\"200|201\",namespace=\"test\",pod=~\"podinfo-1|podinfo-2\"}[2m])) by (pod)\n"
    );
}

#[test]
fn query_prints_the_exact_promql_for_external_metrics() {
    let out = promhpa(&[
        "query",
        "--config",
        &rules_file("seed-inferno-desired-replicas.yaml"),
        "--metric",
        "inferno_desired_replicas",
        "--series",
        "inferno_desired_replicas",
        "--external",
        "--namespace",
        "llm-d-sim",
        "--selector",
        "variant_name=vllme-deployment",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "inferno_desired_replicas{variant_name=\"vllme-deployment\",exported_namespace=\"llm-d-sim\"}\n"
    );
    // --metric-selector is the external request's selector too, never left out.
    let with = |flag: &str| {
        promhpa(&[
            "query",
            "--config",
            &rules_file("seed-inferno-desired-replicas.yaml"),
            "--metric",
            "inferno_desired_replicas",
            "--external",
            "--namespace",
            "llm-d-sim",
            flag,
            "variant_name=vllme-deployment",
        ])
    };
    assert_eq!(stdout(&with("--metric-selector")), stdout(&out));
}

#[test]
fn query_explains_a_metric_no_rule_serves() {
    let out = promhpa(&[
        "query",
        "--config",
        &rules_file("istio-requests.yaml"),
        "--metric",
        "rps",
        "--series",
        "istio_requests_total",
        "--resource",
        "pods",
        "--names",
        "a",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("rules[0] serves it as \"requests_per_second\""),
        "{err}"
    );
}

#[test]
fn query_finds_the_series_when_the_rule_names_it() {
    let out = promhpa(&[
        "query",
        "--config",
        &rules_file("dcgm-gpu-utilization.yaml"),
        "--metric",
        "gpu_utilization",
        "--resource",
        "pod",
        "--namespace",
        "ml",
        "--names",
        "vllm-0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "avg(DCGM_FI_DEV_GPU_UTIL{exported_namespace=\"ml\",exported_pod=\"vllm-0\"}) by (exported_pod)\n"
    );
    let out = promhpa(&[
        "query",
        "--config",
        &rules_file("generic-application.yaml"),
        "--metric",
        "http_requests_per_second",
        "--resource",
        "pods",
        "--names",
        "a",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pass --series"), "{}", stderr(&out));
}

#[test]
fn query_uses_the_series_of_the_rule_that_names_the_metric() {
    // In demo/rules.yaml several rules rename their one series with `name.as` alone; each
    // must render its own series, not the first rule's.
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo/rules.yaml")
        .display()
        .to_string();
    let base = [
        "query",
        "--config",
        &demo,
        "--resource",
        "pods",
        "--namespace",
        "default",
        "--names",
        "a",
    ];
    let run = |metric: &str| {
        let mut args = base.to_vec();
        args.extend(["--metric", metric]);
        promhpa(&args)
    };
    let out = run("http_requests_in_flight");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"sum by (pod) (http_requests_in_flight{namespace="default",pod="a"})"#
    );
    let out = run("gpu_utilization");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL{namespace="default",pod="a"}[1m])) by (pod)"#
    );
    let mut args = base.to_vec();
    args.extend([
        "--metric",
        "gpu_utilization",
        "--series",
        "http_requests_in_flight",
    ]);
    let out = promhpa(&args);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("rules[1] serves it as \"http_requests_in_flight\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn query_uses_the_later_rule_as_the_adapter_does() {
    // The chart's generic `_total` rule comes first and also exposes http_requests for pods.
    let dir = std::env::temp_dir().join(format!("promhpa-query-later-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("values.yaml");
    std::fs::write(
        &file,
        "rules:\n  custom:\n  - seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'\n    resources: {template: '<<.Resource>>'}\n    name: {matches: '^(.*)_total$', as: '$1'}\n    metricsQuery: 'avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])'\n",
    )
    .unwrap();
    let query = promhpa(&[
        "query",
        "--config",
        file.to_str().unwrap(),
        "--metric",
        "http_requests",
        "--series",
        "http_requests_total",
        "--resource",
        "pods",
        "--namespace",
        "shop",
        "--names",
        "web-1",
    ]);
    let check = promhpa(&["check", "--config", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(query.status.success(), "{}", stderr(&query));
    assert_eq!(
        stdout(&query),
        "avg_over_time(http_requests_total{namespace=\"shop\",pod=\"web-1\"}[1m])\n"
    );
    assert!(
        stderr(&query).contains(
            "rules.default[4] (chart default) also exposes this metric; rules.custom[0] serves it"
        ),
        "{}",
        stderr(&query)
    );
    let text = stdout(&check);
    assert!(
        text.contains("shadowed: ")
            && text.contains(
                "rules.default[4] (chart default): rules.custom[0] also exposes \"http_requests\""
            ),
        "{text}"
    );
}

#[test]
fn check_validates_metric_rule_objects_in_files_and_directories() {
    let dir = std::env::temp_dir().join(format!("promhpa-check-objects-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("team-a")).unwrap();
    std::fs::write(
        dir.join("team-a/latency.yaml"),
        "apiVersion: metrics.promhpa.io/v1alpha1\nkind: MetricRule\nmetadata: {name: latency, namespace: team-a}\nspec:\n  seriesQuery: 'http_requests_total{namespace!=\"\",pod!=\"\"}'\n  resources: {template: '<<.Resource>>'}\n  name: {matches: '^(.*)_total$', as: '${1}_per_second'}\n  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'\n",
    )
    .unwrap();
    std::fs::write(dir.join("team-a/notes.txt"), "not a manifest").unwrap();
    // A file without objects is nothing checked, not a pass.
    std::fs::write(dir.join("empty.yaml"), "# nothing yet\n").unwrap();
    let empty = promhpa(&["check", "-f", dir.join("empty.yaml").to_str().unwrap()]);
    assert_eq!(empty.status.code(), Some(1), "{}", stdout(&empty));
    assert!(
        stderr(&empty).contains("no MetricRule objects"),
        "{}",
        stderr(&empty)
    );
    let good = promhpa(&["check", "-f", dir.join("team-a").to_str().unwrap()]);
    std::fs::write(
        dir.join("team-a/leaky.json"),
        r#"{"apiVersion":"metrics.promhpa.io/v1alpha1","kind":"MetricRule","metadata":{"name":"leaky","namespace":"team-a"},"spec":{"seriesQuery":"jobs{namespace!=\"\"}","resources":{"template":"<<.Resource>>"},"metricsQuery":"sum(<<.Series>>)"}}"#,
    )
    .unwrap();
    let bad = promhpa(&["check", "-f", dir.join("team-a").to_str().unwrap()]);
    let as_config = promhpa(&[
        "check",
        "--config",
        dir.join("team-a/latency.yaml").to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();

    let text = stdout(&good);
    assert!(good.status.success(), "{text}{}", stderr(&good));
    assert!(
        text.contains("MetricRule team-a/latency: OK: custom metrics")
            && text.contains("namespace team-a only")
            && text.contains("MetricRule objects: 1 ok, 0 invalid, 0 warnings"),
        "{text}"
    );
    assert!(
        text.contains(r#"sample query: sum(rate(http_requests_total{namespace="team-a",pod=~"placeholder-a|placeholder-b"}[2m])) by (pod)"#),
        "{text}"
    );
    let text = stdout(&bad);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("MetricRule team-a/leaky: INVALID")
            && text.contains("spec.metricsQuery:")
            && text.contains("must carry the namespace matcher"),
        "{text}"
    );
    assert!(
        stderr(&as_config).contains("this is a MetricRule object, not a rule file"),
        "{}",
        stderr(&as_config)
    );
}

#[test]
fn the_metric_rules_overlay_installs_the_crd_the_flag_and_a_valid_example() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let overlay = root.join("deploy/overlays/metric-rules");
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", overlay.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let docs: Vec<serde_json::Value> = stdout(&out)
        .split("\n---\n")
        .map(|d| promhpa_core::yaml::from_str(d).unwrap())
        .collect();
    let crd = docs
        .iter()
        .find(|d| d["kind"] == "CustomResourceDefinition")
        .unwrap();
    assert_eq!(crd["metadata"]["name"], "metricrules.metrics.promhpa.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    // the schema offers exactly the fields a MetricRule's spec is read with
    let mut fields: Vec<&str> = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "api",
            "metricsQuery",
            "name",
            "resources",
            "seriesFilters",
            "seriesQuery"
        ]
    );
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(args.iter().any(|a| a == "--metric-rules"), "{args:?}");
    let help = promhpa(&["serve", "--help"]);
    assert!(stdout(&help).contains("--metric-rules"));
    let example = promhpa(&[
        "check",
        "-f",
        overlay.join("example.yaml").to_str().unwrap(),
    ]);
    assert!(example.status.success(), "{}", stdout(&example));
}
