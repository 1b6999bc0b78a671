//! `promhpa simulate`: replay history through an HPA spec and chart what it would have done.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use promhpa_chart::{to_svg_chart, ChartMetric};
use promhpa_core::duration::parse_go_duration_ms;
use promhpa_hpa::simulate::{
    parse_data, simulate, to_csv, to_csv_runs, ActualReplicas, SimulationInput, Tick,
};
use promhpa_hpa::spec::parse_manifest;

use promhpa_options::{BackendFlags, ControllerFlags};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    inner: Box<Inner>,
}

#[derive(clap::Args, Debug)]
pub struct Inner {
    /// The HPA manifest (a full HorizontalPodAutoscaler object or its spec). Repeat to
    /// replay the same history through several specs (e.g. two `behavior` settings) and
    /// chart them together.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Start of the replay: RFC 3339, Unix seconds, `now`, or a duration before now
    /// (`-2h`); defaults to the first sample.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,

    /// End of the replay (same forms as --from); defaults to the last sample of --data, or
    /// to now when the history is read from the metrics backend.
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,

    /// Controller sync period.
    #[arg(long, default_value = "15s")]
    pub step: String,

    /// History as CSV (`timestamp,value[,replicas]`, one value column per metric) or JSON
    /// (`[{"timestamp":..,"value":..,"replicas":..}]`).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// PromQL giving each metric's past values, in spec order, in the target's units (for
    /// a Pods metric: the per-pod average; for Utilization: percent of request). Without
    /// it, each metric's query is rendered from the rule file for the scale target's pods
    /// in the object file (the same pods `explain` uses), wrapped in `avg` (Pods) or `sum`
    /// (Object, External); Resource metrics use `resourceRules`' container query, per pod,
    /// over the pods' average request for Utilization targets.
    #[arg(long = "query", value_name = "PROMQL")]
    pub queries: Vec<String>,

    /// PromQL giving the replica count that produced the values, e.g.
    /// `kube_deployment_status_replicas{deployment="web"}` (range-queried on the backend).
    #[arg(long, value_name = "PROMQL")]
    pub replicas_query: Option<String>,

    /// A constant replica count that produced the values (overrides the data's column).
    #[arg(long)]
    pub replicas: Option<f64>,

    /// How long a new pod takes to become Ready (0: at once). Until then it takes no
    /// load and reports no metric, as a starting pod would.
    #[arg(long, default_value = "0s")]
    pub pod_startup: String,

    #[command(flatten)]
    pub controller: ControllerFlags,

    /// Where history comes from when --data is not given: the same backend, rules and
    /// objects `serve` takes.
    #[command(flatten)]
    pub backend: BackendFlags,

