//! `promhpa explain`: what an HPA would decide now, metric by metric.

use promhpa_kube::client::ClusterAccess;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use promhpa_core::duration::parse_go_duration;
use promhpa_core::quantity::Quantity;
use promhpa_hpa::explain::{explain, explain_with, render_text, value_key, ExplainInput, Measured};
use promhpa_hpa::spec::parse_manifest;
use promhpa_hpa::target::hpa_namespace;

use super::hpa_fetch::hpa_fetcher;
use super::hpa_target::hpa_from_cluster;
use promhpa_core::time::now_ms;
use promhpa_options::{BackendFlags, ControllerFlags};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The HPA manifest (a full HorizontalPodAutoscaler object or its spec).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// The HPA to explain, read from the cluster (--kubeconfig, or in-cluster
    /// credentials) instead of a file; its scale target and pods are read from there too.
    #[arg(value_name = "NAME", conflicts_with = "file")]
    pub name: Option<String>,

    /// Namespace of the HPA (default: the manifest's, else default). With -f, the
    /// namespace of a manifest that names none; one that names another is refused, as
    /// kubectl refuses it.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Metric values as NAME=VALUE,... (NAME: the resource name for Resource metrics, the
    /// metric name otherwise; VALUE in the target's units: `75` or `75%` for utilization,
    /// a quantity such as `350m` for averages and values). A metric without a value is
    /// shown as `<unknown>`, as the HPA shows a metric it cannot fetch.
    #[arg(
        long = "metric-values",
        value_delimiter = ',',
        value_name = "NAME=VALUE",
        value_parser = metric_value_entry
    )]
    pub metric_values: Vec<MetricValue>,

    /// Deprecated spelling of --metric-values (`--values` names Helm values elsewhere).
    #[arg(
        long = "values",
        value_delimiter = ',',
        value_name = "NAME=VALUE",
        value_parser = metric_value_entry,
        hide = true
    )]
    pub values: Vec<MetricValue>,

    /// Where metrics are fetched from when not given with --metric-values: the same backend,
    /// rules and objects `serve` takes. Fetching is on when NAME or any of
    /// --prometheus-url, --config, --objects, --load-exposition, --kubeconfig or --demo is
    /// given.
    #[command(flatten)]
    pub backend: Box<BackendFlags>,

    /// kubeconfig of the cluster the scale target (its scale subresource) and its pods are
    /// read from when no --objects file is given (default: in a pod its service account,
    /// elsewhere $KUBECONFIG or ~/.kube/config, as kubectl).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use instead of its current-context (with --kubeconfig, or
    /// of $KUBECONFIG's files, merged, or ~/.kube/config).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// How far back metric discovery looks for series.
    #[arg(long, default_value = "10m", value_parser = parse_go_duration, value_name = "DURATION")]
    pub metrics_max_age: Duration,

    /// The scale target's current replica count (default: its spec.replicas, else the
    /// number of its pods, else minReplicas; 0 to 100000).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=promhpa_hpa::MAX_SIMULATED_REPLICAS as i64))]
    pub replicas: Option<i32>,

    /// Output format: text or json.
    #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,

    #[command(flatten)]
    pub controller: ControllerFlags,
}

impl Args {
    /// The cluster `--kubeconfig` and `--context` name.
    fn cluster(&self) -> ClusterAccess {
        ClusterAccess {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
        }
    }
}

/// One `--metric-values` entry: a metric's name and value; none for an empty entry (a
/// trailing comma).
pub type MetricValue = Option<(String, f64)>;

/// One `--metric-values` entry, read as the command line is read: `NAME=VALUE` with a value
/// [`parse_value`] reads.
fn metric_value_entry(s: &str) -> Result<MetricValue, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let Some((k, v)) = s.split_once('=') else {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    };
    let value = parse_value(v).map_err(|e| format!("{e:#}"))?;
    Ok(Some((k.trim().to_string(), value)))
}

