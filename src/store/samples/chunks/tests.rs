use super::super::super::Store;
use super::super::super::test_util::*;
use super::super::segments::SEGMENT_MAX_SPAN_MS;
use super::*;

fn labels(job: &str) -> Labels {
    Labels::new([("__name__", "up"), ("job", job)])
}

/// (series, max time, first byte) of every chunk read back.
fn read_back(store: &Store) -> Vec<(String, i64, u8)> {
    store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| {
            let c = c.unwrap();
            (c.labels.to_string(), c.max_t, c.bytes[0])
        })
        .collect()
}

/// Three checkpoints of two series, one block each, in one segment.
fn three_blocks(store: &Store) {
    let (a, b) = (labels("a"), labels("b"));
    for (i, t) in [100, 200, 300].into_iter().enumerate() {
        let byte = [i as u8 + 1; 40];
        store
            .samples
            .put_chunks(&[
                ChunkRef {
                    labels: &a,
                    min_t: t - 99,
                    max_t: t,
                    count: 10,
                    bytes: &byte,
                },
                ChunkRef {
                    labels: &b,
                    min_t: t - 99,
                    max_t: t,
                    count: 10,
                    bytes: &byte,
                },
            ])
            .unwrap();
    }
}

fn want(blocks: &[(i64, u8)]) -> Vec<(String, i64, u8)> {
    let mut v = Vec::new();
    for l in [labels("a"), labels("b")] {
        for (t, byte) in blocks {
            v.push((l.to_string(), *t, *byte));
        }
    }
    v.sort_by_key(|(l, t, _)| {
        let fp = if *l == labels("a").to_string() {
            labels("a").fingerprint()
        } else {
            labels("b").fingerprint()
        };
        (fp, *t)
    });
    v
}

#[test]
fn blocks_go_to_segments_and_survive_a_reopen() {
    let (_dir, store) = temp_store();
    three_blocks(&store);
    let files = segment_files(&store);
    assert_eq!(files.len(), 1);
    // The blocks' bytes are in the file, not in sled: every index value is a few bytes.
    let len = std::fs::metadata(&files[0]).unwrap().len();
    assert!(len > 3 * 2 * 40, "{len} bytes");
    for v in store.samples.inner.trees.blocks.iter().values() {
        let v = v.unwrap();
        assert_eq!(v[0], BLOCK_REF_V2);
        assert!(v.len() < 16, "{} bytes", v.len());
    }
    let all = want(&[(100, 1), (200, 2), (300, 3)]);
    assert_eq!(read_back(&store), all);
    // size_on_disk counts the segment.
    assert!(store.size_on_disk().unwrap() >= len);

    let store = reopen(store);
    assert_eq!(read_back(&store), all);
    assert_eq!(store.skipped_records(), 0);
    assert_eq!(
        segment_files(&store),
        files,
        "nothing written, no new segment"
    );
}

#[test]
fn a_reopened_store_appends_to_a_new_segment() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    let store = reopen(store);
    store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
    store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
    let files = segment_files(&store);
    assert_eq!(files.len(), 2, "one per open");
    let first = std::fs::read(&files[0]).unwrap();
    let second = std::fs::read(&files[1]).unwrap();
    assert!(second.len() > first.len(), "the second holds two blocks");
    assert_eq!(
        read_back(&store),
        [
            (a.to_string(), 100, 1),
            (a.to_string(), 200, 2),
            (a.to_string(), 300, 3)
        ]
    );
}

#[test]
fn a_torn_tail_loses_only_the_torn_block() {
    let (_dir, store) = temp_store();
    three_blocks(&store);
    let file = segment_files(&store).remove(0);
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    let len = f.metadata().unwrap().len();
    // Into the middle of the last record.
    f.set_len(len - 30).unwrap();
    drop(f);
    assert_eq!(read_back(&store), want(&[(100, 1), (200, 2)]));
    assert_eq!(store.skipped_records(), 1, "one block, counted once");

    // After a restart the torn file is never appended to again.
    let store = reopen(store);
    let a = labels("a");
    store.samples.put_chunk(&a, 301, 400, 1, &[4]).unwrap();
    assert_eq!(segment_files(&store).len(), 2);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len - 30);
    let got = read_back(&store);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.contains(&(a.to_string(), 400, 4)));
    assert_eq!(store.skipped_records(), 1);
}

