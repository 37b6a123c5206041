//! The subset of Go's text/template that Prometheus alert labels and annotations use:
//! `{{ $labels.job }}`, `{{ $value }}`, `{{ $externalLabels.env }}` (and `.Labels`, `.Value`,
//! `.ExternalLabels`), pipelines with `|`, string and number literals, `{{-`/`-}}` trimming,
//! comments, and the functions humanize, humanize1024, humanizePercentage, humanizeDuration,
//! humanizeTimestamp, printf, toUpper, toLower, title and index.
//!
//! Templates are parsed when the config loads, so an unsupported construct (`if`, `range`,
//! `query`, ...) is a config error rather than a broken page at 3 a.m.

use std::collections::BTreeMap;

pub mod gofmt;

use gofmt::{Arg, format_g, format_value, sprintf};

/// What a template can read.
#[derive(Debug, Clone, Default)]
pub struct TemplateData<'a> {
    /// The alert's labels (`$labels`).
    pub labels: BTreeMap<&'a str, &'a str>,
    /// `[global].labels` (`$externalLabels`).
    pub external_labels: BTreeMap<&'a str, &'a str>,
    /// The sample value (`$value`).
    pub value: f64,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Pipeline(Vec<Command>),
}

#[derive(Debug, Clone, PartialEq)]
struct Command {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Func(Func),
    Str(String),
    Num(f64),
    Labels(Option<String>),
    ExternalLabels(Option<String>),
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Humanize,
    Humanize1024,
    HumanizePercentage,
    HumanizeDuration,
    HumanizeTimestamp,
    Printf,
    ToUpper,
    ToLower,
    Title,
    Index,
}

#[derive(Debug, Clone)]
enum Val<'a> {
    Num(f64),
    Str(String),
    Map(&'a BTreeMap<&'a str, &'a str>),
}

impl Template {
    /// Parses a template; the error says what is unsupported or malformed.
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let mut text = &rest[..start];
            if trim_next {
                text = text.trim_start();
            }
            let after = &rest[start + 2..];
            let (trim_prev, after) = match after.strip_prefix('-') {
                Some(a) if a.starts_with([' ', '\t', '\n', '\r']) => (true, a),
                _ => (false, after),
            };
            if trim_prev {
                text = text.trim_end();
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_string()));
            }
            let end = find_close(after).ok_or("unclosed action: missing }}")?;
            let mut inner = &after[..end];
            let mut consumed = end + 2;
            trim_next = false;
            if inner.ends_with('-') && inner[..inner.len() - 1].ends_with([' ', '\t', '\n', '\r']) {
                inner = &inner[..inner.len() - 1];
                trim_next = true;
            }
            let inner = inner.trim();
            if !(inner.starts_with("/*") && inner.ends_with("*/")) {
                parts.push(Part::Pipeline(parse_pipeline(inner)?));
            }
            if consumed > after.len() {
                consumed = after.len();
            }
            rest = &after[consumed..];
        }
        let text = if trim_next { rest.trim_start() } else { rest };
        if !text.is_empty() {
            parts.push(Part::Text(text.to_string()));
        }
        Ok(Template { parts })
    }

    /// True when the template is plain text (no actions).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders the template.
    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Pipeline(cmds) => {
                    let mut prev: Option<Val<'_>> = None;
                    for c in cmds {
                        prev = Some(eval_command(c, prev, data)?);
                    }
                    if let Some(v) = prev {
                        print_val(&v, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Finds the `}}` that closes an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_pipeline(s: &str) -> Result<Vec<Command>, String> {
    let tokens = tokenize(s)?;
    if tokens.is_empty() {
        return Err("empty action {{ }}".into());
    }
    let mut cmds = Vec::new();
    for group in tokens.split(|t| t == "|") {
        if group.is_empty() {
            return Err(format!("empty command in pipeline {s:?}"));
        }
        let terms = group
            .iter()
            .map(|t| parse_term(t))
            .collect::<Result<Vec<_>, _>>()?;
        if terms.len() > 1 && !matches!(terms[0], Term::Func(_)) {
            return Err(format!("{:?} is not a function", group[0]));
        }
        cmds.push(Command { terms });
    }
    Ok(cmds)
}

fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            out.push("|".into());
        } else if c == '"' || c == '`' {
            let mut tok = String::new();
            tok.push(chars.next().unwrap_or('"'));
            let mut closed = false;
            while let Some(ch) = chars.next() {
                tok.push(ch);
                if ch == '\\' && c == '"' {
                    if let Some(n) = chars.next() {
                        tok.push(n);
                    }
                } else if ch == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(format!("unterminated string in {s:?}"));
            }
            out.push(tok);
        } else if c == '(' || c == ')' {
            return Err("parenthesised pipelines are not supported".into());
        } else {
            let mut tok = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '|' {
                    break;
                }
                tok.push(ch);
                chars.next();
            }
            out.push(tok);
        }
    }
    Ok(out)
}

