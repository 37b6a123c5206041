use super::*;
use crate::series::{STALE_NAN, STALE_NAN_BITS};

#[test]
fn size_classes_are_jemallocs() {
    let classes: Vec<usize> = [1, 16, 17, 32, 33, 128, 129, 160, 161, 256, 257, 1000, 1025]
        .iter()
        .map(|&n| size_class(n))
        .collect();
    assert_eq!(
        classes,
        [16, 16, 32, 32, 48, 128, 160, 160, 192, 256, 320, 1024, 1280]
    );
    for n in 1..100_000 {
        let c = size_class(n);
        assert!(c >= n && size_class(c) == c, "{n} -> {c}");
    }
}

#[test]
fn an_open_chunk_grows_in_whole_size_classes_and_reads_back() {
    // Constant values (2 bits a sample) and noisy ones (a full XOR window each).
    for noisy in [false, true] {
        let mut c = Chunk::new();
        let mut sizes = Vec::new();
        for i in 0..1000i64 {
            let v = match noisy {
                true => (i as f64 * 0.7311).sin() * 1e3,
                false => 42.0,
            };
            c.append(1_000 + i * 10_000, v).unwrap();
            if sizes.last() != Some(&c.heap_bytes()) {
                sizes.push(c.heap_bytes());
            }
        }
        assert!(
            sizes.iter().all(|&n| size_class(n) == n),
            "noisy {noisy}: {sizes:?}"
        );
        // A quarter or more at each step: few reallocations.
        assert!(
            sizes.windows(2).all(|w| w[1] >= w[0] + w[0] / 4),
            "{sizes:?}"
        );
        let back: Vec<Sample> = c.iter().collect();
        assert_eq!(back.len(), 1000);
        assert!(
            back.iter()
                .enumerate()
                .all(|(i, s)| s.t == 1_000 + i as i64 * 10_000)
        );
    }
}

fn roundtrip(samples: &[(i64, f64)]) -> Chunk {
    let mut c = Chunk::new();
    for &(t, v) in samples {
        c.append(t, v).expect("in order");
    }
    let got: Vec<(i64, u64)> = c.iter().map(|s| (s.t, s.v.to_bits())).collect();
    let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(got, want);
    let back = Chunk::from_bytes(c.as_bytes()).expect("decodes");
    assert_eq!(
        back.iter()
            .map(|s| (s.t, s.v.to_bits()))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(back.len(), samples.len());
    c
}

#[test]
fn regular_scrapes_compress_well() {
    // 120 samples every 10 s: a counter growing by a few units and a gauge jittering a
    // little, the common shapes.
    let t0 = 1_700_000_000_000;
    let counter: Vec<_> = (0..120)
        .map(|i| (t0 + i * 10_000, 1000.0 + (i * 7 + i % 3) as f64))
        .collect();
    let c = roundtrip(&counter);
    let per_sample = c.as_bytes().len() as f64 / 120.0;
    assert!(per_sample < 2.5, "counter: {per_sample} bytes/sample");
    let constant: Vec<_> = (0..120).map(|i| (t0 + i * 10_000, 1.0)).collect();
    let c = roundtrip(&constant);
    assert!(c.as_bytes().len() <= 52, "{} bytes", c.as_bytes().len());
}

#[test]
fn since_keeps_the_samples_from_a_time_on_bit_exactly() {
    let t0 = 1_700_000_000_000;
    let samples: Vec<_> = (0..120)
        .map(|i| {
            (
                t0 + i * 10_000,
                if i == 50 {
                    STALE_NAN
                } else {
                    (i * i) as f64 / 3.0
                },
            )
        })
        .collect();
    let c = roundtrip(&samples);
    let bits = |c: &Chunk| c.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
    let tail = c.since(t0 + 400_000);
    assert_eq!(bits(&tail), bits(&c)[40..]);
    assert_eq!(
        (tail.len(), tail.first_t(), tail.last_t()),
        (80, t0 + 400_000, c.last_t())
    );
    assert!(tail.as_bytes().len() < c.as_bytes().len());
    // Between samples, before the first, after the last.
    assert_eq!(bits(&c.since(t0 + 395_000)), bits(&c)[40..]);
    assert_eq!(bits(&c.since(i64::MIN)), bits(&c));
    assert!(c.since(c.last_t() + 1).is_empty());
    // The re-encoded chunk reads back from its bytes and takes further samples.
    let mut back = Chunk::from_bytes(tail.as_bytes()).expect("decodes");
    assert_eq!(bits(&back), bits(&tail));
    back.append(c.last_t() + 10_000, 1.0)
        .expect("appends after its last sample");
}

#[test]
fn stale_markers_and_special_values_round_trip_bit_exactly() {
    let weird_nan = f64::from_bits(0x7ff8_dead_beef_0001);
    let c = roundtrip(&[
        (1, 1.5),
        (2, STALE_NAN),
        (3, f64::NAN),
        (4, weird_nan),
        (5, f64::INFINITY),
        (6, f64::NEG_INFINITY),
        (7, -0.0),
        (8, f64::MIN_POSITIVE),
        (9, STALE_NAN),
    ]);
    let vals: Vec<u64> = c.iter().map(|s| s.v.to_bits()).collect();
    assert_eq!(vals[1], STALE_NAN_BITS);
    assert_eq!(vals[8], STALE_NAN_BITS);
    assert_ne!(vals[2], STALE_NAN_BITS);
}

#[test]
fn random_values_and_gaps_round_trip() {
    // Every XOR window width and every delta-of-delta bucket, many times over: random bit
    // patterns, small integer steps and repeats, with jittered and occasionally huge gaps.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..200 {
        let mut t: i64 = 1_700_000_000_000 + round;
        let mut v = 0.0f64;
        let samples: Vec<(i64, f64)> = (0..(1 + next() % 400))
            .map(|_| {
                let r = next();
                t += match r % 7 {
                    0 => 1 + (r >> 40) as i64 % 3_000_000_000,
                    1 => 1 + (r >> 50) as i64,
                    _ => 10_000 + (r >> 60) as i64 - 8,
                };
                v = match (r >> 3) % 5 {
                    0 => f64::from_bits(next()),
                    1 => v,
                    2 => v + ((r >> 20) % 10) as f64,
                    3 => (r >> 11) as f64 / 1e6,
                    _ => -v,
                };
                (t, v)
            })
            .collect();
        roundtrip(&samples);
    }
}

