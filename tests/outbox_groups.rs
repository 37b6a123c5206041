//! One message a receiver keeps refusing holds up only its own group: the other groups' pages
//! to that receiver go out on time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, TestServer, wait_until};

#[test]
fn a_refused_group_does_not_delay_another_groups_page_to_the_same_receiver() {
    // The receiver answers 500 to every message of group A and accepts the others.
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let log = seen.clone();
    let hook = TestServer::start(move |req| {
        log.lock().unwrap().push((Instant::now(), req.body.clone()));
        if req.body.contains("\"alertname\":\"GroupA\"") {
            (500, "text/plain", "not today".into())
        } else {
            (200, "text/plain", "ok".into())
        }
    });
    // GroupA fires at once; GroupB two seconds later, behind A's first failed attempt.
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
[storage]
path = "{{dir}}/data"
[global]
evaluation_interval = "1s"
[[rule]]
alert = "GroupA"
expr = 'vector(1)'
[[rule]]
alert = "GroupB"
expr = 'vector(1)'
for = "2s"
[[route]]
receivers = ["hook"]
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{}/alerts"
timeout = "2s"
"#,
        hook.port
    );
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), &config, &[]);
    d.wait_ready();
    wait_until(15, "GroupA's first attempt", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b.contains("GroupA"))
    });
    // B fires about 2 s after A; with A failing at the head of a strict queue it would wait
    // for A's retries (1 s, 2 s, 4 s, ...) for up to 24 hours.
    wait_until(12, "GroupB's page while GroupA keeps failing", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, b)| b.contains("\"alertname\":\"GroupB\""))
    });
    let got = seen.lock().unwrap();
    let first_a = got.iter().find(|(_, b)| b.contains("GroupA")).unwrap().0;
    let first_b = got
        .iter()
        .find(|(_, b)| b.contains("\"alertname\":\"GroupB\""))
        .unwrap()
        .0;
    assert!(
        first_b.duration_since(first_a) < Duration::from_secs(8),
        "GroupB went out {:?} after GroupA's first attempt",
        first_b.duration_since(first_a)
    );
    assert!(
        got.iter().filter(|(_, b)| b.contains("GroupA")).count() >= 2,
        "GroupA is still retried"
    );
    drop(got);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
