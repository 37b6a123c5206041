//! Logs as a source (SPEC §9): files under a glob and journald units, counted into series that
//! rules and gates read, with the matching lines kept (redacted) for the API and the pages.
//!
//! Each `[[log]]` is a [`Source`]: its input (a [`file::FileSet`] or a [`journal::Journal`]),
//! its [`Matcher`] (every `[[log.match]]` regex in one [`regex::bytes::RegexSet`] pass) and its
//! counters. The [`LogRunner`] polls every source each [`POLL_EVERY`] and, each
//! [`FLUSH_EVERY`], writes the source's positions, its counters and its new kept lines to the
//! store in one atomic batch ([`crate::store::Kind::Logs`]), and only then appends the counters
//! to the head through [`crate::ingest`]. So the head never shows a count the store does not
//! hold: a clean stop (which flushes) loses and recounts nothing, and after a SIGKILL the
//! source resumes at the last flushed positions with the counters of that same moment — the
//! lines read since are read and counted again, once.
//!
//! Redaction happens when a line is kept, before it reaches the store, the API or a page.

pub mod file;
pub mod journal;
pub mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, LogConfig, LogFormat, StartAt};
use crate::ingest::Ingest;
use crate::series::Labels;
use crate::store::{Kind, StateStore};
use crate::targets::{Run, TargetHealth, TargetsView};
use crate::telemetry::Telemetry;

/// How often each source looks for new lines.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often positions, counters and kept lines are written (and the counters appended to
/// the head): what a SIGKILL can make a source read again.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Matching lines kept per match.
pub const KEEP_PER_MATCH: usize = 1_000;
/// Matching lines kept per match from one flush (a second): under a flood the kept lines span
/// at least 10 seconds instead of one, and the store writes a tenth of them. Counts stay exact.
pub const KEEP_PER_FLUSH: usize = 100;
/// Bytes of a kept line stored (a line is an excerpt for a person, not an archive).
pub const KEPT_LINE_MAX: usize = 4 * 1024;
/// Lines in a `log_excerpt` annotation.
pub const EXCERPT_LINES: usize = 5;
/// The annotation that carries the excerpt on alerts and gate checks.
pub const EXCERPT_ANNOTATION: &str = "log_excerpt";
/// What replaces a part of a kept line that a `redact` regex matches.
pub const REDACTED: &str = "<redacted>";

/// The key of a log source in the targets view.
pub fn target_key(name: &str) -> String {
    format!("log/{name}")
}

/// Separator of the parts of a store key (never in a TOML name a person writes).
const SEP: char = '\u{1f}';

fn position_key(log: &str) -> String {
    format!("pos{SEP}{log}")
}

fn line_prefix(log: &str, m: Option<&str>) -> String {
    match m {
        Some(m) => format!("line{SEP}{log}{SEP}{m}{SEP}"),
        None => format!("line{SEP}{log}{SEP}"),
    }
}

/// The time (ms) in a kept line's key.
fn key_time(key: &str) -> Option<i64> {
    let tail = key.rsplit(SEP).next()?;
    i64::from_str_radix(tail.get(..16)?, 16).ok()
}

/// What the store keeps of a source, in one record so that positions and counters move
/// together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Where the source is in each file.
    #[serde(default)]
    pub files: Vec<file::FilePosition>,
    /// The journal cursor of the last entry counted (journald sources).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Before any entry was counted: the time (ms) the journald source first started at with
    /// `start_at = end`, so a restart does not read the journal from its beginning.
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// `log_lines_total`.
    pub lines: u64,
    /// `log_bytes_total`.
    pub bytes: u64,
    /// `log_matches_total` by match name.
    #[serde(default)]
    pub matches: BTreeMap<String, u64>,
}

/// A kept matching line, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptLine {
    /// When it was read (or the time Docker or journald gave it), ms since the epoch.
    pub t: i64,
    /// The file it came from, or the journald unit.
    pub file: String,
    /// The line, redacted and cut at [`KEPT_LINE_MAX`].
    pub line: String,
}

/// A kept line as `GET /api/v1/logs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// RFC 3339.
    pub time: String,
    /// The file, or the journald unit.
    pub file: String,
    /// The match it was kept for.
    #[serde(rename = "match")]
    pub match_: String,
    /// The redacted line.
    pub line: String,
    /// Milliseconds, for sorting and the excerpt.
    #[serde(skip)]
    pub t: i64,
}

