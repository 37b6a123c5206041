//! postflight: one daemon that watches services after a deployment.
//!
//! # Data flow
//!
//! ```text
//! probes ──── append ──────────┐                 ┌─ rules engine ── alerts ──┐
//! scrapes ─┐                   ├─▶ series head ──┤        │                  ├─▶ dispatcher ─▶ outbox ─▶ receivers
//! ALERTS ◀─┴─ ingest (pages) ──┘        │        └─ gate engine ── verdicts ─┼──────────────▶ outbox   (Slack, email,
//!   ▲ written back by the rules engine  ▼                                    │   (routes, groups,       webhook, PagerDuty)
//!   └───────────────────────────────  store ◀── everything durable goes through its typed API
//! ```
//!
//! Probes append their samples to the head one by one; scrape targets and the rules engine's
//! `ALERTS` go through [`ingest`], which appends a whole page with Prometheus' staleness. The
//! rules engine hands alerts to the dispatcher (routes, groups, silences, inhibition, the
//! notification log), which queues notifications in the durable outbox; the gate engine queues
//! its verdicts in the outbox directly. The API holds read views and command handles of each
//! owner; the daemon makes them all and wires them together.
//!
//! # Layout, bottom layer first
//!
//! Each module names only modules of the layers below it (checked by `tests/architecture.rs`;
//! the table is in docs/architecture.md).
//!
//! - [`clock`], [`rt`], [`liveness`], [`telemetry`], [`template`], [`targets`]: the injected
//!   wall clock; the runtime and the actor loop's wait; loop heartbeats for the systemd
//!   watchdog; logs and the daemon's own `postflight_*` metrics; Prometheus' alert templating;
//!   the health of every scrape target and probe.
//! - [`series`]: label sets, samples, the in-memory head the engines read.
//! - [`alert`]: the alert type shared by rules, probes and the dispatcher; Alertmanager matchers.
//!   [`promql`]: the PromQL evaluation engine over a [`series::SeriesSource`]. [`ingest`]: batch
//!   appends with staleness and their scrape caches.
//! - [`config`]: the TOML config, typed and validated, every problem with `line:column`; the
//!   config in force and the reload command.
//! - [`store`]: every byte on disk, in three parts with one owner each: the small records that
//!   decide a page in sled ([`store::StateStore`]), sample chunks and the series index in
//!   files ([`store::SampleStore`], written by [`store::checkpoint`]), and the probe-result
//!   log ([`store::ProbeLog`]).
//! - [`notify`]: notifications and the channels that deliver them, one attempt at a time.
//!   [`probe`]: HTTP(S) and TCP probes, the built-in `ProbeFailed` alert, the `probe_*` series.
//! - [`logs`]: log files and journald units counted into series, matching lines kept.
//! - [`scrape`]: the exposition parser and the scrape loops. [`dispatch`]: Alertmanager's
//!   routing, grouping, notification log, silences and inhibition, and the durable outbox.
//!   [`remote`]: Prometheus remote write of every sample the head takes, resumable from the
//!   store.
//! - [`rules`]: alerting rules with Prometheus' state machine and the evaluation loop.
//!   [`deploy`]: post-deployment gates — deployments, baselines, checks, verdicts.
//! - [`api`]: the HTTP router: `/metrics`, health, the JSON API.
//! - [`daemon`]: lifecycle — components in a `JoinSet`, signals, reload, systemd notify.
//! - [`cli`]: the `postflight` subcommands; `main.rs` only parses and calls them.
#![forbid(unsafe_code)]

pub mod alert;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod dispatch;
pub mod ingest;
pub mod liveness;
pub mod logs;
pub mod notify;
pub mod probe;
pub mod promql;
pub mod remote;
pub mod rt;
pub mod rules;
pub mod scrape;
pub mod series;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod template;

/// Installs rustls' ring provider as the process default, once. Every TLS user (probes,
/// receivers, the deploy client) calls it first: the crate builds rustls with ring only.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
