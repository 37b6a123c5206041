//! The async runtime and how CPU-bound work stays off it.
//!
//! The daemon's async work is small and I/O-bound: a probe is a connect, a write, a read and a
//! few microseconds of checks; a scrape of a typical page is a read and 0.1 ms of parsing. One
//! worker thread does all of it: two workers wake each other up for every task that moves. Work that takes milliseconds — a round of
//! rules, a gate's evaluation, a page of megabytes, `/metrics` with thousands of probe
//! series, an fsync — goes through [`blocking`], which hands the worker to another thread while
//! it runs, so that probes keep their timing. `TOKIO_WORKER_THREADS` overrides the number of
//! workers.

/// The runtime of every command: one worker thread unless `TOKIO_WORKER_THREADS` says
/// otherwise, with blocking threads kept a minute (longer than the usual evaluation interval,
/// so that a round of rules does not start a thread each time).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        b.worker_threads(1);
    }
    b.enable_all()
        .thread_name("postflight")
        .thread_keep_alive(std::time::Duration::from_secs(60))
        .build()
}

/// The instant every schedule counts its phase from (the first call's time). Probe start slots
/// and scrape offsets are offsets from it on one grid of slots (`probe::spread_offset`), so a
/// scrape due in a slot starts in the same timer wake-up as that slot's probes instead of one
/// of its own, and a reload keeps every phase.
pub fn epoch() -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    tokio::time::Instant::from_std(*EPOCH.get_or_init(std::time::Instant::now))
}

/// The first instant at or after `now` that is `offset` plus a whole number of `interval`s
/// after [`epoch`]: where a schedule with that phase starts.
pub fn next_on_grid(
    offset: std::time::Duration,
    interval: std::time::Duration,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    let first = epoch() + offset;
    if first >= now || interval.is_zero() {
        return first.max(now);
    }
    let behind = (now - first).as_nanos();
    let step = interval.as_nanos();
    let k = behind.div_ceil(step);
    let ahead = u64::try_from(k * step).unwrap_or(u64::MAX);
    first + std::time::Duration::from_nanos(ahead)
}

/// What woke an actor's loop (see [`next_wake`]).
pub enum Wake<M> {
    /// A message from one of its handles.
    Message(M),
    /// Its deadline passed, or its heartbeat interval ticked.
    Timer,
    /// Shutdown, or every handle is gone.
    Stop,
}

/// Waits for what an actor (the dispatcher, the gate engine) reacts to: a message, its next
/// deadline (`None`: none), a tick of `beat` (so that its heartbeat shows it alive while
/// idle), or shutdown.
pub async fn next_wake<M>(
    rx: &mut tokio::sync::mpsc::Receiver<M>,
    deadline: Option<tokio::time::Instant>,
    beat: &mut tokio::time::Interval,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Wake<M> {
    let sleep = async {
        match deadline {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => Wake::Stop,
        m = rx.recv() => m.map_or(Wake::Stop, Wake::Message),
        _ = sleep => Wake::Timer,
        _ = beat.tick() => Wake::Timer,
    }
}

/// Waits for the next tick of a periodic loop's `interval`: true at the tick, false at
/// shutdown, when the loop ends (`while rt::ticked(..).await { .. }`).
pub async fn ticked(
    interval: &mut tokio::time::Interval,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = interval.tick() => true,
    }
}

/// Asks an actor (the dispatcher, the gate engine, the reload loop) a question: sends the
/// request `make` builds around a reply channel and waits for the answer. `None` when the actor
/// stopped before answering, which each handle turns into its own "stopped" answer.
pub async fn ask<M, R>(
    tx: &tokio::sync::mpsc::Sender<M>,
    make: impl FnOnce(tokio::sync::oneshot::Sender<R>) -> M,
) -> Option<R> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(make(reply)).await.ok()?;
    answer.await.ok()
}

/// Runs `f`, which may take milliseconds (CPU or a blocking write), without holding up the
/// tasks of the runtime's worker: on a multi-thread runtime the worker is handed to another
/// thread for the duration (`tokio::task::block_in_place`); elsewhere (a current-thread runtime
/// in tests, a plain thread) `f` just runs.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

thread_local! {
    /// Depth of [`contained`] calls on this thread.
    static CONTAINED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `f`, catching a panic as a value: for the few places where a panic is an expected
/// answer (a library that panics on damaged input, a query) rather than a broken component.
/// The daemon's panic hook ([`exit_on_panic`]) lets these through.
pub fn contained<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CONTAINED.with(|c| c.set(c.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(c.get() - 1));
    r
}

/// The exit code of a daemon that stopped on a panic (BSD's `EX_SOFTWARE`): not 0 or 2, so
/// systemd's `Restart=on-failure` restarts it.
pub const PANIC_EXIT_CODE: i32 = 70;

/// Makes every panic outside [`contained`] end the process with [`PANIC_EXIT_CODE`], after
/// logging it: a component whose task panicked would otherwise leave a dead loop behind a
/// watchdog the other loops keep fed. State that decides a page is durable before it is
/// acted on, so a restart resumes where the process stopped.
pub fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.with(|c| c.get()) > 0 {
            tracing::warn!(panic = %info, "contained panic");
            return;
        }
        tracing::error!(panic = %info, "a component panicked; exiting with {PANIC_EXIT_CODE} so that the service manager restarts postflight");
        default(info);
        std::process::exit(PANIC_EXIT_CODE);
    }));
}

#[cfg(test)]
mod tests;
