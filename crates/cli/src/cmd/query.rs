//! `promhpa query`: print the PromQL promhpa would send for a metric request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use promhpa_core::selector::LabelSelector;
use promhpa_rules::{request_resource, NotServed, RuleSet};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The rule file: prometheus-adapter config, Helm values, or a ConfigMap manifest.
    #[arg(long)]
    pub config: PathBuf,
    /// The metric name as the HPA asks for it (after `name.as`).
    #[arg(long)]
    pub metric: String,
    /// The Prometheus series name the metric comes from; may be left out when a rule's
    /// seriesQuery names the series.
    #[arg(long)]
    pub series: Option<String>,
    /// The resource the request is about (`pods`, `deployments.apps`, `node`...).
    #[arg(long, conflicts_with = "external")]
    pub resource: Option<String>,
    /// The request's namespace; omit for cluster-scoped resources.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Object names, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "external")]
    pub names: Vec<String>,
    /// The metric label selector of the request (`k=v,k2 in (a,b)`): a custom-metrics
    /// request's `metricLabelSelector`, an external one's `labelSelector` (as --selector).
    #[arg(long)]
    pub metric_selector: Option<String>,
    /// An external-metrics request instead of a custom-metrics one.
    #[arg(long)]
    pub external: bool,
    /// The label selector of an external-metrics request.
    #[arg(long, requires = "external", conflicts_with = "metric_selector")]
    pub selector: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let set = RuleSet::load(&args.config)?;
    println!("{}", render(&set, &args)?);
    Ok(ExitCode::SUCCESS)
}

fn parse_selector(text: Option<&str>, flag: &str) -> anyhow::Result<LabelSelector> {
    match text {
        None => Ok(LabelSelector::everything()),
        Some(t) => t
            .parse::<LabelSelector>()
            .with_context(|| format!("parsing --{flag}")),
    }
}

/// The PromQL for the request the arguments describe.
pub fn render(set: &RuleSet, args: &Args) -> anyhow::Result<String> {
    let serving = set
        .serving_metric(args.external, &args.metric, args.series.as_deref())
        .map_err(|e| match e {
            NotServed::NoSeries { .. } => anyhow::anyhow!("{e}; pass --series"),
            e => e.into(),
        })?;
    for note in serving.notes(set) {
        eprintln!("note: {note}");
    }
    let (rule, series) = (serving.rule, &serving.series);
    if args.external {
        let selector = match (&args.selector, &args.metric_selector) {
            (Some(s), _) => parse_selector(Some(s), "selector")?,
            (None, m) => parse_selector(m.as_deref(), "metric-selector")?,
        };
        return Ok(rule.render_external(series, args.namespace.as_deref(), &selector)?);
    }
    let Some(resource) = &args.resource else {
        bail!("--resource is required for a custom-metrics request (or pass --external)");
    };
    if args.names.is_empty() {
        bail!("--names is required for a custom-metrics request");
    }
    let resource = request_resource(resource);
    let selector = parse_selector(args.metric_selector.as_deref(), "metric-selector")?;
    Ok(rule.render_custom(
        series,
        args.namespace.as_deref(),
        &resource,
        &args.names,
        &selector,
    )?)
}
