//! Following the files under a glob, as `tail -F` does and better (SPEC §9).
//!
//! The files are polled (every [`super::POLL_EVERY`]), not watched through inotify: a poll is a
//! `stat` and a `pread` of 256 bytes a file, cheap at the few files a source follows, and it
//! sees every case inotify needs special handling for (a directory created later, a file
//! replaced while no watch was set, network file systems) the same way.
//!
//! A file is known by its identity: device, inode and a CRC of its first bytes (up to
//! [`FINGERPRINT_BYTES`]), not by its path. So:
//! - rename-and-create rotation: the renamed file keeps its identity (and its position, if it is
//!   still under the glob; if not, its open handle is drained for a grace period), and the new
//!   file under the old name is a new identity, read from its beginning;
//! - copytruncate: the size drops below the position, or the first bytes change, and the file
//!   is read again from its beginning;
//! - a file deleted and another created with the same name (even reusing the inode): a new
//!   identity by its first bytes, read from its beginning;
//! - a partial last line is held in memory (at most [`MAX_LINE`] bytes) and counted once its
//!   newline arrives; the position kept in the store is the start of that line, so a restart
//!   reads it again whole.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest line counted whole; a longer one is cut here, counted once, and the rest of it up
/// to its newline is skipped.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes of a file's beginning whose CRC is part of its identity.
pub const FINGERPRINT_BYTES: usize = 256;
/// Bytes read from a file per call (the only read buffer a file needs).
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one file per poll at most, so one fast file does not starve the others
/// of its source, and a poll (and the second's flush) stays short.
const READ_BUDGET: u64 = 64 << 20;
/// Polls a file that left the glob (renamed away or deleted) is still read through its open
/// handle, for the lines its writer adds before reopening.
const GONE_GRACE_POLLS: u32 = 20;

/// Where a source is in one file: what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// The path the file was last seen at (the `file` of its kept lines).
    pub path: String,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Bytes of the file's beginning covered by `fp_crc` (0: empty file).
    pub fp_len: u32,
    /// CRC-32 of the first `fp_len` bytes.
    pub fp_crc: u32,
    /// The start of the first line not counted yet.
    pub offset: u64,
    /// True inside a line that was cut at [`MAX_LINE`]: the bytes up to its newline are
    /// skipped.
    #[serde(default)]
    pub skipping: bool,
}

/// One followed file.
struct Tracked {
    /// Its position, as stored.
    pos: FilePosition,
    /// The open handle, kept across polls so a renamed or deleted file is still read.
    file: Option<File>,
    /// Bytes after `pos.offset` not ending in a newline yet (never more than [`MAX_LINE`]).
    partial: Vec<u8>,
    /// Consecutive polls in which the glob did not list this file.
    gone_polls: u32,
}

impl Tracked {
    /// Where the next read starts.
    fn read_at(&self) -> u64 {
        self.pos.offset + self.partial.len() as u64
    }

    fn restart_from_zero(&mut self) {
        self.pos.offset = 0;
        self.pos.skipping = false;
        self.pos.fp_len = 0;
        self.pos.fp_crc = 0;
        self.partial.clear();
    }
}

/// What one poll of a file source found.
#[derive(Debug, Default)]
pub struct PollReport {
    /// Why the source (or one of its files) cannot be read; empty when all is well.
    pub problems: Vec<String>,
    /// Files read again from their beginning because they were truncated or replaced.
    pub truncations: u64,
    /// Lines cut at [`MAX_LINE`].
    pub cut_lines: u64,
    /// True when some file had more to read than the poll's budget.
    pub more: bool,
    /// Files followed after the poll.
    pub files: usize,
    /// Bytes in the followed files after what was read, at the end of the poll.
    pub behind: u64,
}

/// The files of one `[[log]] path` glob and where the source is in each.
pub struct FileSet {
    pattern: String,
    files: HashMap<(u64, u64), Tracked>,
    /// Positions read from the store, not yet matched with a file on disk.
    restored: Vec<FilePosition>,
    /// True until the first poll: files found then start at their end when `start_at_end`.
    first: bool,
    /// `start_at = end` for a source never run before, for the files of its first poll.
    start_at_end: bool,
    buf: Vec<u8>,
}

/// The literal directory a glob starts from: the longest prefix of path components without
/// a wildcard.
pub fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(pattern)
        .parent()
        .into_iter()
        .flat_map(Path::components)
    {
        let s = comp.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        base.push(comp);
    }
    base
}

fn fingerprint(file: &File, size: u64) -> io::Result<(u32, u32)> {
    let len = size.min(FINGERPRINT_BYTES as u64) as usize;
    let mut b = [0u8; FINGERPRINT_BYTES];
    let n = read_full_at(file, &mut b[..len], 0)?;
    Ok((n as u32, crc32fast::hash(&b[..n])))
}

fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a non-regular file is, for the reason shown.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

impl FileSet {
    /// A source over `pattern`, resuming at `restored` positions. `start_at_end` places the
    /// files found at the first poll at their end (a source never run, with `start_at = end`);
    /// files found later are read from their beginning.
    pub fn new(pattern: &str, restored: Vec<FilePosition>, start_at_end: bool) -> FileSet {
        FileSet {
            pattern: pattern.to_string(),
            first: true,
            files: HashMap::new(),
            restored,
            start_at_end,
            buf: vec![0; READ_CHUNK],
        }
    }

    /// The positions to store: the start of the first line not counted in each file.
    pub fn positions(&self) -> Vec<FilePosition> {
        let mut v: Vec<FilePosition> = self.files.values().map(|t| t.pos.clone()).collect();
        // Positions restored but whose files are not back yet (a directory unmounted for a
        // moment) are kept, so their lines are not read twice when they come back.
        v.extend(self.restored.iter().cloned());
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Lists the glob, follows every file, and hands each complete line to `line` (with the
    /// path of its file) and the bytes consumed to `bytes`.
    pub fn poll(
        &mut self,
        mut line: impl FnMut(&[u8], &str),
        mut bytes: impl FnMut(u64),
    ) -> PollReport {
        let mut report = PollReport::default();
        let base = glob_base(&self.pattern);
        // Whether every file under the glob was listed and identified: only then is a stored
        // position that matched none of them known to be of a file gone for good.
        let mut listed_all = true;
        match std::fs::metadata(&base) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => report
                .problems
                .push(format!("directory {} does not exist", base.display())),
            Err(e) => report
                .problems
                .push(format!("directory {}: {e}", base.display())),
            Ok(m) if !m.is_dir() => report
                .problems
                .push(format!("{} is not a directory", base.display())),
            Ok(_) => {}
        }
        listed_all &= report.problems.is_empty();
        let mut seen: Vec<(u64, u64)> = Vec::new();
        let paths = match glob::glob(&self.pattern) {
            Ok(p) => p,
            Err(e) => {
                report.problems.push(format!("invalid glob: {}", e.msg));
                return report;
            }
        };
        let first = std::mem::replace(&mut self.first, false);
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    listed_all = false;
                    report
                        .problems
                        .push(format!("{}: {}", e.path().display(), e.error()));
                    continue;
                }
            };
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    listed_all = false;
                    report.problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if !meta.file_type().is_file() {
                report.problems.push(format!(
                    "{} is {}, not a file: not followed",
                    path.display(),
                    kind_of(meta.file_type())
                ));
                continue;
            }
            let id = (meta.dev(), meta.ino());
            seen.push(id);
            let shown = path.display().to_string();
            if let Some(t) = self.files.get_mut(&id) {
                t.gone_polls = 0;
                if t.pos.path != shown {
                    t.pos.path = shown;
                }
                continue;
            }
            // A file not followed yet: a position stored by the last run, or a new file.
            let pos = match self.restored.iter().position(|p| (p.dev, p.ino) == id) {
                Some(i) => {
                    let mut p = self.restored.swap_remove(i);
                    p.path = shown;
                    p
                }
                None => {
                    let offset = if first && self.start_at_end {
                        meta.len()
                    } else {
                        0
                    };
                    FilePosition {
                        path: shown,
                        dev: id.0,
                        ino: id.1,
                        fp_len: 0,
                        fp_crc: 0,
                        offset,
                        skipping: false,
                    }
                }
            };
            self.files.insert(
                id,
                Tracked {
                    pos,
                    file: None,
                    partial: Vec::new(),
                    gone_polls: 0,
                },
            );
        }
        let mut drop_ids = Vec::new();
        for (id, t) in self.files.iter_mut() {
            let listed = seen.contains(id);
            if !listed {
                t.gone_polls += 1;
                if t.file.is_none() || t.gone_polls > GONE_GRACE_POLLS {
                    drop_ids.push(*id);
                    if t.file.is_none() {
                        continue;
                    }
                }
            }
            match read_file(t, &mut self.buf, &mut line, &mut bytes, &mut report) {
                Ok(grew) => {
                    if grew && !listed {
                        // A rotated file still written to: keep reading it a while longer.
                        t.gone_polls = 0;
                        drop_ids.retain(|d| d != id);
                    }
                }
                Err(e) => {
                    if listed {
                        report.problems.push(format!("{}: {e}", t.pos.path));
                    }
                    t.file = None;
                }
            }
        }
        for id in drop_ids {
            self.files.remove(&id);
        }
        report.files = self.files.len();
        if listed_all {
            // The directory is there and every file in it identified: stored positions of
            // files no longer in it are of files deleted while the source was stopped. (A FIFO
            // or a file that cannot be read beside them does not keep them.)
            self.restored.clear();
        }
        report
    }
}

