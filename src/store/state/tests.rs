use super::super::test_util::*;
use super::*;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Silence {
    matchers: Vec<String>,
    ends_at: i64,
    comment: String,
}

fn silence(c: &str) -> Silence {
    Silence {
        matchers: vec!["job=\"api\"".into()],
        ends_at: 123,
        comment: c.into(),
    }
}

#[test]
fn json_records_put_get_scan_remove() {
    let (_dir, store) = temp_store();
    store
        .state
        .put_durable(Kind::Silences, "b", &silence("second"))
        .unwrap();
    store
        .state
        .put_durable(Kind::Silences, "a", &silence("first ✓"))
        .unwrap();
    store
        .state
        .put_durable(Kind::Deployments, "a", &"other tree")
        .unwrap();
    assert_eq!(
        store.state.get::<Silence>(Kind::Silences, "a").unwrap(),
        Some(silence("first ✓"))
    );
    assert_eq!(
        store.state.get::<Silence>(Kind::Silences, "zz").unwrap(),
        None
    );
    let all: Vec<(String, Silence)> = store.state.scan(Kind::Silences).unwrap();
    assert_eq!(
        all,
        vec![
            ("a".into(), silence("first ✓")),
            ("b".into(), silence("second"))
        ]
    );
    assert!(store.state.remove_durable(Kind::Silences, "a").unwrap());
    assert!(!store.state.remove_durable(Kind::Silences, "a").unwrap());
    assert_eq!(
        store.state.scan::<Silence>(Kind::Silences).unwrap().len(),
        1
    );
    assert_eq!(
        store.state.scan::<String>(Kind::Deployments).unwrap(),
        vec![("a".into(), "other tree".into())]
    );
}

#[test]
fn batches_apply_puts_and_removes() {
    let (_dir, store) = temp_store();
    store
        .state
        .put_durable(Kind::AlertState, "old", &1)
        .unwrap();
    let mut b = store.state.batch(Kind::AlertState);
    b.put("x", &2).unwrap();
    b.put("y", &3).unwrap();
    b.remove("old");
    store.state.apply_durable(b).unwrap();
    assert_eq!(
        store.state.scan::<i32>(Kind::AlertState).unwrap(),
        vec![("x".into(), 2), ("y".into(), 3)]
    );
}

#[test]
fn outbox_is_in_id_order() {
    let (_dir, store) = temp_store();
    let ids: Vec<u64> = (0..3)
        .map(|_| store.state.outbox_next_id().unwrap())
        .collect();
    for (i, id) in ids.iter().enumerate().rev() {
        store
            .state
            .outbox_put_durable(*id, &format!("n{i}"))
            .unwrap();
    }
    let all: Vec<(u64, String)> = store.state.outbox_all().unwrap();
    assert_eq!(
        all.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["n0", "n1", "n2"]
    );
    assert!(store.state.outbox_remove_durable(ids[1]).unwrap());
    assert_eq!(store.state.outbox_all::<String>().unwrap().len(), 2);
}

#[test]
fn undecodable_json_is_skipped_in_scans_and_an_error_in_gets() {
    let (_dir, store) = temp_store();
    store
        .state
        .put_durable(Kind::Nlog, "good", &silence("x"))
        .unwrap();
    put_raw(&store, "nlog", b"future", &[9, b'{', b'}']);
    put_raw(&store, "nlog", b"wrong-shape", &[JSON_V1, b'4', b'2']);
    put_raw(&store, "nlog", b"empty", &[]);
    put_raw(&store, "outbox", &5u64.to_be_bytes(), &[JSON_V1, b'{']);
    assert_eq!(store.state.scan::<Silence>(Kind::Nlog).unwrap().len(), 1);
    assert!(store.state.outbox_all::<Silence>().unwrap().is_empty());
    assert_eq!(store.skipped_records(), 4);
    assert!(matches!(
        store.state.get::<Silence>(Kind::Nlog, "future"),
        Err(StoreError::Decode {
            source: DecodeError::UnknownFormat(9),
            ..
        })
    ));
    assert!(matches!(
        store.state.get::<Silence>(Kind::Nlog, "wrong-shape"),
        Err(StoreError::Json { .. })
    ));
}

#[test]
fn meta_round_trips_and_reserves_store_keys() {
    let (_dir, store) = temp_store();
    store
        .state
        .meta_put_durable("head.last_cut", &[1, 2])
        .unwrap();
    assert_eq!(
        store.state.meta_get("head.last_cut").unwrap(),
        Some(vec![1, 2])
    );
    assert!(store.state.meta_put_durable("store.format", &[]).is_err());
}

#[test]
fn durable_writes_fail_when_injected() {
    let (_dir, store) = temp_store();
    store.fail_writes(true);
    assert!(
        store
            .state
            .put_durable(Kind::Silences, "a", &1)
            .unwrap_err()
            .is_io()
    );
    assert!(store.state.outbox_put_durable(1, &1).unwrap_err().is_io());
    assert!(
        store
            .state
            .remove_durable(Kind::Silences, "a")
            .unwrap_err()
            .is_io()
    );
    store.fail_writes(false);
    assert!(store.state.scan::<i32>(Kind::Silences).unwrap().is_empty());
}
