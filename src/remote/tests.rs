use super::*;

use prost::Message as _;

use crate::config::load_str;

fn config(extra: &str) -> Config {
    load_str(
        &format!(
            "[global]\nexternal_labels = {{ replica = \"a\" }}\n[[remote_write]]\nurl = \"http://127.0.0.1:9/api/v1/write\"\n{extra}"
        ),
        "test.toml",
    )
    .expect("valid config")
}

fn labels(name: &str, job: &str) -> Labels {
    Labels::new([("__name__", name), ("job", job)])
}

fn decode(body: &[u8]) -> WriteRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy block");
    WriteRequest::decode(raw.as_slice()).expect("protobuf")
}

#[test]
fn a_request_holds_one_series_per_label_set_with_its_samples_in_order_and_the_external_labels() {
    let up = labels("up", "api");
    let entries = vec![
        Entry {
            labels: up.clone(),
            t: 1000,
            v: 1.0,
        },
        Entry {
            labels: labels("up", "db"),
            t: 1000,
            v: 0.0,
        },
        Entry {
            labels: up.clone(),
            t: 2000,
            v: crate::series::STALE_NAN,
        },
    ];
    let req = decode(&encode(
        &entries,
        &[("replica".into(), "a".into()), ("job".into(), "x".into())],
    ));
    assert_eq!(req.timeseries.len(), 2);
    let api = &req.timeseries[0];
    let names: Vec<(&str, &str)> = api
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    // Sorted by name; the series' own `job` wins over the external one.
    assert_eq!(
        names,
        [("__name__", "up"), ("job", "api"), ("replica", "a")]
    );
    assert_eq!(api.samples.len(), 2);
    assert_eq!(
        (api.samples[0].timestamp, api.samples[0].value),
        (1000, 1.0)
    );
    assert_eq!(
        api.samples[1].value.to_bits(),
        crate::series::STALE_NAN_BITS
    );
}

#[test]
fn a_request_decodes_as_the_protocol_s_messages_whatever_the_values_and_lengths() {
    // Long label values (multi-byte lengths), zero and negative values and times, and series
    // interleaved in time.
    let long = "x".repeat(300);
    let a = Labels::new([("__name__", "a"), ("path", long.as_str())]);
    let b = labels("b", "db");
    let entries: Vec<Entry> = [
        (&a, -5, 0.0),
        (&b, 0, -1.5),
        (&a, 1, f64::INFINITY),
        (&b, 1 << 40, 2.0),
    ]
    .into_iter()
    .map(|(l, t, v)| Entry {
        labels: l.clone(),
        t,
        v,
    })
    .collect();
    let req = decode(&encode(&entries, &[("zone".into(), "eu".into())]));
    let label = |n: &str, v: &str| ProtoLabel {
        name: n.into(),
        value: v.into(),
    };
    let sample = |t, v| ProtoSample {
        value: v,
        timestamp: t,
    };
    let want = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![
                    label("__name__", "a"),
                    label("path", &long),
                    label("zone", "eu"),
                ],
                samples: vec![sample(-5, 0.0), sample(1, f64::INFINITY)],
            },
            TimeSeries {
                labels: vec![
                    label("__name__", "b"),
                    label("job", "db"),
                    label("zone", "eu"),
                ],
                samples: vec![sample(0, -1.5), sample(1 << 40, 2.0)],
            },
        ],
    };
    assert_eq!(req, want);
}

#[test]
fn write_relabel_keeps_and_drops_by_the_joined_source_labels() {
    let c = config(
        "write_relabel = [{ action = \"drop\", regex = \"go_.*\" }, { action = \"keep\", source_labels = [\"__name__\", \"job\"], regex = \"up;api|probe_.*;.*\" }]",
    );
    let (_dir, store) = crate::store::test_util::temp_store();
    let rw = RemoteWrite::new(
        &c,
        Arc::new(Head::new()),
        &store,
        crate::notify::Clients::new()
            .expect("client")
            .http()
            .clone(),
        Clock::System,
        Telemetry::new(),
    )
    .expect("one endpoint");
    let e = &rw.endpoints[0];
    let mut buf = String::new();
    assert!(e.keeps(&labels("up", "api"), &mut buf));
    assert!(!e.keeps(&labels("up", "db"), &mut buf), "keep is anchored");
    assert!(e.keeps(&labels("probe_success", "db"), &mut buf));
    assert!(!e.keeps(&labels("go_goroutines", "api"), &mut buf));
}

