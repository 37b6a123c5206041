//! Alerting rules with Prometheus' state machine, and the templates of their labels and
//! annotations.

pub mod alerting;
pub mod engine;
pub mod schedule;
