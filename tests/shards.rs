//! `[global] shard = "i/n"`: three instances of one config run disjoint shares of its probes
//! and scrape targets that add up to all of them, and `check` prints the same split.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Daemon, free_port};

fn config(shard: u32) -> String {
    let closed = free_port();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[storage]\npath = \"{{dir}}/data\"\n[global]\nshard = \"{shard}/3\"\nprobe_interval = \"1h\"\nscrape_interval = \"1h\"\n"
    );
    for i in 0..12 {
        text.push_str(&format!(
            "[[probe]]\nname = \"probe-{i}\"\nurl = \"http://127.0.0.1:{closed}/{i}\"\n"
        ));
    }
    let targets: Vec<String> = (0..15)
        .map(|t| format!("\"127.0.0.1:{}\"", 20000 + t))
        .collect();
    text.push_str(&format!(
        "[[job]]\nname = \"node\"\ntargets = [{}]\n",
        targets.join(", ")
    ));
    text
}

#[test]
fn three_shards_of_one_config_run_disjoint_shares_that_add_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut probes: Vec<String> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut printed: Vec<String> = Vec::new();
    for shard in 1..=3 {
        let sub = dir.path().join(shard.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        let mut d = Daemon::start_in(&sub, &config(shard), &[]);
        d.wait_ready();
        let (_, body) = d.get("/api/v1/targets");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let list = v["targets"].as_array().expect("targets");
        let mine_p: Vec<String> = list
            .iter()
            .filter(|t| t["kind"] == "probe")
            .map(|t| t["probe"].as_str().unwrap().to_string())
            .collect();
        let mine_t: Vec<String> = list
            .iter()
            .filter(|t| t["kind"] == "scrape")
            .map(|t| t["url"].as_str().unwrap().to_string())
            .collect();
        assert!(
            !mine_p.is_empty() && !mine_t.is_empty(),
            "shard {shard} runs a share: {body}"
        );
        // `check` counts this instance's share as it runs it.
        let out = Command::new(env!("CARGO_BIN_EXE_postflight"))
            .args(["check", "-c"])
            .arg(sub.join("postflight.toml"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = format!(
            "shard {shard}/3: {} probes, {} scrape targets, 0 log sources  (this instance)",
            mine_p.len(),
            mine_t.len()
        );
        assert!(text.contains(&line), "{line:?} in:\n{text}");
        printed.push(text);
        probes.extend(mine_p);
        targets.extend(mine_t);
    }
    let (np, nt) = (probes.len(), targets.len());
    let probes: BTreeSet<String> = probes.into_iter().collect();
    let targets: BTreeSet<String> = targets.into_iter().collect();
    assert_eq!((np, probes.len()), (12, 12), "each probe runs exactly once");
    assert_eq!(
        (nt, targets.len()),
        (15, 15),
        "each target is scraped exactly once"
    );
    assert!(
        printed
            .iter()
            .all(|p| p.lines().filter(|l| l.starts_with("shard ")).count() == 3)
    );
}
