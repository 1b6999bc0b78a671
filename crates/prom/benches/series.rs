//! Discovery decode cost: a `/api/v1/series` body of 100,000 series (50 metric names, 8 to
//! 10 labels each, `promhpa_test_support::series_body`) reduced to names and label-name sets.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promhpa_prom::parse_series_response;
use promhpa_test_support::series_body::{self, SeriesBody};

const SERIES: usize = 100_000;

fn bench(c: &mut Criterion) {
    let body = SeriesBody::to_vec(SERIES);
    let mut g = c.benchmark_group("series_decode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(10);
    g.bench_function("100k_series", |bench| {
        bench.iter(|| {
            let infos = parse_series_response(&body).unwrap();
            assert_eq!(infos.len(), series_body::distinct_series(SERIES));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