fn parse_term(t: &str) -> Result<Term, String> {
    if let Some(q) = t.strip_prefix('"') {
        let body = q.strip_suffix('"').ok_or("bad string literal")?;
        return Ok(Term::Str(unescape(body)));
    }
    if let Some(q) = t.strip_prefix('`') {
        return Ok(Term::Str(
            q.strip_suffix('`').ok_or("bad raw string")?.to_string(),
        ));
    }
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return t
            .parse::<f64>()
            .map(Term::Num)
            .map_err(|_| format!("bad number {t:?}"));
    }
    let field = |prefix: &str| -> Option<Option<String>> {
        let rest = t.strip_prefix(prefix)?;
        if rest.is_empty() {
            Some(None)
        } else {
            rest.strip_prefix('.').map(|k| Some(k.to_string()))
        }
    };
    if let Some(k) = field("$labels").or_else(|| field(".Labels")) {
        return Ok(Term::Labels(k));
    }
    if let Some(k) = field("$externalLabels").or_else(|| field(".ExternalLabels")) {
        return Ok(Term::ExternalLabels(k));
    }
    if t == "$value" || t == ".Value" {
        return Ok(Term::Value);
    }
    let f = match t {
        "humanize" => Func::Humanize,
        "humanize1024" => Func::Humanize1024,
        "humanizePercentage" => Func::HumanizePercentage,
        "humanizeDuration" => Func::HumanizeDuration,
        "humanizeTimestamp" => Func::HumanizeTimestamp,
        "printf" => Func::Printf,
        "toUpper" => Func::ToUpper,
        "toLower" => Func::ToLower,
        "title" => Func::Title,
        "index" => Func::Index,
        "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" => {
            return Err(format!(
                "{{{{ {t} }}}} is not supported in postflight templates"
            ));
        }
        _ => return Err(format!("unknown function or variable {t:?}")),
    };
    Ok(Term::Func(f))
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c) => out.push(c),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `$labels` or `$externalLabels`, or one label of them (`$labels.job`). As Prometheus sets
/// `missingkey=zero`, an absent label is "".
fn label_term<'a>(map: &'a BTreeMap<&'a str, &'a str>, key: Option<&str>) -> Val<'a> {
    match key {
        Some(k) => Val::Str(map.get(k).copied().unwrap_or("").to_string()),
        None => Val::Map(map),
    }
}

fn term_val<'a>(t: &Term, data: &'a TemplateData<'a>) -> Result<Val<'a>, String> {
    Ok(match t {
        Term::Str(s) => Val::Str(s.clone()),
        Term::Num(n) => Val::Num(*n),
        Term::Value => Val::Num(data.value),
        Term::Labels(k) => label_term(&data.labels, k.as_deref()),
        Term::ExternalLabels(k) => label_term(&data.external_labels, k.as_deref()),
        Term::Func(_) => return Err("a function cannot be an argument".into()),
    })
}

