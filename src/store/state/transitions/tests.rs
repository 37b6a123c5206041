use super::super::super::test_util::*;
use super::*;

#[test]
fn alert_history_round_trips() {
    let (_dir, store) = temp_store();
    let labels = Labels::new([
        ("alertname", "HighErrors"),
        ("job", "api"),
        ("severity", "page"),
    ]);
    let tr = |t, from: &str, to: &str| AlertTransition {
        t,
        alertname: "HighErrors".into(),
        labels: labels.clone(),
        from: from.into(),
        to: to.into(),
        value: 0.07,
    };
    store
        .state
        .append_alert_transition_durable(&tr(10, "inactive", "pending"))
        .unwrap();
    store
        .state
        .append_alert_transition_durable(&tr(20, "pending", "firing"))
        .unwrap();
    store
        .state
        .append_alert_transition_durable(&tr(30, "firing", "resolved"))
        .unwrap();
    let h = store
        .state
        .alert_history("HighErrors", 0, 100, 100)
        .unwrap();
    assert_eq!(
        h,
        vec![
            tr(10, "inactive", "pending"),
            tr(20, "pending", "firing"),
            tr(30, "firing", "resolved")
        ]
    );
    assert_eq!(
        store
            .state
            .alert_history("HighErrors", 15, 25, 100)
            .unwrap(),
        vec![tr(20, "pending", "firing")]
    );
    assert!(
        store
            .state
            .alert_history("Other", 0, 100, 100)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unknown_format_byte_is_skipped_and_counted() {
    let (_dir, store) = temp_store();
    let tr = |t| AlertTransition {
        t,
        alertname: "A".into(),
        labels: Labels::new([("alertname", "A")]),
        from: "pending".into(),
        to: "firing".into(),
        value: 1.0,
    };
    store
        .state
        .append_alert_transition_durable(&tr(1_000))
        .unwrap();
    store
        .state
        .append_alert_transition_durable(&tr(3_000))
        .unwrap();
    let mut key = name_prefix("A").unwrap();
    key.extend_from_slice(&time_key(2_000));
    key.extend_from_slice(&7u64.to_be_bytes());
    put_raw(&store, "alert_transitions", &key, &[99, 1, 2, 3]);
    // A truncated value and a malformed key are skipped the same way.
    key.extend_from_slice(b"junk");
    put_raw(&store, "alert_transitions", &key, &[TRANSITION_V1, 1]);
    let h = store.state.alert_history("A", 0, 10_000, 10).unwrap();
    assert_eq!(h.iter().map(|r| r.t).collect::<Vec<_>>(), [1_000, 3_000]);
    assert_eq!(store.skipped_records(), 2);
}
