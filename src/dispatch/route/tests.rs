use super::*;
use crate::alert::Matcher;
use crate::config::ConfigDuration;

fn route(m: &[&str], cont: bool) -> RouteConfig {
    RouteConfig {
        matchers: m.iter().map(|s| Matcher::parse(s).unwrap()).collect(),
        receivers: vec!["r".into()],
        group_by: vec!["alertname".into(), "job".into()],
        group_wait: ConfigDuration::secs(30),
        group_interval: ConfigDuration::secs(300),
        repeat_interval: ConfigDuration::secs(3600),
        continue_: cont,
    }
}

#[test]
fn first_match_wins_unless_continue() {
    let routes = vec![
        route(&["severity=\"page\""], true),
        route(&["job=\"api\""], false),
        route(&[], false),
    ];
    let l = Labels::new([("severity", "page"), ("job", "api")]);
    assert_eq!(matching_routes(&routes, &l), vec![0, 1]);
    assert_eq!(
        matching_routes(&routes, &Labels::new([("job", "db")])),
        vec![2]
    );
    assert_eq!(
        matching_routes(&routes[..2], &Labels::new([("job", "db")])),
        Vec::<usize>::new()
    );
}

#[test]
fn group_keys_are_stable_and_distinct() {
    let routes = vec![
        route(&["severity=\"page\""], false),
        route(&["severity=\"page\""], false),
    ];
    let keys = route_keys(&routes);
    assert_eq!(keys[0], "{}/{severity=\"page\"}");
    assert_ne!(keys[0], keys[1]);
    let g = group_labels(
        &routes[0],
        &Labels::new([("alertname", "A"), ("job", "api"), ("x", "y")]),
    );
    assert_eq!(
        group_key(&keys[0], &g),
        "{}/{severity=\"page\"}:{alertname=\"A\", job=\"api\"}"
    );
}

#[test]
fn inhibition_needs_equal_labels_and_never_self() {
    let rule = InhibitConfig {
        source_matchers: vec![Matcher::parse("alertname=\"ProbeFailed\"").unwrap()],
        target_matchers: vec![Matcher::parse("severity=\"warning\"").unwrap()],
        equal: vec!["job".into()],
    };
    let src = Labels::new([
        ("alertname", "ProbeFailed"),
        ("job", "api"),
        ("severity", "warning"),
    ]);
    let t1 = Labels::new([
        ("alertname", "Slow"),
        ("job", "api"),
        ("severity", "warning"),
    ]);
    let t2 = Labels::new([
        ("alertname", "Slow"),
        ("job", "db"),
        ("severity", "warning"),
    ]);
    assert!(inhibited(std::slice::from_ref(&rule), &t1, &[&src]));
    assert!(!inhibited(std::slice::from_ref(&rule), &t2, &[&src]));
    assert!(!inhibited(std::slice::from_ref(&rule), &src, &[&src]));
}
