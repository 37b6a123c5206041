//! journald sources: `journalctl --follow --output=json` for one unit, resumed after the
//! cursor of the last entry counted.
//!
//! `journalctl` runs as a child process (the journal's file format is systemd's to read); a
//! thread reads its output into a bounded channel, which the source drains at each poll, so a
//! burst of entries waits in the pipe instead of in memory. A missing `journalctl`, a journal
//! that cannot be read, or a `journalctl` that exits is a reason on the source, and it is
//! started again [`RESTART_AFTER`] later.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shell that runs [`WATCHDOG`].
const SH: &str = "/bin/sh";
/// Runs `journalctl` (its path and arguments are the script's arguments) and stops it when
/// the daemon is gone, even after a SIGKILL: a `journalctl` older than systemd 242 goes on
/// following a quiet unit once its reader is gone, and only a write would tell it. The
/// script's stdin is a pipe the daemon holds and never writes; a background reader of it
/// sees its end when the daemon exits (or drops the source) and stops `journalctl`. The
/// script ends with `journalctl`'s status, and holds neither its stdout nor the pipe, so the
/// daemon still sees `journalctl`'s output end when it exits. (No `prctl(PR_SET_PDEATHSIG)`:
/// the crate has no unsafe code for a `pre_exec`, and `setpriv --pdeathsig` needs `capset`,
/// which the systemd unit's system call filter refuses.)
const WATCHDOG: &str = r#"exec 3<&0 </dev/null
"$@" 3<&- &
j=$!
exec >&-
{ read -r _ <&3; kill "$j" 2>/dev/null; } &
w=$!
exec 3<&-
wait "$j"
s=$?
kill "$w" 2>/dev/null
exit "$s"
"#;

/// How long after `journalctl` failed or exited it is started again.
pub const RESTART_AFTER: Duration = Duration::from_secs(5);
/// Entries waiting between the reading thread and the source: with messages cut at
/// [`super::file::MAX_LINE`], at most 32 MiB however fast the journal grows.
const CHANNEL: usize = 512;
/// Entries handed to the source per poll at most.
const POLL_BUDGET: usize = 50_000;
/// Largest JSON entry read; a longer one is skipped whole.
const MAX_ENTRY: u64 = 1 << 20;

/// One journal entry, as a source counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// `__CURSOR`: where to resume after it.
    pub cursor: String,
    /// `MESSAGE`, as bytes (journald keeps binary messages as a byte array).
    pub message: Vec<u8>,
    /// `_SYSTEMD_UNIT` (or the unit followed).
    pub unit: String,
    /// `__REALTIME_TIMESTAMP` in ms.
    pub t: Option<i64>,
}

/// What the reading thread sends.
enum Msg {
    Entry(JournalEntry),
    /// `journalctl` closed its output (exited).
    Eof,
}

struct Running {
    child: Child,
    /// The watchdog's stdin: closed when this is dropped or the daemon dies.
    stdin: Option<std::process::ChildStdin>,
    rx: Receiver<Msg>,
    /// The last lines `journalctl` wrote to stderr.
    stderr: Arc<Mutex<String>>,
}

/// A journald source's reader.
pub struct Journal {
    unit: String,
    directory: Option<PathBuf>,
    /// Resume after this entry.
    cursor: Option<String>,
    /// With no cursor: start at the entries after this time (ms) — the end of the journal when
    /// the source first started with `start_at = end`.
    since_ms: Option<i64>,
    running: Option<Running>,
    next_start: Instant,
    problem: Option<String>,
    /// The program run (`journalctl`).
    program: String,
}

impl Journal {
    /// A reader of `unit` (in `directory` when set, else the system journal), resuming after
    /// `cursor`, or after `since_ms` when there is no cursor, or at the journal's beginning.
    pub fn new(
        unit: String,
        directory: Option<PathBuf>,
        cursor: Option<String>,
        since_ms: Option<i64>,
    ) -> Journal {
        Journal {
            unit,
            directory,
            cursor,
            since_ms,
            running: None,
            next_start: Instant::now(),
            problem: None,
            program: "journalctl".to_string(),
        }
    }

    /// The start time in force when there is no cursor, for the source's record.
    pub fn since_ms(&self) -> Option<i64> {
        self.since_ms
    }