/// Every `[[log.match]]` of a source in one pass, and its `redact` regexes.
pub struct Matcher {
    set: regex::bytes::RegexSet,
    names: Vec<String>,
    redact: Vec<regex::Regex>,
}

impl Matcher {
    /// The matcher of a `[[log]]`.
    pub fn new(cfg: &LogConfig) -> Matcher {
        let set = regex::bytes::RegexSet::new(cfg.matches.iter().map(|m| m.regex.as_str()))
            // Each pattern compiled as a `regex::Regex` when the config was loaded; the byte
            // flavour accepts every pattern the text flavour does.
            .unwrap_or_else(|_| regex::bytes::RegexSet::empty());
        Matcher {
            set,
            names: cfg.matches.iter().map(|m| m.name.clone()).collect(),
            redact: cfg.redact.clone(),
        }
    }

    /// The line as it may be kept: invalid UTF-8 replaced, cut at [`KEPT_LINE_MAX`], every
    /// `redact` match replaced by [`REDACTED`].
    pub fn redact(&self, line: &[u8]) -> String {
        let mut s = String::from_utf8_lossy(&line[..line.len().min(KEPT_LINE_MAX)]).into_owned();
        for r in &self.redact {
            if r.is_match(&s) {
                s = r.replace_all(&s, REDACTED).into_owned();
            }
        }
        s
    }
}

/// The counting side of a source: what every line goes through.
struct Feed {
    log: String,
    format: LogFormat,
    matcher: Matcher,
    record: SourceRecord,
    /// Counts by match index (mirrored into `record.matches` at flush).
    counts: Vec<u64>,
    /// Kept lines not flushed yet, by match index (the newest [`KEEP_PER_FLUSH`] each).
    pending: Vec<VecDeque<(String, KeptLine)>>,
}

impl Feed {
    fn line(&mut self, raw: &[u8], file: &str, now_ms: i64) {
        self.record.lines += 1;
        let (text, t) = match self.format {
            LogFormat::Text => (std::borrow::Cow::Borrowed(raw), now_ms),
            LogFormat::DockerJson => docker_line(raw, now_ms),
        };
        if self.matcher.names.is_empty() || !self.matcher.set.is_match(&text) {
            return;
        }
        for i in self.matcher.set.matches(&text).iter() {
            self.counts[i] += 1;
            let kept = KeptLine {
                t,
                file: file.to_string(),
                line: self.matcher.redact(&text),
            };
            let key = format!(
                "{}{t:016x}{:016x}",
                line_prefix(&self.log, Some(&self.matcher.names[i])),
                self.counts[i]
            );
            let q = &mut self.pending[i];
            if q.len() == KEEP_PER_FLUSH {
                q.pop_front();
            }
            q.push_back((key, kept));
        }
    }
}

/// The text and time of a line of Docker's json-file driver (`{"log":"...\n","stream":...,
/// "time":"..."}`); a line that is not such an object counts as text.
fn docker_line(raw: &[u8], now_ms: i64) -> (std::borrow::Cow<'_, [u8]>, i64) {
    #[derive(Deserialize)]
    struct Docker {
        log: String,
        #[serde(default)]
        time: Option<String>,
    }
    match serde_json::from_slice::<Docker>(raw) {
        Ok(d) => {
            let t = d
                .time
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map_or(now_ms, |t| t.timestamp_millis());
            let mut log = d.log.into_bytes();
            if log.last() == Some(&b'\n') {
                log.pop();
            }
            (std::borrow::Cow::Owned(log), t)
        }
        Err(_) => (std::borrow::Cow::Borrowed(raw), now_ms),
    }
}

/// What a file source's polls found, for the self-metrics ([`stats::SourceStats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Files followed after the last poll.
    pub files: u64,
    /// Bytes in them after what was read, at the end of the last poll.
    pub behind: u64,
    /// Files read again from their beginning.
    pub truncations: u64,
    /// Lines cut at [`file::MAX_LINE`].
    pub lines_cut: u64,
}

/// Where a source reads from.
enum Input {
    Files(file::FileSet),
    Journal(journal::Journal),
}

/// One `[[log]]` source: its input, its counters, and its kept lines' keys.
pub struct Source {
    cfg: LogConfig,
    input: Input,
    feed: Feed,
    /// Keys of the kept lines in the store, oldest first, by match index.
    kept: Vec<VecDeque<String>>,
    /// Why the source cannot be read, from its last poll.
    problems: Vec<String>,
    /// What the polls since the last [`Source::take_figures`] found, for the self-metrics.
    figures: Figures,
    state: StateStore,
    retention_ms: i64,
}

