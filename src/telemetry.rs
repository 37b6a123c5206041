//! The daemon's own observability: logs (tracing-subscriber) and the `postflight_*` metrics that
//! `/metrics` serves next to every probe series and `ALERTS`.
//!
//! Static metrics live in a `prometheus::Registry`. Series whose label sets come and go with the
//! config or the alert state (probe series, `ALERTS`) are written by [`Exposer`]s that the
//! components register, so nothing stale lingers in a registry after a reload.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines; colours only on a terminal, so journald gets plain text.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Sets up the global tracing subscriber. `level` wins over `RUST_LOG`; without either, `info`.
pub fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests calling twice) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Writes metric families that are computed at scrape time. Implementations must write whole
/// families (`# HELP`, `# TYPE`, samples) in the text format and never a family name that the
/// registry also has.
pub trait Exposer: Send + Sync {
    /// Appends this component's families to `out`.
    fn expose(&self, out: &mut String);
}

/// Every metric the daemon exports about itself.
pub struct Telemetry {
    registry: Registry,
    exposers: Mutex<Vec<Arc<dyn Exposer>>>,
    /// 1 when the last config (re)load succeeded.
    pub config_last_reload_successful: IntGauge,
    /// 1 once a reload changed a setting only a restart applies.
    pub config_restart_required: IntGauge,
    /// When the config last (re)loaded successfully.
    pub config_last_reload_success_timestamp: Gauge,
    /// Iterations of each long-running loop, so a stuck loop shows as a flat line.
    pub loop_iterations: IntCounterVec,
    /// 1 when the store is open and writable.
    pub store_up: IntGauge,
    /// Remote write samples by endpoint and result.
    pub remote_write_samples_total: IntCounterVec,
    /// Remote write samples queued in memory, by endpoint.
    pub remote_write_pending_samples: IntGaugeVec,
    /// Seconds the endpoint's send position is behind now.
    pub remote_write_lag_seconds: GaugeVec,
    /// Size of the store on disk.
    pub store_size_bytes: IntGauge,
    /// Failed store writes, by kind of record.
    pub store_write_failures: IntCounterVec,
    /// Scrapes by job and result.
    pub scrapes_total: IntCounterVec,
    /// Scrape failures by job and reason class.
    pub scrape_errors_total: IntCounterVec,
    /// Series currently in the head.
    pub head_series: IntGauge,
    /// Heap bytes the head holds (its own estimate: containers counted, allocator overhead
    /// not).
    pub head_bytes: IntGauge,
    /// Heap bytes of the scrape caches (exposed series text → series).
    pub scrape_cache_bytes: IntGauge,
    /// Chunks in the head (open and closed).
    pub head_chunks: IntGauge,
    /// Samples held in the head's chunks.
    pub head_samples: IntGauge,
    /// Bytes of the head's encoded chunks (their allocations, spare room included): with
    /// `head_samples`, the bytes a sample costs.
    pub head_chunk_bytes: IntGauge,
    /// Samples appended to the head.
    pub head_samples_appended: IntCounterVec,
    /// Rule evaluations.
    pub rule_evaluations_total: IntCounterVec,
    /// Rule evaluation failures.
    pub rule_evaluation_failures_total: IntCounterVec,
    /// Duration of one rule-group evaluation round.
    pub rule_evaluation_duration: HistogramVec,
    /// Rounds that started late because the previous one overran.
    pub rule_evaluations_missed_total: IntCounterVec,
    /// Notifications by receiver and result.
    pub notifications_total: IntCounterVec,
    /// Notifications waiting in the outbox, by receiver.
    pub notification_queue_depth: IntGaugeVec,
    /// Time from enqueue to delivery.
    pub notification_latency: HistogramVec,
    /// Notifications given up after 24 h.
    pub notifications_dropped_total: IntCounterVec,
    /// Alerts that matched no route.
    pub alerts_unrouted_total: IntCounterVec,
    /// Deployments by job and verdict.
    pub deployments_total: IntCounterVec,
    /// 1 while a job has a deployment under watch.
    pub deployment_watch_active: IntGaugeVec,
    /// Last value of each gate check.
    pub gate_check_value: GaugeVec,
    /// 1 for the current state of each gate check.
    pub gate_check_state: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definitions are static and valid");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .expect("metric definitions are static and valid");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("metric definitions are static and valid");
    r.register(Box::new(h.clone()))
        .expect("each metric is registered once");
    h
}