    /// Write the table (CSV) to this file, or to standard output with `-`. Without --csv
    /// the table goes to standard output unless --svg is given.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write an SVG chart (actual vs simulated replicas, metric vs target) here.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// A time as --from/--to take it: `now`, `-DURATION` (before now), RFC 3339 or Unix
/// seconds; milliseconds since the epoch.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(promhpa_core::time::now_ms());
    }
    if let Some(d) = s.strip_prefix('-').filter(|d| d.parse::<f64>().is_err()) {
        let ms = parse_go_duration_ms(d).map_err(|e| anyhow::anyhow!("invalid time {s:?}: {e}"))?;
        return Ok(promhpa_core::time::now_ms() - ms);
    }
    Ok(promhpa_hpa::simulate::parse_time(s)?)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let args = *args.inner;
    let mut hpas = Vec::new();
    for file in &args.files {
        let text = super::read_file(file).with_context(|| format!("reading {}", file.display()))?;
        let hpa = parse_manifest(&text).with_context(|| format!("in {}", file.display()))?;
        let label = if args.files.len() == 1 {
            "simulated".to_string()
        } else {
            file.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| file.display().to_string())
        };
        hpas.push((label, hpa));
    }
    let step_ms = parse_go_duration_ms(&args.step)?;
    if args.data.is_some() {
        let b = &args.backend;
        let unused = [
            (!args.queries.is_empty(), "--query"),
            (args.replicas_query.is_some(), "--replicas-query"),
            (b.prometheus_url.is_some(), "--prometheus-url"),
            (b.config.is_some(), "--config"),
            (b.objects.is_some(), "--objects"),
            (!b.load_exposition.is_empty(), "--load-exposition"),
            (b.demo, "--demo"),
        ];
        let unused: Vec<&str> = unused.iter().filter(|(g, _)| *g).map(|(_, f)| *f).collect();
        if !unused.is_empty() {
            bail!(
                "{} cannot be combined with --data: the history comes from the file, not from the metrics backend",
                unused.join(", ")
            );
        }
    }
    let (metrics, actual, start_ms, end_ms) = match &args.data {
        Some(data) => {
            let data_text =
                super::read_file(data).with_context(|| format!("reading {}", data.display()))?;
            let (metrics, replica_series) =
                parse_data(&data_text).with_context(|| format!("in {}", data.display()))?;
            let actual = match (args.replicas, replica_series.is_empty()) {
                (Some(c), _) => ActualReplicas::Constant(c),
                (None, false) => ActualReplicas::Series(replica_series),
                (None, true) => bail!("the data has no replicas column: pass --replicas N"),
            };
            let first = metrics.iter().filter_map(|s| s.first().map(|p| p.0)).min();
            let last = metrics.iter().filter_map(|s| s.last().map(|p| p.0)).max();
            let start_ms = match &args.from {
                Some(t) => parse_time(t)?,
                None => first.context("the data has no samples")?,
            };
            let end_ms = match &args.to {
                Some(t) => parse_time(t)?,
                None => last.context("the data has no samples")?,
            };
            (metrics, actual, start_ms, end_ms)
        }
        None => {
            if let Some(message) = args
                .backend
                .unused_prometheus_flags()
                .filter(|_| args.backend.demo)
            {
                eprintln!("warning: {message}");
            }
            let Some(from) = &args.from else {
                bail!("no history given: pass --data FILE, or --from (and --to, default now) to read it from the metrics backend");
            };
            let to = args.to.as_deref().unwrap_or("now");
            let (start_ms, end_ms) = (parse_time(from)?, parse_time(to)?);
            if end_ms <= start_ms {
                bail!(
                    "--to {to:?} ({}) is not after --from {from:?} ({})",
                    promhpa_core::time::format_rfc3339(end_ms),
                    promhpa_core::time::format_rfc3339(start_ms)
                );
            }
            let replicas = match (&args.replicas_query, args.replicas) {
                (Some(q), _) => Ok(q.as_str()),
                (None, Some(c)) => Err(c),
                (None, None) => bail!(
                    "say which replica count produced the history: --replicas-query PROMQL or --replicas N"
                ),
            };
            let hpa = &hpas[0].1;
            let queries = if args.queries.is_empty() {
                super::hpa_history::metric_queries(&args.backend, hpa)?
            } else {
                args.queries.clone()
            };
            let n = hpa.spec.effective_metrics().len();
            if queries.len() != n {
                bail!(
                    "the HPA has {n} metrics but {} --query were given",
                    queries.len()
                );
            }
            for q in &queries {
                eprintln!("history query: {q}");
            }
            let (metrics, actual) = super::hpa_history::fetch_history(
                &args.backend,
                &queries,
                replicas,
                (start_ms, end_ms, step_ms),
            )?;
            (metrics, actual, start_ms, end_ms)
        }
    };
    // History columns go to metrics in spec order: a count that differs would feed a value
    // to the wrong metric, or leave metrics without one.
    for ((label, hpa), file) in hpas.iter().zip(&args.files) {
        let names: Vec<String> = hpa
            .spec
            .effective_metrics()
            .iter()
            .map(promhpa_hpa::explain::value_key)
            .collect();
        if names.len() != metrics.len() {
            bail!(
                "{} ({label}) has {} metric{} ({}), but the history has {} value column{}: one column per metric, in spec order",
                file.display(),
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                metrics.len(),
                if metrics.len() == 1 { "" } else { "s" }
            );
        }
    }
    let config = args.controller.config();
    let pod_startup_ms = parse_go_duration_ms(&args.pod_startup)?;
    let mut results = Vec::new();
    for (label, hpa) in &hpas {
        let ticks = simulate(&SimulationInput {
            spec: hpa.spec.clone(),
            config,
            metrics: metrics.clone(),
            actual: actual.clone(),
            start_ms,
            end_ms,
            step_ms,
            initial_replicas: None,
            pod_startup_ms,
        })
        .with_context(|| format!("simulating {label}"))?;
        results.push((label.as_str(), ticks));
    }
    let runs: Vec<(&str, &[Tick])> = results.iter().map(|(l, t)| (*l, t.as_slice())).collect();
    let csv = if runs.len() == 1 {
        to_csv(runs[0].1)
    } else {
        to_csv_runs(&runs)
    };
    match &args.csv {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::write(p, csv).with_context(|| format!("writing {}", p.display()))?
        }
        None if args.svg.is_some() => {}
        _ => {
            use std::io::Write;
            std::io::stdout().lock().write_all(csv.as_bytes())?;
        }
    }
    if let Some(p) = &args.svg {
        let names: Vec<&str> = hpas
            .iter()
            .map(|(_, h)| h.metadata.name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        let title = if names.is_empty() {
            "simulated HPA".to_string()
        } else {
            format!("HPA {}", names.join(" vs "))
        };
        let metrics: Vec<ChartMetric> = hpas[0]
            .1
            .spec
            .effective_metrics()
            .iter()
            .map(ChartMetric::of)
            .collect();
        std::fs::write(p, to_svg_chart(&runs, &title, &metrics))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_absolute_or_relative_to_now() {
        let now = promhpa_core::time::now_ms();
        let t = |s: &str| parse_time(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!((t("now") - now).abs() < 60_000);
        assert!((t("-4m") - (now - 240_000)).abs() < 60_000);
        assert!((t("-1h30m") - (now - 5_400_000)).abs() < 60_000);
        assert_eq!(t("2024-05-01T00:00:00Z"), 1_714_521_600_000);
        assert_eq!(t("1714521600"), 1_714_521_600_000);
        assert_eq!(t("-60"), -60_000, "a negative number is Unix seconds");
        assert!(parse_time("-4x").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