#[test]
fn a_flipped_byte_fails_the_crc_and_only_that_block() {
    let (_dir, store) = temp_store();
    three_blocks(&store);
    let file = segment_files(&store).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    // Chunk bytes of the second block: its 40-byte runs of 2s.
    let at = bytes
        .windows(40)
        .position(|w| w.iter().all(|b| *b == 2))
        .unwrap();
    bytes[at + 5] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(read_back(&store), want(&[(100, 1), (300, 3)]));
    assert_eq!(store.skipped_records(), 1);
}

#[test]
fn a_missing_segment_skips_its_blocks() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
    let store = reopen(store);
    store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
    let files = segment_files(&store);
    std::fs::remove_file(&files[0]).unwrap();
    assert_eq!(read_back(&store), [(a.to_string(), 300, 3)]);
    assert_eq!(store.skipped_records(), 2, "each block of the missing file");
    // A restart is no refusal either: the index entries stay until retention.
    let store = reopen(store);
    assert_eq!(read_back(&store), [(a.to_string(), 300, 3)]);
}

#[test]
fn prune_deletes_segments_without_blocks() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    let hour = SEGMENT_MAX_SPAN_MS;
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
    // More than a span later: a second segment.
    store
        .samples
        .put_chunk(&a, 201, 300 + hour, 1, &[3])
        .unwrap();
    let files = segment_files(&store);
    assert_eq!(files.len(), 2);
    let segment_bytes = |store: &Store| {
        super::super::super::shared::dir_size(store.samples.inner.segments.dir()).unwrap()
    };
    let before = segment_bytes(&store);
    // The first block only: its segment still holds the second.
    assert_eq!(store.prune(101).unwrap().segments, 0);
    assert!(files[0].exists());
    let stats = store.prune(201).unwrap();
    assert_eq!((stats.blocks, stats.segments), (1, 1));
    assert!(!files[0].exists());
    assert!(segment_bytes(&store) < before);
    // The current segment stays while it is appended to, even with no block left...
    assert_eq!(store.prune(i64::MAX).unwrap().segments, 0);
    assert!(files[1].exists());
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    assert_eq!(store.skipped_records(), 0);
    // ...and goes at the next open, with no index entry left.
    let store = reopen(store);
    assert!(segment_files(&store).is_empty());
}