impl Telemetry {
    /// Creates the registry with every metric, including `postflight_build_info` and the
    /// process metrics.
    pub fn new() -> Arc<Self> {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("postflight_build_info", "Build information; always 1."),
            &["version", "rustc"],
        )
        .expect("static metric");
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("POSTFLIGHT_RUSTC").unwrap_or("unknown"),
            ])
            .set(1);
        r.register(Box::new(build)).expect("registered once");
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");

        let reload_ok = gauge(
            &r,
            "postflight_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
        );
        let restart_required = gauge(
            &r,
            "postflight_config_restart_required",
            "1 when the config in the file changed a setting only a restart applies (server.listen, storage.path, storage.checkpoint_interval).",
        );
        let reload_ts = Gauge::new(
            "postflight_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
        )
        .expect("static metric");
        r.register(Box::new(reload_ts.clone()))
            .expect("registered once");
        let store_up = gauge(
            &r,
            "postflight_store_up",
            "1 when the store is open and accepts writes.",
        );
        let store_size = gauge(
            &r,
            "postflight_store_size_bytes",
            "Size of the store on disk.",
        );
        let head_series = gauge(
            &r,
            "postflight_head_series",
            "Series held in the in-memory head.",
        );
        let head_bytes = gauge(
            &r,
            "postflight_head_bytes",
            "Heap bytes held by the in-memory head: series, chunks, index, label strings.",
        );
        let scrape_cache_bytes = gauge(
            &r,
            "postflight_scrape_cache_bytes",
            "Heap bytes held by the scrape caches that map exposed series text to series.",
        );
        let head_chunks = gauge(
            &r,
            "postflight_head_chunks",
            "Chunks held in the in-memory head.",
        );
        let head_samples = gauge(
            &r,
            "postflight_head_samples",
            "Samples held in the in-memory head's chunks.",
        );
        let head_chunk_bytes = gauge(
            &r,
            "postflight_head_chunk_bytes",
            "Bytes of the in-memory head's encoded chunks, spare room included.",
        );
        let latency_buckets = vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
        ];

        Arc::new(Telemetry {
            exposers: Mutex::new(Vec::new()),
            config_last_reload_successful: reload_ok,
            config_restart_required: restart_required,
            config_last_reload_success_timestamp: reload_ts,
            loop_iterations: counter(
                &r,
                "postflight_loop_iterations_total",
                "Iterations of each long-running loop.",
                &["loop"],
            ),
            store_up,
            store_size_bytes: store_size,
            store_write_failures: counter(
                &r,
                "postflight_store_write_failures_total",
                "Store writes that failed, by kind of record.",
                &["kind"],
            ),
            scrapes_total: counter(
                &r,
                "postflight_scrapes_total",
                "Scrapes by job and result.",
                &["job", "result"],
            ),
            scrape_errors_total: counter(
                &r,
                "postflight_scrape_errors_total",
                "Failed or truncated scrapes by job and reason.",
                &["job", "reason"],
            ),
            head_series,
            head_bytes,
            scrape_cache_bytes,
            head_chunks,
            head_samples,
            head_chunk_bytes,
            head_samples_appended: counter(
                &r,
                "postflight_head_samples_appended_total",
                "Samples appended to the head, by source.",
                &["source"],
            ),
            rule_evaluations_total: counter(
                &r,
                "postflight_rule_evaluations_total",
                "Rule evaluations.",
                &["rule"],
            ),
            rule_evaluation_failures_total: counter(
                &r,
                "postflight_rule_evaluation_failures_total",
                "Rule evaluations that failed.",
                &["rule"],
            ),
            rule_evaluation_duration: histogram(
                &r,
                "postflight_rule_evaluation_duration_seconds",
                "Duration of one evaluation round of all rules.",
                &[],
                vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0],
            ),
            rule_evaluations_missed_total: counter(
                &r,
                "postflight_rule_evaluations_missed_total",
                "Evaluation rounds skipped because the previous one overran.",
                &[],
            ),
            notifications_total: counter(
                &r,
                "postflight_notifications_total",
                "Notification attempts by receiver and result.",
                &["receiver", "result"],
            ),
            notification_queue_depth: gauge_vec(
                &r,
                "postflight_notification_queue_depth",
                "Notifications waiting in the outbox, by receiver.",
                &["receiver"],
            ),
            notification_latency: histogram(
                &r,
                "postflight_notification_latency_seconds",
                "Time from enqueue to successful delivery.",
                &["receiver"],
                latency_buckets,
            ),
            notifications_dropped_total: counter(
                &r,
                "postflight_notifications_dropped_total",
                "Notifications given up after 24 hours or a permanent error.",
                &["receiver", "reason"],
            ),
            alerts_unrouted_total: counter(
                &r,
                "postflight_alerts_unrouted_total",
                "Alerts that matched no route.",
                &[],
            ),
            deployments_total: counter(
                &r,
                "postflight_deployments_total",
                "Deployment verdicts by job and verdict.",
                &["job", "verdict"],
            ),
            deployment_watch_active: gauge_vec(
                &r,
                "postflight_deployment_watch_active",
                "1 while the job has a deployment under watch.",
                &["job"],
            ),
            gate_check_value: {
                let g = GaugeVec::new(
                    Opts::new(
                        "postflight_gate_check_value",
                        "Last value of each gate check.",
                    ),
                    &["job", "check"],
                )
                .expect("static metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            gate_check_state: gauge_vec(
                &r,
                "postflight_gate_check_state",
                "1 for the current state of each gate check.",
                &["job", "check", "state"],
            ),
            remote_write_samples_total: counter(
                &r,
                "postflight_remote_write_samples_total",
                "Samples handled by remote write, by endpoint and result: sent (accepted), failed (an attempt that will be retried), dropped (refused with a 4xx other than 429), filtered (write_relabel).",
                &["url", "result"],
            ),
            remote_write_pending_samples: gauge_vec(
                &r,
                "postflight_remote_write_pending_samples",
                "Samples waiting in memory to be remote written (a backlog read back from the head is not counted before it is read).",
                &["url"],
            ),
            remote_write_lag_seconds: {
                let g = GaugeVec::new(
                    Opts::new(
                        "postflight_remote_write_lag_seconds",
                        "How far the endpoint's send position (every sample up to it delivered) is behind now.",
                    ),
                    &["url"],
                )
                .expect("static metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            registry: r,
        })
    }

    /// Adds a component's scrape-time families.
    pub fn add_exposer(&self, e: Arc<dyn Exposer>) {
        self.exposers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// The whole `/metrics` page in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!(error = %e, "encoding own metrics failed");
        }
        let exposers = self
            .exposers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for e in exposers {
            e.expose(&mut out);
        }
        out
    }
}

/// Writes a float the way Prometheus' text format expects (`NaN`, `+Inf`, `-Inf`).
pub fn fmt_float(v: f64, out: &mut String) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Escapes a label value for the text format.
pub fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes one sample line `name{labels} value`.
pub fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(val, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    fmt_float(v, out);
    out.push('\n');
}
