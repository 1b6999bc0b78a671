//! Every case of shared/conformance/hpa, and of this crate's own tests/conformance (the
//! Kubernetes 1.36/1.37 behaviour: ScaledToZero, scaling from zero, per-HPA tolerances), must
//! pass.

use promhpa_hpa::conformance::run_text;

fn run_dir(dir: &std::path::Path) -> (usize, Vec<String>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let (mut passed, mut failed) = (0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read case file");
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        for r in run_text(&text, &name) {
            if r.passed() {
                passed += 1;
            } else {
                failed.push(format!("{name} {}: {}", r.id, r.failures.join("; ")));
            }
        }
    }
    (passed, failed)
}

#[test]
fn all_own_cases_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let (passed, failed) = run_dir(&dir);
    assert!(passed >= 11, "only {passed} cases ran");
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn all_shared_hpa_cases_pass() {
    let dir = promhpa_test_support::shared_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join("conformance")
        .join("hpa");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let (mut passed, mut failed) = (0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read case file");
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        for r in run_text(&text, &name) {
            if r.passed() {
                passed += 1;
            } else {
                failed.push(format!("{name} {}: {}", r.id, r.failures.join("; ")));
            }
        }
    }
    eprintln!("{passed} passed, {} failed", failed.len());
    assert!(passed > 50, "only {passed} cases ran");
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn a_wrong_expectation_is_reported() {
    let case = r#"
id: X1
hpa:
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 30}}
scale: {spec: 3, status: 3}
pods:
- {name: p0, readySince: -10m, startTime: -10m, requests: {cpu: 1000m}}
- {name: p1, readySince: -10m, startTime: -10m, requests: {cpu: 1000m}}
- {name: p2, readySince: -10m, startTime: -10m, requests: {cpu: 1000m}}
observed:
- pods: {p0: 300m, p1: 500m, p2: 700m}
history: {}
expect:
  desiredReplicas: 6
  metrics:
  - {replicas: 5, utilization: 51, average: 500m}
  conditions:
    ScalingLimited: {status: "True", reason: DesiredWithinRange}
"#;
    let r = run_text(case, "inline");
    assert_eq!(r.len(), 1);
    let f = &r[0].failures;
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(f[0].contains("expected 6, got 5"), "{f:?}");
    assert!(f[1].contains("utilization: expected 51"), "{f:?}");
    assert!(f[2].contains("ScalingLimited"), "{f:?}");
}

#[test]
fn a_malformed_document_fails_with_its_position() {
    let r = run_text("id: A\nhpa: {maxReplicas: 3}\n---\nnot: a case\n", "f.yaml");
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|c| !c.passed()));
    assert_eq!(r[1].id, "f.yaml#2");
}
