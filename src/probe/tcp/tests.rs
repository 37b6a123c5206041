use super::*;

#[test]
fn parses_tcp_urls() {
    assert_eq!(parse_tcp_url("tcp://db:5432"), Ok(("db", 5432)));
    assert_eq!(parse_tcp_url("tcp://db:5432/"), Ok(("db", 5432)));
    assert_eq!(parse_tcp_url("tcp://[::1]:80"), Ok(("::1", 80)));
    assert!(parse_tcp_url("tcp://db").is_err());
    assert!(parse_tcp_url("tcp://db:x").is_err());
    assert!(parse_tcp_url("tcp://:80").is_err());
}