fn parse_value(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let s = s.strip_suffix('%').unwrap_or(s);
    let q: Quantity = s
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("metric value {s:?}"))?;
    Ok(q.as_f64())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hpa = match (&args.file, &args.name) {
        (Some(file), _) => {
            let text =
                super::read_file(file).with_context(|| format!("reading {}", file.display()))?;
            let mut hpa =
                parse_manifest(&text).with_context(|| format!("in {}", file.display()))?;
            let flag = args.namespace.as_deref().filter(|n| !n.trim().is_empty());
            match (flag, hpa.metadata.namespace.as_deref()) {
                (Some(flag), Some(ns)) if flag != ns => bail!(
                    "the namespace from the provided object {ns:?} does not match the namespace {flag:?}: pass --namespace={ns}, or leave the namespace out of {}",
                    file.display()
                ),
                (Some(flag), None) => hpa.metadata.namespace = Some(flag.to_string()),
                _ => {}
            }
            // Against a cluster, the HPA of the same name (if it exists) tells what the
            // controller last reported, beside this manifest's explanation.
            if (args.kubeconfig.is_some() || args.context.is_some())
                && args.backend.objects.is_none()
                && !args.backend.demo
            {
                let ns = hpa_namespace(&hpa);
                if let Ok((_, status)) =
                    runtime.block_on(hpa_from_cluster(&args.cluster(), &ns, &hpa.metadata.name))
                {
                    eprintln!("{status}");
                }
            }
            hpa
        }
        (None, Some(name)) => {
            let ns = args
                .namespace
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("default");
            let (hpa, status) = runtime.block_on(hpa_from_cluster(&args.cluster(), ns, name))?;
            eprintln!("{status}");
            hpa
        }
        (None, None) => bail!(
            "say which HPA: -f FILE, or its NAME (with -n NAMESPACE) to read it from the cluster"
        ),
    };
    if !args.values.is_empty() {
        eprintln!("warning: explain --values is deprecated: use --metric-values");
    }
    let mut values: BTreeMap<String, f64> = BTreeMap::new();
    for (name, value) in args.metric_values.iter().chain(&args.values).flatten() {
        if values.insert(name.clone(), *value).is_some() {
            bail!("--metric-values names {name:?} twice: give each metric one value");
        }
    }
    let known: Vec<String> = hpa.spec.effective_metrics().iter().map(value_key).collect();
    for k in values.keys() {
        if !known.contains(k) {
            bail!(
                "--metric-values names {k:?}, which is not a metric of this HPA (it has: {})",
                known.join(", ")
            );
        }
    }
    let config = args.controller.config();
    let b = &args.backend;
    let fetching = b.demo
        || b.prometheus_url.is_some()
        || b.config.is_some()
        || b.objects.is_some()
        || !b.load_exposition.is_empty()
        || args.kubeconfig.is_some()
        || args.context.is_some()
        || args.name.is_some();
    let explanation = if fetching {
        // The command has no log: what serve would log as a warning is said here.
        if let Some(message) = b.unused_prometheus_flags().filter(|_| b.demo) {
            eprintln!("warning: {message}");
        }
        runtime.block_on(async {
            let fetcher =
                hpa_fetcher(b, &hpa, &args.cluster(), args.metrics_max_age).await?;
            let target = fetcher.target();
            eprintln!("{}", target.describe());
            let current = match (args.replicas, target.current_replicas()) {
                (Some(r), _) => r,
                (None, Some((r, from))) => {
                    eprintln!("current replicas: {r} ({from}; --replicas overrides)");
                    r
                }
                (None, None) => {
                    let r = hpa.spec.min_replicas();
                    eprintln!(
                        "current replicas: {r} (minReplicas: no replica count or pods of the scale target found; --replicas overrides)"
                    );
                    r
                }
            };
            let mut fetched = Vec::new();
            for m in hpa.spec.effective_metrics() {
                fetched.push(match values.get(&value_key(&m)) {
                    Some(v) => Ok(Measured::Value(*v)),
                    None => fetcher.fetch(&m).await,
                });
            }
            // The scale target's pods, even none, once the target itself was found; without
            // it (an object file that does not hold it), values given with --metric-values are
            // spread over `current` synthetic Running and Ready pods.
            let pods = (target.scale.is_some() || !target.pods.is_empty())
                .then(|| target.pods.clone());
            let max = promhpa_hpa::MAX_SIMULATED_REPLICAS;
            if pods.is_none() && current > max {
                bail!("{current} current replicas: at most {max} are explained, each as a pod; pass --replicas");
            }
            anyhow::Ok(explain(&ExplainInput {
                hpa,
                current_replicas: current,
                status_replicas: target.scale.as_ref().and_then(|s| s.status_replicas),
                pods,
                values: fetched,
                config,
                state: None,
                now_ms: now_ms(),
                selector_error: target.selector_error.clone(),
            }))
        })?
    } else {
        let current = args.replicas.unwrap_or_else(|| hpa.spec.min_replicas());
        let max = promhpa_hpa::MAX_SIMULATED_REPLICAS;
        if current > max {
            bail!("{current} current replicas (minReplicas): at most {max} are explained, each as a pod; pass --replicas");
        }
        explain_with(hpa, current, config, 0, |m| {
            let key = value_key(m);
            values
                .get(&key)
                .copied()
                .ok_or_else(|| format!("no value for {key} (pass --metric-values {key}=VALUE)"))
        })
    };
    let out = match args.output.as_str() {
        "json" => serde_json::to_string_pretty(&explanation)? + "\n",
        "text" => render_text(&explanation),
        other => bail!("unknown output format {other:?}: use text or json"),
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
