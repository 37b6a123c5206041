//! Prometheus rule files and recording rules, end to end with the real binary: `check` points
//! at problems in a rule file as `file:line:column`, recorded series are queried and alerted on
//! (and agree with a real Prometheus running the same file), they go stale when their input
//! disappears, a reload re-reads the files, and `/api/v1/rules` answers in Prometheus' shape.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Daemon, TestServer, http, prometheus, require, wait_until};
use serde_json::Value;

/// Stops a child process by its pid when the test ends, whatever happens.
const RULES: &str = r#"groups:
  - name: app
    interval: 1s
    rules:
      - record: job:queue_depth:doubled
        expr: max by (job) (queue_depth) * 2
        labels:
          source: recorded
      - alert: QueueDeep
        expr: job:queue_depth:doubled > 10
        labels:
          severity: page
        annotations:
          summary: "queue at {{ $value }}"
"#;

/// Two results from each rule, over the group's limit of one.
const LIMITED: &str = r#"groups:
  - name: limited
    limit: 1
    rules:
      - record: over_limit
        expr: label_replace(vector(1), "k", "a", "", "") or label_replace(vector(1), "k", "b", "", "")
      - alert: OverLimit
        expr: label_replace(vector(1), "k", "a", "", "") or label_replace(vector(1), "k", "b", "", "")
"#;

const CONFIG: &str = r#"[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/store"
[global]
scrape_interval = "1s"
evaluation_interval = "1s"
rule_files = ["rules/*.yml"]
[[job]]
name = "app"
targets = ["127.0.0.1:{target}"]
[[rule]]
record = "job:queue_depth:sum"
expr = "sum by (job) (queue_depth)"
"#;

