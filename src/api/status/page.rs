//! `GET /status`: the public status page, server-rendered, without script.
//!
//! What it shows of each listed probe is its name, its [`Health`], its uptime over 24 h, 7 d,
//! 30 d and 90 d, a bar per UTC day for 90 days, and its ProbeFailed incidents of the last 30
//! days with start and end; above the groups, the maintenance windows that mute a listed
//! probe's alert, running or starting within a week. Nothing else of a probe is read into the
//! page: no URL, job, label, reason or status code, and nothing of probes not listed.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::html::Html;
use crate::alert::{AlertState, matches_all};
use crate::api::Api;
use crate::config::{Config, ProbeConfig, StatusPageConfig};
use crate::series::Labels;
use crate::store::{Counts, DAY_MS, HOUR_MS, LastRuns};

/// The stylesheet, served at `/status/style.css` (a page's CSP allows no inline style).
pub const STYLE: &str = include_str!("style.css");
/// Days shown as bars.
pub const BAR_DAYS: usize = 90;
/// Incidents shown, newest first, from this far back.
const INCIDENT_DAYS: i64 = 30;
/// Incidents shown at most.
const MAX_INCIDENTS: usize = 20;
/// The uptime windows shown, with their labels.
pub const WINDOWS: [(&str, i64); 4] = [
    ("24h", DAY_MS),
    ("7d", 7 * DAY_MS),
    ("30d", 30 * DAY_MS),
    ("90d", 90 * DAY_MS),
];

/// A probe's state on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Its last run succeeded and none failed in the last hour.
    Up,
    /// Not down, but a run failed in the last hour (the last run included).
    Degraded,
    /// ProbeFailed fires for it (`failure_threshold` failures in a row); with `alert =
    /// false`, its last run failed.
    Down,
    /// No run counted yet.
    NoData,
}

impl Health {
    /// The state in words.
    pub fn word(self) -> &'static str {
        match self {
            Health::Up => "Up",
            Health::Degraded => "Degraded",
            Health::Down => "Down",
            Health::NoData => "No data",
        }
    }

    /// A sign beside the word: the state is never told by colour alone.
    fn icon(self) -> &'static str {
        match self {
            Health::Up => "✓",
            Health::Degraded => "!",
            Health::Down => "✕",
            Health::NoData => "?",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Health::Up => "st st-up",
            Health::Degraded => "st st-degraded",
            Health::Down => "st st-down",
            Health::NoData => "st st-nodata",
        }
    }
}

/// A probe's [`Health`] from its alert and its latest runs.
pub fn health(p: &ProbeConfig, firing: bool, last: Option<LastRuns>, now: i64) -> Health {
    let Some(last) = last else {
        return Health::NoData;
    };
    if firing || (!p.alert && !last.success) {
        return Health::Down;
    }
    match last.last_failure {
        Some(f) if f > now - HOUR_MS => Health::Degraded,
        _ if !last.success => Health::Degraded,
        _ => Health::Up,
    }
}

/// The probes whose ProbeFailed is firing.
pub fn firing_probes(api: &Api) -> HashSet<String> {
    (api.alerts)()
        .into_iter()
        .filter(|a| a.name() == crate::probe::PROBE_ALERT_NAME && a.state == AlertState::Firing)
        .filter_map(|a| a.labels.get("probe").map(str::to_owned))
        .collect()
}

/// A listed probe's [`Health`], or `None` when the page does not list it (or there is no
/// page): only listed probes are shown or badged.
pub fn listed_health(api: &Api, probe: &str) -> Option<(std::sync::Arc<Config>, Health)> {
    let config = api.config.get();
    let page = config.status_page.as_ref()?;
    if !page.lists(probe) {
        return None;
    }
    let p = config.probes.iter().find(|p| p.name == probe)?.clone();
    let firing = firing_probes(api).contains(probe);
    let h = health(
        &p,
        firing,
        api.probes.uptime().last(probe),
        api.clock.now_ms(),
    );
    Some((config, h))
}

/// Uptime as a percentage for people: two decimals, rounded down so that a failure never
/// shows as 100 %.
pub fn percent(c: Counts) -> Option<String> {
    let u = c.uptime()?;
    if c.failures == 0 {
        return Some("100%".into());
    }
    let hundredths = (u * 10_000.0).floor() / 100.0;
    Some(format!("{hundredths:.2}%"))
}

/// One ProbeFailed episode of a listed probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The probe.
    pub probe: String,
    /// When ProbeFailed fired; `None` when that was before the history read.
    pub start: Option<i64>,
    /// When it resolved; `None` while it fires.
    pub end: Option<i64>,
}

