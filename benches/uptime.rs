//! How fast the real daemon answers 90-day uptime for 1,000 probes (target: ≤ 100 ms).
//!
//! Fills a store with 90 days of results of 1,000 probes through the real probe log (one
//! result a probe an hour, every hour's uptime row written as the daemon's journal loop
//! writes it), starts the release binary on that store with the 1,000 probes configured, and
//! times `GET /api/v1/uptime?window=90d` (every probe) and `GET /api/v1/uptime?probe=…&window=90d`
//! over fresh connections. The answer comes from the hourly counts: the raw results are
//! never read for it, so their number does not matter. Also reports how long the daemon
//! took to open the store and become ready.
//!
//! ```text
//! cargo bench --bench uptime
//! UPTIME_BENCH_PROBES=200 cargo bench --bench uptime
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postflight::store::{DAY_MS, HOUR_MS, ProbeRecord, Store};

const DAYS: i64 = 90;
const REQUESTS: usize = 30;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get(port: u16, path: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw.len())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn time(port: u16, path: &str) -> Vec<f64> {
    let mut ms: Vec<f64> = (0..REQUESTS)
        .map(|_| {
            let t = Instant::now();
            let (status, bytes) = get(port, path);
            assert_eq!(status, 200, "{path}");
            assert!(bytes > 0);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn main() {
    let probes = env("UPTIME_BENCH_PROBES", 1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let now = chrono::Utc::now().timestamp_millis();
    let start = (now - DAYS * DAY_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let names: Vec<String> = (0..probes).map(|i| format!("probe-{i:04}")).collect();

    let filled = Instant::now();
    {
        let store = Store::open(&data).expect("open").store;
        let mut t = start;
        let mut n = 0u64;
        while t < now {
            for (i, name) in names.iter().enumerate() {
                let r = ProbeRecord {
                    probe: name.clone(),
                    t: t + i as i64,
                    success: !(n + i as u64).is_multiple_of(97),
                    duration_seconds: 0.012,
                    status: Some(200),
                    reason: String::new(),
                };
                store.probes.append_probe(&r).expect("append");
            }
            n += 1;
            t += HOUR_MS;
            // What the journal loop does once the hour is closed.
            store
                .probes
                .write_probe_results(Some(t + postflight::store::GRACE_MS))
                .expect("write");
        }
        store.flush().expect("flush");
    }
    println!(
        "filled {probes} probes × {DAYS} days ({} hourly rows) in {:.1} s",
        DAYS * 24,
        filled.elapsed().as_secs_f64()
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\nretention = \"100d\"\n[global]\nprobe_interval = \"1h\"\n",
        data.display()
    );
    for name in &names {
        config.push_str(&format!(
            "[[probe]]\nname = \"{name}\"\nurl = \"tcp://127.0.0.1:1\"\nalert = false\nslo = 99.5\n"
        ));
    }
    let cfg = dir.path().join("postflight.toml");
    std::fs::write(&cfg, config).unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_postflight"))
        .args(["run", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("NOTIFY_SOCKET")
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/readyz").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "daemon not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "daemon ready on the filled store in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    // Let the startup probe round pass.
    std::thread::sleep(Duration::from_secs(3));

    let all = time(port, "/api/v1/uptime?window=90d");
    let one = time(
        port,
        &format!("/api/v1/uptime?probe={}&window=90d", names[probes / 2]),
    );
    let (_, bytes) = get(port, "/api/v1/uptime?window=90d");
    println!(
        "GET /api/v1/uptime?window=90d ({probes} probes, {bytes} bytes): median {:.2} ms, p90 {:.2} ms, max {:.2} ms over {REQUESTS}",
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        all[all.len() - 1]
    );
    println!(
        "GET /api/v1/uptime?probe=…&window=90d: median {:.2} ms, max {:.2} ms",
        percentile(&one, 0.5),
        one[one.len() - 1]
    );
    let _ = child.kill();
    let _ = child.wait();
}
