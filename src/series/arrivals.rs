//! Which metric names got new samples, and when: writers mark the names of each batch they
//! land (a committed page, a probe run), and the rules engine takes them to evaluate the rules
//! that read those names right after their samples land, instead of on the next tick.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::hash::{FastMap, FastSet};
use super::labels::LabelStr;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When samples of one name landed since the names were last taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Landed {
    /// The first batch.
    pub first: Instant,
    /// The latest batch.
    pub last: Instant,
}

impl Landed {
    /// Both spans in one.
    pub fn merge(self, other: Landed) -> Landed {
        Landed {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }
}

/// Names landed since the last take. `Send + Sync`; the head holds one.
#[derive(Default)]
pub struct Arrivals {
    state: Mutex<State>,
    /// Wakes the taker when a name lands that was not pending yet: a burst of batches costs
    /// one wake-up.
    notify: Notify,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Names landed since the last take.
    landed: FastMap<LabelStr, Landed>,
    /// The names recorded.
    watched: Watched,
}

/// Which names are recorded.
#[derive(Default)]
enum Watched {
    /// None: until someone watches, writers without a taker (benchmarks, tools) pay only the
    /// lock.
    #[default]
    Nothing,
    /// Every name.
    Every,
    /// These names.
    Names(FastSet<LabelStr>),
}

impl Watched {
    fn contains(&self, name: &str) -> bool {
        match self {
            Watched::Nothing => false,
            Watched::Every => true,
            Watched::Names(n) => n.contains(name),
        }
    }
}

impl Arrivals {
    /// Records that samples of `names` just landed.
    pub fn mark<'a>(&self, names: impl IntoIterator<Item = &'a LabelStr>) {
        let mut new = false;
        {
            let mut st = lock(&self.state);
            let State { landed, watched } = &mut *st;
            if let Watched::Nothing = watched {
                return;
            }
            let mut now = None;
            for n in names {
                if !watched.contains(n) {
                    continue;
                }
                let t = *now.get_or_insert_with(Instant::now);
                match landed.get_mut(&**n) {
                    Some(l) => l.last = t,
                    None => {
                        landed.insert(n.clone(), Landed { first: t, last: t });
                        new = true;
                    }
                }
            }
        }
        if new {
            self.notify.notify_one();
        }
    }

    /// Records only `names` from now on (`None`: every name), and forgets pending names that
    /// are not among them.
    pub fn watch<'a>(&self, names: Option<impl IntoIterator<Item = &'a str>>) {
        let mut st = lock(&self.state);
        let State { landed, watched } = &mut *st;
        *watched = match names {
            None => Watched::Every,
            Some(n) => {
                let n: FastSet<LabelStr> = n.into_iter().map(LabelStr::from).collect();
                match n.is_empty() {
                    true => Watched::Nothing,
                    false => Watched::Names(n),
                }
            }
        };
        landed.retain(|n, _| watched.contains(n));
    }

    /// Moves the names landed since the last take into `into` (cleared first), leaving its
    /// allocation here for the next ones.
    pub fn take_into(&self, into: &mut FastMap<LabelStr, Landed>) {
        into.clear();
        std::mem::swap(&mut lock(&self.state).landed, into);
    }

    /// Completes when a name lands that was not pending; also when one did since the last
    /// wait, so nothing is missed between a take and the next wait.
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests;
