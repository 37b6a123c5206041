//! Binary operators: arithmetic, comparisons (filtering or `bool`), `and`/`or`/`unless`, vector
//! matching with `on`/`ignoring` and `group_left`/`group_right` (`VectorBinop` and friends in
//! Prometheus' engine).

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{Collector, Evaluator, Series, StepCursor, Val};
use super::{EvalError, GoLabels};
use crate::series::{Labels, METRIC_NAME, Sample};

/// Arithmetic operators change what a value means, so they drop the metric name.
fn drops_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD | T_ATAN2)
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// `vectorElemBinop` for floats: the value and whether a comparison keeps it.
fn elem(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(EvalError::Unsupported(format!(
                "operator {op} is not supported between vectors"
            )));
        }
    })
}

pub(crate) fn eval(ev: &Evaluator<'_>, b: &BinaryExpr) -> Result<Val, EvalError> {
    let op = b.op.id();
    if let Some(m) = &b.modifier
        && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
    {
        return Err(EvalError::Unsupported(
            "fill modifiers are not supported".into(),
        ));
    }
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let mut out = Vec::with_capacity(l.len());
            for (a, c) in l.into_iter().zip(r) {
                let (v, keep) = elem(op, a, c)?;
                out.push(if is_comparison(op) {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                });
            }
            Ok(Val::Scalar(out))
        }
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(ev, op, v, &s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(ev, op, v, &s, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            let (card, matching) = match &b.modifier {
                Some(m) => (m.card.clone(), m.matching.clone()),
                None => (VectorMatchCardinality::OneToOne, None),
            };
            let m = Matching::new(card, matching);
            match op {
                T_LAND | T_LOR | T_LUNLESS => set_op(ev, op, l, r, &m),
                _ => vector_vector(ev, op, l, r, &m, return_bool),
            }
        }
        _ => Err(EvalError::InvalidQuery(
            "binary operators need scalar or instant vector operands".into(),
        )),
    }
}

