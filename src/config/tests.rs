use super::*;

fn fleet() -> Config {
    let mut text = String::from("[global]\nshard = \"2/3\"\n");
    for i in 0..40 {
        text.push_str(&format!(
            "[[probe]]\nname = \"p{i}\"\nurl = \"http://h{i}/\"\n"
        ));
    }
    for j in 0..3 {
        let targets: Vec<String> = (0..20).map(|t| format!("\"h{t}:9100\"")).collect();
        text.push_str(&format!(
            "[[job]]\nname = \"job{j}\"\ntargets = [{}]\n",
            targets.join(", ")
        ));
    }
    for i in 0..12 {
        text.push_str(&format!(
            "[[log]]\nname = \"log{i}\"\npath = \"/var/log/app{i}/*.log\"\n[[log.match]]\nname = \"e\"\nregex = \"error\"\n"
        ));
    }
    load_str(&text, "fleet.toml").expect("valid")
}

#[test]
fn three_shards_of_one_config_split_it_exactly() {
    let config = fleet();
    let mut probes = Vec::new();
    let mut targets = Vec::new();
    let mut logs = Vec::new();
    let split = config.shard_split(3);
    for i in 1..=3 {
        let mut c = config.clone();
        c.global.shard = Some(Shard { index: i, count: 3 });
        let mine = c.for_shard();
        let share = split[(i - 1) as usize];
        assert_eq!(
            mine.probes.len(),
            share.probes,
            "shard {i}: probes as check counts"
        );
        assert_eq!(
            mine.logs.len(),
            share.logs,
            "shard {i}: logs as check counts"
        );
        logs.extend(mine.logs.iter().map(|l| l.name.clone()));
        let t: usize = mine.jobs.iter().map(|j| j.targets.len()).sum();
        assert_eq!(t, share.targets, "shard {i}: targets as check counts");
        assert!(
            share.probes > 0 && share.targets > 0,
            "shard {i} gets a share"
        );
        probes.extend(mine.probes.iter().map(|p| p.name.clone()));
        for j in &mine.jobs {
            targets.extend(j.targets.iter().map(|t| format!("{}/{t}", j.name)));
        }
    }
    probes.sort();
    probes.dedup();
    targets.sort();
    targets.dedup();
    assert_eq!(probes.len(), 40, "every probe in exactly one shard");
    assert_eq!(targets.len(), 60, "every target in exactly one shard");
    logs.sort();
    logs.dedup();
    assert_eq!(logs.len(), 12, "every log source in exactly one shard");
}

#[test]
fn a_shard_is_i_of_n_and_a_probe_s_shard_is_fnv1a_of_its_name() {
    assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
    assert!(Shard::parse("0/3").is_err());
    assert!(Shard::parse("4/3").is_err());
    assert!(Shard::parse("two").is_err());
    // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; mod 3 = 1, so shard 2.
    assert_eq!(
        Shard::of("a", 3),
        (0xaf63_dc4c_8601_ec8c_u64 % 3) as u32 + 1
    );
    let err = load_str("[global]\nshard = \"5/3\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.toml:2:9") && err.contains("i/n"), "{err}");
}

#[test]
fn the_head_window_is_at_least_a_minute_and_sets_the_head_s_least_history() {
    let c = load_str("[storage]\nhead_window = \"2m\"\n", "t.toml").expect("valid");
    assert_eq!(
        crate::store::checkpoint::head_window(&c),
        std::time::Duration::from_secs(120)
    );
    let c = load_str("", "t.toml").expect("valid");
    assert_eq!(
        crate::store::checkpoint::head_window(&c),
        std::time::Duration::from_secs(900)
    );
    let err = load_str("[storage]\nhead_window = \"30s\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.toml:2:15") && err.contains("1m"), "{err}");
}
