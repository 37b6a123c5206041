//! The log sources' own metrics on `/metrics` (`postflight_log_*`): whether each tailer keeps
//! up and reads what it should, beside the `log_*` series it produces.
//!
//! One [`LogStats`] lives as long as the daemon and is registered once as an
//! [`Exposer`]; each generation's [`super::LogRunner`] keeps only the configured sources in it
//! ([`LogStats::retain`]), so a removed source's series go with it, and a source that stays
//! across a reload keeps its counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::telemetry::{Exposer, write_sample};

/// The figures of one source, updated after each of its polls.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Polls that found the source, or one of its files, unreadable.
    pub read_errors: AtomicU64,
    /// Files followed after the last poll (file sources).
    pub files_followed: AtomicU64,
    /// Bytes in the followed files after the position read up to, at the end of the last poll
    /// (file sources).
    pub bytes_behind: AtomicU64,
    /// Files read again from their beginning (truncated or replaced).
    pub truncations: AtomicU64,
    /// Lines cut at [`super::file::MAX_LINE`].
    pub lines_cut: AtomicU64,
    /// Wall time (ms) at the end of the last poll.
    pub last_poll_ms: AtomicU64,
    /// True for a journald source (which has no files and no byte lag).
    pub journal: std::sync::atomic::AtomicBool,
}

/// Every source's [`SourceStats`], by `[[log]]` name.
#[derive(Debug, Default)]
pub struct LogStats {
    sources: Mutex<BTreeMap<String, Arc<SourceStats>>>,
}

impl LogStats {
    /// The figures of source `name`, created at zero the first time.
    pub fn source(&self, name: &str) -> Arc<SourceStats> {
        let mut s = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        s.entry(name.to_string()).or_default().clone()
    }

    /// Forgets every source not in `names`.
    pub fn retain(&self, names: &[&str]) {
        let mut s = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|n, _| names.contains(&n.as_str()));
    }
}

/// The families, their help and type, and how to read each from a source (`None`: not
/// shown for it).
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SourceStats) -> Option<f64>,
);

const FAMILIES: [Family; 6] = [
    (
        "postflight_log_read_errors_total",
        "Polls that found the log source, or one of its files, unreadable (the reason is on the source in /api/v1/targets).",
        "counter",
        |s| Some(s.read_errors.load(Relaxed) as f64),
    ),
    (
        "postflight_log_files_followed",
        "Files the log source follows (those under its glob, and rotated ones still drained).",
        "gauge",
        |s| (!s.journal.load(Relaxed)).then(|| s.files_followed.load(Relaxed) as f64),
    ),
    (
        "postflight_log_bytes_behind",
        "Bytes written to the followed files and not read yet, at the end of the last poll: above a poll's writes for long means the source does not keep up.",
        "gauge",
        |s| (!s.journal.load(Relaxed)).then(|| s.bytes_behind.load(Relaxed) as f64),
    ),
    (
        "postflight_log_truncations_total",
        "Files read again from their beginning because they were truncated or replaced.",
        "counter",
        |s| (!s.journal.load(Relaxed)).then(|| s.truncations.load(Relaxed) as f64),
    ),
    (
        "postflight_log_lines_cut_total",
        "Lines longer than 64 KiB, cut there and counted once.",
        "counter",
        |s| (!s.journal.load(Relaxed)).then(|| s.lines_cut.load(Relaxed) as f64),
    ),
    (
        "postflight_log_last_poll_timestamp_seconds",
        "When the log source last looked for new lines: a stuck source falls behind now.",
        "gauge",
        |s| match s.last_poll_ms.load(Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        },
    ),
];

impl Exposer for LogStats {
    fn expose(&self, out: &mut String) {
        let sources: Vec<(String, Arc<SourceStats>)> = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (name, help, kind, read) in FAMILIES {
            let mut header = false;
            for (log, s) in &sources {
                let Some(v) = read(s) else { continue };
                if !header {
                    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                    header = true;
                }
                write_sample(out, name, &[("log", log.as_str())], v);
            }
        }
    }
}
