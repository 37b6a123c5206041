//! Aggregation operators (`sum`, `avg`, `topk`, …) with `by`/`without`, following Prometheus'
//! `rangeEvalAgg`: each input series is mapped to its group once, then every step folds the
//! values of the series present at that step.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{Collector, Evaluator, Series, StepCursor, Val};
use super::functions::string_arg;
use super::json::format_value;
use super::quantile::{kahan_inc, quantile};
use super::{EvalError, IdsHash};
use crate::series::hash::FastHasher;
use crate::series::{Labels, METRIC_NAME};

/// The output labels of a group: `by` keeps the listed labels, `without` drops them and the name.
fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    Grouping::new(modifier).labels(labels)
}

/// A `by`/`without` clause, resolved once per aggregation.
struct Grouping<'a> {
    /// `by (…)`: keep the names; `without (…)`: drop them (and `__name__`).
    by: bool,
    names: Vec<&'a str>,
}

impl<'a> Grouping<'a> {
    fn new(modifier: &'a Option<LabelModifier>) -> Self {
        match modifier {
            None => Grouping {
                by: true,
                names: Vec::new(),
            },
            Some(LabelModifier::Include(l)) => Grouping {
                by: true,
                names: l.labels.iter().map(String::as_str).collect(),
            },
            Some(LabelModifier::Exclude(l)) => {
                let mut names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
                names.push(METRIC_NAME);
                Grouping { by: false, names }
            }
        }
    }

    #[inline]
    fn keeps(&self, name: &str) -> bool {
        self.names.contains(&name) == self.by
    }

    /// The group's labels.
    fn labels(&self, labels: &Labels) -> Labels {
        match self.by {
            true => labels.keep_only(&self.names),
            false => labels.without(&self.names),
        }
    }

    /// A hash of the labels the group keeps, without building them.
    fn hash(&self, labels: &Labels) -> u64 {
        let mut h = FastHasher::default();
        for l in labels.iter().filter(|l| self.keeps(l.name())) {
            h.write(l.name().as_bytes());
            h.write_u8(0xff);
            h.write(l.value().as_bytes());
            h.write_u8(0xfe);
        }
        h.finish()
    }

