//! Health probes (SPEC §2 `[[probe]]`): HTTP(S) and TCP checks on their own intervals, the
//! built-in `ProbeFailed` alert, and the `probe_*` series.
//!
//! # Shape
//!
//! - [`probe_once`] runs one probe and always returns a [`ProbeOutcome`]: a failure (refused,
//!   timed out, wrong status, bad body, expiring certificate) is a value with a reason in words,
//!   never an error and never a panic.
//! - [`ProbeRunner`] schedules every probe on its own interval, bounded by a semaphore, and hands
//!   each outcome to the [`ProbeStates`] (alert state, latest outcome for `/metrics`) and to a
//!   [`ProbeSink`] (the daemon's series head and store).
//! - [`http`] and [`tcp`] do the network work; [`checks`] words the reasons; `cert` reads
//!   certificate expiry from DER; [`expose`] writes the series.
//!
//! # Wiring (for the daemon)
//!
//! One [`ProbeStates`] lives for the whole process: register it as an
//! [`Exposer`](crate::telemetry::Exposer), restore it from the store at startup
//! ([`ProbeStates::restore`]) and snapshot it when it changes. Each config generation gets a new
//! [`ProbeRunner`] sharing that state; on reload call [`ProbeStates::retain`] with the new probe
//! names and notify the resolved alerts it returns. The daemon's [`ProbeSink`] appends
//! [`outcome_samples`] to the head at [`ProbeOutcome::timestamp_ms`] (keeping each probe's
//! series, found once by [`OutcomeSeries::labels`]) and stores the outcome.
//!
//! # Cost
//!
//! One task per probe *execution* (spawned by the single scheduler loop, none per connection:
//! the probe speaks HTTP/1.1 on its connection itself, see `wire`), one `Arc<rustls::ClientConfig>` shared by
//! every probe, and no allocation in the scheduler besides its heap. A probe's body is buffered
//! only when a body check needs it, and never beyond [`http::BODY_LIMIT`].

mod cert;
pub mod checks;
pub mod expose;
pub mod http;
mod state;
pub mod tcp;
mod wire;

pub use cert::not_after as cert_not_after;
pub use expose::{OutcomeSample, OutcomeSeries, outcome_samples, outcome_series};
pub use state::{
    AlertChange, PROBE_ALERT_NAME, ProbeStateRecord, ProbeStates, ProbeStatesSnapshot,
};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::config::{GlobalConfig, ProbeConfig, format_duration};
use crate::liveness::Heartbeat;
use crate::telemetry::Telemetry;

/// Probes running at once, unless [`ProbeRunner::with_max_concurrency`] says otherwise.
///
/// 64 keeps file descriptors and memory small (one socket and at most one 1 MiB body each)
/// while leaving plenty of headroom: 1,000 probes every 10 s with 50 ms answers need about 5
/// at a time. Slow or hanging targets hold a permit for at most their timeout; when permits run
/// out, probes wait and, if they wait past their next tick, skip it (counted).
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// The longest the scheduler sleeps without beating its heartbeat.
const BEAT_EVERY: Duration = Duration::from_secs(1);

/// Time spent in each part of an HTTP probe, summed over redirects. `None` for a phase the probe
/// never reached (e.g. `tls` for plain HTTP, everything after `connect` on a refused port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// DNS resolution and TCP connect.
    pub connect: Option<Duration>,
    /// TLS handshake, https only.
    pub tls: Option<Duration>,
    /// From sending the request to the response head.
    pub processing: Option<Duration>,
    /// Reading the response body.
    pub transfer: Option<Duration>,
}

impl Phases {
    /// Adds `d` to a phase (redirects pass through each phase once per hop).
    pub(crate) fn add(slot: &mut Option<Duration>, d: Duration) {
        *slot = Some(slot.unwrap_or_default() + d);
    }
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeOutcome {
    /// Whether every check passed.
    pub success: bool,
    /// Wall time of the whole probe, redirects included.
    pub duration: Duration,
    /// Status code of the last HTTP response, if one arrived.
    pub status: Option<u16>,
    /// The earliest `notAfter` of the peer's certificate chain (Unix seconds), https only.
    pub cert_not_after: Option<i64>,
    /// Time per phase.
    pub phases: Phases,
    /// Why the probe failed, in words (SPEC §2); empty on success. Never contains a header value.
    pub reason: String,
    /// When the probe started.
    pub at: SystemTime,
}

impl ProbeOutcome {
    /// [`at`](Self::at) in milliseconds since the Unix epoch, the series head's timestamp.
    pub fn timestamp_ms(&self) -> i64 {
        self.at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// What a probe learned before it finished or timed out; kept outside the probe's future so a
/// timeout still reports the phases it got through.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Phases completed so far.
    pub phases: Phases,
    /// Status of the latest response head received.
    pub status: Option<u16>,
    /// Earliest certificate expiry seen on any hop.
    pub cert_not_after: Option<i64>,
}

/// Why the probe engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The TLS client config cannot be built (for instance, no CA certificate on the system).
    #[error("cannot set up TLS for probes: {source}")]
    Tls {
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// The TLS client settings every https probe shares, built once.
///
/// Certificates are verified by `rustls-platform-verifier` against the system's roots (plus any
/// extra roots given). Session resumption is off: a resumed session skips certificate
/// verification, and a probe must see a replaced, expiring or broken certificate at once.
#[derive(Clone)]
pub struct ProbeTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ProbeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeTls")
    }
}

impl ProbeTls {
    /// Verification against the system's CA certificates: what production uses.
    pub fn system() -> Result<Self, ProbeError> {
        Self::with_roots(Vec::new())
    }

