use super::*;

#[test]
fn query_params_are_decoded() {
    let q = Some("limit=5&job=my%20api+x&x");
    assert_eq!(query_param(q, "job").as_deref(), Some("my api x"));
    assert_eq!(query_param(q, "limit").as_deref(), Some("5"));
    assert_eq!(query_param(q, "x").as_deref(), Some(""));
    assert_eq!(query_param(q, "nope"), None);
    assert_eq!(query_param(None, "job"), None);
    assert_eq!(percent_decode("100%"), "100%");
}