/// `VectorscalarBinop`: maps every point; `swap` means the scalar was on the left.
fn vector_scalar(
    ev: &Evaluator<'_>,
    op: TokenId,
    input: Vec<Series>,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
) -> Result<Val, EvalError> {
    let comparison = is_comparison(op);
    let mut out = Vec::with_capacity(input.len());
    for mut s in input {
        let mut err = None;
        s.points.retain_mut(|p| {
            let sv = scalar[ev.grid.index(p.t)];
            let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
            let (mut v, mut keep) = match elem(op, l, r) {
                Ok(x) => x,
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            };
            // A comparison keeps the vector's value even when the scalar is on the left.
            if comparison && swap {
                v = r;
            }
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            p.v = v;
            keep
        });
        if let Some(e) = err {
            return Err(e);
        }
        if !s.points.is_empty() {
            if drops_name(op) || return_bool {
                s.drop_name = true;
            }
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}

/// The matching clause, resolved.
struct Matching {
    card: VectorMatchCardinality,
    /// `on(...)` rather than `ignoring(...)`/nothing.
    on: bool,
    labels: Vec<String>,
    /// `group_left`/`group_right` extra labels.
    include: Vec<String>,
}

impl Matching {
    fn new(card: VectorMatchCardinality, matching: Option<LabelModifier>) -> Self {
        let (on, labels) = match matching {
            Some(LabelModifier::Include(l)) => (true, l.labels),
            Some(LabelModifier::Exclude(l)) => (false, l.labels),
            None => (false, Vec::new()),
        };
        let include = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
        Matching {
            card,
            on,
            labels,
            include,
        }
    }

    /// The labels two series are matched on (`MatchLabels` / the signature).
    fn signature(&self, l: &Labels) -> Labels {
        let names: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        if self.on {
            l.keep_only(&names)
        } else {
            let mut names = names;
            names.push(METRIC_NAME);
            l.without(&names)
        }
    }
}

/// Interns signatures so per-step matching works on small integers.
fn signatures(m: &Matching, l: &[Series], r: &[Series]) -> (Vec<usize>, Vec<usize>, usize) {
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    let mut id_of = |s: &Series| {
        let sig = m.signature(&s.labels);
        let next = ids.len();
        *ids.entry(sig).or_insert(next)
    };
    let ls: Vec<usize> = l.iter().map(&mut id_of).collect();
    let rs: Vec<usize> = r.iter().map(&mut id_of).collect();
    (ls, rs, ids.len())
}

/// Which input an output of a set operation comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Left(usize),
    Right(usize),
}

fn set_op(
    ev: &Evaluator<'_>,
    op: TokenId,
    l: Vec<Series>,
    r: Vec<Series>,
    m: &Matching,
) -> Result<Val, EvalError> {
    let (lsig, rsig, n_sigs) = signatures(m, &l, &r);
    let mut lc = StepCursor::new(l.len());
    let mut rc = StepCursor::new(r.len());
    let (mut lstep, mut rstep) = (Vec::new(), Vec::new());
    let mut mark = vec![usize::MAX; n_sigs];
    // Outputs keep their input series' identity, so collect per input series.
    let mut out_index: HashMap<Side, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    let mut order: Vec<Side> = Vec::new();
    let instant = ev.grid.is_instant();
    for i in 0..ev.grid.len() {
        let ts = ev.grid.ts(i);
        lc.gather(&l, ts, &mut lstep);
        rc.gather(&r, ts, &mut rstep);
        let mut emit = |side: Side, v: f64| {
            let idx = *out_index.entry(side).or_insert_with(|| {
                let src = match side {
                    Side::Left(j) => &l[j],
                    Side::Right(j) => &r[j],
                };
                out.push(Series {
                    labels: src.labels.clone(),
                    points: Vec::new(),
                    drop_name: src.drop_name,
                });
                order.push(side);
                out.len() - 1
            });
            out[idx].points.push(Sample { t: ts, v });
        };
        match op {
            T_LAND => {
                if lstep.is_empty() || rstep.is_empty() {
                    continue;
                }
                for &(j, _) in &rstep {
                    mark[rsig[j]] = i;
                }
                for &(j, v) in &lstep {
                    if mark[lsig[j]] == i {
                        emit(Side::Left(j), v);
                    }
                }
            }
            T_LOR => {
                for &(j, v) in &lstep {
                    mark[lsig[j]] = i;
                    emit(Side::Left(j), v);
                }
                for &(j, v) in &rstep {
                    if lstep.is_empty() || mark[rsig[j]] != i {
                        emit(Side::Right(j), v);
                    }
                }
            }
            _ => {
                if !rstep.is_empty() {
                    for &(j, _) in &rstep {
                        mark[rsig[j]] = i;
                    }
                }
                for &(j, v) in &lstep {
                    if rstep.is_empty() || mark[lsig[j]] != i {
                        emit(Side::Left(j), v);
                    }
                }
            }
        }
    }
    if !instant {
        // Over several steps two inputs with the same labels would be one output series.
        return Ok(Val::Vector(merge_by_labels(out)?));
    }
    Ok(Val::Vector(out))
}

/// Collects outputs with identical labels into one series; two points at one step are the
/// duplicate-labelset error of Prometheus' `rangeEval`.
fn merge_by_labels(series: Vec<Series>) -> Result<Vec<Series>, EvalError> {
    let mut c: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match c.get(&s.labels) {
            Some(&i) => {
                let dst = &mut out[i];
                dst.points.extend(s.points);
                dst.points.sort_by_key(|p| p.t);
                if dst.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(EvalError::DuplicateLabelset);
                }
            }
            None => {
                c.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn vector_vector(
    ev: &Evaluator<'_>,
    op: TokenId,
    l: Vec<Series>,
    r: Vec<Series>,
    m: &Matching,
    return_bool: bool,
) -> Result<Val, EvalError> {
    let (lsig, rsig, n_sigs) = signatures(m, &l, &r);
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // For one-to-many, swap sides so the right is always the "one" side.
    let (many, one, many_sig, one_sig) = if one_to_many {
        (&r, &l, &rsig, &lsig)
    } else {
        (&l, &r, &lsig, &rsig)
    };
    let mut mc = StepCursor::new(many.len());
    let mut oc = StepCursor::new(one.len());
    let (mut mstep, mut ostep) = (Vec::new(), Vec::new());
    // Per signature: the "one"-side sample at this step (series index, value), with the step
    // it was set at so the table needs no clearing.
    let mut one_at: Vec<(usize, usize, f64)> = vec![(usize::MAX, 0, 0.0); n_sigs];
    let mut matched_at: Vec<usize> = vec![usize::MAX; n_sigs];
    let mut result_cache: HashMap<(usize, usize), Labels> = HashMap::new();
    let mut inserted: HashMap<usize, Vec<Labels>> = HashMap::new();
    let mut out = Collector::new(&ev.grid);
    for i in 0..ev.grid.len() {
        let ts = ev.grid.ts(i);
        mc.gather(many, ts, &mut mstep);
        oc.gather(one, ts, &mut ostep);
        if mstep.is_empty() || ostep.is_empty() {
            continue;
        }
        for &(j, v) in &ostep {
            let sig = one_sig[j];
            if one_at[sig].0 == i {
                let first = &one[one_at[sig].1];
                let dup = &one[j];
                return Err(EvalError::ManyToMany {
                    group: GoLabels(&m.signature(&dup.labels)).to_string(),
                    side: if one_to_many { "left" } else { "right" },
                    first: GoLabels(&first.labels).to_string(),
                    second: GoLabels(&dup.labels).to_string(),
                });
            }
            one_at[sig] = (i, j, v);
        }
        inserted.clear();
        for &(j, v) in &mstep {
            let sig = many_sig[j];
            let (at, oj, ov) = one_at[sig];
            if at != i {
                continue;
            }
            let (fl, fr) = if one_to_many { (ov, v) } else { (v, ov) };
            let (mut value, keep) = elem(op, fl, fr)?;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            }
            let metric = result_cache
                .entry((j, oj))
                .or_insert_with(|| result_metric(&many[j].labels, &one[oj].labels, op, m))
                .clone();
            if one_to_one {
                if matched_at[sig] == i {
                    return Err(EvalError::ManyToOneNotExplicit);
                }
                matched_at[sig] = i;
            } else {
                let set = inserted.entry(sig).or_default();
                if set.contains(&metric) {
                    return Err(EvalError::GroupingNotUnique);
                }
                set.push(metric.clone());
            }
            if !keep && !return_bool {
                continue;
            }
            out.push(&metric, return_bool, ts, value)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}

/// The labels of a matched pair (`resultMetric`): the "many" side's labels, without the name for
/// arithmetic, reduced to the matching labels for one-to-one, plus `group_x` labels from the
/// "one" side.
fn result_metric(many: &Labels, one: &Labels, op: TokenId, m: &Matching) -> Labels {
    let mut l = if drops_name(op) {
        many.without_metric_name()
    } else {
        many.clone()
    };
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        let names: Vec<&str> = m.labels.iter().map(String::as_str).collect();
        l = if m.on {
            l.keep_only(&names)
        } else {
            l.without(&names)
        };
    }
    for n in &m.include {
        l = l.with(n.as_str(), one.get(n).unwrap_or(""));
    }
    l
}
