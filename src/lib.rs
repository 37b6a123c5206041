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
//! - [`notify`]: notifications and the channels that deliver them (Slack, email, webhook,
//!   PagerDuty), one attempt at a time, with errors that say whether a retry can help.
#![forbid(unsafe_code)]

pub mod alert;
pub mod series;
pub mod config;
pub mod notify;
