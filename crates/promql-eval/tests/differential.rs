//! Differential test: the embedded evaluator against the real Prometheus engine, through
//! `promtool test rules` (Debian's `prometheus` package), on a generated corpus of rule-template
//! shapes and randomised expressions over randomised series.
//!
//! promtool 2.42 (Debian 12) differs from Prometheus 3.x, which this evaluator follows, in
//! ways the corpus keeps out of reach on purpose:
//! - range selectors and the lookback window are left-open in 3.x (`(t-r, t]`) and closed in
//!   2.x (`[t-r, t]`): evaluation times sit 7 s off the 15 s sample grid, so no sample lies on
//!   a boundary;
//! - subquery steps are aligned with `<=` in 3.x and `<` in 2.x: same offset avoids ties;
//! - `histogram_quantile` flattens relative bucket differences below 1e-12 since 2.49: the
//!   generated buckets differ by whole observations;
//! - 3.x sums with Kahan-Neumaier compensation (`sum`, `avg`, `sum_over_time`,
//!   `avg_over_time`): values are compared with a 1e-9 relative tolerance;
//! - `rate`, `increase` and `delta` bound the extrapolation to the range start in a
//!   different order (3.x: threshold, then the counter's zero point; 2.x: the other way
//!   round). This one cannot be avoided by construction, so the evaluator is compared in
//!   its `Extrapolation::Prometheus2` mode, and the 3.x results that differ are counted and
//!   must all be explained by that mode.
//! - which of several equal-valued series `topk`/`bottomk` keep depends on the order series
//!   were created in, which promtool randomises (it loads input series from a map): for them
//!   only the selected values are compared.
//!
//! Any other difference fails the test.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::Command;

use promhpa_promql_eval::functions::Extrapolation;
use promhpa_promql_eval::gofloat::parse_go_float;
use promhpa_promql_eval::testscript::parse_series_labels;
use promhpa_promql_eval::{instant_query, parse, EvalOptions, Labels, Store, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const INTERVAL_S: i64 = 15;
const SAMPLES: usize = 60;
const BOUNDS: [&str; 6] = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];

