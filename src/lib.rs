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
//! - [`series`]: label sets, samples, the in-memory head the engines read.
//! - [`alert`]: the alert type shared by rules, probes and the dispatcher; Alertmanager matchers.
//! - [`store`]: the embedded sled store; owns every byte on disk behind a typed API (history,
//!   chunks, outbox, notification log, silences, deployments, alert state).
#![forbid(unsafe_code)]

pub mod alert;
pub mod series;
pub mod config;
pub mod store;
