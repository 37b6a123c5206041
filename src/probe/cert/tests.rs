use super::*;

fn cert_with_not_after(y: i32, m: u8, d: u8) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["example.test".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.self_signed(&key).unwrap().der().to_vec()
}

fn unix(y: i32, m: u32, d: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

#[test]
fn reads_utc_time_not_after() {
    let der = cert_with_not_after(2031, 7, 15);
    assert_eq!(not_after(&der), Some(unix(2031, 7, 15)));
}

#[test]
fn reads_generalized_time_not_after() {
    // RFC 5280: dates from 2050 on are GeneralizedTime.
    let der = cert_with_not_after(2061, 2, 28);
    assert_eq!(not_after(&der), Some(unix(2061, 2, 28)));
}

#[test]
fn utc_time_years_before_1950_rule() {
    assert_eq!(
        parse_time(TAG_UTC_TIME, b"491231235959Z"),
        Some(unix(2050, 1, 1) - 1)
    );
    assert_eq!(
        parse_time(TAG_UTC_TIME, b"500101000000Z"),
        Some(unix(1950, 1, 1))
    );
}

#[test]
fn rejects_bad_times() {
    assert_eq!(parse_time(TAG_UTC_TIME, b"491231235959"), None);
    assert_eq!(parse_time(TAG_UTC_TIME, b"4912312359591"), None);
    assert_eq!(parse_time(TAG_UTC_TIME, b"491331235959Z"), None); // month 13
    assert_eq!(parse_time(TAG_GENERALIZED_TIME, b"20300230000000Z"), None); // 30 Feb
    assert_eq!(parse_time(TAG_GENERALIZED_TIME, b"2030-1-1000000Z"), None);
    assert_eq!(parse_time(TAG_INTEGER, b"20300101000000Z"), None);
}

#[test]
fn garbage_and_truncated_input_give_none() {
    let der = cert_with_not_after(2031, 7, 15);
    for cut in 0..der.len() {
        assert_eq!(not_after(&der[..cut]), None, "cut at {cut}");
    }
    assert_eq!(not_after(b""), None);
    assert_eq!(not_after(&[0x30, 0x80, 0, 0]), None); // indefinite length
    assert_eq!(not_after(&[0x30, 0x85, 1, 1, 1, 1, 1]), None); // huge length
    assert_eq!(not_after(&[0x1f, 0x01, 0x00]), None); // multi-byte tag
    // Every single-byte corruption either still parses or gives None, never panics.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let mut bad = der.clone();
        let i = rng.usize(..bad.len());
        bad[i] = rng.u8(..);
        let _ = not_after(&bad);
    }
    let mut rng_bytes = vec![0u8; 512];
    for _ in 0..500 {
        rng.fill(&mut rng_bytes);
        rng_bytes[0] = 0x30;
        let _ = not_after(&rng_bytes);
    }
}
