//! Remote write (SPEC §10): every sample the head takes, sent with Prometheus remote write 1.0
//! (protobuf `WriteRequest`, snappy block format) to each `[[remote_write]]` endpoint.
//!
//! # How a sample travels
//!
//! - **Tap.** The head tells [`RemoteWrite`] of every appended sample ([`AppendTap`]); each
//!   endpoint's queue keeps the sample's head series (a shared reference, no copy), time and
//!   value. With no `[[remote_write]]` no tap is set and an append costs one atomic load more.
//! - **Rounds.** Every `batch_send_deadline` the endpoint's sender takes the queued samples up to
//!   `cut = now - delay` (`delay` is the longest scrape or probe timeout plus a second: a page's
//!   samples carry the scrape's start time and land when the scrape ends, so waiting that long
//!   means every sample up to `cut` has landed; later ones wait for the next round), splits them
//!   into `shards` by the fingerprint of their labels (a series always takes the same shard, so
//!   its samples stay in order), and each shard sends them in time order, in requests of at
//!   most `max_samples_per_send`. A series' shard and write_relabel verdict are remembered by
//!   its id, so a round reads no label of a series it has seen before.
//! - **Send position.** Each shard keeps a position: every sample of its series up to that
//!   time is delivered, none after it. It moves after each accepted request and is written
//!   durably to the store, so a restart resumes exactly there: a receiver that refuses
//!   out-of-order samples (Prometheus) gets neither a gap nor a sample twice. A request
//!   that ends inside one timestamp leaves the position just before it; resending the samples
//!   of that timestamp is harmless, as receivers take an identical last sample silently.
//! - **Backlog.** After a restart, or when the receiver is down for so long that the queue
//!   fills ([`QUEUE_CAPACITY`]), the queue stops holding samples up to a time (the gap) and the
//!   sender reads them back instead. While the sender is behind, the gap follows the newest
//!   sample and nothing is queued; once its reads come within a slice of the present, the
//!   gap's end is fixed and later samples queue again. The reads come from the head and the
//!   store as the query API does ([`QuerySource`]: the head for its window, the stored chunks
//!   before it, a sample in both once), a slice of time at a time: the slice starts at
//!   [`CATCH_UP_SLICE`] and halves or doubles so that a read holds about
//!   [`CATCH_UP_SAMPLES`], so a long outage costs store reads, not memory. A read is split
//!   between the shards as it is made, each part sized at once. Everything within the store's
//!   retention is read back, whatever the head's window; a position older than the retention
//!   starts at its edge.
//! - **Failures.** A 5xx, a 429 or a network error is retried with backoff (doubling from
//!   `min_backoff` to `max_backoff`, or what `Retry-After` asks), for as long as it takes; a
//!   4xx other than 429 drops the request's samples and counts them. Each retry sets the lag
//!   gauge, so it grows with an outage rather than waiting for the round to end.

mod proto;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use prost::encoding::{encode_varint, encoded_len_varint};
use regex::Regex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::{Config, RelabelAction, RemoteWriteConfig};
use crate::promql::QueryLimits;
use crate::series::hash::FastMap;
use crate::series::head::{AppendTap, Head, MemSeries};
use crate::series::{Labels, SeriesSource as _, Timestamp};
use crate::store::query::QuerySource;
use crate::store::{SampleStore, StateStore, Store};
use crate::telemetry::Telemetry;

pub use proto::{Label as ProtoLabel, Sample as ProtoSample, TimeSeries, WriteRequest};

/// Samples an endpoint's queue holds before it gives up holding them and reads the backlog
/// back from the head and the store (about 6 MiB).
pub const QUEUE_CAPACITY: usize = 250_000;

/// Time read back at once when catching up starts; later reads adapt it to
/// [`CATCH_UP_SAMPLES`].
pub const CATCH_UP_SLICE: Timestamp = 15_000;

/// Samples one read of the backlog aims at: the slice of time halves after a read of more and
/// doubles after a read of less than half (between [`MIN_SLICE`] and [`MAX_SLICE`]). Bounds
/// the memory of a backlog (about 40 bytes a sample while it is sent).
pub const CATCH_UP_SAMPLES: usize = 100_000;

/// The shortest slice of the backlog read at once.
pub const MIN_SLICE: Timestamp = 1_000;

