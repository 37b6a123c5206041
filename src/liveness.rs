//! Liveness: every main loop holds a [`Heartbeat`] and beats once per iteration; the daemon's
//! watchdog asks [`Liveness::wedged`] before telling systemd the process is alive, so a wedged
//! loop stops the pings and systemd restarts the service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

struct Beat {
    name: String,
    max_silence: Duration,
    last: AtomicU64,
    retired: AtomicBool,
}

/// The registry of loop heartbeats.
#[derive(Clone)]
pub struct Liveness {
    origin: Instant,
    beats: Arc<Mutex<Vec<Arc<Beat>>>>,
}

/// One loop's heartbeat. Dropping it retires it (a loop that ends cleanly is not "wedged").
pub struct Heartbeat {
    origin: Instant,
    beat: Arc<Beat>,
    /// Debug builds only: the loop panics at its first beat, so that tests can see what a
    /// panicking component does to the process (`POSTFLIGHT_PANIC_IN=<loop name>`).
    #[cfg(debug_assertions)]
    panic_on_beat: bool,
}

impl Heartbeat {
    /// Records that the loop made progress now.
    pub fn beat(&self) {
        #[cfg(debug_assertions)]
        if self.panic_on_beat {
            panic!(
                "POSTFLIGHT_PANIC_IN={}: a panic provoked for a test",
                self.beat.name
            );
        }
        self.beat
            .last
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.beat.retired.store(true, Ordering::Relaxed);
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// An empty registry.
    pub fn new() -> Self {
        Liveness {
            origin: Instant::now(),
            beats: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Registers a loop that promises to beat at least every `max_silence`.
    pub fn register(&self, name: &str, max_silence: Duration) -> Heartbeat {
        let beat = Arc::new(Beat {
            name: name.to_string(),
            max_silence,
            last: AtomicU64::new(self.origin.elapsed().as_millis() as u64),
            retired: AtomicBool::new(false),
        });
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats.retain(|b| !b.retired.load(Ordering::Relaxed));
        beats.push(beat.clone());
        Heartbeat {
            origin: self.origin,
            #[cfg(debug_assertions)]
            panic_on_beat: std::env::var("POSTFLIGHT_PANIC_IN").is_ok_and(|n| n == beat.name),
            beat,
        }
    }

    /// The names of loops that have been silent for longer than they promised.
    pub fn wedged(&self) -> Vec<String> {
        let now = self.origin.elapsed().as_millis() as u64;
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats
            .iter()
            .filter(|b| !b.retired.load(Ordering::Relaxed))
            .filter(|b| {
                now.saturating_sub(b.last.load(Ordering::Relaxed))
                    > b.max_silence.as_millis() as u64
            })
            .map(|b| b.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