#[test]
fn runs_of_repeated_samples_read_back_whole_and_nothing_more() {
    // Runs of samples repeating the previous delta and value (two zero bits each), of
    // every length around the reader's 64- and 128-bit refills, between changed samples,
    // at the start, and running to the chunk's last sample and its zero padding.
    let t0 = 1_700_000_000_000;
    for run in [1, 2, 3, 31, 32, 33, 63, 64, 65, 127, 128, 200, 400] {
        for tail_changes in [false, true] {
            let mut samples = vec![(t0, 5.0), (t0 + 10_000, 5.0)];
            let mut t = t0 + 10_000;
            for block in 0..3 {
                for _ in 0..run {
                    t += 10_000;
                    samples.push((t, 5.0 + block as f64));
                }
                // A changed value, then a changed delta, end a run.
                t += 10_000;
                samples.push((t, 6.5 + block as f64));
                t += 10_007;
                samples.push((t, 6.5 + block as f64));
            }
            for _ in 0..run {
                t += 10_007;
                samples.push((t, 6.5));
            }
            if tail_changes {
                samples.push((t + 1, 7.0));
            }
            let c = roundtrip(&samples);
            let back = Chunk::from_bytes(c.as_bytes()).expect("decodes");
            assert_eq!(back.iter().count(), samples.len(), "run {run}");
            // `since` from every sample (inside runs, on their ends, between samples) is
            // the chunk that appending those samples one by one makes, bit for bit, and
            // takes further samples as that one does.
            for from in samples.iter().flat_map(|s| [s.0, s.0 + 1]) {
                let mut tail = c.since(from);
                let mut want = Chunk::new();
                for &(t, v) in samples.iter().filter(|s| s.0 >= from) {
                    want.append(t, v).expect("in order");
                }
                want.shrink_to_fit();
                assert!(tail == want, "run {run} since {from}");
                let next = (t + 20_000, 1.0);
                if !tail.is_empty() {
                    tail.append(next.0, next.1).expect("appends");
                    want.append(next.0, next.1).expect("appends");
                    assert_eq!(tail.as_bytes(), want.as_bytes());
                }
            }
        }
    }
    // A count larger than the stream is refused, whatever zero bits pad the stream.
    let mut bytes = roundtrip(&[(t0, 1.0), (t0 + 10, 1.0), (t0 + 20, 1.0)])
        .as_bytes()
        .to_vec();
    bytes[..HEADER].copy_from_slice(&400u16.to_be_bytes());
    assert!(Chunk::from_bytes(&bytes).is_err());
    assert!(Chunk::samples_in(&bytes, i64::MIN, i64::MAX).is_err());
}

