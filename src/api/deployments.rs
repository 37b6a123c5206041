//! The deployment endpoints, as functions of the [`GateHandle`]:
//!
//! - `POST /api/v1/deployments` → [`create`]: 201 `{"id"}`, 404 no gate, 409 already watching
//!   (`{"error","id"}`), 400 bad body.
//! - `GET /api/v1/deployments/{id}` → [`get`]: the deployment ([`crate::deploy::Deployment::view`]) or 404.
//! - `GET /api/v1/deployments[?job=J&limit=N&before=ID]` → [`list`]: `{"deployments":[...],
//!   "next"}`, newest first, at most `limit` (default and most 100); `next` (the last id of a
//!   full page, else null) passed as `before` gives the page after.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;

use super::{Resp, error, json, parse_json, percent_decode};
use crate::deploy::{GateHandle, LIST_LIMIT, NewDeployment, StartError};

/// `POST /api/v1/deployments`.
pub async fn create(State(gates): State<GateHandle>, body: Bytes) -> Resp {
    match parse_json::<NewDeployment>(&body) {
        Ok(body) => create_from(&gates, body).await,
        Err(resp) => *resp,
    }
}

/// `GET /api/v1/deployments/{id}`.
pub async fn get_route(State(gates): State<GateHandle>, Path(id): Path<String>) -> Resp {
    get(&gates, &id).await
}

/// `GET /api/v1/deployments[?job=J&limit=N]`.
pub async fn list_route(State(gates): State<GateHandle>, RawQuery(q): RawQuery) -> Resp {
    list(&gates, q.as_deref()).await
}

/// [`create`] after the body is parsed.
pub async fn create_from(gates: &GateHandle, body: NewDeployment) -> Resp {
    match gates.start(body).await {
        Ok(id) => json(StatusCode::CREATED, &serde_json::json!({ "id": id })),
        Err(e) => {
            let msg = e.to_string();
            match e {
                StartError::NoGate(_) => error(StatusCode::NOT_FOUND, &msg),
                StartError::AlreadyWatching(id) => json(
                    StatusCode::CONFLICT,
                    &serde_json::json!({ "error": msg, "id": id }),
                ),
                StartError::Invalid(_) => error(StatusCode::BAD_REQUEST, &msg),
                StartError::Store(_) => error(StatusCode::INTERNAL_SERVER_ERROR, &msg),
                StartError::Stopped => error(StatusCode::SERVICE_UNAVAILABLE, &msg),
            }
        }
    }
}

/// `GET /api/v1/deployments/{id}`.
pub async fn get(gates: &GateHandle, id: &str) -> Resp {
    match gates.get(id).await {
        Some(d) => json(StatusCode::OK, &d.view()),
        None => error(StatusCode::NOT_FOUND, &format!("no deployment {id:?}")),
    }
}

/// `GET /api/v1/deployments?job=J&limit=N` (`query` is the URI's query string).
pub async fn list(gates: &GateHandle, query: Option<&str>) -> Resp {
    let job = query_param(query, "job").filter(|j| !j.is_empty());
    let limit = match query_param(query, "limit") {
        None => LIST_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => n.min(LIST_LIMIT),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("limit must be a number from 1 to {LIST_LIMIT}"),
                );
            }
        },
    };
    let before = query_param(query, "before").filter(|b| !b.is_empty());
    let page = gates.list(job.as_deref(), before.as_deref(), limit).await;
    // A full page may have older ones behind it: `next` is where the next page starts.
    let next = (page.len() == limit).then(|| page.last().map(|d| d.id.clone()));
    let list: Vec<serde_json::Value> = page.iter().map(|d| d.view()).collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "deployments": list, "next": next.flatten() }),
    )
}

/// The first value of `name` in a query string, percent- and `+`-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

#[cfg(test)]
mod tests;
