//! `promhpa manifests`: print promhpa's Kubernetes installation rendered from the Helm values
//! of the prometheus-community/prometheus-adapter chart or from the rule file an adapter runs
//! (rendering: `promhpa-deploy`).

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use promhpa_deploy::{Given, InputFile, Release, CHART_NAME};
use promhpa_rules::is_dns_label;

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("input")
        .required(true)
        .multiple(true)
        .args(["helm_values", "config", "values"])
))]
pub struct Args {
    /// Helm values of the prometheus-adapter chart; repeatable, later files winning as with
    /// `helm -f`.
    #[arg(long = "helm-values", value_name = "FILE")]
    pub helm_values: Vec<PathBuf>,
    /// A rule file the installation then runs as written: a prometheus-adapter config
    /// (`rules`, `externalRules`, `resourceRules`) or a ConfigMap manifest holding one in
    /// `data."config.yaml"`; it wins over rules in the Helm values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Deprecated spelling of --helm-values and --config (either kind of file, told apart
    /// by content).
    #[arg(short = 'f', long = "values", value_name = "FILE", hide = true)]
    pub values: Vec<PathBuf>,
    /// The release name (`helm install NAME`), which names the objects.
    #[arg(long, default_value = CHART_NAME)]
    pub release_name: String,
    /// The release namespace (`helm install -n NAMESPACE`).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The container image to run, overriding the values.
    #[arg(long)]
    pub image: Option<String>,
    /// URL of the Prometheus API the Deployment queries (its `--prometheus-url`), overriding
    /// the values' prometheus.url, prometheus.port and prometheus.path [default: the chart's,
    /// http://prometheus.default.svc:9090].
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Write the manifests to this file instead of standard output.
    #[arg(long = "output-file", value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// Deprecated spelling of --output-file (`-o` names an output format elsewhere).
    #[arg(short = 'o', long = "output", value_name = "FILE", hide = true)]
    pub output: Option<PathBuf>,
}

impl Args {
    /// The input files in the order they apply, each with the flag that named it; a
    /// deprecation warning for each old spelling used.
    fn inputs(&self) -> anyhow::Result<Vec<(PathBuf, Given)>> {
        if !self.values.is_empty() {
            eprintln!(
                "warning: manifests -f/--values is deprecated: give Helm values with --helm-values and a rule file (adapter config or ConfigMap) with --config"
            );
        }
        if let Some(format) =
            self.output.as_ref().and_then(|o| o.to_str()).filter(|o| {
                ["yaml", "json", "name", "wide"].contains(o) || o.starts_with("jsonpath")
            })
        {
            bail!(
                "-o {format}: manifests prints YAML only, and its -o names a file (deprecated: use --output-file FILE); leave -o out for YAML on standard output"
            );
        }
        if self.output.is_some() {
            eprintln!("warning: manifests -o/--output FILE is deprecated: use --output-file FILE");
        }
        if self.output.is_some() && self.output_file.is_some() {
            bail!("give the output file once, with --output-file");
        }
        let mut inputs: Vec<(PathBuf, Given)> = Vec::new();
        inputs.extend(self.values.iter().map(|p| (p.clone(), Given::Either)));
        inputs.extend(
            self.helm_values
                .iter()
                .map(|p| (p.clone(), Given::HelmValues)),
        );
        inputs.extend(self.config.iter().map(|p| (p.clone(), Given::Config)));
        Ok(inputs)
    }
}

/// What the API server or Helm would refuse, or the rendered Deployment could not start
/// with, said before anything is rendered.
fn check_names(args: &Args) -> anyhow::Result<()> {
    if !is_dns_label(&args.namespace) {
        bail!(
            "invalid namespace {:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            args.namespace
        );
    }
    let release = &args.release_name;
    if release.len() > 53 || !release.split('.').all(is_dns_label) {
        bail!(
            "invalid release name {release:?}: as Helm requires, lower case alphanumeric characters, '-' and '.', starting and ending with an alphanumeric character, at most 53 characters"
        );
    }
    if let Some(url) = &args.prometheus_url {
        let shown = promhpa_core::url_text::redacted(url);
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => {
                bail!(
                    "invalid --prometheus-url {shown:?}: expected an http or https URL with a host"
                )
            }
            Err(e) => bail!("invalid --prometheus-url {shown:?}: {e}"),
        }
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_names(&args)?;
    let mut inputs = Vec::new();
    for (path, given) in args.inputs()? {
        let source = path.display().to_string();
        let text =
            super::read_file(&path).with_context(|| format!("reading input file {source}"))?;
        inputs.push(InputFile {
            source,
            text,
            given,
        });
    }
    let release = Release {
        name: args.release_name.clone(),
        namespace: args.namespace.clone(),
        image: args.image.clone(),
    };
    let rendered =
        promhpa_deploy::render_installation(&inputs, release, args.prometheus_url.as_deref())?;
    // A Deployment whose args serve refuses would crash-loop once the APIServices point
    // at it: its extra arguments are checked now.
    if let Err(reason) = crate::serve_would_parse(&rendered.args) {
        bail!(
            "the rendered Deployment's args would not start promhpa (check extraArguments): {reason}"
        );
    }
    for warning in &rendered.warnings {
        eprintln!("warning: {warning}");
    }
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    match args.output_file.as_ref().or(args.output.as_ref()) {
        Some(path) => fs::write(path, &rendered.yaml)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout()
            .write_all(rendered.yaml.as_bytes())
            .context("writing to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}
