//! `GET /api/v1/rules`: the rule groups, each rule's health, last error, evaluation times and,
//! for alerting rules, state and active alerts, in Prometheus' shape (2.42's), with its
//! `type=alert|record` filter.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Resp, parse_query};
use crate::alert::{Alert, AlertState};
use crate::rules::engine::{Group, Rule, RuleKind, RulesState};

/// `GET /api/v1/rules[?type=alert|record]`.
pub async fn list(State(rules): State<Arc<RulesState>>, RawQuery(q): RawQuery) -> Resp {
    let typ = parse_query(q.as_deref().unwrap_or(""))
        .remove("type")
        .unwrap_or_default()
        .to_lowercase();
    let (alerting, recording) = match typ.as_str() {
        "" => (true, true),
        "alert" => (true, false),
        "record" => (false, true),
        other => {
            return super::json(
                StatusCode::BAD_REQUEST,
                &json!({
                    "status": "error",
                    "errorType": "bad_data",
                    "error": format!("not supported value {other:?}"),
                }),
            );
        }
    };
    let groups = rules.inspect(|groups, rules| {
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|a, b| {
            (&groups[*a].file, &groups[*a].name).cmp(&(&groups[*b].file, &groups[*b].name))
        });
        order
            .into_iter()
            .map(|i| {
                let shown: Vec<Value> = rules
                    .iter()
                    .filter(|r| r.group == i)
                    .filter_map(|r| match &r.kind {
                        RuleKind::Alerting(_) if alerting => Some(alerting_rule(r)),
                        RuleKind::Recording(_) if recording => Some(recording_rule(r)),
                        _ => None,
                    })
                    .collect();
                group(&groups[i], shown)
            })
            .collect::<Vec<Value>>()
    });
    super::json(
        StatusCode::OK,
        &json!({ "status": "success", "data": { "groups": groups } }),
    )
}

fn group(g: &Group, rules: Vec<Value>) -> Value {
    json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval.as_secs_f64(),
        "limit": g.limit,
        "evaluationTime": g.evaluation_time.as_secs_f64(),
        "lastEvaluation": time(g.last_evaluation),
    })
}

fn alerting_rule(r: &Rule) -> Value {
    let mut alerts: Vec<&Alert> = r
        .alerts()
        .filter(|a| a.state != AlertState::Resolved)
        .collect();
    alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
    let state = if alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else if alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    };
    let mut v = json!({
        "state": state,
        "name": r.config.alert,
        "query": query(r),
        "duration": r.config.for_.get().as_secs_f64(),
        "keepFiringFor": r.config.keep_firing_for.get().as_secs_f64(),
        "labels": r.config.labels,
        "annotations": r.config.annotations,
        "alerts": alerts.into_iter().map(alert).collect::<Vec<Value>>(),
        "health": r.health.as_str(),
        "evaluationTime": r.evaluation_time.as_secs_f64(),
        "lastEvaluation": time(r.last_evaluation),
        "type": "alerting",
    });
    add_last_error(&mut v, r);
    v
}

fn recording_rule(r: &Rule) -> Value {
    let mut v = json!({
        "name": r.config.record,
        "query": query(r),
        "health": r.health.as_str(),
        "evaluationTime": r.evaluation_time.as_secs_f64(),
        "lastEvaluation": time(r.last_evaluation),
        "type": "recording",
    });
    if !r.config.labels.is_empty() {
        v["labels"] = json!(r.config.labels);
    }
    add_last_error(&mut v, r);
    v
}

/// `lastError` is left out when there is none, as in Prometheus.
fn add_last_error(v: &mut Value, r: &Rule) {
    if !r.last_error.is_empty() {
        v["lastError"] = json!(r.last_error);
    }
}

/// The expression as Prometheus prints a parsed one.
fn query(r: &Rule) -> String {
    match &r.kind {
        RuleKind::Alerting(a) => a.expr.to_string(),
        RuleKind::Recording(rr) => rr.expr.to_string(),
    }
}

fn alert(a: &Alert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": a.active_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "value": go_exponent(a.value),
    })
}

/// RFC 3339; Go's zero time for never, as Prometheus answers for a rule not evaluated yet.
fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

/// A float as Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the alerts' `value` in Prometheus'
/// rules API: `1e+00`, `2.5e-01`, `NaN`, `+Inf`.
pub fn go_exponent(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests;
