//! Exposition parser: Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! The parser is a push parser: [`parse`] walks the body once and hands each sample to a
//! callback as a [`SampleRef`] borrowing from the body, so a scrape costs no heap allocation per
//! sample. Label values are returned raw (as exposed) and resolved lazily: a value without a
//! backslash is handed out as a `&str` into the body; only values with escapes are copied.
//!
//! # What is accepted
//!
//! It follows Prometheus' own parsers (`model/textparse/promparse.go` and
//! `openmetricsparse.go`), which decide what a target may send:
//!
//! - **Text format** is lenient about blanks: spaces and tabs between tokens, leading
//!   whitespace, blank lines, any `#` comment, commas between labels optional, a trailing comma
//!   allowed. Timestamps are integer milliseconds. Every line, the last included, must end with
//!   `\n` (Prometheus rejects a final sample line without it).
//! - **OpenMetrics** is strict: single spaces, no blank lines, only `# HELP`, `# TYPE`, `# UNIT`
//!   and `# EOF` comments, commas required between labels, and the body must end with `# EOF`
//!   (optionally followed by one `\n`) with nothing after it. Timestamps are seconds, possibly
//!   fractional, and are converted to milliseconds (exactly, for decimal notation: Prometheus
//!   multiplies a float, which can be off by one ms for values such as `1795300000.123`).
//!   Exemplars (`value # {labels} value [timestamp]`) are parsed and handed out.
//! - **`_created` series** are returned as ordinary samples, as Prometheus does by default
//!   (without `created-timestamp-zero-ingestion`); [`Options::skip_created_series`] drops them
//!   for counters, histograms and summaries like Prometheus does with that feature.
//! - Values: decimal and exponent notation, `NaN`, `+Inf`, `-Inf` (case-insensitive,
//!   Go's `ParseFloat` set minus hex floats and `_` separators, which Prometheus refuses too).
//!   Every NaN is returned as the ordinary quiet NaN, never as the staleness marker.
//! - Label values may contain the escapes `\\`, `\"` and `\n`; any other backslash sequence is
//!   kept as it is, as Prometheus does.
//! - Duplicate label names in one sample (including a `__name__` label next to a metric name)
//!   are a syntax error here: Prometheus fails the whole scrape on them too (in its appender).
//! - The `le` label of histograms and the `quantile` label of summaries are normalised to the
//!   OpenMetrics float spelling (`le="1"` becomes `1.0`), as Prometheus 3 does.
//! - Not supported: quoted UTF-8 metric and label names (`{"my.metric"}`), which Prometheus 3
//!   only receives when it asks for them in its `Accept` header, which we don't.
//!
//! Any syntax error stops the parse and is returned with its line number: as in Prometheus a
//! malformed page fails the whole scrape rather than being half-ingested. A body that is not
//! UTF-8 is such an error.

use std::borrow::Cow;
use std::fmt;

/// The exposition format of a body, chosen from the response's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), also the fallback.
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

/// Picks the parser for a `Content-Type` header value. Anything that is not
/// `application/openmetrics-text` (parameters ignored, case-insensitive), including an empty or
/// unparsable header, is read as the text format, which is what every exporter that does not
/// negotiate sends.
pub fn format_from_content_type(ct: &str) -> Format {
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// The type a `# TYPE` line gave the family a sample belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// No `# TYPE` line, `untyped`/`unknown`, or the sample's name is not part of the family
    /// of the last `# TYPE` line.
    #[default]
    Unknown,
    /// `counter`: the `_total` (and `_created`) samples.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`: `_bucket`, `_sum`, `_count`, `_created`.
    Histogram,
    /// OpenMetrics `gaugehistogram`: `_bucket`, `_gsum`, `_gcount`.
    GaugeHistogram,
    /// `summary`: quantiles, `_sum`, `_count`, `_created`.
    Summary,
    /// OpenMetrics `info`: the `_info` sample.
    Info,
    /// OpenMetrics `stateset`.
    StateSet,
}

impl MetricType {
    /// The suffixes a sample name may add to its family name for this type.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            MetricType::Summary => &["_sum", "_count", "_created"],
            MetricType::Info => &["_info"],
            MetricType::Unknown | MetricType::Gauge | MetricType::StateSet => &[],
        }
    }

    fn from_text_format(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Unknown,
            _ => return None,
        })
    }

    fn from_openmetrics(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "unknown" => MetricType::Unknown,
            _ => return None,
        })
    }
}

/// Parser settings. The default is what Prometheus does by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Drop `<name>_created` samples of counters, histograms and summaries instead of returning
    /// them as series (Prometheus' `created-timestamp-zero-ingestion` behaviour). Off by
    /// default, like in Prometheus, so `foo_created` is queryable.
    pub skip_created_series: bool,
}

