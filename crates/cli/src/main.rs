//! `promhpa`: serve `custom.metrics.k8s.io`, `external.metrics.k8s.io` and
//! `metrics.k8s.io` from Prometheus rule templates, and the tools around it (`check`, `query`, `promql`, `recommend`, ...).
//!
//! Running `promhpa` with prometheus-adapter's flags and no subcommand serves, exactly like
//! `promhpa serve`, so an existing Deployment's args work unchanged.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cmd;

/// With `--features jemalloc`: jemalloc with background threads, so memory freed after a
/// burst (20,000 hostile connections, a large relist) is purged back to the system within
/// seconds, where glibc's allocator keeps it mapped (README, hardening).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Serve Kubernetes custom, external and resource metrics from Prometheus, and explain HPA
/// decisions.
#[derive(Parser, Debug)]
#[command(name = "promhpa", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 success; 1 a failure at run time (a file refused, a server not reachable); 2 check's verdict that a rule is broken; 64 a command line that does not parse, or serve flags that cannot work together."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Flags of `promhpa serve`, accepted without the subcommand.
    #[command(flatten)]
    serve: cmd::serve::Args,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the custom, external and (with resourceRules) resource metrics APIs (the default
    /// when no subcommand is given).
    Serve(cmd::serve::Args),
    /// Validate a rule file: a verdict, every rule, and what is broken, shadowed or warned
    /// about (exit 0: serve runs every rule; 2: some rule is broken; 1: the file is refused).
    Check(cmd::check::Args),
    /// Print the PromQL promhpa would send for a metric request.
    Query(cmd::query::Args),
    /// Evaluate PromQL with the embedded evaluator, or run PromQL test scripts.
    Promql(cmd::promql::Args),
    /// Run the HPA replica-recommendation algorithm on scenario files.
    Recommend(cmd::recommend::Args),
    /// Explain what an HPA would decide right now, metric by metric.
    Explain(cmd::explain::Args),
    /// Replay history through an HPA spec and chart the replicas it would have chosen.
    Simulate(cmd::simulate::Args),
    /// Render a complete installation from Helm values, an adapter config or its ConfigMap.
    Manifests(cmd::manifests::Args),
}

/// File and list flags that, given an empty value (`--client-ca-file=`, as a template renders
/// an unset value), are not set: Go's pflag stores the empty string, which the adapter's
/// options read as unset.
const EMPTY_IS_UNSET: &[&str] = &[
    "client-ca-file",
    "requestheader-client-ca-file",
    "tls-cert-file",
    "tls-private-key-file",
    "tls-cipher-suites",
    "prometheus-ca-file",
    "prometheus-token-file",
    "prometheus-client-tls-cert-file",
    "prometheus-client-tls-key-file",
    "prometheus-auth-config",
    "lister-kubeconfig",
    "authentication-kubeconfig",
    "authorization-kubeconfig",
    "kubeconfig",
];

/// The [`EMPTY_IS_UNSET`] flags that take a list: given empty, they keep earlier values.
const LIST_FLAGS: &[&str] = &["tls-cipher-suites"];

/// The arguments with a leading `/adapter` removed (prometheus-adapter's Helm chart runs the
/// image with `/adapter` as its first argument, and an existing release whose image is swapped
/// for promhpa's keeps passing it), and without the [`EMPTY_IS_UNSET`] flags given empty.
fn arguments(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if args
        .get(1)
        .is_some_and(|a| a == "/adapter" || a == "adapter")
    {
        args.remove(1);
    }
    let unset = |name: &str| EMPTY_IS_UNSET.contains(&name);
    let mut kept: Vec<std::ffi::OsString> = Vec::with_capacity(args.len());
    let mut iter = args.into_iter().peekable();
    while let Some(arg) = iter.next() {
        let text = arg.to_str().unwrap_or("").to_string();
        if let Some(flag) = text.strip_prefix("--") {
            let emptied = match flag.strip_suffix('=') {
                Some(name) if unset(name) => Some(name),
                _ if unset(flag) && iter.peek().is_some_and(|next| next.is_empty()) => {
                    iter.next();
                    Some(flag)
                }
                _ => None,
            };
            if let Some(name) = emptied {
                // As the last value wins, an empty one clears what came before; a list
                // flag's empty value adds nothing to it, as pflag's string slices read it.
                if !LIST_FLAGS.contains(&name) {
                    forget(&mut kept, name);
                }
                continue;
            }
        }
        kept.push(arg);
    }
    kept
}

