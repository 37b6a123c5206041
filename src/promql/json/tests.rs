use super::*;
use crate::promql::VectorSample;

#[test]
fn values_format_like_go() {
    assert_eq!(format_value(3.0), "3");
    assert_eq!(format_value(0.1), "0.1");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(1e-7), "0.0000001");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
}

#[test]
fn vector_json_shape() {
    let v = Value::Vector(vec![VectorSample {
        labels: Labels::new([("job", "api")]),
        t: 1500,
        v: 3.0,
    }]);
    assert_eq!(
        value_to_api_json(&v).to_string(),
        r#"{"data":{"result":[{"metric":{"job":"api"},"value":[1.5,"3"]}],"resultType":"vector"},"status":"success"}"#
    );
}

#[test]
fn the_streamed_answer_is_byte_for_byte_the_tree_one() {
    let odd = Labels::new([
        ("__name__", "probe_duration_seconds"),
        ("job", "we\"b\\<é>"),
        ("instance", "http://127.0.0.1:1/health?i=1"),
        ("a", "\u{1}\n"),
    ]);
    let samples = vec![
        Sample {
            t: 1_796_600_873_000,
            v: 0.0016078948974609375,
        },
        Sample {
            t: 1_796_600_873_123,
            v: f64::NAN,
        },
        Sample {
            t: -1_500,
            v: f64::INFINITY,
        },
        Sample { t: 7, v: -1e-7 },
        Sample { t: 8, v: 1e21 },
        Sample {
            t: 9,
            v: f64::NEG_INFINITY,
        },
    ];
    let values = [
        Value::Matrix(vec![
            crate::series::SeriesSamples {
                labels: odd.clone(),
                samples: samples.clone(),
            },
            crate::series::SeriesSamples {
                labels: Labels::new([("job", "api")]),
                samples: vec![],
            },
        ]),
        Value::Matrix(vec![]),
        Value::Vector(
            samples
                .iter()
                .map(|s| VectorSample {
                    labels: odd.clone(),
                    t: s.t,
                    v: s.v,
                })
                .chain([VectorSample {
                    labels: Labels::empty(),
                    t: 1500,
                    v: 3.0,
                }])
                .collect(),
        ),
        Value::Vector(vec![]),
        Value::Scalar { t: 1500, v: 0.1 },
        Value::Scalar {
            t: 2000,
            v: f64::NAN,
        },
        Value::String {
            t: 1_000,
            v: "a \"quoted\" line\n".into(),
        },
    ];
    for v in &values {
        assert_eq!(
            serde_json::to_string(&ApiJson(v)).unwrap(),
            value_to_api_json(v).to_string(),
            "{v:?}"
        );
    }
}