/// What one parse saw, for the scrape loop's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples handed to the callback.
    pub samples: usize,
    /// Samples that carried an exemplar.
    pub exemplars: usize,
    /// `_created` samples dropped because of [`Options::skip_created_series`].
    pub skipped_created: usize,
}

/// A syntax error: where and why. The whole body is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number of the offending byte.
    pub line: usize,
    /// What was wrong, with the offending text where it helps.
    pub reason: String,
}

/// Which metadata line a [`MetaRef`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKind {
    /// `# TYPE name type`.
    Type,
    /// `# HELP name text`.
    Help,
    /// `# UNIT name unit` (OpenMetrics only).
    Unit,
}

/// One `# TYPE`, `# HELP` or `# UNIT` line, borrowing from the body. Valid only during the
/// callback of [`Parser::parse_with_metadata`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRef<'a> {
    /// Which line.
    pub kind: MetaKind,
    /// The metric family's name.
    pub name: &'a str,
    /// The rest of the line as exposed: the type, the help text (escapes unresolved: see
    /// [`unescape_help`]) or the unit.
    pub text: &'a str,
}

/// Resolves the escapes of a `# HELP` text: `\\` and `\n` in both formats, and `\"` in
/// OpenMetrics, as Prometheus' parsers do.
pub fn unescape_help(raw: &str) -> Cow<'_, str> {
    if raw.contains('\\') {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Where a body parsed in pieces ([`Parser::parse_piece`]) stands between two pieces: the
/// family of the last `# TYPE` line, and whether `# EOF` was seen.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// The family name of the last `# TYPE` line.
    family: String,
    /// Its type.
    family_type: MetricType,
    /// The piece ended with `# EOF`.
    eof: bool,
}

impl Resume {
    /// True once a piece ended with `# EOF`: any later non-empty piece is an error.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }
}

/// One sample, borrowing from the body being parsed. Valid only during the callback.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    /// The metric name (`__name__`).
    pub name: &'a str,
    /// The series as exposed: the name and the raw `{...}` label block, escapes unresolved.
    /// Identical on every scrape of an unchanged series, so it is a cheap key for a scrape cache
    /// (what Prometheus' scrape cache keys on).
    pub series: &'a str,
    /// The labels inside the braces, `__name__` excluded.
    pub labels: LabelsRef<'a>,
    /// The sample value; NaN is always the ordinary quiet NaN.
    pub value: f64,
    /// The exposed timestamp in ms since the epoch, if any (OpenMetrics seconds converted).
    pub timestamp_ms: Option<i64>,
    /// The type of the family this sample belongs to (from the last `# TYPE` line, when the
    /// sample's name is that family's name or one of its type's suffixes).
    pub metric_type: MetricType,
    /// The OpenMetrics exemplar on this line, if any.
    pub exemplar: Option<ExemplarRef<'a>>,
}

/// An OpenMetrics exemplar.
#[derive(Clone, Copy, Debug)]
pub struct ExemplarRef<'a> {
    /// The exemplar's labels (e.g. `trace_id`).
    pub labels: LabelsRef<'a>,
    /// The exemplar's value.
    pub value: f64,
    /// The exemplar's timestamp in ms, if given.
    pub timestamp_ms: Option<i64>,
}

/// Where one label lies in the body.
#[derive(Clone, Copy, Debug)]
struct Span {
    name_start: usize,
    name_end: usize,
    value_start: usize,
    value_end: usize,
    /// The raw value contains a backslash: resolve escapes before use.
    escaped: bool,
}

/// The labels of a sample, in exposition order, `__name__` excluded. Empty values are
/// returned as they are: a consumer building a label set drops them (empty means absent).
#[derive(Clone, Copy)]
pub struct LabelsRef<'a> {
    /// The whole body; spans index into it.
    text: &'a str,
    spans: &'a [Span],
    /// The label whose value is a float to normalise (`le` or `quantile`), if any.
    normalize: Option<&'static str>,
}