/// ProbeFailed episodes of `listed` probes from `transitions` (oldest first), newest first.
pub fn incidents(
    transitions: &[crate::store::AlertTransition],
    listed: &HashSet<&str>,
) -> Vec<Incident> {
    let mut open: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Incident> = Vec::new();
    for t in transitions {
        let Some(probe) = t.labels.get("probe").filter(|p| listed.contains(p)) else {
            continue;
        };
        match t.to.as_str() {
            "firing" => {
                if open.contains_key(probe) {
                    continue;
                }
                open.insert(probe, out.len());
                out.push(Incident {
                    probe: probe.to_owned(),
                    start: Some(t.t),
                    end: None,
                });
            }
            "resolved" | "inactive" => match open.remove(probe) {
                Some(i) => out[i].end = Some(t.t),
                None => out.push(Incident {
                    probe: probe.to_owned(),
                    start: None,
                    end: Some(t.t),
                }),
            },
            _ => {}
        }
    }
    out.reverse();
    out
}

/// The labels ProbeFailed of `p` carries, which maintenance matchers are matched against.
fn alert_labels(p: &ProbeConfig, config: &Config) -> Labels {
    let mut pairs: Vec<(String, String)> = config
        .global
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.push(("alertname".into(), crate::probe::PROBE_ALERT_NAME.into()));
    pairs.push(("probe".into(), p.name.clone()));
    if let Some(job) = &p.job {
        pairs.push(("job".into(), job.clone()));
    }
    pairs.push(("severity".into(), p.severity.clone()));
    Labels::new(pairs)
}

/// A maintenance window announced on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Announced {
    /// Whether it is running now.
    pub active: bool,
    /// Its start and end.
    pub start: DateTime<Utc>,
    /// Its end.
    pub end: DateTime<Utc>,
    /// The listed probes whose alerts it mutes, in page order.
    pub probes: Vec<String>,
}

/// The maintenance windows that mute a listed probe's ProbeFailed: running now, or starting
/// within the coming week.
pub fn maintenance(config: &Config, page: &StatusPageConfig, now: DateTime<Utc>) -> Vec<Announced> {
    let listed: Vec<&ProbeConfig> = page
        .groups
        .iter()
        .flat_map(|g| g.probes.iter())
        .filter_map(|n| config.probes.iter().find(|p| p.name == *n).map(|p| &**p))
        .collect();
    let mut out = Vec::new();
    for m in &config.maintenance {
        let mut probes: Vec<String> = Vec::new();
        for p in &listed {
            if matches_all(&m.matchers, &alert_labels(p, config)) && !probes.contains(&p.name) {
                probes.push(p.name.clone());
            }
        }
        if probes.is_empty() {
            continue;
        }
        if let Some((start, end)) = m.schedule.active_at(m.timezone, now) {
            out.push(Announced {
                active: true,
                start,
                end,
                probes: probes.clone(),
            });
        }
        if let Some((start, end)) = m.schedule.next_after(m.timezone, now)
            && start - now <= chrono::Duration::days(7)
        {
            out.push(Announced {
                active: false,
                start,
                end,
                probes,
            });
        }
    }
    out.sort_by_key(|a| (!a.active, a.start));
    out
}

fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn day(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The bar's height class: the lower the day's uptime, the shorter the bar (shape as well
/// as colour).
fn bar_class(c: Counts) -> &'static str {
    match c.uptime() {
        None => "bar b-nodata",
        Some(u) if u >= 0.999 => "bar b-up",
        Some(u) if u >= 0.99 => "bar b-degraded h3",
        Some(u) if u >= 0.95 => "bar b-down h2",
        Some(_) => "bar b-down h1",
    }
}

/// `GET /status`.
pub async fn status(State(api): State<Api>) -> Response {
    let config = api.config.get();
    let Some(page) = config.status_page.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no status page is configured\n",
        )
            .into_response();
    };
    let now = api.clock.now_ms();
    let listed: HashSet<&str> = page
        .groups
        .iter()
        .flat_map(|g| g.probes.iter().map(String::as_str))
        .collect();
    let state = api.state.clone();
    let since = now - (INCIDENT_DAYS + 7) * DAY_MS;
    let transitions = crate::rt::blocking(|| {
        state.alert_history(crate::probe::PROBE_ALERT_NAME, since, now, 100_000)
    })
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "status page: cannot read the incidents");
        Vec::new()
    });
    let mut incidents = incidents(&transitions, &listed);
    incidents.retain(|i| i.end.is_none_or(|e| e >= now - INCIDENT_DAYS * DAY_MS));
    incidents.truncate(MAX_INCIDENTS);
    let firing = firing_probes(&api);
    let now_dt = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    let windows = maintenance(&config, page, now_dt);
    let body = render(&api, &config, page, now, &firing, &windows, &incidents);
    let mut r = (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /status/style.css`.
pub async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
        .into_response()
}

fn render(
    api: &Api,
    config: &Config,
    page: &StatusPageConfig,
    now: i64,
    firing: &HashSet<String>,
    windows: &[Announced],
    incidents: &[Incident],
) -> String {
    let uptime = api.probes.uptime();
    let mut rows: Vec<(&str, Vec<(&ProbeConfig, Health)>)> = Vec::new();
    for g in &page.groups {
        let probes = g
            .probes
            .iter()
            .filter_map(|n| config.probes.iter().find(|p| p.name == *n))
            .map(|p| {
                let h = health(p, firing.contains(&p.name), uptime.last(&p.name), now);
                (&**p, h)
            })
            .collect();
        rows.push((&g.name, probes));
    }
    let all: Vec<Health> = rows
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|(_, h)| *h))
        .collect();
    let overall = if all.contains(&Health::Down) {
        (Health::Down, "Some systems are down")
    } else if all.contains(&Health::Degraded) {
        (Health::Degraded, "Some systems are degraded")
    } else if all.contains(&Health::Up) {
        (Health::Up, "All systems operational")
    } else {
        (Health::NoData, "No data yet")
    };

    let mut h = Html::default();
    h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n")
        .raw("<meta name=\"color-scheme\" content=\"light dark\" />\n")
        .raw("<meta name=\"referrer\" content=\"no-referrer\" />\n<title>")
        .text(&page.title)
        .raw("</title>\n<link rel=\"stylesheet\" href=\"/status/style.css\" />\n</head>\n")
        .raw("<body>\n<main>\n<h1>")
        .text(&page.title)
        .raw("</h1>\n<p class=\"overall ")
        .raw(overall.0.class())
        .raw("\" id=\"overall\"><span class=\"icon\" aria-hidden=\"true\">")
        .raw(overall.0.icon())
        .raw("</span> ")
        .raw(overall.1)
        .raw("</p>\n");

    if !windows.is_empty() {
        h.raw("<section class=\"maintenance\" aria-labelledby=\"maint\">\n<h2 id=\"maint\">Maintenance</h2>\n<ul>\n");
        for w in windows {
            h.raw("<li class=\"maint\">");
            if w.active {
                h.raw("<strong>In progress</strong> until ")
                    .text(&utc(w.end.timestamp_millis()));
            } else {
                h.raw("<strong>Scheduled</strong> ")
                    .text(&utc(w.start.timestamp_millis()))
                    .raw(" to ")
                    .text(&utc(w.end.timestamp_millis()));
            }
            h.raw(": ").text(&w.probes.join(", ")).raw("</li>\n");
        }
        h.raw("</ul>\n</section>\n");
    }

    let today = now.div_euclid(DAY_MS);
    for (name, probes) in &rows {
        h.raw("<section class=\"group\">\n<h2>")
            .text(name)
            .raw("</h2>\n<ul class=\"probes\">\n");
        for (p, health) in probes {
            let counts: Vec<Counts> = WINDOWS
                .iter()
                .map(|(_, ms)| uptime.window(&p.name, *ms, now))
                .collect();
            h.raw("<li class=\"probe\">\n<div class=\"head\"><span class=\"name\">")
                .text(&p.name)
                .raw("</span> <span class=\"")
                .raw(health.class())
                .raw("\"><span class=\"icon\" aria-hidden=\"true\">")
                .raw(health.icon())
                .raw("</span> ")
                .raw(health.word())
                .raw("</span></div>\n<dl class=\"uptime\">");
            for ((label, _), c) in WINDOWS.iter().zip(&counts) {
                h.raw("<div><dt>")
                    .text(label)
                    .raw("</dt><dd>")
                    .text(percent(*c).as_deref().unwrap_or("no data"))
                    .raw("</dd></div>");
            }
            h.raw("</dl>\n<ol class=\"bars\" aria-label=\"Uptime per day, the last 90 days\">");
            let days = uptime.days(&p.name, BAR_DAYS, now);
            for (i, c) in days.iter().enumerate() {
                let d = day((today - (BAR_DAYS as i64 - 1) + i as i64) * DAY_MS);
                let what = match percent(*c) {
                    Some(pc) => format!("{d}: {pc} of {} checks", c.checks),
                    None => format!("{d}: no data"),
                };
                h.raw("<li class=\"")
                    .raw(bar_class(*c))
                    .raw("\" title=\"")
                    .text(&what)
                    .raw("\"><span class=\"sr\">")
                    .text(&what)
                    .raw("</span></li>");
            }
            h.raw(
                "</ol>\n<p class=\"axis\"><span>90 days ago</span><span>today</span></p>\n</li>\n",
            );
        }
        h.raw("</ul>\n</section>\n");
    }

    h.raw("<section class=\"incidents\" aria-labelledby=\"inc\">\n<h2 id=\"inc\">Incidents, the last 30 days</h2>\n");
    if incidents.is_empty() {
        h.raw("<p>No incidents.</p>\n");
    } else {
        h.raw("<ul>\n");
        for i in incidents {
            h.raw("<li class=\"incident\"><span class=\"name\">")
                .text(&i.probe)
                .raw("</span> down ");
            match i.start {
                Some(s) => h.raw("from ").text(&utc(s)),
                None => h.raw("from before the history"),
            };
            match i.end {
                Some(e) => h.raw(" to ").text(&utc(e)),
                None => h.raw(", <strong>ongoing</strong>"),
            };
            h.raw("</li>\n");
        }
        h.raw("</ul>\n");
    }
    h.raw("</section>\n<footer><p>Updated ")
        .text(&utc(now))
        .raw(". Times in UTC. A day without any check shows as no data: postflight was not running or the probe did not exist.</p></footer>\n</main>\n</body>\n</html>\n");
    h.finish()
}
