//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): readiness, reloads, stopping,
//! and the watchdog, fed only while no loop is wedged (see [`crate::liveness`]).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;

/// Sends notify messages when `NOTIFY_SOCKET` is set; does nothing otherwise.
#[derive(Clone, Debug)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` from the environment.
    pub fn from_env() -> Self {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    /// `READY=1`: the store is open and the API listens.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready, NotifyState::Status("watching")]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, as `Type=notify-reload` expects.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// A free-form `STATUS=` line.
    pub fn status(&self, s: &str) {
        self.send(&[NotifyState::Status(s)]);
    }
}

/// How often to feed the watchdog: half of `WATCHDOG_USEC`, when systemd asked for it (and
/// `WATCHDOG_PID`, if set, is this process).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}

/// Feeds the watchdog every `every` while no loop is wedged.
pub async fn watchdog_loop(
    notifier: Notifier,
    liveness: Liveness,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    while crate::rt::ticked(&mut tick, &shutdown).await {
        let wedged = liveness.wedged();
        if wedged.is_empty() {
            notifier.watchdog();
            reported = false;
        } else if !reported {
            tracing::error!(loops = ?wedged, "loops stopped making progress; no longer feeding the systemd watchdog");
            reported = true;
        }
    }
}
