//! `histogram_quantile` over classic `le` buckets, in Prometheus 3.x's exact order of
//! operations, and the plain quantile used by `quantile` and `quantile_over_time`.

/// One classic bucket: its upper bound and cumulative count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// What `bucket_quantile` had to correct in its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuantileFixes {
    /// A genuine decrease was forced up to the running maximum (Prometheus emits an info
    /// annotation for this).
    pub forced_monotonic: bool,
    /// A tiny (relative < 1e-12) difference between neighbours was flattened silently.
    pub fixed_precision: bool,
}

const SMALL_DELTA_TOLERANCE: f64 = 1e-12;
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

/// Go's `util/almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Go's `sort.Search(n, pred)`: the smallest index in `[0, n)` for which `pred` is true,
/// assuming `pred` is monotonic; `n` if none. With a non-monotonic predicate the probe
/// order decides, exactly as in Go.
fn go_sort_search(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0usize, n);
    while i < j {
        let h = (i + j) / 2;
        if !pred(h) {
            i = h + 1;
        } else {
            j = h;
        }
    }
    i
}

/// Prometheus' `BucketQuantile` for classic buckets. `buckets` is consumed in any order.
pub fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, QuantileFixes) {
    let mut fixes = QuantileFixes::default();
    if q.is_nan() {
        return (f64::NAN, fixes);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, fixes);
    }
    if q > 1.0 {
        return (f64::INFINITY, fixes);
    }
    if buckets.is_empty() {
        return (f64::NAN, fixes);
    }
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    if buckets[buckets.len() - 1].upper_bound != f64::INFINITY {
        return (f64::NAN, fixes);
    }
    // Coalesce equal bounds, adding their counts.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => merged.push(b),
        }
    }
    let mut buckets = merged;
    fixes = ensure_monotonic_and_ignore_small_deltas(&mut buckets, SMALL_DELTA_TOLERANCE);
    if buckets.len() < 2 {
        return (f64::NAN, fixes);
    }
    let n = buckets.len();
    let observations = buckets[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, fixes);
    }
    let rank = q * observations;
    let b = go_sort_search(n - 1, |i| buckets[i].count >= rank);
    if b == n - 1 {
        return (buckets[n - 2].upper_bound, fixes);
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return (buckets[0].upper_bound, fixes);
    }
    let (start, prev_count) = if b == 0 {
        (0.0, 0.0)
    } else {
        (buckets[b - 1].upper_bound, buckets[b - 1].count)
    };
    let end = buckets[b].upper_bound;
    let count = buckets[b].count - prev_count;
    let rank = rank - prev_count;
    (start + (end - start) * (rank / count), fixes)
}

/// Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`: a running-maximum envelope in which
/// relative steps below `tolerance` are flattened.
fn ensure_monotonic_and_ignore_small_deltas(
    buckets: &mut [Bucket],
    tolerance: f64,
) -> QuantileFixes {
    let mut fixes = QuantileFixes::default();
    if buckets.is_empty() {
        return fixes;
    }
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, tolerance) {
            b.count = prev;
            fixes.fixed_precision = true;
            continue;
        }
        if cur < prev {
            b.count = prev;
            fixes.forced_monotonic = true;
            continue;
        }
        prev = cur;
    }
    fixes
}

/// The quantile of plain values used by `quantile` and `quantile_over_time`: linear
/// interpolation between the closest ranks, NaN sorting first.
pub fn value_quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    #[test]
    fn interpolates_within_bucket() {
        let (v, _) = bucket_quantile(0.5, b(&[(1.0, 5.0), (2.0, 8.0), (f64::INFINITY, 10.0)]));
        assert_eq!(v, 1.0);
        let (v, _) = bucket_quantile(0.75, b(&[(1.0, 5.0), (2.0, 8.0), (f64::INFINITY, 10.0)]));
        assert_eq!(v, 1.8333333333333335);
    }

    #[test]
    fn reports_forced_monotonicity_but_not_precision_fixes() {
        let (_, f) = bucket_quantile(0.5, b(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 15.0)]));
        assert!(f.forced_monotonic);
        let (_, f) = bucket_quantile(
            0.5,
            b(&[(1.0, 10.0), (2.0, 9.99999999999), (f64::INFINITY, 10.0)]),
        );
        assert!(!f.forced_monotonic && f.fixed_precision);
    }

    #[test]
    fn missing_inf_bucket_is_nan() {
        let (v, _) = bucket_quantile(0.5, b(&[(1.0, 10.0), (2.0, 20.0)]));
        assert!(v.is_nan());
    }

    #[test]
    fn plain_quantile_interpolates() {
        assert_eq!(value_quantile(0.5, vec![3.0, 1.0, 2.0, 4.0]), 2.5);
        assert!(value_quantile(0.5, vec![]).is_nan());
    }
}
