//! postflight: one daemon that watches services after a deployment.
//!
//! # Data flow
//!
//! ```text
//! probes ─┐                        ┌─ rules engine ── alerts ─────┐
//!         ├─ append ─▶ series head ┤                              ├─▶ dispatcher ─▶ outbox ─▶ receivers
//! scrapes ┘      │                 └─ gate engine ── verdicts ────┘   (routes, groups,   (store)   (Slack, email,
//!                ▼                                                     silences, inhibit)            webhook, PagerDuty)
//!              store ◀── everything durable goes through its typed API
//! ```
//!
//! # Layout
//!
//! - [`config`]: the TOML config, typed and validated, every problem with `line:column`.
//! - [`daemon`]: lifecycle — components in a `JoinSet`, signals, reload, systemd notify/watchdog.
//! - [`api`]: the HTTP server: `/metrics`, health, the JSON API.
//! - [`telemetry`]: logs and the daemon's own `postflight_*` metrics.
//! - [`cli`]: the `postflight` subcommands; `main.rs` only parses and calls them.
//! - [`series`]: label sets, samples, the in-memory head the engines read.
//! - [`alert`]: the alert type shared by rules, probes and the dispatcher; Alertmanager matchers.
//! - [`notify`]: notifications and the channels that deliver them (Slack, email, webhook,
//!   PagerDuty), one attempt at a time, with errors that say whether a retry can help.
//! - [`store`]: the embedded store (sled, plus append-only segment files for sample chunks);
//!   owns every byte on disk behind a typed API (history, chunks, outbox, notification log,
//!   silences, deployments, alert state).
//! - [`promql`]: the PromQL evaluation engine (Prometheus 3.x semantics) over a [`series::SeriesSource`].
//! - [`scrape`]: the exposition parser and the scrape loop feeding the head.
//! - [`probe`]: HTTP(S) and TCP health probes on their intervals, the built-in `ProbeFailed`
//!   alert, and the `probe_*` series.
//! - [`rules`]: alerting rules with Prometheus' state machine, their templates, the evaluation
//!   loop that writes `ALERTS` and hands alerts to the dispatcher.
//! - [`dispatch`]: Alertmanager's routing, grouping, notification log, silences and inhibition,
//!   and the durable outbox with one sender per receiver.
//! - [`clock`]: the injected wall clock (system, or tokio's paused clock in tests).
//! - [`deploy`]: post-deployment gates — deployments, baselines, check evaluation, verdicts
//!   (stored, exported, notified as `DeploymentVerdict`) and the `/api/v1/deployments` handlers.
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
pub mod notify;
pub mod probe;
pub mod promql;
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
