//! `postflight import openmetrics FILE`: brings history over from an OpenMetrics text file,
//! the input of `promtool tsdb create-blocks-from openmetrics` (SPEC §7).
//!
//! # How
//!
//! The file is never held whole: it is read in pieces of whole lines and parsed several times.
//!
//! 1. **Check.** The first pass parses everything, so that a malformed file is refused
//!    (`FILE:LINE: message`, exit 2) before anything is written. It also learns each series'
//!    label set (keyed by the series text as written, so later passes only look it up) and
//!    how many samples fall in each hour.
//! 2. **Write, window by window.** Hours are grouped into windows of at most
//!    [`WINDOW_SAMPLES`] samples; each window is one more pass that keeps only that window's
//!    samples, sorts each series' samples by time (the file's order does not matter), cuts
//!    them into chunks of the head's size and writes them through a store [`Import`]. Memory
//!    is the series' label sets plus one window's samples, whatever the file's size.
//! 3. **Commit.** Only then do the chunks become visible, all at once (see [`Import`]): a
//!    failure or a kill half-way leaves no sample behind.
//!
//! # Samples the store already has
//!
//! Stored samples win. An imported sample inside the time span of a chunk already stored for
//! the same series (or of its open chunk) is skipped and counted; the others fill the gaps
//! around them, in chunks cut at those spans, so that a series' chunks never overlap and the
//! head and the query engine read one sample per timestamp. Importing a file twice therefore
//! imports nothing the second time. Two samples of one series at the same timestamp in the
//! file: the later line wins. Samples older than the retention are skipped (retention would
//! delete them at once), and so are samples after now (the daemon would then drop the series'
//! next samples as out of order).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, ConfigError};
use crate::scrape::parse::{Parser, Resume, SampleRef};
use crate::series::chunk::Chunk;
use crate::series::head::DEFAULT_CHUNK_SAMPLES;
use crate::series::{Labels, METRIC_NAME, Timestamp};
use crate::store::{BLOCK_MAX_BYTES, ChunkRef, Import, Store, StoreError};

/// Bytes of the file read at a time (a piece grows to hold a longer line).
const PIECE_BYTES: usize = 4 << 20;
/// Samples one write pass holds at most (16 bytes each), unless one hour of the file holds
/// more.
pub const WINDOW_SAMPLES: u64 = 4_000_000;
/// Encoded chunk bytes handed to the store in one call (a few blocks).
const BATCH_BYTES: usize = 4 * BLOCK_MAX_BYTES;
const HOUR_MS: i64 = 3_600_000;

/// Why an import failed; nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The config could not be loaded.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid OpenMetrics, or a sample has no timestamp.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A running daemon holds the store.
    #[error(
        "the store at {} is in use by a running postflight; stop it before importing",
        path.display()
    )]
    Locked {
        /// The store path.
        path: PathBuf,
    },
    /// The store failed.
    #[error("store {}: {source}", path.display())]
    Store {
        /// The store path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: StoreError,
    },
}

impl ImportError {
    /// Exit code: 2 for a malformed file or config, 1 otherwise (SPEC §7).
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Config(_) | ImportError::Malformed { .. } => 2,
            _ => 1,
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Series with at least one sample imported.
    pub series: u64,
    /// Samples imported.
    pub samples: u64,
    /// Samples skipped: the store already holds the series at that time.
    pub already_stored: u64,
    /// Samples skipped: older than the retention.
    pub too_old: u64,
    /// Samples skipped: after the time of the import.
    pub future: u64,
    /// Samples skipped: another line of the file has the series at the same timestamp.
    pub duplicates: u64,
}

