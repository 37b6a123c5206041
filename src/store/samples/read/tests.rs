use promql_parser::label::{MatchOp, Matcher};

use super::*;
use crate::store::test_util::temp_store;

fn chunk(from: i64, n: i64, v: f64) -> Chunk {
    let mut c = Chunk::new();
    for i in 0..n {
        c.append(from + i * 10, v + i as f64).unwrap();
    }
    c
}

fn put(store: &crate::store::Store, labels: &Labels, c: &Chunk) {
    store
        .samples
        .put_chunk(
            labels,
            c.first_t(),
            c.last_t(),
            c.len() as u32,
            c.as_bytes(),
        )
        .unwrap();
}

#[test]
fn matchers_find_stored_series_by_their_labels() {
    let (_dir, store) = temp_store();
    let a = Labels::new([("__name__", "up"), ("job", "api")]);
    let b = Labels::new([("__name__", "up"), ("job", "db"), ("zone", "x")]);
    put(&store, &a, &chunk(0, 5, 0.0));
    put(&store, &b, &chunk(0, 5, 0.0));
    let find = |ms: Vec<Matcher>| -> Vec<Labels> {
        let mut v: Vec<Labels> = store
            .samples
            .series_matching(&ms)
            .unwrap()
            .into_iter()
            .map(|s| s.labels)
            .collect();
        v.sort();
        v
    };
    let re = |s: &str| MatchOp::Re(regex::Regex::new(&format!("^(?:{s})$")).unwrap());
    assert_eq!(
        find(vec![Matcher::new(MatchOp::Equal, "__name__", "up")]),
        [a.clone(), b.clone()]
    );
    assert_eq!(find(vec![Matcher::new(re("d.*"), "job", "d.*")]), [b]);
    // An absent label is the empty value, as in Prometheus.
    assert_eq!(find(vec![Matcher::new(MatchOp::Equal, "zone", "")]), [a]);
    assert_eq!(find(vec![Matcher::new(MatchOp::Equal, "nope", "1")]), []);
}

#[test]
fn a_read_returns_the_wanted_series_in_range_and_stops_when_told() {
    let (_dir, store) = temp_store();
    let a = Labels::new([("__name__", "x"), ("job", "a")]);
    let b = Labels::new([("__name__", "x"), ("job", "b")]);
    put(&store, &a, &chunk(0, 10, 0.0));
    put(&store, &a, &chunk(100, 10, 10.0));
    // The same chunk again (a write retried): read once.
    put(&store, &a, &chunk(100, 10, 10.0));
    put(&store, &b, &chunk(0, 10, 0.0));
    let mut charged = 0;
    let got = store
        .samples
        .samples_of(&[a.fingerprint()], 50, 150, &mut |n| {
            charged += n;
            true
        })
        .unwrap();
    assert_eq!(got.len(), 1, "b was not asked for");
    let ts: Vec<i64> = got[&a.fingerprint()].iter().map(|x| x.t).collect();
    assert_eq!(ts, (5..=15).map(|i| i * 10).collect::<Vec<_>>());
    assert!(charged >= ts.len());
    let stopped = store
        .samples
        .samples_of(&[a.fingerprint()], 0, 200, &mut |_| false);
    assert_eq!(stopped, Err(ReadStopped));
}

#[test]
fn a_read_leaves_blocks_outside_its_range_unread() {
    let (_dir, store) = temp_store();
    let a = Labels::new([("__name__", "x"), ("job", "a")]);
    put(&store, &a, &chunk(0, 10, 0.0));
    put(&store, &a, &chunk(1_000, 10, 0.0));
    // Damage the newer block (the last record of the segment): a read that opens it counts it.
    let seg = crate::store::test_util::segment_files(&store)
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let read = |from, to| {
        store
            .samples
            .samples_of(&[a.fingerprint()], from, to, &mut |_| true)
            .unwrap()
            .remove(&a.fingerprint())
            .map_or(0, |s| s.len())
    };
    assert_eq!(read(0, 500), 10);
    assert_eq!(store.skipped_records(), 0, "the newer block was not read");
    assert_eq!(read(0, 2_000), 10);
    assert_eq!(store.skipped_records(), 1, "this read opened it");
}