#[test]
fn open_deletes_segments_no_index_entry_refers_to() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    let store = reopen(store);
    store.samples.put_chunk(&a, 101, 200, 1, &[2]).unwrap();
    store.samples.put_chunk(&a, 201, 300, 1, &[3]).unwrap();
    let files = segment_files(&store);
    assert_eq!(files.len(), 2);
    // As if the process died before sled flushed the second segment's index entries.
    for key in raw_keys(&store, "chunk_blocks") {
        let v = store.samples.inner.trees.blocks.get(&key).unwrap().unwrap();
        if decode_block_ref(&v).unwrap().0.segment
            != store.samples.inner.segments.current().unwrap()
        {
            continue;
        }
        remove_raw(&store, "chunk_blocks", &key);
    }
    // And a segment torn while it was being created, and a snapshot's temporary file.
    let dir = store.samples.inner.segments.dir().to_owned();
    std::fs::write(dir.join("00000000ffffffff.seg"), b"pf").unwrap();
    std::fs::write(dir.join("open-3.snap.tmp"), b"partial").unwrap();
    let store = reopen(store);
    assert_eq!(segment_files(&store), [files[0].clone()]);
    assert!(!dir.join("open-3.snap.tmp").exists());
    assert_eq!(read_back(&store), [(a.to_string(), 100, 1)]);
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn the_series_index_is_written_in_batches_of_symbol_ids() {
    let (_dir, store) = temp_store();
    let series: Vec<Labels> = (0..100).map(|i| labels(&format!("job-{i}"))).collect();
    // Two checkpoints: the first 50 series, then all 100.
    let chunks = |n: usize, t: i64| -> Vec<ChunkRef<'_>> {
        series[..n]
            .iter()
            .map(|l| ChunkRef {
                labels: l,
                min_t: t - 10,
                max_t: t,
                count: 1,
                bytes: &[1],
            })
            .collect()
    };
    store.samples.put_chunks(&chunks(50, 100)).unwrap();
    store.samples.put_chunks(&chunks(100, 200)).unwrap();
    // One batch of entries and one of symbols per write that indexed new series.
    assert_eq!(batch_files(&store).len(), 2);
    assert_eq!(raw_keys(&store, "symbols").len(), 2);
    let index = store.samples.lock_index();
    // __name__, up, job and a hundred job names.
    assert_eq!(index.symbols.len(), 103);
    assert_eq!(index.symbols.refs("job"), Some(100));
    drop(index);
    let batches: u64 = batch_files(&store)
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum();
    assert!(batches < 100 * 16, "{batches} bytes for 100 entries");
    // The index and the symbols' counts come back at open.
    let store = reopen(store);
    assert_eq!(store.samples.series_count(), 100);
    assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(100));
    let got: HashSet<String> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.unwrap().labels.to_string())
        .collect();
    assert_eq!(got.len(), 100);
    assert!(got.contains(r#"up{job="job-7"}"#), "{got:?}");
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn a_fingerprint_collision_is_refused_and_names_the_stored_labels() {
    let (_dir, store) = temp_store();
    let (a, b) = (labels("a"), labels("b"));
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    // The index now says another label set (b's) is stored under a's fingerprint, as when
    // two label sets share one: a's next chunk is refused.
    store
        .samples
        .lock_index()
        .plant_collision(a.fingerprint(), &b);
    match store.samples.put_chunk(&a, 0, 200, 1, &[2]) {
        Err(StoreError::FingerprintCollision { fp, stored, new }) => {
            assert_eq!(fp, a.fingerprint());
            // What is stored is read back from the batch file.
            assert_eq!((stored, new), (a.to_string(), a.to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_back(&store), vec![(a.to_string(), 100, 1)]);
}

#[test]
fn small_batches_are_merged_at_prune() {
    let (_dir, store) = temp_store();
    // Series that come and go: one new series per checkpoint, a file each.
    let series: Vec<Labels> = (0..40).map(|i| labels(&format!("pod-{i}"))).collect();
    for (i, l) in series.iter().enumerate() {
        store
            .samples
            .put_chunk(l, 0, 100 + i as i64, 1, &[i as u8])
            .unwrap();
    }
    assert_eq!(batch_files(&store).len(), 40);
    let want = read_back(&store);
    store.prune(i64::MIN + 1).unwrap();
    assert_eq!(batch_files(&store).len(), 1, "merged into one");
    assert_eq!(read_back(&store), want);
    assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(40));
    // A few more stay apart until they pile up again.
    for (i, l) in series.iter().take(5).enumerate() {
        let l = labels(&format!("{}-again", l.get("job").unwrap()));
        store
            .samples
            .put_chunk(&l, 0, 200 + i as i64, 1, &[0])
            .unwrap();
    }
    store.prune(i64::MIN + 1).unwrap();
    assert_eq!(batch_files(&store).len(), 6);
    let store = reopen(store);
    assert_eq!(store.samples.series_count(), 45);
    assert_eq!(read_back(&store).len(), 45);
    assert_eq!(store.samples.lock_index().symbols.refs("job"), Some(45));
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn a_damaged_batch_file_loses_its_series_and_nothing_else() {
    let (_dir, store) = temp_store();
    let (a, b) = (labels("a"), labels("b"));
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    store.samples.put_chunk(&b, 0, 100, 1, &[2]).unwrap();
    let files = batch_files(&store);
    assert_eq!(files.len(), 2);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    // A temporary file a crash left behind is deleted.
    let tmp = files[0].with_extension("sidx.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let store = reopen(store);
    assert!(!tmp.exists());
    assert_eq!(store.skipped_records(), 1);
    assert_eq!(store.samples.series_count(), 1);
    let got: Vec<String> = read_back(&store).into_iter().map(|c| c.0).collect();
    assert_eq!(got, vec![b.to_string()], "a's chunk has no labels: skipped");
    // The next prune deletes the damaged batch; b's stays.
    store.prune(i64::MIN + 1).unwrap();
    assert_eq!(batch_files(&store), files[1..]);
    // Cut short, the file is as damaged.
    std::fs::write(&files[1], &std::fs::read(&files[1]).unwrap()[..6]).unwrap();
    let store = reopen(store);
    assert_eq!(store.samples.series_count(), 0);
}

#[test]
fn a_symbol_mixup_reads_as_a_damaged_entry() {
    let (_dir, store) = temp_store();
    let (a, b) = (labels("a"), labels("b"));
    store.samples.put_chunk(&a, 0, 100, 1, &[1]).unwrap();
    store.samples.put_chunk(&b, 0, 100, 1, &[2]).unwrap();
    // Swap the strings "a" and "b", the last symbol of each batch: both entries now
    // resolve to the other's label set, whose fingerprint is not theirs.
    let batches: Vec<(Vec<u8>, Vec<u8>)> = store
        .samples
        .inner
        .trees
        .symbols
        .iter()
        .map(|kv| kv.unwrap())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(batches.len(), 2);
    for (k, mut v) in batches {
        let last = v.len() - 1;
        v[last] = if v[last] == b'a' { b'b' } else { b'a' };
        put_raw(&store, "symbols", &k, &v);
    }
    let store = reopen(store);
    assert_eq!(store.skipped_records(), 2, "two entries, at open");
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    assert_eq!(store.skipped_records(), 4, "and their chunks");
    // A write puts a right entry back.
    store.samples.put_chunk(&a, 101, 200, 1, &[3]).unwrap();
    let back: Vec<(Labels, i64)> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|c| c.map(|c| (c.labels, c.max_t)).unwrap())
        .collect();
    assert_eq!(back, [(a.clone(), 100), (a.clone(), 200)]);
}

#[test]
fn blocks_round_trip() {
    let (a, b) = (labels("a"), labels("b"));
    let chunks = [
        ChunkRef {
            labels: &a,
            min_t: 0,
            max_t: 1_190_000,
            count: 120,
            bytes: &[1, 2, 3],
        },
        ChunkRef {
            labels: &b,
            min_t: -50,
            max_t: -10,
            count: 5,
            bytes: &[],
        },
        ChunkRef {
            labels: &a,
            min_t: i64::MIN,
            max_t: i64::MIN,
            count: u32::MAX,
            bytes: &[0xff; 300],
        },
    ];
    let value = encode_block(1_200_000, &chunks);
    let back = decode_block(1_200_000, &value).unwrap();
    let want: Vec<BlockChunk<'_>> = chunks
        .iter()
        .map(|c| BlockChunk {
            fp: c.labels.fingerprint(),
            min_t: c.min_t,
            max_t: c.max_t,
            count: c.count,
            bytes: c.bytes,
        })
        .collect();
    assert_eq!(back, want);
    // 303 chunk bytes and 3 fingerprints; the rest is varints, two of them 10 bytes long
    // for the i64::MIN chunk.
    assert!(value.len() <= 303 + 3 * 8 + 35, "{} bytes", value.len());
    let key = block_key(1_200_000, 7);
    assert_eq!(split_block_key(&key), Ok((1_200_000, 7)));
}

#[test]
fn bad_blocks_fail_to_decode_without_panicking() {
    let a = labels("a");
    let chunk = ChunkRef {
        labels: &a,
        min_t: 0,
        max_t: 100,
        count: 2,
        bytes: &[1, 2, 3, 4],
    };
    let value = encode_block(100, &[chunk, chunk]);
    for n in 0..value.len() {
        assert!(
            decode_block(100, &value[..n]).is_err(),
            "prefix of {n} bytes"
        );
    }
    let mut extra = value.clone();
    extra.push(0);
    assert_eq!(decode_block(100, &extra), Err(DecodeError::Trailing));
    let mut other = value.clone();
    other[0] = 9;
    assert_eq!(
        decode_block(100, &other),
        Err(DecodeError::UnknownFormat(9))
    );
    // A huge chunk count is refused before allocating.
    assert_eq!(
        decode_block(100, &[BLOCK_V1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::Truncated)
    );
    // A max time offset past i64::MIN.
    assert!(decode_block(i64::MIN, &value).is_err());
    assert!(split_block_key(&[0; 15]).is_err());
    for seed in 0u64..300 {
        let bytes: Vec<u8> = (0..(seed % 64))
            .map(|i| (seed.wrapping_mul(131).wrapping_add(i * 29) % 256) as u8)
            .collect();
        let _ = decode_block(seed as i64, &bytes);
    }
}

#[test]
fn chunks_since_regroups_blocks_by_series_in_time_order() {
    let (_dir, store) = temp_store();
    let (a, b, c) = (labels("a"), labels("b"), labels("c"));
    let chunk = |labels, min_t, max_t, byte| ChunkRef {
        labels,
        min_t,
        max_t,
        count: 1,
        bytes: std::slice::from_ref(byte),
    };
    // Three checkpoints, each a block mixing series, and a fourth holding an older chunk.
    store
        .samples
        .put_chunks(&[chunk(&b, 0, 90, &1), chunk(&a, 0, 100, &2)])
        .unwrap();
    store
        .samples
        .put_chunks(&[
            chunk(&c, 100, 150, &3),
            chunk(&a, 101, 200, &4),
            chunk(&b, 91, 190, &5),
        ])
        .unwrap();
    store
        .samples
        .put_chunks(&[chunk(&a, 201, 300, &6), chunk(&b, 191, 290, &7)])
        .unwrap();
    store.samples.put_chunks(&[chunk(&c, 0, 50, &8)]).unwrap();
    assert_eq!(raw_keys(&store, "chunk_blocks").len(), 4);
    let store = reopen(store);

    let got: Vec<(Labels, i64, u8)> = store
        .samples
        .chunks_since(i64::MIN)
        .map(|r| r.map(|c| (c.labels, c.max_t, c.bytes[0])).unwrap())
        .collect();
    let mut want = vec![
        (a.clone(), 100, 2),
        (a.clone(), 200, 4),
        (a.clone(), 300, 6),
        (b.clone(), 90, 1),
        (b.clone(), 190, 5),
        (b.clone(), 290, 7),
        (c.clone(), 50, 8),
        (c.clone(), 150, 3),
    ];
    // Series come in fingerprint order, each one's chunks together and in time order.
    want.sort_by_key(|(l, t, _)| (l.fingerprint(), *t));
    assert_eq!(got, want);
    assert_eq!(store.samples.series_count(), 3);

    // A block is read if its max time is recent enough, and only its recent chunks kept.
    let recent: Vec<(Labels, i64)> = store
        .samples
        .chunks_since(190)
        .map(|r| r.map(|c| (c.labels, c.max_t)).unwrap())
        .collect();
    assert_eq!(recent.len(), 4, "{recent:?}");
    assert!(
        recent.contains(&(b.clone(), 190)),
        "max_t == min_t is included"
    );
    assert!(!recent.contains(&(c.clone(), 150)));
    assert_eq!(store.skipped_records(), 0);
}

#[test]
fn rewriting_a_chunk_replaces_it() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    store.samples.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
    store.samples.put_chunk(&a, 0, 100, 3, &[1, 2]).unwrap();
    let all: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].count, 3);
    assert_eq!(store.samples.series_count(), 1);
}

#[test]
fn large_batches_are_split_into_blocks() {
    let (_dir, store) = temp_store();
    let series: Vec<Labels> = (0..40).map(|i| labels(&i.to_string())).collect();
    let bytes = vec![7u8; BLOCK_MAX_BYTES / 16];
    let chunks: Vec<ChunkRef<'_>> = series
        .iter()
        .map(|l| ChunkRef {
            labels: l,
            min_t: 0,
            max_t: 100,
            count: 120,
            bytes: &bytes,
        })
        .collect();
    store.samples.put_chunks(&chunks).unwrap();
    let blocks = raw_keys(&store, "chunk_blocks").len();
    assert!((3..=4).contains(&blocks), "{blocks} blocks");
    let back: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
    assert_eq!(back.len(), 40);
    assert!(back.iter().all(|c| c.bytes == bytes));
}

#[test]
fn bad_blocks_and_series_are_skipped_and_counted() {
    let (_dir, store) = temp_store();
    let (a, b, c) = (labels("a"), labels("b"), labels("c"));
    store.samples.put_chunk(&a, 0, 100, 2, &[1]).unwrap();
    store.samples.put_chunk(&b, 0, 200, 1, &[2]).unwrap();
    store.samples.put_chunk(&c, 0, 200, 1, &[3]).unwrap();
    // A block index entry of an unknown format, a truncated one, a key of the wrong shape.
    put_raw(&store, "chunk_blocks", &block_key(150, 1_000), &[42, 0, 0]);
    let loc = BlockLoc {
        segment: 1,
        offset: 5,
        len: 3,
    };
    let good = encode_block_ref(loc, 1, 0);
    put_raw(
        &store,
        "chunk_blocks",
        &block_key(200, 1_001),
        &good[..good.len() - 1],
    );
    put_raw(&store, "chunk_blocks", &block_key(300, 5)[..15], &good);
    // A series whose index batch is gone, and one whose batch does not decode.
    let files = batch_files(&store);
    assert_eq!(files.len(), 3);
    std::fs::remove_file(&files[1]).unwrap();
    let mut bytes = std::fs::read(&files[2]).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 0x40;
    std::fs::write(&files[2], &bytes).unwrap();
    // The batch that does not decode is skipped at open.
    let store = reopen(store);
    assert_eq!(store.skipped_records(), 1);
    let all: Vec<StoredChunk> = store.samples.chunks_since(0).map(Result::unwrap).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].bytes, [1]);
    // Three bad blocks, and the chunks of the two series missing from the index.
    assert_eq!(store.skipped_records(), 6);
}

#[test]
fn invalid_span_is_refused() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    let ok = ChunkRef {
        labels: &a,
        min_t: 0,
        max_t: 5,
        count: 1,
        bytes: &[],
    };
    let bad = ChunkRef { min_t: 10, ..ok };
    assert!(matches!(
        store.samples.put_chunks(&[ok, bad]),
        Err(StoreError::InvalidRecord { .. })
    ));
    assert_eq!(store.samples.series_count(), 0);
    assert_eq!(store.samples.chunks_since(i64::MIN).count(), 0);
    store.samples.put_chunks(&[]).unwrap();
}

