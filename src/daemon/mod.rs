//! The daemon's lifecycle: load the config, open the store, listen, start every component, turn
//! signals into reloads and a clean stop, and keep systemd informed.
//!
//! Every long-running component is an `async fn run(self, shutdown: CancellationToken)` spawned
//! into a `JoinSet`. Components that depend on the config form a *generation*: a reload starts a
//! new generation with the new config and cancels the old one, while the state they share (the
//! series head, alert states, the outbox) lives in [`Context`] and carries over.

pub mod systemd;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError};
use crate::telemetry::Telemetry;
use systemd::{Liveness, Notifier};

/// How long a clean stop may take before the daemon gives up on stragglers (systemd's default
/// stop timeout is 90 s; the contract is 10 s, with the store flushed).
pub const STOP_GRACE: Duration = Duration::from_secs(8);

/// Why `postflight run` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config is invalid: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened: exit 1.
    #[error("cannot open the store at {path}: {reason}")]
    Store {
        /// The store directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The listen address is taken or not allowed: exit 1.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `server.listen`.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    /// The process exit code for this error (SPEC §1).
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// A request to reload the config, from SIGHUP or `POST /-/reload`.
pub struct ReloadRequest {
    /// Where the outcome goes (None for SIGHUP).
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// State shared by the API and the components. Each piece has one owner; this struct only
/// hands out the handles.
pub struct Context {
    /// The config in force. Replaced whole on a successful reload.
    config: RwLock<Arc<Config>>,
    /// Where the config is read from on reload.
    pub config_path: PathBuf,
    /// The daemon's own metrics.
    pub telemetry: Arc<Telemetry>,
    /// True once the store is open and the config loaded (`/readyz`).
    pub ready: AtomicBool,
    /// Asks the reload loop for a reload.
    pub reload_tx: mpsc::Sender<ReloadRequest>,
    /// Loop heartbeats for the systemd watchdog.
    pub liveness: Liveness,
}

impl Context {
    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_config(&self, c: Arc<Config>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.reload_tx
            .send(ReloadRequest { reply: Some(tx) })
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the daemon is shutting down".to_string())?
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
    let config = Arc::new(config::load_file(&config_path)?);
    for w in &config.warnings {
        warn!(warning = %w, "config");
    }
    let notifier = Notifier::from_env();
    let telemetry = Telemetry::new();

    open_store(&config)?;

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.server.listen,
            source,
        })?;
    info!(listen = %config.server.listen, config = %config_path.display(), "postflight started");

    let (reload_tx, reload_rx) = mpsc::channel(4);
    let ctx = Arc::new(Context {
        config: RwLock::new(config.clone()),
        config_path,
        telemetry: telemetry.clone(),
        ready: AtomicBool::new(false),
        reload_tx,
        liveness: Liveness::new(),
    });
    telemetry.config_last_reload_successful.set(1);
    telemetry
        .config_last_reload_success_timestamp
        .set(unix_now());

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(crate::api::serve(listener, ctx.clone(), shutdown.clone()));
    if let Some(every) = systemd::watchdog_interval() {
        tasks.spawn(systemd::watchdog_loop(
            notifier.clone(),
            ctx.liveness.clone(),
            every,
            shutdown.clone(),
        ));
    }
    let engines = Engines::start(&ctx, &config, &shutdown);
    tasks.spawn(reload_loop(
        ctx.clone(),
        reload_rx,
        engines,
        notifier.clone(),
        shutdown.clone(),
    ));

    ctx.ready.store(true, Ordering::SeqCst);
    notifier.ready();

    wait_for_stop_signal(&ctx).await;
    info!("stopping");
    notifier.stopping();
    shutdown.cancel();
    let joined = tokio::time::timeout(STOP_GRACE, async {
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r
                && e.is_panic()
            {
                error!(error = %e, "a component panicked");
            }
        }
    })
    .await;
    if joined.is_err() {
        warn!(grace = ?STOP_GRACE, "components did not stop within the grace period; stopping anyway");
        tasks.abort_all();
    }
    flush_store();
    info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; SIGHUP asks for a reload and keeps waiting.
async fn wait_for_stop_signal(ctx: &Arc<Context>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers the daemon could never stop cleanly; Ctrl-C still works.
        error!("cannot install signal handlers; only Ctrl-C will stop the daemon");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                info!("SIGHUP: reloading the config");
                if ctx.reload_tx.try_send(ReloadRequest { reply: None }).is_err() {
                    warn!("a reload is already queued; SIGHUP ignored");
                }
            }
        }
    }
}

/// The components that follow the config: they restart as a group on reload.
struct Engines {
    token: CancellationToken,
    tasks: JoinSet<()>,
}

impl Engines {
    fn start(_ctx: &Arc<Context>, _config: &Arc<Config>, parent: &CancellationToken) -> Engines {
        let token = parent.child_token();
        let tasks = JoinSet::new();
        Engines { token, tasks }
    }

    async fn stop(mut self) {
        self.token.cancel();
        if tokio::time::timeout(STOP_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!("old components did not stop in time after a reload; aborting them");
            self.tasks.abort_all();
        }
    }
}

async fn reload_loop(
    ctx: Arc<Context>,
    mut rx: mpsc::Receiver<ReloadRequest>,
    mut engines: Engines,
    notifier: Notifier,
    shutdown: CancellationToken,
) {
    loop {
        let req = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = rx.recv() => match r { Some(r) => r, None => break },
        };
        notifier.reloading();
        let outcome = match config::load_file(&ctx.config_path) {
            Ok(new) => {
                let new = Arc::new(new);
                for w in &new.warnings {
                    warn!(warning = %w, "config");
                }
                engines.stop().await;
                ctx.set_config(new.clone());
                engines = Engines::start(&ctx, &new, &shutdown);
                ctx.telemetry.config_last_reload_successful.set(1);
                ctx.telemetry
                    .config_last_reload_success_timestamp
                    .set(unix_now());
                info!("config reloaded");
                Ok(())
            }
            Err(e) => {
                ctx.telemetry.config_last_reload_successful.set(0);
                error!(error = %e, "config reload failed; the previous config stays in force");
                Err(e.to_string())
            }
        };
        notifier.ready();
        if let Some(reply) = req.reply {
            let _ = reply.send(outcome);
        }
    }
    engines.stop().await;
}

/// Creates the store directory (the store engine opens it).
fn open_store(config: &Config) -> Result<(), DaemonError> {
    let path = &config.storage.path;
    std::fs::create_dir_all(path).map_err(|e| DaemonError::Store {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let probe = path.join(".postflight-write-test");
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| DaemonError::Store {
            path: path.clone(),
            reason: format!("not writable: {e}"),
        })
}

fn flush_store() {}

/// Seconds since the epoch, as a float.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
