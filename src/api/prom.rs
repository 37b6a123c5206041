//! The parts of Prometheus' HTTP API that clients (Grafana, `promtool query`) use besides the
//! instant query: `query_range`, `series`, `labels`, `label/{name}/values`,
//! `status/buildinfo`, `query_exemplars` (always empty), `metadata` and `/federate`. Parameters as
//! Prometheus takes them: in the query string, or form-encoded in a POST body; `match[]` may
//! repeat. Bad input is a 400 `bad_data` in Prometheus' error shape, never a 500.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use promql_parser::label::Matcher;

use super::limits::{Run, prom_error};
use super::{Resp, json, parse_time, query_pairs};
use crate::clock::Clock;
use crate::config::Current;
use crate::ingest::metadata::Metadata;
use crate::series::head::Head;
use crate::series::{Labels, METRIC_NAME, SeriesSource};

/// Prometheus' limit on the points of one range-query series.
const MAX_POINTS: i64 = 11_000;

/// How far back `/federate` and the default `series`/`labels` window look, as Prometheus'
/// lookback delta.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The request's parameters, in order, from the query string and (POST) the form body.
pub struct Params(Vec<(String, String)>);

impl Params {
    fn from(method: &Method, query: Option<&str>, body: &[u8]) -> Params {
        let mut v = query_pairs(query.unwrap_or(""));
        if method == Method::POST {
            v.extend(query_pairs(&String::from_utf8_lossy(body)));
        }
        Params(v)
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (`match[]`).
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter, or `default` when absent.
    fn time(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(t) => parse_time(t).ok_or_else(|| {
                format!("invalid parameter \"{name}\": cannot parse \"{t}\" to a valid timestamp")
            }),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Resp;

    async fn from_request(req: Request, state: &S) -> Result<Self, Resp> {
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_string);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| bad_data(&e.body_text()))?;
        Ok(Params::from(&method, query.as_deref(), &body))
    }
}

/// A 400 in Prometheus' shape.
fn bad_data(msg: &str) -> Resp {
    prom_error(StatusCode::BAD_REQUEST, "bad_data", msg)
}

fn success(data: serde_json::Value) -> Resp {
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "success", "data": data }),
    )
}

/// A duration parameter: seconds as a float, or a Prometheus duration (`15s`, `1m30s`).
fn parse_step(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return (f.is_finite() && f.abs() < 9.2e15).then(|| (f * 1000.0).round() as i64);
    }
    crate::config::parse_duration(s)
        .ok()
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses every `match[]` selector into its matchers; at least one is required.
fn selectors(p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, String> {
    let raw = p.all("match[]");
    if raw.is_empty() && required {
        return Err("no match[] parameter provided".into());
    }
    raw.iter()
        .map(|s| match promql_parser::parser::parse(s) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => {
                let m = crate::promql::selector_matchers(&vs)
                    .map_err(|e| format!("invalid parameter \"match[]\": {s}: {e}"))?;
                if m.iter().all(|m| m.is_match("")) {
                    return Err(format!(
                        "invalid parameter \"match[]\": {s}: match[] must contain at least one non-empty matcher"
                    ));
                }
                Ok(m)
            }
            Ok(_) => Err(format!(
                "invalid parameter \"match[]\": {s}: not a series selector"
            )),
            Err(e) => Err(format!("invalid parameter \"match[]\": {e}")),
        })
        .collect()
}

/// The series matching any of the selectors between `start` and `end`, each once, in order.
fn matching(
    src: &dyn SeriesSource,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> BTreeSet<Labels> {
    sets.iter()
        .flat_map(|m| src.series_labels(m, start, end))
        .collect()
}

/// The series of the selectors in the window, read over the head and the store as a query.
async fn find(
    run: Run,
    sets: Vec<Vec<Matcher>>,
    (start, end): (i64, i64),
) -> Result<BTreeSet<Labels>, Resp> {
    let r = run
        .run(move |src, limits| {
            let found = matching(src, &sets, start, end);
            limits.check().map(|()| found)
        })
        .await?;
    r.map_err(|e| {
        prom_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            &e.to_string(),
        )
    })
}

/// `GET|POST /api/v1/query_range`: a range query over the head and the store.
pub async fn query_range(State(run): State<Run>, p: Params) -> Resp {
    let Some(query) = p.get("query").map(str::to_string) else {
        return bad_data("invalid parameter \"query\": missing parameter");
    };
    let (start, end) = match (p.time("start", i64::MIN), p.time("end", i64::MIN)) {
        (Ok(s), Ok(e)) if s != i64::MIN && e != i64::MIN => (s, e),
        (Err(e), _) | (_, Err(e)) => return bad_data(&e),
        (Ok(i64::MIN), _) => return bad_data("invalid parameter \"start\": missing parameter"),
        _ => return bad_data("invalid parameter \"end\": missing parameter"),
    };
    if end < start {
        return bad_data("invalid parameter \"end\": end timestamp must not be before start time");
    }
    let Some(step) = p.get("step").and_then(parse_step) else {
        return bad_data(&format!(
            "invalid parameter \"step\": cannot parse \"{}\" to a valid duration",
            p.get("step").unwrap_or("")
        ));
    };
    if step <= 0 {
        return bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        );
    }
    if (end - start) / step > MAX_POINTS {
        return bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let expr = match crate::promql::parse(&query) {
        Ok(e) => e,
        Err(e) => return bad_data(&format!("invalid parameter \"query\": {e}")),
    };
    if let Err(e) = crate::promql::check_supported(&expr) {
        return bad_data(&e);
    }
    let r = run
        .run(move |src, limits| {
            crate::promql::Engine::default().range_limited(src, &expr, (start, end, step), limits)
        })
        .await;
    match r {
        Ok(Ok(v)) => super::json_from(StatusCode::OK, &crate::promql::ApiJson(&v)),
        Ok(Err(crate::promql::EvalError::InvalidQuery(e))) => bad_data(&e),
        Ok(Err(e)) => prom_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            &e.to_string(),
        ),
        Err(resp) => resp,
    }
}

