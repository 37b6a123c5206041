use super::*;

#[test]
fn batches_round_trip_and_reject_damage() {
    let entries = vec![
        BatchEntry {
            fp: 7,
            referenced_until: 1_700_000_000_000,
            ids: vec![0, 1, 2, 3],
        },
        BatchEntry {
            fp: u64::MAX,
            referenced_until: UNREFERENCED,
            ids: vec![],
        },
    ];
    let value = encode_batch(&entries);
    let back = decode_batch(&value).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(
        (back[0].fp, back[0].referenced_until, back[0].ids.as_slice()),
        (7, 1_700_000_000_000, [0, 1, 2, 3].as_slice())
    );
    assert_eq!(
        (back[1].fp, back[1].referenced_until),
        (u64::MAX, UNREFERENCED)
    );
    for n in 0..value.len() {
        assert!(decode_batch(&value[..n]).is_err(), "prefix of {n} bytes");
    }
    let mut other = value.clone();
    other[0] = 9;
    assert!(matches!(
        decode_batch(&other),
        Err(DecodeError::UnknownFormat(9))
    ));
    assert!(matches!(
        decode_batch(&[SERIES_BATCH_V1, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::Truncated)
    ));
}

#[test]
fn a_slot_keeps_its_batch_and_tells_label_sets_apart() {
    let a = Labels::new([("job", "a")]);
    let b = Labels::new([("job", "b")]);
    for batch in [0, 1, 12_345, MAX_BATCH - 1] {
        let slot = Slot::new(batch, -5, &a);
        assert_eq!((slot.batch(), slot.referenced_until), (batch, -5));
        assert!(SeriesIndex::same_labels(&slot, &a));
        assert!(!SeriesIndex::same_labels(&slot, &b));
        let moved = slot.moved_to(7);
        assert_eq!(moved.batch(), 7);
        assert!(SeriesIndex::same_labels(&moved, &a));
    }
    assert_eq!(size_of::<(u64, Slot)>(), 24);
    assert!(check_batch(MAX_BATCH).is_err());
}

#[test]
fn the_check_hash_tells_label_sets_apart() {
    let a = Labels::new([("a", "bc")]);
    let b = Labels::new([("ab", "c")]);
    assert_ne!(check_hash(&a), check_hash(&b));
    assert_eq!(check_hash(&a), check_hash(&Labels::new([("a", "bc")])));
}

#[test]
fn fp_map_behaves_like_a_map_with_batched_writes() {
    // Random batches of upserts (fingerprints from a small range, so that batches repeat
    // themselves and each other) and removals, checked against a BTreeMap.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut map = FpMap::default();
    let mut model = std::collections::BTreeMap::new();
    let slot = |batch: u64| Slot::new(batch, batch as i64, &Labels::new([("a", "b")]));
    for round in 0..300u64 {
        if round % 10 == 9 {
            let mut gone: Vec<u64> = (0..rng.usize(0..50)).map(|_| rng.u64(0..2_000)).collect();
            gone.sort_unstable();
            gone.dedup();
            let removed = map.remove_sorted(&gone);
            let want: Vec<u64> = gone.iter().filter_map(|fp| model.remove(fp)).collect();
            assert_eq!(removed.iter().map(|s| s.batch()).collect::<Vec<_>>(), want);
            continue;
        }
        let new: Vec<(u64, Slot)> = (0..rng.usize(0..200))
            .map(|i| (rng.u64(0..2_000), slot(round * 1_000 + i as u64)))
            .collect();
        let mut want_replaced = Vec::new();
        for (fp, s) in &new {
            if let Some(old) = model.insert(*fp, s.batch()) {
                want_replaced.push(old);
            }
        }
        let mut replaced: Vec<u64> = map.upsert(new).iter().map(|s| s.batch()).collect();
        replaced.sort_unstable();
        want_replaced.sort_unstable();
        assert_eq!(replaced, want_replaced, "round {round}");
        assert_eq!(map.len(), model.len());
        assert!(
            map.0.windows(2).all(|w| w[0].fp() < w[1].fp()),
            "sorted, no duplicates"
        );
        for (fp, batch) in &model {
            assert_eq!(map.get(*fp).map(|s| s.batch()), Some(*batch));
        }
        assert!(map.get(2_000).is_none());
    }
    assert!(
        map.0.capacity() <= map.len() + map.len() / 8 + 200,
        "little slack"
    );
}
