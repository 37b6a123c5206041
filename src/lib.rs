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
//! - [`promql`]: the PromQL evaluation engine (Prometheus 3.x semantics) over a [`series::SeriesSource`].
#![forbid(unsafe_code)]

pub mod alert;
pub mod promql;
pub mod series;
