//! Evaluation of promql-parser's AST against a [`Store`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, Offset, SubqueryExpr, VectorMatchCardinality,
    VectorSelector,
};

use crate::labels::{Labels, METRIC_NAME};
use crate::store::{is_stale, Store};
use crate::value::{Sample, SeriesPoints, Value};
use crate::EvalError;

/// In which order `rate`, `increase` and `delta` bound the extrapolation towards the range
/// start; the two differ when a counter's extrapolated zero point lies before the start
/// threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Extrapolation {
    /// Prometheus 3.x: cap the gap to the start at half a sample interval when it exceeds
    /// 1.1 intervals, then shorten it to the counter's zero point if that is nearer.
    #[default]
    Prometheus3,
    /// Prometheus 2.x: shorten the gap to the counter's zero point first, then compare the
    /// result with the threshold. Only for comparing with 2.x tools such as promtool 2.42.
    Prometheus2,
}

/// Evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// How far back an instant vector selector looks for a sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// The step of subqueries that give none (Prometheus: the global evaluation interval).
    pub default_subquery_step_ms: i64,
    /// Order of the extrapolation bounds of `rate`, `increase` and `delta`.
    pub extrapolation: Extrapolation,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            lookback_ms: 5 * 60 * 1000,
            default_subquery_step_ms: 60 * 1000,
            extrapolation: Extrapolation::Prometheus3,
        }
    }
}

/// Evaluates expressions over one store for a query spanning `[start, end]` (equal for
/// instant queries; they give `@ start()` and `@ end()` their meaning).
pub struct Evaluator<'a> {
    pub(crate) store: &'a Store,
    pub(crate) opts: EvalOptions,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// Parses a PromQL expression.
pub fn parse(query: &str) -> Result<Expr, EvalError> {
    promql_parser::parser::parse(query).map_err(|message| EvalError::Parse {
        query: query.to_string(),
        message,
    })
}

/// Evaluates `expr` as an instant query at `ts` (milliseconds).
pub fn instant_query(
    store: &Store,
    expr: &Expr,
    ts: i64,
    opts: EvalOptions,
) -> Result<Value, EvalError> {
    let ev = Evaluator {
        store,
        opts,
        start: ts,
        end: ts,
    };
    ev.eval(expr, ts)
}

/// The most points a range query may ask for per series (Prometheus' limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The most evaluation steps a subquery may take.
pub const MAX_SUBQUERY_STEPS: i64 = 1_000_000;

