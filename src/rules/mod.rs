//! Alerting rules with Prometheus' state machine, recording rules that write series, and
//! their groups.

pub mod alerting;
pub mod engine;
pub mod recording;
pub mod schedule;