/// Reads what `t`'s file has after its position; returns whether anything was read.
fn read_file(
    t: &mut Tracked,
    buf: &mut [u8],
    line: &mut impl FnMut(&[u8], &str),
    bytes: &mut impl FnMut(u64),
    report: &mut PollReport,
) -> io::Result<bool> {
    if t.file.is_none() {
        let f = File::open(&t.pos.path)?;
        let m = f.metadata()?;
        if (m.dev(), m.ino()) != (t.pos.dev, t.pos.ino) {
            // Replaced between the listing and the open: the next poll sees the new one.
            return Ok(false);
        }
        t.file = Some(f);
    }
    let Some(file) = t.file.take() else {
        return Ok(false);
    };
    let r = read_open(t, &file, buf, line, bytes, report);
    t.file = Some(file);
    r
}

/// [`read_file`] on the file's open handle.
fn read_open(
    t: &mut Tracked,
    file: &File,
    buf: &mut [u8],
    line: &mut impl FnMut(&[u8], &str),
    bytes: &mut impl FnMut(u64),
    report: &mut PollReport,
) -> io::Result<bool> {
    let size = file.metadata()?.len();
    let mut replaced = size < t.read_at();
    if !replaced && t.pos.fp_len > 0 {
        let (len, crc) = fingerprint(file, u64::from(t.pos.fp_len))?;
        replaced = len != t.pos.fp_len || crc != t.pos.fp_crc;
    }
    if replaced {
        // copytruncate, or the same inode holding other content: start again at its beginning.
        t.restart_from_zero();
        report.truncations += 1;
    }
    if (t.pos.fp_len as usize) < FINGERPRINT_BYTES && size > u64::from(t.pos.fp_len) {
        (t.pos.fp_len, t.pos.fp_crc) = fingerprint(file, size)?;
    }
    let start = t.read_at();
    let mut at = start;
    while at < size {
        if at - start >= READ_BUDGET {
            report.more = true;
            break;
        }
        let want = ((size - at) as usize).min(buf.len());
        let n = read_full_at(file, &mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        consume(t, &buf[..n], at, line, bytes, report);
        at += n as u64;
    }
    // What the writer added meanwhile counts too: the lag as it is when the poll ends.
    if let Ok(m) = file.metadata() {
        report.behind += m.len().saturating_sub(t.read_at());
    }
    Ok(at > start)
}

/// Splits `chunk` (read at file offset `at`) into lines, completing the held partial line.
fn consume(
    t: &mut Tracked,
    chunk: &[u8],
    at: u64,
    line: &mut impl FnMut(&[u8], &str),
    bytes: &mut impl FnMut(u64),
    report: &mut PollReport,
) {
    let mut rest = chunk;
    let mut rest_at = at;
    while !rest.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let seg = &rest[..i];
                if t.pos.skipping {
                    t.pos.skipping = false;
                } else if t.partial.is_empty() {
                    if seg.len() > MAX_LINE {
                        report.cut_lines += 1;
                    }
                    line(&seg[..seg.len().min(MAX_LINE)], &t.pos.path);
                } else {
                    let room = MAX_LINE - t.partial.len();
                    if seg.len() > room {
                        report.cut_lines += 1;
                    }
                    t.partial.extend_from_slice(&seg[..seg.len().min(room)]);
                    line(&t.partial, &t.pos.path);
                    t.partial.clear();
                }
                let end = rest_at + i as u64 + 1;
                bytes(end - t.pos.offset);
                t.pos.offset = end;
                rest = &rest[i + 1..];
                rest_at = end;
            }
            None => {
                let end = rest_at + rest.len() as u64;
                if t.pos.skipping {
                    bytes(end - t.pos.offset);
                    t.pos.offset = end;
                } else if t.partial.len() + rest.len() > MAX_LINE {
                    // A runaway line: cut, counted now, and the rest of it skipped, so it
                    // costs at most MAX_LINE bytes of memory however long it gets.
                    let room = MAX_LINE - t.partial.len();
                    t.partial.extend_from_slice(&rest[..room]);
                    line(&t.partial, &t.pos.path);
                    t.partial.clear();
                    report.cut_lines += 1;
                    t.pos.skipping = true;
                    bytes(end - t.pos.offset);
                    t.pos.offset = end;
                } else {
                    t.partial.extend_from_slice(rest);
                }
                rest = &[];
            }
        }
    }
}

#[cfg(test)]
mod tests;
