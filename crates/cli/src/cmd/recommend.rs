//! `promhpa recommend`: run HPA scenario files (the format of shared/conformance/hpa).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use promhpa_hpa::conformance::run_text;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Compare each case with its `expect` block; print one line per failing case and a
    /// closing `N passed, M failed`, and exit non-zero if any case failed.
    #[arg(long)]
    pub check: bool,

    /// Scenario files (one YAML document per case, separated by `---`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut passed = 0usize;
    let mut failed = 0usize;
    let mut invalid = 0usize;
    for path in &args.files {
        let text = super::read_file(path)
            .with_context(|| format!("reading scenario file {}", path.display()))?;
        let source = path.display().to_string();
        for result in run_text(&text, &source) {
            if args.check {
                if result.passed() {
                    passed += 1;
                } else {
                    failed += 1;
                    writeln!(
                        out,
                        "FAIL {source} {}: {}",
                        result.id,
                        result.failures.join("; ")
                    )?;
                }
            } else {
                // A case that could not be run at all (it does not parse) fails the command,
                // as a file that does not load would.
                if result.outcomes.is_empty() && !result.failures.is_empty() {
                    invalid += 1;
                    eprintln!("error: {}: {}", result.id, result.failures.join("; "));
                }
                let value = serde_json::json!({
                    "file": source,
                    "id": result.id,
                    "passed": result.passed(),
                    "failures": result.failures,
                    "steps": result.outcomes,
                });
                writeln!(out, "{}", serde_json::to_string(&value)?)?;
            }
        }
    }
    if args.check {
        writeln!(out, "{passed} passed, {failed} failed")?;
        if failed > 0 {
            return Ok(ExitCode::FAILURE);
        }
        // Nothing checked is not a pass for a CI gate.
        if passed == 0 {
            eprintln!("error: no cases found in the scenario files");
            return Ok(ExitCode::FAILURE);
        }
    }
    if invalid > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