/// The longest slice of the backlog read at once: a stretch without samples (the instance was
/// stopped) is crossed quickly, and a read still touches few stored blocks.
pub const MAX_SLICE: Timestamp = 3_600_000;

/// The protocol version header's value.
const VERSION: &str = "0.1.0";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A sample on its way out, as a request encodes it.
pub trait Outgoing: Send + 'static {
    /// The series' labels.
    fn labels(&self) -> &Labels;
    /// Milliseconds since the epoch.
    fn t(&self) -> Timestamp;
    /// The value (stale markers included).
    fn v(&self) -> f64;
}

/// One sample read back from the head and the store.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The series (shared with the head or the read).
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub t: Timestamp,
    /// The value (stale markers included).
    pub v: f64,
}

impl Outgoing for Entry {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn t(&self) -> Timestamp {
        self.t
    }
    fn v(&self) -> f64 {
        self.v
    }
}

/// One sample the tap queued. It holds the head series rather than its label set: the append
/// has just touched the series, where the label set may be far from any cache.
struct Queued {
    series: Arc<MemSeries>,
    t: Timestamp,
    v: f64,
}

impl Outgoing for Queued {
    fn labels(&self) -> &Labels {
        self.series.labels()
    }
    fn t(&self) -> Timestamp {
        self.t
    }
    fn v(&self) -> f64 {
        self.v
    }
}

/// What the tap filled and the sender takes.
#[derive(Default)]
struct Queue {
    /// Samples in append order.
    entries: Vec<Queued>,
    /// Samples at or before this time are not in `entries`: the sender reads them back from
    /// the head and the store (after a restart, or once the queue was full).
    gap_until: Option<Timestamp>,
    /// The gap follows the newest sample (nothing is queued) until the sender's reads come
    /// near the present and fix its end.
    gap_grows: bool,
    /// The newest time pushed, where a gap opened by a full queue ends.
    max_t: Timestamp,
}

impl Queue {
    /// The gap's end for a read of the backlog from `from`, a `slice` long, with samples
    /// landed up to `cut`; `None` when there is no gap. A read that reaches `cut` fixes a
    /// growing gap's end, so that later samples queue again.
    fn gap_for_read(
        &mut self,
        from: Timestamp,
        slice: Timestamp,
        cut: Timestamp,
    ) -> Option<Timestamp> {
        if self.gap_grows && from.saturating_add(slice) >= cut {
            self.gap_grows = false;
        }
        self.gap_until
    }
}

/// A round's samples split between the shards.
struct Split<S> {
    /// One list per shard, in no particular order.
    shards: Vec<Vec<S>>,
    /// Samples write_relabel dropped.
    filtered: u64,
}

/// One `[[remote_write]]` endpoint: its queue and settings.
struct Endpoint {
    config: RemoteWriteConfig,
    /// The URL as shown in metrics and logs: without user info, query or fragment.
    shown: String,
    /// The store key of its send positions (a hash of the URL: the URL may hold a secret).
    key: String,
    /// `[global] external_labels`, added to each series unless it has the label.
    external: Vec<(String, String)>,
    queue: Mutex<Queue>,
    capacity: usize,
}

impl Endpoint {
    fn push(&self, series: &Arc<MemSeries>, t: Timestamp, v: f64) {
        let mut q = lock(&self.queue);
        q.max_t = q.max_t.max(t);
        if let Some(g) = q.gap_until {
            if q.gap_grows {
                q.gap_until = Some(g.max(t));
                return;
            }
            if t <= g {
                return;
            }
        }
        if q.entries.len() >= self.capacity {
            q.gap_until = Some(q.max_t);
            q.gap_grows = true;
            q.entries = Vec::new();
            return;
        }
        q.entries.push(Queued {
            series: series.clone(),
            t,
            v,
        });
    }

    /// The shard of a series, or `None` when write_relabel drops it.
    fn route(&self, labels: &Labels, n: usize, joined: &mut String) -> Option<usize> {
        self.keeps(labels, joined)
            .then(|| (labels.fingerprint() % n as u64) as usize)
    }

    /// Whether the write_relabel rules let this series through.
    fn keeps(&self, labels: &Labels, joined: &mut String) -> bool {
        for r in &self.config.write_relabel {
            joined.clear();
            for (i, name) in r.source_labels.iter().enumerate() {
                if i > 0 {
                    joined.push(';');
                }
                joined.push_str(labels.get(name).unwrap_or(""));
            }
            let matched = r.regex.is_match(joined);
            let keep = match r.action {
                RelabelAction::Keep => matched,
                RelabelAction::Drop => !matched,
            };
            if !keep {
                return false;
            }
        }
        true
    }
}

