//! Helpers shared by the PromQL integration tests: the promqltest/promtool series notation
//! (`0+10x5 _ stale`) and an in-memory [`SeriesSource`].
#![allow(dead_code)]

use postflight::series::{Labels, Sample, SeriesSamples, SeriesSource, Timestamp};
use promql_parser::label::Matcher;

/// A series of the in-memory test storage.
pub struct StoredSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The in-memory storage: series sorted by labels like the TSDB returns them, plus the label sets
/// of series holding native histograms (whose samples are not loaded).
#[derive(Default)]
pub struct MemSource {
    pub series: Vec<StoredSeries>,
    pub native: Vec<Labels>,
}

impl MemSource {
    pub fn add(&mut self, labels: Labels, samples: Vec<Sample>) {
        match self.series.iter_mut().find(|s| s.labels == labels) {
            Some(s) => {
                s.samples.extend(samples);
                s.samples.sort_by_key(|x| x.t);
                s.samples.dedup_by_key(|x| x.t);
            }
            None => {
                self.series.push(StoredSeries { labels, samples });
                self.series.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
        }
    }
}

pub fn matches(ms: &[Matcher], l: &Labels) -> bool {
    ms.iter().all(|m| m.is_match(l.get(&m.name).unwrap_or("")))
}

impl SeriesSource for MemSource {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        self.series
            .iter()
            .filter(|s| matches(matchers, &s.labels))
            .filter_map(|s| {
                let samples: Vec<Sample> = s
                    .samples
                    .iter()
                    .copied()
                    .filter(|x| x.t >= mint && x.t <= maxt)
                    .collect();
                (!samples.is_empty()).then(|| SeriesSamples {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect()
    }

    /// Ids are positions in `series` (stable while the source is not changed).
    fn select_each(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip: &mut dyn FnMut(u64) -> bool,
        each: &mut dyn FnMut(u64, &Labels, &[Sample]),
    ) -> bool {
        for (id, s) in self.series.iter().enumerate() {
            if !matches(matchers, &s.labels) {
                continue;
            }
            let id = id as u64;
            if skip(id) {
                each(id, &s.labels, &[]);
                continue;
            }
            let samples: Vec<Sample> = s
                .samples
                .iter()
                .copied()
                .filter(|x| x.t >= mint && x.t <= maxt)
                .collect();
            if !samples.is_empty() {
                each(id, &s.labels, &samples);
            }
        }
        true
    }
}

/// One value of a series description.
#[derive(Clone, Copy, Debug)]
pub enum SeqValue {
    Value(f64),
    Omitted,
    Stale,
    Histogram,
}

/// Prometheus' `model.ParseDuration`: `1h30m`, `10s53ms`, `0`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("bad duration {s:?}"));
        }
        let n: i64 = rest[..digits].parse().map_err(|e| format!("{e}"))?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('d') {
            (86_400_000, 1)
        } else if rest.starts_with('w') {
            (7 * 86_400_000, 1)
        } else if rest.starts_with('y') {
            (365 * 86_400_000, 1)
        } else {
            return Err(format!("bad duration unit in {s:?}"));
        };
        total += n * mult;
        rest = &rest[len..];
    }
    Ok(total)
}

/// Go's `ParseInt(s, 0, 64)` then `ParseFloat`.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(if neg { -(i as f64) } else { i as f64 });
    }
    let lower = body.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if !body.bytes().all(|b| {
                b.is_ascii_digit()
                    || b == b'.'
                    || b == b'e'
                    || b == b'E'
                    || b == b'+'
                    || b == b'-'
                    || b == b'_'
            }) {
                return None;
            }
            body.replace('_', "").parse::<f64>().ok()?
        }
    };
    Some(if neg { -v } else { v })
}