/// Evaluates `expr` as a range query. The result holds one series per label set, points in
/// time order; a scalar expression gives one series without labels.
pub fn range_query(
    store: &Store,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: EvalOptions,
) -> Result<Vec<SeriesPoints>, EvalError> {
    if step <= 0 {
        return Err(EvalError::Execution(
            "zero or negative query resolution step widths are not accepted".into(),
        ));
    }
    if end < start {
        return Err(EvalError::Execution(
            "end timestamp must not be before start time".into(),
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(EvalError::Execution(format!(
            "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let ev = Evaluator {
        store,
        opts,
        start,
        end,
    };
    let mut acc = SeriesAccumulator::default();
    let mut ts = start;
    while ts <= end {
        match ev.eval(expr, ts)? {
            Value::Vector(v) => {
                for s in v {
                    acc.push(s.labels, ts, s.v);
                }
            }
            Value::Scalar(v) => acc.push(Labels::empty(), ts, v),
            other => {
                return Err(EvalError::Execution(format!(
                "invalid expression type {:?} for range query, must be scalar or instant vector",
                other.type_name()
            )))
            }
        }
        match ts.checked_add(step) {
            Some(next) => ts = next,
            None => break,
        }
    }
    let mut out = acc.finish();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Collects points per label set in order of first appearance.
#[derive(Default)]
pub(crate) struct SeriesAccumulator {
    index: HashMap<Labels, usize>,
    series: Vec<SeriesPoints>,
}

impl SeriesAccumulator {
    pub(crate) fn push(&mut self, labels: Labels, t: i64, v: f64) {
        match self.index.get(&labels) {
            Some(i) => self.series[*i].points.push((t, v)),
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(SeriesPoints {
                    labels,
                    points: vec![(t, v)],
                });
            }
        }
    }
    pub(crate) fn finish(self) -> Vec<SeriesPoints> {
        self.series
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Removes any number of enclosing parentheses.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// True when every label set has the same metric name (shared strings compared by
/// address first), so dropping the name cannot make two of them equal.
pub(crate) fn same_metric_name<'l>(mut labels: impl Iterator<Item = &'l Labels>) -> bool {
    let name_of = |l: &'l Labels| {
        l.pairs()
            .iter()
            .find(|(n, _)| &**n == METRIC_NAME)
            .map(|(_, v)| v)
    };
    let Some(first) = labels.next() else {
        return true;
    };
    let first = name_of(first);
    labels.all(|l| match (first, name_of(l)) {
        (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    })
}

/// Errors when a vector holds two samples with the same labels.
pub(crate) fn check_unique_labelsets(v: &[Sample]) -> Result<(), EvalError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// A label-matcher regex as Prometheus 3.x compiles it: anchored, with `.` matching newlines
/// too. Compiled patterns are cached; `None` when the pattern only compiles in the parser's
/// Go-compatible form (which the matcher then keeps).
fn dotall_regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache.get(pattern) {
        return Some(re.clone());
    }
    let re = regex::Regex::new(&format!("^(?s:{pattern})$")).ok()?;
    if cache.len() >= 1024 {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Some(re)
}

impl<'a> Evaluator<'a> {
    pub(crate) fn at_time(&self, at: &Option<AtModifier>, ts: i64) -> i64 {
        match at {
            None => ts,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(t)) => system_time_ms(t),
        }
    }

    /// The matchers of a selector, its metric name included as a `__name__` matcher.
    pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(EvalError::Unsupported(
                "`or` inside a label matcher list".into(),
            ));
        }
        let mut ms = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            ms.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
        }
        for m in &vs.matchers.matchers {
            let op = match &m.op {
                MatchOp::Re(_) => dotall_regex(&m.value).map(MatchOp::Re),
                MatchOp::NotRe(_) => dotall_regex(&m.value).map(MatchOp::NotRe),
                _ => None,
            };
            ms.push(match op {
                Some(op) => Matcher::new(op, &m.name, &m.value),
                None => m.clone(),
            });
        }
        Ok(ms)
    }

    /// Evaluates `expr` at `ts`.
    pub fn eval(&self, expr: &Expr, ts: i64) -> Result<Value, EvalError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ts),
            Expr::Unary(u) => match self.eval(&u.expr, ts)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => {
                    let out: Vec<Sample> = v
                        .into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_name(),
                            t: ts,
                            v: -s.v,
                        })
                        .collect();
                    check_unique_labelsets(&out)?;
                    Ok(Value::Vector(out))
                }
                other => Err(EvalError::Execution(format!(
                    "unary minus is not defined on a {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, ts)?)),
            Expr::MatrixSelector(ms) => {
                let eff = self
                    .at_time(&ms.vs.at, ts)
                    .saturating_sub(offset_ms(&ms.vs.offset));
                Ok(Value::Matrix(self.matrix_select(
                    &ms.vs,
                    eff,
                    ms.range.as_millis() as i64,
                )?))
            }
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, ts)?.0)),
            Expr::Call(call) => self.call(call, ts),
            Expr::Aggregate(agg) => self.aggregate(agg, ts),
            Expr::Binary(b) => self.binary(b, ts),
            Expr::Extension(e) => Err(EvalError::Unsupported(format!(
                "extension expression {}",
                e.expr.name()
            ))),
        }
    }

    pub(crate) fn eval_scalar(&self, expr: &Expr, ts: i64, what: &str) -> Result<f64, EvalError> {
        match self.eval(expr, ts)? {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected a scalar for {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub(crate) fn eval_vector(
        &self,
        expr: &Expr,
        ts: i64,
        what: &str,
    ) -> Result<Vec<Sample>, EvalError> {
        match self.eval(expr, ts)? {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected an instant vector for {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub(crate) fn eval_string(
        &self,
        expr: &Expr,
        ts: i64,
        what: &str,
    ) -> Result<String, EvalError> {
        match self.eval(expr, ts)? {
            Value::String(v) => Ok(v),
            other => Err(EvalError::Execution(format!(
                "expected a string for {what}, got {}",
                other.type_name()
            ))),
        }
    }

    /// The latest sample of each matching series in `(t - lookback, t]`, skipping series whose
    /// latest sample is a staleness marker.
    pub(crate) fn vector_selector(
        &self,
        vs: &VectorSelector,
        ts: i64,
    ) -> Result<Vec<Sample>, EvalError> {
        let eff = self
            .at_time(&vs.at, ts)
            .saturating_sub(offset_ms(&vs.offset));
        let matchers = Self::selector_matchers(vs)?;
        let mut out = Vec::new();
        for series in self.store.select(&matchers) {
            let samples = series.range(eff.saturating_sub(self.opts.lookback_ms), eff);
            if let Some(&(t, v)) = samples.last() {
                if !is_stale(v) {
                    out.push(Sample {
                        labels: series.labels.clone(),
                        t,
                        v,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The samples of each matching series in `(end - range, end]`, staleness markers
    /// dropped; series without samples are left out.
    pub(crate) fn matrix_select(
        &self,
        vs: &VectorSelector,
        end: i64,
        range: i64,
    ) -> Result<Vec<SeriesPoints>, EvalError> {
        let matchers = Self::selector_matchers(vs)?;
        let mut out = Vec::new();
        for series in self.store.select(&matchers) {
            let points: Vec<(i64, f64)> = series
                .range(end.saturating_sub(range), end)
                .iter()
                .copied()
                .filter(|(_, v)| !is_stale(*v))
                .collect();
            if !points.is_empty() {
                out.push(SeriesPoints {
                    labels: series.labels.clone(),
                    points,
                });
            }
        }
        Ok(out)
    }

    /// Evaluates a subquery; returns the series and the effective end of its range.
    pub(crate) fn subquery(
        &self,
        sq: &SubqueryExpr,
        ts: i64,
    ) -> Result<(Vec<SeriesPoints>, i64), EvalError> {
        let end = self
            .at_time(&sq.at, ts)
            .saturating_sub(offset_ms(&sq.offset));
        let range = sq.range.as_millis() as i64;
        let step = match sq.step {
            Some(s) if s.as_millis() > 0 => s.as_millis() as i64,
            _ => self.opts.default_subquery_step_ms,
        };
        if range / step > MAX_SUBQUERY_STEPS {
            return Err(EvalError::Execution(format!(
                "subquery of {range} ms at a {step} ms step exceeds {MAX_SUBQUERY_STEPS} steps"
            )));
        }
        let start = end.saturating_sub(range);
        let mut t = step * (start / step);
        if t <= start {
            match t.checked_add(step) {
                Some(next) => t = next,
                None => return Ok((Vec::new(), end)),
            }
        }
        let mut acc = SeriesAccumulator::default();
        while t <= end {
            match self.eval(&sq.expr, t)? {
                Value::Vector(v) => {
                    for s in v {
                        acc.push(s.labels, t, s.v);
                    }
                }
                Value::Scalar(v) => acc.push(Labels::empty(), t, v),
                other => {
                    return Err(EvalError::Execution(format!(
                        "subquery of a {} is not allowed",
                        other.type_name()
                    )))
                }
            }
            match t.checked_add(step) {
                Some(next) => t = next,
                None => break,
            }
        }
        Ok((acc.finish(), end))
    }

    /// A range-vector argument: a matrix selector or a subquery. Returns the series, the
    /// range's end and its length (milliseconds).
    pub(crate) fn range_arg(
        &self,
        expr: &Expr,
        ts: i64,
    ) -> Result<(Vec<SeriesPoints>, i64, i64), EvalError> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                let end = self
                    .at_time(&ms.vs.at, ts)
                    .saturating_sub(offset_ms(&ms.vs.offset));
                let range = ms.range.as_millis() as i64;
                Ok((self.matrix_select(&ms.vs, end, range)?, end, range))
            }
            Expr::Subquery(sq) => {
                let (series, end) = self.subquery(sq, ts)?;
                Ok((series, end, sq.range.as_millis() as i64))
            }
            other => Err(EvalError::Execution(format!(
                "expected a range vector, got {other}"
            ))),
        }
    }

    fn binary(&self, b: &BinaryExpr, ts: i64) -> Result<Value, EvalError> {
        let lhs = self.eval(&b.lhs, ts)?;
        let rhs = self.eval(&b.rhs, ts)?;
        let op = b.op;
        let return_bool = b.return_bool();
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = scalar_op(op, l, r)?;
                if is_comparison(op) {
                    Ok(Value::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Value::Scalar(v))
                }
            }
            (Value::Vector(l), Value::Scalar(r)) => Ok(Value::Vector(vector_scalar(
                op,
                l,
                r,
                false,
                return_bool,
                ts,
            )?)),
            (Value::Scalar(l), Value::Vector(r)) => Ok(Value::Vector(vector_scalar(
                op,
                r,
                l,
                true,
                return_bool,
                ts,
            )?)),
            (Value::Vector(l), Value::Vector(r)) => {
                let out = if is_set_op(op) {
                    set_op(
                        op,
                        l,
                        r,
                        b.modifier.as_ref().and_then(|m| m.matching.as_ref()),
                    )?
                } else {
                    vector_vector(b, l, r, ts)?
                };
                Ok(Value::Vector(out))
            }
            (l, r) => Err(EvalError::Execution(format!(
                "binary operator {} is not defined between {} and {}",
                op,
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

pub(crate) fn is_comparison(op: TokenType) -> bool {
    op.is_comparison_operator()
}

fn is_set_op(op: TokenType) -> bool {
    op.is_set_operator()
}

/// Arithmetic drops the metric name; `atan2` and comparisons keep it, as in Prometheus.
fn drops_name(op: TokenType) -> bool {
    matches!(
        op.id(),
        token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_MOD | token::T_POW
    )
}

/// Applies an arithmetic or comparison operator; comparisons return `(lhs, holds)`.
pub(crate) fn scalar_op(op: TokenType, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op.id() {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => {
            return Err(EvalError::Unsupported(format!(
                "binary operator {op} between these operands"
            )))
        }
    })
}

fn vector_scalar(
    op: TokenType,
    v: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
    ts: i64,
) -> Result<Vec<Sample>, EvalError> {
    let names_equal = same_metric_name(v.iter().map(|s| &s.labels));
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let (l, r) = if scalar_on_left {
            (scalar, s.v)
        } else {
            (s.v, scalar)
        };
        let (mut value, mut keep) = scalar_op(op, l, r)?;
        if is_comparison(op) {
            // The vector element's value is the result, whichever side it is on.
            value = s.v;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let labels = if drops_name(op) || return_bool {
            s.labels.without_name()
        } else {
            s.labels
        };
        out.push(Sample {
            labels,
            t: ts,
            v: value,
        });
    }
    if (drops_name(op) || return_bool) && !names_equal {
        check_unique_labelsets(&out)?;
    }
    Ok(out)
}

/// The label set two samples are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
        Some(LabelModifier::Exclude(ignoring)) => {
            let mut l = labels.drop_names(&ignoring.labels);
            l.remove(METRIC_NAME);
            l
        }
        None => labels.without_name(),
    }
}

fn set_op(
    op: TokenType,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Result<Vec<Sample>, EvalError> {
    match op.id() {
        token::T_LAND => {
            let right: std::collections::HashSet<Labels> =
                rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            Ok(lhs
                .into_iter()
                .filter(|s| right.contains(&signature(&s.labels, matching)))
                .collect())
        }
        token::T_LUNLESS => {
            let right: std::collections::HashSet<Labels> =
                rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            Ok(lhs
                .into_iter()
                .filter(|s| !right.contains(&signature(&s.labels, matching)))
                .collect())
        }
        token::T_LOR => {
            let left: std::collections::HashSet<Labels> =
                lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, matching))),
            );
            Ok(out)
        }
        _ => Err(EvalError::Unsupported(format!("set operator {op}"))),
    }
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    ts: i64,
) -> Result<Vec<Sample>, EvalError> {
    let op = b.op;
    let return_bool = b.return_bool();
    let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    if let Some(m) = &b.modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return Err(EvalError::Unsupported("fill modifiers".into()));
        }
    }
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let (include, swapped) = match &card {
        VectorMatchCardinality::ManyToOne(l) => (Some(l.labels.clone()), false),
        VectorMatchCardinality::OneToMany(l) => (Some(l.labels.clone()), true),
        VectorMatchCardinality::OneToOne => (None, false),
        VectorMatchCardinality::ManyToMany => {
            return Err(EvalError::Execution(
                "many-to-many matching is only allowed for set operators".into(),
            ))
        }
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_side: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels, matching);
        if let Some(prev) = one_side.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                prev.labels, s.labels
            )));
        }
        one_side.insert(sig, s);
    }
    let mut matched: HashMap<Labels, std::collections::HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for s in many {
        let sig = signature(&s.labels, matching);
        let Some(o) = one_side.get(&sig) else {
            continue;
        };
        let (l, r) = if swapped { (o.v, s.v) } else { (s.v, o.v) };
        let (mut value, mut keep) = scalar_op(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut metric = s.labels.clone();
        if drops_name(op) {
            metric.remove(METRIC_NAME);
        }
        if one_to_one {
            match matching {
                Some(LabelModifier::Include(on)) => metric = metric.keep(&on.labels),
                Some(LabelModifier::Exclude(ignoring)) => {
                    metric = metric.drop_names(&ignoring.labels)
                }
                None => {}
            }
        }
        if let Some(include) = &include {
            for name in include {
                match o.labels.get(name) {
                    Some(v) => {
                        let v = v.to_string();
                        metric.set(name, &v)
                    }
                    None => metric.remove(name),
                }
            }
        }
        if return_bool {
            metric.remove(METRIC_NAME);
        }
        let entry = matched.entry(sig).or_default();
        if one_to_one {
            if !entry.is_empty() {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            entry.insert(Labels::empty());
        } else if !entry.insert(metric.clone()) {
            return Err(EvalError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        out.push(Sample {
            labels: metric,
            t: ts,
            v: value,
        });
    }
    check_unique_labelsets(&out)?;
    Ok(out)
}

/// True when Prometheus keeps the evaluation order of the expression's result (`sort`,
/// `sort_desc`, `topk`, `bottomk` at the top); otherwise results are sorted by labels.
pub fn result_order_is_significant(expr: &Expr) -> bool {
    match unwrap_parens(expr) {
        Expr::Call(c) => matches!(c.func.name, "sort" | "sort_desc"),
        Expr::Aggregate(a) => matches!(a.op.id(), token::T_TOPK | token::T_BOTTOMK),
        _ => false,
    }
}
