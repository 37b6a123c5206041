use super::*;
use crate::probe::Phases;
use std::time::{Duration, SystemTime};

fn cfg(name: &str, url: &str, job: Option<&str>) -> ProbeConfig {
    let job = job.map(|j| format!("job = \"{j}\"\n")).unwrap_or_default();
    toml::from_str(&format!("name = \"{name}\"\nurl = \"{url}\"\n{job}")).unwrap()
}

fn outcome(ok: bool, cert: Option<i64>) -> ProbeOutcome {
    ProbeOutcome {
        success: ok,
        duration: Duration::from_millis(250),
        status: ok.then_some(200),
        cert_not_after: cert,
        phases: Phases {
            connect: Some(Duration::from_millis(10)),
            tls: cert.map(|_| Duration::from_millis(20)),
            processing: ok.then_some(Duration::from_millis(200)),
            transfer: ok.then_some(Duration::from_millis(20)),
        },
        reason: if ok {
            String::new()
        } else {
            "connection refused".into()
        },
        at: SystemTime::now(),
    }
}

#[test]
fn durations_are_exact_multiples_of_a_binary_microsecond() {
    use std::time::Duration;
    assert_eq!(seconds(Duration::ZERO), 0.0);
    assert_eq!(seconds(Duration::from_millis(250)), 0.25);
    assert_eq!(seconds(Duration::from_secs(3)), 3.0);
    // 10 ms is not a binary fraction: the nearest step, within half a step of it.
    let v = seconds(Duration::from_millis(10));
    assert_eq!(v, 10_486.0 / 1_048_576.0);
    assert!((v - 0.01).abs() <= 0.5 / 1_048_576.0);
    // Consecutive runs differ only in their top mantissa bits: at most 20 significant
    // bits below one second, against the 52 of the raw value.
    for ns in [241_719u64, 2_478_873, 999_999_999] {
        let v = seconds(Duration::from_nanos(ns));
        let exact = ns as f64 / 1e9;
        assert!((v - exact).abs() <= 0.5 / 1_048_576.0, "{ns} ns");
        let mantissa = v.to_bits() & ((1 << 52) - 1);
        assert!(mantissa.trailing_zeros() >= 32, "{ns} ns: {v}");
    }
}

#[test]
fn series_of_an_https_outcome() {
    let c = cfg("api", "https://example.test/health", Some("web"));
    let s = outcome_series(&c, &outcome(true, Some(1_900_000_000)));
    let names: Vec<String> = s.iter().map(|(l, v)| format!("{l} {v}")).collect();
    // Durations of 250, 10, 20, 200 and 20 ms, to the nearest 2^-20 s (`seconds`).
    assert_eq!(
        names,
        vec![
            r#"probe_duration_seconds{instance="https://example.test/health", job="web", probe="api"} 0.25"#,
            r#"probe_http_duration_seconds{instance="https://example.test/health", job="web", phase="connect", probe="api"} 0.010000228881835938"#,
            r#"probe_http_duration_seconds{instance="https://example.test/health", job="web", phase="tls", probe="api"} 0.020000457763671875"#,
            r#"probe_http_duration_seconds{instance="https://example.test/health", job="web", phase="processing", probe="api"} 0.19999980926513672"#,
            r#"probe_http_duration_seconds{instance="https://example.test/health", job="web", phase="transfer", probe="api"} 0.020000457763671875"#,
            r#"probe_http_status_code{instance="https://example.test/health", job="web", probe="api"} 200"#,
            r#"probe_ssl_earliest_cert_expiry{instance="https://example.test/health", job="web", probe="api"} 1900000000"#,
            r#"probe_success{instance="https://example.test/health", job="web", probe="api"} 1"#,
        ]
    );
}

#[test]
fn tcp_probes_have_no_http_series() {
    let c = cfg("db", "tcp://127.0.0.1:5432", None);
    let s = outcome_series(&c, &outcome(false, None));
    let names: Vec<&str> = s.iter().map(|(l, _)| l.metric_name().unwrap()).collect();
    assert_eq!(names, vec!["probe_duration_seconds", "probe_success"]);
    assert_eq!(s[1].1, 0.0);
    assert_eq!(s[1].0.get("job"), None);
}

#[test]
fn exposition_is_whole_sorted_families() {
    let st = ProbeStates::new();
    st.observe(
        &cfg("b", "http://127.0.0.1:1/", None),
        &outcome(false, None),
    );
    st.observe(
        &cfg("a", "https://x.test/", Some("web")),
        &outcome(true, Some(1_900_000_000)),
    );
    let mut out = String::new();
    st.expose(&mut out);
    let types: Vec<&str> = out.lines().filter(|l| l.starts_with("# TYPE")).collect();
    assert_eq!(
        types,
        vec![
            "# TYPE probe_duration_seconds gauge",
            "# TYPE probe_http_duration_seconds gauge",
            "# TYPE probe_http_status_code gauge",
            "# TYPE probe_ssl_earliest_cert_expiry gauge",
            "# TYPE probe_success gauge",
            "# TYPE postflight_probe_skipped_ticks_total counter",
            "# TYPE postflight_probes_total counter",
        ]
    );
    assert!(out.contains(concat!(
        "postflight_probes_total{probe=\"a\",result=\"failure\"} 0\n",
        "postflight_probes_total{probe=\"a\",result=\"success\"} 1\n",
        "postflight_probes_total{probe=\"b\",result=\"failure\"} 1\n",
        "postflight_probes_total{probe=\"b\",result=\"success\"} 0\n",
    )));
    assert!(
        out.contains("probe_http_status_code{instance=\"http://127.0.0.1:1/\",probe=\"b\"} 0\n")
    );
    assert!(out.contains("probe_success{instance=\"https://x.test/\",job=\"web\",probe=\"a\"} 1\nprobe_success{instance=\"http://127.0.0.1:1/\",probe=\"b\"} 0\n"));
    // Only the https probe has a certificate.
    assert_eq!(out.matches("probe_ssl_earliest_cert_expiry{").count(), 1);
}
