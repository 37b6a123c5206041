//! The Prometheus HTTP API encoding of query results (`/api/v1/query`).

use serde_json::{Map, Value as Json, json};

use super::Value;
use crate::series::{Labels, Sample};

/// Formats a sample value like Prometheus (Go's `strconv.FormatFloat(v, 'f', -1, 64)`): the
/// shortest decimal that round-trips, never an exponent, and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    match crate::template::gofmt::non_finite(v) {
        Some(s) => s.to_string(),
        // Rust's `Display` for f64 is the shortest round-trip form without exponent, like 'f'/-1.
        None => format!("{v}"),
    }
}

/// A timestamp in seconds as a JSON number: integral seconds print without a fraction, as
/// Prometheus writes them.
fn time_json(t_ms: i64) -> Json {
    if t_ms % 1000 == 0 {
        json!(t_ms / 1000)
    } else {
        json!(t_ms as f64 / 1000.0)
    }
}

fn point_json(s: &Sample) -> Json {
    Json::Array(vec![time_json(s.t), Json::String(format_value(s.v))])
}

/// A series' labels as the API's `metric` object.
pub fn metric_json(labels: &Labels) -> Json {
    let mut m = Map::new();
    for l in labels.iter() {
        m.insert(l.name().to_string(), Json::String(l.value().to_string()));
    }
    Json::Object(m)
}

/// Prometheus HTTP API JSON for a query result:
/// `{"status":"success","data":{"resultType":"vector","result":[{"metric":{…},"value":[1.5,"3"]}]}}`.
/// Values are formatted like Prometheus (see [`format_value`]); times are seconds.
pub fn value_to_api_json(v: &Value) -> Json {
    let (kind, result) = match v {
        Value::Scalar { t, v } => (
            "scalar",
            Json::Array(vec![time_json(*t), Json::String(format_value(*v))]),
        ),
        Value::String { t, v } => (
            "string",
            Json::Array(vec![time_json(*t), Json::String(v.clone())]),
        ),
        Value::Vector(samples) => (
            "vector",
            Json::Array(
                samples
                    .iter()
                    .map(|s| {
                        json!({
                            "metric": metric_json(&s.labels),
                            "value": point_json(&Sample { t: s.t, v: s.v }),
                        })
                    })
                    .collect(),
            ),
        ),
        Value::Matrix(series) => (
            "matrix",
            Json::Array(
                series
                    .iter()
                    .map(|s| {
                        json!({
                            "metric": metric_json(&s.labels),
                            "values": s.samples.iter().map(point_json).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            ),
        ),
    };
    json!({"status": "success", "data": {"resultType": kind, "result": result}})
}

#[cfg(test)]
mod tests;
