//! `promhpa query`: print the PromQL promhpa would send for a metric request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use promhpa_core::selector::LabelSelector;
use promhpa_core::GroupResource;
use promhpa_rules::{normalize_resource, Rule, RuleSet};

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
    /// The metric label selector of a custom-metrics request (`k=v,k2 in (a,b)`).
    #[arg(long)]
    pub metric_selector: Option<String>,
    /// An external-metrics request instead of a custom-metrics one.
    #[arg(long)]
    pub external: bool,
    /// The label selector of an external-metrics request.
    #[arg(long, requires = "external")]
    pub selector: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let set = RuleSet::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
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

/// The series the rule serving `metric` names in its `seriesQuery`, among the rules that
/// name one (a rule whose `name.as` takes any series would otherwise claim other rules'
/// series); the later rule wins as in the registry.
pub fn own_series<'a>(rules: impl IntoIterator<Item = &'a Rule>, metric: &str) -> Option<String> {
    let naming: Vec<&Rule> = rules
        .into_iter()
        .filter(|r| {
            r.selected_series_name()
                .is_some_and(|s| r.metric_name_for(s).as_deref() == Some(metric))
        })
        .collect();
    Rule::serving(naming)
        .and_then(Rule::selected_series_name)
        .map(str::to_string)
}

/// The PromQL for the request the arguments describe.
pub fn render(set: &RuleSet, args: &Args) -> anyhow::Result<String> {
    let candidates: Vec<&Rule> = if args.external {
        set.external.iter().collect()
    } else {
        set.custom.iter().collect()
    };
    let section = if args.external { "external" } else { "custom" };
    let series = match &args.series {
        Some(s) => s.clone(),
        // Each rule only ever sees the series its own seriesQuery selects.
        None => own_series(candidates.iter().copied(), &args.metric).with_context(|| {
                format!(
                    "no {section} rule names a series for metric \"{}\" in its seriesQuery; pass --series",
                    args.metric
                )
            })?,
    };
    // A rule whose seriesQuery names one series never sees another; a rule that selects by
    // regex may.
    let selects = |r: &Rule| r.selected_series_name().is_none_or(|n| n == series);
    let matching: Vec<&Rule> = candidates
        .iter()
        .copied()
        .filter(|r| {
            selects(r) && r.metric_name_for(&series).as_deref() == Some(args.metric.as_str())
        })
        .collect();
    let Some(rule) = Rule::serving(matching.iter().copied()) else {
        let served: Vec<String> = candidates
            .iter()
            .filter(|r| selects(r))
            .filter_map(|r| {
                r.metric_name_for(&series)
                    .map(|n| format!("{} serves it as \"{n}\"", r.path()))
            })
            .collect();
        if served.is_empty() {
            bail!(
                "no {section} rule serves series \"{}\" (checked {} rule{})",
                series,
                candidates.len(),
                if candidates.len() == 1 { "" } else { "s" }
            );
        }
        bail!(
            "no {section} rule serves series \"{}\" as metric \"{}\": {}",
            series,
            args.metric,
            served.join("; ")
        );
    };
    if matching.len() > 1 {
        let others: Vec<String> = matching
            .iter()
            .filter(|r| r.path() != rule.path())
            .map(|r| r.origin())
            .collect();
        eprintln!(
            "note: {} also expose{} this metric; {} serves it (the later rule wins, as in prometheus-adapter; a broken rule never takes a metric from a working one)",
            others.join(", "),
            if others.len() == 1 { "s" } else { "" },
            rule.origin()
        );
    }
    if let Some(name) = rule.backend() {
        let url = set
            .backends
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.url.as_str())
            .unwrap_or_default();
        eprintln!(
            "note: {} reads from backend \"{name}\" ({url})",
            rule.origin()
        );
    }
    if args.external {
        let selector = parse_selector(args.selector.as_deref(), "selector")?;
        return Ok(rule.render_external(&series, args.namespace.as_deref(), &selector)?);
    }
    let Some(resource) = &args.resource else {
        bail!("--resource is required for a custom-metrics request (or pass --external)");
    };
    if args.names.is_empty() {
        bail!("--names is required for a custom-metrics request");
    }
    let parsed: GroupResource = resource.parse().unwrap_or_default();
    let resource = normalize_resource(&parsed.group, &parsed.resource);
    let selector = parse_selector(args.metric_selector.as_deref(), "metric-selector")?;
    Ok(rule.render_custom(
        &series,
        args.namespace.as_deref(),
        &resource,
        &args.names,
        &selector,
    )?)
}
