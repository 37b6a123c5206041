//! The daemon's lifecycle: load the config, open the store, listen, start every component, turn
//! signals into reloads and a clean stop, and keep systemd informed.
//!
//! Every long-running component is an `async fn run(self, shutdown: CancellationToken)` spawned
//! into a `JoinSet`. Components that depend on the config form a *generation*: a reload starts a
//! new generation with the new config and cancels the old one, while the state they share (the
//! series head, alert states, the outbox) lives in [`Context`] and carries over.

pub mod probes;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::alert::{Alert, AlertState};
use crate::clock::Clock;
use crate::config::{self, Config, ConfigError, ReloadRequest, Reloader};
use crate::deploy::{GateEngine, GateHandle};
use crate::dispatch::outbox::Outbox;
use crate::dispatch::{Dispatcher, DispatcherHandle};
use crate::liveness::Liveness;
use crate::rules::engine::{RulesEngine, RulesState};
use crate::series::Labels;
use crate::series::head::Head;
use crate::store::Store;
use crate::targets::TargetsView;
use crate::telemetry::Telemetry;
use systemd::Notifier;

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

/// State shared by the API and the components. Each piece has one owner; this struct only
/// hands out the handles.
pub struct Context {
    /// The config in force. Replaced whole on a successful reload.
    config: config::Current,
    /// The config the process started with: what `server.listen`, `storage.path` and
    /// `storage.checkpoint_interval` stay at until a restart.
    started_with: Arc<Config>,
    /// Where the config is read from on reload.
    pub config_path: PathBuf,
    /// The daemon's own metrics.
    pub telemetry: Arc<Telemetry>,
    /// True once the store is open and the config loaded (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Asks the reload loop for a reload.
    pub reloader: Reloader,
    /// Loop heartbeats for the systemd watchdog.
    pub liveness: Liveness,
    /// The store: every byte on disk. Each component gets its part's handle; the daemon keeps
    /// the whole for the flush on stop, retention and the write check.
    pub store: Store,
    /// The dispatcher: routes, groups, silences.
    pub dispatch: DispatcherHandle,
    /// The durable outbox and its senders.
    pub outbox: Outbox,
    /// The gate engine: deployments and their verdicts.
    pub gates: GateHandle,
    /// Wall-clock time.
    pub clock: Clock,
    /// The in-memory series head.
    pub head: Arc<Head>,
    /// The head's batch writers (scrapes, ALERTS) and their caches.
    pub ingest: Arc<crate::ingest::Ingest>,
    /// Health of every scrape target and probe.
    pub targets: Arc<TargetsView>,
    /// Alerting rules and their alerts.
    pub rules: Arc<RulesState>,
    /// The ProbeFailed state of every probe.
    pub probe_states: Arc<crate::probe::ProbeStates>,
    /// TLS settings of HTTPS probes (system roots), built once.
    pub probe_tls: crate::probe::ProbeTls,
    /// The log sources' own figures (`postflight_log_*`), across reloads.
    pub log_stats: Arc<crate::logs::stats::LogStats>,
    /// Alerts about postflight itself (StoreCorrupted, StoreWriteFailing), by name.
    pub self_alerts: std::sync::Mutex<std::collections::BTreeMap<String, Alert>>,
}

impl Context {
    /// Every current alert: rules, probes and postflight's own.
    pub fn all_alerts(&self) -> Vec<Alert> {
        let mut a = self.rules.alerts();
        a.extend(probes::probe_alerts(
            &self.probe_states,
            &self.config().global.labels,
        ));
        a.extend(
            self.self_alerts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned(),
        );
        a
    }

