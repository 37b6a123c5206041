use super::*;

fn problems(src: &str) -> Vec<String> {
    parse(src, "r.yml")
        .1
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[track_caller]
fn assert_problem(src: &str, at: &str, needle: &str) {
    let ps = problems(src);
    assert!(
        ps.iter()
            .any(|p| p.starts_with(&format!("r.yml:{at}: ")) && p.contains(needle)),
        "expected a problem at {at} containing {needle:?}, got {ps:#?}"
    );
}

const GOOD: &str = r#"groups:
  - name: http
    interval: 30s
    limit: 10
    rules:
      - record: job:http_errors:rate5m
        expr: sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))
        labels:
          source: rules
      - alert: HighErrors
        expr: job:http_errors:rate5m > 0.5
        for: 2m
        keep_firing_for: 1m
        labels: { severity: page, code: 500 }
        annotations:
          summary: "errors on {{ $labels.job }}"
  - name: other
    rules: []
"#;

#[test]
fn a_prometheus_rule_file_loads_with_its_groups_and_rules() {
    let (groups, problems) = parse(GOOD, "r.yml");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!((g.name.as_str(), g.file.as_str()), ("http", "r.yml"));
    assert_eq!(g.interval, Some(ConfigDuration::secs(30)));
    assert_eq!(g.limit, 10);
    assert_eq!(g.rules[0].record, "job:http_errors:rate5m");
    assert!(g.rules[0].is_recording());
    assert_eq!(g.rules[0].labels["source"], "rules");
    let a = &g.rules[1];
    assert_eq!(a.alert, "HighErrors");
    assert_eq!(a.for_, ConfigDuration::secs(120));
    assert_eq!(a.keep_firing_for, ConfigDuration::secs(60));
    assert_eq!(a.labels["code"], "500");
    assert_eq!(a.annotations["summary"], "errors on {{ $labels.job }}");
    assert_eq!(groups[1].interval, None);
}

#[test]
fn an_empty_file_has_no_groups() {
    assert!(problems("").is_empty());
    assert!(parse("", "r.yml").0.is_empty());
}

#[test]
fn problems_carry_their_line_and_column() {
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - record: x\n        exprr: up\n",
        "5:9",
        "field \"exprr\" not found",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - record: 'bad-name'\n        expr: up\n",
        "4:17",
        "invalid recording rule name: bad-name",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up ==\n",
        "5:15",
        "could not parse expression",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n",
        "4:17",
        "invalid field 'for' in recording rule",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - record: r\n        alert: A\n        expr: up\n",
        "4:17",
        "only one of 'record' and 'alert' must be set",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - expr: up\n",
        "4:9",
        "one of 'record' or 'alert' must be set",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - alert: A\n",
        "4:9",
        "field 'expr' must be set",
    );
    assert_problem(
        "groups:\n  - name: a\n  - name: a\n",
        "3:5",
        "groupname: \"a\" is repeated in the same file",
    );
    assert_problem(
        "groups:\n  - name: a\n    interval: 5x\n",
        "3:15",
        "unknown unit",
    );
    assert_problem(
        "groups:\n  - name: a\n    limit: -1\n",
        "3:12",
        "limit must be",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          __name__: x\n",
        "6:9",
        "invalid label name: __name__",
    );
    assert_problem(
        "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          s: '{{ $value | nope }}'\n",
        "6:9",
        "template",
    );
    assert_problem(
        "groups:\n  - name: a\n    a: 1\n    a: 2\n",
        "4:5",
        "duplicated key",
    );
    assert_problem("groups:\n  - name: a\n  rules: [\n", "3:3", "YAML syntax");
    assert_problem("grops: []\n", "1:1", "field \"grops\" not found");
}

#[test]
fn every_problem_of_a_file_is_reported() {
    let ps = problems(
        "groups:\n  - name: a\n    rules:\n      - record: 'x-y'\n        expr: up\n      - alert: B\n        expr: 'up =='\n",
    );
    assert_eq!(ps.len(), 2, "{ps:#?}");
}

#[test]
fn globs_match_file_names() {
    assert!(glob_match("*.yml", "a.yml"));
    assert!(!glob_match("*.yml", "a.yaml"));
    assert!(!glob_match("*.yml", ".hidden.yml"));
    assert!(glob_match("rules-?.y[a-z]ml", "rules-1.yaml"));
    assert!(!glob_match("[!a]*", "abc"));
    assert!(glob_match("[!a]*", "bc"));
}

#[test]
fn expand_finds_files_relative_to_the_base_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for f in ["b.yml", "a.yml", "c.txt"] {
        std::fs::write(dir.path().join("rules").join(f), "").unwrap();
    }
    let (files, problems, warnings) = expand(
        dir.path(),
        &[
            "rules/*.yml".into(),
            "rules/c.txt".into(),
            "rules/none.yml".into(),
            "x/*.yml".into(),
        ],
    );
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["rules/a.yml", "rules/b.yml", "rules/c.txt"]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("none.yml does not exist"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}
