//! The scrape loop: one task per target, each on its own interval with a start offset spread
//! over it, fetching the page with a body limit and a timeout, parsing it into the head, and
//! writing the synthetic series `up`, `scrape_duration_seconds`, `scrape_samples_scraped` and
//! `scrape_series_added`. A failing target is down with a reason; nobody else notices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::metadata::MetaTracker;
use super::parse::{Format, Parser, SampleRef, format_from_content_type};
use crate::clock::Clock;
use crate::config::{Config, JobConfig, Scheme};
use crate::ingest::{Appender, Ingest};
use crate::liveness::Heartbeat;
use crate::probe::http::{self, FetchError};
use crate::probe::{ProbeTls, Progress};
use crate::series::head::MemSeries;
use crate::series::{Labels, METRIC_NAME};
use crate::targets::{Run, TargetHealth, TargetsView};
use crate::telemetry::Telemetry;

/// What Prometheus 3 asks for: OpenMetrics first, then the text format.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// One target of a job.
#[derive(Clone)]
struct Target {
    /// Shared by the job's targets.
    job: Arc<JobConfig>,
    instance: String,
    url: String,
    key: String,
    labels: Labels,
    interval: Duration,
    timeout: Duration,
}

/// Runs every scrape target of the config.
pub struct ScrapeManager {
    /// The config of this generation.
    pub config: Arc<Config>,
    /// Where samples go: the head, through each target's scrape cache.
    pub ingest: Arc<Ingest>,
    /// Health for the API.
    pub targets: Arc<TargetsView>,
    /// Metrics.
    pub telemetry: Arc<Telemetry>,
    /// Wall time for sample timestamps.
    pub clock: Clock,
    /// Liveness of the manager (each target loop beats it too).
    pub heartbeat: Arc<Heartbeat>,
    /// TLS for a plain-HTTP target that redirects to https (the probes' configuration).
    pub tls: ProbeTls,
}

/// How a target's pages are fetched.
#[derive(Clone)]
enum Fetcher {
    /// Plain HTTP: through the probes' HTTP/1.1 exchange (`probe::http::fetch`) on the
    /// target's kept connection (`probe::http::Kept`), as Prometheus keeps its scrape
    /// connections; a redirect to https verifies with `ProbeTls`.
    Plain(ProbeTls),
    /// HTTPS: reqwest, which keeps the connection (see `ScrapeManager::run`).
    Tls(reqwest::Client),
}

/// Registers every scrape target of `c` in the health view as not run yet, so that "every
/// target has run once" is known before the scrape tasks start.
pub fn register_targets(c: &Config, view: &TargetsView) {
    for job in &c.jobs {
        let scheme = match job.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        for instance in &job.targets {
            view.register(
                &format!("scrape/{}/{instance}", job.name),
                TargetHealth {
                    kind: "scrape",
                    job: job.name.clone(),
                    probe: None,
                    url: format!("{scheme}://{instance}{}", job.metrics_path),
                    health: "unknown",
                    last_error: String::new(),
                    last_run: None,
                    last_duration_seconds: 0.0,
                    samples: None,
                },
            );
        }
    }
}

/// Every target key of a config, for pruning the health view on reload.
pub fn target_keys(c: &Config) -> Vec<String> {
    c.jobs
        .iter()
        .flat_map(|j| {
            j.targets
                .iter()
                .map(move |t| format!("scrape/{}/{t}", j.name))
        })
        .collect()
}

