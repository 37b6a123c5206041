//! The probe series, as Blackbox exporter names them: on `/metrics` (latest outcome of each
//! probe, through [`Exposer`]) and as samples for the series head ([`outcome_samples`], whose
//! [`OutcomeSeries`] keys name each series; [`outcome_series`] gives them with full labels).
//!
//! Per probe, labelled `instance` (the URL), `job` (when set) and `probe`:
//! - `probe_success`, `probe_duration_seconds` (every probe);
//! - `probe_http_status_code` (http and https; 0 when no response arrived) and
//!   `probe_http_duration_seconds{phase="connect|tls|processing|transfer"}` (0 for a phase not
//!   reached);
//! - `probe_ssl_earliest_cert_expiry` (https, when a certificate was seen): Unix seconds.
//!
//! Durations are given to the microsecond, as multiples of 2^-20 s ([`seconds`]): nanosecond
//! digits of a network round trip are noise, and such values take 16 bits a sample in a
//! Gorilla chunk where a full-precision one takes 57 (probe durations were most of the
//! head's chunk bytes in the watch-job benchmark).
//!
//! `/metrics` also gets `postflight_probe_skipped_ticks_total{probe}` and
//! `postflight_probes_total{probe, result="success|failure"}`, counted in the probe's state
//! entry (which each run updates anyway) rather than in a registry counter per probe and
//! result: 2,000 of those for a thousand probes were a megabyte and a cache miss a run.

use super::state::{Entry, ProbeIdent};
use super::{ProbeKind, ProbeOutcome, ProbeStates};
use crate::config::ProbeConfig;
use crate::series::labels::LabelStr;
use crate::series::{Labels, METRIC_NAME};
use crate::telemetry::{Exposer, write_sample};

/// Every family, in name order (the order `/metrics` writes them), with its help text.
const FAMILIES: [(&str, &str); 5] = [
    (
        "probe_duration_seconds",
        "Duration of the probe in seconds.",
    ),
    (
        "probe_http_duration_seconds",
        "Duration of each phase of the HTTP probe in seconds, summed over redirects.",
    ),
    (
        "probe_http_status_code",
        "Status code of the last HTTP response; 0 when none arrived.",
    ),
    (
        "probe_ssl_earliest_cert_expiry",
        "Earliest notAfter of the peer certificate chain, in Unix seconds.",
    ),
    ("probe_success", "1 when every check of the probe passed."),
];

const PHASES: [&str; 4] = ["connect", "tls", "processing", "transfer"];

/// Steps of [`seconds`] per second: 2^20 (one step is 0.95 µs).
const STEPS_PER_SECOND: u128 = 1 << 20;

/// A duration in seconds, rounded to the nearest multiple of 2^-20 s. The value is exact in
/// binary floating point (up to 272 years), so consecutive ones differ in their top mantissa
/// bits only and compress well in the head's chunks and the store.
pub fn seconds(d: std::time::Duration) -> f64 {
    let steps = (d.as_nanos() * STEPS_PER_SECOND + 500_000_000) / 1_000_000_000;
    steps as f64 / STEPS_PER_SECOND as f64
}

/// The value of each phase, 0 for one not reached, in [`PHASES`] order.
fn phase_values(o: &ProbeOutcome) -> [f64; 4] {
    let p = &o.phases;
    [p.connect, p.tls, p.processing, p.transfer].map(|d| d.map_or(0.0, seconds))
}

/// The samples of family `idx` (into [`FAMILIES`]) for one outcome: `(phase, value)`.
fn family_values(
    idx: usize,
    kind: Option<ProbeKind>,
    o: &ProbeOutcome,
) -> Vec<(Option<&'static str>, f64)> {
    let http = matches!(kind, Some(ProbeKind::Http | ProbeKind::Https));
    match idx {
        0 => vec![(None, seconds(o.duration))],
        1 if http => PHASES
            .iter()
            .zip(phase_values(o))
            .map(|(p, v)| (Some(*p), v))
            .collect(),
        2 if http => vec![(None, f64::from(o.status.unwrap_or(0)))],
        3 if kind == Some(ProbeKind::Https) => o
            .cert_not_after
            .map(|t| vec![(None, t as f64)])
            .unwrap_or_default(),
        4 => vec![(None, if o.success { 1.0 } else { 0.0 })],
        _ => Vec::new(),
    }
}

/// One sample of an outcome: which series ([`OutcomeSeries`]) and its value.
pub type OutcomeSample = (OutcomeSeries, f64);

