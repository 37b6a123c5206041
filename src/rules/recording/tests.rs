use std::collections::BTreeMap;

use super::*;
use crate::config::{ConfigDuration, PromqlExpr};

fn rule(labels: &[(&str, &str)]) -> RecordingRule {
    let c = RuleConfig {
        alert: String::new(),
        record: "job:errors:rate5m".into(),
        expr: PromqlExpr {
            source: "sum by (job) (rate(errors[5m]))".into(),
            expr: promql_parser::parser::parse("sum by (job) (rate(errors[5m]))").unwrap(),
        },
        for_: ConfigDuration::default(),
        keep_firing_for: ConfigDuration::default(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        annotations: BTreeMap::new(),
    };
    RecordingRule::from_config(&c, "r.yml", "g")
}

#[test]
fn results_take_the_rule_name_and_labels() {
    let r = rule(&[("team", "core"), ("env", "")]);
    let out = r
        .output(
            vec![
                (Labels::new([("job", "api"), ("env", "prod")]), 1.5),
                (Labels::new([("__name__", "x"), ("job", "db")]), 2.0),
                (Labels::empty(), 3.0),
            ],
            0,
        )
        .unwrap();
    let shown: Vec<String> = out.iter().map(|(l, v)| format!("{l} {v}")).collect();
    assert_eq!(
        shown,
        [
            r#"job:errors:rate5m{job="api", team="core"} 1.5"#,
            r#"job:errors:rate5m{job="db", team="core"} 2"#,
            r#"job:errors:rate5m{team="core"} 3"#,
        ]
    );
}

#[test]
fn same_labels_after_the_rule_labels_fail_as_in_prometheus() {
    let r = rule(&[("job", "all")]);
    let e = r
        .output(
            vec![
                (Labels::new([("job", "api")]), 1.0),
                (Labels::new([("job", "db")]), 2.0),
            ],
            0,
        )
        .unwrap_err();
    assert_eq!(
        e,
        "vector contains metrics with the same labelset after applying rule labels"
    );
}

#[test]
fn a_result_over_the_limit_fails_with_prometheus_error() {
    let r = rule(&[]);
    let three = vec![
        (Labels::new([("job", "a")]), 1.0),
        (Labels::new([("job", "b")]), 1.0),
        (Labels::new([("job", "c")]), 1.0),
    ];
    assert_eq!(
        r.output(three.clone(), 2).unwrap_err(),
        "exceeded limit of 2 with 3 series"
    );
    assert_eq!(r.output(three, 3).unwrap().len(), 3);
}