/// A target exposing `queue_depth 7` while `on` is true.
fn target(on: Arc<AtomicBool>) -> TestServer {
    TestServer::start(move |_| {
        let body = if on.load(Ordering::SeqCst) {
            "# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 7\n"
        } else {
            "# TYPE other gauge\nother 1\n"
        };
        (200, "text/plain; version=0.0.4", body.to_string())
    })
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http(port, "GET", path, None, &[]).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The instant-query result of `q` as (labels, value) pairs.
fn query(port: u16, q: &str) -> Vec<(Value, String)> {
    let enc = common::encode(q);
    // Empty while the server is not listening yet.
    let Ok((200, body)) = http(
        port,
        "GET",
        &format!("/api/v1/query?query={enc}"),
        None,
        &[],
    ) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `postflight check -c cfg`: its exit code and what it printed on stderr.
fn check(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["check", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn recorded_series_are_queried_alerted_on_go_stale_and_follow_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let on = Arc::new(AtomicBool::new(true));
    let t = target(on.clone());
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let rule_file = dir.path().join("rules/app.yml");
    std::fs::write(&rule_file, RULES).unwrap();
    std::fs::write(dir.path().join("rules/limit.yml"), LIMITED).unwrap();
    let mut d = Daemon::start_in(
        dir.path(),
        &CONFIG.replace("{target}", &t.port.to_string()),
        &[],
    );
    d.wait_ready();

    // The recorded series, with the rule's labels, in a query.
    let mut last = Vec::new();
    wait_until(30, "the recorded series in a query", || {
        last = query(d.port, "job:queue_depth:doubled");
        last.iter().any(|(_, v)| v == "14")
    });
    assert_eq!(
        last[0].0,
        serde_json::json!({"__name__": "job:queue_depth:doubled", "job": "app", "source": "recorded"})
    );
    // /federate serves it like a scraped series.
    let page = d.get("/federate?match[]=job:queue_depth:doubled").1;
    assert!(
        page.contains("job:queue_depth:doubled{job=\"app\",source=\"recorded\"} 14 "),
        "{page}"
    );
    wait_until(30, "the [[rule]] recording rule's series", || {
        query(d.port, "job:queue_depth:sum")
            .iter()
            .any(|(_, v)| v == "7")
    });

    // An alert rule over the recorded series fires.
    wait_until(30, "QueueDeep firing", || {
        let a = get_json(d.port, "/api/v1/alerts");
        a["alerts"].as_array().is_some_and(|l| {
            l.iter().any(|a| {
                a["labels"]["alertname"] == "QueueDeep"
                    && a["state"] == "firing"
                    && a["labels"]["source"] == "recorded"
            })
        })
    });

    // /api/v1/rules: both groups, sorted by file, in Prometheus' shape.
    let v = get_json(d.port, "/api/v1/rules");
    assert_eq!(v["status"], "success");
    let groups = v["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{v:#}");
    let cfg_file = dir.path().join("postflight.toml").display().to_string();
    assert_eq!(groups[0]["name"], "default");
    assert_eq!(groups[0]["file"], cfg_file.as_str());
    assert_eq!(groups[0]["interval"], 1.0);
    let g = &groups[1];
    assert_eq!(g["name"], "app");
    assert_eq!(g["file"], rule_file.display().to_string().as_str());
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["limit"], 0);
    assert!(g["evaluationTime"].as_f64().is_some(), "{g:#}");
    assert!(
        g["lastEvaluation"].as_str().unwrap().starts_with("20"),
        "{g:#}"
    );
    let rec = &g["rules"][0];
    assert_eq!(rec["type"], "recording");
    assert_eq!(rec["name"], "job:queue_depth:doubled");
    assert_eq!(rec["query"], "max by (job) (queue_depth) * 2");
    assert_eq!(rec["labels"], serde_json::json!({"source": "recorded"}));
    assert_eq!(rec["health"], "ok");
    assert!(rec.get("lastError").is_none(), "{rec:#}");
    let alert = &g["rules"][1];
    assert_eq!(alert["type"], "alerting");
    assert_eq!(alert["name"], "QueueDeep");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["duration"], 0.0);
    assert_eq!(alert["health"], "ok");
    assert_eq!(alert["labels"], serde_json::json!({"severity": "page"}));
    assert_eq!(
        alert["annotations"],
        serde_json::json!({"summary": "queue at {{ $value }}"})
    );
    let active = &alert["alerts"][0];
    assert_eq!(active["state"], "firing");
    assert_eq!(active["value"], "1.4e+01");
    assert_eq!(active["annotations"]["summary"], "queue at 14");
    assert!(active["activeAt"].as_str().is_some(), "{active:#}");
    let only_recording = get_json(d.port, "/api/v1/rules?type=record");
    let types: Vec<&str> = only_recording["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["recording", "recording", "recording"]);

    // Over its group's limit a rule fails with Prometheus' error and writes nothing.
    let limited = &groups[2];
    assert_eq!(limited["limit"], 1);
    for (i, what) in [(0, "series"), (1, "alerts")] {
        let r = &limited["rules"][i];
        assert_eq!(r["health"], "err", "{r:#}");
        assert_eq!(
            r["lastError"],
            format!("exceeded limit of 1 with 2 {what}").as_str()
        );
    }
    assert_eq!(limited["rules"][1]["alerts"], serde_json::json!([]));
    assert!(query(d.port, "over_limit").is_empty());
    let (status, body) = http(d.port, "GET", "/api/v1/rules?type=bogus", None, &[]).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"errorType\":\"bad_data\""), "{body}");

    // A reload re-reads the rule file: the new rule records, the removed one's series go stale
    // at once (not after the 5 minute lookback).
    std::fs::write(
        &rule_file,
        RULES.replace("doubled", "tripled").replace("* 2", "* 3"),
    )
    .unwrap();
    d.signal("HUP");
    wait_until(30, "the new rule's series after the reload", || {
        query(d.port, "job:queue_depth:tripled")
            .iter()
            .any(|(_, v)| v == "21")
    });
    wait_until(15, "the removed rule's series stale", || {
        query(d.port, "job:queue_depth:doubled").is_empty()
    });
    let v = get_json(d.port, "/api/v1/rules?type=record");
    assert_eq!(
        v["data"]["groups"][1]["rules"][0]["name"],
        "job:queue_depth:tripled"
    );

    // A reload with a broken rule file is refused with the file's position; the rules stay.
    std::fs::write(
        dir.path().join("rules/broken.yml"),
        "groups:\n  - name: b\n    rulez: []\n",
    )
    .unwrap();
    let (status, body) = http(d.port, "POST", "/-/reload", None, &[]).unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("broken.yml:3:5: field \\\"rulez\\\" not found"),
        "{body}"
    );
    std::fs::remove_file(dir.path().join("rules/broken.yml")).unwrap();
    let v = get_json(d.port, "/api/v1/rules?type=record");
    assert_eq!(
        v["data"]["groups"][1]["rules"][0]["name"],
        "job:queue_depth:tripled"
    );

    // The input disappears: the recorded series get stale markers, as in Prometheus.
    on.store(false, Ordering::SeqCst);
    wait_until(
        15,
        "the recorded series stale once its input is gone",
        || {
            query(d.port, "job:queue_depth:tripled").is_empty()
                && query(d.port, "job:queue_depth:sum").is_empty()
        },
    );
}

