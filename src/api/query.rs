//! `/api/v1/query` (PromQL in Prometheus' HTTP API format, over the head and the store) and
//! `/api/v1/history` (probe results and alert transitions from the store).

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use bytes::Bytes;

use super::limits::{Run, prom_error};
use super::{Resp, error, json, parse_query, parse_time};
use crate::clock::Clock;
use crate::store::{ProbeLog, StateStore};

/// `GET|POST /api/v1/query`: an instant query over the head and the store; POST takes the
/// parameters form-encoded too.
pub async fn instant(
    State(run): State<Run>,
    State(clock): State<Clock>,
    method: Method,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Resp {
    let mut params = parse_query(q.as_deref().unwrap_or(""));
    if method == Method::POST {
        params.extend(parse_query(&String::from_utf8_lossy(&body)));
    }
    let Some(q) = params.get("query") else {
        return prom_error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            "missing parameter: query",
        );
    };
    let t_ms = match params.get("time") {
        None => clock.now_ms(),
        Some(t) => match parse_time(t) {
            Some(t) => t,
            None => {
                return prom_error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    &format!("invalid parameter \"time\": cannot parse {t:?} to a valid timestamp"),
                );
            }
        },
    };
    let expr = match crate::promql::parse(q) {
        Ok(e) => e,
        Err(e) => {
            return prom_error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("invalid parameter \"query\": {e}"),
            );
        }
    };
    if let Err(e) = crate::promql::check_supported(&expr) {
        return prom_error(StatusCode::BAD_REQUEST, "bad_data", &e);
    }
    let r = run
        .run(move |src, limits| {
            crate::promql::Engine::default().instant_limited(src, &expr, t_ms, limits)
        })
        .await;
    match r {
        Ok(Ok(v)) => super::json_from(StatusCode::OK, &crate::promql::ApiJson(&v)),
        Ok(Err(e)) => prom_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            &e.to_string(),
        ),
        Err(resp) => resp,
    }
}

/// `GET /api/v1/history?probe=NAME|alert=NAME[&since=T&until=T&limit=N]`, newest last.
pub async fn history(
    State(probes): State<ProbeLog>,
    State(state): State<StateStore>,
    RawQuery(q): RawQuery,
) -> Resp {
    let p = parse_query(q.as_deref().unwrap_or(""));
    let time = |k: &str, default: i64| -> Result<i64, String> {
        match p.get(k) {
            None => Ok(default),
            Some(v) => parse_time(v)
                .ok_or_else(|| format!("invalid {k}: {v:?} is neither RFC 3339 nor Unix time")),
        }
    };
    let (since, until) = match (time("since", 0), time("until", i64::MAX)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if l > 0 => l.min(100_000),
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid limit: a positive integer"),
    };
    let rfc = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    // Both lists are read and rendered on a blocking thread; a store error and a failed task
    // are both a 500.
    let (key, list, r) = if let Some(name) = p.get("probe").cloned() {
        let r = tokio::task::spawn_blocking(move || {
            probes.probe_history(&name, since, until, limit).map(|records| {
                records
                    .iter()
                    .map(|r| serde_json::json!({"time": rfc(r.t), "success": r.success, "duration": r.duration_seconds, "status": r.status, "reason": r.reason}))
                    .collect::<Vec<_>>()
            })
        })
        .await;
        ("probe", "results", r)
    } else if let Some(name) = p.get("alert").cloned() {
        let r = tokio::task::spawn_blocking(move || {
            state.alert_history(&name, since, until, limit).map(|records| {
                records
                    .iter()
                    .map(|r| serde_json::json!({"time": rfc(r.t), "labels": r.labels, "from": r.from, "to": r.to, "value": crate::promql::format_value(r.value)}))
                    .collect::<Vec<_>>()
            })
        })
        .await;
        ("alert", "transitions", r)
    } else {
        return error(StatusCode::BAD_REQUEST, "give probe=NAME or alert=NAME");
    };
    match r {
        Ok(Ok(v)) => json(
            StatusCode::OK,
            &serde_json::json!({ "status": "success", key: p.get(key), list: v }),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
