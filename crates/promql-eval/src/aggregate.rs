//! Aggregation operators.

use std::collections::HashMap;

use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::eval::Evaluator;
use crate::functions::kahan_sum_inc;
use crate::gofloat::format_api_float;
use crate::labels::{Labels, METRIC_NAME};
use crate::quantile::value_quantile;
use crate::value::{Sample, Value};
use crate::EvalError;

fn group_key(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => labels.keep(&by.labels),
        Some(LabelModifier::Exclude(without)) => {
            let mut l = labels.drop_names(&without.labels);
            l.remove(METRIC_NAME);
            l
        }
        None => Labels::empty(),
    }
}

#[derive(Default)]
struct Group {
    labels: Labels,
    count: f64,
    value: f64,
    kahan_c: f64,
    mean: f64,
    incremental_mean: bool,
    values: Vec<f64>,
    samples: Vec<Sample>,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn aggregate(&self, agg: &AggregateExpr, ts: i64) -> Result<Value, EvalError> {
        let op = agg.op.id();
        let name = agg.op.to_string();
        let input = self.eval_vector(&agg.expr, ts, &name)?;
        let modifier = agg.modifier.as_ref();
        let param = agg.param.as_deref();
        let mut scalar_param = 0.0;
        let mut label_param = String::new();
        match op {
            token::T_TOPK | token::T_BOTTOMK | token::T_QUANTILE => {
                let p = param
                    .ok_or_else(|| EvalError::Execution(format!("{name}: missing parameter")))?;
                scalar_param = self.eval_scalar(p, ts, &name)?;
                // As Prometheus' convertibleToInt64, before any grouping (so also over no
                // input): NaN is refused too.
                if op != token::T_QUANTILE
                    && !(-9_223_372_036_854_775_808.0..=9_223_372_036_854_774_784.0)
                        .contains(&scalar_param)
                {
                    return Err(EvalError::Execution(format!(
                        "Scalar value {} overflows int64",
                        crate::gofloat::format_go_g(scalar_param)
                    )));
                }
            }
            token::T_COUNT_VALUES => {
                let p = param
                    .ok_or_else(|| EvalError::Execution(format!("{name}: missing parameter")))?;
                label_param = self.eval_string(p, ts, &name)?;
                if label_param.is_empty() {
                    return Err(EvalError::Execution(format!(
                        "invalid label name {label_param:?}"
                    )));
                }
            }
            token::T_SUM
            | token::T_AVG
            | token::T_COUNT
            | token::T_MIN
            | token::T_MAX
            | token::T_GROUP
            | token::T_STDDEV
            | token::T_STDVAR => {}
            _ => return Err(EvalError::Unsupported(format!("aggregation {name}"))),
        }

        if op == token::T_COUNT_VALUES {
            let mut index: HashMap<Labels, usize> = HashMap::new();
            let mut out: Vec<Sample> = Vec::new();
            for s in input {
                let mut key = group_key(&s.labels, modifier);
                key.set(&label_param, &format_api_float(s.v));
                match index.get(&key) {
                    Some(i) => out[*i].v += 1.0,
                    None => {
                        index.insert(key.clone(), out.len());
                        out.push(Sample {
                            labels: key,
                            t: ts,
                            v: 1.0,
                        });
                    }
                }
            }
            return Ok(Value::Vector(out));
        }

        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for s in input {
            let key = group_key(&s.labels, modifier);
            let gi = match index.get(&key) {
                Some(i) => *i,
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push(Group {
                        labels: key,
                        count: 1.0,
                        value: s.v,
                        mean: s.v,
                        ..Group::default()
                    });
                    let g = groups.len() - 1;
                    match op {
                        token::T_STDDEV | token::T_STDVAR => groups[g].value = 0.0,
                        token::T_QUANTILE => groups[g].values.push(s.v),
                        token::T_TOPK | token::T_BOTTOMK => groups[g].samples.push(s),
                        _ => {}
                    }
                    continue;
                }
            };
            let g = &mut groups[gi];
            match op {
                token::T_SUM => (g.value, g.kahan_c) = kahan_sum_inc(s.v, g.value, g.kahan_c),
                token::T_AVG => {
                    g.count += 1.0;
                    if !g.incremental_mean {
                        let (nv, nc) = kahan_sum_inc(s.v, g.value, g.kahan_c);
                        if !nv.is_infinite() {
                            g.value = nv;
                            g.kahan_c = nc;
                            continue;
                        }
                        g.incremental_mean = true;
                        g.mean = g.value / (g.count - 1.0);
                        g.kahan_c /= g.count - 1.0;
                    }
                    let q = (g.count - 1.0) / g.count;
                    (g.mean, g.kahan_c) = kahan_sum_inc(s.v / g.count, q * g.mean, q * g.kahan_c);
                }
                token::T_COUNT | token::T_GROUP => g.count += 1.0,
                token::T_MIN if g.value > s.v || g.value.is_nan() => g.value = s.v,
                token::T_MAX if g.value < s.v || g.value.is_nan() => g.value = s.v,
                token::T_STDDEV | token::T_STDVAR => {
                    g.count += 1.0;
                    let delta = s.v - g.mean;
                    g.mean += delta / g.count;
                    g.value += delta * (s.v - g.mean);
                }
                token::T_QUANTILE => g.values.push(s.v),
                token::T_TOPK | token::T_BOTTOMK => g.samples.push(s),
                _ => {}
            }
        }

        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let v = match op {
                token::T_SUM => g.value + g.kahan_c,
                token::T_AVG => {
                    if g.incremental_mean {
                        g.mean + g.kahan_c
                    } else {
                        (g.value + g.kahan_c) / g.count
                    }
                }
                token::T_COUNT => g.count,
                token::T_GROUP => 1.0,
                token::T_MIN | token::T_MAX => g.value,
                token::T_STDVAR => g.value / g.count,
                token::T_STDDEV => (g.value / g.count).sqrt(),
                token::T_QUANTILE => value_quantile(scalar_param, g.values),
                token::T_TOPK | token::T_BOTTOMK => {
                    let k = scalar_param as i64;
                    if k < 1 {
                        continue;
                    }
                    let kept = select_k(g.samples, k as usize, op == token::T_TOPK);
                    let kept = best_first(kept, op == token::T_TOPK);
                    for mut s in kept {
                        s.t = ts;
                        out.push(s);
                    }
                    continue;
                }
                _ => continue,
            };
            out.push(Sample {
                labels: g.labels,
                t: ts,
                v,
            });
        }
        Ok(Value::Vector(out))
    }
}

