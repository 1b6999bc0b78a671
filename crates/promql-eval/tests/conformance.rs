//! Runs every PromQL conformance script in shared/conformance/promql and this crate's own
//! scripts in tests/cases; every case must pass.

use std::path::Path;

use promhpa_promql_eval::testscript::run_script;

fn run_dir(dir: &Path) -> (usize, Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no .test files in {}", dir.display());
    let mut passed = 0;
    let mut failures = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read script");
        let report = run_script(&path.display().to_string(), &text);
        assert!(
            report.passed + report.failures.len() > 0,
            "{} has no cases",
            path.display()
        );
        passed += report.passed;
        failures.extend(report.failures);
    }
    (passed, failures)
}

#[test]
fn shared_conformance_suite_passes() {
    let shared = promhpa_test_support::shared_dir().unwrap_or_else(|e| panic!("{e}"));
    let (passed, failures) = run_dir(&shared.join("conformance").join("promql"));
    assert!(
        failures.is_empty(),
        "{} passed, {} failed:\n{}",
        passed,
        failures.len(),
        failures.join("\n")
    );
    assert!(passed >= 60, "only {passed} cases ran");
}

#[test]
fn own_cases_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("cases");
    let (passed, failures) = run_dir(&dir);
    assert!(
        failures.is_empty(),
        "{} passed, {} failed:\n{}",
        passed,
        failures.len(),
        failures.join("\n")
    );
}
