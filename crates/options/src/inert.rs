//! prometheus-adapter flags that have no effect in promhpa. prometheus-adapter takes every
//! flag of Kubernetes' generic API server (secure serving, audit, features), of its
//! custom-metrics-apiserver base and of klog; an existing Deployment may pass any of them.
//! promhpa accepts each one as prometheus-adapter would parse it (Go booleans as `--flag` or
//! `--flag=false`, other flags with a value) and says at start, once per flag, that it has no
//! effect and why.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use promhpa_core::gofmt::parse_go_bool;

#[derive(Clone, Copy)]
enum Takes {
    /// A Go boolean: `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// A value: `--flag=v` or `--flag v`.
    Value,
    /// An integer, as Go's flag parses `int`: refused when it is not one.
    Int,
    /// A number (`float32`).
    Float,
    /// A Go duration (`30s`, `1m30s`).
    Duration,
}

struct Inert {
    flag: &'static str,
    takes: Takes,
    why: &'static str,
    /// klog's own spelling, which Go's flag package also takes (`--log_dir`).
    underscored: Option<&'static str>,
}

impl Inert {
    const fn or(self, underscored: &'static str) -> Inert {
        Inert {
            underscored: Some(underscored),
            ..self
        }
    }
}

const NO_AUDIT: &str = "promhpa writes no audit log";
const STDERR: &str = "promhpa always logs to stderr, at the verbosity --v sets";

const fn b(flag: &'static str, why: &'static str) -> Inert {
    Inert {
        flag,
        takes: Takes::Bool,
        why,
        underscored: None,
    }
}

const fn v(flag: &'static str, why: &'static str) -> Inert {
    Inert {
        flag,
        takes: Takes::Value,
        why,
        underscored: None,
    }
}

/// [`v`] whose value is an integer, a number or a duration, checked as pflag checks it.
const fn typed(inert: Inert, takes: Takes) -> Inert {
    Inert { takes, ..inert }
}