/// Parses the label part of a series description: `name{a="b", …}`, `{"name", a="b"}`, `name`.
/// Returns the labels and the rest of the line.
pub fn parse_labels(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name_len = line
        .char_indices()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == ':')
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    if name_len > 0 {
        pairs.push(("__name__".into(), line[..name_len].to_string()));
    }
    let mut rest = &line[name_len..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            // A label name, bare or quoted.
            let (name, r) = if rest.starts_with('"') || rest.starts_with('\'') {
                let (s, r) = parse_quoted(rest)?;
                (s, r)
            } else {
                let n = rest
                    .char_indices()
                    .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
                    .map(|(i, c)| i + c.len_utf8())
                    .last()
                    .ok_or_else(|| format!("bad label in {line:?}"))?;
                (rest[..n].to_string(), &rest[n..])
            };
            let r = r.trim_start();
            if let Some(r) = r.strip_prefix('=') {
                let (v, r) = parse_quoted(r.trim_start())?;
                pairs.push((name, v));
                rest = r;
            } else {
                // A quoted metric name inside the braces.
                pairs.push(("__name__".into(), name));
                rest = r;
            }
        }
    }
    Ok((Labels::new(pairs), rest))
}

pub fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, q)) = chars.next() else {
        return Err("expected quote".into());
    };
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if q == '`' {
            if c == '`' {
                return Ok((out, &s[i + 1..]));
            }
            out.push(c);
            continue;
        }
        if escaped {
            out.push(match c {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '\\' => '\\',
                other => other,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return Ok((out, &s[i + c.len_utf8()..]));
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

/// Splits the values part into tokens; a native histogram `{{…}}` (with spaces inside) is one.
pub fn value_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth -= 1;
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Expands one value token: `1`, `_`, `stale`, `_x3`, `1x3`, `1+2x3`, `1-2x3`.
pub fn expand(tok: &str) -> Result<Vec<SeqValue>, String> {
    if tok.contains("{{") {
        // Native histogram (possibly with expanding notation): count it as one or more
        // histogram positions.
        let times = tok
            .rsplit_once("}}x")
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .map_or(1, |n| n + 1);
        return Ok(vec![SeqValue::Histogram; times]);
    }
    if tok == "_" {
        return Ok(vec![SeqValue::Omitted]);
    }
    if tok == "stale" {
        return Ok(vec![SeqValue::Stale]);
    }
    if let Some(n) = tok.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad token {tok}"))?;
        return Ok(vec![SeqValue::Omitted; n]);
    }
    // `a[+-]bxN` or `axN`: find the trailing xN.
    if let Some(xpos) = tok.rfind('x')
        && xpos > 0
        && xpos + 1 < tok.len()
        && tok[xpos + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        let xpos = tok.rfind('x').unwrap_or(0);
        let n: u64 = tok[xpos + 1..]
            .parse()
            .map_err(|_| format!("bad token {tok}"))?;
        let head = &tok[..xpos];
        // Split at a sign that is not the leading one and not an exponent sign.
        let bytes = head.as_bytes();
        let mut split = None;
        for i in (1..bytes.len()).rev() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (start, incr) = match split {
            Some(i) => (
                parse_number(&head[..i]).ok_or_else(|| format!("bad number in {tok}"))?,
                parse_number(&head[i..]).ok_or_else(|| format!("bad number in {tok}"))?,
            ),
            None => (
                parse_number(head).ok_or_else(|| format!("bad number in {tok}"))?,
                0.0,
            ),
        };
        let mut out = vec![SeqValue::Value(start)];
        let mut cur = start;
        for _ in 0..n {
            cur += incr;
            out.push(SeqValue::Value(cur));
        }
        return Ok(out);
    }
    parse_number(tok)
        .map(|v| vec![SeqValue::Value(v)])
        .ok_or_else(|| format!("bad value {tok:?}"))
}

pub fn parse_series(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (labels, rest) = parse_labels(line)?;
    let mut vals = Vec::new();
    for tok in value_tokens(rest) {
        vals.extend(expand(&tok)?);
    }
    Ok((labels, vals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation_expands_like_promqltest() {
        let (l, v) = parse_series(r#"m{a="b"} 0+10x2 _ stale 1x1 -1-1x1 _x2"#).unwrap();
        assert_eq!(l.to_string(), r#"m{a="b"}"#);
        let got: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        assert_eq!(
            got,
            [
                "Value(0.0)",
                "Value(10.0)",
                "Value(20.0)",
                "Omitted",
                "Stale",
                "Value(1.0)",
                "Value(1.0)",
                "Value(-1.0)",
                "Value(-2.0)",
                "Omitted",
                "Omitted"
            ]
        );
        assert_eq!(parse_duration("10s53ms"), Ok(10_053));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
    }
}
