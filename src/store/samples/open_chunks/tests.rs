use super::super::super::test_util::*;
use super::*;

#[test]
fn snapshots_round_trip_in_files_and_replace_themselves() {
    let (_dir, store) = temp_store();
    let (a, b) = (Labels::new([("job", "a")]), Labels::new([("job", "b")]));
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    let open = [
        OpenChunk {
            labels: &a,
            fingerprint: a.fingerprint(),
            indexed: true,
            bytes: &[7, 7],
        },
        OpenChunk {
            labels: &b,
            fingerprint: b.fingerprint(),
            indexed: false,
            bytes: &[8],
        },
    ];
    store.samples.put_open_chunks(3, &open).unwrap();
    let mut got = store.samples.open_chunks().unwrap();
    got.sort();
    assert_eq!(got, [(a.clone(), vec![7, 7]), (b.clone(), vec![8])]);
    let names: Vec<String> = std::fs::read_dir(store.samples.inner.segments.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".seg"))
        .collect();
    assert_eq!(names, ["open-3.snap"], "no temporary file left");

    store.samples.put_open_chunks(3, &open[1..]).unwrap();
    assert_eq!(store.samples.open_chunks().unwrap(), [(b.clone(), vec![8])]);
    let store = reopen(store);
    assert_eq!(store.samples.open_chunks().unwrap(), [(b.clone(), vec![8])]);
    store.samples.put_open_chunks(3, &[]).unwrap();
    assert!(store.samples.open_chunks().unwrap().is_empty());
    assert!(matches!(
        store.samples.put_open_chunks(OPEN_SHARDS, &[]),
        Err(StoreError::InvalidRecord { .. })
    ));
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn damaged_snapshots_are_skipped_and_counted() {
    let (_dir, store) = temp_store();
    let labels: Vec<Labels> = (0..3)
        .map(|i| Labels::new([("job", i.to_string())]))
        .collect();
    for (shard, l) in labels.iter().enumerate() {
        let chunk = OpenChunk {
            labels: l,
            fingerprint: l.fingerprint(),
            indexed: false,
            bytes: &[1, 2, 3, 4, 5, 6],
        };
        store.samples.put_open_chunks(shard, &[chunk]).unwrap();
    }
    let path = |shard: usize| store.samples.snapshot_path(shard);
    let mut bytes = std::fs::read(path(0)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(path(0), &bytes).unwrap();
    std::fs::write(path(1), b"pfo").unwrap();
    assert_eq!(
        store.samples.open_chunks().unwrap(),
        [(labels[2].clone(), vec![1, 2, 3, 4, 5, 6])]
    );
    assert_eq!(store.skipped_records(), 2);
    assert_eq!(check_snapshot(&bytes), Err(DecodeError::Checksum));
    assert_eq!(check_snapshot(b"pfo"), Err(DecodeError::Truncated));
    assert_eq!(
        check_snapshot(b"pfop\x02\0\0\0\0"),
        Err(DecodeError::UnknownFormat(2))
    );
}