impl<'a> LabelsRef<'a> {
    /// Number of labels.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the sample has no labels besides its name.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The labels as (name, value) with escapes resolved. A value is borrowed from the body
    /// unless it had escapes or needed float normalisation.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        let (text, normalize) = (self.text, self.normalize);
        self.spans.iter().map(move |s| {
            let name = &text[s.name_start..s.name_end];
            let raw = &text[s.value_start..s.value_end];
            let value = if s.escaped {
                Cow::Owned(unescape(raw))
            } else if normalize == Some(name) {
                normalize_float(raw)
            } else {
                Cow::Borrowed(raw)
            };
            (name, value)
        })
    }

    /// The labels as (name, raw value as exposed, escapes unresolved), without any copy.
    pub fn iter_raw(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let text = self.text;
        self.spans.iter().map(move |s| {
            (
                &text[s.name_start..s.name_end],
                &text[s.value_start..s.value_end],
            )
        })
    }

    /// The resolved value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl fmt::Debug for LabelsRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Resolves `\\`, `\"` and `\n`; other backslashes are kept, as in Prometheus' `lvalReplacer`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Prometheus 3 rewrites `le` and `quantile` values to the OpenMetrics float spelling so that
/// `le="1"` and `le="1.0"` are one series. Values that do not parse are left alone.
fn normalize_float(raw: &str) -> Cow<'_, str> {
    let Some(f) = parse_float(raw) else {
        return Cow::Borrowed(raw);
    };
    let formatted = format_openmetrics_float(f);
    if formatted == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(formatted)
    }
}

/// Go's `FormatFloat(f, 'g', -1, 64)` with `.0` added to integers, `+Inf`/`-Inf`/`NaN`, as
/// Prometheus' `formatOpenMetricsFloat`.
fn format_openmetrics_float(f: f64) -> String {
    let mut s = crate::template::gofmt::format_g(f, None);
    if f.is_finite() && !s.contains(['.', 'e']) {
        s.push_str(".0");
    }
    s
}

/// Parses a sample value the way Prometheus does: Go's `ParseFloat` without hex floats and
/// `_` separators. A fast path handles plain integers, the most common value on a page.
#[inline]
fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
        // At most 15 digits fit in an f64's 53-bit mantissa exactly.
        let mut n: u64 = 0;
        for &d in b {
            n = n * 10 + u64::from(d - b'0');
        }
        return Some(n as f64);
    }
    if b.iter().any(|c| matches!(c, b'p' | b'P' | b'_')) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    // One NaN for every spelling: the staleness marker's bit pattern must never come from a
    // target.
    Some(if v.is_nan() { f64::NAN } else { v })
}

/// A text-format timestamp: digits only (the lexer accepts no sign), in i64 range.
fn parse_ms(b: &[u8]) -> Option<i64> {
    let mut n: i64 = 0;
    for &d in b {
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(n)
}

/// An OpenMetrics timestamp: seconds, to ms truncated toward zero like Prometheus'
/// `int64(ts * 1000)`, but exact for plain decimals. NaN and infinities are refused.
fn parse_om_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(p) => (&digits[..p], &digits[p + 1..]),
        None => (digits, &digits[..0]),
    };
    let plain = !int.is_empty()
        && int.len() <= 15
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit);
    if plain {
        let mut ms: i64 = 0;
        for &d in int {
            ms = ms * 10 + i64::from(d - b'0');
        }
        ms *= 1000;
        let mut scale = 100;
        for &d in frac.iter().take(3) {
            ms += i64::from(d - b'0') * scale;
            scale /= 10;
        }
        return Some(if neg { -ms } else { ms });
    }
    let f = parse_float(s)?;
    if !f.is_finite() {
        return None;
    }
    // `as` saturates out-of-range floats, where Go's conversion is undefined.
    Some((f * 1000.0) as i64)
}

/// Byte classes for names, one table lookup per byte.
const NAME_START: u8 = 1; // [a-zA-Z_:]
const NAME_CHAR: u8 = 2; // [a-zA-Z0-9_:]
const LABEL_START: u8 = 4; // [a-zA-Z_]
const LABEL_CHAR: u8 = 8; // [a-zA-Z0-9_]

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= NAME_START | NAME_CHAR;
        }
        if digit {
            v |= NAME_CHAR | LABEL_CHAR;
        }
        if alpha {
            v |= LABEL_START | LABEL_CHAR;
        }
        t[c] = v;
        c += 1;
    }
    t
};

#[inline]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// An error at a byte offset; turned into a line number only when it happens.
struct Fail {
    pos: usize,
    reason: Cow<'static, str>,
}

fn fail(pos: usize, reason: impl Into<Cow<'static, str>>) -> Fail {
    Fail {
        pos,
        reason: reason.into(),
    }
}

/// A short excerpt of the body at `pos`, for error messages.
fn near(text: &str, pos: usize) -> String {
    let end = text[pos.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |e| e + pos);
    let mut s: String = text[pos.min(text.len())..end].chars().take(40).collect();
    if s.is_empty() {
        s.push_str(if pos >= text.len() {
            "end of input"
        } else {
            "end of line"
        });
    }
    s
}

