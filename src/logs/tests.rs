use super::*;
use crate::store::test_util::{reopen, temp_store};
use std::io::Write;

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let src = format!(
        r#"
[[log]]
name = "app"
path = "{}/*.log"
start_at = "beginning"
redact = ['(?i)password=\S+']
{extra}
[[log.match]]
name = "errors"
regex = '(?i)\berror\b'
[[log.match]]
name = "db"
regex = 'database'
"#,
        dir.display()
    );
    crate::config::load_str(&src, "t.toml").expect("valid config")
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn one_pass_counts_every_match_and_keeps_redacted_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let c = config(dir.path(), "");
    append(
        &dir.path().join("a.log"),
        "ok\nERROR in database password=hunter2 now\nerror again\nplain database\n",
    );
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY, 1_000);
    src.poll(1_000);
    src.flush(1_000).unwrap();
    let r = src.record();
    assert_eq!(r.lines, 4);
    assert_eq!(r.matches["errors"], 2);
    assert_eq!(r.matches["db"], 2);
    let db = query(&store.state, "app", Some("db"), None, None, 10).unwrap();
    assert_eq!(db.len(), 2);
    assert_eq!(db[0].line, "ERROR in database <redacted> now");
    assert_eq!(db[0].match_, "db");
    let all = query(&store.state, "app", None, None, None, 10).unwrap();
    assert_eq!(
        all.len(),
        4,
        "a line matching two patterns is kept for each"
    );
    assert!(all.iter().all(|l| !l.line.contains("hunter2")));
}

#[test]
fn counters_and_positions_survive_a_reopen_together() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let c = config(dir.path(), "");
    let p = dir.path().join("a.log");
    append(&p, "error 1\nfine\n");
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY, 1_000);
    src.poll(1_000);
    src.flush(1_000).unwrap();
    drop(src);
    let store = reopen(store);
    append(&p, "error 2\n");
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY, 2_000);
    src.poll(2_000);
    let r = src.record();
    assert_eq!((r.lines, r.matches["errors"]), (3, 2));
}

#[test]
fn kept_lines_are_the_newest_thousand_per_match_within_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let c = config(dir.path(), "");
    let p = dir.path().join("a.log");
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY, 1_000);
    // 1,005 lines over 11 seconds, each second's within what one flush keeps.
    for second in 0..11 {
        let text: String = (second * 100..(second * 100 + 100).min(1_005))
            .map(|i| format!("error {i}\n"))
            .collect();
        append(&p, &text);
        src.poll(1_000 + second as i64 * 1_000);
        src.flush(1_000 + second as i64 * 1_000).unwrap();
    }
    let kept = query(&store.state, "app", Some("errors"), None, None, 5_000).unwrap();
    assert_eq!(kept.len(), KEEP_PER_MATCH);
    assert_eq!(kept[0].line, "error 5");
    assert_eq!(kept.last().unwrap().line, "error 1004");
    // A flood within one second keeps its newest lines, up to what one flush keeps.
    let text: String = (0..250).map(|i| format!("error flood {i}\n")).collect();
    append(&p, &text);
    src.poll(20_000);
    src.flush(20_000).unwrap();
    let kept = query(&store.state, "app", Some("errors"), None, None, 5_000).unwrap();
    assert_eq!(kept.len(), KEEP_PER_MATCH);
    let flood: Vec<_> = kept.iter().filter(|k| k.line.contains("flood")).collect();
    assert_eq!(flood.len(), KEEP_PER_FLUSH);
    assert_eq!(flood[0].line, "error flood 150");
    // A day later the old lines are past the retention and go at the next flush.
    append(&p, "error late\n");
    let later = 20_000 + DAY.as_millis() as i64 + 1;
    src.poll(later);
    src.flush(later).unwrap();
    let kept = query(&store.state, "app", Some("errors"), None, None, 5_000).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].line, "error late");
}

#[test]
fn docker_json_lines_are_read_through_their_log_field() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let c = config(dir.path(), "format = \"docker-json\"");
    append(
        &dir.path().join("c.log"),
        "{\"log\":\"ERROR from the container\\n\",\"stream\":\"stderr\",\"time\":\"2026-01-02T03:04:05.678Z\"}\n{\"log\":\"fine\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-02T03:04:06Z\"}\n",
    );
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY * 3650, 1_000);
    src.poll(1_000);
    src.flush(1_000).unwrap();
    let kept = query(&store.state, "app", None, None, None, 10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].line, "ERROR from the container");
    assert_eq!(kept[0].time, "2026-01-02T03:04:05.678Z");
}