    /// The system's CA certificates plus `roots` (a private CA, or a test CA).
    pub fn with_roots(roots: Vec<CertificateDer<'static>>) -> Result<Self, ProbeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
                .map_err(|source| ProbeError::Tls { source })?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| ProbeError::Tls { source })?
            .dangerous() // not dangerous: the custom verifier is the platform verifier
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(ProbeTls {
            config: Arc::new(config),
        })
    }

    pub(crate) fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }
}

/// What kind of probe a URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `http://`
    Http,
    /// `https://`
    Https,
    /// `tcp://host:port`
    Tcp,
}

impl ProbeKind {
    /// The kind of `url`, by its scheme (case-insensitive); `None` for any other scheme.
    pub fn of(url: &str) -> Option<Self> {
        let scheme = url.split_once("://")?.0;
        if scheme.eq_ignore_ascii_case("http") {
            Some(ProbeKind::Http)
        } else if scheme.eq_ignore_ascii_case("https") {
            Some(ProbeKind::Https)
        } else if scheme.eq_ignore_ascii_case("tcp") {
            Some(ProbeKind::Tcp)
        } else {
            None
        }
    }
}

/// Runs one probe of `cfg`, bounded by `timeout` as a whole (DNS, connect, TLS, request,
/// redirects and body). Never fails: every problem is an unsuccessful outcome with a reason.
pub async fn probe_once(cfg: &ProbeConfig, timeout: Duration, tls: &ProbeTls) -> ProbeOutcome {
    let at = SystemTime::now();
    let start = Instant::now();
    let mut progress = Progress::default();
    let work = async {
        match ProbeKind::of(&cfg.url) {
            Some(ProbeKind::Tcp) => tcp::probe(&cfg.url, &mut progress).await,
            Some(_) => http::probe(cfg, tls, start, &mut progress).await,
            None => Err("unsupported URL scheme (use http, https or tcp)".to_string()),
        }
    };
    let result = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}", format_duration(timeout))),
    };
    ProbeOutcome {
        success: result.is_ok(),
        duration: start.elapsed(),
        status: progress.status,
        cert_not_after: progress.cert_not_after,
        phases: progress.phases,
        reason: result.err().unwrap_or_default(),
        at,
    }
}

/// Where outcomes go besides the probe state: the daemon appends them to the series head and
/// the store. Called from the probe's task, once per outcome; keep it quick.
pub trait ProbeSink: Send + Sync + 'static {
    /// One probe finished.
    fn record(&self, probe: &ProbeConfig, outcome: &ProbeOutcome);

    /// The probe's ProbeFailed alert fired or resolved. The state already holds the change
    /// ([`ProbeStates::alerts`]); this hook lets the daemon persist it and wake the dispatcher.
    fn alert_changed(&self, probe: &ProbeConfig, change: &AlertChange) {
        let _ = (probe, change);
    }
}

/// Start slots per interval: probe offsets (and scrape offsets) are multiples of
/// interval / `SPREAD_SLOTS`.
///
/// Probes sharing a slot start together, so the runner wakes at most this many times an
/// interval however many probes there are, and their connections' events reach the runtime
/// in batches: 1,000 probes every 10 s start in groups of about 20 every 200 ms. Each wake-up
/// of the daemon's thread (and of the target's) costs context switches, the largest single
/// cost of a probe on loopback after the kernel's connect. The price is in the probes' own
/// timing: a slot's probes share one thread, so a probe's duration includes some of the
/// others' work. 50 slots is the compromise between the two (bench/README.md).
const SPREAD_SLOTS: u128 = 50;

