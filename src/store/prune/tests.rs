use super::super::samples::{ChunkRef, SERIES_REFRESH_MS, split_block_key};
use super::super::test_util::*;
use super::super::{AlertTransition, ProbeRecord};
use super::*;
use crate::series::Labels;

fn probe(name: &str, t: i64) -> ProbeRecord {
    ProbeRecord {
        probe: name.into(),
        t,
        success: true,
        duration_seconds: 0.1,
        status: Some(200),
        reason: String::new(),
    }
}

fn transition(t: i64) -> AlertTransition {
    AlertTransition {
        t,
        alertname: "A".into(),
        labels: Labels::new([("alertname", "A")]),
        from: "pending".into(),
        to: "firing".into(),
        value: 1.0,
    }
}

fn fill(store: &Store) {
    for t in 0..10 {
        for name in ["a", "b", "c"] {
            store.probes.append_probe(&probe(name, t * 100)).unwrap();
        }
        // One history file each time, so that the prune below is exact to the result (a
        // file goes whole when its newest result is older than the cutoff).
        store.probes.write_probe_results(None).unwrap();
        store.probes.roll();
    }
    for t in 0..10 {
        store
            .state
            .append_alert_transition_durable(&transition(t * 100))
            .unwrap();
    }
    let old = Labels::new([("job", "old")]);
    let mixed = Labels::new([("job", "mixed")]);
    let chunk = |labels, min_t, max_t| ChunkRef {
        labels,
        min_t,
        max_t,
        count: 2,
        bytes: &[1],
    };
    // Three checkpoints: blocks with max times 300, 500 and 900.
    store
        .samples
        .put_chunks(&[chunk(&old, 0, 100), chunk(&mixed, 0, 300)])
        .unwrap();
    store
        .samples
        .put_chunks(&[chunk(&old, 200, 499), chunk(&mixed, 400, 500)])
        .unwrap();
    store
        .samples
        .put_chunks(&[chunk(&mixed, 600, 900)])
        .unwrap();
}

const FILLED_PRUNED_AT_500: PruneStats = PruneStats {
    probes: 15,
    history_files: 5,
    // Uptime counts are kept 91 days.
    uptime_hours: 0,
    transitions: 5,
    chunks: 2,
    blocks: 1,
    // Both series have chunks left, and their entries are kept a day past them anyway.
    series: 0,
    // The blocks' segment still holds two.
    segments: 0,
    symbols: 0,
};

#[test]
fn prune_removes_exactly_the_old_records() {
    let (_dir, store) = temp_store();
    fill(&store);
    let store = reopen(store);
    assert_eq!(store.samples.series_count(), 2);
    let stats = store.prune(500).unwrap();
    // Whole blocks go: the block with max time 500 stays, with old's chunk ending at 499.
    assert_eq!(stats, FILLED_PRUNED_AT_500);
    for name in ["a", "b", "c"] {
        let ts: Vec<i64> = store
            .probes
            .probe_history(name, i64::MIN, i64::MAX, 100)
            .unwrap()
            .iter()
            .map(|r| r.t)
            .collect();
        assert_eq!(ts, [500, 600, 700, 800, 900], "record at the cutoff stays");
    }
    let ts: Vec<i64> = store
        .state
        .alert_history("A", i64::MIN, i64::MAX, 100)
        .unwrap()
        .iter()
        .map(|r| r.t)
        .collect();
    assert_eq!(ts, [500, 600, 700, 800, 900]);
    let mut chunks: Vec<(String, i64)> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.map(|c| (c.labels.to_string(), c.max_t)).unwrap())
        .collect();
    chunks.sort();
    assert_eq!(
        chunks,
        [
            (r#"{job="mixed"}"#.to_string(), 500),
            (r#"{job="mixed"}"#.to_string(), 900),
            (r#"{job="old"}"#.to_string(), 499),
        ]
    );
    assert_eq!(raw_keys(&store, "chunk_blocks").len(), 2);
    assert_eq!(store.samples.series_count(), 2);
    assert_eq!(
        store.prune(500).unwrap(),
        PruneStats::default(),
        "a second prune finds nothing"
    );
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn small_steps_reach_the_same_result() {
    let (_dir, store) = temp_store();
    fill(&store);
    let store = reopen(store);
    let mut cursor = PruneCursor::new(500);
    let mut steps = 0;
    while store.prune_step(&mut cursor, 2).unwrap() {
        steps += 1;
        assert!(steps < 100, "prune does not terminate");
    }
    assert!(
        steps >= 6,
        "{steps} steps for 11 deletions (5 history files, 5 transitions, a block), at most \
             2 a step"
    );
    assert_eq!(cursor.stats(), FILLED_PRUNED_AT_500);
}

#[test]
fn series_go_once_no_chunk_can_refer_to_them() {
    let (_dir, store) = temp_store();
    let r = SERIES_REFRESH_MS;
    let [kept, gone, orphan] = ["kept", "gone", "orphan"].map(|job| Labels::new([("job", job)]));
    // (Times in whole seconds: the index keeps referenced-until times so, rounded up.)
    store.samples.put_chunk(&kept, 0, 1_000, 1, &[1]).unwrap();
    store.samples.put_chunk(&gone, 0, 1_000, 1, &[1]).unwrap();
    // A day later: `kept` gets a new chunk, which refreshes its index entry.
    store
        .samples
        .put_chunk(&kept, r + 1_500, r + 2_000, 1, &[1])
        .unwrap();
    // As if the process died between indexing a series and indexing its block: the
    // block's entry (the newest sequence number) is gone.
    store.samples.put_chunk(&orphan, 0, 1_000, 1, &[1]).unwrap();
    let orphan_block = raw_keys(&store, "chunk_blocks")
        .into_iter()
        .max_by_key(|k| split_block_key(k).unwrap().1)
        .unwrap();
    remove_raw(&store, "chunk_blocks", &orphan_block);
    let store = reopen(store);
    assert_eq!(store.samples.series_count(), 3);
    let stats = store.prune(1_001 + r).unwrap();
    assert_eq!(
        stats,
        PruneStats {
            chunks: 2,
            blocks: 2,
            series: 2,
            // The first two blocks' segment (the third block, a day later, started
            // another), and the values of the two series gone (`job` is still used).
            segments: 1,
            symbols: 2,
            ..PruneStats::default()
        }
    );
    // One batch of symbols left: `job` and `kept`.
    assert_eq!(raw_keys(&store, "symbols").len(), 1);
    assert_eq!(store.samples.series_count(), 1);
    assert!(store.samples.is_indexed(kept.fingerprint()));
    let chunks: Vec<(Labels, i64)> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.map(|c| (c.labels, c.max_t)).unwrap())
        .collect();
    assert_eq!(chunks, [(kept.clone(), r + 2_000)]);
}

#[test]
fn a_chunk_written_after_pruning_its_series_reindexes_it() {
    let (_dir, store) = temp_store();
    let l = Labels::new([("job", "x")]);
    let later = 2_000 + SERIES_REFRESH_MS; // the index keeps whole seconds, rounded up
    store.samples.put_chunk(&l, 0, 100, 1, &[1]).unwrap();
    store.prune(later).unwrap();
    assert_eq!(store.samples.series_count(), 0);
    store
        .samples
        .put_chunk(&l, later, later + 100, 1, &[2])
        .unwrap();
    assert_eq!(store.samples.series_count(), 1);
    assert_eq!(store.samples.chunks_since(0).count(), 1);
}
