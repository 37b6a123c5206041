use super::*;

#[test]
fn the_labels_bound_is_never_below_what_is_written() {
    let long = "v".repeat(300);
    for labels in [
        Labels::empty(),
        Labels::new([("job", "api")]),
        Labels::new([
            ("__name__", "http_requests_total"),
            ("code", "200"),
            ("x", &long),
        ]),
    ] {
        let mut e = Encoder::with_format_and_capacity(1, 0);
        e.labels(&labels);
        let written = e.finish().len() - 1;
        assert!(written <= Encoder::labels_len_bound(&labels), "{labels}");
    }
}

#[test]
fn varints_round_trip_at_the_edges() {
    let us = [
        0,
        1,
        127,
        128,
        255,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ];
    let is = [0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN, i64::MIN + 1];
    let mut e = Encoder::default();
    for u in us {
        e.uvarint(u);
    }
    for i in is {
        e.ivarint(i);
    }
    let buf = e.finish();
    let mut d = Decoder::new(&buf);
    for u in us {
        assert_eq!(d.uvarint().unwrap(), u);
    }
    for i in is {
        assert_eq!(d.ivarint().unwrap(), i);
    }
    d.finish().unwrap();
}

#[test]
fn small_numbers_are_one_byte() {
    let mut e = Encoder::default();
    e.uvarint(100).ivarint(-10);
    assert_eq!(e.finish().len(), 2);
}

#[test]
fn floats_keep_their_bits() {
    let vs = [
        0.0,
        -0.0,
        1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        crate::series::STALE_NAN,
        f64::MIN_POSITIVE,
        f64::MAX,
    ];
    let mut e = Encoder::default();
    for v in vs {
        e.f64(v);
    }
    let buf = e.finish();
    let mut d = Decoder::new(&buf);
    for v in vs {
        assert_eq!(d.f64().unwrap().to_bits(), v.to_bits());
    }
}

#[test]
fn strings_and_labels_round_trip() {
    let labels = Labels::new([("__name__", "up"), ("job", "ä pi ✓"), ("instance", "x:1")]);
    let mut e = Encoder::with_format(7);
    e.str("")
        .str("héllo wörld 🚀")
        .labels(&labels)
        .labels(&Labels::empty())
        .bytes(&[0, 255]);
    let buf = e.finish();
    let (format, mut d) = Decoder::with_format(&buf).unwrap();
    assert_eq!(format, 7);
    assert_eq!(d.str().unwrap(), "");
    assert_eq!(d.str().unwrap(), "héllo wörld 🚀");
    let back = d.labels().unwrap();
    assert_eq!(back, labels);
    assert_eq!(back.fingerprint(), labels.fingerprint());
    assert!(d.labels().unwrap().is_empty());
    assert_eq!(d.bytes().unwrap(), &[0, 255]);
    d.finish().unwrap();
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert_eq!(
        Decoder::with_format(&[]).unwrap_err(),
        DecodeError::Truncated
    );
    assert_eq!(
        Decoder::new(&[0xff; 11]).uvarint(),
        Err(DecodeError::VarintOverflow)
    );
    assert_eq!(
        Decoder::new(&[0x05, b'a']).str(),
        Err(DecodeError::Truncated)
    );
    assert_eq!(Decoder::new(&[0x01, 0xff]).str(), Err(DecodeError::Utf8));
    assert_eq!(
        Decoder::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).labels(),
        Err(DecodeError::Truncated)
    );
    // Unsorted labels would get a different fingerprint than they were stored under.
    let mut e = Encoder::default();
    e.uvarint(2).str("b").str("1").str("a").str("2");
    assert_eq!(
        Decoder::new(&e.finish()).labels(),
        Err(DecodeError::BadLabels)
    );
    assert_eq!(
        Decoder::new(&[0x01, b'a']).finish(),
        Err(DecodeError::Trailing)
    );
    // Every prefix of a valid value fails cleanly.
    let mut e = Encoder::default();
    e.str("abc").f64(1.0).labels(&Labels::new([("a", "b")]));
    let buf = e.finish();
    for n in 0..buf.len() {
        let mut d = Decoder::new(&buf[..n]);
        let r = d.str().and_then(|_| d.f64()).and_then(|_| d.labels());
        assert!(r.is_err(), "prefix of {n} bytes decoded");
    }
}

#[test]
fn time_keys_sort_in_time_order() {
    let ts = [
        i64::MIN,
        -1_000,
        -1,
        0,
        1,
        1_000,
        1_700_000_000_000,
        i64::MAX,
    ];
    for w in ts.windows(2) {
        assert!(time_key(w[0]) < time_key(w[1]), "{} vs {}", w[0], w[1]);
    }
    for t in ts {
        assert_eq!(time_from_key(time_key(t)), t);
    }
}