/// Names one series of a probe: a family (index into the families) and a phase. With the
/// probe's configuration it determines the label set ([`OutcomeSeries::labels`]), so a sink
/// can keep the head's series by this key and build no label set on a probe's later runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutcomeSeries {
    family: u8,
    phase: Option<&'static str>,
}

impl OutcomeSeries {
    /// The full label set, `__name__` included, of this series of probe `cfg`.
    pub fn labels(&self, cfg: &ProbeConfig) -> Labels {
        let mut pairs: Vec<(LabelStr, LabelStr)> = vec![
            (
                METRIC_NAME.into(),
                FAMILIES[usize::from(self.family)].0.into(),
            ),
            ("instance".into(), cfg.url.as_str().into()),
            ("probe".into(), cfg.name.as_str().into()),
        ];
        if let Some(j) = &cfg.job {
            pairs.push(("job".into(), j.as_str().into()));
        }
        if let Some(p) = self.phase {
            pairs.push(("phase".into(), p.into()));
        }
        Labels::new(pairs)
    }
}

/// The samples of one outcome, for the series head.
pub fn outcome_samples(cfg: &ProbeConfig, outcome: &ProbeOutcome) -> Vec<OutcomeSample> {
    let kind = ProbeKind::of(&cfg.url);
    let mut out = Vec::with_capacity(8);
    for idx in 0..FAMILIES.len() {
        for (phase, v) in family_values(idx, kind, outcome) {
            let family = u8::try_from(idx).expect("five families");
            out.push((OutcomeSeries { family, phase }, v));
        }
    }
    out
}

/// The series of one outcome, `__name__` included, with their values.
pub fn outcome_series(cfg: &ProbeConfig, outcome: &ProbeOutcome) -> Vec<(Labels, f64)> {
    outcome_samples(cfg, outcome)
        .into_iter()
        .map(|(s, v)| (s.labels(cfg), v))
        .collect()
}

/// The label pairs of one sample, sorted by name: instance, job, phase, probe.
fn sample_labels<'a>(
    ident: &'a ProbeIdent,
    name: &'a str,
    phase: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut l = Vec::with_capacity(4);
    l.push(("instance", ident.url.as_str()));
    if let Some(j) = &ident.job {
        l.push(("job", j.as_str()));
    }
    if let Some(p) = phase {
        l.push(("phase", p));
    }
    l.push(("probe", name));
    l
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

impl Exposer for ProbeStates {
    fn expose(&self, out: &mut String) {
        let guard = self.lock();
        let entries = super::state::by_name(&guard);
        let with_outcome = || {
            entries
                .iter()
                .filter_map(|&(n, e): &(&String, &Entry)| e.latest.as_ref().map(|o| (n, e, o)))
        };
        for (idx, (family, help)) in FAMILIES.iter().enumerate() {
            let mut wrote_header = false;
            for (name, e, o) in with_outcome() {
                for (phase, v) in family_values(idx, ProbeKind::of(&e.ident.url), o) {
                    if !wrote_header {
                        header(out, family, help, "gauge");
                        wrote_header = true;
                    }
                    write_sample(out, family, &sample_labels(&e.ident, name, phase), v);
                }
            }
        }
        if !entries.is_empty() {
            let family = "postflight_probe_skipped_ticks_total";
            header(
                out,
                family,
                "Probe runs skipped because the previous run of the probe was still going.",
                "counter",
            );
            for &(name, e) in entries.iter() {
                write_sample(out, family, &[("probe", name.as_str())], e.skipped as f64);
            }
            let family = "postflight_probes_total";
            header(out, family, "Probe runs by probe and result.", "counter");
            for &(name, e) in entries.iter() {
                for (result, n) in [("failure", e.failed), ("success", e.succeeded)] {
                    let labels = [("probe", name.as_str()), ("result", result)];
                    write_sample(out, family, &labels, n as f64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
            out.contains(
                "probe_http_status_code{instance=\"http://127.0.0.1:1/\",probe=\"b\"} 0\n"
            )
        );
        assert!(out.contains("probe_success{instance=\"https://x.test/\",job=\"web\",probe=\"a\"} 1\nprobe_success{instance=\"http://127.0.0.1:1/\",probe=\"b\"} 0\n"));
        // Only the https probe has a certificate.
        assert_eq!(out.matches("probe_ssl_earliest_cert_expiry{").count(), 1);
    }
}
