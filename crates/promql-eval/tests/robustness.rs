//! Hostile input never panics: random PromQL assembled from fragments is parsed and, when
//! it parses, evaluated as instant and range queries; random exposition text and test
//! scripts are ingested and run.

use promhpa_promql_eval::testscript::run_script;
use promhpa_promql_eval::{
    exposition, instant_query, parse, range_query, EvalOptions, Labels, Store,
};

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
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const FRAGMENTS: &[&str] = &[
    "m",
    "n",
    "m{a=\"1\"}",
    "{__name__=~\"m|n\"}",
    "m[1m]",
    "m[5m:30s]",
    " offset 1m",
    " @ 60",
    " offset -1m",
    "(",
    ")",
    "rate(",
    "irate(",
    "deriv(",
    "histogram_quantile(",
    "0.5",
    ",",
    "NaN",
    "Inf",
    "-Inf",
    "0",
    "-1",
    "1e308",
    "sum",
    "by (a)",
    "without (le)",
    "topk(",
    "bottomk(",
    "quantile(",
    "count_values(\"v\",",
    "label_replace(",
    "\"a\"",
    "\"$1\"",
    "\"(.*)\"",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "==",
    "> bool",
    "and",
    "or",
    "unless",
    "on (a)",
    "ignoring (le)",
    "group_left",
    "group_right (a)",
    "scalar(",
    "vector(",
    "time()",
    "timestamp(",
    "absent(",
    "clamp(",
    "round(",
    "sort_desc(",
    "avg_over_time(",
    "quantile_over_time(",
    "changes(",
    "predict_linear(",
    "year(",
    "[",
    "]",
    "{",
    "}",
    "le=\"0.1\"",
    "m{le=\"+Inf\"}",
    "count(",
    "max_over_time(",
    "stddev(",
    "day_of_week(",
    " @ start()",
    " @ end()",
];

fn store() -> Store {
    let mut store = Store::new();
    let text = "# TYPE m histogram\nm{a=\"1\",le=\"0.1\"} 1\nm{a=\"1\",le=\"+Inf\"} 3\nm{a=\"2\",le=\"0.1\"} NaN\nm{a=\"2\",le=\"+Inf\"} +Inf\nn{a=\"1\"} -2\nn{a=\"3\"} 1e308\n";
    for t in 0..20 {
        exposition::ingest(&mut store, text, t * 15_000, &Labels::empty()).expect("ingest");
    }
    store
}

#[test]
fn random_queries_do_not_panic() {
    let store = store();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let opts = EvalOptions::default();
    let mut evaluated = 0;
    for _ in 0..20_000 {
        let n = 1 + rng.next() % 8;
        let q: String = (0..n)
            .map(|_| rng.pick(FRAGMENTS))
            .collect::<Vec<_>>()
            .join("");
        let Ok(expr) = parse(&q) else { continue };
        evaluated += 1;
        let t = (rng.next() % 400_000) as i64 - 50_000;
        let _ = instant_query(&store, &expr, t, opts);
        let _ = range_query(&store, &expr, t, t + 120_000, 30_000, opts);
    }
    assert!(evaluated > 500, "only {evaluated} random queries parsed");
}

#[test]
fn random_exposition_and_scripts_do_not_panic() {
    let mut rng = Rng(0xfeed_5eed_0bad_cafe);
    let pieces = [
        "m",
        "{",
        "}",
        "a=\"x\"",
        ",",
        " ",
        "1",
        "NaN",
        "-Inf",
        "# TYPE m histogram",
        "\n",
        "# EOF",
        "\"",
        "\\",
        "le=\"1\"",
        "1e999",
        "0x1p3",
        "_",
        "stale",
        "x3",
        "+1x2",
        "load 1m",
        "eval instant at 1m m",
        "eval range from 0 to 1m step 0 m",
        "clear",
        "  ",
        "é",
        "{}",
    ];
    for _ in 0..5_000 {
        let n = 1 + rng.next() % 30;
        let text: String = (0..n)
            .map(|_| rng.pick(&pieces))
            .collect::<Vec<_>>()
            .join("");
        let mut store = Store::new();
        let _ = exposition::ingest(&mut store, &text, 0, &Labels::empty());
        let _ = run_script("random", &text);
    }
}
