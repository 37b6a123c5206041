//! The Prometheus HTTP API encoding of query results (`/api/v1/query`).

use std::cell::RefCell;
use std::fmt::Write as _;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};
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

/// The answer [`value_to_api_json`] builds, written straight to a serializer: the same bytes
/// without a tree of JSON values in between (a range query of a thousand series over an hour
/// is some 60,000 points, each a small array and a string in the tree). The API serialises
/// query answers through this.
pub struct ApiJson<'a>(pub &'a Value);

impl Serialize for ApiJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Keys in the order `json!` sorts them: data, status; result, resultType.
        let mut top = s.serialize_map(Some(2))?;
        top.serialize_entry("data", &Data(self.0))?;
        top.serialize_entry("status", "success")?;
        top.end()
    }
}

struct Data<'a>(&'a Value);

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let buf = RefCell::new(String::new());
        let mut m = s.serialize_map(Some(2))?;
        let kind = match self.0 {
            Value::Scalar { t, v } => {
                m.serialize_entry(
                    "result",
                    &Point {
                        t: *t,
                        v: *v,
                        buf: &buf,
                    },
                )?;
                "scalar"
            }
            Value::String { t, v } => {
                m.serialize_entry("result", &(Time(*t), v))?;
                "string"
            }
            Value::Vector(samples) => {
                m.serialize_entry("result", &VectorJson { samples, buf: &buf })?;
                "vector"
            }
            Value::Matrix(series) => {
                m.serialize_entry("result", &MatrixJson { series, buf: &buf })?;
                "matrix"
            }
        };
        m.serialize_entry("resultType", kind)?;
        m.end()
    }
}

/// A time in ms as [`time_json`] writes it.
struct Time(i64);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

/// `[time, "value"]`, the value formatted into a buffer shared by the whole answer.
struct Point<'a> {
    t: i64,
    v: f64,
    buf: &'a RefCell<String>,
}

impl Serialize for Point<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = self.buf.borrow_mut();
        buf.clear();
        match crate::template::gofmt::non_finite(self.v) {
            Some(text) => buf.push_str(text),
            // Writing to a String cannot fail.
            None => {
                let _ = write!(buf, "{}", self.v);
            }
        }
        let mut p = s.serialize_tuple(2)?;
        p.serialize_element(&Time(self.t))?;
        p.serialize_element(buf.as_str())?;
        p.end()
    }
}

/// A series' labels as the `metric` object, in name order (the order of [`Labels`]).
struct Metric<'a>(&'a Labels);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.iter().len()))?;
        for l in self.0.iter() {
            m.serialize_entry(l.name().as_str(), l.value().as_str())?;
        }
        m.end()
    }
}

struct VectorJson<'a> {
    samples: &'a [super::VectorSample],
    buf: &'a RefCell<String>,
}

impl Serialize for VectorJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.samples.len()))?;
        for x in self.samples {
            seq.serialize_element(&SeriesJson {
                labels: &x.labels,
                key: "value",
                points: Points::One(Point {
                    t: x.t,
                    v: x.v,
                    buf: self.buf,
                }),
            })?;
        }
        seq.end()
    }
}

struct MatrixJson<'a> {
    series: &'a [crate::series::SeriesSamples],
    buf: &'a RefCell<String>,
}

impl Serialize for MatrixJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.series.len()))?;
        for x in self.series {
            seq.serialize_element(&SeriesJson {
                labels: &x.labels,
                key: "values",
                points: Points::Many(&x.samples, self.buf),
            })?;
        }
        seq.end()
    }
}

enum Points<'a> {
    One(Point<'a>),
    Many(&'a [Sample], &'a RefCell<String>),
}

impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Points::One(p) => p.serialize(s),
            Points::Many(samples, buf) => {
                let mut seq = s.serialize_seq(Some(samples.len()))?;
                for x in *samples {
                    seq.serialize_element(&Point {
                        t: x.t,
                        v: x.v,
                        buf,
                    })?;
                }
                seq.end()
            }
        }
    }
}

/// `{"metric": {...}, "value"|"values": ...}`.
struct SeriesJson<'a> {
    labels: &'a Labels,
    key: &'static str,
    points: Points<'a>,
}

impl Serialize for SeriesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &Metric(self.labels))?;
        m.serialize_entry(self.key, &self.points)?;
        m.end()
    }
}

#[cfg(test)]
mod tests;