/// The URL without user info, query or fragment, for metrics and logs.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "invalid-url".into(),
    }
}

/// FNV-1a 64 of the URL, naming its positions in the store.
fn url_key(url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("remote_write/{h:016x}")
}

/// Stored send positions of an endpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Positions {
    /// One per shard: every sample of the shard's series up to this time is delivered.
    shards: Vec<Timestamp>,
}

/// How long after its timestamp a sample is sure to be in the head: the longest scrape or
/// probe timeout, plus a second for the append itself.
pub fn append_delay(config: &Config) -> Duration {
    let scrape = config
        .jobs
        .iter()
        .map(|j| j.timeout(&config.global))
        .max()
        .unwrap_or_default();
    let probe = config
        .probes
        .iter()
        .map(|p| p.timeout(&config.global))
        .max()
        .unwrap_or_default();
    scrape.max(probe) + Duration::from_secs(1)
}

/// The remote write component: the head's tap and one sender per endpoint.
pub struct RemoteWrite {
    endpoints: Vec<Arc<Endpoint>>,
    head: Arc<Head>,
    state: StateStore,
    /// The stored chunks: the backlog before the head's window is read from them.
    samples: SampleStore,
    /// `[storage] retention`: the store holds nothing older, so no position starts before it.
    retention: Duration,
    http: reqwest::Client,
    clock: Clock,
    telemetry: Arc<Telemetry>,
    delay: Duration,
}

/// The tap the head calls: forwards each sample to every endpoint's queue.
struct Tap(Vec<Arc<Endpoint>>);

impl AppendTap for Tap {
    fn appended(&self, series: &Arc<MemSeries>, t: Timestamp, v: f64) {
        for e in &self.0 {
            e.push(series, t, v);
        }
    }
}

impl RemoteWrite {
    /// The component for `config`'s endpoints (`None` when there are none).
    pub fn new(
        config: &Config,
        head: Arc<Head>,
        store: &Store,
        http: reqwest::Client,
        clock: Clock,
        telemetry: Arc<Telemetry>,
    ) -> Option<RemoteWrite> {
        Self::with_capacity(config, head, store, http, clock, telemetry, QUEUE_CAPACITY)
    }

    /// [`RemoteWrite::new`] with another queue capacity (tests fill it quickly).
    pub fn with_capacity(
        config: &Config,
        head: Arc<Head>,
        store: &Store,
        http: reqwest::Client,
        clock: Clock,
        telemetry: Arc<Telemetry>,
        capacity: usize,
    ) -> Option<RemoteWrite> {
        if config.remote_write.is_empty() {
            return None;
        }
        let external: Vec<(String, String)> = config
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let endpoints = config
            .remote_write
            .iter()
            .map(|c| {
                Arc::new(Endpoint {
                    shown: shown_url(&c.url),
                    key: url_key(&c.url),
                    config: c.clone(),
                    external: external.clone(),
                    queue: Mutex::new(Queue::default()),
                    capacity: capacity.max(1),
                })
            })
            .collect();
        Some(RemoteWrite {
            endpoints,
            head,
            state: store.state.clone(),
            samples: store.samples.clone(),
            retention: config.storage.retention.get(),
            http,
            clock,
            telemetry,
            delay: append_delay(config),
        })
    }

