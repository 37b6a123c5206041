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
mod tests;