#[test]
fn index_entries_are_refreshed_only_when_stale() {
    let (_dir, store) = temp_store();
    let a = labels("a");
    let fp = a.fingerprint();
    let referenced = |store: &Store| {
        store
            .samples
            .lock_index()
            .get(fp)
            .map(|s| s.referenced_until)
    };
    store.samples.put_chunk(&a, 0, 1_000, 1, &[]).unwrap();
    assert_eq!(referenced(&store), Some(1_000));
    store
        .samples
        .put_chunk(&a, 0, 1_000 + SERIES_REFRESH_MS, 1, &[])
        .unwrap();
    assert_eq!(referenced(&store), Some(1_000));
    assert_eq!(batch_files(&store).len(), 1);
    store
        .samples
        .put_chunk(&a, 0, 1_001 + SERIES_REFRESH_MS, 1, &[])
        .unwrap();
    // Kept in whole seconds, rounded up: never earlier than written.
    assert_eq!(referenced(&store), Some(2_000 + SERIES_REFRESH_MS));
    assert_eq!(batch_files(&store).len(), 2);
    // Superseded entries go at the next prune: their batches are deleted.
    assert_eq!(store.samples.lock_index().dirty_batches(), 1);
    store.prune(i64::MIN + 1).unwrap();
    assert_eq!(batch_files(&store).len(), 1);
    let store = reopen(store);
    assert_eq!(referenced(&store), Some(2_000 + SERIES_REFRESH_MS));
}