    /// Loads each endpoint's positions (a restart reads what was not sent back from the store)
    /// and sets the head's tap, both before it returns, so the caller can start the writers
    /// after it; the future runs the senders until `shutdown`, then removes the tap.
    pub fn run(self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let start = self.clock.now_ms();
        let mut positions = Vec::new();
        for e in &self.endpoints {
            let p = self.load_positions(e, start);
            positions.push(p);
        }
        self.head
            .set_tap(Some(Arc::new(Tap(self.endpoints.clone()))));
        let this = Arc::new(self);
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (e, p) in this.endpoints.iter().zip(positions) {
                tasks.spawn(Sender::new(this.clone(), e.clone(), p).run(shutdown.clone()));
            }
            while tasks.join_next().await.is_some() {}
            this.head.set_tap(None);
        }
    }

    /// The endpoint's positions from the store, or `start` for a new endpoint (its history
    /// before now is not sent). With stored positions, the queue starts with a gap up to
    /// `start`: what the head took before the tap was set is read back. A position older than
    /// the retention starts at its edge: the store holds nothing before it.
    fn load_positions(&self, e: &Endpoint, start: Timestamp) -> Vec<Timestamp> {
        let n = e.config.shards as usize;
        let stored: Option<Positions> = match self.state.meta_get(&e.key) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(err) => {
                warn!(url = %e.shown, error = %err, "cannot read the remote write position; starting from now");
                None
            }
        };
        match stored {
            Some(p) if !p.shards.is_empty() => {
                let oldest = start - self.retention.as_millis() as Timestamp;
                let pos = if p.shards.len() == n {
                    p.shards.iter().map(|&t| t.max(oldest)).collect()
                } else {
                    // Another shard count: every new shard starts from the oldest position,
                    // so nothing is lost (a receiver may see a few samples twice).
                    let min = p.shards.iter().copied().min().unwrap_or(start);
                    vec![min.max(oldest); n]
                };
                let mut q = lock(&e.queue);
                q.gap_until = Some(start);
                q.gap_grows = true;
                drop(q);
                info!(url = %e.shown, behind_seconds = (start - pos.iter().copied().min().unwrap_or(start)) as f64 / 1000.0, "remote write resumes from its stored position");
                pos
            }
            _ => {
                let pos = vec![start; n];
                self.save_positions(e, &pos);
                pos
            }
        }
    }

    fn save_positions(&self, e: &Endpoint, pos: &[Timestamp]) {
        let bytes = serde_json::to_vec(&Positions {
            shards: pos.to_vec(),
        })
        .unwrap_or_default();
        if let Err(err) = self.state.meta_put_durable(&e.key, &bytes) {
            warn!(url = %e.shown, error = %err, "cannot store the remote write position");
        }
    }

    /// Sets the lag gauge: how far the oldest shard's position is behind now (`end` when
    /// there are no shards).
    fn set_lag(&self, e: &Endpoint, pos: &[Timestamp], end: Timestamp) {
        let oldest = pos.iter().copied().min().unwrap_or(end);
        self.telemetry
            .remote_write_lag_seconds
            .with_label_values(&[&e.shown])
            .set((self.clock.now_ms() - oldest).max(0) as f64 / 1000.0);
    }

    /// Every sample in `(pos[shard], end]` of every series of the head and the store that
    /// write_relabel keeps (the query API's reading of both: no gap and no sample twice where
    /// they meet), split between the shards, series by series, each in time order.
    fn read_back(&self, e: &Endpoint, pos: &[Timestamp], end: Timestamp) -> Split<Entry> {
        let n = pos.len();
        let mut split = Split {
            shards: (0..n).map(|_| Vec::new()).collect(),
            filtered: 0,
        };
        let from = pos.iter().copied().min().unwrap_or(end);
        if from >= end {
            return split;
        }
        let every = [Matcher::new(
            MatchOp::Re(Regex::new("^(?:.+)$").expect("a valid static regex")),
            crate::series::METRIC_NAME,
            ".+",
        )];
        let limits = QueryLimits::none();
        let source = QuerySource::new(&self.head, &self.samples, &limits);
        let read = source.select(&every, from + 1, end);
        // Each series' shard and the samples after its position, then each shard's list sized
        // at once: a backlog read is the remote writer's largest allocation.
        let mut joined = String::new();
        let routed: Vec<Option<(usize, usize)>> = read
            .iter()
            .map(|s| {
                let k = e.route(&s.labels, n, &mut joined)?;
                Some((k, s.samples.partition_point(|x| x.t <= pos[k])))
            })
            .collect();
        let mut sizes = vec![0; n];
        for (s, r) in read.iter().zip(&routed) {
            match r {
                Some((k, skip)) => sizes[*k] += s.samples.len() - skip,
                None => split.filtered += s.samples.len() as u64,
            }
        }
        for (shard, size) in split.shards.iter_mut().zip(sizes) {
            shard.reserve_exact(size);
        }
        for (s, r) in read.into_iter().zip(routed) {
            let Some((k, skip)) = r else { continue };
            split.shards[k].extend(s.samples[skip..].iter().map(|x| Entry {
                labels: s.labels.clone(),
                t: x.t,
                v: x.v,
            }));
        }
        split
    }
}