#[test]
fn a_real_prometheus_records_the_same_values_from_the_same_file() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = target(Arc::new(AtomicBool::new(true)));
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/app.yml"), RULES).unwrap();
    let mut d = Daemon::start_in(
        dir.path(),
        &CONFIG.replace("{target}", &t.port.to_string()),
        &[],
    );
    d.wait_ready();
    let (_prom, prom_port) = prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            t.port
        ),
        None,
        &[],
    );
    for q in ["job:queue_depth:doubled", "ALERTS{alertname=\"QueueDeep\"}"] {
        let mut theirs = Vec::new();
        wait_until(40, &format!("Prometheus answers {q}"), || {
            theirs = query(prom_port, q);
            !theirs.is_empty() && theirs.iter().all(|(_, v)| !v.is_empty())
        });
        let mut ours = Vec::new();
        wait_until(30, &format!("postflight answers {q}"), || {
            ours = query(d.port, q);
            ours.len() == theirs.len()
        });
        assert_eq!(ours, theirs, "{q}");
    }
    // And the rules API has the same shape: the same keys in each group and rule.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let theirs = get_json(prom_port, "/api/v1/rules");
    let ours = get_json(d.port, "/api/v1/rules");
    let tg = &theirs["data"]["groups"][0];
    let og = &ours["data"]["groups"][1];
    assert_eq!(keys(og), keys(tg));
    for i in 0..2 {
        let (ok, tk) = (keys(&og["rules"][i]), keys(&tg["rules"][i]));
        assert_eq!(
            ok, tk,
            "rule {i}: {:#} against {:#}",
            og["rules"][i], tg["rules"][i]
        );
        assert_eq!(og["rules"][i]["name"], tg["rules"][i]["name"]);
        assert_eq!(og["rules"][i]["health"], tg["rules"][i]["health"]);
    }
    assert_eq!(og["rules"][1]["state"], tg["rules"][1]["state"]);
    assert_eq!(
        og["rules"][1]["alerts"][0]["value"],
        tg["rules"][1]["alerts"][0]["value"]
    );
}

const BAD: &str = r#"groups:
  - name: g
    rules:
      - record: bad-name
        expr: up
      - alert: Broken
        expr: rate(up[5m]
        forr: 5m
      - record: job:ok:sum
        expr: sum(up)
        for: 1m
  - name: g
"#;

#[test]
fn check_points_at_rule_file_problems_and_promtool_agrees() {
    let bin = env!("CARGO_BIN_EXE_postflight");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let bad = dir.path().join("rules/bad.yml");
    std::fs::write(&bad, BAD).unwrap();
    let cfg = dir.path().join("postflight.toml");
    std::fs::write(&cfg, "[global]\nrule_files = [\"rules/*.yml\"]\n").unwrap();
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(2));
    let f = bad.display().to_string();
    for want in [
        format!(
            "{f}:4:17: group \"g\", rule 1, \"bad-name\": invalid recording rule name: bad-name"
        ),
        format!("{f}:7:15: group \"g\", rule 2, \"Broken\": could not parse expression"),
        format!("{f}:8:9: field \"forr\" not found in group \"g\", rule 2"),
        format!(
            "{f}:9:17: group \"g\", rule 3, \"job:ok:sum\": invalid field 'for' in recording rule"
        ),
        format!("{f}:12:5: groupname: \"g\" is repeated in the same file"),
    ] {
        assert!(err.contains(&want), "{want}\nnot in:\n{err}");
    }
    assert!(err.contains("5 problems found"), "{err}");
    if require("promtool") {
        let p = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_ne!(p.status.code(), Some(0), "promtool refuses it too");
    }

    // A good file passes both; a rule file named but missing is a problem at rule_files.
    std::fs::write(&bad, RULES).unwrap();
    let out = Command::new(bin)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 rules"),
        "the rule file's rules are counted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if require("promtool") {
        let p = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(p.status.code(), Some(0), "{p:?}");
    }
    std::fs::write(&cfg, "[global]\nrule_files = [\"rules/missing.yml\"]\n").unwrap();
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("postflight.toml:2:14: rule_files:")
            && err.contains("missing.yml does not exist"),
        "{err}"
    );
}
