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
