//! Discovery decode cost: a `/api/v1/series` body of 100,000 series (20 metric names, six
//! labels each) reduced to names and label-name sets.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promhpa_prom::parse_series_response;

fn body(series: usize) -> Vec<u8> {
    let mut s = String::from("{\"status\":\"success\",\"data\":[");
    for i in 0..series {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"__name__\":\"http_requests_total_{}\",\"namespace\":\"ns-{}\",\"pod\":\"web-{i}\",\"instance\":\"10.0.{}.{}:8080\",\"job\":\"kubernetes-pods\",\"code\":\"{}\"}}",
            i % 20,
            i % 50,
            (i / 256) % 256,
            i % 256,
            200 + (i % 5)
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let b = body(100_000);
    let mut g = c.benchmark_group("series_decode");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("100k_series", |bench| {
        bench.iter(|| {
            let infos = parse_series_response(&b).unwrap();
            assert_eq!(infos.len(), 20);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