/// The samples `select_k` kept, best first and NaN last, as Prometheus orders its heap
/// (`sort.Sort(sort.Reverse(heap))`): for up to 12 samples that is Go's insertion sort,
/// step by step, so equal values keep Prometheus' order.
fn best_first(mut kept: Vec<Sample>, top: bool) -> Vec<Sample> {
    // weaker(a, b): the heap's `Less`, NaN weakest.
    let weaker = |a: f64, b: f64| a.is_nan() || if top { a < b } else { a > b };
    if kept.len() <= 12 {
        for i in 1..kept.len() {
            let mut j = i;
            while j > 0 && weaker(kept[j - 1].v, kept[j].v) {
                kept.swap(j, j - 1);
                j -= 1;
            }
        }
    } else {
        kept.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if weaker(b.v, a.v) => std::cmp::Ordering::Less,
            _ if weaker(a.v, b.v) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        });
    }
    kept
}

/// Keeps the `k` largest (`top`) or smallest samples the way Prometheus does: a binary heap
/// of at most `k` elements with the weakest on top, replaced only by a strictly better
/// sample (NaN is weakest), so ties keep the earlier sample. Mirrors Go's `container/heap`
/// operations step by step so ties resolve identically.
fn select_k(input: Vec<Sample>, k: usize, top: bool) -> Vec<Sample> {
    // less(a, b): a is weaker than b.
    let less = |a: f64, b: f64| {
        if a.is_nan() {
            return true;
        }
        if top {
            a < b
        } else {
            a > b
        }
    };
    let mut heap: Vec<Sample> = Vec::with_capacity(k.min(input.len()));
    let up = |h: &mut Vec<Sample>, mut j: usize| {
        while j > 0 {
            let i = (j - 1) / 2;
            if !less(h[j].v, h[i].v) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    };
    let down = |h: &mut Vec<Sample>, i0: usize| -> bool {
        let n = h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && less(h[j2].v, h[j1].v) {
                j = j2;
            }
            if !less(h[j].v, h[i].v) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
        i > i0
    };
    for s in input {
        if heap.len() < k {
            heap.push(s);
            let last = heap.len() - 1;
            up(&mut heap, last);
        } else {
            let weakest = heap[0].v;
            let better = if top { weakest < s.v } else { weakest > s.v };
            if better || (weakest.is_nan() && !s.v.is_nan()) {
                heap[0] = s;
                if k > 1 && !down(&mut heap, 0) {
                    up(&mut heap, 0);
                }
            }
        }
    }
    heap
}