    /// Whether `labels` fall in the group labelled `group`.
    fn is_group_of(&self, labels: &Labels, group: &Labels) -> bool {
        let mut kept = labels.iter().filter(|l| self.keeps(l.name()));
        let mut g = group.iter();
        loop {
            match (kept.next(), g.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    }
}

/// Groups by hash, building a group's labels only when it is first seen: aggregating
/// hundreds of series into a few groups then allocates nothing per series.
#[derive(Default)]
struct GroupIndex {
    by_hash: HashMap<u64, Vec<usize>, BuildHasherDefault<FastHasher>>,
    /// Each group's labels, in order of first appearance.
    labels: Vec<Labels>,
    /// The group of the previous series: input sorted by labels comes in runs of one group,
    /// and checking the run's group compares interned pointers without hashing any text.
    last: Option<usize>,
}

impl GroupIndex {
    /// The group of `labels`, added if new.
    fn group(&mut self, grouping: &Grouping<'_>, labels: &Labels) -> usize {
        if let Some(g) = self.last
            && grouping.is_group_of(labels, &self.labels[g])
        {
            return g;
        }
        let g = self.find_or_add(grouping, labels);
        self.last = Some(g);
        g
    }

    fn find_or_add(&mut self, grouping: &Grouping<'_>, labels: &Labels) -> usize {
        let slot = self.by_hash.entry(grouping.hash(labels)).or_default();
        if let Some(&g) = slot
            .iter()
            .find(|&&g| grouping.is_group_of(labels, &self.labels[g]))
        {
            return g;
        }
        slot.push(self.labels.len());
        self.labels.push(grouping.labels(labels));
        self.labels.len() - 1
    }
}

#[derive(Clone, Default)]
struct Group {
    seen: bool,
    value: f64,
    mean: f64,
    kahan_c: f64,
    count: f64,
    incremental_mean: bool,
    values: Vec<f64>,
}

impl Group {
    /// Starts the group at a step with its first value.
    fn first(&mut self, op: TokenId, f: f64) {
        self.seen = true;
        self.value = f;
        self.mean = f;
        self.kahan_c = 0.0;
        self.count = 1.0;
        self.incremental_mean = false;
        match op {
            T_STDVAR | T_STDDEV => {
                self.value = if f.is_nan() || f.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                };
            }
            T_QUANTILE => {
                self.values.clear();
                self.values.push(f);
            }
            T_GROUP => self.value = 1.0,
            _ => {}
        }
    }

    /// Adds a further value at the same step, as Prometheus' `aggregation` does.
    fn add(&mut self, op: TokenId, f: f64) {
        let g = self;
        match op {
            T_SUM => (g.value, g.kahan_c) = kahan_inc(f, g.value, g.kahan_c),
            T_AVG => {
                g.count += 1.0;
                if !g.incremental_mean {
                    let (v, c) = kahan_inc(f, g.value, g.kahan_c);
                    if !v.is_infinite() {
                        (g.value, g.kahan_c) = (v, c);
                        return;
                    }
                    // The sum would overflow: switch to an incremental mean.
                    g.incremental_mean = true;
                    g.mean = g.value / (g.count - 1.0);
                    g.kahan_c /= g.count - 1.0;
                }
                if g.mean.is_infinite() {
                    if f.is_infinite() && (g.mean > 0.0) == (f > 0.0) {
                        return;
                    }
                    if !f.is_infinite() && !f.is_nan() {
                        return;
                    }
                }
                let current = g.mean + g.kahan_c;
                (g.mean, g.kahan_c) = kahan_inc(f / g.count - current / g.count, g.mean, g.kahan_c);
            }
            T_GROUP => {}
            T_MAX if g.value < f || g.value.is_nan() => g.value = f,
            T_MIN if g.value > f || g.value.is_nan() => g.value = f,
            T_COUNT => g.count += 1.0,
            T_STDVAR | T_STDDEV => {
                g.count += 1.0;
                let delta = f - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (f - g.mean);
            }
            T_QUANTILE => g.values.push(f),
            _ => {}
        }
    }

    /// The group's value at the step; `q` is `quantile`'s parameter there.
    fn result(&mut self, op: TokenId, q: f64) -> f64 {
        let g = self;
        match op {
            T_AVG => {
                if g.incremental_mean {
                    g.mean + g.kahan_c
                } else {
                    (g.value + g.kahan_c) / g.count
                }
            }
            T_COUNT => g.count,
            T_STDVAR => g.value / g.count,
            T_STDDEV => (g.value / g.count).sqrt(),
            T_QUANTILE => quantile(q, &mut g.values),
            T_SUM => g.value + g.kahan_c,
            _ => g.value,
        }
    }
}

pub(crate) fn eval(ev: &Evaluator<'_>, a: &AggregateExpr) -> Result<Val, EvalError> {
    let op = a.op.id();
    if op == T_COUNT_VALUES {
        return count_values(ev, a);
    }
    let param = match &a.param {
        Some(p) if op == T_TOPK || op == T_BOTTOMK || op == T_QUANTILE => Some(ev.eval_scalar(p)?),
        Some(_) => {
            return Err(EvalError::Unsupported(format!(
                "aggregation \"{}\" is not supported",
                a.op
            )));
        }
        None => None,
    };
    if param.is_none()
        && matches!(
            op,
            T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR
        )
        && let Some(out) = eval_over_range_values(ev, a, op)?
    {
        return Ok(Val::Vector(out));
    }
    let input = ev.eval_vector(&a.expr)?;
    if op == T_TOPK || op == T_BOTTOMK {
        return top_bottom_k(ev, a, input, param.unwrap_or_default(), op == T_TOPK);
    }
    if !matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR | T_QUANTILE
    ) {
        return Err(EvalError::Unsupported(format!(
            "aggregation \"{}\" is not supported",
            a.op
        )));
    }

    // Map every input series to its group once.
    let grouping = Grouping::new(&a.modifier);
    let mut index = GroupIndex::default();
    let mut groups_drop: Vec<bool> = Vec::new();
    let mut series_group = Vec::with_capacity(input.len());
    for s in &input {
        let g = index.group(&grouping, &s.labels);
        if g == groups_drop.len() {
            groups_drop.push(false);
        }
        // The result loses its name at the end if any member's would have.
        groups_drop[g] |= s.drop_name;
        series_group.push(g);
    }
    let groups_labels = index.labels;

