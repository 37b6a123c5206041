//! A target's metadata lines, tracked across scrapes: each page's `# TYPE`, `# HELP` and
//! `# UNIT` lines are noted as offsets into the body while it is parsed (no allocation in
//! steady state), hashed once the page is accepted, and turned into owned entries for
//! [`Metadata`] only when the hash differs from the last page's.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};

use super::parse::{MetaKind, MetaRef, unescape_help};
use crate::ingest::metadata::{Metadata, MetricMeta};

/// A byte range of the body: (start, end).
type Span = (usize, usize);

/// One target's tracker; lives in its scrape loop.
#[derive(Debug, Default)]
pub struct MetaTracker {
    /// This page's metadata lines: kind, name and text as (start, end) offsets in the body.
    lines: Vec<(MetaKind, Span, Span)>,
    /// Hash of the last page's lines that were stored.
    stored: Option<u64>,
}

/// `s` as offsets into `body`, of which it is a slice.
fn span(body: &[u8], s: &str) -> Span {
    let start = (s.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    (start, start + s.len())
}

impl MetaTracker {
    /// Forgets the lines of the previous page; call before parsing a page.
    pub fn start(&mut self) {
        self.lines.clear();
    }

    /// Notes a metadata line of `body`, the page being parsed.
    pub fn line(&mut self, body: &[u8], m: MetaRef<'_>) {
        self.lines
            .push((m.kind, span(body, m.name), span(body, m.text)));
    }

    /// After a page was accepted: stores its metadata for `target` when it differs from the
    /// last page's.
    pub fn finish(&mut self, body: &[u8], target: &str, into: &Metadata) {
        let text = |(s, e): Span| body.get(s..e).unwrap_or_default();
        let mut h = DefaultHasher::new();
        for &(kind, name, value) in &self.lines {
            kind.hash(&mut h);
            h.write(text(name));
            h.write_u8(0xff);
            h.write(text(value));
        }
        let hash = h.finish();
        // A target's entries can be dropped behind its back (the previous generation of
        // loops removing its targets on reload): then they are stored again.
        if self.stored == Some(hash) && into.contains(target) {
            return;
        }
        self.stored = Some(hash);
        let mut families: Vec<(String, MetricMeta)> = Vec::new();
        for &(kind, name, value) in &self.lines {
            let name = String::from_utf8_lossy(text(name));
            let value = String::from_utf8_lossy(text(value));
            let i = match families.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    let unknown = MetricMeta {
                        kind: "unknown".into(),
                        ..MetricMeta::default()
                    };
                    families.push((name.into_owned(), unknown));
                    families.len() - 1
                }
            };
            let meta = &mut families[i].1;
            match kind {
                MetaKind::Type if value == "untyped" => meta.kind = "unknown".into(),
                MetaKind::Type => meta.kind = value.into_owned(),
                MetaKind::Help => meta.help = unescape_help(&value).into_owned(),
                MetaKind::Unit => meta.unit = value.into_owned(),
            }
        }
        into.set(target, families);
    }
}

#[cfg(test)]
mod tests;