impl ScrapeManager {
    /// Scrapes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        // reqwest is built without a default rustls provider: without this, building the
        // client panics unless some other component happened to install it first.
        crate::install_crypto_provider();
        // Plain-HTTP targets go through the probes' one-request exchange on a connection each
        // target loop keeps (`http::Kept`), which needs no general client; HTTPS targets go
        // through reqwest, whose pool keeps their connections: a handshake per scrape would
        // cost more than an idle connection.
        let tls = match reqwest::Client::builder()
            .user_agent(concat!("postflight/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot build the scrape client; no scrapes");
                return;
            }
        };
        let mut tasks = JoinSet::new();
        let pool = Arc::new(BufferPool::default());
        for job in &self.config.jobs {
            let shared_job = Arc::new(job.clone());
            for instance in &job.targets {
                let scheme = match job.scheme {
                    Scheme::Http => "http",
                    Scheme::Https => "https",
                };
                let mut labels: Vec<(String, String)> = job
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.push(("job".into(), job.name.clone()));
                labels.push(("instance".into(), instance.clone()));
                let t = Target {
                    job: shared_job.clone(),
                    instance: instance.clone(),
                    url: format!("{scheme}://{instance}{}", job.metrics_path),
                    key: format!("scrape/{}/{instance}", job.name),
                    labels: Labels::new(labels),
                    interval: job.interval(&self.config.global),
                    timeout: job.timeout(&self.config.global),
                };
                self.targets.register(
                    &t.key,
                    TargetHealth {
                        kind: "scrape",
                        job: job.name.clone(),
                        probe: None,
                        url: t.url.clone(),
                        health: "unknown",
                        last_error: String::new(),
                        last_run: None,
                        last_duration_seconds: 0.0,
                        samples: None,
                    },
                );
                tasks.spawn(target_loop(
                    t,
                    match job.scheme {
                        Scheme::Http => Fetcher::Plain(self.tls.clone()),
                        Scheme::Https => Fetcher::Tls(tls.clone()),
                    },
                    self.ingest.clone(),
                    self.targets.clone(),
                    self.telemetry.clone(),
                    self.clock.clone(),
                    self.heartbeat.clone(),
                    pool.clone(),
                    shutdown.clone(),
                ));
            }
        }
        self.heartbeat.beat();
        while tasks.join_next().await.is_some() {}
        // Targets of this generation are gone (reload or stop): their series go stale now, not
        // after the 5-minute lookback.
        let now = self.clock.now_ms();
        for job in &self.config.jobs {
            for instance in &job.targets {
                let key = format!("scrape/{}/{instance}", job.name);
                if !shutdown.is_cancelled() {
                    self.ingest.remove_target(&key, now);
                }
            }
        }
    }
}

/// Page buffers shared by a manager's target loops: scrapes are spread over the interval, so a
/// few buffers serve a hundred targets instead of one page-sized buffer kept by each.
#[derive(Default)]
struct BufferPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// Buffers kept for reuse; more are freed when given back.
    const KEEP: usize = 8;
    /// A buffer larger than this (after one huge page) is freed, not kept.
    const MAX_KEPT_CAPACITY: usize = 4 << 20;

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() > Self::MAX_KEPT_CAPACITY {
            return;
        }
        buf.clear();
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() < Self::KEEP {
            kept.push(buf);
        }
    }
}

/// The series a scrape adds for its target, in this order: up, how long the scrape took, the
/// samples it got, and the series it added (as Prometheus).
const SYNTHETIC: [&str; 4] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_series_added",
];

/// Pages larger than this are parsed through [`crate::rt::blocking`] (about 0.5 ms of parsing).
const LARGE_PAGE: usize = 256 * 1024;

