//! When each rule is evaluated: right after new samples of the series it reads have landed,
//! instead of on the next tick of a fixed grid, at the cost of Prometheus' grid (about one
//! evaluation per `evaluation_interval`).
//!
//! - A rule whose input lands once an interval (one target, or targets scraped together)
//!   *follows* it: it is evaluated as soon as that input has landed.
//! - A rule whose input lands all through the interval (many targets, each at its own
//!   offset) has no such moment: it is evaluated on the evaluation grid, in one round with
//!   every other such rule, sharing the round's memo, as in Prometheus.
//! - A rule without fresh input is evaluated anyway once an interval (`absent()`, `for`, a
//!   target that went away): on the grid, or, for a rule that follows its input, a tenth of an
//!   interval after its input was due.
//!
//! Input less than 0.9 × interval after the previous counts as landing all through the
//! interval; the tenth absorbs the jitter of scrapes. A rule follows input that came about an
//! interval after the previous, or after two intervals without any (a series that appears),
//! at once; other input waits until 0.9 × interval after its last evaluation, which bounds
//! what irregular input costs.

use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};
use tokio::time::Instant;

use crate::series::METRIC_NAME;
use crate::series::arrivals::Landed;
use crate::series::hash::FastMap;
use crate::series::labels::LabelStr;

/// The metric names an expression reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// A selector without a fixed metric name: any name may matter.
    Any,
    /// These names, sorted; none for an expression without selectors (`vector(1)`).
    Names(Vec<String>),
}

/// The metric names of the selectors in `expr`, in functions' arguments, aggregations and
/// subqueries included.
pub fn reads(expr: &Expr) -> Reads {
    let mut names = Vec::new();
    if !walk(expr, &mut names) {
        return Reads::Any;
    }
    names.sort();
    names.dedup();
    Reads::Names(names)
}

/// Adds the names `expr` reads; false when a selector has no fixed name.
fn walk(expr: &Expr, names: &mut Vec<String>) -> bool {
    match expr {
        Expr::Aggregate(a) => {
            walk(&a.expr, names) && a.param.as_deref().is_none_or(|p| walk(p, names))
        }
        Expr::Unary(u) => walk(&u.expr, names),
        Expr::Binary(b) => walk(&b.lhs, names) && walk(&b.rhs, names),
        Expr::Paren(p) => walk(&p.expr, names),
        Expr::Subquery(s) => walk(&s.expr, names),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::VectorSelector(vs) => selector_names(vs, names),
        Expr::MatrixSelector(ms) => selector_names(&ms.vs, names),
        Expr::Call(c) => c.args.args.iter().all(|a| walk(a, names)),
        Expr::Extension(_) => false,
    }
}

fn selector_names(vs: &VectorSelector, names: &mut Vec<String>) -> bool {
    let fixed = |ms: &[Matcher]| {
        ms.iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    };
    if let Some(n) = vs.name.clone().or_else(|| fixed(&vs.matchers.matchers)) {
        names.push(n);
        return true;
    }
    // `{__name__="a" or __name__="b"}`: every branch needs a name.
    !vs.matchers.or_matchers.is_empty()
        && vs.matchers.or_matchers.iter().all(|b| match fixed(b) {
            Some(n) => {
                names.push(n);
                true
            }
            None => false,
        })
}

