//! PromQL functions.

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use std::borrow::Cow;

pub use crate::eval::Extrapolation;
use crate::eval::{check_unique_labelsets, offset_ms, same_metric_name, unwrap_parens, Evaluator};
use crate::gofloat::parse_go_float;
use crate::labels::{Labels, METRIC_NAME};
use crate::quantile::{bucket_quantile, value_quantile, Bucket};
use crate::store::is_stale;
use crate::value::{Sample, Value};
use crate::EvalError;

/// Neumaier-compensated summation step, as Prometheus' `kahanSumInc`.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Go's `math.Max`.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        return f64::INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { b } else { a };
    }
    if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { a } else { b };
    }
    if a < b {
        a
    } else {
        b
    }
}

fn linear_regression(points: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Prometheus' `extrapolatedRate` for float samples in `(range_end - range, range_end]`.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    range_end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
    mode: Extrapolation,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let range_start = range_end.saturating_sub(range);
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.1 - first.1;
    if is_counter {
        let mut last_value = 0.0;
        for &(_, v) in points {
            if v < last_value {
                result += last_value;
            }
            last_value = v;
        }
    }
    let mut duration_to_start = (first.0 - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled_interval = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled_interval / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    let zero_point = |duration_to_start: f64| {
        if is_counter && result > 0.0 && first.1 >= 0.0 {
            duration_to_start.min(sampled_interval * (first.1 / result))
        } else {
            duration_to_start
        }
    };
    match mode {
        Extrapolation::Prometheus3 => {
            if duration_to_start >= threshold {
                duration_to_start = average / 2.0;
            }
            duration_to_start = zero_point(duration_to_start);
        }
        Extrapolation::Prometheus2 => {
            duration_to_start = zero_point(duration_to_start);
            if duration_to_start >= threshold {
                duration_to_start = average / 2.0;
            }
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (t0, v0) = points[points.len() - 2];
    let (t1, v1) = points[points.len() - 1];
    let mut result = v1;
    if !is_rate || v1 >= v0 || v1.is_nan() || v0.is_nan() {
        result = v1 - v0;
    }
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn avg_over(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for v in values {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_sum_inc(v, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn variance_over(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

const RANGE_FUNCTIONS: &[&str] = &[
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
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
];

/// Go's `math.Frexp`: `x` as a fraction in [0.5, 1) times a power of two; zero, infinities
/// and NaN come back as they are, with exponent 0.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    (f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52)), exp)
}

/// Go's `math.Log2` (which `log10` builds on, as Go's `math.Log10` does): exact for powers
/// of two, otherwise `ln` of the fraction scaled as Go scales it, so that e.g. `log10(1000)`
/// is 3 as in Prometheus. The last bit still depends on the platform's `ln` (Go has its
/// own, and fuses the multiply-add on arm64).
fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    frac.ln() * std::f64::consts::LOG2_E + f64::from(exp)
}

fn simple_math(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => go_log2,
        "log10" => |v: f64| go_log2(v) * std::f64::consts::LOG10_2,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

impl<'a> Evaluator<'a> {
    fn arg(call: &Call, i: usize) -> Result<&Expr, EvalError> {
        call.args.args.get(i).map(|b| &**b).ok_or_else(|| {
            EvalError::Execution(format!("{}(): missing argument {}", call.func.name, i + 1))
        })
    }

    pub(crate) fn call(&self, call: &Call, ts: i64) -> Result<Value, EvalError> {
        let name = call.func.name;
        if RANGE_FUNCTIONS.contains(&name) {
            return self.range_function(call, ts).map(Value::Vector);
        }
        if let Some(f) = simple_math(name) {
            let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
            return map_values(v, ts, f);
        }
        match name {
            "time" => Ok(Value::Scalar(ts as f64 / 1000.0)),
            "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
            "scalar" => {
                let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
            }
            "vector" => {
                let s = self.eval_scalar(Self::arg(call, 0)?, ts, name)?;
                Ok(Value::Vector(vec![Sample {
                    labels: Labels::empty(),
                    t: ts,
                    v: s,
                }]))
            }
            "round" => {
                let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                let to_nearest = match call.args.args.get(1) {
                    Some(e) => self.eval_scalar(e, ts, name)?,
                    None => 1.0,
                };
                let inv = 1.0 / to_nearest;
                map_values(v, ts, move |x| (x * inv + 0.5).floor() / inv)
            }
            "clamp" => {
                let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                let min = self.eval_scalar(Self::arg(call, 1)?, ts, name)?;
                let max = self.eval_scalar(Self::arg(call, 2)?, ts, name)?;
                if max < min {
                    return Ok(Value::Vector(Vec::new()));
                }
                map_values(v, ts, move |x| go_max(min, go_min(max, x)))
            }
            "clamp_min" => {
                let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                let min = self.eval_scalar(Self::arg(call, 1)?, ts, name)?;
                map_values(v, ts, move |x| go_max(min, x))
            }
            "clamp_max" => {
                let v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                let max = self.eval_scalar(Self::arg(call, 1)?, ts, name)?;
                map_values(v, ts, move |x| go_min(max, x))
            }
            "timestamp" => {
                let arg = Self::arg(call, 0)?;
                let from_selector = matches!(unwrap_parens(arg), Expr::VectorSelector(_));
                let v = self.eval_vector(arg, ts, name)?;
                let out: Vec<Sample> = v
                    .into_iter()
                    .map(|s| Sample {
                        labels: s.labels.without_name(),
                        t: ts,
                        v: if from_selector { s.t } else { ts } as f64 / 1000.0,
                    })
                    .collect();
                check_unique_labelsets(&out)?;
                Ok(Value::Vector(out))
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(Self::arg(call, 0)?, ts, name)?;
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    use std::cmp::Ordering;
                    match (a.v.is_nan(), b.v.is_nan()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ => {
                            let o = a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal);
                            if desc {
                                o.reverse()
                            } else {
                                o
                            }
                        }
                    }
                });
                for s in &mut v {
                    s.t = ts;
                }
                Ok(Value::Vector(v))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let part = date_part(name);
                match call.args.args.first() {
                    None => Ok(Value::Vector(vec![Sample {
                        labels: Labels::empty(),
                        t: ts,
                        v: part(ts.div_euclid(1000)),
                    }])),
                    Some(arg) => {
                        let v = self.eval_vector(arg, ts, name)?;
                        map_values(
                            v,
                            ts,
                            |x| {
                                if x.is_nan() {
                                    f64::NAN
                                } else {
                                    part(x as i64)
                                }
                            },
                        )
                    }
                }
            }
            "label_replace" => self.label_replace(call, ts),
            "label_join" => self.label_join(call, ts),
            "absent" => {
                let arg = Self::arg(call, 0)?;
                let v = self.eval_vector(arg, ts, name)?;
                if !v.is_empty() {
                    return Ok(Value::Vector(Vec::new()));
                }
                Ok(Value::Vector(vec![Sample {
                    labels: absent_labels(arg),
                    t: ts,
                    v: 1.0,
                }]))
            }
            "absent_over_time" => {
                let arg = Self::arg(call, 0)?;
                let (series, _, _) = self.range_arg(arg, ts)?;
                if !series.is_empty() {
                    return Ok(Value::Vector(Vec::new()));
                }
                Ok(Value::Vector(vec![Sample {
                    labels: absent_labels(arg),
                    t: ts,
                    v: 1.0,
                }]))
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(Self::arg(call, 0)?, ts, name)?;
                let v = self.eval_vector(Self::arg(call, 1)?, ts, name)?;
                histogram_quantile(q, v, ts).map(Value::Vector)
            }
            "quantile_over_time" => {
                let q = self.eval_scalar(Self::arg(call, 0)?, ts, name)?;
                let (series, _, _) = self.range_arg(Self::arg(call, 1)?, ts)?;
                let out: Vec<Sample> = series
                    .into_iter()
                    .map(|s| Sample {
                        labels: s.labels.without_name(),
                        t: ts,
                        v: value_quantile(q, s.points.iter().map(|p| p.1).collect()),
                    })
                    .collect();
                check_unique_labelsets(&out)?;
                Ok(Value::Vector(out))
            }
            "predict_linear" => {
                let (series, _, _) = self.range_arg(Self::arg(call, 0)?, ts)?;
                let d = self.eval_scalar(Self::arg(call, 1)?, ts, name)?;
                let mut out = Vec::new();
                for s in series {
                    if s.points.len() < 2 {
                        continue;
                    }
                    let (slope, intercept) = linear_regression(&s.points, ts);
                    out.push(Sample {
                        labels: s.labels.without_name(),
                        t: ts,
                        v: slope * d + intercept,
                    });
                }
                check_unique_labelsets(&out)?;
                Ok(Value::Vector(out))
            }
            other => Err(EvalError::Unsupported(format!("function {other}()"))),
        }
    }

    fn range_function(&self, call: &Call, ts: i64) -> Result<Vec<Sample>, EvalError> {
        let arg = Self::arg(call, 0)?;
        if let Expr::MatrixSelector(ms) = unwrap_parens(arg) {
            // Straight from the store: no copy of the samples unless staleness markers
            // have to be dropped.
            let end = self
                .at_time(&ms.vs.at, ts)
                .saturating_sub(offset_ms(&ms.vs.offset));
            let range = ms.range.as_millis() as i64;
            let matchers = Self::selector_matchers(&ms.vs)?;
            let inputs: Vec<RangeInput<'_>> = self
                .store
                .select(&matchers)
                .into_iter()
                .filter_map(|s| {
                    let pts = s.range(end.saturating_sub(range), end);
                    let pts: Cow<'_, [(i64, f64)]> = if pts.iter().any(|p| is_stale(p.1)) {
                        Cow::Owned(pts.iter().copied().filter(|p| !is_stale(p.1)).collect())
                    } else {
                        Cow::Borrowed(pts)
                    };
                    (!pts.is_empty()).then_some((&s.labels, pts))
                })
                .collect();
            return apply_range_function(
                call.func.name,
                inputs,
                end,
                range,
                ts,
                self.opts.extrapolation,
            );
        }
        let (series, end, range) = self.range_arg(arg, ts)?;
        let inputs = series
            .iter()
            .map(|s| (&s.labels, Cow::Borrowed(&s.points[..])))
            .collect();
        apply_range_function(
            call.func.name,
            inputs,
            end,
            range,
            ts,
            self.opts.extrapolation,
        )
    }
}

/// One series of a range-vector argument: its labels and its samples in the range.
type RangeInput<'a> = (&'a Labels, Cow<'a, [(i64, f64)]>);

/// Applies a function of a range vector to each series' samples in `(end - range, end]`.
fn apply_range_function(
    name: &str,
    series: Vec<RangeInput<'_>>,
    end: i64,
    range: i64,
    ts: i64,
    mode: Extrapolation,
) -> Result<Vec<Sample>, EvalError> {
    let keep_name = name == "last_over_time";
    let names_equal = same_metric_name(series.iter().map(|s| s.0));
    let mut out = Vec::with_capacity(series.len());
    for (labels, points) in &series {
        let p = &points[..];
        let values = || p.iter().map(|x| x.1);
        let v = match name {
            "rate" => extrapolated_rate(p, end, range, true, true, mode),
            "increase" => extrapolated_rate(p, end, range, true, false, mode),
            "delta" => extrapolated_rate(p, end, range, false, false, mode),
            "irate" => instant_value(p, true),
            "idelta" => instant_value(p, false),
            "deriv" => {
                if p.len() < 2 {
                    None
                } else {
                    Some(linear_regression(p, p[0].0).0)
                }
            }
            "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
            "changes" => Some(
                p.windows(2)
                    .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                    .count() as f64,
            ),
            "avg_over_time" => Some(avg_over(values())),
            "min_over_time" => {
                Some(values().fold(p[0].1, |m, v| if v < m || m.is_nan() { v } else { m }))
            }
            "max_over_time" => {
                Some(values().fold(p[0].1, |m, v| if v > m || m.is_nan() { v } else { m }))
            }
            "sum_over_time" => {
                let (s, c) = values().fold((0.0, 0.0), |(s, c), v| kahan_sum_inc(v, s, c));
                Some(s + c)
            }
            "count_over_time" => Some(p.len() as f64),
            "last_over_time" => Some(p[p.len() - 1].1),
            "present_over_time" => Some(1.0),
            "stdvar_over_time" => Some(variance_over(&values().collect::<Vec<_>>())),
            "stddev_over_time" => Some(variance_over(&values().collect::<Vec<_>>()).sqrt()),
            "mad_over_time" => {
                let vals: Vec<f64> = values().collect();
                let median = value_quantile(0.5, vals.clone());
                Some(value_quantile(
                    0.5,
                    vals.iter().map(|v| (v - median).abs()).collect(),
                ))
            }
            _ => return Err(EvalError::Unsupported(format!("function {name}()"))),
        };
        if let Some(v) = v {
            out.push(Sample {
                labels: if keep_name {
                    (*labels).clone()
                } else {
                    labels.without_name()
                },
                t: ts,
                v,
            });
        }
    }
    if !(keep_name || names_equal) {
        check_unique_labelsets(&out)?;
    }
    Ok(out)
}

impl<'a> Evaluator<'a> {
    fn label_replace(&self, call: &Call, ts: i64) -> Result<Value, EvalError> {
        let v = self.eval_vector(Self::arg(call, 0)?, ts, "label_replace")?;
        let dst = self.eval_string(Self::arg(call, 1)?, ts, "label_replace")?;
        let repl = self.eval_string(Self::arg(call, 2)?, ts, "label_replace")?;
        let src = self.eval_string(Self::arg(call, 3)?, ts, "label_replace")?;
        let re_src = self.eval_string(Self::arg(call, 4)?, ts, "label_replace")?;
        let re = regex::Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| {
            EvalError::Execution(format!(
                "invalid regular expression in label_replace(): {re_src}: {e}"
            ))
        })?;
        if dst.is_empty() {
            return Err(EvalError::Execution(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let src_val = s.labels.get(&src).unwrap_or("").to_string();
            if let Some(caps) = re.captures(&src_val) {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                s.labels.set(&dst, &res);
            }
            s.t = ts;
            out.push(s);
        }
        check_unique_labelsets(&out)?;
        Ok(Value::Vector(out))
    }

    fn label_join(&self, call: &Call, ts: i64) -> Result<Value, EvalError> {
        let v = self.eval_vector(Self::arg(call, 0)?, ts, "label_join")?;
        let dst = self.eval_string(Self::arg(call, 1)?, ts, "label_join")?;
        let sep = self.eval_string(Self::arg(call, 2)?, ts, "label_join")?;
        let mut srcs = Vec::new();
        for e in call.args.args.iter().skip(3) {
            srcs.push(self.eval_string(e, ts, "label_join")?);
        }
        if dst.is_empty() {
            return Err(EvalError::Execution(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let joined = srcs
                .iter()
                .map(|n| s.labels.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&sep);
            s.labels.set(&dst, &joined);
            s.t = ts;
            out.push(s);
        }
        check_unique_labelsets(&out)?;
        Ok(Value::Vector(out))
    }
}

use promhpa_core::time::civil_from_days;

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The UTC calendar field a date function extracts from Unix seconds.
fn date_part(name: &str) -> fn(i64) -> f64 {
    match name {
        "minute" => |s| s.div_euclid(60).rem_euclid(60) as f64,
        "hour" => |s| s.div_euclid(3600).rem_euclid(24) as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_month" => |s| civil_from_days(s.div_euclid(86_400)).2 as f64,
        "day_of_year" => |s| {
            let (y, m, d) = civil_from_days(s.div_euclid(86_400));
            ((1..m).map(|mm| days_in(y, mm)).sum::<i64>() + d) as f64
        },
        "days_in_month" => |s| {
            let (y, m, _) = civil_from_days(s.div_euclid(86_400));
            days_in(y, m) as f64
        },
        "month" => |s| civil_from_days(s.div_euclid(86_400)).1 as f64,
        _ => |s| civil_from_days(s.div_euclid(86_400)).0 as f64,
    }
}

fn map_values(v: Vec<Sample>, ts: i64, f: impl Fn(f64) -> f64) -> Result<Value, EvalError> {
    let names_equal = same_metric_name(v.iter().map(|s| &s.labels));
    let out: Vec<Sample> = v
        .into_iter()
        .map(|s| Sample {
            labels: s.labels.without_name(),
            t: ts,
            v: f(s.v),
        })
        .collect();
    if !names_equal {
        check_unique_labelsets(&out)?;
    }
    Ok(Value::Vector(out))
}

/// The labels `absent()` reports: the selector's equality matchers (a label constrained
/// more than once, or by a non-equality matcher, is left out).
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match arg {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut labels = Labels::empty();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name) {
            labels.set(&m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            labels.remove(&m.name);
        }
    }
    labels
}

/// `histogram_quantile` over classic buckets (reference B.1).
pub(crate) fn histogram_quantile(
    q: f64,
    v: Vec<Sample>,
    ts: i64,
) -> Result<Vec<Sample>, EvalError> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    for s in v {
        let Some(upper_bound) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        if upper_bound.is_nan() {
            // Prometheus sorts such a bucket anywhere (its comparison does not expect one),
            // so the answer has no meaning to match: refused, not skipped.
            let le = s.labels.get("le").unwrap_or_default();
            let name = s.labels.get("__name__").unwrap_or_default();
            return Err(EvalError::Unsupported(format!(
                "histogram_quantile over a bucket bound le={le:?} (metric name {name:?})"
            )));
        }
        let mut key = s.labels.clone();
        key.remove("le");
        let bucket = Bucket {
            upper_bound,
            count: s.v,
        };
        match index.get(&key) {
            Some(i) => groups[*i].1.push(bucket),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![bucket]));
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (key, buckets) in groups {
        let (value, _) = bucket_quantile(q, buckets);
        out.push(Sample {
            labels: key.without_name(),
            t: ts,
            v: value,
        });
    }
    check_unique_labelsets(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_to_range_boundaries() {
        // Samples every 15s from 0 to 60 over a 60s window ending at 60s: no extrapolation
        // beyond the first sample (which sits exactly at the open start).
        let pts: Vec<(i64, f64)> = (1..=4).map(|i| (i * 15_000, i as f64 * 15.0)).collect();
        let r = extrapolated_rate(&pts, 60_000, 60_000, true, true, Extrapolation::Prometheus3)
            .unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
    }

    /// Values Prometheus answers for `log10` and `log2` (Go's `math.Log10`, `math.Log2`).
    #[test]
    fn logarithms_round_as_go_does() {
        let log10 = simple_math("log10").unwrap();
        let log2 = simple_math("log2").unwrap();
        assert_eq!(log10(1000.0), 3.0);
        assert_eq!(log10(0.001), -3.0);
        assert_eq!(log10(2.0), std::f64::consts::LOG10_2);
        assert_eq!(log10(1.0), 0.0);
        assert_eq!(log10(0.0), f64::NEG_INFINITY);
        assert!(log10(-1.0).is_nan());
        assert_eq!(log10(f64::INFINITY), f64::INFINITY);
        assert_eq!(log2(8.0), 3.0);
        assert_eq!(log2(5e-324), -1074.0);
        assert_eq!(log2(0.0), f64::NEG_INFINITY);
        assert_eq!(frexp(1000.0), (0.9765625, 10));
        assert_eq!(frexp(-3.0), (-0.75, 2));
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert!(go_min(f64::NAN, 1.0).is_nan());
    }
}
