//! Runs Prometheus' own PromQL test files (`promqltest` format) against postflight's engine.
//!
//! The files live outside the repository, in `../shared/conformance/promql/*.test`; they are read
//! from there and never copied. Cases outside postflight's scope are skipped by rule and counted:
//! native histograms (`{{…}}` data or expectations, queries selecting such series, including the
//! native-histogram twins that `load_with_nhcb` creates), `info()`, functions and features that
//! `check_supported` refuses (experimental functions, `limitk`, `fill`…), expressions the parser
//! does not accept (newer syntax), and evaluations that only assert annotations. Every other case
//! must pass: the test fails listing each failing case with file, line, expression, expectation
//! and result.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use postflight::promql::{self, Engine, Value};
use postflight::series::{
    Labels, STALE_NAN, Sample, SeriesSamples, SeriesSource, Timestamp, is_stale_nan,
};
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

const EPSILON: f64 = 0.000001;

/// A series of the in-memory test storage.
struct StoredSeries {
    labels: Labels,
    samples: Vec<Sample>,
}

/// The in-memory storage: series sorted by labels like the TSDB returns them, plus the label sets
/// of series holding native histograms (whose samples are not loaded).
#[derive(Default)]
struct MemSource {
    series: Vec<StoredSeries>,
    native: Vec<Labels>,
}

