//! The messages of Prometheus remote write 1.0 (`prompb/remote.proto`, `prompb/types.proto`),
//! derived with prost: only the fields a sender of float samples fills. Field numbers are the
//! protocol's; a receiver ignores the fields left out (metadata, exemplars, histograms).

/// `prometheus.WriteRequest`: one request body before snappy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// One entry per series in the request.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: a series' labels, sorted by name, and its samples in time order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The label set, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}