    /// Raises (with a reason) or clears (None) one of postflight's own alerts, and tells the
    /// dispatcher.
    pub async fn set_self_alert(&self, name: &str, reason: Option<&str>) {
        let alerts: Vec<Alert> = {
            let mut m = self.self_alerts.lock().unwrap_or_else(|p| p.into_inner());
            match reason {
                Some(r) => {
                    if !m.contains_key(name) {
                        m.insert(name.to_string(), self_alert(&self.clock, name, r));
                    }
                }
                None => {
                    if m.remove(name).is_none() {
                        return;
                    }
                }
            }
            m.values().cloned().collect()
        };
        self.dispatch.update_alerts(SELF_SOURCE, alerts).await;
    }
}

impl Context {
    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> Result<(), DaemonError> {
    crate::rt::exit_on_panic();
    let config = Arc::new(config::load_file(&config_path)?);
    for w in &config.warnings {
        warn!(warning = %w, "config");
    }
    let notifier = Notifier::from_env();
    let telemetry = Telemetry::new();
    let clock = Clock::System;
    crate::install_crypto_provider();

    let opened = Store::open(&config.storage.path).map_err(|e| DaemonError::Store {
        path: config.storage.path.clone(),
        reason: error_chain(&e),
    })?;
    let store = opened.store;
    telemetry.store_up.set(1);
    let mut self_alerts = Vec::new();
    if let Some(moved) = &opened.recovered_from_corruption {
        error!(moved_to = %moved.display(), "the store was corrupt: it was moved aside and postflight starts with an empty store");
        self_alerts.push(self_alert(
            &clock,
            "StoreCorrupted",
            &format!("the store at {} was corrupt and was moved to {}; history before now is not available", config.storage.path.display(), moved.display()),
        ));
    }

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.server.listen,
            source,
        })?;
    info!(listen = %config.server.listen, config = %config_path.display(), "postflight started");

    let clients = crate::notify::Clients::new().map_err(|e| DaemonError::Store {
        path: config.storage.path.clone(),
        reason: format!("cannot build the HTTP client: {e}"),
    })?;
    let outbox = Outbox::new(
        store.state.clone(),
        config.clone(),
        clients,
        telemetry.clone(),
        clock.clone(),
    );
    let liveness = Liveness::new();
    let (dispatcher, dispatch) = Dispatcher::new(
        config.clone(),
        Arc::new((store.state.clone(), outbox.clone())),
        clock.clone(),
        telemetry.clone(),
        Some(liveness.register("dispatcher", Duration::from_secs(60))),
    );
    let head = Arc::new(Head::new());
    let window = crate::store::checkpoint::head_window(&config);
    {
        let (head, samples) = (head.clone(), store.samples.clone());
        let now = clock.now_ms();
        let loaded = tokio::task::spawn_blocking(move || {
            crate::store::checkpoint::load_head(&head, &samples, now, window)
        })
        .await
        .unwrap_or_default();
        info!(series = loaded.series, samples = loaded.samples, window = %crate::config::format_duration(window), "head loaded from the store");
    }
    let rules = Arc::new(RulesState::default());
    rules.configure(&config, Some(&store.state));
    let probe_states = Arc::new(crate::probe::ProbeStates::new());
    let log_stats = Arc::new(crate::logs::stats::LogStats::default());
    probes::restore(&probe_states, &store.state);
    let probe_tls = crate::probe::ProbeTls::system().unwrap_or_else(|e| {
        error!(error = %e, "cannot load the system's root certificates; HTTPS probes will fail");
        crate::probe::ProbeTls::with_roots(Vec::new()).expect("an empty root store always builds")
    });

    let (gate_engine, gates) = GateEngine::new(
        config.clone(),
        head.clone(),
        Arc::new(store.state.clone()),
        Arc::new((store.state.clone(), outbox.clone())),
        clock.clone(),
        telemetry.clone(),
        Some(liveness.register("gates", Duration::from_secs(60))),
    );

    let (reloader, reload_rx) = Reloader::channel();
    let ctx = Arc::new(Context {
        config: config::Current::new(config.clone()),
        started_with: config.clone(),
        config_path,
        telemetry: telemetry.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        reloader,
        liveness,
        store: store.clone(),
        dispatch: dispatch.clone(),
        outbox: outbox.clone(),
        gates,
        clock: clock.clone(),
        head: head.clone(),
        ingest: Arc::new(crate::ingest::Ingest::new(head.clone())),
        targets: Arc::new(TargetsView::default()),
        rules: rules.clone(),
        probe_states: probe_states.clone(),
        probe_tls,
        log_stats: log_stats.clone(),
        self_alerts: std::sync::Mutex::new(
            self_alerts
                .iter()
                .map(|a| (a.name().to_string(), a.clone()))
                .collect(),
        ),
    });
    telemetry.add_exposer(probe_states.clone());
    telemetry.add_exposer(log_stats);
    telemetry.config_last_reload_successful.set(1);
    telemetry
        .config_last_reload_success_timestamp
        .set(unix_now());

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(dispatcher.run(shutdown.clone()));
    tasks.spawn(gate_engine.run(shutdown.clone()));
    tasks.spawn(outbox.run(shutdown.clone()));
    let alerts_view: crate::alert::AlertsView = {
        let weak = Arc::downgrade(&ctx);
        Arc::new(move || weak.upgrade().map(|c| c.all_alerts()).unwrap_or_default())
    };
    tasks.spawn(crate::api::serve(
        listener,
        crate::api::Api {
            config: ctx.config.clone(),
            telemetry: telemetry.clone(),
            ready: crate::api::Ready(ctx.ready.clone()),
            reloader: ctx.reloader.clone(),
            alerts: alerts_view.clone(),
            targets: ctx.targets.clone(),
            head: head.clone(),
            clock: clock.clone(),
            probes: store.probes.clone(),
            state: store.state.clone(),
            dispatch: dispatch.clone(),
            gates: ctx.gates.clone(),
            samples: store.samples.clone(),
            queries: Default::default(),
            rules: ctx.rules.clone(),
            metadata: ctx.ingest.metadata().clone(),
        },
        ctx.liveness.clone(),
        shutdown.clone(),
    ));
    telemetry.add_exposer(Arc::new(crate::rules::engine::AlertsExposer {
        alerts: alerts_view,
    }));
    tasks.spawn(housekeeping(ctx.clone(), shutdown.clone()));
    tasks.spawn(store_watch(ctx.clone(), shutdown.clone()));
    tasks.spawn(probe_journal(ctx.clone(), shutdown.clone()));
    tasks.spawn(
        crate::store::checkpoint::Checkpointer {
            head: head.clone(),
            samples: store.samples.clone(),
            config: ctx.config.clone(),
            every: config.storage.checkpoint_interval.get(),
            clock: clock.clone(),
            telemetry: telemetry.clone(),
            heartbeat: ctx
                .liveness
                .register("checkpoint", Duration::from_secs(300)),
        }
        .run(shutdown.clone()),
    );
    if let Some(every) = systemd::watchdog_interval() {
        tasks.spawn(systemd::watchdog_loop(
            notifier.clone(),
            ctx.liveness.clone(),
            every,
            shutdown.clone(),
        ));
    }
    if !self_alerts.is_empty() {
        dispatch.update_alerts(SELF_SOURCE, self_alerts).await;
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
    match ctx.store.flush() {
        Ok(()) => info!("stopped; store flushed"),
        Err(e) => error!(error = %error_chain(&e), "stopped, but the final store flush failed"),
    }
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
                if !ctx.reloader.request() {
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
    fn start(ctx: &Arc<Context>, config: &Arc<Config>, parent: &CancellationToken) -> Engines {
        // Under `[global] shard`, this generation runs only its shard's probes, targets and logs.
        let sharded;
        let config = if config.global.shard.is_some() {
            sharded = Arc::new(config.for_shard());
            &sharded
        } else {
            config
        };
        let token = parent.child_token();
        let mut tasks = JoinSet::new();
        // Remote write first, so that its tap sees the generation's first samples.
        if !config.remote_write.is_empty() {
            match crate::notify::Clients::new() {
                Ok(clients) => {
                    if let Some(rw) = crate::remote::RemoteWrite::new(
                        config,
                        ctx.head.clone(),
                        &ctx.store,
                        clients.http().clone(),
                        ctx.clock.clone(),
                        ctx.telemetry.clone(),
                    ) {
                        tasks.spawn(rw.run(token.clone()));
                    }
                }
                Err(e) => error!(error = %e, "remote write cannot start"),
            }
        }
        let mut keys = crate::scrape::manager::target_keys(config);
        keys.extend(config.probes.iter().map(|p| probes::target_key(&p.name)));
        keys.extend(crate::logs::LogRunner::target_keys(config));
        ctx.targets.retain(&keys);
        crate::scrape::manager::register_targets(config, &ctx.targets);
        let scrape_every = config
            .jobs
            .iter()
            .map(|j| j.interval(&config.global))
            .max()
            .unwrap_or(Duration::ZERO);
        tasks.spawn(
            crate::scrape::manager::ScrapeManager {
                config: config.clone(),
                ingest: ctx.ingest.clone(),
                targets: ctx.targets.clone(),
                telemetry: ctx.telemetry.clone(),
                clock: ctx.clock.clone(),
                heartbeat: Arc::new(
                    ctx.liveness
                        .register("scrape", scrape_every * 3 + Duration::from_secs(60)),
                ),
                tls: ctx.probe_tls.clone(),
            }
            .run(token.clone()),
        );
        let sink = Arc::new(probes::DaemonProbeSink {
            head: ctx.head.clone(),
            state: ctx.store.state.clone(),
            probes: ctx.store.probes.clone(),
            targets: ctx.targets.clone(),
            telemetry: ctx.telemetry.clone(),
            dispatch: ctx.dispatch.clone(),
            states: ctx.probe_states.clone(),
            external_labels: config.global.labels.clone(),
            gates: ctx.gates.clone(),
            series: Default::default(),
        });
        for p in &config.probes {
            ctx.targets.register(
                &probes::target_key(&p.name),
                crate::targets::TargetHealth {
                    kind: "probe",
                    job: p.job.clone().unwrap_or_default(),
                    probe: Some(p.name.clone()),
                    log: None,
                    url: p.url.clone(),
                    health: "unknown",
                    last_error: String::new(),
                    last_run: None,
                    last_duration_seconds: 0.0,
                    samples: None,
                },
            );
        }
        let names: Vec<&str> = config.probes.iter().map(|p| p.name.as_str()).collect();
        let removed = ctx.probe_states.retain(&names);
        if !removed.is_empty() {
            info!(
                resolved = removed.len(),
                "probes removed from the config; their alerts resolve"
            );
        }
        // Every generation starts by telling the dispatcher what the probes hold (restored
        // after a restart, or trimmed by a reload).
        sink.publish();
        let probe_every = config
            .probes
            .iter()
            .map(|p| p.interval(&config.global))
            .max()
            .unwrap_or(Duration::ZERO);
        if !config.probes.is_empty() {
            tasks.spawn(
                crate::probe::ProbeRunner::new(
                    config.probes.clone(),
                    config.global.clone(),
                    ctx.probe_tls.clone(),
                    sink,
                    ctx.probe_states.clone(),
                    ctx.liveness
                        .register("probes", probe_every * 3 + Duration::from_secs(60)),
                    ctx.telemetry.clone(),
                )
                .run(token.clone()),
            );
        }
        // Also without sources: the runner first drops the records of removed ones.
        tasks.spawn(
            crate::logs::LogRunner {
                config: config.clone(),
                ingest: ctx.ingest.clone(),
                state: ctx.store.state.clone(),
                targets: ctx.targets.clone(),
                clock: ctx.clock.clone(),
                telemetry: ctx.telemetry.clone(),
                stats: ctx.log_stats.clone(),
            }
            .run(token.clone()),
        );
        let eval_every = config.global.evaluation_interval.get();
        tasks.spawn(
            RulesEngine {
                config: config.clone(),
                ingest: ctx.ingest.clone(),
                state: ctx.rules.clone(),
                store: ctx.store.state.clone(),
                dispatch: ctx.dispatch.clone(),
                telemetry: ctx.telemetry.clone(),
                clock: ctx.clock.clone(),
                heartbeat: ctx
                    .liveness
                    .register("rules", eval_every * 4 + Duration::from_secs(60)),
                targets: Some(ctx.targets.clone()),
                extra_alerts: Some({
                    let states = ctx.probe_states.clone();
                    let ext = config.global.labels.clone();
                    Arc::new(move || probes::probe_alerts(&states, &ext))
                }),
            }
            .run(token.clone()),
        );
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
                // Compared with the config the process started with: only a restart applies
                // these, and a reload that puts them back clears the warning.
                let pending = new.restart_required(&ctx.started_with);
                if !pending.is_empty() {
                    warn!(settings = ?pending, "these settings changed in the file and apply only after a restart; the running values stay in force");
                }
                ctx.telemetry
                    .config_restart_required
                    .set(i64::from(!pending.is_empty()));
                engines.stop().await;
                let old_window = crate::store::checkpoint::head_window(&ctx.config());
                ctx.config.set(new.clone());
                backfill_on_reload(&ctx, old_window, &new).await;
                ctx.rules.configure(&new, Some(&ctx.store.state));
                ctx.dispatch.reconfigure(new.clone()).await;
                ctx.outbox.reconfigure(new.clone());
                ctx.gates.reconfigure(new.clone()).await;
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

/// A reload that widened the head's window (a longer rule range, a new gate) loads the stored
/// history the wider window needs, before the new rules and gates start.
async fn backfill_on_reload(ctx: &Arc<Context>, old_window: Duration, new: &Config) {
    let new_window = crate::store::checkpoint::head_window(new);
    if new_window <= old_window {
        return;
    }
    let (head, samples, now) = (
        ctx.head.clone(),
        ctx.store.samples.clone(),
        ctx.clock.now_ms(),
    );
    let added = tokio::task::spawn_blocking(move || {
        crate::store::checkpoint::backfill_head(&head, &samples, now, old_window, new_window)
    })
    .await
    .unwrap_or_default();
    info!(
        window = %crate::config::format_duration(new_window),
        samples = added,
        "the head's window grew: stored history loaded"
    );
}

/// The alert source name of the daemon's own alerts (StoreCorrupted, StoreWriteFailing).
pub const SELF_SOURCE: &str = "postflight";

/// An alert about postflight itself.
fn self_alert(clock: &Clock, name: &str, reason: &str) -> Alert {
    let now = clock.now();
    Alert {
        labels: Labels::new([
            ("alertname", name),
            ("job", "postflight"),
            ("severity", "page"),
        ]),
        annotations: [
            ("summary".to_string(), reason.to_string()),
            ("reason".to_string(), reason.to_string()),
        ]
        .into(),
        state: AlertState::Firing,
        active_at: now,
        fired_at: Some(now),
        resolved_at: None,
        value: 1.0,
        generator_url: String::new(),
    }
}

/// A store error with its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// Checks every 15 s that the store takes a durable write; while it does not (disk full,
/// I/O errors), `StoreWriteFailing` fires and `postflight_store_up` is 0. Probes and rules go
/// on from memory meanwhile.
async fn store_watch(ctx: Arc<Context>, shutdown: CancellationToken) {
    let heartbeat = ctx
        .liveness
        .register("store-watch", Duration::from_secs(120));
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    while crate::rt::ticked(&mut tick, &shutdown).await {
        heartbeat.beat();
        let store = ctx.store.clone();
        let now = ctx.clock.now_ms();
        let r = tokio::task::spawn_blocking(move || {
            store.write_check("postflight.write_check", &now.to_be_bytes())
        })
        .await;
        match r {
            Ok(Ok(())) => {
                ctx.telemetry.store_up.set(1);
                ctx.set_self_alert("StoreWriteFailing", None).await;
                // The size follows every checkpoint, not only the prune every 5 minutes.
                let store = ctx.store.clone();
                if let Ok(Ok(size)) =
                    tokio::task::spawn_blocking(move || store.size_on_disk()).await
                {
                    ctx.telemetry.store_size_bytes.set(size as i64);
                }
            }
            Ok(Err(e)) => {
                let reason = format!(
                    "the store at {} does not accept writes: {}",
                    ctx.config().storage.path.display(),
                    error_chain(&e)
                );
                error!(error = %reason, "store write check failed; alerting and probing go on from memory");
                ctx.telemetry.store_up.set(0);
                ctx.telemetry
                    .store_write_failures
                    .with_label_values(&["write_check"])
                    .inc();
                ctx.set_self_alert("StoreWriteFailing", Some(&reason)).await;
            }
            Err(e) => warn!(error = %e, "store write check task failed"),
        }
    }
}

/// Every half second, the probe results of the last half second go to the probe log's journal
/// (one record for all of them; see [`crate::store::ProbeLog::write_probe_journal`]), and once
/// the oldest buffered result is a minute old, every buffered result goes to its probe's block.
async fn probe_journal(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(crate::store::PROBE_JOURNAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while crate::rt::ticked(&mut tick, &shutdown).await {
        let probes = ctx.store.probes.clone();
        let now = ctx.clock.now_ms();
        let written = tokio::task::spawn_blocking(move || {
            probes.write_probe_journal()?;
            probes.write_probe_results(Some(now))
        });
        match written.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                ctx.telemetry
                    .store_write_failures
                    .with_label_values(&["probes"])
                    .inc();
                debug!(error = %e, "cannot journal probe results; they stay in memory");
            }
            Err(e) => warn!(error = %e, "probe journal task failed"),
        }
    }
}

/// Retention and the store's size metric: prunes in small steps so probes and evaluation never
/// wait behind it.
async fn housekeeping(ctx: Arc<Context>, shutdown: CancellationToken) {
    let heartbeat = ctx
        .liveness
        .register("housekeeping", Duration::from_secs(3600));
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    while crate::rt::ticked(&mut tick, &shutdown).await {
        heartbeat.beat();
        let retention = ctx.config().storage.retention.get();
        ctx.store.set_retention(retention);
        let before = ctx.clock.now_ms() - retention.as_millis() as i64;
        let mut cursor = Some(crate::store::PruneCursor::new(before));
        while let Some(mut c) = cursor.take() {
            let store = ctx.store.clone();
            let step = tokio::task::spawn_blocking(move || {
                let more = store.prune_step(&mut c, 1_000);
                (c, more)
            })
            .await;
            match step {
                Ok((c, Ok(true))) if !shutdown.is_cancelled() => {
                    cursor = Some(c);
                    tokio::task::yield_now().await;
                }
                Ok((c, Ok(_))) => {
                    let st = c.stats();
                    if st.probes + st.transitions + st.chunks > 0 {
                        info!(
                            probes = st.probes,
                            history_files = st.history_files,
                            transitions = st.transitions,
                            chunks = st.chunks,
                            blocks = st.blocks,
                            segments = st.segments,
                            series = st.series,
                            symbols = st.symbols,
                            "pruned records older than the retention"
                        );
                    }
                }
                Ok((_, Err(e))) => {
                    warn!(error = %error_chain(&e), "pruning old records failed");
                    ctx.telemetry
                        .store_write_failures
                        .with_label_values(&["prune"])
                        .inc();
                }
                Err(e) => warn!(error = %e, "the prune task failed"),
            }
        }
        if let Ok(size) = ctx.store.size_on_disk() {
            ctx.telemetry.store_size_bytes.set(size as i64);
        }
    }
}

/// Seconds since the epoch, as a float.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