/// What one request came to.
enum Outcome {
    /// Accepted (or refused for good and dropped): the position may move past it.
    Done,
    /// Shutdown came while retrying: the position stays.
    Stopped,
}

/// One endpoint's sending loop.
struct Sender {
    rw: Arc<RemoteWrite>,
    e: Arc<Endpoint>,
    pos: Vec<Timestamp>,
    /// Queued samples after the last round's cut: the next round takes them first.
    held: Vec<Queued>,
    /// An empty list whose room the queue fills again, so that the tap does not grow a new
    /// one under the queue's lock each round.
    spare: Vec<Queued>,
    routes: Routes,
    rounds: u32,
}

/// Rounds after which a sender forgets the routes of its series (10 minutes at the default
/// `batch_send_deadline`).
const ROUTE_ROUNDS: u32 = 120;

/// The route of a series write_relabel drops (shards are fewer than 65).
const FILTERED: u8 = u8::MAX;

/// The most series ids [`Routes`] covers (a byte each).
const ROUTES_MAX: u64 = 1 << 22;

/// Each head series' shard, or [`FILTERED`] when write_relabel drops it, by series id: one
/// byte per id from `base`. Ids are never reused, so a byte cannot name another series; they
/// are handed out in order, so the series of one page sit side by side and a round reads the
/// table almost in order. Ids before `base` or [`ROUTES_MAX`] past it are routed uncached.
struct Routes {
    base: u64,
    /// `0` for unknown, [`FILTERED`], or the shard plus one.
    known: Vec<u8>,
    /// The lowest id looked up since the last reset: the next base.
    lowest: u64,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            base: 0,
            known: Vec::new(),
            lowest: u64::MAX,
        }
    }

    /// The route of series `id`, from `route` the first time.
    fn get(&mut self, id: u64, route: impl FnOnce() -> u8) -> u8 {
        self.lowest = self.lowest.min(id);
        let Some(i) = id.checked_sub(self.base).filter(|&i| i < ROUTES_MAX) else {
            return route();
        };
        let i = i as usize;
        if i >= self.known.len() {
            self.known.resize((i + 1).next_power_of_two(), 0);
        }
        match self.known[i] {
            0 => {
                let r = route();
                self.known[i] = if r == FILTERED { r } else { r + 1 };
                r
            }
            FILTERED => FILTERED,
            k => k - 1,
        }
    }

    /// Forgets every route, so that series gone from the head leave the table; it starts
    /// again at the lowest id looked up since the last reset.
    fn reset(&mut self) {
        *self = Routes {
            base: if self.lowest == u64::MAX {
                self.base
            } else {
                self.lowest
            },
            known: Vec::new(),
            lowest: u64::MAX,
        };
    }
}

impl Sender {
    fn new(rw: Arc<RemoteWrite>, e: Arc<Endpoint>, pos: Vec<Timestamp>) -> Sender {
        Sender {
            rw,
            e,
            pos,
            held: Vec::new(),
            spare: Vec::new(),
            routes: Routes::new(),
            rounds: 0,
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let deadline = self.e.config.batch_send_deadline.get();
        let mut behind = false;
        let mut slice = CATCH_UP_SLICE;
        loop {
            if !behind {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(deadline) => {}
                }
            } else if shutdown.is_cancelled() {
                break;
            }
            let cut = self.rw.clock.now_ms() - self.rw.delay.as_millis() as Timestamp;
            let from = self.pos.iter().copied().min().unwrap_or(cut);
            let gap = lock(&self.e.queue).gap_for_read(from, slice, cut);
            let (stopped, end, closes_gap) = match gap {
                Some(g) => {
                    // Everything held is at or before the gap's end: it is read back.
                    self.held.clear();
                    let end = g.min(cut).min(from.saturating_add(slice));
                    if end <= from {
                        behind = false;
                        continue;
                    }
                    let (rw, e, pos) = (self.rw.clone(), self.e.clone(), self.pos.clone());
                    let split = tokio::task::spawn_blocking(move || rw.read_back(&e, &pos, end))
                        .await
                        .ok();
                    let Some(split) = split else { break };
                    let read = split.shards.iter().map(Vec::len).sum();
                    slice = next_slice(slice, read);
                    self.set_pending(read);
                    (self.round(split, end, &shutdown).await, end, end >= g)
                }
                None => {
                    let split = self.take_queued(cut);
                    (self.round(split, cut, &shutdown).await, cut, false)
                }
            };
            if closes_gap && !stopped {
                let mut q = lock(&self.e.queue);
                if q.gap_until == gap {
                    q.gap_until = None;
                    q.gap_grows = false;
                }
            }
            behind = gap.is_some() && !closes_gap;
            if !behind {
                slice = CATCH_UP_SLICE;
            }
            self.rw.set_lag(&self.e, &self.pos, end);
            if stopped {
                break;
            }
        }
        self.rw.save_positions(&self.e, &self.pos);
    }

