//! Scraping: reading targets' `/metrics` pages into the series head.
//!
//! - [`parse`]: the exposition parser (Prometheus text format and OpenMetrics), a
//!   self-contained push parser that hands out borrowed samples without allocating per sample.

pub mod parse;
