use std::collections::HashSet;

use super::super::super::test_util::*;
use crate::series::Labels;
use crate::store::ChunkRef;

fn chunk<'a>(labels: &'a Labels, max_t: i64, bytes: &'a [u8]) -> ChunkRef<'a> {
    ChunkRef {
        labels,
        min_t: max_t - 10,
        max_t,
        count: 2,
        bytes,
    }
}

#[test]
fn chunks_are_invisible_until_commit_and_all_visible_after() {
    let (_dir, store) = temp_store();
    let a = Labels::new([("__name__", "x"), ("job", "a")]);
    let mut import = store.samples.import();
    import.put_chunks(&[chunk(&a, 100, &[1; 8])]).unwrap();
    import.put_chunks(&[chunk(&a, 200, &[2; 8])]).unwrap();
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    import.commit().unwrap();
    let store = reopen(store);
    let back: Vec<i64> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.unwrap().max_t)
        .collect();
    assert_eq!(back, [100, 200]);
    let spans = store
        .samples
        .chunk_spans(&HashSet::from([a.fingerprint()]))
        .unwrap();
    let mut got = spans[&a.fingerprint()].clone();
    got.sort_unstable();
    assert_eq!(got, [(90, 100), (190, 200)]);
}

#[test]
fn a_dropped_import_leaves_no_chunk_and_its_segment_goes_at_the_next_open() {
    let (_dir, store) = temp_store();
    let a = Labels::new([("__name__", "x"), ("job", "a")]);
    let mut import = store.samples.import();
    import.put_chunks(&[chunk(&a, 100, &[1; 8])]).unwrap();
    assert_eq!(segment_files(&store).len(), 1);
    drop(import);
    let store = reopen(store);
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    assert!(segment_files(&store).is_empty());
}