    /// Takes the queued samples up to `cut` (and those held from the last round), split
    /// between the shards; later ones are held for the next round.
    fn take_queued(&mut self, cut: Timestamp) -> Split<Queued> {
        let mut taken = std::mem::take(&mut self.spare);
        std::mem::swap(&mut lock(&self.e.queue).entries, &mut taken);
        if self.rounds.is_multiple_of(ROUTE_ROUNDS) {
            self.routes.reset();
        }
        self.rounds = self.rounds.wrapping_add(1);
        let n = self.pos.len();
        let each = (self.held.len() + taken.len()) / n;
        let mut split = Split {
            shards: (0..n)
                .map(|_| Vec::with_capacity(each + each / 4 + 16))
                .collect(),
            filtered: 0,
        };
        let mut later = Vec::with_capacity(self.held.len() + self.held.len() / 4 + 16);
        let mut joined = String::new();
        for x in self.held.drain(..).chain(taken.drain(..)) {
            if x.t > cut {
                later.push(x);
                continue;
            }
            let route = || {
                self.e
                    .route(x.series.labels(), n, &mut joined)
                    .map_or(FILTERED, |k| k as u8)
            };
            let route = self.routes.get(x.series.id(), route);
            match route {
                FILTERED => split.filtered += 1,
                k => split.shards[k as usize].push(x),
            }
        }
        self.spare = taken;
        self.held = later;
        self.set_pending(split.shards.iter().map(Vec::len).sum::<usize>() + self.held.len());
        split
    }

    /// Sets the pending gauge: the queue and `taken` samples the sender holds.
    fn set_pending(&self, taken: usize) {
        self.rw
            .telemetry
            .remote_write_pending_samples
            .with_label_values(&[&self.e.shown])
            .set((lock(&self.e.queue).entries.len() + taken) as i64);
    }

    /// Sends `split` (every sample up to `end` not sent yet) through the shards, each in time
    /// order; returns true when shutdown interrupted it.
    async fn round<S: Outgoing>(
        &mut self,
        split: Split<S>,
        end: Timestamp,
        shutdown: &CancellationToken,
    ) -> bool {
        if split.filtered > 0 {
            self.count("filtered", split.filtered);
        }
        let positions = Arc::new(Mutex::new(self.pos.clone()));
        let mut sends = tokio::task::JoinSet::new();
        for (k, mut batch) in split.shards.into_iter().enumerate() {
            // A series has one sample per timestamp, so its samples keep their order in any
            // sort by time.
            batch.sort_unstable_by_key(|x| x.t());
            let (rw, e, positions, shutdown) = (
                self.rw.clone(),
                self.e.clone(),
                positions.clone(),
                shutdown.clone(),
            );
            sends.spawn(
                async move { send_shard(&rw, &e, k, batch, end, &positions, &shutdown).await },
            );
        }
        let mut stopped = false;
        while let Some(r) = sends.join_next().await {
            stopped |= r.unwrap_or(true);
        }
        self.pos = lock(&positions).clone();
        stopped
    }

    fn count(&self, result: &str, n: u64) {
        self.rw
            .telemetry
            .remote_write_samples_total
            .with_label_values(&[&self.e.shown, result])
            .inc_by(n);
    }
}

/// The slice of time the next read of the backlog takes, after one of `slice` read `got`
/// samples: half after more than [`CATCH_UP_SAMPLES`], double after less than half of it.
fn next_slice(slice: Timestamp, got: usize) -> Timestamp {
    if got > CATCH_UP_SAMPLES {
        (slice / 2).max(MIN_SLICE)
    } else if got < CATCH_UP_SAMPLES / 2 {
        slice.saturating_mul(2).min(MAX_SLICE)
    } else {
        slice
    }
}