    let n = ev.grid.len();
    let mut out: Vec<Series> = groups_labels
        .iter()
        .zip(&groups_drop)
        .map(|(l, &d)| Series {
            labels: l.clone(),
            points: Vec::new(),
            drop_name: d,
        })
        .collect();
    if op != T_QUANTILE && groups_labels.len().saturating_mul(n) <= SERIES_MAJOR_CELLS {
        aggregate_series_major(ev, op, &input, &series_group, &mut out);
        out.retain(|s| !s.points.is_empty());
        return Ok(Val::Vector(out));
    }
    let mut groups = vec![Group::default(); out.len()];
    let mut cursor = StepCursor::new(input.len());
    let mut step = Vec::new();
    for i in 0..n {
        let ts = ev.grid.ts(i);
        cursor.gather(&input, ts, &mut step);
        for g in groups.iter_mut() {
            g.seen = false;
        }
        for &(si, f) in &step {
            let g = &mut groups[series_group[si]];
            match g.seen {
                false => g.first(op, f),
                true => g.add(op, f),
            }
        }
        for (gi, g) in groups.iter_mut().enumerate() {
            if !g.seen {
                continue;
            }
            let q = param.as_ref().map_or(f64::NAN, |p| p[i]);
            let v = g.result(op, q);
            out[gi].points.push(crate::series::Sample { t: ts, v });
        }
    }
    out.retain(|s| !s.points.is_empty());
    Ok(Val::Vector(out))
}

/// The most (group, step) cells aggregated series by series (72 bytes each: 18 MiB).
const SERIES_MAJOR_CELLS: usize = 1 << 18;

/// Aggregates series by series into one cell per group and step: each series' points are read
/// in order, where walking the steps would visit every series at every step (a cache miss
/// each over thousands of series). Every cell still takes its values in series order, so the
/// result is the same to the bit as step by step.
fn aggregate_series_major(
    ev: &Evaluator<'_>,
    op: TokenId,
    input: &[Series],
    series_group: &[usize],
    out: &mut [Series],
) {
    let n = ev.grid.len();
    let mut cells = vec![Group::default(); out.len() * n];
    for (s, &g) in input.iter().zip(series_group) {
        let row = &mut cells[g * n..(g + 1) * n];
        for p in &s.points {
            let i = ev.grid.index(p.t);
            let Some(cell) = row.get_mut(i).filter(|_| ev.grid.ts(i) == p.t) else {
                continue;
            };
            match cell.seen {
                false => cell.first(op, p.v),
                true => cell.add(op, p.v),
            }
        }
    }
    for (series, row) in out.iter_mut().zip(cells.chunks_mut(n.max(1))) {
        for (i, cell) in row.iter_mut().enumerate() {
            if cell.seen {
                let v = cell.result(op, f64::NAN);
                series.points.push(crate::series::Sample {
                    t: ev.grid.ts(i),
                    v,
                });
            }
        }
    }
}