/// `postflight import openmetrics FILE -c CONFIG`: prints what was imported, exit 0; or the
/// error, exit 1 or 2.
pub fn main(file: &Path, config: &Path) -> ExitCode {
    let progress = Progress::new(std::io::stderr().is_terminal());
    match import_file(file, config, &progress) {
        Ok(done) => {
            progress.clear();
            let mut line = format!(
                "imported {} series, {} samples from {}",
                done.series,
                done.samples,
                file.display()
            );
            let skipped = [
                (done.already_stored, "already stored"),
                (done.too_old, "older than the retention"),
                (done.future, "after now"),
                (done.duplicates, "at a timestamp repeated in the file"),
            ];
            for (n, why) in skipped.iter().filter(|(n, _)| *n > 0) {
                line.push_str(&format!("; skipped {n} samples {why}"));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            progress.clear();
            eprintln!("postflight: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Imports `file` into the store of the config at `config`.
pub fn import_file(
    file: &Path,
    config: &Path,
    progress: &Progress,
) -> Result<Imported, ImportError> {
    let config = config::load_file(config)?;
    let scan = scan(file, progress)?;
    let store_path = config.storage.path.clone();
    let store = open_store(&store_path)?;
    let retention = config.storage.retention.get();
    store.set_retention(retention);
    let now = crate::clock::Clock::System.now_ms();
    let keep = Keep {
        from: now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
        until: now,
    };
    let store_err = |source| ImportError::Store {
        path: store_path.clone(),
        source,
    };
    let spans = stored_spans(&store, &scan.labels).map_err(store_err)?;
    let windows = windows(&scan.per_hour);
    let mut import = store.samples.import();
    let mut done = Imported::default();
    let mut imported = vec![false; scan.labels.len()];
    for (k, &(start, end)) in windows.iter().enumerate() {
        progress.pass(k + 2, windows.len() + 1);
        let per_series = collect_window(file, &scan, start, end, progress)?;
        let mut writer = Writer {
            import: &mut import,
            labels: &scan.labels,
            pending: Vec::new(),
            pending_bytes: 0,
        };
        for (id, mut samples) in per_series.into_iter().enumerate() {
            if samples.is_empty() {
                continue;
            }
            let kept = cut_series(&mut samples, &spans[id], keep, &mut done, |chunk| {
                writer.push(id, chunk)
            })
            .map_err(store_err)?;
            imported[id] |= kept > 0;
            done.samples += kept;
        }
        writer.flush().map_err(store_err)?;
    }
    import.commit().map_err(store_err)?;
    done.series = imported.iter().filter(|&&i| i).count() as u64;
    Ok(done)
}

fn open_store(path: &Path) -> Result<Store, ImportError> {
    match Store::open(path) {
        Ok(opened) => {
            if let Some(moved) = opened.recovered_from_corruption {
                eprintln!(
                    "postflight: warning: the store was corrupt and was moved to {}",
                    moved.display()
                );
            }
            Ok(opened.store)
        }
        Err(StoreError::Io { source, .. })
            if source.to_string().contains("could not acquire lock") =>
        {
            Err(ImportError::Locked {
                path: path.to_owned(),
            })
        }
        Err(source) => Err(ImportError::Store {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What the checking pass learnt.
struct Scan {
    /// Series text as written → series id.
    ids: HashMap<Box<str>, u32>,
    /// Label set of each series id (several spellings of one series share an id).
    labels: Vec<Labels>,
    /// Samples per hour (hour start in ms).
    per_hour: BTreeMap<i64, u64>,
}

/// Calls `each` with every piece of whole lines of `file` and the number of its first line;
/// reports progress.
fn for_each_piece(
    file: &Path,
    progress: &Progress,
    mut each: impl FnMut(&[u8], usize) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let read_err = |source| ImportError::Read {
        path: file.to_owned(),
        source,
    };
    let mut f = File::open(file).map_err(read_err)?;
    let total = f.metadata().map_err(read_err)?.len();
    let mut buf = vec![0u8; PIECE_BYTES];
    let mut filled = 0;
    let mut line = 1;
    let mut read_total = 0u64;
    loop {
        if filled == buf.len() {
            // A line longer than a piece.
            buf.resize(buf.len() * 2, 0);
        }
        let n = f.read(&mut buf[filled..]).map_err(read_err)?;
        read_total += n as u64;
        filled += n;
        let end = if n == 0 {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(p) => p + 1,
                None => continue,
            }
        };
        if end > 0 {
            each(&buf[..end], line)?;
            line += memchr::memchr_iter(b'\n', &buf[..end]).count();
            buf.copy_within(end..filled, 0);
            filled -= end;
            progress.advance(read_total, total);
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// The line of `at` (a slice of `piece`) in the file.
fn line_in(piece: &[u8], first_line: usize, at: &str) -> usize {
    let off = (at.as_ptr() as usize).saturating_sub(piece.as_ptr() as usize);
    first_line + memchr::memchr_iter(b'\n', &piece[..off.min(piece.len())]).count()
}

/// The label set of a parsed sample.
fn labels_of(s: &SampleRef<'_>) -> Labels {
    let mut v: Vec<(String, String)> = Vec::with_capacity(s.labels.len() + 1);
    v.push((METRIC_NAME.to_owned(), s.name.to_owned()));
    v.extend(
        s.labels
            .iter()
            .map(|(n, val)| (n.to_owned(), val.into_owned())),
    );
    Labels::new(v)
}

/// The checking pass (see the module doc).
fn scan(file: &Path, progress: &Progress) -> Result<Scan, ImportError> {
    progress.pass(1, 1);
    let mut scan = Scan {
        ids: HashMap::new(),
        labels: Vec::new(),
        per_hour: BTreeMap::new(),
    };
    let mut by_labels: HashMap<Labels, u32> = HashMap::new();
    let mut parser = Parser::new();
    let mut resume = Resume::default();
    let mut last_line = 1;
    let malformed = |line, reason: String| ImportError::Malformed {
        path: file.to_owned(),
        line,
        reason,
    };
    for_each_piece(file, progress, |piece, first_line| {
        let mut missing_ts: Option<usize> = None;
        let parsed = parser.parse_piece(
            piece,
            &mut resume,
            |s| {
                let Some(t) = s.timestamp_ms else {
                    missing_ts.get_or_insert_with(|| line_in(piece, first_line, s.series));
                    return;
                };
                if !scan.ids.contains_key(s.series) {
                    let labels = labels_of(&s);
                    let next = scan.labels.len() as u32;
                    let id = *by_labels.entry(labels.clone()).or_insert(next);
                    if id == next {
                        scan.labels.push(labels);
                    }
                    scan.ids.insert(s.series.into(), id);
                }
                *scan
                    .per_hour
                    .entry(t.div_euclid(HOUR_MS) * HOUR_MS)
                    .or_insert(0) += 1;
            },
            |_| {},
        );
        if let Err(e) = parsed {
            return Err(malformed(first_line + e.line - 1, e.reason));
        }
        if let Some(line) = missing_ts {
            return Err(malformed(
                line,
                "sample without a timestamp (an import needs every sample's time)".into(),
            ));
        }
        last_line = first_line + memchr::memchr_iter(b'\n', piece).count();
        Ok(())
    })?;
    if !resume.saw_eof() {
        return Err(malformed(
            last_line.saturating_sub(1).max(1),
            "data does not end with # EOF".into(),
        ));
    }
    Ok(scan)
}

/// Hours grouped into windows [start, end) of at most [`WINDOW_SAMPLES`] samples each (an
/// hour with more is a window of its own), in time order.
fn windows(per_hour: &BTreeMap<i64, u64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut current: Option<(i64, i64, u64)> = None;
    for (&hour, &n) in per_hour {
        current = match current {
            Some((s, _, held)) if held + n <= WINDOW_SAMPLES => Some((s, hour + HOUR_MS, held + n)),
            Some((s, e, _)) => {
                out.push((s, e));
                Some((hour, hour + HOUR_MS, n))
            }
            None => Some((hour, hour + HOUR_MS, n)),
        };
    }
    if let Some((s, e, _)) = current {
        out.push((s, e));
    }
    out
}

/// One write pass: the samples of [start, end) of every series, in file order.
fn collect_window(
    file: &Path,
    scan: &Scan,
    start: Timestamp,
    end: Timestamp,
    progress: &Progress,
) -> Result<Vec<Vec<(Timestamp, f64)>>, ImportError> {
    let mut per_series: Vec<Vec<(Timestamp, f64)>> = vec![Vec::new(); scan.labels.len()];
    let mut parser = Parser::new();
    let mut resume = Resume::default();
    for_each_piece(file, progress, |piece, first_line| {
        parser
            .parse_piece(
                piece,
                &mut resume,
                |s| {
                    let Some(t) = s.timestamp_ms.filter(|t| (start..end).contains(t)) else {
                        return;
                    };
                    if let Some(&id) = scan.ids.get(s.series) {
                        per_series[id as usize].push((t, s.value));
                    }
                },
                |_| {},
            )
            .map(|_| ())
            // The file changed since the checking pass.
            .map_err(|e| ImportError::Malformed {
                path: file.to_owned(),
                line: first_line + e.line - 1,
                reason: e.reason,
            })
    })?;
    Ok(per_series)
}

/// The time spans the store already holds for each series id, merged and sorted.
fn stored_spans(store: &Store, labels: &[Labels]) -> Result<Vec<Vec<(i64, i64)>>, StoreError> {
    let fps: HashMap<u64, usize> = labels
        .iter()
        .enumerate()
        .map(|(id, l)| (l.fingerprint(), id))
        .collect();
    let wanted: HashSet<u64> = fps.keys().copied().collect();
    let mut spans = vec![Vec::new(); labels.len()];
    for (fp, s) in store.samples.chunk_spans(&wanted)? {
        spans[fps[&fp]].extend(s);
    }
    for (l, bytes) in store.samples.open_chunks()? {
        if let (Some(&id), Ok(c)) = (fps.get(&l.fingerprint()), Chunk::from_bytes(&bytes))
            && !c.is_empty()
        {
            spans[id].push((c.first_t(), c.last_t()));
        }
    }
    for s in &mut spans {
        *s = merge_spans(std::mem::take(s));
    }
    Ok(spans)
}

/// Overlapping or touching spans merged into one, in time order.
fn merge_spans(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The times an import keeps: from the retention's cutoff to now. A sample after now would
/// make the daemon drop the series' next scraped samples as out of order.
#[derive(Clone, Copy, Debug)]
struct Keep {
    from: Timestamp,
    until: Timestamp,
}

/// Sorts a series' samples of one window, drops repeats (the later line wins), stored times
/// and expired ones, and hands out chunks of the head's size that do not straddle a stored
/// span. Returns the samples kept.
fn cut_series<E>(
    samples: &mut [(Timestamp, f64)],
    spans: &[(i64, i64)],
    keep: Keep,
    done: &mut Imported,
    mut emit: impl FnMut(&Chunk) -> Result<(), E>,
) -> Result<u64, E> {
    // Stable: of samples at one timestamp, the file's last stays last.
    samples.sort_by_key(|s| s.0);
    let mut kept = 0u64;
    let mut chunk = Chunk::new();
    // The stored span the open chunk lies before (by index): a chunk never crosses one.
    let mut chunk_gap = 0usize;
    for (i, &(t, v)) in samples.iter().enumerate() {
        if samples.get(i + 1).is_some_and(|next| next.0 == t) {
            done.duplicates += 1;
            continue;
        }
        if t < keep.from {
            done.too_old += 1;
            continue;
        }
        if t > keep.until {
            done.future += 1;
            continue;
        }
        let gap = spans.partition_point(|s| s.1 < t);
        if spans.get(gap).is_some_and(|s| s.0 <= t) {
            done.already_stored += 1;
            continue;
        }
        if !chunk.is_empty() && (chunk.len() >= DEFAULT_CHUNK_SAMPLES || gap != chunk_gap) {
            emit(&chunk)?;
            chunk = Chunk::new();
        }
        chunk_gap = gap;
        // In order and after the last one: the append cannot fail.
        if chunk.append(t, v).is_ok() {
            kept += 1;
        }
    }
    if !chunk.is_empty() {
        emit(&chunk)?;
    }
    Ok(kept)
}

/// Batches a window's chunks into store calls.
struct Writer<'a> {
    import: &'a mut Import,
    labels: &'a [Labels],
    /// (series id, min t, max t, samples, bytes).
    pending: Vec<(usize, Timestamp, Timestamp, u32, Vec<u8>)>,
    pending_bytes: usize,
}

impl Writer<'_> {
    fn push(&mut self, id: usize, chunk: &Chunk) -> Result<(), StoreError> {
        let bytes = chunk.as_bytes().to_vec();
        self.pending_bytes += bytes.len();
        self.pending.push((
            id,
            chunk.first_t(),
            chunk.last_t(),
            chunk.len() as u32,
            bytes,
        ));
        if self.pending_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let refs: Vec<ChunkRef<'_>> = self
            .pending
            .iter()
            .map(|(id, min_t, max_t, count, bytes)| ChunkRef {
                labels: &self.labels[*id],
                min_t: *min_t,
                max_t: *max_t,
                count: *count,
                bytes,
            })
            .collect();
        self.import.put_chunks(&refs)?;
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

/// The progress line for `pass` (1 is the check) of `passes`, `pct` through the file: starts
/// with a carriage return and clears the rest of the line, so each one overwrites the last.
fn progress_line(pass: usize, passes: usize, pct: u64) -> String {
    if pass == 1 {
        format!("\rimport: checking the file: {pct:3}%\x1b[K")
    } else {
        format!(
            "\rimport: writing, pass {} of {}: {pct:3}%\x1b[K",
            pass - 1,
            passes - 1
        )
    }
}

/// The progress line on a terminal: pass and percentage, rewritten in place; nothing when
/// stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    on: bool,
    state: std::cell::Cell<(usize, usize, u64)>,
}

impl Progress {
    /// Shows progress only when `on` (stderr is a terminal).
    pub fn new(on: bool) -> Progress {
        Progress {
            on,
            state: std::cell::Cell::new((1, 1, u64::MAX)),
        }
    }

    fn pass(&self, pass: usize, passes: usize) {
        self.state.set((pass, passes, u64::MAX));
    }

    fn advance(&self, read: u64, total: u64) {
        if !self.on {
            return;
        }
        let (pass, passes, shown) = self.state.get();
        let pct = (read * 100).checked_div(total).unwrap_or(100).min(100);
        if pct == shown {
            return;
        }
        self.state.set((pass, passes, pct));
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(progress_line(pass, passes, pct).as_bytes());
        let _ = err.flush();
    }

    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests;
