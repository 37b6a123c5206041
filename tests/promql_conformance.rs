//! Runs Prometheus' own PromQL test files (`promqltest` format) against postflight's engine.
//!
//! The files live outside the repository, in `../shared/conformance/promql/*.test`; they are read
//! from there and never copied. Only cases outside postflight's scope are skipped, by rule, and
//! each skip is printed with its reason and line: native histograms (`{{…}}` data or
//! expectations, queries selecting such series, including the native-histogram twins that
//! `load_with_nhcb` creates), `info()`, experimental PromQL (functions the parser marks
//! experimental, `limitk`/`limit_ratio`, `fill`), and `"\xNN"` byte escapes that Go reads as
//! invalid UTF-8. Cases that expect annotations are run and their result compared; the annotation
//! itself is not checked (the engine reports none). Every other case must pass, including cases
//! the engine refuses or cannot parse: the test fails listing each failing case with file, line,
//! expression, expectation and result.

#[path = "common/promql.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use common::{
    MemSource, SeqValue, matches, parse_duration, parse_number, parse_quoted, parse_series,
};
use postflight::promql::{self, Engine, Value};
use postflight::series::{Labels, STALE_NAN, Sample, is_stale_nan};
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

const EPSILON: f64 = 0.000001;

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
    /// Skip reason → the lines of the skipped cases.
    skipped: BTreeMap<String, Vec<usize>>,
    /// Cases that expect annotations (`expect warn|info`): their result is compared, the
    /// annotation is not (the engine reports none).
    annotations_unchecked: usize,
    failures: Vec<String>,
}

impl FileReport {
    fn skip(&mut self, line: usize, why: impl Into<String>) {
        self.skipped.entry(why.into()).or_default().push(line);
    }
}

/// The first experimental feature of `expr`, if any: a function the parser marks experimental
/// (Prometheus' `--enable-feature=promql-experimental-functions`), `limitk`/`limit_ratio`, or a
/// `fill` modifier.
fn experimental(e: &Expr) -> Option<String> {
    use promql_parser::parser::token::{T_LIMIT_RATIO, T_LIMITK};
    match e {
        Expr::Aggregate(a) => {
            let op = a.op.id();
            if op == T_LIMITK || op == T_LIMIT_RATIO {
                return Some(format!("aggregation {}", a.op));
            }
            a.param
                .as_deref()
                .and_then(experimental)
                .or_else(|| experimental(&a.expr))
        }
        Expr::Unary(u) => experimental(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Some("fill modifier".into());
            }
            experimental(&b.lhs).or_else(|| experimental(&b.rhs))
        }
        Expr::Paren(p) => experimental(&p.expr),
        Expr::Subquery(s) => experimental(&s.expr),
        Expr::Call(c) => {
            if c.func.experimental {
                return Some(format!("function {}", c.func.name));
            }
            c.args.args.iter().find_map(|a| experimental(a))
        }
        _ => None,
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
    let fail = |rep: &mut FileReport, msg: String| {
        rep.failures
            .push(format!("{where_}: {}\n    {msg}", case.expr));
    };
    if case.has_native_expectation {
        return rep.skip(case.line, "native histogram in expected result");
    }
    if case.expr.contains("info(") {
        return rep.skip(
            case.line,
            "info() (needs native target-info joins, out of scope)",
        );
    }
    if has_raw_byte_escape(&case.expr) {
        // Go reads `"\xff"` as the byte 0xFF (invalid UTF-8); promql-parser reads it as U+00FF.
        return rep.skip(
            case.line,
            "string with \\x byte escape (invalid UTF-8 in Go, a code point in Rust)",
        );
    }
    if let Some(p) = &case.parse_problem {
        return fail(rep, format!("runner cannot read the expectation: {p}"));
    }
    let expr = match promql::parse(&case.expr) {
        Ok(e) => e,
        Err(e) => {
            if case.fail.is_some() {
                rep.passed += 1;
                return;
            }
            return fail(rep, format!("parse error: {e}"));
        }
    };
    let mut sels = Vec::new();
    selectors(&expr, &mut sels);
    if sels
        .iter()
        .any(|m| src.native.iter().any(|l| matches(m, l)))
    {
        return rep.skip(case.line, "selects native-histogram series");
    }
    if let Err(e) = promql::check_supported(&expr) {
        // Only experimental PromQL (behind Prometheus' feature flags) may be missing; anything
        // else the engine refuses is a conformance failure.
        return match experimental(&expr) {
            Some(what) => rep.skip(case.line, format!("experimental: {what}")),
            None => fail(rep, format!("refused: {e}")),
        };
    }
    if case.annotations_expected {
        // The engine reports no annotations; the result itself is still compared below.
        rep.annotations_unchecked += 1;
    }
    let result = if case.instant {
        // With `expect range vector`, the query runs at the end of the expected range.
        let result = engine.instant(src, &expr, case.end);
        // Inside a rule round the engine shares range-function results between expressions
        // (`RoundMemo`): the first evaluation fills the memo, the second reads from it, and
        // both must give exactly the plain result.
        let memo = promql::RoundMemo::default();
        for pass in ["filling", "reading"] {
            let with_memo = engine.instant_in_round(src, &expr, case.end, &memo);
            if format!("{with_memo:?}") != format!("{result:?}") {
                return fail(
                    rep,
                    format!("{pass} the round memo gave {with_memo:?}, plain {result:?}"),
                );
            }
        }
        result
    } else {
        engine.range(src, &expr, case.start, case.end, case.step)
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
    let mut unchecked = 0;
    for f in &files {
        let rep = run_file(f);
        let skipped: usize = rep.skipped.values().map(Vec::len).sum();
        println!(
            "{}: {} passed, {} skipped, {} failed ({} with annotation expectations: result compared, annotation not)",
            f.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            rep.passed,
            skipped,
            rep.failures.len(),
            rep.annotations_unchecked,
        );
        for (why, lines) in &rep.skipped {
            let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
            println!(
                "    skipped {}: {why} (lines {})",
                lines.len(),
                lines.join(" ")
            );
            *reasons.entry(why.clone()).or_default() += lines.len();
        }
        unchecked += rep.annotations_unchecked;
        total_pass += rep.passed;
        total_skip += skipped;
        failures.extend(rep.failures);
    }
    println!(
        "total: {total_pass} passed, {total_skip} skipped, {} failed; {unchecked} annotation expectations not checked",
        failures.len()
    );
    for (why, n) in &reasons {
        println!("  skipped {n}: {why}");
    }
    if !failures.is_empty() {
        panic!(
            "{} conformance case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
