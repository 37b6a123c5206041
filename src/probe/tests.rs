use super::*;

#[test]
fn offsets_are_within_the_interval_stable_and_spread() {
    let interval = Duration::from_secs(10);
    let mut buckets = [0usize; 10];
    for i in 0..1000 {
        let name = format!("probe-{i}");
        let off = spread_offset(&name, interval);
        assert!(off < interval);
        assert_eq!(off, spread_offset(&name, interval), "deterministic");
        buckets[(off.as_secs()) as usize] += 1;
    }
    // 1000 names over 10 one-second buckets: each gets roughly 100.
    for (i, b) in buckets.iter().enumerate() {
        assert!((50..=150).contains(b), "bucket {i} has {b}");
    }
    // On a grid of interval / 50, so that probes sharing a slot start together.
    let mut slots = std::collections::HashMap::new();
    for i in 0..1000 {
        let off = spread_offset(&format!("probe-{i}"), interval);
        assert_eq!(
            off.as_nanos() % 200_000_000,
            0,
            "{off:?} is not on the 200 ms grid"
        );
        *slots.entry(off).or_insert(0) += 1;
    }
    assert_eq!(slots.len(), 50, "1000 probes use every slot");
    // About 20 a slot, well under the 64 that may run at once.
    assert!(slots.values().all(|n| (5..=40).contains(n)), "{slots:?}");
    assert_eq!(spread_offset("x", Duration::ZERO), Duration::ZERO);
    assert!(spread_offset("x", Duration::from_nanos(1)) < Duration::from_nanos(1));
}

#[test]
fn schedule_ticks_on_the_grid_and_skips_missed_ticks() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut s = Schedule::with_capacity(2);
    s.add(0, t0 + ms(30), ms(100));
    s.add(1, t0 + ms(70), ms(1000));
    assert_eq!(s.next_due(), Some(t0 + ms(30)));
    assert_eq!(s.pop_due(t0 + ms(29)), None, "not due yet");
    assert_eq!(s.pop_due(t0 + ms(31)), Some(0));
    assert_eq!(s.pop_due(t0 + ms(31)), None);
    // On time (within the tolerance): the next tick stays on the grid.
    assert_eq!(s.next_due(), Some(t0 + ms(70)));
    assert_eq!(s.pop_due(t0 + ms(72)), Some(1));
    assert_eq!(s.next_due(), Some(t0 + ms(130)));
    assert_eq!(s.pop_due(t0 + ms(130)), Some(0));
    assert_eq!(s.next_due(), Some(t0 + ms(230)));
    // The loop was stalled for 3.5 intervals: probe 0 runs once, then on its grid again.
    let late = t0 + ms(580);
    assert_eq!(s.pop_due(late), Some(0));
    assert_eq!(s.pop_due(late), None, "no burst of missed ticks");
    assert_eq!(s.next_due(), Some(t0 + ms(630)));
    // A run a little late (9 ms) does not move the grid either.
    assert_eq!(s.pop_due(t0 + ms(639)), Some(0));
    assert_eq!(s.next_due(), Some(t0 + ms(730)));
    // Probe 1 (due at 1070) keeps its own grid.
    assert_eq!(s.pop_due(t0 + ms(1070)), Some(0));
    assert_eq!(s.pop_due(t0 + ms(1070)), Some(1));
    assert_eq!(s.next_due(), Some(t0 + ms(1130)));
}

#[test]
fn kinds_by_scheme() {
    assert_eq!(ProbeKind::of("http://a/"), Some(ProbeKind::Http));
    assert_eq!(ProbeKind::of("HTTPS://a/"), Some(ProbeKind::Https));
    assert_eq!(ProbeKind::of("tcp://db:5432"), Some(ProbeKind::Tcp));
    assert_eq!(ProbeKind::of("ftp://a/"), None);
    assert_eq!(ProbeKind::of("nothing"), None);
}
