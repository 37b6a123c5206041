//! `type = "alertmanager"` against a real Alertmanager 0.25 that forwards to a webhook: an HA
//! pair (two postflight instances with the same config) pages once, and the page resolves.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, TestServer, free_port, http, wait_until};

const AM: &str = "/usr/bin/prometheus-alertmanager";

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{port}"
[storage]
path = "{dir}/data"
[global]
probe_interval = "1s"
probe_timeout = "1s"
evaluation_interval = "1s"
[[probe]]
name = "down"
url = "http://127.0.0.1:{closed}/"
failure_threshold = 1
[[route]]
receivers = ["cluster"]
group_wait = "0s"
group_interval = "1s"
[[receiver]]
name = "cluster"
type = "alertmanager"
urls = ["http://127.0.0.1:{am}"]
resend_interval = "2s"
"#;

struct Alertmanager(Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alertmanager(dir: &Path, port: u16, hook: u16) -> Alertmanager {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
    let child = Command::new(AM)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("alertmanager starts");
    let am = Alertmanager(child);
    wait_until(30, "Alertmanager ready", || {
        http(port, "GET", "/-/ready", None, &[]).is_ok_and(|r| r.0 == 200)
    });
    am
}

#[test]
fn an_ha_pair_pages_once_through_a_real_alertmanager_and_the_page_resolves() {
    if !Path::new(AM).exists() {
        eprintln!("skipped: {AM} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        TestServer::start(move |r| {
            if let Ok(v) = serde_json::from_str(&r.body) {
                seen.lock().unwrap().push(v);
            }
            (200, "text/plain", String::new())
        })
    };
    let am_port = free_port();
    let _am = alertmanager(dir.path(), am_port, hook.port);
    let config = CONFIG
        .replace("{am}", &am_port.to_string())
        .replace("{closed}", &free_port().to_string());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut pair = [
        Daemon::start_in(&a, &config, &[]),
        Daemon::start_in(&b, &config, &[]),
    ];
    for d in &mut pair {
        d.wait_ready();
    }
    let statuses = |seen: &Mutex<Vec<serde_json::Value>>, status: &str| -> usize {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|v| v["status"] == status)
            .count()
    };
    wait_until(30, "the page through Alertmanager", || {
        statuses(&seen, "firing") > 0
    });
    {
        let pages = seen.lock().unwrap();
        let alert = &pages[0]["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "ProbeFailed");
        assert_eq!(alert["labels"]["probe"], "down");
        assert!(
            alert["generatorURL"]
                .as_str()
                .unwrap_or("")
                .starts_with("http"),
            "{alert}"
        );
    }
    // Both instances keep resending (every 2 s) for a while: still one page.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(statuses(&seen, "firing"), 1, "{:?}", seen.lock().unwrap());

    // The probe goes from both configs: the alert resolves, and so does the page.
    let without_probe = {
        let start = config.find("[[probe]]").unwrap();
        let end = config.find("[[route]]").unwrap();
        format!("{}{}", &config[..start], &config[end..])
    };
    for d in &pair {
        let text = without_probe
            .replace("{port}", &d.port.to_string())
            .replace("{dir}", &d.dir.display().to_string());
        std::fs::write(d.dir.join("postflight.toml"), text).unwrap();
        d.signal("HUP");
    }
    wait_until(30, "the page resolves", || statuses(&seen, "resolved") > 0);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["status"], "resolved", "{last}");
    assert_eq!(statuses(&seen, "firing"), 1);
}
