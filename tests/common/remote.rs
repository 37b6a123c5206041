//! Comparing what postflight holds with what a remote-write receiver (a real Prometheus) got,
//! series by series, through both query APIs.
#![allow(dead_code)]

use std::collections::BTreeMap;

use crate::common::http;

/// `query` (a range selector) at `at` through the API on `port`: each series (its labels
/// without `replica` and `shard`, the external labels of the tests) with its samples (time in
/// ms, value bits).
pub fn samples(port: u16, query: &str, at: f64) -> BTreeMap<String, Vec<(i64, u64)>> {
    let path = format!(
        "/api/v1/query?query={}&time={at:.3}",
        crate::common::encode(query)
    );
    let (status, body) = http(port, "GET", &path, None, &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("a matrix") {
        let mut metric = s["metric"].as_object().unwrap().clone();
        metric.remove("replica");
        metric.remove("shard");
        let key = serde_json::to_string(&metric).unwrap();
        let points = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().parse::<f64>().unwrap().to_bits(),
                )
            })
            .collect();
        out.insert(key, points);
    }
    out
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn metric_sum(page: &str, prefix: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every sample postflight on `port` holds (head and store, through its query API) of the
/// probe's and the scrape's series since `began`, compared series by series with what
/// Prometheus on `prom_port` received of the series `selector` (e.g. `{shard="2"}`, or empty)
/// picks: the same series, every sample once with its value, none missing. Returns what
/// Prometheus holds of them, by series (with the metric name; see [`names`]).
pub fn same_series(
    port: u16,
    prom_port: u16,
    began: f64,
    selector: &str,
) -> BTreeMap<String, Vec<(i64, u64)>> {
    let mut all = BTreeMap::new();
    let at = now() - 6.0;
    let window = (at - began).ceil() as i64 + 5;
    for name in [
        "probe_success",
        "probe_duration_seconds",
        "up",
        "scrape_samples_scraped",
    ] {
        let q = format!("{name}[{window}s]");
        let ours = samples(port, &q, at);
        let theirs = samples(prom_port, &format!("{name}{selector}[{window}s]"), at);
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the same series"
        );
        for (series, points) in &ours {
            let got = &theirs[series];
            // Prometheus holds what was sent since the endpoint was first configured.
            let first = got.first().map_or(i64::MAX, |p| p.0);
            let expected: Vec<_> = points.iter().filter(|p| p.0 >= first).cloned().collect();
            assert!(
                expected.len() + 3 >= points.len(),
                "{series}: Prometheus starts with the first samples ({} of {})",
                expected.len(),
                points.len()
            );
            if expected != *got {
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|p| !got.contains(p))
                    .map(|p| p.0)
                    .collect();
                panic!(
                    "{series}: every sample, once, with its value: {} expected, {} received, missing at {missing:?}",
                    expected.len(),
                    got.len()
                );
            }
            // Before, during and after the outage, less the restart's own pause.
            // (The probe's own series: its copy on the scraped /metrics page comes and goes.)
            if !series.contains("exported_instance") {
                assert!(got.len() >= 10, "{series}: {} samples", got.len());
            }
            eprintln!("{series}: {} samples", got.len());
        }
        all.extend(theirs);
    }
    all
}

/// The metric names of `series` (keys of [`samples`]).
pub fn names(series: &BTreeMap<String, Vec<(i64, u64)>>) -> std::collections::BTreeSet<String> {
    series
        .keys()
        .filter_map(|k| {
            let v: serde_json::Value = serde_json::from_str(k).ok()?;
            Some(v["__name__"].as_str()?.to_string())
        })
        .collect()
}
