//! Routing and grouping: which routes take an alert, and which group of each route it joins.

use std::collections::BTreeMap;

use crate::alert::matches_all;
use crate::config::{InhibitConfig, RouteConfig};
use crate::series::Labels;

/// Indices of the routes that take these labels: in order, the first match unless it says
/// `continue = true`.
pub fn matching_routes(routes: &[RouteConfig], labels: &Labels) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if matches_all(&r.matchers, labels) {
            out.push(i);
            if !r.continue_ {
                break;
            }
        }
    }
    out
}

/// The group labels of an alert on a route: the `group_by` labels it has (all labels for
/// `group_by = ["..."]`).
pub fn group_labels(route: &RouteConfig, labels: &Labels) -> BTreeMap<String, String> {
    if route.group_by.iter().any(|g| g == "...") {
        return labels
            .iter()
            .map(|l| (l.name().to_string(), l.value().to_string()))
            .collect();
    }
    route
        .group_by
        .iter()
        .filter_map(|g| labels.get(g).map(|v| (g.clone(), v.to_string())))
        .collect()
}

/// A key naming a route, stable across restarts while the route's matchers stay the same, in
/// Alertmanager's style: `{}/{severity="page"}`. Routes with identical matchers get `#index`.
pub fn route_keys(routes: &[RouteConfig]) -> Vec<String> {
    let mut keys: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{{}}/{{{}}}",
                r.matchers
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    for i in 0..keys.len() {
        if keys[..i].contains(&keys[i]) {
            keys[i] = format!("{}#{i}", keys[i]);
        }
    }
    keys
}

/// The group key: route key plus group labels, as Alertmanager prints it.
pub fn group_key(route_key: &str, group: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{route_key}:{{{}}}", labels.join(", "))
}

/// Whether `target` is inhibited by one of the `firing` alerts (Alertmanager's inhibitor: a
/// firing source matching `source_matchers`, the target matching `target_matchers`, and every
/// `equal` label the same on both; an alert never inhibits itself).
pub fn inhibited(rules: &[InhibitConfig], target: &Labels, firing: &[&Labels]) -> bool {
    rules.iter().any(|r| {
        matches_all(&r.target_matchers, target)
            && firing.iter().any(|src| {
                *src != target
                    && matches_all(&r.source_matchers, src)
                    && r.equal.iter().all(|l| src.get(l) == target.get(l))
            })
    })
}

#[cfg(test)]
mod tests {
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
}