/// Sends one shard's samples (sorted by time) in requests, moving and storing the shard's
/// position after each; returns true when shutdown interrupted it.
async fn send_shard<S: Outgoing>(
    rw: &RemoteWrite,
    e: &Endpoint,
    k: usize,
    batch: Vec<S>,
    end: Timestamp,
    positions: &Mutex<Vec<Timestamp>>,
    shutdown: &CancellationToken,
) -> bool {
    let max = e.config.max_samples_per_send.max(1);
    let mut buffers = Buffers::default();
    let mut start = 0;
    while start < batch.len() {
        let stop = (start + max).min(batch.len());
        let body = bytes::Bytes::copy_from_slice(buffers.encode(&batch[start..stop], &e.external));
        match send(rw, e, body, (stop - start) as u64, positions, shutdown).await {
            Outcome::Stopped => return true,
            Outcome::Done => {}
        }
        // Everything before the next request's first timestamp is delivered.
        let reached = match batch.get(stop) {
            Some(next) => next.t() - 1,
            None => end,
        };
        let snapshot = {
            let mut p = lock(positions);
            p[k] = p[k].max(reached);
            p.clone()
        };
        rw.save_positions(e, &snapshot);
        start = stop;
    }
    let snapshot = {
        let mut p = lock(positions);
        if p[k] >= end {
            return false;
        }
        p[k] = end;
        p.clone()
    };
    rw.save_positions(e, &snapshot);
    false
}

/// The snappy-compressed `WriteRequest` of `entries` (sorted by time; a series' samples keep
/// their order), one `TimeSeries` per series in the order of their first sample, its labels
/// with the external labels it lacks, sorted by name.
///
/// Written straight into one buffer in protobuf's wire format (the messages of [`WriteRequest`]):
/// building prost messages would take two strings per label of every series of every
/// request, which was most of what remote writing cost.
pub fn encode<S: Outgoing>(entries: &[S], external: &[(String, String)]) -> Vec<u8> {
    Buffers::default().encode(entries, external).to_vec()
}