fn eval_command<'a>(
    c: &Command,
    prev: Option<Val<'a>>,
    data: &'a TemplateData<'a>,
) -> Result<Val<'a>, String> {
    let Term::Func(f) = c.terms[0] else {
        if c.terms.len() == 1 && prev.is_none() {
            return term_val(&c.terms[0], data);
        }
        return Err("a value cannot take arguments; use a function".into());
    };
    let mut args: Vec<Val<'a>> = c.terms[1..]
        .iter()
        .map(|t| term_val(t, data))
        .collect::<Result<_, _>>()?;
    args.extend(prev);
    let num = |v: &Val<'_>| -> Result<f64, String> {
        match v {
            Val::Num(n) => Ok(*n),
            Val::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{s:?} is not a number")),
            Val::Map(_) => Err("a label map is not a number".into()),
        }
    };
    let one = |name: &str| -> Result<&Val<'a>, String> {
        if args.len() != 1 {
            return Err(format!("{name} takes one argument, got {}", args.len()));
        }
        Ok(&args[0])
    };
    Ok(match f {
        Func::Humanize => Val::Str(humanize(num(one("humanize")?)?)),
        Func::Humanize1024 => Val::Str(humanize1024(num(one("humanize1024")?)?)),
        Func::HumanizePercentage => Val::Str(format!(
            "{}%",
            format_g(num(one("humanizePercentage")?)? * 100.0, Some(4))
        )),
        Func::HumanizeDuration => Val::Str(humanize_duration(num(one("humanizeDuration")?)?)),
        Func::HumanizeTimestamp => Val::Str(humanize_timestamp(num(one("humanizeTimestamp")?)?)),
        Func::ToUpper => Val::Str(to_string(one("toUpper")?).to_uppercase()),
        Func::ToLower => Val::Str(to_string(one("toLower")?).to_lowercase()),
        Func::Title => Val::Str(title(&to_string(one("title")?))),
        Func::Printf => {
            let Some((Val::Str(format), rest)) = args.split_first() else {
                return Err("printf needs a format string first".into());
            };
            let rest: Vec<Arg> = rest
                .iter()
                .map(|v| match v {
                    Val::Num(n) => Arg::Num(*n),
                    other => Arg::Str(to_string(other)),
                })
                .collect();
            Val::Str(sprintf(format, &rest))
        }
        Func::Index => match args.as_slice() {
            [Val::Map(m), key] => Val::Str(
                m.get(to_string(key).as_str())
                    .copied()
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => return Err("index takes a label map and a key".into()),
        },
    })
}

fn to_string(v: &Val<'_>) -> String {
    let mut s = String::new();
    print_val(v, &mut s);
    s
}

fn print_val(v: &Val<'_>, out: &mut String) {
    match v {
        Val::Num(n) => out.push_str(&format_value(*n)),
        Val::Str(s) => out.push_str(s),
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                out.push_str(v);
            }
            out.push(']');
        }
    }
}

fn title(s: &str) -> String {
    let mut out = String::new();
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric();
    }
    out
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let (v, prefix) = if v.abs() >= 1.0 {
        scale_large(v, 1000.0, ["k", "M", "G", "T", "P", "E", "Z", "Y"])
    } else {
        scale_small(v)
    };
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// `v` divided by `base` while its magnitude is at least `base`, with the prefix of the last
/// division: the large side of `humanize` and `humanize1024`.
fn scale_large(mut v: f64, base: f64, prefixes: [&'static str; 8]) -> (f64, &'static str) {
    let mut prefix = "";
    for p in prefixes {
        if v.abs() < base {
            break;
        }
        prefix = p;
        v /= base;
    }
    (v, prefix)
}

/// `v` multiplied by 1000 while its magnitude is below 1, with the SI prefix of the last step:
/// the small side of `humanize` and of `humanizeDuration` under a second.
fn scale_small(mut v: f64) -> (f64, &'static str) {
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    (v, prefix)
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let (v, prefix) = scale_large(v, 1024.0, ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]);
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or `1.5s`, `250ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    let sign = if v < 0.0 {
        v = -v;
        "-"
    } else {
        ""
    };
    if v < 1.0 {
        if v == 0.0 {
            return format!("{}s", format_g(v, Some(4)));
        }
        let (v, prefix) = scale_small(v);
        return format!("{sign}{}{prefix}s", format_g(v, Some(4)));
    }
    let secs = v as i64;
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
    );
    if days != 0 {
        format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
    } else if hours != 0 {
        format!("{sign}{hours}h {minutes}m {seconds}s")
    } else if minutes != 0 {
        format!("{sign}{minutes}m {seconds}s")
    } else {
        format!("{sign}{}s", format_g(v, Some(4)))
    }
}

/// Prometheus' `humanizeTimestamp`: a Unix time as a UTC date.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    let secs = v.trunc() as i64;
    let nanos = ((v - v.trunc()) * 1e9) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string(),
        None => format_g(v, Some(4)),
    }
}

#[cfg(test)]
mod tests;
