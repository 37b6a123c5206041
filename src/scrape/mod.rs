//! Scraping: reading targets' `/metrics` pages into the series head.
//!
//! - [`parse`]: the exposition parser (Prometheus text format and OpenMetrics), a
//!   self-contained push parser that hands out borrowed samples without allocating per sample.
//! - [`manager`]: the scrape loop, one task per target.
//! - [`metadata`]: each target's `# TYPE`/`# HELP`/`# UNIT` lines, stored when they change.
//! - Target health goes to [`crate::targets`], samples to the head through [`crate::ingest`].

pub mod manager;
pub mod metadata;
pub mod parse;