#[allow(clippy::too_many_arguments)]
async fn target_loop(
    t: Target,
    client: Fetcher,
    ingest: Arc<Ingest>,
    view: Arc<TargetsView>,
    telemetry: Arc<Telemetry>,
    clock: Clock,
    heartbeat: Arc<Heartbeat>,
    pool: Arc<BufferPool>,
    shutdown: CancellationToken,
) {
    // A deterministic phase from a hash of the target (as Prometheus' scrape offsets), on the
    // probes' grid of start slots: targets do not all fire at once, and each starts in the
    // timer wake-up of a probe slot rather than one of its own.
    let phase = crate::probe::spread_offset(&t.key, t.interval);
    let start = crate::rt::next_on_grid(phase, t.interval, tokio::time::Instant::now());
    let mut tick = tokio::time::interval_at(start, t.interval);
    // Missed ticks are skipped and the phase kept, as Prometheus' ticker does. tokio counts a
    // tick more than 5 ms late as missed; `Delay` then restarted the schedule from the late
    // one, and every later scrape of the target was stamped off its grid (`align_timestamp`
    // keeps the first grid): 9 bits or more a timestamp in each of its series' chunks instead
    // of 1, for good.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut parser = Parser::new();
    let mut meta = MetaTracker::default();
    // The target's connection, kept from one scrape to the next (plain HTTP).
    let mut kept = http::Kept::default();
    let interval_ms = i64::try_from(t.interval.as_millis()).unwrap_or(i64::MAX);
    let mut aligned: Option<i64> = None;
    // The target's synthetic series, found once: appending by label set would look each one
    // up in the head's index at every scrape (a binary search hashing label sets).
    let mut synthetic: Vec<Arc<MemSeries>> = Vec::new();
    while crate::rt::ticked(&mut tick, &shutdown).await {
        heartbeat.beat();
        let now = clock.now();
        let t_ms =
            crate::series::align_timestamp(&mut aligned, now.timestamp_millis(), interval_ms);
        let started = Instant::now();
        let mut body = pool.take();
        let fetched = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = fetch(&client, &t, &mut body, &mut kept) => r,
        };
        let mut samples = 0usize;
        let mut added = 0usize;
        let result = match fetched {
            Ok(format) => {
                let mut ingest = || {
                    let mut app = ingest.appender(&t.key, &t.labels, t_ms);
                    let limit = t.job.sample_limit as usize;
                    let mut over = 0usize;
                    meta.start();
                    let parsed = parser.parse_with_metadata(
                        &body,
                        format,
                        |s| {
                            if samples < limit {
                                add_exposed(&mut app, &s);
                                samples += 1;
                            } else {
                                over += 1;
                            }
                        },
                        |m| meta.line(&body, m),
                    );
                    match parsed {
                        Ok(_) => {
                            let c = app.commit();
                            meta.finish(&body, &t.key, ingest.metadata());
                            added = c.series_added;
                            telemetry
                                .scrape_cache_bytes
                                .set(i64::try_from(ingest.cache_bytes()).unwrap_or(i64::MAX));
                            if over > 0 {
                                telemetry
                                    .scrape_errors_total
                                    .with_label_values(&[t.job.name.as_str(), "sample_limit"])
                                    .inc();
                                Err(format!(
                                    "sample limit {limit} exceeded: {over} samples dropped"
                                ))
                            } else {
                                Ok(())
                            }
                        }
                        Err(e) => {
                            app.rollback();
                            samples = 0;
                            telemetry
                                .scrape_errors_total
                                .with_label_values(&[t.job.name.as_str(), "parse"])
                                .inc();
                            Err(format!("invalid exposition: {e}"))
                        }
                    }
                };
                // A page of megabytes takes milliseconds to parse: off the runtime's worker.
                match body.len() > LARGE_PAGE {
                    true => crate::rt::blocking(ingest),
                    false => ingest(),
                }
            }
            Err((reason, class)) => {
                ingest.mark_target_stale(&t.key, t_ms);
                telemetry
                    .scrape_errors_total
                    .with_label_values(&[t.job.name.as_str(), class])
                    .inc();
                Err(reason)
            }
        };
        let took = started.elapsed();
        // A page cut at the sample limit still delivered data: the target is up.
        let up = result.is_ok() || samples > 0;
        let values = [
            if up { 1.0 } else { 0.0 },
            took.as_secs_f64(),
            samples as f64,
            added as f64,
        ];
        if synthetic.is_empty() {
            synthetic = SYNTHETIC
                .iter()
                .map(|name| ingest.head().series(&t.labels.with("__name__", *name)))
                .collect();
        }
        for (s, v) in synthetic.iter_mut().zip(values) {
            ingest.head().append_series(s, t_ms, v);
        }
        ingest.head().arrivals().mark(
            synthetic
                .iter()
                .filter_map(|s| s.labels().metric_name_label().map(|l| l.value())),
        );
        telemetry
            .scrapes_total
            .with_label_values(&[t.job.name.as_str(), if up { "success" } else { "failure" }])
            .inc();
        telemetry
            .head_samples_appended
            .with_label_values(&["scrape"])
            .inc_by(samples as u64);
        let err = result.err().unwrap_or_default();
        if !err.is_empty() {
            debug!(target = %t.url, error = %err, "scrape failed");
        }
        let run = Run {
            up,
            error: &err,
            at: now,
            duration_seconds: took.as_secs_f64(),
            samples: Some(samples),
        };
        view.record_run(&t.key, run, || TargetHealth {
            kind: "scrape",
            job: t.job.name.clone(),
            probe: None,
            url: t.url.clone(),
            health: if up { "up" } else { "down" },
            last_error: err.clone(),
            last_run: Some(now),
            last_duration_seconds: run.duration_seconds,
            samples: Some(samples),
        });
        pool.give(body);
        let _ = &t.instance;
    }
}