impl MemSource {
    fn add(&mut self, labels: Labels, samples: Vec<Sample>) {
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

fn matches(ms: &[Matcher], l: &Labels) -> bool {
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
}

/// One value of a series description.
#[derive(Clone, Copy, Debug)]
enum SeqValue {
    Value(f64),
    Omitted,
    Stale,
    Histogram,
}

/// Prometheus' `model.ParseDuration`: `1h30m`, `10s53ms`, `0`.
fn parse_duration(s: &str) -> Result<i64, String> {
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
fn parse_number(s: &str) -> Option<f64> {
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
fn parse_labels(line: &str) -> Result<(Labels, &str), String> {
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

fn parse_quoted(s: &str) -> Result<(String, &str), String> {
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
fn value_tokens(s: &str) -> Vec<String> {
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
fn expand(tok: &str) -> Result<Vec<SeqValue>, String> {
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

fn parse_series(line: &str) -> Result<(Labels, Vec<SeqValue>), String> {
    let (labels, rest) = parse_labels(line)?;
    let mut vals = Vec::new();
    for tok in value_tokens(rest) {
        vals.extend(expand(&tok)?);
    }
    Ok((labels, vals))
}

#[derive(Debug)]
enum ExpectKind {
    Fail(Option<String>, Option<String>),
}

struct EvalCase {
    line: usize,
    expr: String,
    instant: bool,
    start: i64,
    end: i64,
    step: i64,
    fail: Option<ExpectKind>,
    ordered: bool,
    annotations_expected: bool,
    expected_series: Vec<(usize, Labels, Vec<SeqValue>)>,
    expected_scalar: Option<f64>,
    expected_string: Option<String>,
    range_vector: bool,
    has_native_expectation: bool,
    parse_problem: Option<String>,
}

#[derive(Default)]
struct FileReport {
    passed: usize,
    skipped: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl FileReport {
    fn skip(&mut self, why: impl Into<String>) {
        *self.skipped.entry(why.into()).or_default() += 1;
    }
}

fn get_lines(input: &str) -> Vec<String> {
    input
        .lines()
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn run_file(path: &Path) -> FileReport {
    let text = std::fs::read_to_string(path).expect("readable test file");
    let lines = get_lines(&text);
    let mut rep = FileReport::default();
    let mut src = MemSource::default();
    let engine = Engine::default();
    let fname = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let cmd = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if cmd == "clear" {
            src = MemSource::default();
            i += 1;
        } else if cmd.starts_with("load") {
            let with_nhcb = cmd == "load_with_nhcb";
            let gap = parse_duration(l.split_whitespace().nth(1).unwrap_or("")).expect("load step");
            i += 1;
            // Within one load, a later definition of the same series replaces the earlier one.
            let mut defs: Vec<(Labels, Vec<Sample>)> = Vec::new();
            while i < lines.len() && !lines[i].is_empty() {
                let (labels, vals) =
                    parse_series(&lines[i]).unwrap_or_else(|e| panic!("{fname}:{}: {e}", i + 1));
                let mut samples = Vec::new();
                let mut native = false;
                for (k, v) in vals.iter().enumerate() {
                    let t = k as i64 * gap;
                    match v {
                        SeqValue::Value(x) => samples.push(Sample { t, v: *x }),
                        SeqValue::Stale => samples.push(Sample { t, v: STALE_NAN }),
                        SeqValue::Omitted => {}
                        SeqValue::Histogram => native = true,
                    }
                }
                if native {
                    src.native.push(labels.clone());
                }
                if with_nhcb {
                    // The native-histogram twin `load_with_nhcb` adds next to classic series.
                    if let Some(name) = labels.metric_name() {
                        for suffix in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = name.strip_suffix(suffix) {
                                let twin = labels.without(&["le"]).with("__name__", base);
                                src.native.push(twin);
                            }
                        }
                    }
                }
                match defs.iter_mut().find(|(l, _)| *l == labels) {
                    Some(d) => d.1 = samples,
                    None => defs.push((labels, samples)),
                }
                i += 1;
            }
            for (labels, samples) in defs {
                src.add(labels, samples);
            }
        } else if cmd.starts_with("eval") {
            let (case, next) = parse_eval(&lines, i);
            i = next;
            run_case(&fname, &engine, &src, case, &mut rep);
        } else {
            panic!("{fname}:{}: unknown command {l:?}", i + 1);
        }
    }
    rep
}

fn parse_eval(lines: &[String], start: usize) -> (EvalCase, usize) {
    let l = &lines[start];
    let mut words = l.splitn(2, char::is_whitespace);
    let head = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim();
    let modifier = head
        .strip_prefix("eval")
        .unwrap_or("")
        .trim_start_matches('_');
    let mut case = EvalCase {
        line: start + 1,
        expr: String::new(),
        instant: true,
        start: 0,
        end: 0,
        step: 0,
        fail: None,
        ordered: modifier == "ordered",
        annotations_expected: modifier == "warn" || modifier == "info",
        expected_series: Vec::new(),
        expected_scalar: None,
        expected_string: None,
        range_vector: false,
        has_native_expectation: false,
        parse_problem: None,
    };
    if modifier == "fail" {
        case.fail = Some(ExpectKind::Fail(None, None));
    }
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim_start().strip_prefix("at").unwrap_or(r).trim_start();
        let (t, expr) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
        case.start = parse_duration(t).unwrap_or_else(|e| panic!("line {}: {e}", start + 1));
        case.end = case.start;
        case.expr = expr.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range") {
        case.instant = false;
        let r = r
            .trim_start()
            .strip_prefix("from")
            .unwrap_or(r)
            .trim_start();
        let (from, r) = r.split_once(" to ").expect("range from .. to");
        let (to, r) = r.trim_start().split_once(" step ").expect("range step");
        let (step, expr) = r
            .trim_start()
            .split_once(char::is_whitespace)
            .expect("range expr");
        case.start = parse_duration(from).expect("from");
        case.end = parse_duration(to).expect("to");
        case.step = parse_duration(step).expect("step");
        case.expr = expr.trim().to_string();
    }
    let mut i = start + 1;
    let mut pos = 0;
    while i < lines.len() && !lines[i].is_empty() {
        let d = lines[i].as_str();
        if let Some(r) = d.strip_prefix("expect range vector") {
            let r = r
                .trim_start()
                .strip_prefix("from")
                .unwrap_or(r)
                .trim_start();
            let (from, r) = r.split_once(" to ").expect("range vector to");
            let (to, step) = r.split_once(" step ").expect("range vector step");
            case.start = parse_duration(from).expect("from");
            case.end = parse_duration(to).expect("to");
            case.step = parse_duration(step).expect("step");
            case.range_vector = true;
        } else if let Some(r) = d.strip_prefix("expect string") {
            let r = r.trim();
            case.expected_string = Some(match parse_quoted(r) {
                Ok((s, _)) => s,
                Err(_) => r.to_string(),
            });
        } else if d.split(' ').next() == Some("expect") {
            let r = d["expect".len()..].trim();
            let (kind, tail) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            match kind {
                "fail" => {
                    let tail = tail.trim();
                    let (msg, re) = if let Some(m) = tail.strip_prefix("msg:") {
                        (Some(m.trim().to_string()), None)
                    } else if let Some(m) = tail.strip_prefix("regex:") {
                        (None, Some(m.trim().to_string()))
                    } else {
                        (None, None)
                    };
                    case.fail = Some(ExpectKind::Fail(msg, re));
                }
                "ordered" => case.ordered = true,
                "warn" | "info" => case.annotations_expected = true,
                _ => {}
            }
        } else if let Some(v) = parse_number(d).filter(|_| !d.contains('{')) {
            case.expected_scalar = Some(v);
        } else {
            if d.contains("{{") {
                case.has_native_expectation = true;
            }
            match parse_series(d) {
                Ok((labels, vals)) => {
                    pos += 1;
                    case.expected_series.push((pos, labels, vals));
                }
                Err(e) => case.parse_problem = Some(e),
            }
        }
        i += 1;
    }
    (case, i)
}

/// All selectors of an expression, for the native-histogram skip rule.
fn selectors(e: &Expr, out: &mut Vec<Vec<Matcher>>) {
    match e {
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::VectorSelector(vs) => out.push(matchers_of(vs)),
        Expr::MatrixSelector(ms) => out.push(matchers_of(&ms.vs)),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        _ => {}
    }
}

fn matchers_of(vs: &promql_parser::parser::VectorSelector) -> Vec<Matcher> {
    let mut m = vs.matchers.matchers.clone();
    if let Some(n) = &vs.name {
        m.push(Matcher::new(
            promql_parser::label::MatchOp::Equal,
            "__name__",
            n,
        ));
    }
    m
}

/// True when the expression has a `\xNN` escape above 0x7f, which Go turns into a raw byte.
fn has_raw_byte_escape(expr: &str) -> bool {
    expr.match_indices("\\x").any(|(i, _)| {
        expr.get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .is_some_and(|b| b >= 0x80)
    })
}

fn fmt_labels(l: &Labels) -> String {
    format!("{l}")
}

fn run_case(fname: &str, engine: &Engine, src: &MemSource, case: EvalCase, rep: &mut FileReport) {
    let where_ = format!("{fname}:{}", case.line);
    if case.has_native_expectation {
        return rep.skip("native histogram in expected result");
    }
    if case.expr.contains("info(") {
        return rep.skip("info()");
    }
    if has_raw_byte_escape(&case.expr) {
        // Go reads `"\xff"` as the byte 0xFF (invalid UTF-8); promql-parser reads it as U+00FF.
        return rep.skip("string with \\x byte escape (Go bytes, parser reads code points)");
    }
    if let Some(p) = &case.parse_problem {
        return rep.skip(format!("unparsable expectation: {p}"));
    }
    let expr = match promql::parse(&case.expr) {
        Ok(e) => e,
        Err(e) => {
            if case.fail.is_some() {
                rep.passed += 1;
                return;
            }
            let short: String = e.lines().next().unwrap_or("").chars().take(60).collect();
            return rep.skip(format!("syntax the parser does not accept ({short})"));
        }
    };
    if let Err(e) = promql::check_supported(&expr) {
        return rep.skip(format!("unsupported: {e}"));
    }
    let mut sels = Vec::new();
    selectors(&expr, &mut sels);
    if sels
        .iter()
        .any(|m| src.native.iter().any(|l| matches(m, l)))
    {
        return rep.skip("selects native-histogram series");
    }
    if case.annotations_expected
        && case.expected_series.is_empty()
        && case.expected_scalar.is_none()
        && case.fail.is_none()
    {
        return rep.skip("annotation-only expectation");
    }
    let result = if case.instant {
        // With `expect range vector`, the query runs at the end of the expected range.
        engine.instant(src, &expr, case.end)
    } else {
        engine.range(src, &expr, case.start, case.end, case.step)
    };
    let fail = |rep: &mut FileReport, msg: String| {
        rep.failures
            .push(format!("{where_}: {}\n    {msg}", case.expr));
    };
    if let Some(ExpectKind::Fail(msg, re)) = &case.fail {
        match result {
            Ok(v) => fail(rep, format!("expected an error, got {v:?}")),
            Err(e) => {
                let text = e.to_string();
                if let Some(m) = msg
                    && *m != text
                {
                    return fail(rep, format!("expected error {m:?}, got {text:?}"));
                }
                if let Some(r) = re
                    && !regex::Regex::new(r)
                        .map(|r| r.is_match(&text))
                        .unwrap_or(false)
                {
                    return fail(rep, format!("expected error matching {r:?}, got {text:?}"));
                }
                rep.passed += 1;
            }
        }
        return;
    }
    let value = match result {
        Ok(v) => v,
        Err(e) => return fail(rep, format!("unexpected error: {e}")),
    };
    if let Err(e) = compare(&case, &value) {
        return fail(rep, e);
    }
    // Like promqltest: an instant query must give the same result evaluated as the middle step
    // of a range query.
    if case.instant && !case.range_vector && case.expected_string.is_none() && !case.ordered {
        let t = case.start;
        match engine.range(src, &expr, t - 60_000, t + 60_000, 60_000) {
            Err(e) => return fail(rep, format!("range mode: unexpected error: {e}")),
            Ok(Value::Matrix(m)) => {
                let mid = if let Value::Scalar { .. } = value {
                    m.first()
                        .and_then(|s| s.samples.iter().find(|p| p.t == t))
                        .map(|p| Value::Scalar { t, v: p.v })
                        .unwrap_or(Value::Vector(Vec::new()))
                } else {
                    Value::Vector(
                        m.iter()
                            .filter_map(|s| {
                                s.samples
                                    .iter()
                                    .find(|p| p.t == t)
                                    .map(|p| promql::VectorSample {
                                        labels: s.labels.clone(),
                                        t,
                                        v: p.v,
                                    })
                            })
                            .collect(),
                    )
                };
                if let Err(e) = compare(&case, &mid) {
                    return fail(rep, format!("range mode: {e}"));
                }
            }
            Ok(other) => return fail(rep, format!("range mode returned {other:?}")),
        }
    }
    rep.passed += 1;
}

fn compare(case: &EvalCase, value: &Value) -> Result<(), String> {
    let expected: BTreeMap<String, (usize, &Labels, &Vec<SeqValue>)> = case
        .expected_series
        .iter()
        .map(|(p, l, v)| (fmt_labels(l), (*p, l, v)))
        .collect();
    match value {
        Value::String { v, .. } => match &case.expected_string {
            Some(s) if s == v => Ok(()),
            other => Err(format!("expected string {other:?}, got {v:?}")),
        },
        Value::Scalar { v, .. } => match case.expected_scalar {
            Some(e) if promql_almost_equal(e, *v) => Ok(()),
            other => Err(format!("expected scalar {other:?}, got scalar {v}")),
        },
        Value::Vector(samples) => {
            if case.expected_scalar.is_some() {
                return Err(format!("expected scalar, got vector {samples:?}"));
            }
            let mut seen = HashSet::new();
            for (i, s) in samples.iter().enumerate() {
                let key = fmt_labels(&s.labels);
                let Some((pos, _, vals)) = expected.get(&key) else {
                    return Err(format!(
                        "unexpected series {key} = {} in result {}",
                        s.v,
                        show_vector(samples)
                    ));
                };
                if case.ordered && *pos != i + 1 {
                    return Err(format!(
                        "expected {key} at position {pos}, found at {}: {}",
                        i + 1,
                        show_vector(samples)
                    ));
                }
                let ok = match vals.first() {
                    Some(SeqValue::Value(e)) => promql_almost_equal(*e, s.v),
                    Some(SeqValue::Stale) => is_stale_nan(s.v),
                    _ => false,
                };
                if !ok {
                    return Err(format!("expected {key} = {:?}, got {}", vals.first(), s.v));
                }
                seen.insert(key);
            }
            for k in expected.keys() {
                if !seen.contains(k) {
                    return Err(format!(
                        "expected series {k} not found in result {}",
                        show_vector(samples)
                    ));
                }
            }
            Ok(())
        }
        Value::Matrix(series) => {
            if case.ordered {
                return Err("expected ordered result, got a matrix".into());
            }
            if series.windows(2).any(|w| w[0].labels > w[1].labels) {
                return Err("matrix not sorted by labels".into());
            }
            let step = if case.step == 0 { 1 } else { case.step };
            let mut seen = HashSet::new();
            for s in series {
                let key = fmt_labels(&s.labels);
                let Some((_, _, vals)) = expected.get(&key) else {
                    return Err(format!("unexpected series {key} with {:?}", s.samples));
                };
                let mut exp = Vec::new();
                for (k, v) in vals.iter().enumerate() {
                    let t = case.start + k as i64 * step;
                    if t > case.end {
                        return Err(format!("expected more points for {key} than the range has"));
                    }
                    match v {
                        SeqValue::Value(x) => exp.push((t, *x)),
                        SeqValue::Stale => exp.push((t, STALE_NAN)),
                        _ => {}
                    }
                }
                let got: Vec<(i64, f64)> = s.samples.iter().map(|p| (p.t, p.v)).collect();
                let same = exp.len() == got.len()
                    && exp
                        .iter()
                        .zip(&got)
                        .all(|(a, b)| a.0 == b.0 && promql_almost_equal(a.1, b.1));
                if !same {
                    return Err(format!("series {key}: expected {exp:?}, got {got:?}"));
                }
                seen.insert(key);
            }
            for k in expected.keys() {
                if !seen.contains(k) {
                    return Err(format!("expected series {k} not found"));
                }
            }
            Ok(())
        }
    }
}

fn promql_almost_equal(a: f64, b: f64) -> bool {
    // Prometheus' `almost.Equal` with the test suite's epsilon.
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn show_vector(v: &[promql::VectorSample]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("{} {}", s.labels, s.v)).collect();
    format!("[{}]", parts.join(", "))
}

/// `$POSTFLIGHT_PROMQL_TESTS` if set, else `../shared/conformance/promql` next to the crate; a
/// git worktree one level deeper (`wt/<name>`) finds the same folder one level up.
fn conformance_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("POSTFLIGHT_PROMQL_TESTS") {
        return PathBuf::from(d);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let primary = root.join("../shared/conformance/promql");
    if primary.is_dir() {
        return primary;
    }
    let worktree = root.join("../../shared/conformance/promql");
    if worktree.is_dir() {
        return worktree;
    }
    primary
}

#[test]
fn prometheus_promql_test_files() {
    let dir = conformance_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("skipping: {} not found", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    if files.is_empty() {
        println!("skipping: no .test files in {}", dir.display());
        return;
    }
    let mut failures = Vec::new();
    let (mut total_pass, mut total_skip) = (0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let rep = run_file(f);
        let skipped: usize = rep.skipped.values().sum();
        println!(
            "{}: {} passed, {} skipped, {} failed",
            f.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            rep.passed,
            skipped,
            rep.failures.len()
        );
        for (why, n) in &rep.skipped {
            println!("    skipped {n}: {why}");
            *reasons.entry(why.clone()).or_default() += n;
        }
        total_pass += rep.passed;
        total_skip += skipped;
        failures.extend(rep.failures);
    }
    println!(
        "total: {total_pass} passed, {total_skip} skipped, {} failed",
        failures.len()
    );
    if !failures.is_empty() {
        panic!(
            "{} conformance case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

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
