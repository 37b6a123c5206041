//! `GET /api/v1/uptime?probe=NAME&window=30d`: a probe's uptime and error budget from the
//! hourly counts (see [`crate::store::Uptime`]); without `probe`, every configured probe.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use crate::api::{Api, Resp, error, json, parse_query};
use crate::config::ProbeConfig;
use crate::store::Counts;

/// The window when the request names none.
const DEFAULT_WINDOW: &str = "30d";
/// The longest window: the counts are kept at least this long.
const MAX_WINDOW_MS: i64 = crate::store::MIN_KEPT_MS - crate::store::DAY_MS;

/// The fraction of allowed failures left: with an objective of `slo` (a fraction), a window
/// of `checks` runs may fail `(1 - slo) · checks` of them. 1 is untouched, 0 spent, negative
/// overspent; `None` without an objective or without runs.
pub fn error_budget_remaining(slo: Option<f64>, c: Counts) -> Option<f64> {
    let slo = slo?;
    if c.checks == 0 {
        return None;
    }
    let allowed = (1.0 - slo) * c.checks as f64;
    Some(1.0 - c.failures as f64 / allowed)
}

/// A probe's `slo` as a fraction (the config holds a percentage).
pub fn slo_fraction(p: &ProbeConfig) -> Option<f64> {
    p.slo.map(|pct| pct / 100.0)
}

/// A window such as `24h` or `30d`, in ms: a duration from 1 minute to 90 days.
pub fn parse_window(s: &str) -> Result<i64, String> {
    let d = crate::config::parse_duration(s).map_err(|e| format!("invalid window {s:?}: {e}"))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if !(60_000..=MAX_WINDOW_MS).contains(&ms) {
        return Err(format!(
            "invalid window {s:?}: from 1m to 90d (the uptime counts are kept 90 days)"
        ));
    }
    Ok(ms)
}

fn body(p: &ProbeConfig, window: &str, c: Counts) -> serde_json::Value {
    let slo = slo_fraction(p);
    serde_json::json!({
        "probe": p.name,
        "window": window,
        "uptime": c.uptime(),
        "checks": c.checks,
        "failures": c.failures,
        "slo": slo,
        "errorBudgetRemaining": error_budget_remaining(slo, c),
    })
}

/// `GET /api/v1/uptime`.
pub async fn get(State(api): State<Api>, RawQuery(q): RawQuery) -> Resp {
    let q = parse_query(q.as_deref().unwrap_or(""));
    let window = q
        .get("window")
        .map_or(DEFAULT_WINDOW, String::as_str)
        .to_owned();
    let window_ms = match parse_window(&window) {
        Ok(ms) => ms,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let config = api.config.get();
    let now = api.clock.now_ms();
    let uptime = api.probes.uptime();
    match q.get("probe") {
        Some(name) => match config.probes.iter().find(|p| p.name == *name) {
            Some(p) => json(
                StatusCode::OK,
                &body(p, &window, uptime.window(&p.name, window_ms, now)),
            ),
            None => error(StatusCode::NOT_FOUND, &format!("no probe named {name:?}")),
        },
        None => {
            let names: Vec<&str> = config.probes.iter().map(|p| p.name.as_str()).collect();
            let counts = uptime.windows(&names, window_ms, now);
            let probes: Vec<serde_json::Value> = config
                .probes
                .iter()
                .zip(counts)
                .map(|(p, c)| body(p, &window, c))
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "window": window, "probes": probes }),
            )
        }
    }
}