/// Fetches the page into `body`; returns its format, or a reason and an error class.
async fn fetch(
    client: &Fetcher,
    t: &Target,
    body: &mut Vec<u8>,
    kept: &mut http::Kept,
) -> Result<Format, (String, &'static str)> {
    body.clear();
    let timeout_s = format!("{}", t.timeout.as_secs_f64());
    let limit = t.job.body_size_limit as usize;
    let timed_out = || {
        (
            format!(
                "timed out after {}",
                crate::config::format_duration(t.timeout)
            ),
            "timeout",
        )
    };
    let client = match client {
        Fetcher::Plain(tls) => {
            let fields = [
                ("Accept", ACCEPT),
                ("X-Prometheus-Scrape-Timeout-Seconds", timeout_s.as_str()),
            ];
            let ask = http::Ask {
                method: hyper::Method::GET,
                fields: &fields,
                limit,
                keep_body: true,
                keep_redirects: &[],
                success_bodies_only: true,
            };
            let mut progress = Progress::default();
            let work = async {
                let answer = http::fetch(&t.url, &ask, tls, body, &mut progress, Some(kept))
                    .await
                    .map_err(|e| match e {
                        FetchError::Connect(r) => (r, "connect"),
                        FetchError::TooLarge {
                            declared: Some(len),
                        } => (
                            format!("body of {len} bytes exceeds the limit of {limit} bytes"),
                            "body_size",
                        ),
                        FetchError::TooLarge { declared: None } => (
                            format!("body exceeds the limit of {limit} bytes"),
                            "body_size",
                        ),
                        FetchError::Other(r) => (r, "http"),
                    })?;
                if !(200..300).contains(&answer.status) {
                    let status = hyper::StatusCode::from_u16(answer.status)
                        .map_or_else(|_| answer.status.to_string(), |s| s.to_string());
                    return Err((
                        format!("server returned HTTP status {status}"),
                        "http_status",
                    ));
                }
                Ok(answer
                    .content_type
                    .as_deref()
                    .map_or(Format::Text, format_from_content_type))
            };
            return match tokio::time::timeout(t.timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(timed_out()),
            };
        }
        Fetcher::Tls(client) => client,
    };
    let req = client
        .get(&t.url)
        .header("Accept", ACCEPT)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout_s)
        .timeout(t.timeout);
    // reqwest's own timeout (the same duration) can win the race against the outer one: it
    // must read the same, not a bare "timed out".
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            timed_out()
        } else {
            (describe(&e), class(&e))
        }
    };
    let work = async {
        let mut resp = req.send().await.map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            return Err((
                format!("server returned HTTP status {status}"),
                "http_status",
            ));
        }
        if let Some(len) = resp.content_length()
            && len as usize > limit
        {
            return Err((
                format!("body of {len} bytes exceeds the limit of {limit} bytes"),
                "body_size",
            ));
        }
        let format = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(format_from_content_type)
            .unwrap_or(Format::Text);
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > limit {
                return Err((
                    format!("body exceeds the limit of {limit} bytes"),
                    "body_size",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(format)
    };
    match tokio::time::timeout(t.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(timed_out()),
    }
}

fn class(e: &reqwest::Error) -> &'static str {
    if e.is_connect() { "connect" } else { "http" }
}

/// A reqwest error in words, with its cause (the top level alone says only "error sending
/// request").
fn describe(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = src {
        s = c.to_string();
        src = c.source();
    }
    if s.is_empty() {
        e.to_string()
    } else {
        s.replace("Connection refused (os error 111)", "connection refused")
    }
}

/// Adds a parsed sample to a scrape: the sample's own timestamp if it has one
/// (`honor_timestamps`), else the scrape's. On an unchanged page this is a lookup of the
/// exposed series text and a push: no label set is built, nothing is allocated.
pub fn add_exposed(app: &mut Appender<'_>, s: &SampleRef<'_>) {
    app.add_keyed(s.series, s.timestamp_ms, s.value, |target_labels| {
        exposed_labels(s, target_labels)
    });
}

/// The label set of an exposed sample: `__name__`, the exposed labels (empty values dropped,
/// escapes resolved), and the target's labels, which win over exposed ones of the same name;
/// those are kept as `exported_<name>` like Prometheus does.
fn exposed_labels(s: &SampleRef<'_>, target_labels: &Labels) -> Labels {
    let mut v: Vec<(String, String)> = Vec::with_capacity(s.labels.len() + target_labels.len() + 1);
    v.push((METRIC_NAME.to_owned(), s.name.to_owned()));
    for (name, value) in s.labels.iter() {
        if value.is_empty() {
            continue;
        }
        let mut name = name.to_owned();
        while target_labels.get(&name).is_some() {
            name.insert_str(0, "exported_");
        }
        v.push((name, value.into_owned()));
    }
    for l in target_labels.iter() {
        v.push((l.name().to_string(), l.value().to_string()));
    }
    Labels::new(v)
}

#[cfg(test)]
mod tests;