impl Source {
    /// Opens a source, restoring its positions, counters and kept keys from the store.
    pub fn open(cfg: &LogConfig, state: StateStore, retention: Duration, now_ms: i64) -> Source {
        let stored = match state.get::<SourceRecord>(Kind::Logs, &position_key(&cfg.name)) {
            Ok(r) => r,
            Err(e) => {
                warn!(log = %cfg.name, error = %e, "stored log position unreadable; starting afresh");
                None
            }
        };
        let fresh = stored.is_none();
        let record = stored.unwrap_or_default();
        let matcher = Matcher::new(cfg);
        let counts = matcher
            .names
            .iter()
            .map(|n| record.matches.get(n).copied().unwrap_or(0))
            .collect();
        let mut kept = vec![VecDeque::new(); matcher.names.len()];
        for (i, name) in matcher.names.iter().enumerate() {
            let r = state.scan_prefix::<serde::de::IgnoredAny>(
                Kind::Logs,
                &line_prefix(&cfg.name, Some(name)),
                |k, _| {
                    kept[i].push_back(k.to_string());
                    true
                },
            );
            if let Err(e) = r {
                warn!(log = %cfg.name, error = %e, "cannot list the kept lines");
            }
        }
        let start_at_end = fresh && cfg.start_at == StartAt::End;
        let input = match (&cfg.path, &cfg.journal_unit) {
            (Some(p), _) => Input::Files(file::FileSet::new(p, record.files.clone(), start_at_end)),
            (None, unit) => Input::Journal(journal::Journal::new(
                unit.clone().unwrap_or_default(),
                cfg.journal_directory.clone(),
                record.cursor.clone(),
                if start_at_end {
                    Some(now_ms)
                } else {
                    record.since_ms
                },
            )),
        };
        let n = matcher.names.len();
        Source {
            cfg: cfg.clone(),
            input,
            feed: Feed {
                log: cfg.name.clone(),
                format: cfg.format,
                matcher,
                record,
                counts,
                pending: vec![VecDeque::new(); n],
            },
            kept,
            problems: Vec::new(),
            figures: Figures::default(),
            state,
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Reads what is new; returns true when more is waiting (the poll's budget ran out).
    pub fn poll(&mut self, now_ms: i64) -> bool {
        let feed = &mut self.feed;
        match &mut self.input {
            Input::Files(fs) => {
                let mut bytes = 0;
                let report = fs.poll(|l, f| feed.line(l, f, now_ms), |b| bytes += b);
                feed.record.bytes += bytes;
                if report.truncations > 0 {
                    info!(log = %self.cfg.name, files = report.truncations, "log file truncated or replaced; reading it from its beginning");
                }
                self.figures.truncations += report.truncations;
                self.figures.lines_cut += report.cut_lines;
                self.figures.files = report.files as u64;
                self.figures.behind = report.behind;
                self.problems = report.problems;
                report.more
            }
            Input::Journal(j) => {
                let (problems, more) = j.poll(|entry| {
                    feed.record.bytes += entry.message.len() as u64 + 1;
                    feed.line(&entry.message, &entry.unit, entry.t.unwrap_or(now_ms));
                    feed.record.cursor = Some(entry.cursor);
                });
                self.problems = problems;
                more
            }
        }
    }

    /// The counters and positions as they are now.
    pub fn record(&self) -> SourceRecord {
        let mut r = self.feed.record.clone();
        match &self.input {
            Input::Files(fs) => r.files = fs.positions(),
            Input::Journal(j) => r.since_ms = j.since_ms(),
        }
        r.matches = self
            .feed
            .matcher
            .names
            .iter()
            .zip(&self.feed.counts)
            .map(|(n, c)| (n.clone(), *c))
            .collect();
        r
    }

    /// Writes positions, counters and the new kept lines in one atomic batch, dropping kept
    /// lines beyond [`KEEP_PER_MATCH`] a match or older than the retention.
    pub fn flush(&mut self, now_ms: i64) -> Result<(), crate::store::StoreError> {
        let mut batch = self.state.batch(Kind::Logs);
        batch.put(&position_key(&self.cfg.name), &self.record())?;
        let oldest = now_ms.saturating_sub(self.retention_ms);
        for (i, q) in self.feed.pending.iter_mut().enumerate() {
            let kept = &mut self.kept[i];
            for (key, line) in q.drain(..) {
                batch.put(&key, &line)?;
                kept.push_back(key);
            }
            while kept.len() > KEEP_PER_MATCH
                || kept
                    .front()
                    .and_then(|k| key_time(k))
                    .is_some_and(|t| t < oldest)
            {
                if let Some(k) = kept.pop_front() {
                    batch.remove(&k);
                }
            }
        }
        self.state.apply_durable(batch)
    }

    /// What the polls found since the last call: files followed and bytes behind as of the
    /// last poll, truncations and cut lines summed.
    pub fn take_figures(&mut self) -> Figures {
        let f = self.figures;
        self.figures.truncations = 0;
        self.figures.lines_cut = 0;
        f
    }

    /// True for a journald source.
    pub fn is_journal(&self) -> bool {
        matches!(self.input, Input::Journal(_))
    }

    /// Why the source cannot be read; empty when it is up.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Appends the counters and `log_source_up` to the head at `t_ms`, as one page.
    pub fn append(&self, ingest: &Ingest, t_ms: i64) {
        let mut base = Labels::new([("log", self.cfg.name.as_str())]);
        if let Some(job) = &self.cfg.job {
            base = base.with("job", job.as_str());
        }
        let r = &self.feed.record;
        let mut app = ingest.appender(&target_key(&self.cfg.name), &base, t_ms);
        for (name, v) in [
            ("log_lines_total", r.lines as f64),
            ("log_bytes_total", r.bytes as f64),
            (
                "log_source_up",
                f64::from(u8::from(self.problems.is_empty())),
            ),
        ] {
            app.add_keyed(name, None, v, |b| b.with("__name__", name));
        }
        for (name, c) in self.feed.matcher.names.iter().zip(&self.feed.counts) {
            let key = format!("log_matches_total/{name}");
            app.add_keyed(&key, None, *c as f64, |b| {
                b.with("__name__", "log_matches_total")
                    .with("match", name.as_str())
            });
        }
        app.commit();
    }

    /// What `/api/v1/targets` shows of the source.
    fn health(&self, at: chrono::DateTime<chrono::Utc>, took: f64) -> (Run<'static>, TargetHealth) {
        let up = self.problems.is_empty();
        let reason = self.problems.join("; ");
        let h = TargetHealth {
            kind: "log",
            job: self.cfg.job.clone().unwrap_or_default(),
            probe: None,
            log: Some(self.cfg.name.clone()),
            url: match (&self.cfg.path, &self.cfg.journal_unit) {
                (Some(p), _) => p.clone(),
                (None, u) => format!("journal:{}", u.as_deref().unwrap_or("")),
            },
            health: if up { "up" } else { "down" },
            last_error: reason,
            last_run: Some(at),
            last_duration_seconds: took,
            samples: None,
        };
        let run = Run {
            up,
            error: "",
            at,
            duration_seconds: took,
            samples: None,
        };
        (run, h)
    }
}

/// Follows every `[[log]]` of a config: one task a source. Part of the config's generation:
/// a reload stops it (each source flushes) and starts the next, which resumes at the stored
/// positions.
pub struct LogRunner {
    /// The config in force.
    pub config: Arc<Config>,
    /// The counters go to the head through here.
    pub ingest: Arc<Ingest>,
    /// Positions, counters and kept lines.
    pub state: StateStore,
    /// Each source's health, for `/api/v1/targets`.
    pub targets: Arc<TargetsView>,
    /// Wall time of the samples and the kept lines.
    pub clock: Clock,
    /// Failed store writes are counted here.
    pub telemetry: Arc<Telemetry>,
    /// The sources' own figures on `/metrics`; outlives the generation.
    pub stats: Arc<stats::LogStats>,
}

impl LogRunner {
    /// The target keys of the config's sources, for the targets view's retain.
    pub fn target_keys(config: &Config) -> Vec<String> {
        config.logs.iter().map(|l| target_key(&l.name)).collect()
    }

    /// Runs every source until `shutdown`; each flushes on the way out. First drops what the
    /// store keeps of sources (and matches) the config no longer has: each generation starts
    /// here, at the daemon's start and after every reload.
    pub async fn run(self, shutdown: CancellationToken) {
        match crate::rt::blocking(|| prune(&self.state, &self.config)) {
            Ok(0) => {}
            Ok(n) => info!(
                records = n,
                "dropped the stored positions and kept lines of log sources no longer configured"
            ),
            Err(e) => {
                self.telemetry
                    .store_write_failures
                    .with_label_values(&["logs"])
                    .inc();
                warn!(error = %e, "cannot drop the stored records of removed log sources");
            }
        }
        let names: Vec<&str> = self.config.logs.iter().map(|l| l.name.as_str()).collect();
        self.stats.retain(&names);
        let mut tasks = JoinSet::new();
        for cfg in &self.config.logs {
            let stats = self.stats.source(&cfg.name);
            let cfg = cfg.clone();
            let (state, ingest, targets, clock, telemetry) = (
                self.state.clone(),
                self.ingest.clone(),
                self.targets.clone(),
                self.clock.clone(),
                self.telemetry.clone(),
            );
            let retention = self.config.storage.retention.get();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let now = clock.now_ms();
                let mut src = crate::rt::blocking(|| Source::open(&cfg, state, retention, now));
                stats.journal.store(src.is_journal(), Relaxed);
                let env = Env {
                    ingest: &ingest,
                    targets: &targets,
                    clock: &clock,
                    telemetry: &telemetry,
                    stats: &stats,
                };
                run_source(&mut src, &env, &shutdown).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// What a running source reports to.
struct Env<'a> {
    ingest: &'a Ingest,
    targets: &'a TargetsView,
    clock: &'a Clock,
    telemetry: &'a Telemetry,
    stats: &'a stats::SourceStats,
}

async fn run_source(src: &mut Source, env: &Env<'_>, shutdown: &CancellationToken) {
    let Env {
        ingest,
        targets,
        clock,
        telemetry,
        stats,
    } = *env;
    let iterations = telemetry.loop_iterations.with_label_values(&["logs"]);
    let key = target_key(&src.cfg.name);
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_flush = Instant::now();
    let mut was_up = true;
    while crate::rt::ticked(&mut tick, shutdown).await {
        let started = Instant::now();
        let at = clock.now();
        let mut more = true;
        let mut rounds = 0;
        // A source with more than a poll's budget waiting reads on, up to a second's worth.
        while more && rounds < 8 && !shutdown.is_cancelled() {
            more = crate::rt::blocking(|| src.poll(clock.now_ms()));
            rounds += 1;
        }
        iterations.inc();
        let up = src.problems().is_empty();
        let f = src.take_figures();
        stats.read_errors.fetch_add(u64::from(!up), Relaxed);
        stats.files_followed.store(f.files, Relaxed);
        stats.bytes_behind.store(f.behind, Relaxed);
        stats.truncations.fetch_add(f.truncations, Relaxed);
        stats.lines_cut.fetch_add(f.lines_cut, Relaxed);
        stats
            .last_poll_ms
            .store(u64::try_from(clock.now_ms()).unwrap_or(0), Relaxed);
        if up != was_up {
            match up {
                true => info!(log = %src.cfg.name, "log source readable again"),
                false => {
                    warn!(log = %src.cfg.name, reason = %src.problems().join("; "), "log source cannot be read")
                }
            }
            was_up = up;
        }
        let (run, h) = src.health(at, started.elapsed().as_secs_f64());
        let reason = h.last_error.clone();
        targets.record_run(
            &key,
            Run {
                error: &reason,
                ..run
            },
            || h,
        );
        if last_flush.elapsed() >= FLUSH_EVERY {
            last_flush = Instant::now();
            flush_and_append(src, ingest, clock, telemetry);
        }
    }
    flush_and_append(src, ingest, clock, telemetry);
}

/// Durable before visible: the counters reach the head only once the store holds them with
/// their positions (when the store fails they still reach the head, so alerting goes on).
fn flush_and_append(src: &mut Source, ingest: &Ingest, clock: &Clock, telemetry: &Telemetry) {
    let now = clock.now_ms();
    if let Err(e) = crate::rt::blocking(|| src.flush(now)) {
        telemetry
            .store_write_failures
            .with_label_values(&["logs"])
            .inc();
        warn!(log = %src.cfg.name, error = %e, "cannot store log positions and kept lines");
    }
    src.append(ingest, now);
}

/// Removes from the store the position records of sources `config` does not have, and the
/// kept lines of sources or matches it does not have, in one batch; returns how many records
/// went. The records of configured sources stay as they are, so a reload loses no position.
pub fn prune(state: &StateStore, config: &Config) -> Result<usize, crate::store::StoreError> {
    let configured = |log: &str, m: Option<&str>| {
        config
            .logs
            .iter()
            .any(|l| l.name == log && m.is_none_or(|m| l.matches.iter().any(|x| x.name == m)))
    };
    let mut stale = Vec::new();
    state.scan_prefix::<serde::de::IgnoredAny>(Kind::Logs, &format!("pos{SEP}"), |k, _| {
        if let Some(log) = k.split(SEP).nth(1)
            && !configured(log, None)
        {
            stale.push(k.to_string());
        }
        true
    })?;
    state.scan_prefix::<serde::de::IgnoredAny>(Kind::Logs, &format!("line{SEP}"), |k, _| {
        let mut parts = k.split(SEP).skip(1);
        if let (Some(log), Some(m)) = (parts.next(), parts.next())
            && !configured(log, Some(m))
        {
            stale.push(k.to_string());
        }
        true
    })?;
    if stale.is_empty() {
        return Ok(0);
    }
    let mut batch = state.batch(Kind::Logs);
    for k in &stale {
        batch.remove(k);
    }
    state.apply_durable(batch)?;
    Ok(stale.len())
}

/// The kept lines of `log` (of one match, or all), between `since` and `until` (ms,
/// inclusive), the newest `limit`, newest last.
pub fn query(
    state: &StateStore,
    log: &str,
    m: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
    limit: usize,
) -> Result<Vec<LogLine>, crate::store::StoreError> {
    let mut out: Vec<LogLine> = Vec::new();
    state.scan_prefix::<KeptLine>(Kind::Logs, &line_prefix(log, m), |key, l| {
        if since.is_some_and(|s| l.t < s) || until.is_some_and(|u| l.t > u) {
            return true;
        }
        let match_ = key.split(SEP).nth(2).unwrap_or("").to_string();
        out.push(LogLine {
            time: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(l.t)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            file: l.file,
            match_,
            line: l.line,
            t: l.t,
        });
        true
    })?;
    out.sort_by_key(|l| l.t);
    let skip = out.len().saturating_sub(limit);
    out.drain(..skip);
    Ok(out)
}

/// The `(log, match)` pairs a PromQL expression reads through `log_matches_total` (`None`:
/// any value of that label), or nothing when it does not read it.
pub fn matches_read(expr: &promql_parser::parser::Expr) -> Vec<(Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut visit = |e: &promql_parser::parser::Expr| {
        let vs = match e {
            promql_parser::parser::Expr::VectorSelector(vs) => vs,
            promql_parser::parser::Expr::MatrixSelector(ms) => &ms.vs,
            _ => return,
        };
        let name = vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == promql_parser::label::MatchOp::Equal)
                .map(|m| m.value.clone())
        });
        if name.as_deref() != Some("log_matches_total") {
            return;
        }
        let eq = |label: &str| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == label && m.op == promql_parser::label::MatchOp::Equal)
                .map(|m| m.value.clone())
        };
        out.push((eq("log"), eq("match")));
    };
    walk(expr, &mut visit);
    out
}