/// The remote writer of `c`'s one endpoint over `head` and `store`.
fn remote_write(c: &Config, head: &Arc<Head>, store: &Store, capacity: usize) -> RemoteWrite {
    let http = crate::notify::Clients::new()
        .expect("client")
        .http()
        .clone();
    RemoteWrite::with_capacity(
        c,
        head.clone(),
        store,
        http,
        Clock::System,
        Telemetry::new(),
        capacity,
    )
    .expect("one endpoint")
}

#[test]
fn a_full_queue_opens_a_gap_that_the_head_fills_and_later_samples_queue_again() {
    let c = config("shards = 1");
    let head = Arc::new(Head::new());
    let (_dir, store) = crate::store::test_util::temp_store();
    let rw = remote_write(&c, &head, &store, 3);
    head.set_tap(Some(Arc::new(Tap(rw.endpoints.clone()))));
    let up = labels("up", "api");
    for t in 1..=5 {
        head.append(&up, t * 1000, t as f64);
    }
    {
        let mut q = lock(&rw.endpoints[0].queue);
        assert!(
            q.entries.is_empty(),
            "the full queue let go of samples 1-3 and holds none after"
        );
        assert_eq!(q.gap_until, Some(5000), "the gap follows the newest sample");
        // The sender's reads came near the present: the gap's end is fixed.
        q.gap_grows = false;
    }
    head.append(&up, 6000, 6.0);
    let queued: Vec<Timestamp> = lock(&rw.endpoints[0].queue)
        .entries
        .iter()
        .map(|x| x.t)
        .collect();
    assert_eq!(queued, [6000], "a sample after the fixed gap queues again");
    // What the queue let go of is read back from the head, after the shard's position.
    let back: Vec<Timestamp> = rw.read_back(&rw.endpoints[0], &[1000], 5000).shards[0]
        .iter()
        .map(|x| x.t)
        .collect();
    assert_eq!(back, [2000, 3000, 4000, 5000]);
    // Without the tap (no remote write) the head keeps nothing aside.
    head.set_tap(None);
    head.append(&up, 7000, 7.0);
    assert_eq!(lock(&rw.endpoints[0].queue).entries.len(), 1);
}

#[test]
fn a_growing_gap_ends_where_the_backlog_s_reads_reach_the_present() {
    let mut q = Queue {
        gap_until: Some(100_000),
        gap_grows: true,
        ..Queue::default()
    };
    // Far behind: the gap keeps following the newest sample.
    assert_eq!(q.gap_for_read(10_000, 15_000, 94_000), Some(100_000));
    assert!(q.gap_grows);
    // The next read reaches the landed samples: the end is fixed where it is.
    assert_eq!(q.gap_for_read(80_000, 15_000, 94_000), Some(100_000));
    assert!(!q.gap_grows);
    assert_eq!(Queue::default().gap_for_read(0, 15_000, 94_000), None);
}

#[test]
fn routes_are_computed_once_per_series_and_forgotten_at_a_reset() {
    let mut routes = Routes::new();
    let mut computed = 0;
    let mut get = |routes: &mut Routes, id: u64, r: u8| {
        routes.get(id, || {
            computed += 1;
            r
        })
    };
    assert_eq!(get(&mut routes, 7, 0), 0);
    assert_eq!(get(&mut routes, 8, FILTERED), FILTERED);
    assert_eq!(get(&mut routes, 9, 63), 63);
    // Known now: whatever the computation would say, the first answer stands.
    assert_eq!(get(&mut routes, 7, 5), 0);
    assert_eq!(get(&mut routes, 8, 5), FILTERED);
    assert_eq!(get(&mut routes, 9, 5), 63);
    // Past the covered ids: computed each time.
    assert_eq!(get(&mut routes, ROUTES_MAX + 1, 3), 3);
    assert_eq!(get(&mut routes, ROUTES_MAX + 1, 4), 4);
    routes.reset();
    assert_eq!(routes.base, 7, "the lowest id looked up");
    assert_eq!(get(&mut routes, 9, 2), 2, "forgotten at the reset");
    assert_eq!(get(&mut routes, 3, 1), 1, "before the base: computed");
    assert_eq!(get(&mut routes, 3, 2), 2);
    assert_eq!(computed, 8);
}