/// An aggregation of a range function over a range selector inside a rule round
/// (`sum by (job) (rate(http_requests_total[5m]))`), from the values as the source streams
/// them: a group number and a value per series (16 bytes) instead of a one-point [`Series`]
/// each (40 bytes and an allocation), and no step cursor. The values are aggregated in label
/// order, the order of the general path, so the result is the same to the bit, groups listed
/// in the same order; the order comes from the round's [`super::LabelOrders`] when the
/// selection yields the same series as last round, and from sorting the label sets otherwise.
/// `None` when the argument is not of that form (see [`functions::range_values_each`]).
fn eval_over_range_values(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
    op: TokenId,
) -> Result<Option<Vec<Series>>, EvalError> {
    let Some(memo) = ev.ctx.memo else {
        return Ok(None);
    };
    let grouping = Grouping::new(&a.modifier);
    let mut index = GroupIndex::default();
    let mut values: Vec<(u32, f64)> = Vec::new();
    let mut ids = IdsHash::default();
    let mut drop_name = false;
    let streamed = super::functions::range_values_each(ev, &a.expr, &mut |id, labels, v, drop| {
        ids.add(id);
        values.push((index.group(&grouping, labels) as u32, v));
        drop_name = drop;
    })?;
    if !streamed {
        return Ok(None);
    }
    let series = |labels: Labels, mut g: Group| Series {
        labels,
        points: vec![crate::series::Sample {
            t: ev.grid.start,
            v: g.result(op, f64::NAN),
        }],
        drop_name,
    };
    if let Some(order) = memo.order(ids)
        && order.len() == values.len()
    {
        // Groups renumbered by first appearance in label order, values added in that order.
        let mut renumbered = vec![u32::MAX; index.labels.len()];
        let mut groups: Vec<(usize, Group)> = Vec::with_capacity(index.labels.len());
        for &i in order.iter() {
            let (g, f) = values[i as usize];
            match renumbered[g as usize] {
                u32::MAX => {
                    renumbered[g as usize] = groups.len() as u32;
                    let mut group = Group::default();
                    group.first(op, f);
                    groups.push((g as usize, group));
                }
                r => groups[r as usize].1.add(op, f),
            }
        }
        let mut labels = index.labels;
        return Ok(Some(
            groups
                .into_iter()
                .map(|(g, group)| series(std::mem::take(&mut labels[g]), group))
                .collect(),
        ));
    }
    // Not seen last round: the label sets in a second pass (the round's memo holds every value
    // now, so nothing is read again), sorted.
    drop(values);
    let mut input: Vec<(Labels, f64)> = Vec::with_capacity(ids.len());
    let mut again = IdsHash::default();
    super::functions::range_values_each(ev, &a.expr, &mut |id, labels, v, _| {
        again.add(id);
        input.push((labels.clone(), v));
    })?;
    let mut order: Vec<u32> = (0..input.len() as u32).collect();
    order.sort_unstable_by(|&x, &y| input[x as usize].0.cmp(&input[y as usize].0));
    let order: std::sync::Arc<[u32]> = order.into();
    // The same series in the same order as the first pass (the head did not change between).
    if again == ids {
        memo.put_order(ids, order.clone());
    }
    let mut index = GroupIndex::default();
    let mut groups: Vec<Group> = Vec::new();
    for &i in order.iter() {
        let (labels, f) = &input[i as usize];
        let g = index.group(&grouping, labels);
        match groups.get_mut(g) {
            Some(group) => group.add(op, *f),
            None => {
                let mut group = Group::default();
                group.first(op, *f);
                groups.push(group);
            }
        }
    }
    drop(input);
    Ok(Some(
        index
            .labels
            .into_iter()
            .zip(groups)
            .map(|(labels, g)| series(labels, g))
            .collect(),
    ))
}

/// `math.MinInt64` and `math.MaxInt64` as floats (both round to ±2^63).
const I64_MIN_F: f64 = i64::MIN as f64;
const I64_MAX_F: f64 = i64::MAX as f64;

/// Checks a `topk`/`bottomk` parameter like Prometheus and converts it to k.
fn k_param(v: f64) -> Result<i64, EvalError> {
    if v.is_nan() {
        return Err(EvalError::BadArgument("Parameter value is NaN".into()));
    }
    if v <= I64_MIN_F {
        return Err(EvalError::BadArgument(format!(
            "Scalar value {} underflows int64",
            format_value(v)
        )));
    }
    if v >= I64_MAX_F {
        return Err(EvalError::BadArgument(format!(
            "Scalar value {} overflows int64",
            format_value(v)
        )));
    }
    Ok(v as i64)
}

/// An entry of a `topk`/`bottomk` heap: input series index and value.
#[derive(Clone, Copy)]
struct Entry {
    series: usize,
    v: f64,
}

/// Go's `container/heap` over `vectorByValueHeap` (topk: smallest on top, NaN smallest) or
/// `vectorByReverseValueHeap` (bottomk). Replicated exactly so that ties come out in the same
/// order as Prometheus'.
struct GoHeap {
    items: Vec<Entry>,
    top: bool,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        let (vi, vj) = (self.items[i].v, self.items[j].v);
        if vi.is_nan() {
            return true;
        }
        if self.top { vi < vj } else { vi > vj }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.items.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    fn push(&mut self, e: Entry) {
        self.items.push(e);
        let j = self.items.len() - 1;
        self.up(j);
    }

    fn fix(&mut self, i: usize) {
        if !self.down(i) {
            self.up(i);
        }
    }