/// `args` without the occurrences of `--name` (`--name=value`, or `--name value`).
fn forget(args: &mut Vec<std::ffi::OsString>, name: &str) {
    let (bare, with) = (format!("--{name}"), format!("--{name}="));
    let mut i = 0;
    while i < args.len() {
        let text = args[i].to_str().unwrap_or("");
        if text == bare {
            let end = (i + 2).min(args.len());
            args.drain(i..end);
        } else if text.starts_with(&with) {
            args.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Serve's command line without the arguments that are neither flags nor their values
/// (`--prometheus-auth-incluster true`, a stray path), which prometheus-adapter leaves
/// unread; the ones dropped are returned to be named. A tool's command line is left as it
/// is.
fn without_strays(
    command: &clap::Command,
    mut args: Vec<std::ffi::OsString>,
) -> (Vec<std::ffi::OsString>, Vec<String>) {
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let start = match first {
        "serve" => 2,
        // A path where the adapter's image has its binary (`/usr/local/bin/adapter`).
        f if f.starts_with('-') || f.is_empty() || f.contains('/') => 1,
        // A tool, or a word clap will name as an unknown command.
        _ => return (args, Vec::new()),
    };
    let Some(serve) = command.find_subcommand("serve") else {
        return (args, Vec::new());
    };
    let original = args.clone();
    // Whether a flag takes the next argument as its value: one that requires a value does;
    // one whose value is optional takes it only when it is not a flag (as clap reads it); a
    // Go boolean (`=` only) never does.
    let consumes_next = |arg: &clap::Arg, next: Option<&std::ffi::OsString>| {
        if !arg.get_action().takes_values() || arg.is_require_equals_set() {
            return false;
        }
        let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        !optional
            || next
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('-'))
    };
    let named = |arg: &clap::Arg, long: &str| {
        arg.get_long() == Some(long)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&long))
    };
    let mut strays = Vec::new();
    let mut i = start;
    while i < args.len() {
        let text = args[i].to_str().unwrap_or("").to_string();
        let found = if let Some(long) = text.strip_prefix("--") {
            if long.is_empty() || long.contains('=') {
                None
            } else {
                serve.get_arguments().find(|a| named(a, long))
            }
        } else if text.len() == 2 && text.starts_with('-') {
            let short = text.chars().nth(1);
            serve.get_arguments().find(|a| a.get_short() == short)
        } else if !text.starts_with('-') || text == "--" {
            // A tool's name after serve's flags (`--kubeconfig k explain web`) is a
            // mistake clap names, not an argument to leave unread.
            if command.find_subcommand(&text).is_some() || text == "help" {
                return (original, Vec::new());
            }
            strays.push(text);
            args.remove(i);
            continue;
        } else {
            None
        };
        i += if found.is_some_and(|a| consumes_next(a, args.get(i + 1))) {
            2
        } else {
            1
        };
    }
    (args, strays)
}

/// The command line parser, with serve's flags taking their last value when given twice, as
/// Go's pflag does: a Deployment whose extra arguments override one of the chart's flags
/// keeps working.
fn parser() -> clap::Command {
    Cli::command()
        .args_override_self(true)
        .mut_subcommand("serve", |c| c.args_override_self(true))
}

/// Whether `promhpa serve` would read `args` (a Deployment's container args) as it reads
/// its command line: the reason it would refuse them otherwise. Only the command line is
/// read; the files and values its flags name are not.
pub(crate) fn serve_would_parse(args: &[String]) -> Result<(), String> {
    let line = ["promhpa"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned())
        .map(std::ffi::OsString::from);
    let command = parser();
    let (line, _) = without_strays(&command, arguments(line));
    command
        .try_get_matches_from(line)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map(|_| ())
        .map_err(|e| {
            let text = e.render().to_string();
            text.lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string()
        })
}