    /// The arguments `journalctl` runs with.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--follow".to_string(),
            "--output=json".to_string(),
            "--all".to_string(),
            "--no-tail".to_string(),
            format!("--unit={}", self.unit),
        ];
        if let Some(d) = &self.directory {
            a.push(format!("--directory={}", d.display()));
        }
        match (&self.cursor, self.since_ms) {
            (Some(c), _) => a.push(format!("--after-cursor={c}")),
            (None, Some(ms)) => a.push(format!("--since=@{}", ms.div_euclid(1000))),
            (None, None) => {}
        }
        a
    }

    /// The command that runs `journalctl`: through [`WATCHDOG`] when `/bin/sh` is there and
    /// `journalctl` is on the `PATH`, else `journalctl` itself (stopped on a clean exit only).
    fn command(&self) -> Command {
        let mut cmd = match on_path(&self.program) {
            Some(program) if std::path::Path::new(SH).exists() => {
                let mut c = Command::new(SH);
                c.args(["-c", WATCHDOG, "journalctl"]).arg(program);
                c
            }
            _ => Command::new(&self.program),
        };
        cmd.args(self.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn start(&mut self) -> std::io::Result<Running> {
        let mut child = self.command().spawn()?;
        // Held, never written: its end is the watchdog's signal that the daemon is gone.
        let stdin = child.stdin.take();
        let (tx, rx) = sync_channel(CHANNEL);
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let unit = self.unit.clone();
            std::thread::Builder::new()
                .name("journalctl-out".into())
                .spawn(move || read_entries(out, &unit, &tx))?;
        }
        if let Some(err) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::Builder::new()
                .name("journalctl-err".into())
                .spawn(move || {
                    for line in BufReader::new(err.take(1 << 20)).lines() {
                        let Ok(line) = line else { break };
                        let mut s = keep.lock().unwrap_or_else(|p| p.into_inner());
                        s.clear();
                        s.push_str(line.trim());
                    }
                })?;
        }
        Ok(Running {
            child,
            stdin,
            rx,
            stderr,
        })
    }

    /// Hands the new entries to `each`; returns the source's problems and whether more is
    /// waiting.
    pub fn poll(&mut self, mut each: impl FnMut(JournalEntry)) -> (Vec<String>, bool) {
        if self.running.is_none() && Instant::now() >= self.next_start {
            match self.start() {
                Ok(r) => {
                    self.running = Some(r);
                    self.problem = None;
                }
                Err(e) => {
                    self.problem = Some(format!("cannot run {}: {e}", self.program));
                    self.next_start = Instant::now() + RESTART_AFTER;
                }
            }
        }
        let mut more = false;
        if let Some(r) = &mut self.running {
            let mut exited = false;
            for n in 0.. {
                if n == POLL_BUDGET {
                    more = true;
                    break;
                }
                match r.rx.try_recv() {
                    Ok(Msg::Entry(e)) => {
                        self.cursor = Some(e.cursor.clone());
                        each(e);
                    }
                    Ok(Msg::Eof) | Err(TryRecvError::Disconnected) => {
                        exited = true;
                        break;
                    }
                    // A full channel means the reader waits on us: keep draining while it
                    // refills, for the rest of the poll's budget.
                    Err(TryRecvError::Empty) if n >= CHANNEL => {
                        match r.rx.recv_timeout(Duration::from_millis(20)) {
                            Ok(Msg::Entry(e)) => {
                                self.cursor = Some(e.cursor.clone());
                                each(e);
                            }
                            Ok(Msg::Eof) => {
                                exited = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            let err = r.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if exited {
                let status = r.child.wait().map(|s| s.to_string()).unwrap_or_default();
                self.problem = Some(match err.is_empty() {
                    true => format!("{} exited ({status})", self.program),
                    false => format!("{} exited ({status}): {err}", self.program),
                });
                self.running = None;
                self.next_start = Instant::now() + RESTART_AFTER;
            } else if unreadable(&err) {
                self.problem = Some(format!("{}: {err}", self.program));
            }
        }
        (self.problem.iter().cloned().collect(), more)
    }
}

/// Whether `journalctl`'s stderr says the journal cannot be read (it goes on following, with
/// nothing to show).
fn unreadable(err: &str) -> bool {
    let e = err.to_ascii_lowercase();
    e.contains("no journal files") || e.contains("permission") || e.contains("failed")
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            // Our own child: its watchdog stops `journalctl` once its stdin closes; then the
            // child itself is stopped and reaped.
            drop(r.stdin.take());
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Where `program` is on the `PATH` (as the shell would find it), if it is; a name with a
/// `/` is taken as it is.
fn on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
}

/// Reads `journalctl --output=json` lines into entries until its output closes.
fn read_entries(out: impl Read, unit: &str, tx: &SyncSender<Msg>) {
    let mut r = BufReader::with_capacity(64 * 1024, out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut r).take(MAX_ENTRY).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && n as u64 == MAX_ENTRY {
            // Too long to be worth holding: skip to its end.
            let mut skip = Vec::new();
            loop {
                skip.clear();
                match (&mut r).take(MAX_ENTRY).read_until(b'\n', &mut skip) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if skip.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            continue;
        }
        if let Some(e) = parse_entry(&buf, unit)
            && tx.send(Msg::Entry(e)).is_err()
        {
            return;
        }
    }
    let _ = tx.send(Msg::Eof);
}

/// One `--output=json` line as an entry; `None` without a cursor.
pub fn parse_entry(line: &[u8], unit: &str) -> Option<JournalEntry> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let cursor = v.get("__CURSOR")?.as_str()?.to_string();
    let message = match v.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => Vec::new(),
    };
    let mut message = message;
    // A message longer than a file line would be is cut as one is.
    message.truncate(super::file::MAX_LINE);
    let t = v
        .get("__REALTIME_TIMESTAMP")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<i64>().ok())
        .map(|us| us / 1000);
    let unit = v
        .get("_SYSTEMD_UNIT")
        .and_then(|u| u.as_str())
        .unwrap_or(unit)
        .to_string();
    Some(JournalEntry {
        cursor,
        message,
        unit,
        t,
    })
}

#[cfg(test)]
mod tests;