#[test]
fn the_backlog_is_read_back_from_the_store_where_the_head_no_longer_holds_it() {
    let c = config("shards = 2");
    // Small chunks, so that truncation drops whole chunks of the older samples.
    let head = Arc::new(Head::with_chunk_samples(10));
    let (_dir, store) = crate::store::test_util::temp_store();
    let rw = remote_write(&c, &head, &store, QUEUE_CAPACITY);
    let (up, gone) = (labels("up", "api"), labels("up", "gone"));
    for t in 1..=100 {
        head.append(&up, t * 1000, t as f64);
        if t <= 30 {
            head.append(&gone, t * 1000, -(t as f64));
        }
    }
    // A checkpoint stores everything; the head then keeps only from 60 s on (`gone`, which
    // stopped at 30 s, leaves it).
    crate::store::checkpoint::checkpoint(&head, &store.samples, true, 60_000).expect("stored");
    head.truncate_and_trim(60_000);
    head.mark_complete_since(60_000);
    let kept: Vec<Timestamp> = head
        .select(&[], 0, i64::MAX)
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.t))
        .collect();
    assert!(
        kept.iter().all(|&t| t >= 51_000),
        "the head let go of the old samples: {kept:?}"
    );
    let n = 2;
    let shard_of = |l: &Labels| (l.fingerprint() % n as u64) as usize;
    // Each series from its shard's position: `up` from 5 s, `gone` from 20 s, or both from 5 s
    // when they share a shard.
    let mut pos = vec![5_000; n];
    if shard_of(&up) != shard_of(&gone) {
        pos[shard_of(&gone)] = 20_000;
    }
    let gone_from = pos[shard_of(&gone)];
    let split = rw.read_back(&rw.endpoints[0], &pos, 90_000);
    assert_eq!(split.filtered, 0);
    for (k, shard) in split.shards.iter().enumerate() {
        assert!(
            shard.iter().all(|x| shard_of(&x.labels) == k),
            "each sample in its series' shard"
        );
    }
    let of = |l: &Labels| -> Vec<(Timestamp, f64)> {
        split.shards[shard_of(l)]
            .iter()
            .filter(|x| &x.labels == l)
            .map(|x| (x.t, x.v))
            .collect()
    };
    let want_up: Vec<(Timestamp, f64)> = (6..=90).map(|t| (t * 1000, t as f64)).collect();
    assert_eq!(
        of(&up),
        want_up,
        "every sample once, in time order, across the head's edge"
    );
    let want_gone: Vec<(Timestamp, f64)> = (gone_from / 1000 + 1..=30)
        .map(|t| (t * 1000, -(t as f64)))
        .collect();
    assert_eq!(
        of(&gone),
        want_gone,
        "a series gone from the head comes from the store"
    );
}

#[test]
fn the_shown_url_has_no_credentials_and_the_store_key_no_url() {
    assert_eq!(
        shown_url("https://user:pw@mimir.example/api/v1/push?token=x"),
        "https://mimir.example/api/v1/push"
    );
    let key = url_key("https://user:pw@mimir.example/api/v1/push");
    assert!(
        key.starts_with("remote_write/") && !key.contains("pw"),
        "{key}"
    );
}

#[test]
fn the_send_delay_covers_the_longest_scrape_or_probe_timeout() {
    let c = load_str(
        "[[job]]\nname = \"a\"\ntargets = [\"x:1\"]\nscrape_timeout = \"4s\"\n[[probe]]\nname = \"p\"\nurl = \"http://x\"\ntimeout = \"2s\"\n",
        "t.toml",
    )
    .expect("valid");
    assert_eq!(append_delay(&c), Duration::from_secs(5));
}