struct Scenario {
    series: Vec<(String, Vec<Option<f64>>)>,
    exprs: Vec<(String, i64)>,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn gen_scenario(rng: &mut Rng) -> Scenario {
    let mut series = Vec::new();
    let pods: Vec<String> = (0..1 + rng.below(3)).map(|i| format!("web-{i}")).collect();
    for pod in &pods {
        for code in ["200", "500"] {
            let mut v = rng.below(50) as f64;
            let mut vals = Vec::new();
            for i in 0..SAMPLES {
                if i > 0 && rng.below(40) == 0 {
                    v = 0.0; // counter reset
                }
                v += rng.below(30) as f64;
                vals.push(if rng.below(25) == 0 { None } else { Some(v) });
            }
            series.push((
                format!("http_requests_total{{pod=\"{pod}\", code=\"{code}\"}}"),
                vals,
            ));
        }
        // Cumulative histogram: each scrape adds observations spread over the buckets.
        let mut cum = [0.0f64; 6];
        let mut per_bucket: Vec<Vec<Option<f64>>> = vec![Vec::new(); 6];
        for _ in 0..SAMPLES {
            let n = rng.below(20);
            for _ in 0..n {
                let b = rng.below(6) as usize;
                for c in cum.iter_mut().skip(b) {
                    *c += 1.0;
                }
            }
            for (k, c) in cum.iter().enumerate() {
                per_bucket[k].push(Some(*c));
            }
        }
        for (k, le) in BOUNDS.iter().enumerate() {
            series.push((
                format!("latency_seconds_bucket{{pod=\"{pod}\", le=\"{le}\"}}"),
                per_bucket[k].clone(),
            ));
        }
        let base = rng.below(20) as f64;
        series.push((
            format!("inflight_requests{{pod=\"{pod}\"}}"),
            (0..SAMPLES)
                .map(|_| {
                    if rng.below(30) == 0 {
                        None
                    } else {
                        Some(base + rng.below(10) as f64)
                    }
                })
                .collect(),
        ));
        series.push((
            format!("gpu_utilization{{pod=\"{pod}\", gpu=\"0\"}}"),
            (0..SAMPLES)
                .map(|_| Some(round3(rng.unit() * 100.0)))
                .collect(),
        ));
    }
    series.push((
        "desired_replicas{deployment=\"web\"}".into(),
        (0..SAMPLES)
            .map(|_| Some(1.0 + rng.below(6) as f64))
            .collect(),
    ));

    let ranges = ["1m", "2m", "3m", "5m"];
    let mut exprs = Vec::new();
    let mut add = |rng: &mut Rng, e: String| {
        // Evaluation times 7 s off the sample grid, late enough for 5m ranges.
        let step = 25 + rng.below((SAMPLES as u64) - 22) as i64;
        exprs.push((e, step * INTERVAL_S + 7));
    };
    // The shapes of the bundled rules' metricsQuery templates.
    add(
        rng,
        "sum(rate(http_requests_total{code!=\"\"}[2m])) by (pod)".into(),
    );
    add(
        rng,
        "histogram_quantile(0.95, sum by (le, pod) (rate(latency_seconds_bucket[2m])))".into(),
    );
    add(
        rng,
        "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))".into(),
    );
    add(rng, "avg_over_time(inflight_requests[1m])".into());
    add(
        rng,
        "sum(avg_over_time(gpu_utilization[2m])) by (pod)".into(),
    );
    add(rng, "max(desired_replicas{deployment=\"web\"})".into());
    add(rng, "sum(inflight_requests) by (pod)".into());
    add(
        rng,
        "sum(rate(http_requests_total{code=~\"5..\"}[5m])) by (pod) / sum(rate(http_requests_total[5m])) by (pod)"
            .into(),
    );
    // The seeds' metricsQuery templates as prometheus-adapter renders them for a request
    // (label matchers for the namespace and the requested pods; `le` aggregated away in
    // the first, as one seed writes it, which leaves nothing to compute).
    add(
        rng,
        "histogram_quantile(0.95, sum by (pod) (rate(latency_seconds_bucket{pod=~\"web-0|web-1\"}[1m])))".into(),
    );
    add(
        rng,
        "histogram_quantile(0.95, sum by (le, pod) (rate(latency_seconds_bucket{pod=~\"web-0|web-1\"}[1m])))".into(),
    );
    add(
        rng,
        "sum(rate(http_requests_total{pod=~\"web-0|web-1\",code!=\"\"}[2m])) by (pod)".into(),
    );
    add(
        rng,
        "sum by (pod) (inflight_requests{pod=~\"web-.*\"})".into(),
    );
    add(
        rng,
        "avg by (pod) (gpu_utilization{pod=~\"web-0|web-2\"})".into(),
    );
    add(
        rng,
        "max(desired_replicas{deployment=\"web\"}) by (deployment)".into(),
    );
    // The shapes of the rule files under rules/ (cadvisor, DCGM, generic application).
    add(
        rng,
        "sum(rate(http_requests_total{pod=~\"web-0|web-2\",code!=\"POD\",code!=\"\"}[5m])) by (pod)".into(),
    );
    add(
        rng,
        "avg(avg_over_time(gpu_utilization{pod=~\"web-0|web-1\"}[1m])) by (pod)".into(),
    );
    add(rng, "avg(inflight_requests{pod=~\".+\"}) by (pod)".into());
    add(
        rng,
        "sum(http_requests_total{pod=~\"web-.*\",code!=\"\"}) by (pod)".into(),
    );
    add(
        rng,
        "count by (__name__) ({__name__=~\"^http_.*\",pod!=\"\"})".into(),
    );
    add(
        rng,
        "count by (__name__, pod) ({pod!=\"\",__name__!~\"^latency.*\"})".into(),
    );
    // Randomised compositions.
    let range_fns = [
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "resets",
        "changes",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "present_over_time",
    ];
    let metrics = [
        "http_requests_total",
        "inflight_requests",
        "gpu_utilization",
        "latency_seconds_bucket{le=\"0.25\"}",
    ];
    let aggs = [
        "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
    ];
    let groupings = [
        "by (pod)",
        "without (pod)",
        "",
        "by (code)",
        "without (le, code)",
    ];
    let math = [
        "abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10",
    ];
    for _ in 0..14 {
        let f = rng.pick(&range_fns);
        let m = rng.pick(&metrics);
        let r = rng.pick(&ranges);
        let off = if rng.below(4) == 0 { " offset 1m" } else { "" };
        let inner = format!("{f}({m}[{r}]{off})");
        let e = match rng.below(9) {
            0 => inner,
            1 => format!("{} {}({inner})", rng.pick(&aggs), rng.pick(&groupings)),
            2 => format!("{}({inner})", rng.pick(&math)),
            3 => format!("{} > bool {}", inner, rng.below(20)),
            4 => format!("topk({}, {inner})", 1 + rng.below(3)),
            5 => format!("quantile by (pod) (0.{}, {inner})", 1 + rng.below(9)),
            6 => {
                format!("sum by (pod) ({m}) * on (pod) group_left avg by (pod) (inflight_requests)")
            }
            7 => format!("clamp({inner}, {}, {})", rng.below(5), 5 + rng.below(20)),
            _ => format!(
                "{}({m}) {} {}({m})",
                rng.pick(&["count", "sum", "max"]),
                rng.pick(&["+", "-", "*", "/", "and", "or", "unless"]),
                rng.pick(&["count", "sum", "min"]),
            ),
        };
        add(rng, e);
    }
    add(rng, "count_values(\"value\", desired_replicas)".into());
    add(rng, "sort_desc(sum by (pod) (inflight_requests))".into());
    add(
        rng,
        "label_replace(inflight_requests, \"shard\", \"$1\", \"pod\", \"web-(.*)\")".into(),
    );
    add(rng, "absent(nonexistent{job=\"x\"})".into());
    add(rng, "timestamp(inflight_requests)".into());
    add(
        rng,
        "max_over_time(sum(rate(http_requests_total[61s]))[4m:30s])".into(),
    );
    add(rng, "scalar(max(desired_replicas)) * vector(2)".into());
    Scenario { series, exprs }
}

fn fmt_values(vals: &[Option<f64>]) -> String {
    vals.iter()
        .map(|v| match v {
            Some(v) => format!("{v}"),
            None => "_".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

type Result_ = Result<Vec<(Labels, f64)>, String>;

/// Parses promtool's `got:` list: `{a="b"} 1E+00, {} NaN`.
fn parse_got(mut s: &str) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if s.is_empty() {
            break;
        }
        let (labels, rest) = parse_series_labels(s).expect("labels in promtool output");
        let rest = rest.trim_start();
        let end = rest.find(", {").unwrap_or(rest.len());
        let v = parse_go_float(rest[..end].trim()).expect("value in promtool output");
        out.push((labels, v));
        s = &rest[end..];
    }
    out
}

fn run_promtool(scenarios: &[Scenario]) -> HashMap<(usize, usize), Result_> {
    let dir = std::env::temp_dir().join(format!("promhpa-differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut y = String::from("rule_files: []\nevaluation_interval: 1s\ntests:\n");
    for (si, sc) in scenarios.iter().enumerate() {
        let _ = writeln!(y, "  - interval: {INTERVAL_S}s\n    input_series:");
        for (name, vals) in &sc.series {
            let _ = writeln!(
                y,
                "      - series: {}\n        values: {}",
                yaml_quote(name),
                yaml_quote(&fmt_values(vals))
            );
        }
        let _ = writeln!(y, "    promql_expr_test:");
        for (ei, (e, t)) in sc.exprs.iter().enumerate() {
            let _ = writeln!(
                y,
                "      - expr: {}\n        eval_time: {t}s\n        exp_samples: []",
                yaml_quote(&format!("{e} # case={si}.{ei}"))
            );
        }
    }
    let path = dir.join("corpus.yml");
    std::fs::write(&path, &y).expect("write corpus");
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian package `prometheus`) must be installed: {e}")
        });
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let mut results = HashMap::new();
    let mut current: Option<(usize, usize)> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(p) = l.find("# case=") {
            let id = &l[p + 7..];
            let id_end = id
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(id.len());
            let (a, b) = id[..id_end].split_once('.').expect("case id");
            let key = (a.parse().expect("case id"), b.parse().expect("case id"));
            current = Some(key);
            if let Some(e) = l.find(", err: ") {
                results.insert(key, Err(l[e + 7..].to_string()));
                current = None;
            }
        } else if let Some(got) = l.strip_prefix("got: ") {
            if let Some(key) = current.take() {
                results.insert(key, Ok(parse_got(got)));
            }
        }
    }
    results
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn evaluator_matches_promtool_on_generated_corpus() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let scenarios: Vec<Scenario> = (0..30).map(|_| gen_scenario(&mut rng)).collect();
    let reference = run_promtool(&scenarios);
    let mut mismatches = Vec::new();
    let mut compared = 0;
    let mut extrapolation_differences = 0;
    let mut non_empty = 0;
    for (si, sc) in scenarios.iter().enumerate() {
        let mut store = Store::new();
        for (name, vals) in &sc.series {
            let (labels, _) = parse_series_labels(name).expect("series name");
            for (i, v) in vals.iter().enumerate() {
                if let Some(v) = v {
                    store
                        .append(&labels, i as i64 * INTERVAL_S * 1000, *v)
                        .expect("append");
                }
            }
        }
        for (ei, (e, t)) in sc.exprs.iter().enumerate() {
            let expected = reference.get(&(si, ei)).cloned().unwrap_or(Ok(Vec::new()));
            let eval = |opts: EvalOptions| -> Result_ {
                parse(e)
                    .and_then(|x| instant_query(&store, &x, t * 1000, opts))
                    .map(|v| match v {
                        Value::Scalar(f) => vec![(Labels::empty(), f)],
                        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
                        other => panic!("unexpected {other:?}"),
                    })
                    .map_err(|e| e.to_string())
            };
            let got = eval(EvalOptions {
                extrapolation: Extrapolation::Prometheus2,
                ..EvalOptions::default()
            });
            if eval(EvalOptions::default()) != got {
                extrapolation_differences += 1;
            }
            compared += 1;
            match (&expected, &got) {
                (Err(_), Err(_)) => {}
                (Ok(exp), Ok(got)) => {
                    if !exp.is_empty() {
                        non_empty += 1;
                    }
                    let mut exp_sorted = exp.clone();
                    exp_sorted.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut got_sorted = got.clone();
                    got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
                    let ties_unspecified = e.starts_with("topk") || e.starts_with("bottomk");
                    if ties_unspecified {
                        exp_sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
                        got_sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
                    }
                    let same = exp_sorted.len() == got_sorted.len()
                        && exp_sorted
                            .iter()
                            .zip(&got_sorted)
                            .all(|(a, b)| (ties_unspecified || a.0 == b.0) && close(a.1, b.1));
                    if !same {
                        mismatches.push(format!(
                            "scenario {si} case {ei} at {t}s: {e}\n  promtool: {exp_sorted:?}\n  promhpa:  {got_sorted:?}"
                        ));
                    }
                }
                _ => mismatches.push(format!(
                    "scenario {si} case {ei} at {t}s: {e}\n  promtool: {expected:?}\n  promhpa:  {got:?}"
                )),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} cases differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        non_empty * 2 > compared,
        "too few non-empty results: {non_empty}/{compared}"
    );
    // The 3.x order of the extrapolation bounds must change some rate results in this
    // corpus, or the comparison above would not be exercising it.
    eprintln!(
        "{compared} cases agree with promtool; {extrapolation_differences} differ under 3.x extrapolation"
    );
    assert!(extrapolation_differences > 0 && extrapolation_differences * 10 < compared);
}
