use super::open::{FORMAT_KEY, FORMAT_MAGIC};
use super::test_util::*;
use super::*;
use std::io;

#[test]
fn injected_failures_are_storage_full_io_errors() {
    let (_dir, store) = temp_store();
    store.fail_writes(true);
    let e = store.flush().unwrap_err();
    match &e {
        StoreError::Io { source, .. } => assert_eq!(source.kind(), io::ErrorKind::StorageFull),
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.is_io());
    store.fail_writes(false);
    store.flush().unwrap();
}

#[test]
fn the_write_check_fails_while_a_bulk_write_fails() {
    let (_dir, store) = temp_store();
    store.write_check("check", b"1").unwrap();
    let r = ProbeRecord {
        probe: "api".into(),
        t: 1,
        success: true,
        duration_seconds: 0.1,
        status: Some(200),
        reason: String::new(),
    };
    store.probes.append_probe(&r).unwrap();
    store.probes.fail_next_append();
    store.probes.write_probe_journal().unwrap_err();
    // sled takes the small durable write; the failed journal write is what fails it.
    let e = store.write_check("check", b"2").unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert!(e.to_string().contains("writing probe results"), "{e}");
    assert!(
        std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("injected write failure")),
        "the cause is kept: {e:?}"
    );
    // The next journal write succeeds: the store is fine again.
    assert_eq!(store.probes.write_probe_journal().unwrap(), 1);
    store.write_check("check", b"3").unwrap();
}

#[test]
fn newer_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap().store;
        let mut marker = FORMAT_MAGIC.to_vec();
        marker.push(FORMAT_VERSION + 1);
        put_raw(&store, "meta", FORMAT_KEY.as_bytes(), &marker);
        store.flush().unwrap();
    }
    let e = Store::open(&path).unwrap_err();
    assert!(
        matches!(e, StoreError::NewerFormat { found: 2, .. }),
        "{e:?}"
    );
    assert!(path.exists());
}

#[test]
fn ids_increase() {
    let (_dir, store) = temp_store();
    let a = store.state.outbox_next_id().unwrap();
    let b = store.state.outbox_next_id().unwrap();
    assert!(b > a);
}
