use super::*;
use crate::notify::tests::sample;

fn queued(group: &str, id: u64, next_attempt: DateTime<Utc>) -> (u64, OutboxEntry) {
    let mut notification = sample();
    notification.group_key = group.into();
    let e = OutboxEntry {
        notification,
        created: next_attempt,
        attempts: 0,
        next_attempt,
        last_error: String::new(),
    };
    (id, e)
}

#[test]
fn the_next_message_is_the_oldest_due_head_of_a_group() {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let later = now + chrono::Duration::seconds(30);
    // A's head waits for a retry; B's is due: B goes, although A is older.
    let q: BTreeMap<u64, OutboxEntry> = [
        queued("A", 1, later),
        queued("A", 2, now),
        queued("B", 3, now),
    ]
    .into();
    let (next, wait) = next_due(&q, now);
    assert_eq!(next.map(|(id, _)| id), Some(3));
    assert_eq!(wait, Some(Duration::ZERO));
    // A's second message never overtakes its first.
    let q: BTreeMap<u64, OutboxEntry> = [queued("A", 1, later), queued("A", 2, now)].into();
    let (next, wait) = next_due(&q, now);
    assert!(next.is_none());
    assert_eq!(wait, Some(Duration::from_secs(30)));
    assert_eq!(next_due(&BTreeMap::new(), now).1, None);
}

#[tokio::test(start_paused = true)]
async fn a_message_the_receiver_never_takes_is_dropped_after_24_hours() {
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let clock = Clock::tokio_from(t0);
    let config = Arc::new(
            crate::config::load_str(
                "[[receiver]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/down\"\ntimeout = \"1s\"\n",
                "t.toml",
            )
            .unwrap(),
        );
    let (_dir, store) = crate::store::test_util::temp_store();
    let telemetry = Telemetry::new();
    let outbox = Outbox::new(
        store.state.clone(),
        config,
        Clients::new().unwrap(),
        telemetry.clone(),
        clock.clone(),
    );
    let store = outbox.shared.store.clone();
    let mut n = sample();
    n.receiver = "hook".into();
    let id = store.outbox_next_id().unwrap();
    let entry = OutboxEntry {
        notification: n,
        created: t0,
        attempts: 0,
        next_attempt: t0,
        last_error: String::new(),
    };
    store.outbox_put_durable(id, &entry).unwrap();
    outbox.push(id, entry);
    let stop = CancellationToken::new();
    let task = tokio::spawn(outbox.clone().run(stop.clone()));
    let dropped = || {
        telemetry
            .notifications_dropped_total
            .with_label_values(&["hook", "expired"])
            .get()
    };
    // Retried with backoff for a day (the connection is refused every time)...
    tokio::time::sleep(Duration::from_secs(23 * 3600)).await;
    assert_eq!(dropped(), 0);
    assert_eq!(outbox.depth()["hook"], 1, "still queued after 23 hours");
    // ...then dropped, from the queue and from the store.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(dropped(), 1);
    assert_eq!(outbox.depth()["hook"], 0);
    assert!(store.outbox_all::<OutboxEntry>().unwrap().is_empty());
    stop.cancel();
    task.await.unwrap();
}

#[test]
fn backoff_grows_with_jitter_and_honours_retry_after() {
    for _ in 0..100 {
        let d1 = backoff(1, None);
        assert!(
            d1 >= Duration::from_millis(800) && d1 <= Duration::from_millis(1200),
            "{d1:?}"
        );
        let d4 = backoff(4, None);
        assert!(
            d4 >= Duration::from_millis(6400) && d4 <= Duration::from_millis(9600),
            "{d4:?}"
        );
        assert!(backoff(30, None) <= Duration::from_secs(360));
    }
    assert_eq!(
        backoff(3, Some(Duration::from_secs(7))),
        Duration::from_secs(7)
    );
    // The outbox and the HTTP client cap a Retry-After at the same hour.
    let days = crate::notify::parse_retry_after("172800", Utc::now());
    assert_eq!(days, Some(crate::notify::MAX_RETRY_AFTER));
    assert_eq!(
        backoff(3, Some(Duration::from_secs(7200))),
        Duration::from_secs(3600)
    );
}