fn walk(e: &promql_parser::parser::Expr, f: &mut impl FnMut(&promql_parser::parser::Expr)) {
    use promql_parser::parser::Expr;
    f(e);
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, f);
            if let Some(p) = &a.param {
                walk(p, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, f);
            }
        }
        Expr::Extension(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => {}
    }
}

/// The `log_excerpt` annotation of an alert or check over `expr`: the last
/// [`EXCERPT_LINES`] kept lines of the matches it reads, narrowed by the alert's own `log`
/// and `match` labels when it has them; `None` when the expression does not read
/// `log_matches_total` or no line is kept.
pub fn excerpt(
    state: &StateStore,
    config: &Config,
    expr: &promql_parser::parser::Expr,
    labels: Option<&Labels>,
) -> Option<String> {
    let read = matches_read(expr);
    if read.is_empty() {
        return None;
    }
    let mut lines: Vec<LogLine> = Vec::new();
    for (log, m) in read {
        let log = labels
            .and_then(|l| l.get("log"))
            .map(str::to_string)
            .or(log);
        let m = labels
            .and_then(|l| l.get("match"))
            .map(str::to_string)
            .or(m);
        let logs: Vec<&str> = match &log {
            Some(l) => vec![l.as_str()],
            None => config.logs.iter().map(|l| l.name.as_str()).collect(),
        };
        for log in logs {
            if let Ok(found) = query(state, log, m.as_deref(), None, None, EXCERPT_LINES) {
                lines.extend(found);
            }
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.sort_by_key(|l| l.t);
    lines.dedup_by(|a, b| a.t == b.t && a.line == b.line && a.file == b.file);
    let skip = lines.len().saturating_sub(EXCERPT_LINES);
    Some(
        lines[skip..]
            .iter()
            .map(|l| format!("{} {} [{}] {}", l.time, l.file, l.match_, l.line))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests;