fn main() -> ExitCode {
    let args = arguments(std::env::args_os());
    let plugin = cmd::plugin::invoked_as_plugin(args.first().map(|a| a.as_os_str()));
    let mut command = parser();
    let args = if plugin {
        args
    } else {
        let (args, strays) = without_strays(&command, args);
        if !strays.is_empty() {
            eprintln!(
                "warning: ignoring {}: not flags or flag values (prometheus-adapter leaves such arguments unread)",
                strays
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        args
    };
    if plugin {
        command = command.name("kubectl promhpa").bin_name("kubectl promhpa");
        if args.len() <= 1 {
            // `kubectl promhpa` alone asks what the plugin does; it never serves.
            let _ = command.print_help();
            return ExitCode::SUCCESS;
        }
    }
    let parsed = command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let mut cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if plugin {
        match &mut cli.command {
            Some(Command::Explain(a)) => cmd::plugin::explain_defaults(a),
            // As a plugin the binary runs the tools; flags alone (`kubectl promhpa --v=3`)
            // would otherwise start a server.
            None => {
                eprintln!(
                    "error: kubectl promhpa needs a command (explain, simulate, check, query, ...); see kubectl promhpa --help"
                );
                return ExitCode::from(EXIT_USAGE);
            }
            _ => {}
        }
    }
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Check(args)) => cmd::check::run(args),
        Some(Command::Query(args)) => cmd::query::run(args),
        Some(Command::Promql(args)) => cmd::promql::run(args),
        Some(Command::Recommend(args)) => cmd::recommend::run(args),
        Some(Command::Explain(args)) => cmd::explain::run(args),
        Some(Command::Simulate(args)) => cmd::simulate::run(args),
        Some(Command::Manifests(args)) => cmd::manifests::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status of a command line that does not parse (an unknown flag, a value that is
/// not a duration...) or whose flags do not go together: 64, `EX_USAGE` of sysexits.h,
/// apart from runtime failures (1) and from `check`'s verdicts (2).
const EXIT_USAGE: u8 = 64;

/// `serve`: its flags are checked before anything starts; when they are wrong, every problem
/// is printed and nothing runs.
fn serve(args: cmd::serve::Args) -> anyhow::Result<ExitCode> {
    match cmd::serve::ServeConfig::from_flags(*args.flags) {
        Ok(config) => cmd::serve::run(config),
        Err(errors) => Ok(flag_errors(&errors)),
    }
}

/// Print each flag problem on its own `error:` line, as Kubernetes' servers list theirs,
/// and the exit status.
fn flag_errors(errors: &cmd::serve::FlagErrors) -> ExitCode {
    for e in errors.iter() {
        eprintln!("error: {e}");
    }
    eprintln!("\nFor more information, try '--help'.");
    ExitCode::from(EXIT_USAGE)
}

/// Print a clap error (or the help and version it was asked for) and the exit status.
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(arguments(args.iter().map(std::ffi::OsString::from)))
    }

    #[test]
    fn the_charts_leading_adapter_argument_is_ignored() {
        let with = parse(&["promhpa", "/adapter", "check", "--config", "x.yaml"]);
        assert!(matches!(
            with,
            Ok(Cli {
                command: Some(Command::Check(_)),
                ..
            })
        ));
        let bare = parse(&["promhpa", "/adapter"]);
        assert!(matches!(bare, Ok(Cli { command: None, .. })));
        assert!(parse(&["promhpa", "check", "/adapter"]).is_err());
    }

    /// `--client-ca-file=` and the like, as a template renders an unset value, are not set,
    /// as pflag leaves them.
    #[test]
    fn empty_file_flags_are_left_unset() {
        let args = arguments(
            [
                "promhpa",
                "--client-ca-file=",
                "--tls-cipher-suites",
                "",
                "--prometheus-ca-file=/ca.crt",
                "--config=x.yaml",
            ]
            .map(std::ffi::OsString::from),
        );
        assert_eq!(
            args,
            ["promhpa", "--prometheus-ca-file=/ca.crt", "--config=x.yaml"]
        );
        // The last value wins, an empty one too: it clears what came before.
        let args = arguments(
            [
                "promhpa",
                "--tls-cert-file=/a.crt",
                "--tls-cert-file",
                "/b.crt",
                "--config=x.yaml",
                "--tls-cert-file=",
            ]
            .map(std::ffi::OsString::from),
        );
        assert_eq!(args, ["promhpa", "--config=x.yaml"]);
        // A list flag given empty adds nothing and keeps what came before, as in pflag.
        let args = arguments(
            ["promhpa", "--tls-cipher-suites=A", "--tls-cipher-suites="]
                .map(std::ffi::OsString::from),
        );
        assert_eq!(args, ["promhpa", "--tls-cipher-suites=A"]);
    }

    /// Arguments of serve that are neither flags nor their values are dropped and named,
    /// as prometheus-adapter leaves them unread; tools keep theirs.
    #[test]
    fn strays_of_serve_are_dropped() {
        let strip = |args: &[&str]| {
            let (kept, strays) = without_strays(
                &Cli::command(),
                args.iter().map(std::ffi::OsString::from).collect(),
            );
            let kept: Vec<String> = kept
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (kept, strays)
        };
        let (kept, strays) = strip(&[
            "promhpa",
            "--config",
            "x.yaml",
            "--prometheus-auth-incluster",
            "true",
            "-v",
            "4",
            "extra",
            "--secure-port=6443",
        ]);
        assert_eq!(
            kept,
            [
                "promhpa",
                "--config",
                "x.yaml",
                "--prometheus-auth-incluster",
                "-v",
                "4",
                "--secure-port=6443"
            ]
        );
        assert_eq!(strays, ["true", "extra"]);
        let (kept, strays) = strip(&["promhpa", "/usr/local/bin/adapter", "--demo"]);
        assert_eq!(kept, ["promhpa", "--demo"]);
        assert_eq!(strays, ["/usr/local/bin/adapter"]);
        let (kept, strays) = strip(&["promhpa", "serve", "--demo", "leftover"]);
        assert_eq!(kept, ["promhpa", "serve", "--demo"]);
        assert_eq!(strays, ["leftover"]);
        // klog's underscored spellings and optional values are read as clap reads them.
        let (kept, strays) = strip(&[
            "promhpa",
            "--log_dir",
            "/var/log",
            "--authentication-skip-lookup",
            "--config",
            "/etc/adapter/config.yaml",
        ]);
        assert_eq!(kept.len(), 6, "{kept:?}");
        assert!(strays.is_empty(), "{strays:?}");
        // A tool's name after serve's flags is left for clap to refuse.
        let (kept, strays) = strip(&["promhpa", "--kubeconfig", "k", "explain", "web"]);
        assert_eq!(kept.len(), 5);
        assert!(strays.is_empty());
        // A tool's arguments are its own.
        let (kept, strays) = strip(&["promhpa", "explain", "web", "-n", "shop"]);
        assert_eq!(kept.len(), 5);
        assert!(strays.is_empty());
        assert!(parse(&[
            "promhpa",
            "--config",
            "x.yaml",
            "--prometheus-auth-incluster",
            "true"
        ])
        .is_err());
    }

    /// Values explain cannot use are usage errors of the command line, found before any
    /// work is done.
    #[test]
    fn explain_values_are_checked_as_the_command_line_is_read() {
        for bad in [
            &["-o", "yaml"][..],
            &["--metric-values", "cpu"],
            &["--metric-values", "cpu=abc"],
            &["--values", "cpu=1,latency"],
        ] {
            let mut args = vec!["promhpa", "explain", "-f", "hpa.yaml"];
            args.extend_from_slice(bad);
            let e = parse(&args).err();
            assert!(
                e.as_ref().is_some_and(|e| e.use_stderr()),
                "{bad:?} parsed: {e:?}"
            );
        }
        for good in [
            &["-o", "json"][..],
            &["--metric-values", "cpu=95%,latency=350m,"],
        ] {
            let mut args = vec!["promhpa", "explain", "-f", "hpa.yaml"];
            args.extend_from_slice(good);
            assert!(parse(&args).is_ok(), "{good:?}");
        }
    }
}