/// What a shard writes its requests into, kept from one request to the next: a request's
/// buffers are a few hundred KiB each, which the allocator would otherwise hand back to the
/// system and fault in again for the next one.
struct Buffers {
    raw: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Buffers {
    fn default() -> Buffers {
        Buffers {
            raw: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

impl Buffers {
    /// [`encode`], into these buffers: the request's body is the returned slice.
    fn encode<S: Outgoing>(&mut self, entries: &[S], external: &[(String, String)]) -> &[u8] {
        let raw = &mut self.raw;
        raw.clear();
        write_request(entries, external, raw);
        self.compressed
            .resize(snap::raw::max_compress_len(raw.len()), 0);
        // Compressing an in-memory buffer fails only past snappy's 4 GiB input limit.
        let n = self.snappy.compress(raw, &mut self.compressed).unwrap_or(0);
        &self.compressed[..n]
    }
}

/// Writes the uncompressed `WriteRequest` of `entries` into `raw` (see [`encode`]).
fn write_request<S: Outgoing>(entries: &[S], external: &[(String, String)], raw: &mut Vec<u8>) {
    // Each entry's series (numbered in order of first appearance), and each series' first entry.
    let mut index: FastMap<usize, u32> =
        FastMap::with_capacity_and_hasher(entries.len(), Default::default());
    let mut firsts: Vec<usize> = Vec::new();
    let mut of: Vec<u32> = Vec::with_capacity(entries.len());
    for (i, x) in entries.iter().enumerate() {
        let g = *index.entry(series_key(x.labels())).or_insert_with(|| {
            firsts.push(i);
            (firsts.len() - 1) as u32
        });
        of.push(g);
    }
    // The entries grouped by series, each group in the entries' order (a counting sort).
    let mut start = vec![0usize; firsts.len() + 1];
    for &g in &of {
        start[g as usize + 1] += 1;
    }
    for k in 1..start.len() {
        start[k] += start[k - 1];
    }
    let mut fill = start.clone();
    let mut order = vec![0usize; entries.len()];
    for (i, &g) in of.iter().enumerate() {
        order[fill[g as usize]] = i;
        fill[g as usize] += 1;
    }
    raw.reserve(entries.len() * 20 + firsts.len() * 120);
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for (g, &first) in firsts.iter().enumerate() {
        let series = entries[first].labels();
        labels.clear();
        labels.extend(series.iter().map(|l| (&**l.name(), &**l.value())));
        for (k, v) in external {
            if series.get(k).is_none() {
                labels.push((k, v));
            }
        }
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let samples = &order[start[g]..start[g + 1]];
        let len = labels
            .iter()
            .map(|(n, v)| nested_len(label_len(n, v)))
            .sum::<usize>()
            + samples
                .iter()
                .map(|&i| nested_len(sample_len(entries[i].t())))
                .sum::<usize>();
        // WriteRequest.timeseries = 1
        raw.push(0x0a);
        encode_varint(len as u64, raw);
        for (n, v) in &labels {
            // TimeSeries.labels = 1: Label { name = 1, value = 2 }
            raw.push(0x0a);
            encode_varint(label_len(n, v) as u64, raw);
            raw.push(0x0a);
            encode_varint(n.len() as u64, raw);
            raw.extend_from_slice(n.as_bytes());
            raw.push(0x12);
            encode_varint(v.len() as u64, raw);
            raw.extend_from_slice(v.as_bytes());
        }
        for &i in samples {
            let x = &entries[i];
            // TimeSeries.samples = 2: Sample { value = 1 (double), timestamp = 2 (int64) }
            raw.push(0x12);
            encode_varint(sample_len(x.t()) as u64, raw);
            raw.push(0x09);
            raw.extend_from_slice(&x.v().to_bits().to_le_bytes());
            raw.push(0x10);
            encode_varint(x.t() as u64, raw);
        }
    }
}

/// The length of a `Label` message.
fn label_len(name: &str, value: &str) -> usize {
    2 + encoded_len_varint(name.len() as u64)
        + name.len()
        + encoded_len_varint(value.len() as u64)
        + value.len()
}

/// The length of a `Sample` message at time `t`.
fn sample_len(t: Timestamp) -> usize {
    1 + 8 + 1 + encoded_len_varint(t as u64)
}

/// The length of a message of `len` bytes as a field of another: tag, length and message.
fn nested_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Names a label set by its address while the caller holds it: the entries of one head series
/// share its label set, so this tells series apart without hashing their text. Two label sets
/// with the same text at different addresses (a series removed and created again) are two
/// keys, which costs only a second `TimeSeries` in the request.
fn series_key(labels: &Labels) -> usize {
    labels.as_slice().as_ptr() as usize
}

/// Posts one request until it is accepted, refused for good, or shutdown comes.
async fn send(
    rw: &RemoteWrite,
    e: &Endpoint,
    body: bytes::Bytes,
    samples: u64,
    positions: &Mutex<Vec<Timestamp>>,
    shutdown: &CancellationToken,
) -> Outcome {
    let mut backoff = e.config.min_backoff.get();
    let max_backoff = e.config.max_backoff.get();
    let count = |result: &str| {
        rw.telemetry
            .remote_write_samples_total
            .with_label_values(&[&e.shown, result])
            .inc_by(samples);
    };
    loop {
        let mut req = rw
            .http
            .post(&e.config.url)
            .timeout(e.config.remote_timeout.get())
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", VERSION);
        for (k, v) in &e.config.headers {
            req = req.header(k.as_str(), v.expose());
        }
        let result = req.body(body.clone()).send().await;
        let wait = match result {
            Ok(resp) if resp.status().is_success() => {
                count("sent");
                return Outcome::Done;
            }
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| crate::notify::parse_retry_after(v, chrono::Utc::now()));
                if status.is_client_error() && status.as_u16() != 429 {
                    let text = resp.text().await.unwrap_or_default();
                    warn!(url = %e.shown, status = status.as_u16(), samples, answer = %crate::notify::truncate_chars(text.trim(), 200), "remote write refused a request; its samples are dropped");
                    count("dropped");
                    return Outcome::Done;
                }
                debug!(url = %e.shown, status = status.as_u16(), "remote write failed; retrying");
                count("failed");
                retry_after.unwrap_or(backoff)
            }
            Err(err) => {
                // Without the URL: it may carry credentials.
                debug!(url = %e.shown, error = %err.without_url(), "remote write failed; retrying");
                count("failed");
                backoff
            }
        };
        // The lag grows while the receiver is away, not only once a round ends.
        rw.set_lag(e, &lock(positions), rw.clock.now_ms());
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

#[cfg(test)]
mod tests;
