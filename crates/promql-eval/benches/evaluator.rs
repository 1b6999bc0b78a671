//! Criterion benches of the embedded evaluator and the exposition ingest.
//!
//! `cargo bench -p promhpa-promql-eval --bench evaluator`

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use promhpa_promql_eval::{exposition, instant_query, parse, EvalOptions, Labels, Store};

const SCRAPE_MS: i64 = 15_000;
const BOUNDS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// 1,000 pods x 12 buckets, scraped every 15 s for 5 minutes.
fn histogram_store() -> Store {
    let mut store = Store::new();
    for pod in 0..1000 {
        let ids: Vec<_> = BOUNDS
            .iter()
            .map(|le| {
                let l = Labels::from_pairs([
                    ("__name__", "x_bucket"),
                    ("pod", &format!("pod-{pod}")),
                    ("le", le),
                ]);
                store.series_id(&l).expect("series")
            })
            .collect();
        for step in 0..=20 {
            for (b, id) in ids.iter().enumerate() {
                let count = (step * (pod % 7 + 1) * (b as i64 + 1)) as f64;
                store.append_id(*id, step * SCRAPE_MS, count);
            }
        }
    }
    store
}

/// 100,000 counters scraped every 15 s for 2 minutes.
fn counter_store() -> Store {
    let mut store = Store::new();
    for i in 0..100_000 {
        let l = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("pod", &format!("pod-{}", i / 10)),
            ("code", &format!("{}", 200 + i % 10)),
        ]);
        let id = store.series_id(&l).expect("series");
        for step in 0..=8 {
            store.append_id(id, step * SCRAPE_MS, (step * (i % 13 + 1)) as f64);
        }
    }
    store
}

/// About 10 MB of text exposition: histograms and counters as an exporter writes them.
fn exposition_text() -> String {
    let mut out = String::with_capacity(11 << 20);
    let _ = writeln!(out, "# HELP http_request_duration_seconds Request latency.");
    let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
    let mut pod = 0;
    while out.len() < 10 << 20 {
        for (b, le) in BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{namespace=\"default\",pod=\"api-{pod}\",method=\"GET\",le=\"{le}\"}} {}",
                (b + 1) * 17 + pod
            );
        }
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{namespace=\"default\",pod=\"api-{pod}\",method=\"GET\"}} {}.25",
            pod * 3
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{namespace=\"default\",pod=\"api-{pod}\",method=\"GET\"}} {}",
            12 * 17 + pod
        );
        pod += 1;
    }
    out
}

fn benches(c: &mut Criterion) {
    let opts = EvalOptions::default();
    let at = 20 * SCRAPE_MS;

    let store = histogram_store();
    let expr =
        parse("histogram_quantile(0.95, sum by (le, pod) (rate(x_bucket[1m])))").expect("query");
    c.bench_function("histogram_quantile 1000 pods x 12 buckets", |b| {
        b.iter(|| instant_query(&store, &expr, at, opts).expect("eval"))
    });
    drop(store);

    let store = counter_store();
    let expr = parse("rate(http_requests_total[1m])").expect("query");
    c.bench_function("rate over 100000 series", |b| {
        b.iter(|| instant_query(&store, &expr, 8 * SCRAPE_MS, opts).expect("eval"))
    });
    drop(store);

    let text = exposition_text();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("10 MB exposition, new series", |b| {
        b.iter_batched(
            Store::new,
            |mut store| {
                exposition::ingest(&mut store, &text, 0, &Labels::empty()).expect("ingest");
                store
            },
            BatchSize::LargeInput,
        )
    });
    let mut warm = Store::new();
    exposition::ingest(&mut warm, &text, 0, &Labels::empty()).expect("ingest");
    let mut t = 0;
    group.bench_function("10 MB exposition, known series", |b| {
        b.iter(|| {
            t += SCRAPE_MS;
            exposition::ingest(&mut warm, &text, t, &Labels::empty()).expect("ingest")
        })
    });
    group.finish();
}

criterion_group!(evaluator, benches);
criterion_main!(evaluator);