/// The start offset of a probe within its interval, from a hash of its name: probes spread
/// evenly over the interval (in `SPREAD_SLOTS` = 50 steps) instead of all firing at startup, and
/// a probe keeps its phase across restarts and reloads (as Prometheus' scrape offsets do).
pub fn spread_offset(name: &str, interval: Duration) -> Duration {
    let nanos = interval.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    // FNV-1a: stable across processes and versions, unlike std's randomly seeded hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold in a final avalanche so names differing in one trailing byte land far apart.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let slot = (nanos / SPREAD_SLOTS).max(1);
    let off = (u128::from(h) % nanos) / slot * slot;
    // off < interval, which is a Duration, so it fits in u64 nanoseconds unless the interval
    // exceeds ~584 years; clamp rather than wrap in that absurd case.
    Duration::from_nanos(u64::try_from(off).unwrap_or(u64::MAX))
}

/// One scheduled probe.
struct Scheduled {
    cfg: Arc<ProbeConfig>,
    timeout: Duration,
    /// True while an execution is in flight: the next tick is skipped rather than stacked.
    running: AtomicBool,
    /// The previous outcome's success, to log only transitions.
    was_ok: AtomicBool,
    /// The interval in milliseconds, and the schedule point run timestamps are aligned to
    /// ([`crate::series::align_probe_timestamp`]): one bit per timestamp in the probe's chunks.
    interval_ms: i64,
    aligned: std::sync::Mutex<Option<i64>>,
}

/// When each probe is due next: a min-heap of (due, index), each entry rescheduled as it pops.
/// Pure bookkeeping (no clock, no tasks), so the timing rules are unit-tested directly.
struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Interval of each probe, by index.
    intervals: Vec<Duration>,
}

impl Schedule {
    fn with_capacity(n: usize) -> Self {
        Schedule {
            heap: BinaryHeap::with_capacity(n),
            intervals: Vec::with_capacity(n),
        }
    }

    /// Adds probe `i` (indexes must be added in order 0, 1, ...), first due at `first`.
    fn add(&mut self, i: usize, first: Instant, interval: Duration) {
        debug_assert_eq!(i, self.intervals.len());
        self.intervals.push(interval);
        self.heap.push(Reverse((first, i)));
    }

    /// The earliest due time.
    fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Pops one probe due at `now` and schedules its next tick on the probe's grid: the first
    /// one after `now`. Missed ticks are skipped, never run in a burst to catch up, and a late
    /// run does not move the grid (as Prometheus' scrape loop keeps its ticker): the runs
    /// after it are stamped on the grid again (`align_timestamp`), where a schedule that
    /// restarted from the late run would leave every later timestamp off it, each costing its
    /// chunk 9 bits or more instead of 1.
    fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let &Reverse((due, i)) = self.heap.peek()?;
        if due > now {
            return None;
        }
        self.heap.pop();
        let interval = self.intervals.get(i).copied().unwrap_or(BEAT_EVERY);
        let missed = (now - due).as_nanos() / interval.as_nanos().max(1);
        let next = due + interval * (u32::try_from(missed).unwrap_or(u32::MAX - 1) + 1);
        self.heap.push(Reverse((next, i)));
        Some(i)
    }
}

/// What every probe task shares.
struct Shared {
    semaphore: Semaphore,
    tls: ProbeTls,
    sink: Arc<dyn ProbeSink>,
    state: Arc<ProbeStates>,
    telemetry: Arc<Telemetry>,
}