#[test]
fn the_excerpt_shows_the_last_lines_of_the_matches_an_expression_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let c = config(dir.path(), "");
    let text: String = (0..8).map(|i| format!("error {i}\n")).collect();
    append(&dir.path().join("a.log"), &(text + "database down\n"));
    let mut src = Source::open(&c.logs[0], store.state.clone(), DAY, 1_000);
    src.poll(1_000);
    src.flush(1_000).unwrap();
    let expr = |s: &str| promql_parser::parser::parse(s).unwrap();
    let e = excerpt(
        &store.state,
        &c,
        &expr(r#"increase(log_matches_total{match="errors"}[5m]) > 0"#),
        None,
    )
    .unwrap();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), EXCERPT_LINES);
    assert!(lines[0].ends_with("[errors] error 3"), "{e}");
    assert!(lines[4].ends_with("[errors] error 7"), "{e}");
    // The alert's own labels narrow it to the match that fired.
    let labels = Labels::new([("log", "app"), ("match", "db")]);
    let e = excerpt(
        &store.state,
        &c,
        &expr("sum by (log, match) (rate(log_matches_total[5m])) > 0"),
        Some(&labels),
    )
    .unwrap();
    assert!(e.ends_with("[db] database down"), "{e}");
    assert!(!e.contains("error"));
    // An expression that does not read the log counters has no excerpt.
    assert_eq!(excerpt(&store.state, &c, &expr("up == 0"), None), None);
}

#[test]
fn prune_drops_the_records_of_removed_sources_and_matches_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_sd, store) = temp_store();
    let two = crate::config::load_str(
        &format!(
            r#"
[[log]]
name = "app"
path = "{d}/a*.log"
start_at = "beginning"
[[log.match]]
name = "errors"
regex = 'error'
[[log.match]]
name = "db"
regex = 'database'
[[log]]
name = "old"
path = "{d}/o*.log"
start_at = "beginning"
[[log.match]]
name = "errors"
regex = 'error'
"#,
            d = dir.path().display()
        ),
        "t.toml",
    )
    .expect("valid config");
    append(&dir.path().join("a.log"), "error in database\nfine\n");
    append(&dir.path().join("o.log"), "error\n");
    for cfg in &two.logs {
        let mut src = Source::open(cfg, store.state.clone(), DAY, 1_000);
        src.poll(1_000);
        src.flush(1_000).unwrap();
    }
    // Nothing to drop while both are configured.
    assert_eq!(prune(&store.state, &two).unwrap(), 0);

    // "old" is removed, and "app" loses its "db" match.
    let mut one = two.clone();
    one.logs.retain(|l| l.name == "app");
    one.logs[0].matches.retain(|m| m.name == "errors");
    // The record of "old", its kept line, and the kept line of "db".
    assert_eq!(prune(&store.state, &one).unwrap(), 3);
    let pos = |log: &str| {
        store
            .state
            .get::<SourceRecord>(Kind::Logs, &position_key(log))
            .unwrap()
    };
    assert_eq!(pos("old"), None);
    assert!(
        query(&store.state, "old", None, None, None, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        query(&store.state, "app", Some("db"), None, None, 10)
            .unwrap()
            .is_empty()
    );
    // "app" keeps its position and its counters, and the lines of its remaining match.
    assert_eq!(pos("app").unwrap().lines, 2);
    assert_eq!(
        query(&store.state, "app", Some("errors"), None, None, 10)
            .unwrap()
            .len(),
        1
    );
    let mut src = Source::open(&one.logs[0], store.state.clone(), DAY, 2_000);
    append(&dir.path().join("a.log"), "error again\n");
    src.poll(2_000);
    assert_eq!(src.record().lines, 3, "resumed at its position");

    // With no source left, everything goes.
    let mut none = one.clone();
    none.logs.clear();
    assert_eq!(prune(&store.state, &none).unwrap(), 2);
    assert!(
        store
            .state
            .scan::<serde_json::Value>(Kind::Logs)
            .unwrap()
            .is_empty()
    );
}