#[test]
fn samples_in_a_range_decode_as_the_chunk_reads_and_refuse_what_it_refuses() {
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| (1_000 + i * 15_000, i as f64 * 0.5))
        .collect();
    let c = roundtrip(&samples);
    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (1_000, 1_000),
        (200_000, 900_000),
        (0, 999),
    ] {
        let want: Vec<Sample> = c.iter().filter(|s| s.t >= mint && s.t <= maxt).collect();
        let got = Chunk::samples_in(c.as_bytes(), mint, maxt).expect("decodes");
        assert_eq!(got, want, "[{mint}, {maxt}]");
    }
    let bytes = c.as_bytes();
    for bad in [
        &bytes[..1],
        &bytes[..bytes.len() - 3],
        &[bytes, &[0][..]].concat()[..],
    ] {
        assert!(Chunk::from_bytes(bad).is_err());
        assert!(Chunk::samples_in(bad, i64::MIN, i64::MAX).is_err());
    }
}

#[test]
fn irregular_and_extreme_timestamps() {
    roundtrip(&[
        (i64::MIN, 0.0),
        (-5, 1.0),
        (0, 2.0),
        (1, 3.0),
        (10_000, 4.0),
        (10_001, 5.0),
        (5_000_000_000, 6.0),
        (i64::MAX, 7.0),
    ]);
    roundtrip(&[(42, 1.0)]);
    roundtrip(&[]);
    // Every dod bucket boundary.
    let mut t = 0;
    let mut samples = vec![(0, 0.0)];
    for (i, d) in [1, 8192, 8193, 65536, 65537, 524288, 524289, 1 << 40, 3]
        .iter()
        .enumerate()
    {
        t += d;
        samples.push((t, i as f64 * 1e300));
    }
    roundtrip(&samples);
}

#[test]
fn appending_after_a_load_continues_the_stream() {
    let mut c = Chunk::new();
    for i in 0..50 {
        c.append(i * 15_000, (i * i) as f64 * 0.1).expect("append");
    }
    let mut loaded = Chunk::from_bytes(c.as_bytes()).expect("load");
    for i in 50..100 {
        c.append(i * 15_000, (i * i) as f64 * 0.1).expect("append");
        loaded
            .append(i * 15_000, (i * i) as f64 * 0.1)
            .expect("append");
    }
    assert_eq!(c.as_bytes(), loaded.as_bytes());
}

#[test]
fn out_of_order_is_refused_and_corrupt_bytes_rejected() {
    let mut c = Chunk::new();
    c.append(10, 1.0).expect("first");
    assert!(matches!(
        c.append(10, 2.0),
        Err(ChunkError::OutOfOrder { .. })
    ));
    assert!(matches!(
        c.append(5, 2.0),
        Err(ChunkError::OutOfOrder { .. })
    ));
    c.append(20, 2.0).expect("later");
    let mut bytes = c.as_bytes().to_vec();
    bytes.pop();
    assert!(Chunk::from_bytes(&bytes).is_err());
    assert!(Chunk::from_bytes(&[0]).is_err());
    let mut extra = c.as_bytes().to_vec();
    extra.push(0);
    assert!(Chunk::from_bytes(&extra).is_err());
    // Garbage never panics.
    for seed in 0u64..200 {
        let bytes: Vec<u8> = (0..(seed % 40))
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 17) % 251) as u8)
            .collect();
        let _ = Chunk::from_bytes(&bytes);
    }
}
