//! Differential test against the real Prometheus: postflight evaluates a set of expressions,
//! writes its answers as the expected samples of a `promtool test rules` file, and promtool
//! (Prometheus 2.42 here) must agree.
//!
//! Evaluation times are off the 1m sample grid (e.g. 10m30s) so that no sample sits exactly on a
//! window boundary, where Prometheus 2 (closed windows) and 3 (left-open) differ. Expressions
//! avoid the other known 2→3 differences (`__name__` handling after `label_replace`, removed
//! functions). promtool compares values exactly, so results that are not integers are wrapped
//! in `round(…, 1e-9)`: the last-bit differences between Prometheus versions (Kahan summation,
//! operation order) vanish, while any real difference still shows.
//!
//! `histogram_fraction` has no case here: Prometheus 2.42 evaluates it over native histograms
//! only and returns nothing for classic `le` buckets (checked with `promtool test rules`: an
//! expectation of `{job="api"} 0.5` for `histogram_fraction(0, 0.5, req_bucket)` got `nil`).
//! Its classic-bucket behaviour is covered by the Prometheus 3 conformance files instead.

#[path = "common/promql.rs"]
mod common;

use std::fmt::Write as _;
use std::process::Command;

use common::{MemSource, SeqValue, parse_series};
use postflight::promql::{self, Engine, Value};
use postflight::series::{STALE_NAN, Sample};

const PROMTOOL: &str = "/usr/bin/promtool";