/// The `start`/`end` window of a metadata query: Prometheus' default is all time, which is
/// the store's retention.
fn window(p: &Params) -> Result<(i64, i64), String> {
    Ok((p.time("start", i64::MIN)?, p.time("end", i64::MAX)?))
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(run): State<Run>, p: Params) -> Resp {
    let (sets, w) = match (selectors(&p, true), window(&p)) {
        (Ok(s), Ok(w)) => (s, w),
        (Err(e), _) | (_, Err(e)) => return bad_data(&e),
    };
    match find(run, sets, w).await {
        Ok(found) => success(serde_json::Value::Array(
            found.iter().map(crate::promql::metric_json).collect(),
        )),
        Err(resp) => resp,
    }
}

/// Every series of the selectors, or every series when none is given.
async fn listed(run: Run, p: &Params) -> Result<BTreeSet<Labels>, Resp> {
    let mut sets = selectors(p, false).map_err(|e| bad_data(&e))?;
    if sets.is_empty() {
        sets.push(vec![Matcher::new(
            promql_parser::label::MatchOp::Re(regex::Regex::new("^(?:.+)$").expect("static regex")),
            METRIC_NAME,
            ".+",
        )]);
    }
    let w = window(p).map_err(|e| bad_data(&e))?;
    find(run, sets, w).await
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(run): State<Run>, p: Params) -> Resp {
    let found = match listed(run, &p).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let names: BTreeSet<&str> = found
        .iter()
        .flat_map(|l| l.iter().map(|l| &**l.name()))
        .collect();
    success(serde_json::json!(names))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(State(run): State<Run>, Path(name): Path<String>, p: Params) -> Resp {
    if name.is_empty()
        || !name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
    {
        return bad_data(&format!("invalid label name: \"{name}\""));
    }
    let found = match listed(run, &p).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let values: BTreeSet<&str> = found.iter().filter_map(|l| l.get(&name)).collect();
    success(serde_json::json!(values))
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Resp {
    success(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// `GET|POST /api/v1/query_exemplars`: postflight keeps no exemplars; Grafana asks on every
/// panel, so the answer is an empty list, not an error.
pub async fn query_exemplars() -> Resp {
    success(serde_json::json!([]))
}

/// `GET /api/v1/metadata[?metric=&limit=&limit_per_metric=]`: the `# TYPE`, `# HELP` and
/// `# UNIT` of the scraped metric families, each family's distinct entries across targets, in
/// Prometheus' shape. A negative limit is no limit, as in Prometheus.
pub async fn metadata(State(meta): State<Arc<Metadata>>, p: Params) -> Resp {
    let limit = |name: &str| -> Result<Option<usize>, String> {
        match p.get(name) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(|n| usize::try_from(n).ok())
                .map_err(|_| format!("{name} must be a number")),
        }
    };
    let (limit, per_metric) = match (limit("limit"), limit("limit_per_metric")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return bad_data(&e),
    };
    success(serde_json::json!(meta.list(
        p.get("metric").filter(|m| !m.is_empty()),
        limit,
        per_metric
    )))
}

/// `GET /federate?match[]=...`: the latest sample of every matching series in the text
/// exposition format, with the external labels added where a series lacks them, as
/// Prometheus federates.
pub async fn federate(
    State(head): State<Arc<Head>>,
    State(clock): State<Clock>,
    State(config): State<Current>,
    p: Params,
) -> Resp {
    let sets = match selectors(&p, true) {
        Ok(s) => s,
        Err(e) => return bad_data(&e),
    };
    let global = config.get().global.clone();
    // `external_labels` (the replica's) first, then the alert labels, as both are external.
    let external: Vec<(String, String)> = global
        .external_labels
        .into_iter()
        .chain(global.labels)
        .collect();
    let now = clock.now_ms();
    let page = crate::rt::blocking(|| {
        let mut latest: std::collections::BTreeMap<Labels, (i64, f64)> = Default::default();
        for m in &sets {
            for s in head.select(m, now - LOOKBACK_MS, now) {
                match s.samples.last() {
                    Some(x) if !crate::series::is_stale_nan(x.v) => {
                        latest.insert(s.labels, (x.t, x.v));
                    }
                    _ => {}
                }
            }
        }
        let mut out = String::new();
        let mut family = String::new();
        for (labels, (t, v)) in &latest {
            let name = labels.get(METRIC_NAME).unwrap_or("");
            if name != family {
                family = name.to_string();
                out.push_str(&format!("# TYPE {name} untyped\n"));
            }
            let mut l = labels.without_metric_name();
            for (k, val) in &external {
                if l.get(k).is_none() {
                    l = l.with(k.as_str(), val.as_str());
                }
            }
            out.push_str(name);
            if !l.is_empty() {
                out.push('{');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("{}=\"{}\"", x.name(), escape(x.value())));
                }
                out.push('}');
            }
            out.push_str(&format!(" {} {t}\n", crate::promql::format_value(*v)));
        }
        out
    });
    let mut r = Resp::new(axum::body::Body::from(page));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A label value escaped for the text format: backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