/// A [`Fail`] as a [`ParseError`]: its line and an excerpt.
fn located(body: &[u8], text: &str, f: &Fail) -> ParseError {
    ParseError {
        line: line_of(body, f.pos),
        reason: format!("{} (at {:?})", f.reason, near(text, f.pos)),
    }
}

fn line_of(body: &[u8], pos: usize) -> usize {
    body[..pos.min(body.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses `body` and calls `on_sample` for each sample, in order.
///
/// Returns at the first syntax error with its line number; samples before it have been handed
/// out already, so a caller that must be all-or-nothing (a scrape) buffers or rolls back.
/// Non-UTF-8 input is such an error, never a panic. Uses default [`Options`]; see [`Parser`] to
/// reuse buffers across scrapes or to change options.
pub fn parse(
    body: &[u8],
    format: Format,
    on_sample: impl FnMut(SampleRef<'_>),
) -> Result<Stats, ParseError> {
    Parser::new().parse(body, format, on_sample)
}

/// A reusable parser: keeps its scratch buffers between bodies so that a scrape loop that
/// holds one allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct Parser {
    /// Settings.
    options: Options,
    /// Label spans of the current sample.
    labels: Vec<Span>,
    /// Label spans of the current sample's exemplar.
    exemplar_labels: Vec<Span>,
    /// Scratch for the duplicate-label check on samples with many labels.
    names: Vec<(usize, usize)>,
}

/// The parts of a sample line besides its labels.
struct Line {
    name: (usize, usize),
    series_end: usize,
    value: f64,
    ts: Option<i64>,
    exemplar: Option<(f64, Option<i64>)>,
}

impl Parser {
    /// A parser with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser with the given options.
    pub fn with_options(options: Options) -> Self {
        Parser {
            options,
            ..Self::default()
        }
    }

    /// See [`parse`].
    pub fn parse(
        &mut self,
        body: &[u8],
        format: Format,
        mut on_sample: impl FnMut(SampleRef<'_>),
    ) -> Result<Stats, ParseError> {
        // The only UTF-8 validation of the body: afterwards every slice is cut at an ASCII
        // delimiter, which is always a char boundary.
        let text = std::str::from_utf8(body).map_err(|e| ParseError {
            line: line_of(body, e.valid_up_to()),
            reason: "invalid UTF-8".into(),
        })?;
        self.run(text, format, None, &mut on_sample, &mut |_| {})
            .map_err(|f| located(body, text, &f))
    }

    /// [`Parser::parse`], also handing each `# TYPE`, `# HELP` and `# UNIT` line to `on_meta`.
    pub fn parse_with_metadata(
        &mut self,
        body: &[u8],
        format: Format,
        mut on_sample: impl FnMut(SampleRef<'_>),
        mut on_meta: impl FnMut(MetaRef<'_>),
    ) -> Result<Stats, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| ParseError {
            line: line_of(body, e.valid_up_to()),
            reason: "invalid UTF-8".into(),
        })?;
        self.run(text, format, None, &mut on_sample, &mut on_meta)
            .map_err(|f| located(body, text, &f))
    }

    /// Parses one piece of an OpenMetrics body too large to hold at once: whole lines, the
    /// pieces in order, `state` carried from one to the next. Only the last piece needs to end
    /// with `# EOF` (check [`Resume::saw_eof`] after the last one); line numbers in errors
    /// count from the piece's first line.
    pub fn parse_piece(
        &mut self,
        piece: &[u8],
        state: &mut Resume,
        mut on_sample: impl FnMut(SampleRef<'_>),
        mut on_meta: impl FnMut(MetaRef<'_>),
    ) -> Result<Stats, ParseError> {
        let text = std::str::from_utf8(piece).map_err(|e| ParseError {
            line: line_of(piece, e.valid_up_to()),
            reason: "invalid UTF-8".into(),
        })?;
        if state.eof && !piece.is_empty() {
            return Err(ParseError {
                line: 1,
                reason: "unexpected data after # EOF".into(),
            });
        }
        self.run(
            text,
            Format::OpenMetrics,
            Some(state),
            &mut on_sample,
            &mut on_meta,
        )
        .map_err(|f| located(piece, text, &f))
    }

    fn run(
        &mut self,
        text: &str,
        format: Format,
        resume: Option<&mut Resume>,
        on_sample: &mut dyn FnMut(SampleRef<'_>),
        on_meta: &mut dyn FnMut(MetaRef<'_>),
    ) -> Result<Stats, Fail> {
        let b = text.as_bytes();
        let om = format == Format::OpenMetrics;
        let mut stats = Stats::default();
        // The family of the last `# TYPE` line: its name and type; in a piece, the previous
        // piece's until a `# TYPE` line of this one.
        let carried = resume
            .as_ref()
            .map(|r| r.family.clone())
            .unwrap_or_default();
        let mut fam: &str = &carried;
        let mut family_type = resume
            .as_ref()
            .map_or(MetricType::Unknown, |r| r.family_type);
        let mut i = 0;
        let mut saw_eof = false;
        while i < b.len() {
            let c = b[i];
            if c == b'#' {
                if om {
                    match self.om_comment(text, i, &mut fam, &mut family_type, on_meta)? {
                        Some(next) => i = next,
                        None => {
                            saw_eof = true;
                            break;
                        }
                    }
                } else {
                    i = text_comment(text, i, &mut fam, &mut family_type, on_meta)?;
                }
                continue;
            }
            if !om {
                if c == b'\n' {
                    i += 1;
                    continue;
                }
                if c == b' ' || c == b'\t' {
                    i = skip_ws(b, i);
                    continue;
                }
            }
            if !is(c, NAME_START) {
                return Err(fail(i, "expected a metric name, comment or blank line"));
            }
            let (line, next) = if om {
                self.om_sample(text, i)?
            } else {
                self.text_sample(text, i)?
            };
            self.check_duplicates(text, i)?;
            i = next;

            let name = &text[line.name.0..line.name.1];
            let metric_type = if family_type != MetricType::Unknown
                && name.starts_with(fam)
                && (name.len() == fam.len()
                    || family_type
                        .suffixes()
                        .iter()
                        .any(|s| name.len() == fam.len() + s.len() && name.ends_with(s)))
            {
                family_type
            } else {
                MetricType::Unknown
            };
            if self.options.skip_created_series
                && matches!(
                    family_type,
                    MetricType::Counter | MetricType::Histogram | MetricType::Summary
                )
                && name.ends_with("_created")
            {
                stats.skipped_created += 1;
                continue;
            }
            let normalize = match metric_type {
                MetricType::Histogram => Some("le"),
                MetricType::Summary => Some("quantile"),
                _ => None,
            };
            let exemplar = line.exemplar.map(|(value, timestamp_ms)| ExemplarRef {
                labels: LabelsRef {
                    text,
                    spans: &self.exemplar_labels,
                    normalize: None,
                },
                value,
                timestamp_ms,
            });
            stats.samples += 1;
            stats.exemplars += usize::from(exemplar.is_some());
            on_sample(SampleRef {
                name,
                series: &text[line.name.0..line.series_end],
                labels: LabelsRef {
                    text,
                    spans: &self.labels,
                    normalize,
                },
                value: line.value,
                timestamp_ms: line.ts,
                metric_type,
                exemplar,
            });
        }
        match resume {
            Some(r) => {
                r.family = fam.to_owned();
                r.family_type = family_type;
                r.eof = saw_eof;
            }
            None if om && !saw_eof => {
                return Err(fail(b.len(), "data does not end with # EOF"));
            }
            None => {}
        }
        Ok(stats)
    }

    /// Prometheus rejects a sample with two labels of one name (in its appender); so do we.
    fn check_duplicates(&mut self, text: &str, line_start: usize) -> Result<(), Fail> {
        let b = text.as_bytes();
        find_duplicate(b, &self.labels, true, &mut self.names)
            .or_else(|| find_duplicate(b, &self.exemplar_labels, false, &mut self.names))
            .map_or(Ok(()), |(s, e)| {
                Err(fail(
                    line_start,
                    format!("duplicate label name {:?}", &text[s..e]),
                ))
            })
    }

    /// The series part of a sample line starting at `i` (a name-start byte): the metric name,
    /// then the label block, if any, into `self.labels`. The text format allows blanks around
    /// the block; OpenMetrics does not. Returns where the name and the series end, and the
    /// offset after them.
    #[inline(always)]
    fn series<const OPENMETRICS: bool>(
        &mut self,
        b: &[u8],
        mut i: usize,
    ) -> Result<(usize, usize, usize), Fail> {
        let n = b.len();
        i += 1;
        while i < n && is(b[i], NAME_CHAR) {
            i += 1;
        }
        let name_end = i;
        let mut series_end = name_end;
        self.labels.clear();
        self.exemplar_labels.clear();
        if !OPENMETRICS {
            i = skip_ws(b, i);
        }
        if i < n && b[i] == b'{' {
            i = label_block::<OPENMETRICS>(b, i + 1, &mut self.labels)?;
            series_end = i;
            if !OPENMETRICS {
                i = skip_ws(b, i);
            }
        }
        Ok((name_end, series_end, i))
    }

    /// A text-format sample line starting at `i` (a name-start byte). Returns the line and the
    /// offset after its `\n`.
    fn text_sample(&mut self, text: &str, i: usize) -> Result<(Line, usize), Fail> {
        let b = text.as_bytes();
        let n = b.len();
        let name_start = i;
        let (name_end, series_end, mut i) = self.series::<false>(b, i)?;
        let vs = i;
        while i < n && !matches!(b[i], b' ' | b'\t' | b'\n' | b'{') {
            i += 1;
        }
        if i == vs {
            return Err(fail(i, "expected value after metric"));
        }
        let value = parse_float(&text[vs..i])
            .ok_or_else(|| fail(vs, format!("invalid value {:?}", &text[vs..i])))?;
        i = skip_ws(b, i);
        let mut ts = None;
        if i < n && b[i].is_ascii_digit() {
            let s = i;
            while i < n && b[i].is_ascii_digit() {
                i += 1;
            }
            ts = Some(parse_ms(&b[s..i]).ok_or_else(|| fail(s, "timestamp out of range"))?);
            i = skip_ws(b, i);
            if i >= n || b[i] != b'\n' {
                return Err(fail(i, "expected next entry after timestamp"));
            }
        } else if i >= n || b[i] != b'\n' {
            return Err(fail(i, "expected timestamp or new record"));
        }
        let line = Line {
            name: (name_start, name_end),
            series_end,
            value,
            ts,
            exemplar: None,
        };
        Ok((line, i + 1))
    }

    /// An OpenMetrics sample line starting at `i`. Returns the line and the offset after its
    /// `\n`.
    fn om_sample(&mut self, text: &str, i: usize) -> Result<(Line, usize), Fail> {
        let b = text.as_bytes();
        let name_start = i;
        let (name_end, series_end, i) = self.series::<true>(b, i)?;
        let (value, mut i) = om_value(text, i, "metric")?;
        let mut ts = None;
        let mut exemplar = None;
        // After the value: end of line, a timestamp, an exemplar, or a timestamp and an
        // exemplar.
        for _ in 0..2 {
            match b.get(i) {
                Some(b'\n') => break,
                None => return Err(fail(i, "data does not end with # EOF")),
                Some(b' ') if b[i..].starts_with(b" # {") => {
                    let (ex, next) = self.om_exemplar(text, i + 4)?;
                    exemplar = Some(ex);
                    i = next;
                    break;
                }
                Some(b' ') if ts.is_none() => {
                    let (t, next) = om_ts(text, i, "timestamp")?;
                    ts = Some(t);
                    i = next;
                }
                _ => return Err(fail(i, "expected timestamp, exemplar or line end")),
            }
        }
        match b.get(i) {
            Some(b'\n') => {}
            None => return Err(fail(i, "data does not end with # EOF")),
            _ => return Err(fail(i, "expected next entry after timestamp")),
        }
        let line = Line {
            name: (name_start, name_end),
            series_end,
            value,
            ts,
            exemplar,
        };
        Ok((line, i + 1))
    }

    /// An exemplar after ` # {`: labels, value, optional timestamp. Returns the offset of the
    /// line's `\n`.
    fn om_exemplar(&mut self, text: &str, i: usize) -> Result<((f64, Option<i64>), usize), Fail> {
        let b = text.as_bytes();
        let i = label_block::<true>(b, i, &mut self.exemplar_labels)?;
        let (value, mut i) = om_value(text, i, "exemplar labels")?;
        let mut ts = None;
        if b.get(i) == Some(&b' ') {
            let (t, next) = om_ts(text, i, "exemplar timestamp")?;
            ts = Some(t);
            i = next;
        }
        match b.get(i) {
            Some(b'\n') => Ok(((value, ts), i)),
            None => Err(fail(i, "data does not end with # EOF")),
            _ => Err(fail(i, "expected next entry after exemplar")),
        }
    }

    /// An OpenMetrics `#` line at `i`. Returns the offset of the next line, or `None` at a
    /// valid `# EOF`.
    fn om_comment<'t>(
        &mut self,
        text: &'t str,
        i: usize,
        family: &mut &'t str,
        family_type: &mut MetricType,
        on_meta: &mut dyn FnMut(MetaRef<'_>),
    ) -> Result<Option<usize>, Fail> {
        let b = text.as_bytes();
        let n = b.len();
        if b.get(i + 1) != Some(&b' ') {
            return Err(fail(i, "expected a valid start token"));
        }
        let mut j = i + 2;
        if b[j..].starts_with(b"EOF") {
            j += 3;
            if b.get(j) == Some(&b'\n') {
                j += 1;
            }
            if j != n {
                return Err(fail(j, "unexpected data after # EOF"));
            }
            return Ok(None);
        }
        let kind = &b[j..(j + 5).min(n)];
        let kind = match kind {
            b"HELP " | b"TYPE " | b"UNIT " => &text[j..j + 4],
            _ => return Err(fail(i, "expected HELP, TYPE, UNIT or EOF after #")),
        };
        let ns = j + 5;
        let ne = metadata_name(b, ns, kind)?;
        let j = ne;
        if b.get(j) != Some(&b' ') {
            return Err(fail(j, format!("expected text in {kind}")));
        }
        let ts = j + 1;
        let te = match memchr::memchr(b'\n', &b[ts..]) {
            Some(e) => ts + e,
            None => return Err(fail(n, format!("expected text in {kind}"))),
        };
        let body = &text[ts..te];
        match kind {
            "TYPE" => {
                *family_type = MetricType::from_openmetrics(body)
                    .ok_or_else(|| fail(ts, format!("invalid metric type {body:?}")))?;
                *family = &text[ns..ne];
            }
            "UNIT" => {
                let m = &text[ns..ne];
                let suffix_ok =
                    m.len() > body.len() && m.ends_with(body) && b[ne - body.len() - 1] == b'_';
                if !body.is_empty() && !suffix_ok {
                    return Err(fail(
                        ts,
                        format!("unit {body:?} not a suffix of metric {m:?}"),
                    ));
                }
            }
            _ => {}
        }
        let kind = match kind {
            "TYPE" => MetaKind::Type,
            "HELP" => MetaKind::Help,
            _ => MetaKind::Unit,
        };
        on_meta(MetaRef {
            kind,
            name: &text[ns..ne],
            text: body,
        });
        Ok(Some(te + 1))
    }
}

/// The metric name of a `# HELP`, `# TYPE` or `# UNIT` line (`kind`), starting at `i`: the
/// same rule in both formats. Returns where it ends.
fn metadata_name(b: &[u8], mut i: usize, kind: &str) -> Result<usize, Fail> {
    if i >= b.len() || !is(b[i], NAME_START) {
        return Err(fail(i, format!("expected metric name after {kind}")));
    }
    while i < b.len() && is(b[i], NAME_CHAR) {
        i += 1;
    }
    Ok(i)
}

/// A text-format `#` line at `i`: `# HELP`, `# TYPE`, or any other comment. Returns the
/// offset of the next line.
fn text_comment<'t>(
    text: &'t str,
    i: usize,
    family: &mut &'t str,
    family_type: &mut MetricType,
    on_meta: &mut dyn FnMut(MetaRef<'_>),
) -> Result<usize, Fail> {
    let b = text.as_bytes();
    let n = b.len();
    let line_end = |from: usize| memchr::memchr(b'\n', &b[from..]).map_or(n, |e| from + e);
    let mut j = i + 1;
    if j >= n || !matches!(b[j], b' ' | b'\t') {
        return Ok((line_end(j) + 1).min(n));
    }
    j = skip_ws(b, j);
    let kind = &b[j..(j + 4).min(n)];
    let is_type = kind == b"TYPE";
    if !(is_type || kind == b"HELP") || !matches!(b.get(j + 4), Some(b' ' | b'\t')) {
        // Any other comment; Prometheus skips it.
        return Ok((line_end(j) + 1).min(n));
    }
    let what = if is_type { "TYPE" } else { "HELP" };
    let ns = skip_ws(b, j + 4);
    let ne = metadata_name(b, ns, what)?;
    let j = ne;
    let le = line_end(j);
    if le >= n {
        return Err(fail(n, "linebreak expected after metadata"));
    }
    // The lexer takes the rest of the line as text and drops its first byte (the separator).
    let body = if le > j { &text[j + 1..le] } else { "" };
    if is_type {
        *family_type = MetricType::from_text_format(body)
            .ok_or_else(|| fail(j, format!("invalid metric type {body:?}")))?;
        *family = &text[ns..ne];
    }
    on_meta(MetaRef {
        kind: if is_type {
            MetaKind::Type
        } else {
            MetaKind::Help
        },
        name: &text[ns..ne],
        text: body,
    });
    Ok(le + 1)
}

/// The span of a label name that occurs twice in `spans` (or is `__name__` when `is_sample`,
/// since the metric name is already set), if any.
fn find_duplicate(
    b: &[u8],
    spans: &[Span],
    is_sample: bool,
    scratch: &mut Vec<(usize, usize)>,
) -> Option<(usize, usize)> {
    let name_of = |s: &Span| &b[s.name_start..s.name_end];
    if spans.len() <= 16 {
        // Pages have a handful of labels per sample: quadratic is fastest here.
        for (k, a) in spans.iter().enumerate() {
            let n = name_of(a);
            if (is_sample && n == b"__name__") || spans[k + 1..].iter().any(|o| name_of(o) == n) {
                return Some((a.name_start, a.name_end));
            }
        }
        return None;
    }
    // Bounded cost for hostile lines with thousands of labels.
    scratch.clear();
    scratch.extend(spans.iter().map(|s| (s.name_start, s.name_end)));
    scratch.sort_unstable_by(|x, y| b[x.0..x.1].cmp(&b[y.0..y.1]));
    for w in scratch.windows(2) {
        if b[w[0].0..w[0].1] == b[w[1].0..w[1].1] {
            return Some(w[0]);
        }
    }
    if is_sample {
        return scratch
            .iter()
            .copied()
            .find(|&(s, e)| &b[s..e] == b"__name__");
    }
    None
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// End of an OpenMetrics token (`[^ \n]+`) starting at `i`.
#[inline]
fn token_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b' ' && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// A quoted label value: `i` is just after the opening quote. Returns (end of value, escaped,
/// offset after the closing quote). OpenMetrics forbids raw newlines in values; the text format
/// allows them.
#[inline]
fn quoted(b: &[u8], mut i: usize, allow_newline: bool) -> Result<(usize, bool, usize), Fail> {
    let start = i;
    let mut escaped = false;
    loop {
        match b.get(i) {
            None => return Err(fail(start, "unterminated label value")),
            Some(b'"') => return Ok((i, escaped, i + 1)),
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(b'\n') if !allow_newline => {
                return Err(fail(i, "newline in label value"));
            }
            Some(_) => i += 1,
        }
    }
}

/// A label block, `i` just after `{`; returns the offset after `}`. The text format allows
/// blanks around names, `=` and values, newlines in values, and optional commas (a trailing
/// one too), as Prometheus' text parser does; OpenMetrics (and an exemplar's labels) none.
fn label_block<const OPENMETRICS: bool>(
    b: &[u8],
    mut i: usize,
    out: &mut Vec<Span>,
) -> Result<usize, Fail> {
    let n = b.len();
    let blanks = |i: usize| if OPENMETRICS { i } else { skip_ws(b, i) };
    loop {
        i = blanks(i);
        if i >= n {
            return Err(fail(i, "unterminated label set"));
        }
        if b[i] == b'}' {
            return Ok(i + 1);
        }
        if !is(b[i], LABEL_START) {
            return Err(fail(i, "expected label name"));
        }
        let name_start = i;
        i += 1;
        while i < n && is(b[i], LABEL_CHAR) {
            i += 1;
        }
        let name_end = i;
        i = blanks(i);
        if b.get(i) != Some(&b'=') {
            return Err(fail(i, "expected equal"));
        }
        i = blanks(i + 1);
        if b.get(i) != Some(&b'"') {
            return Err(fail(i, "expected label value"));
        }
        let (value_end, escaped, next) = quoted(b, i + 1, !OPENMETRICS)?;
        out.push(Span {
            name_start,
            name_end,
            value_start: i + 1,
            value_end,
            escaped,
        });
        i = blanks(next);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ if !OPENMETRICS => {}
            _ => return Err(fail(i, "expected comma or brace close")),
        }
    }
}

/// OpenMetrics' ` value` after a name or label block at `i`. Returns the value and the offset
/// after it.
fn om_value(text: &str, i: usize, after: &str) -> Result<(f64, usize), Fail> {
    let b = text.as_bytes();
    if b.get(i) != Some(&b' ') {
        return Err(fail(i, format!("expected value after {after}")));
    }
    let s = i + 1;
    let e = token_end(b, s);
    if e == s {
        return Err(fail(s, format!("expected value after {after}")));
    }
    let v = parse_float(&text[s..e])
        .ok_or_else(|| fail(s, format!("invalid value {:?}", &text[s..e])))?;
    Ok((v, e))
}

/// OpenMetrics' ` timestamp` at `i` (its blank), of a sample or of an exemplar as `what` says.
/// Returns it in ms and the offset after it.
fn om_ts(text: &str, i: usize, what: &str) -> Result<(i64, usize), Fail> {
    let s = i + 1;
    let e = token_end(text.as_bytes(), s);
    if e == s {
        return Err(fail(s, format!("expected {what}")));
    }
    let ts = parse_om_ts(&text[s..e])
        .ok_or_else(|| fail(s, format!("invalid {what} {:?}", &text[s..e])))?;
    Ok((ts, e))
}

#[cfg(test)]
mod tests;