    /// `sort.Sort(sort.Reverse(heap))`: Go sorts up to 12 elements by insertion sort, which is
    /// what decides the order of ties.
    fn into_sorted(mut self) -> Vec<Entry> {
        let n = self.items.len();
        // Reverse(less)(a, b) = less(b, a).
        for i in 1..n {
            let mut j = i;
            while j > 0 && self.less(j - 1, j) {
                self.items.swap(j, j - 1);
                j -= 1;
            }
        }
        self.items
    }
}

fn top_bottom_k(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
    input: Vec<Series>,
    param: Vec<f64>,
    top: bool,
) -> Result<Val, EvalError> {
    let grouping = Grouping::new(&a.modifier);
    let mut index = GroupIndex::default();
    let series_group: Vec<usize> = input
        .iter()
        .map(|s| index.group(&grouping, &s.labels))
        .collect();
    let n_groups = index.labels.len();
    let mut cursor = StepCursor::new(input.len());
    let mut step = Vec::new();
    let mut out = Collector::new(&ev.grid);
    for i in 0..ev.grid.len() {
        let ts = ev.grid.ts(i);
        let mut k = k_param(param.get(i).copied().unwrap_or(f64::NAN))?;
        if k > input.len() as i64 {
            k = input.len() as i64;
        }
        cursor.gather(&input, ts, &mut step);
        if k < 1 {
            continue;
        }
        let k = k as usize;
        let mut heaps: Vec<Option<GoHeap>> = (0..n_groups).map(|_| None).collect();
        for &(si, v) in &step {
            let e = Entry { series: si, v };
            let h = &mut heaps[series_group[si]];
            match h {
                None => {
                    let mut g = GoHeap {
                        items: Vec::with_capacity(k),
                        top,
                    };
                    g.push(e);
                    *h = Some(g);
                }
                Some(g) => {
                    if g.items.len() < k {
                        g.push(e);
                    } else {
                        let head = g.items[0].v;
                        let replace = if top {
                            head < v || (head.is_nan() && !v.is_nan())
                        } else {
                            head > v || (head.is_nan() && !v.is_nan())
                        };
                        if replace {
                            g.items[0] = e;
                            if k > 1 {
                                g.fix(0);
                            }
                        }
                    }
                }
            }
        }
        for g in heaps.into_iter().flatten() {
            for e in g.into_sorted() {
                let s = &input[e.series];
                out.push(&s.labels, s.drop_name, ts, e.v)?;
            }
        }
    }
    Ok(Val::Vector(out.finish()))
}

fn count_values(ev: &Evaluator<'_>, a: &AggregateExpr) -> Result<Val, EvalError> {
    let param = a
        .param
        .as_ref()
        .ok_or_else(|| EvalError::BadArgument("count_values needs a label name".into()))?;
    let label = string_arg(param)?;
    if label.is_empty() {
        return Err(EvalError::BadArgument(format!(
            "invalid label name {label:?}"
        )));
    }
    let input = ev.eval_vector(&a.expr)?;
    let mut cursor = StepCursor::new(input.len());
    let mut step = Vec::new();
    let mut out = Collector::new(&ev.grid);
    // `by` groups on the value label too.
    let modifier = match &a.modifier {
        Some(LabelModifier::Include(l)) => {
            let mut l = l.clone();
            l.labels.push(label.clone());
            Some(LabelModifier::Include(l))
        }
        Some(m) => Some(m.clone()),
        None => Some(LabelModifier::include(vec![label.as_str()])),
    };
    let label_name: crate::series::labels::LabelStr = label.as_str().into();
    for i in 0..ev.grid.len() {
        let ts = ev.grid.ts(i);
        cursor.gather(&input, ts, &mut step);
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut idx: HashMap<Labels, usize> = HashMap::new();
        for &(si, v) in &step {
            let with_value = input[si]
                .labels
                .with(label_name.clone(), format_value(v).as_str());
            let gl = group_labels(&with_value, &modifier);
            match idx.get(&gl) {
                Some(&j) => counts[j].1 += 1.0,
                None => {
                    idx.insert(gl.clone(), counts.len());
                    counts.push((gl, 1.0));
                }
            }
        }
        for (l, c) in counts {
            out.push(&l, false, ts, c)?;
        }
    }
    Ok(Val::Vector(out.finish()))
}
