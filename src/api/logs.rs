//! `GET /api/v1/logs`: the matching lines a `[[log]]` source kept (redacted), newest last.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::{Resp, error, json, parse_query, parse_time};
use crate::config::Current;
use crate::store::StateStore;

/// Lines returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// `GET /api/v1/logs?log=NAME[&match=M&since=T&until=T&limit=N]` →
/// `{"lines":[{"time","file","match","line"}]}`, newest last.
pub async fn lines(
    State(state): State<StateStore>,
    State(config): State<Current>,
    RawQuery(q): RawQuery,
) -> Resp {
    let p = parse_query(q.as_deref().unwrap_or(""));
    let Some(log) = p.get("log").cloned() else {
        return error(StatusCode::BAD_REQUEST, "give log=NAME");
    };
    if !config.get().logs.iter().any(|l| l.name == log) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no [[log]] named {log:?} in the config"),
        );
    }
    let time = |k: &str| -> Result<Option<i64>, String> {
        match p.get(k) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| format!("invalid {k}: {v:?} is neither RFC 3339 nor Unix time")),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if l > 0 => l,
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid limit: a positive integer"),
    };
    let m = p.get("match").cloned();
    let r = tokio::task::spawn_blocking(move || {
        crate::logs::query(&state, &log, m.as_deref(), since, until, limit)
    })
    .await;
    match r {
        Ok(Ok(lines)) => json(
            StatusCode::OK,
            &serde_json::json!({ "status": "success", "lines": lines }),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
