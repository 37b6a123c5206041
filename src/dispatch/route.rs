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
mod tests;