/// Input series in promtool notation, one sample per minute from t=0.
const SERIES: &[(&str, &str)] = &[
    (
        r#"http_requests_total{job="api",instance="a",code="200"}"#,
        "0+60x30",
    ),
    (
        r#"http_requests_total{job="api",instance="b",code="200"}"#,
        "0+120x30",
    ),
    (
        r#"http_requests_total{job="api",instance="a",code="500"}"#,
        "0+6x30",
    ),
    (
        r#"http_requests_total{job="api",instance="b",code="500"}"#,
        "0+3x30",
    ),
    // A counter reset at 11m.
    (
        r#"http_requests_total{job="web",instance="c",code="200"}"#,
        "100+30x10 0+30x19",
    ),
    (
        r#"gauge{job="api",instance="a"}"#,
        "1 5 3 8 2 9 4 7 6 10 5 3 8 1 9 2 7 4 6 10 0 5 3 8 2 9 4 7 6 10 5",
    ),
    (r#"gauge{job="api",instance="b"}"#, "30-1x30"),
    (r#"gauge{job="web",instance="c"}"#, "2+0.5x30"),
    // Gaps longer than the lookback.
    (
        r#"gappy{job="api"}"#,
        "1 2 3 _x6 10 11 12 _x8 20 21 22 23 24 25 26 27 28 29",
    ),
    // A staleness marker ends the series until it resumes.
    (
        r#"flappy{job="api"}"#,
        "1 2 3 4 5 6 7 8 9 10 stale _x4 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30",
    ),
    (r#"up{job="api",instance="a"}"#, "1x30"),
    (r#"up{job="api",instance="b"}"#, "1x30"),
    (r#"up{job="web",instance="c"}"#, "1x12 0x18"),
    (r#"build_info{job="api",version="1.2.3"}"#, "1x30"),
    (r#"build_info{job="web",version="2.0.0"}"#, "1x30"),
    (
        r#"req_duration_seconds_bucket{job="api",le="0.1"}"#,
        "0+10x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="api",le="0.5"}"#,
        "0+30x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="api",le="1"}"#,
        "0+45x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="api",le="+Inf"}"#,
        "0+50x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="web",le="0.1"}"#,
        "0+2x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="web",le="0.5"}"#,
        "0+4x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="web",le="1"}"#,
        "0+18x30",
    ),
    (
        r#"req_duration_seconds_bucket{job="web",le="+Inf"}"#,
        "0+20x30",
    ),
    (r#"req_duration_seconds_sum{job="api"}"#, "0+12x30"),
    (r#"req_duration_seconds_count{job="api"}"#, "0+50x30"),
    // A histogram without +Inf bucket gives NaN; one with decreasing buckets is fixed.
    (r#"odd_bucket{le="1"}"#, "0+10x30"),
    (r#"odd_bucket{le="2"}"#, "0+8x30"),
    (r#"odd_bucket{le="+Inf"}"#, "0+20x30"),
    (
        r#"temp_celsius{room="a"}"#,
        "20.5 21 21.5 22 22.5 23 23.5 24 23 22 21 20 19 18 17 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31",
    ),
    (
        r#"temp_celsius{room="b"}"#,
        "-5 -4 -3 -2 -1 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25",
    ),
];

/// Expressions and their evaluation times (seconds), off the sample grid.
const EXPRS: &[(&str, u32)] = &[
    // Selectors, matchers, offset, @.
    (r#"http_requests_total{job="api"}"#, 630),
    (r#"http_requests_total{code!="200"}"#, 630),
    (r#"http_requests_total{instance=~"a|c"}"#, 630),
    (r#"http_requests_total{instance!~"a|c"}"#, 630),
    (r#"{__name__=~"up|gauge", job="web"}"#, 630),
    (r#"gauge offset 5m"#, 630),
    (r#"gauge @ 300"#, 630),
    (r#"gauge @ 300 offset 1m"#, 1230),
    (r#"gappy"#, 330),
    (r#"gappy"#, 630),
    (r#"gappy"#, 1230),
    (r#"flappy"#, 610),
    (r#"flappy"#, 690),
    (r#"flappy"#, 990),
    (r#"count_over_time(flappy[10m])"#, 990),
    // Counters.
    (r#"rate(http_requests_total[5m])"#, 630),
    (r#"rate(http_requests_total[5m])"#, 750),
    (r#"increase(http_requests_total[5m])"#, 750),
    (r#"irate(http_requests_total[5m])"#, 690),
    (r#"rate(http_requests_total{job="web"}[3m])"#, 690),
    (r#"resets(http_requests_total[20m])"#, 1230),
    (r#"delta(gauge[5m])"#, 630),
    (r#"idelta(gauge[5m])"#, 630),
    (r#"deriv(gauge[10m])"#, 1230),
    (r#"predict_linear(gauge{instance="b"}[10m], 600)"#, 1230),
    (r#"changes(gauge[10m])"#, 630),
    (r#"rate(http_requests_total[5m] offset 5m)"#, 1230),
    (r#"rate(http_requests_total[5m] @ 600)"#, 1230),
    // Over time.
    (r#"avg_over_time(gauge[5m])"#, 630),
    (r#"min_over_time(gauge[5m])"#, 630),
    (r#"max_over_time(gauge[5m])"#, 630),
    (r#"sum_over_time(gauge[5m])"#, 630),
    (r#"count_over_time(gappy[10m])"#, 1230),
    (r#"quantile_over_time(0.9, gauge[10m])"#, 1230),
    (r#"stddev_over_time(gauge[10m])"#, 1230),
    (r#"stdvar_over_time(gauge[10m])"#, 1230),
    (r#"last_over_time(gappy[10m])"#, 930),
    (r#"present_over_time(gappy[3m])"#, 930),
    (r#"absent_over_time(gappy{job="api"}[3m])"#, 930),
    (r#"absent_over_time(gappy{job="api"}[3m])"#, 630),
    // Subqueries.
    (
        r#"max_over_time(rate(http_requests_total{job="web"}[2m])[10m:1m])"#,
        1230,
    ),
    (r#"avg_over_time(gauge[5m:30s])"#, 645),
    (r#"sum_over_time(sum(gauge)[3m:1m] offset 2m)"#, 1230),
    // Functions on instant vectors.
    (r#"abs(temp_celsius - 10)"#, 630),
    (r#"ceil(gauge / 3)"#, 630),
    (r#"floor(gauge / 3)"#, 630),
    (r#"round(temp_celsius)"#, 90),
    (r#"round(gauge / 3, 0.5)"#, 630),
    (r#"clamp(gauge, 2, 6)"#, 630),
    (r#"clamp_min(gauge, 6)"#, 630),
    (r#"clamp_max(gauge, 6)"#, 630),
    (r#"exp(gauge{instance="a"} / 10)"#, 630),
    (r#"ln(gauge)"#, 630),
    (r#"log2(gauge)"#, 630),
    (r#"log10(gauge)"#, 630),
    (r#"sqrt(gauge)"#, 630),
    (r#"sgn(temp_celsius)"#, 270),
    (r#"timestamp(gappy)"#, 1230),
    (r#"timestamp(gauge @ 300)"#, 630),
    (r#"time()"#, 630),
    (r#"vector(time()) - 600"#, 630),
    (r#"scalar(gauge{instance="a"}) * 2"#, 630),
    (r#"scalar(sum(gauge))"#, 630),
    (r#"absent(nonexistent{job="x"})"#, 630),
    (r#"absent(gauge)"#, 630),
    (r#"sin(gauge) + cos(gauge)"#, 630),
    (r#"gauge atan2 2"#, 630),
    (r#"deg(vector(pi())) + rad(vector(180))"#, 630),
    (
        r#"minute(vector(4000)) + hour(vector(90000)) + day_of_week(vector(86400 * 3))"#,
        630,
    ),
    (
        r#"day_of_month(vector(1709214300)) + month(vector(1709214300)) + year(vector(1709214300))"#,
        630,
    ),
    (
        r#"days_in_month(vector(1709214300)) + day_of_year(vector(1709214300))"#,
        630,
    ),
    (
        r#"label_replace(gauge, "host", "h-$1", "instance", "(.*)")"#,
        630,
    ),
    (r#"label_join(up, "id", "/", "job", "instance")"#, 630),
    (r#"sort_desc(gauge)"#, 630),
    (r#"sort(gauge)"#, 630),
    // Histograms.
    (
        r#"histogram_quantile(0.5, rate(req_duration_seconds_bucket[5m]))"#,
        630,
    ),
    (
        r#"histogram_quantile(0.99, sum by (le) (rate(req_duration_seconds_bucket[5m])))"#,
        630,
    ),
    (
        r#"histogram_quantile(0.9, rate(req_duration_seconds_bucket{job="web"}[5m]))"#,
        630,
    ),
    (r#"histogram_quantile(0.5, rate(odd_bucket[5m]))"#, 630),
    (
        r#"rate(req_duration_seconds_sum[5m]) / rate(req_duration_seconds_count[5m])"#,
        630,
    ),
    // Aggregations.
    (r#"sum(rate(http_requests_total[5m]))"#, 630),
    (r#"sum by (job) (rate(http_requests_total[5m]))"#, 630),
    (
        r#"sum without (instance) (rate(http_requests_total[5m]))"#,
        630,
    ),
    (r#"avg by (job) (gauge)"#, 630),
    (r#"min by (job) (gauge)"#, 630),
    (r#"max by (job) (gauge)"#, 630),
    (r#"count by (code) (http_requests_total)"#, 630),
    (r#"group by (job) (http_requests_total)"#, 630),
    (r#"stddev(gauge)"#, 630),
    (r#"stdvar by (job) (gauge)"#, 630),
    (r#"quantile(0.5, gauge)"#, 630),
    (r#"quantile by (job) (0.25, http_requests_total)"#, 630),
    (r#"topk(2, gauge)"#, 630),
    (r#"bottomk(1, gauge)"#, 630),
    (r#"topk by (job) (1, http_requests_total)"#, 630),
    (r#"count_values("value", up)"#, 1230),
    (r#"count_values by (job) ("v", up)"#, 1230),
    // Operators.
    (r#"gauge + 1"#, 630),
    (r#"2 * gauge - 1"#, 630),
    (r#"gauge % 3"#, 630),
    (r#"gauge ^ 2"#, 630),
    (r#"-gauge"#, 630),
    (r#"gauge > 5"#, 630),
    (r#"5 < gauge"#, 630),
    (r#"gauge >= bool 5"#, 630),
    (r#"gauge == 5"#, 1230),
    (r#"gauge != bool 5"#, 1230),
    (r#"1 + 2 * 3 ^ 2 % 5"#, 630),
    (r#"2 > bool 1"#, 630),
    (
        r#"http_requests_total{code="500"} / http_requests_total{code="200"}"#,
        630,
    ),
    (
        r#"http_requests_total{code="500"} / ignoring(code) http_requests_total{code="200"}"#,
        630,
    ),
    (
        r#"sum by (job, instance) (http_requests_total) / on(job, instance) group_left up"#,
        630,
    ),
    (
        r#"http_requests_total * on(job) group_left(version) build_info"#,
        630,
    ),
    (r#"build_info * on(job) group_right(version) up"#, 630),
    (r#"up == 0"#, 1230),
    (r#"up and on(job) (gauge > 5)"#, 630),
    (r#"gauge or up"#, 630),
    (r#"gauge unless on(instance) (up == 0)"#, 1230),
    (
        r#"rate(http_requests_total{code="500"}[5m]) / ignoring(code) rate(http_requests_total{code="200"}[5m]) > 0.04"#,
        630,
    ),
];

fn expand_values(notation: &str) -> Vec<Sample> {
    let (_, vals) = parse_series(&format!("x {notation}")).expect("valid series notation");
    vals.iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let t = i as i64 * 60_000;
            match v {
                SeqValue::Value(x) => Some(Sample { t, v: *x }),
                SeqValue::Stale => Some(Sample { t, v: STALE_NAN }),
                _ => None,
            }
        })
        .collect()
}

fn source() -> MemSource {
    let mut src = MemSource::default();
    for (series, values) in SERIES {
        let (labels, _) = parse_series(series).expect("valid series");
        src.add(labels, expand_values(values));
    }
    src
}

/// Whether every value is an integer small enough to be exact in any evaluation order.
fn all_integral(v: &Value) -> bool {
    let ok = |x: f64| x.fract() == 0.0 && x.abs() < 1e15;
    match v {
        Value::Scalar { v, .. } => ok(*v),
        Value::Vector(s) => s.iter().all(|s| ok(s.v)),
        _ => false,
    }
}

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn promtool_agrees_with_postflight() {
    if !std::path::Path::new(PROMTOOL).exists() {
        println!("skipping: promtool not found");
        return;
    }
    let src = source();
    let engine = Engine::default();
    let mut yaml = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, values) in SERIES {
        let _ = writeln!(
            yaml,
            "      - series: {}\n        values: {}",
            yaml_str(series),
            yaml_str(values)
        );
    }
    yaml.push_str("    promql_expr_test:\n");
    let mut count = 0;
    let mut memos: std::collections::HashMap<i64, promql::RoundMemo> = Default::default();
    for (expr_text, secs) in EXPRS {
        let t = i64::from(*secs) * 1000;
        let parsed = promql::parse(expr_text).unwrap_or_else(|e| panic!("{expr_text}: {e}"));
        let value = engine
            .instant(&src, &parsed, t)
            .unwrap_or_else(|e| panic!("{expr_text}: {e}"));
        // A rule round shares range-function results between its expressions; with the memo
        // (filled by every expression before this one at this time) the answer must not move.
        let in_round = engine
            .instant_in_round(&src, &parsed, t, memos.entry(t).or_default())
            .unwrap_or_else(|e| panic!("{expr_text} in a round: {e}"));
        assert_eq!(
            format!("{in_round:?}"),
            format!("{value:?}"),
            "{expr_text}: the round memo changed the result"
        );
        // Exact comparison in promtool: wrap non-integers so only differences beyond 1e-9 count.
        let (expr_text, value) = if all_integral(&value) {
            (expr_text.to_string(), value)
        } else {
            let wrapped = match value {
                Value::Scalar { .. } => format!("round(vector({expr_text}), 0.000000001)"),
                _ => format!("round({expr_text}, 0.000000001)"),
            };
            let p = promql::parse(&wrapped).expect("wrapped expression parses");
            let v = engine
                .instant(&src, &p, t)
                .expect("wrapped expression evaluates");
            (wrapped, v)
        };
        let samples: Vec<(String, f64)> = match &value {
            Value::Scalar { v, .. } => vec![("{}".to_string(), *v)],
            Value::Vector(vs) => vs.iter().map(|s| (s.labels.to_string(), s.v)).collect(),
            other => panic!("{expr_text}: unexpected result {other:?}"),
        };
        for (labels, v) in &samples {
            assert!(
                v.is_finite(),
                "{expr_text}: {labels} = {v}: promtool cannot compare NaN/Inf"
            );
        }
        let _ = writeln!(
            yaml,
            "      - expr: {}\n        eval_time: {}s\n        exp_samples:",
            yaml_str(&expr_text),
            secs
        );
        if samples.is_empty() {
            yaml.truncate(yaml.len() - 1);
            yaml.push_str(" []\n");
        }
        for (labels, v) in samples {
            let _ = writeln!(
                yaml,
                "          - labels: {}\n            value: {v}",
                yaml_str(&labels)
            );
        }
        count += 1;
    }
    assert!(count >= 80, "at least 80 differential expressions");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("postflight_promql_test.yml");
    std::fs::write(&path, &yaml).expect("write test file");
    let out = Command::new(PROMTOOL)
        .arg("test")
        .arg("rules")
        .arg(&path)
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{count} expressions checked against promtool");
    assert!(
        out.status.success(),
        "promtool disagrees with postflight:\n{stdout}\n{stderr}"
    );
}
