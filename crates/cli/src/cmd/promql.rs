//! `promhpa promql`: run PromQL test scripts, or evaluate one expression over series loaded
//! from a file with the embedded evaluator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use promhpa_promql_eval::testscript::{load_script, parse_duration_ms, run_script};
use promhpa_promql_eval::{
    exposition, instant_query, json, parse, range_query, EvalOptions, Labels, Store,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run PromQL test scripts (Prometheus' `load` / `eval instant at` format); prints one
    /// line per failing case and `N passed, M failed`.
    #[arg(long = "test", num_args = 1.., value_name = "FILE", conflicts_with_all = ["load", "expr"])]
    test: Vec<PathBuf>,

    /// Series to query: a test script's `load` blocks (`.test` files, or any file whose
    /// first command is `load`), or a text exposition / OpenMetrics file ingested at --at.
    #[arg(long, value_name = "FILE", requires = "expr")]
    load: Option<PathBuf>,

    /// Evaluation time: Unix seconds (`1700000000.5`), RFC 3339 (`2024-05-01T12:00:00Z`) or
    /// a duration since the epoch (`50m`), as test scripts write it.
    #[arg(long, value_name = "TIME", default_value = "0")]
    at: String,

    /// Evaluate a range query from this time to --end (same formats as --at) and print it in
    /// the shape of `/api/v1/query_range`.
    #[arg(long, value_name = "TIME", requires_all = ["end", "step"])]
    start: Option<String>,

    /// End of a range query.
    #[arg(long, value_name = "TIME", requires = "start")]
    end: Option<String>,

    /// Step of a range query (`15s`, `1m`, ...).
    #[arg(long, value_name = "DURATION", requires = "start")]
    step: Option<String>,

    /// Lookback of instant vector selectors.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    lookback_delta: String,

    /// The PromQL expression to evaluate.
    #[arg(value_name = "EXPR")]
    expr: Option<String>,
}

fn parse_time_ms(s: &str) -> anyhow::Result<i64> {
    if let Some(ms) = promhpa_promql_eval::timefmt::parse_api_time_ms(s) {
        return Ok(ms);
    }
    parse_duration_ms(s).with_context(|| {
        format!("invalid time {s:?}: want Unix seconds, RFC 3339 or a duration since the epoch")
    })
}

/// The `errorType` Prometheus' API reports for an evaluation error.
fn error_type(e: &promhpa_promql_eval::EvalError) -> &'static str {
    match e {
        promhpa_promql_eval::EvalError::Parse { .. } => "bad_data",
        _ => "execution",
    }
}

fn is_script(path: &std::path::Path, text: &str) -> bool {
    path.extension().is_some_and(|e| e == "test")
        || text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with("load "))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.test.is_empty() {
        let mut passed = 0;
        let mut failed = 0;
        for path in &args.test {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading test script {}", path.display()))?;
            let report = run_script(&path.display().to_string(), &text);
            for f in &report.failures {
                println!("{f}");
            }
            passed += report.passed;
            failed += report.failures.len();
        }
        println!("{passed} passed, {failed} failed");
        if passed + failed == 0 {
            eprintln!("error: no eval commands found in the test scripts");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let Some(expr_text) = args.expr else {
        bail!("give --test FILE... or an expression to evaluate (with --load FILE --at TIME)");
    };
    let at = parse_time_ms(&args.at)?;
    let lookback = parse_duration_ms(&args.lookback_delta)
        .with_context(|| format!("invalid --lookback-delta {:?}", args.lookback_delta))?;
    let store = match &args.load {
        None => Store::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            if is_script(path, &text) {
                load_script(&text)
                    .map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?
            } else {
                let mut store = Store::new();
                exposition::ingest(&mut store, &text, at, &Labels::empty())
                    .with_context(|| format!("ingesting {}", path.display()))?;
                store
            }
        }
    };
    let opts = EvalOptions {
        lookback_ms: lookback,
        ..EvalOptions::default()
    };
    if let (Some(start), Some(end), Some(step)) = (&args.start, &args.end, &args.step) {
        let start = parse_time_ms(start)?;
        let end = parse_time_ms(end)?;
        let step = parse_duration_ms(step).with_context(|| format!("invalid --step {step:?}"))?;
        let result =
            parse(&expr_text).and_then(|expr| range_query(&store, &expr, start, end, step, opts));
        return Ok(match result {
            Ok(series) => {
                println!("{}", json::query_range_response(&series));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{}", json::error_response(error_type(&e), &e.to_string()));
                ExitCode::FAILURE
            }
        });
    }
    let result = parse(&expr_text).and_then(|expr| instant_query(&store, &expr, at, opts));
    match result {
        Ok(mut value) => {
            if let promhpa_promql_eval::Value::Vector(v) = &mut value {
                let keep_order = parse(&expr_text)
                    .is_ok_and(|e| promhpa_promql_eval::eval::result_order_is_significant(&e));
                if !keep_order {
                    v.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
            }
            println!("{}", json::query_response(&value, at));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}", json::error_response(error_type(&e), &e.to_string()));
            Ok(ExitCode::FAILURE)
        }
    }
}
