use super::*;

fn ids() -> impl FnMut() -> Result<u64, StoreError> {
    let mut next = 0;
    move || {
        next += 1;
        Ok(next)
    }
}

#[test]
fn names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (segs, _) = Segments::open(dir.path().join("s"), HashMap::new()).unwrap();
    let path = segs.path_of(0xabc);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, "0000000000000abc.seg");
    assert_eq!(parse_name(&name), Some(0xabc));
    assert_eq!(parse_name("abc.seg"), None);
    assert_eq!(parse_name("0000000000000abc.seg.tmp"), None);
    assert_eq!(parse_name("open-1.snap"), None);
}

#[test]
fn records_round_trip_and_damage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (segs, _) = Segments::open(dir.path().join("s"), HashMap::new()).unwrap();
    let mut new_id = ids();
    let blocks = vec![vec![1, 2, 3], vec![], vec![9; 1000]];
    let locs = segs.append(0, &blocks, &mut new_id).unwrap();
    assert_eq!(locs[0].offset, HEADER_LEN);
    assert_eq!(locs[1].offset, HEADER_LEN + 8 + 3);
    let mut r = segs.reader();
    for (loc, b) in locs.iter().zip(&blocks) {
        assert_eq!(r.read(*loc).unwrap().block(), b.as_slice());
    }
    // An index entry that lies about the length, or points past the end of the file.
    let mut bad = locs[0];
    bad.len = 2;
    assert!(matches!(
        r.read(bad),
        Err(ReadError::Length { found: 3, .. })
    ));
    bad.len = u32::MAX;
    assert!(matches!(r.read(bad), Err(ReadError::Truncated { .. })));
    bad = locs[2];
    bad.offset = 0;
    assert!(matches!(r.read(bad), Err(ReadError::Truncated { .. })));
    // A missing segment fails every read, without a panic.
    let missing = BlockLoc {
        segment: 77,
        ..locs[0]
    };
    for _ in 0..2 {
        assert!(matches!(
            r.read(missing),
            Err(ReadError::Io {
                kind: io::ErrorKind::NotFound,
                ..
            })
        ));
    }
    // A file of another format.
    std::fs::write(segs.path_of(78), b"pfsg\x09rest").unwrap();
    let other = BlockLoc {
        segment: 78,
        ..locs[0]
    };
    assert_eq!(r.read(other).err(), Some(ReadError::Header { segment: 78 }));
    assert_eq!(segs.live(), HashMap::from([(1, 3)]));
}

#[test]
fn segments_roll_by_size_and_span() {
    let dir = tempfile::tempdir().unwrap();
    let (segs, _) = Segments::open(dir.path().join("s"), HashMap::new()).unwrap();
    let mut new_id = ids();
    let big = vec![0u8; (SEGMENT_MAX_BYTES / 2) as usize];
    let a = segs
        .append(0, std::slice::from_ref(&big), &mut new_id)
        .unwrap()[0];
    let b = segs
        .append(1, std::slice::from_ref(&big), &mut new_id)
        .unwrap()[0];
    let c = segs.append(2, &[vec![1]], &mut new_id).unwrap()[0];
    assert_eq!(
        (a.segment, b.segment, c.segment),
        (1, 1, 2),
        "full at 32 MiB"
    );
    let d = segs
        .append(2 + SEGMENT_MAX_SPAN_MS, &[vec![1]], &mut new_id)
        .unwrap()[0];
    assert_eq!(d.segment, 2, "a span of exactly the maximum stays");
    let e = segs
        .append(3 + SEGMENT_MAX_SPAN_MS, &[vec![1]], &mut new_id)
        .unwrap()[0];
    assert_eq!(e.segment, 3);
    assert_eq!(segs.current(), Some(3));
    // A short retention caps the span (Store::set_retention sets an eighth of it).
    segs.set_max_span(10);
    let t0 = 3 + SEGMENT_MAX_SPAN_MS;
    let f = segs.append(t0 + 10, &[vec![1]], &mut new_id).unwrap()[0];
    assert_eq!(
        f.segment, 3,
        "10 ms after the first append: still within the span"
    );
    let g = segs.append(t0 + 11, &[vec![1]], &mut new_id).unwrap()[0];
    assert_eq!(g.segment, 4, "past the capped span: a new segment");
    segs.set_max_span(i64::MAX);
    let h = segs
        .append(t0 + 11 + SEGMENT_MAX_SPAN_MS + 1, &[vec![1]], &mut new_id)
        .unwrap()[0];
    assert_eq!(h.segment, 5, "the cap never exceeds the maximum span");
}

#[test]
fn released_segments_are_deleted_unless_current() {
    let dir = tempfile::tempdir().unwrap();
    let (segs, _) = Segments::open(dir.path().join("s"), HashMap::new()).unwrap();
    let mut new_id = ids();
    let a = segs.append(0, &[vec![1], vec![2]], &mut new_id).unwrap();
    segs.release(a[0].segment);
    segs.release(a[1].segment);
    assert!(segs.take_doomed().is_empty(), "still being appended to");
    // Retired by a roll: now it goes.
    segs.append(SEGMENT_MAX_SPAN_MS + 1, &[vec![3]], &mut new_id)
        .unwrap();
    let doomed = segs.take_doomed();
    assert_eq!(doomed, [1]);
    assert_eq!(segs.delete(&doomed).unwrap(), 1);
    assert!(!segs.path_of(1).exists());
    assert!(segs.path_of(2).exists());
    // Releasing an unknown segment is harmless.
    segs.release(99);
    assert!(segs.take_doomed().is_empty());
}

#[test]
fn open_deletes_orphans_and_debris_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (segs, _) = Segments::open(path.clone(), HashMap::new()).unwrap();
    let mut new_id = ids();
    segs.append(0, &[vec![1]], &mut new_id).unwrap();
    segs.append(SEGMENT_MAX_SPAN_MS + 1, &[vec![2]], &mut new_id)
        .unwrap();
    drop(segs);
    std::fs::write(path.join("open-0.snap.tmp"), b"x").unwrap();
    std::fs::write(path.join("open-0.snap"), b"x").unwrap();
    std::fs::write(path.join("README"), b"x").unwrap();
    let (segs, deleted) = Segments::open(path.clone(), HashMap::from([(2, 1)])).unwrap();
    assert_eq!(deleted, 2, "segment 1 and the temporary file");
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["0000000000000002.seg", "README", "open-0.snap"]);
    assert_eq!(
        segs.current(),
        None,
        "a new segment is started at the first write"
    );
}