/// The names to record as arrivals for these rules; `None` for every name.
pub fn watched(reads: &[Reads]) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for r in reads {
        match r {
            Reads::Any => return None,
            Reads::Names(n) => out.extend(n.iter().map(String::as_str)),
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// One rule's place in the schedule.
#[derive(Clone, Debug)]
struct Slot {
    /// Its group's interval.
    every: Duration,
    /// Its last evaluation.
    last: Instant,
    /// The earliest time of its next evaluation, unless it follows input that came regularly:
    /// 0.9 × interval after the last one (the first round excepted, so that a rule over a
    /// target scraped just after it need not catch up with its scrapes).
    soonest: Instant,
    /// Its last evaluation that saw fresh input.
    fed: Instant,
    /// When the newest input it saw landed; `None` before any.
    input: Option<Instant>,
    /// Input landed since its last evaluation.
    fresh: Option<Landed>,
    /// True when its last evaluation followed its input rather than a tick of the grid.
    followed: bool,
}

/// When each rule of a generation is due, from the arrivals of the names it reads.
#[derive(Debug)]
pub struct Schedule {
    /// `evaluation_interval`: a round at least this often.
    every: Duration,
    /// The first round, where the grid starts.
    origin: Instant,
    /// By rule, in the order of the rules.
    slots: Vec<Slot>,
    /// The rules that read each name.
    by_name: FastMap<String, Vec<usize>>,
    /// The rules that read any name.
    any: Vec<usize>,
    /// The last round, of whichever rules.
    last_round: Instant,
}

impl Schedule {
    /// The schedule of rules reading `reads`, all evaluated in a first round at `first`.
    pub fn new(reads: &[Reads], every: Duration, first: Instant) -> Schedule {
        let mut by_name: FastMap<String, Vec<usize>> = FastMap::default();
        let mut any = Vec::new();
        for (i, r) in reads.iter().enumerate() {
            match r {
                Reads::Any => any.push(i),
                Reads::Names(names) => {
                    for n in names {
                        by_name.entry(n.clone()).or_default().push(i);
                    }
                }
            }
        }
        let slot = Slot {
            every,
            last: first,
            soonest: first,
            fed: first,
            input: None,
            fresh: None,
            followed: false,
        };
        Schedule {
            every,
            origin: first,
            slots: vec![slot; reads.len()],
            by_name,
            any,
            last_round: first,
        }
    }

    /// Notes what landed; true when some rule got fresh input.
    pub fn landed(&mut self, taken: &FastMap<LabelStr, Landed>) -> bool {
        self.landed_except(taken, |_, _| false)
    }

    /// Notes what landed, except for rule `i` a name for which `seen(i, name)`: what a round
    /// wrote itself (recording rules) and the rules after the writer already read.
    pub fn landed_except(
        &mut self,
        taken: &FastMap<LabelStr, Landed>,
        seen: impl Fn(usize, &str) -> bool,
    ) -> bool {
        let mut fresh = false;
        for (name, when) in taken {
            let rules = self.by_name.get(&**name).into_iter().flatten();
            for &i in rules.chain(&self.any) {
                if seen(i, name) {
                    continue;
                }
                if let Some(s) = self.slots.get_mut(i) {
                    s.fresh = Some(s.fresh.map_or(*when, |f| f.merge(*when)));
                    fresh = true;
                }
            }
        }
        fresh
    }

    /// Evaluates rule `i` about once every `every` (its group's interval) instead of once an
    /// `evaluation_interval`.
    pub fn set_interval(&mut self, i: usize, every: Duration) {
        if let Some(s) = self.slots.get_mut(i) {
            s.every = every.max(Duration::from_millis(100));
        }
    }

    /// The first tick of a grid of step `every` at or after `t`.
    fn grid_from(&self, t: Instant, every: Duration) -> Instant {
        let since = t.saturating_duration_since(self.origin);
        let every = every.as_nanos().max(1);
        let ticks = since.as_nanos().div_ceil(every);
        self.origin + Duration::from_nanos(u64::try_from(ticks * every).unwrap_or(u64::MAX))
    }

    /// True when input that first landed at `first` came at least 0.9 × interval after the
    /// input `s` saw last (or after none): `s` follows it.
    fn follows(&self, s: &Slot, first: Instant) -> bool {
        s.input.is_none_or(|i| first >= i + s.every - s.every / 10)
    }

    /// When rule `s` is due.
    fn due_at(&self, s: &Slot) -> Instant {
        let every = s.every;
        let grid = || self.grid_from(s.soonest.max(s.last + every / 2), every);
        match s.fresh {
            // Right away when it came an interval after the input before (as often as the
            // grid), or first for two intervals (a series that appears); otherwise not sooner
            // than 0.9 × interval after the last evaluation.
            Some(l) if self.follows(s, l.first) => {
                let regular = s.input.is_some_and(|i| l.first <= i + every + every / 10);
                if regular || l.first >= s.fed + every * 2 {
                    l.first
                } else {
                    l.first.max(s.soonest)
                }
            }
            // Input all through the interval.
            Some(_) => grid(),
            // Its input is late: wait a little for it, not a whole tick.
            None if s.followed => s.last + every + every / 10,
            None => grid(),
        }
    }

    /// When the next round is due: the earliest rule, or the first tick an interval after the
    /// last round (the round also writes `ALERTS` and proves the loop alive).
    pub fn next(&self) -> Instant {
        self.slots.iter().map(|s| self.due_at(s)).fold(
            self.grid_from(self.last_round + self.every, self.every),
            Instant::min,
        )
    }

    /// Which rules are due at `now`, by index.
    pub fn due(&self, now: Instant) -> Vec<bool> {
        self.slots.iter().map(|s| self.due_at(s) <= now).collect()
    }

    /// Records a round at `at` of the rules `due` marks.
    pub fn evaluated(&mut self, due: &[bool], at: Instant) {
        for i in due.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i) {
            let Some(s) = self.slots.get(i) else {
                continue;
            };
            let fresh = s.fresh;
            let followed = fresh.is_some_and(|l| self.follows(s, l.first));
            let every = s.every;
            self.slots[i] = Slot {
                every,
                last: at,
                soonest: at + every - every / 10,
                fed: if fresh.is_some() { at } else { s.fed },
                input: fresh.map(|l| l.last).or(s.input),
                fresh: None,
                followed,
            };
        }
        self.last_round = at;
    }

    /// How many rules it schedules.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when it schedules no rule.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests;
