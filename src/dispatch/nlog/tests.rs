use super::*;

fn set(v: &[u64]) -> BTreeSet<u64> {
    v.iter().copied().collect()
}

#[test]
fn dedup_rules() {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let rep = chrono::Duration::hours(4);
    let e = NlogEntry {
        at: now - chrono::Duration::minutes(5),
        firing: set(&[1, 2]),
        resolved: set(&[]),
    };
    assert!(
        needs_update(None, &set(&[1]), &set(&[]), true, rep, now),
        "first notification"
    );
    assert!(
        !needs_update(None, &set(&[]), &set(&[1]), true, rep, now),
        "resolved before ever notified"
    );
    assert!(
        !needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, rep, now),
        "unchanged inside repeat"
    );
    assert!(
        !needs_update(Some(&e), &set(&[1]), &set(&[]), false, rep, now),
        "subset, resolved not sent"
    );
    assert!(
        needs_update(Some(&e), &set(&[1]), &set(&[2]), true, rep, now),
        "one resolved, send_resolved"
    );
    assert!(
        needs_update(Some(&e), &set(&[1, 3]), &set(&[]), true, rep, now),
        "a new alert"
    );
    assert!(
        needs_update(Some(&e), &set(&[]), &set(&[1, 2]), false, rep, now),
        "all resolved"
    );
    assert!(
        needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            true,
            chrono::Duration::minutes(5),
            now
        ),
        "repeat due"
    );
}
