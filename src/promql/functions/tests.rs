use super::*;

fn smp(t: i64, v: f64) -> Sample {
    Sample { t, v }
}

#[test]
fn rate_extrapolates_to_window_edges() {
    // 0,10,…,50 every 10s, window (0, 60s]: samples at 10..60s.
    let s: Vec<Sample> = (1..=6).map(|i| smp(i * 10_000, i as f64 * 10.0)).collect();
    let w = Window {
        samples: &s,
        ts: 60_000,
        start: 0,
        end: 60_000,
        range: 60_000,
        scalars: &[],
    };
    // Increase 50 over 50s, extrapolated to 60s (start within 1.1 intervals; the zero point
    // is exactly at the window start).
    let inc = extrapolated_rate(&w, true, false).unwrap();
    assert!((inc - 60.0).abs() < 1e-9, "{inc}");
    let rate = extrapolated_rate(&w, true, true).unwrap();
    assert!((rate - 1.0).abs() < 1e-9);
}

#[test]
fn rate_corrects_counter_resets() {
    let s = vec![smp(0, 10.0), smp(10_000, 20.0), smp(20_000, 5.0)];
    let w = Window {
        samples: &s,
        ts: 20_000,
        start: -1,
        end: 20_000,
        range: 20_001,
        scalars: &[],
    };
    // 10→20 (+10), reset, 0→5 (+5) = 15 over the sampled 20s, barely extrapolated.
    let inc = extrapolated_rate(&w, true, false).unwrap();
    assert!((inc - 15.00075).abs() < 1e-9, "{inc}");
}

#[test]
fn dates_match_go() {
    // 2024-02-29T13:45:00Z
    let s = 1_709_214_300;
    assert_eq!(date_function("year")(s), 2024.0);
    assert_eq!(date_function("month")(s), 2.0);
    assert_eq!(date_function("day_of_month")(s), 29.0);
    assert_eq!(date_function("days_in_month")(s), 29.0);
    assert_eq!(date_function("day_of_year")(s), 60.0);
    assert_eq!(date_function("day_of_week")(s), 4.0);
    assert_eq!(date_function("hour")(s), 13.0);
    assert_eq!(date_function("minute")(s), 45.0);
}

#[test]
fn natsort_orders_numbers_numerically() {
    assert!(natsort_less("a2", "a10"));
    assert!(!natsort_less("a10", "a2"));
    assert!(natsort_less("abc", "abd"));
}
