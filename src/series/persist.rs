//! Keeping the head across restarts: closed chunks are written to the store as they close
//! (checked every 30 s), every chunk including the open one on a clean stop, and on start the
//! head gets back the window that rules and gate baselines need.
//!
//! A chunk that was still open at a stop is stored, then reloaded and appended to after the
//! restart; when it closes it is stored again under its new last time. The loader keeps the
//! longest copy of chunks that start at the same time, so both copies coexist harmlessly until
//! retention prunes the shorter one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::head::Head;
use super::{Labels, Timestamp};
use crate::clock::Clock;
use crate::daemon::systemd::Heartbeat;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// One series' stored chunks while loading: (min_t, max_t, bytes).
type Pending = Option<(Labels, Vec<(Timestamp, Timestamp, Vec<u8>)>)>;

/// Loads the chunks of the last `window` into the head. Returns (series, samples) loaded.
pub fn load_head(
    head: &Head,
    store: &Store,
    now_ms: Timestamp,
    window: Duration,
) -> (usize, usize) {
    let min_t = now_ms - window.as_millis() as i64;
    let mut series = 0;
    let mut samples = 0;
    let mut current: Pending = None;
    let flush = |cur: Pending, series: &mut usize, samples: &mut usize| {
        let Some((labels, chunks)) = cur else { return };
        // Keep the longest copy of chunks with the same start; drop true overlaps.
        let mut kept: Vec<(Timestamp, Timestamp, Vec<u8>)> = Vec::new();
        for c in chunks {
            match kept.last_mut() {
                Some(last) if last.0 == c.0 => {
                    if c.1 >= last.1 {
                        *last = c;
                    }
                }
                Some(last) if c.0 <= last.1 => {}
                _ => kept.push(c),
            }
        }
        match head.load_series(&labels, kept.iter().map(|c| c.2.as_slice())) {
            Ok(n) => {
                *series += 1;
                *samples += n;
            }
            Err(e) => warn!(series = %labels, error = %e, "stored chunks not loaded"),
        }
    };
    for c in store.chunks_since(min_t) {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "a stored chunk could not be read");
                continue;
            }
        };
        match &mut current {
            Some((l, v)) if *l == c.labels => v.push((c.min_t, c.max_t, c.bytes)),
            _ => {
                flush(current.take(), &mut series, &mut samples);
                current = Some((c.labels, vec![(c.min_t, c.max_t, c.bytes)]));
            }
        }
    }
    flush(current.take(), &mut series, &mut samples);
    (series, samples)
}

/// Writes chunks to the store and trims the head to its window.
pub struct Checkpointer {
    /// The head.
    pub head: Arc<Head>,
    /// The store.
    pub store: Arc<Store>,
    /// How much history the head keeps in memory.
    pub window: Duration,
    /// Wall time.
    pub clock: Clock,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// Liveness.
    pub heartbeat: Heartbeat,
}

impl Checkpointer {
    /// Every 30 s: store newly closed chunks, drop what is older than the window. On
    /// `shutdown`: store every chunk, open ones included.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut persisted: HashMap<u64, Timestamp> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let head = self.head.clone();
            let store = self.store.clone();
            let mut p = std::mem::take(&mut persisted);
            let window = self.window;
            let now = self.clock.now_ms();
            let r = tokio::task::spawn_blocking(move || {
                let written = checkpoint(&head, &store, &mut p, stopping);
                if !stopping {
                    head.truncate(now - window.as_millis() as i64);
                }
                (p, written)
            })
            .await;
            match r {
                Ok((p, Ok(n))) => {
                    persisted = p;
                    if stopping {
                        info!(chunks = n, "head written to the store");
                    }
                }
                Ok((p, Err(e))) => {
                    persisted = p;
                    self.telemetry
                        .store_write_failures
                        .with_label_values(&["chunks"])
                        .inc();
                    self.telemetry.store_up.set(0);
                    error!(error = %e, "cannot write samples to the store; the head keeps them in memory");
                }
                Err(e) => error!(error = %e, "checkpoint task failed"),
            }
            let st = self.head.stats();
            self.telemetry.head_series.set(st.series as i64);
            self.heartbeat.beat();
            if stopping {
                return;
            }
        }
    }
}

/// One checkpoint: stores every closed chunk (and, when `all`, the open one) not stored yet,
/// and records in `persisted` (fingerprint → last stored chunk's max time) what was stored.
/// The [`Checkpointer`] runs it every 30 s and on stop; public for the store-size benchmark.
pub fn checkpoint(
    head: &Head,
    store: &Store,
    persisted: &mut HashMap<u64, Timestamp>,
    all: bool,
) -> Result<usize, crate::store::StoreError> {
    let mut written = 0;
    let mut err = None;
    head.for_each_series(|labels, chunks| {
        if err.is_some() {
            return;
        }
        let fp = labels.fingerprint();
        let done = persisted.get(&fp).copied().unwrap_or(i64::MIN);
        let n = if all {
            chunks.len()
        } else {
            chunks.len().saturating_sub(1)
        };
        for c in &chunks[..n] {
            if c.is_empty() || c.last_t() <= done {
                continue;
            }
            if let Err(e) = store.put_chunk(
                labels,
                c.first_t(),
                c.last_t(),
                c.len() as u32,
                c.as_bytes(),
            ) {
                err = Some(e);
                return;
            }
            persisted.insert(fp, c.last_t());
            written += 1;
        }
    });
    match err {
        Some(e) => Err(e),
        None => {
            if all {
                store.flush()?;
            }
            Ok(written)
        }
    }
}

/// How far back an expression reads: its longest range plus offset (subqueries included),
/// without the lookback.
pub fn reach(e: &promql_parser::parser::Expr) -> Duration {
    use promql_parser::parser::{Expr, Offset};
    let off = |o: &Option<Offset>| match o {
        Some(Offset::Pos(d)) => *d,
        _ => Duration::ZERO,
    };
    match e {
        Expr::MatrixSelector(m) => m.range + off(&m.vs.offset),
        Expr::VectorSelector(v) => off(&v.offset),
        Expr::Subquery(s) => s.range + off(&s.offset) + reach(&s.expr),
        Expr::Aggregate(a) => reach(&a.expr).max(a.param.as_deref().map_or(Duration::ZERO, reach)),
        Expr::Unary(u) => reach(&u.expr),
        Expr::Binary(b) => reach(&b.lhs).max(reach(&b.rhs)),
        Expr::Paren(p) => reach(&p.expr),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| reach(a))
            .max()
            .unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    }
}

/// How much history the head must hold for this config: the longest rule range plus the
/// 5-minute lookback, and for gates baseline + watch + the longest check range; never less
/// than 15 minutes. Gate windows are what make it long: without gates the head stays small.
pub fn head_window(c: &crate::config::Config) -> Duration {
    let lookback = Duration::from_secs(300);
    let mut w = Duration::from_secs(900);
    for r in &c.rules {
        w = w.max(reach(&r.expr.expr) + lookback + Duration::from_secs(60));
    }
    for g in &c.gates {
        let checks = g
            .check
            .iter()
            .map(|k| {
                reach(&k.expr.expr).max(k.guard.as_ref().map_or(Duration::ZERO, |e| reach(&e.expr)))
            })
            .max()
            .unwrap_or(Duration::ZERO);
        w = w.max(g.baseline.get() + g.watch.get() + checks + lookback + Duration::from_secs(60));
    }
    w
}