const INERT: &[Inert] = &[
    // klog and component-base logging.
    b("logtostderr", STDERR),
    b("alsologtostderr", STDERR),
    b("add-dir-header", STDERR).or("add_dir_header"),
    b("one-output", STDERR).or("one_output"),
    b("skip-headers", STDERR).or("skip_headers"),
    b("skip-log-headers", STDERR).or("skip_log_headers"),
    v("log-dir", STDERR).or("log_dir"),
    v("log-file", STDERR).or("log_file"),
    typed(v("log-file-max-size", STDERR), Takes::Int).or("log_file_max_size"),
    v("log-backtrace-at", STDERR).or("log_backtrace_at"),
    v("stderrthreshold", STDERR),
    v("vmodule", STDERR),
    typed(v("log-flush-frequency", "promhpa writes each log line when it is made"), Takes::Duration),
    // Kubernetes' generic API server: features and serving.
    b("profiling", "promhpa serves no profiling endpoints"),
    b("contention-profiling", "promhpa serves no profiling endpoints"),
    v("debug-socket-path", "promhpa serves no profiling endpoints"),
    b(
        "enable-priority-and-fairness",
        "promhpa caps requests with --max-requests-inflight",
    ),
    b(
        "permit-port-sharing",
        "promhpa binds its port without SO_REUSEPORT",
    ),
    b(
        "permit-address-sharing",
        "promhpa binds its port without SO_REUSEADDR",
    ),
    v(
        "tls-sni-cert-key",
        "promhpa serves the --tls-cert-file certificate (or the one it generated) for every server name",
    ),
    // custom-metrics-apiserver's Kubernetes client.
    typed(v(
        "client-qps",
        "promhpa reads objects from watch caches and does not throttle its Kubernetes client",
    ), Takes::Float),
    typed(v(
        "client-burst",
        "promhpa reads objects from watch caches and does not throttle its Kubernetes client",
    ), Takes::Int),
    // Audit.
    v("audit-policy-file", NO_AUDIT),
    v("audit-log-path", NO_AUDIT),
    typed(v("audit-log-maxage", NO_AUDIT), Takes::Int),
    typed(v("audit-log-maxbackup", NO_AUDIT), Takes::Int),
    typed(v("audit-log-maxsize", NO_AUDIT), Takes::Int),
    v("audit-log-format", NO_AUDIT),
    b("audit-log-compress", NO_AUDIT),
    v("audit-log-mode", NO_AUDIT),
    v("audit-log-version", NO_AUDIT),
    typed(v("audit-log-batch-buffer-size", NO_AUDIT), Takes::Int),
    typed(v("audit-log-batch-max-size", NO_AUDIT), Takes::Int),
    typed(v("audit-log-batch-max-wait", NO_AUDIT), Takes::Duration),
    b("audit-log-batch-throttle-enable", NO_AUDIT),
    typed(v("audit-log-batch-throttle-qps", NO_AUDIT), Takes::Float),
    typed(v("audit-log-batch-throttle-burst", NO_AUDIT), Takes::Int),
    b("audit-log-truncate-enabled", NO_AUDIT),
    typed(v("audit-log-truncate-max-batch-size", NO_AUDIT), Takes::Int),
    typed(v("audit-log-truncate-max-event-size", NO_AUDIT), Takes::Int),
    v("audit-webhook-config-file", NO_AUDIT),
    typed(v("audit-webhook-initial-backoff", NO_AUDIT), Takes::Duration),
    v("audit-webhook-mode", NO_AUDIT),
    v("audit-webhook-version", NO_AUDIT),
    typed(v("audit-webhook-batch-initial-backoff", NO_AUDIT), Takes::Duration),
    typed(v("audit-webhook-batch-buffer-size", NO_AUDIT), Takes::Int),
    typed(v("audit-webhook-batch-max-size", NO_AUDIT), Takes::Int),
    typed(v("audit-webhook-batch-max-wait", NO_AUDIT), Takes::Duration),
    b("audit-webhook-batch-throttle-enable", NO_AUDIT),
    typed(v("audit-webhook-batch-throttle-qps", NO_AUDIT), Takes::Float),
    typed(v("audit-webhook-batch-throttle-burst", NO_AUDIT), Takes::Int),
    b("audit-webhook-truncate-enabled", NO_AUDIT),
    typed(v("audit-webhook-truncate-max-batch-size", NO_AUDIT), Takes::Int),
    typed(v("audit-webhook-truncate-max-event-size", NO_AUDIT), Takes::Int),
];

/// The flags of [`INERT`] given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InertFlags {
    given: Vec<&'static str>,
}

impl InertFlags {
    /// One warning for each flag given, in a fixed order.
    pub fn warnings(&self) -> Vec<String> {
        INERT
            .iter()
            .filter(|i| self.given.contains(&i.flag))
            .map(|i| {
                format!(
                    "--{} is accepted for compatibility with prometheus-adapter and has no effect: {}",
                    i.flag, i.why
                )
            })
            .collect()
    }
}

impl FromArgMatches for InertFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = InertFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for i in INERT {
            if matches.value_source(i.flag) == Some(ValueSource::CommandLine)
                && !self.given.contains(&i.flag)
            {
                self.given.push(i.flag);
            }
        }
        Ok(())
    }
}

impl Args for InertFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for i in INERT {
            let mut arg = Arg::new(i.flag)
                .long(i.flag)
                .hide(true)
                .action(ArgAction::Append);
            if let Some(underscored) = i.underscored {
                arg = arg.alias(underscored);
            }
            arg = match i.takes {
                Takes::Bool => arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true")
                    .value_name("BOOL")
                    .value_parser(parse_go_bool),
                Takes::Value => arg.num_args(1).value_name("VALUE"),
                Takes::Int => arg
                    .num_args(1)
                    .value_name("INT")
                    .value_parser(clap::value_parser!(i64)),
                Takes::Float => arg
                    .num_args(1)
                    .value_name("NUMBER")
                    .value_parser(clap::value_parser!(f64)),
                Takes::Duration => arg
                    .num_args(1)
                    .value_name("DURATION")
                    .value_parser(promhpa_core::duration::parse_go_duration),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