/// Clears `running` when an execution ends, however it ends (finished, aborted at shutdown,
/// panicked).
struct RunningGuard(Arc<Scheduled>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// Runs every probe on its interval until shutdown.
pub struct ProbeRunner {
    /// The probes of the config generation this runner belongs to.
    probes: Vec<Arc<ProbeConfig>>,
    /// Default interval and timeout.
    global: GlobalConfig,
    /// The shared TLS client config.
    tls: ProbeTls,
    /// Where outcomes go (series head, store).
    sink: Arc<dyn ProbeSink>,
    /// Alert state and latest outcomes; outlives the runner across reloads.
    state: Arc<ProbeStates>,
    /// Probes running at once.
    max_concurrency: usize,
    /// Beaten by the scheduler loop, so a wedged loop stops the systemd watchdog.
    heartbeat: Heartbeat,
    /// The loop counter.
    telemetry: Arc<Telemetry>,
}

impl ProbeRunner {
    /// A runner for `probes`, with [`DEFAULT_MAX_CONCURRENCY`].
    pub fn new(
        probes: impl IntoIterator<Item = impl Into<Arc<ProbeConfig>>>,
        global: GlobalConfig,
        tls: ProbeTls,
        sink: Arc<dyn ProbeSink>,
        state: Arc<ProbeStates>,
        heartbeat: Heartbeat,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        ProbeRunner {
            probes: probes.into_iter().map(Into::into).collect(),
            global,
            tls,
            sink,
            state,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            heartbeat,
            telemetry,
        }
    }

    /// Sets how many probes may run at once (at least 1).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Schedules the probes until `shutdown`. Each probe first runs at its [`spread_offset`],
    /// then every interval. A probe still running at its next tick skips that tick (counted in
    /// `postflight_probe_skipped_ticks_total`); a tick the scheduler reaches late runs once and
    /// the next one comes a full interval later. On shutdown, probes in flight are abandoned.
    pub async fn run(self, shutdown: CancellationToken) {
        let ProbeRunner {
            probes,
            global,
            tls,
            sink,
            state,
            max_concurrency,
            heartbeat,
            telemetry,
        } = self;
        let shared = Arc::new(Shared {
            semaphore: Semaphore::new(max_concurrency),
            tls,
            sink,
            state,
            telemetry,
        });
        let start = Instant::now();
        let mut schedule = Schedule::with_capacity(probes.len());
        let scheduled: Vec<Arc<Scheduled>> = probes
            .into_iter()
            .enumerate()
            .map(|(i, cfg)| {
                // A zero interval would spin; treat it as the smallest sensible one.
                let interval = cfg.interval(&global).max(Duration::from_millis(100));
                let timeout = cfg.timeout(&global);
                if timeout > interval {
                    warn!(probe = %cfg.name, timeout = %format_duration(timeout), interval = %format_duration(interval),
                        "probe timeout is longer than its interval: slow answers will skip ticks");
                }
                shared.state.register(&cfg);
                let first = crate::rt::next_on_grid(spread_offset(&cfg.name, interval), interval, start);
                schedule.add(i, first, interval);
                Arc::new(Scheduled {
                    cfg,
                    timeout,
                    running: AtomicBool::new(false),
                    was_ok: AtomicBool::new(true),
                    interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
                    aligned: std::sync::Mutex::new(None),
                })
            })
            .collect();
        info!(
            probes = scheduled.len(),
            max_concurrency, "probe runner started"
        );
        let iterations = shared
            .telemetry
            .loop_iterations
            .with_label_values(&["probe"]);
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            heartbeat.beat();
            iterations.inc();
            // Finished runs are reaped here, at the next start slot, not as each one ends:
            // waking this loop for every run (and setting its timer again) was a task poll and
            // a timer per probe for nothing; finished tasks wait at most one slot.
            while let Some(res) = tasks.try_join_next() {
                if let Err(e) = res
                    && e.is_panic()
                {
                    // A bug, not a probe failure: say so loudly, keep every other probe going.
                    tracing::error!(error = %e, "probe task panicked");
                }
            }
            let now = Instant::now();
            let wake = match schedule.next_due() {
                Some(due) => due.min(now + BEAT_EVERY),
                None => now + BEAT_EVERY,
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            while let Some(i) = schedule.pop_due(now) {
                let p = &scheduled[i]; // the schedule holds indexes into `scheduled`
                if p.running.swap(true, Ordering::AcqRel) {
                    debug!(probe = %p.cfg.name, "previous run still going; tick skipped");
                    shared.state.count_skip(&p.cfg.name);
                    continue;
                }
                let guard = RunningGuard(p.clone());
                let shared = shared.clone();
                // debug level: at the usual `info` filter the span is disabled at its call
                // site and costs nothing per run; events below carry the probe name themselves.
                let span = tracing::debug_span!("probe", probe = %p.cfg.name);
                tasks.spawn(execute(guard, shared).instrument(span));
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        info!("probe runner stopped");
    }
}

/// One execution: wait for a permit, probe, hand the outcome on.
async fn execute(guard: RunningGuard, shared: Arc<Shared>) {
    let p = &guard.0;
    // The semaphore is never closed, so this only fails if that changes; then skip the run.
    let Ok(_permit) = shared.semaphore.acquire().await else {
        return;
    };
    let mut outcome = probe_once(&p.cfg, p.timeout, &shared.tls).await;
    {
        let mut aligned = p
            .aligned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = crate::series::align_probe_timestamp(
            &mut aligned,
            outcome.timestamp_ms(),
            p.interval_ms,
        );
        outcome.at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(t).unwrap_or(0));
    }
    let name = p.cfg.name.as_str();
    let was_ok = p.was_ok.swap(outcome.success, Ordering::Relaxed);
    if was_ok && !outcome.success {
        warn!(probe = name, url = %p.cfg.url, reason = %outcome.reason, "probe failing");
    } else if !was_ok && outcome.success {
        info!(probe = name, url = %p.cfg.url, "probe recovered");
    }
    if let Some(change) = shared.state.observe(&p.cfg, &outcome) {
        match &change {
            AlertChange::Fired(_) => {
                warn!(probe = name, reason = %outcome.reason, "ProbeFailed firing")
            }
            AlertChange::Resolved(_) => info!(probe = name, "ProbeFailed resolved"),
        }
        shared.sink.alert_changed(&p.cfg, &change);
    }
    shared.sink.record(&p.cfg, &outcome);
}

#[cfg(test)]
mod tests;
