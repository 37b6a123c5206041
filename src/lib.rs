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
//! - [`scrape`]: the exposition parser (and, later, the scrape loop) feeding the head.
//! - [`series`]: label sets, samples, the in-memory head the engines read.
//! - [`alert`]: the alert type shared by rules, probes and the dispatcher; Alertmanager matchers.
#![forbid(unsafe_code)]

pub mod alert;
pub mod scrape;
pub mod series;
