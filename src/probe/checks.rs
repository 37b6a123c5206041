//! The checks of an HTTP probe's answer, each giving the reason in the words of SPEC §2 when it
//! fails: `status 503, expected 200`, `latency 812ms, expected at most 500ms`,
//! `body does not contain "ok"`, `json database = "disconnected", expected "connected"`, ...
//!
//! Reasons never quote header values (they may be secrets) and quote body values only as the
//! JSON checks compare them, so an operator sees what the endpoint actually said.

use std::time::Duration;

use serde_json::Value;

use crate::config::{ProbeConfig, format_duration};

/// Checks the status code: `expect` lists the accepted codes, empty means any 2xx.
pub fn status(code: u16, expect: &[u16]) -> Result<(), String> {
    let ok = if expect.is_empty() {
        (200..300).contains(&code)
    } else {
        expect.contains(&code)
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "status {code}, expected {}",
            expected_codes(expect)
        ))
    }
}

/// `2xx`, `200`, `200 or 204`, `200, 201 or 204`.
fn expected_codes(expect: &[u16]) -> String {
    match expect {
        [] => "2xx".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let head: Vec<String> = init.iter().map(u16::to_string).collect();
            format!("{} or {last}", head.join(", "))
        }
    }
}

/// Checks the latency against `max_latency`. Durations are printed like the config writes them,
/// to the millisecond.
pub fn latency(took: Duration, max: Option<Duration>) -> Result<(), String> {
    match max {
        Some(max) if took > max => Err(format!(
            "latency {}, expected at most {}",
            format_duration(Duration::from_millis(took.as_millis() as u64)),
            format_duration(max)
        )),
        _ => Ok(()),
    }
}

/// Runs the body checks of `cfg` (contains, regex, json) in that order; the first failure wins.
pub fn body(cfg: &ProbeConfig, body: &[u8]) -> Result<(), String> {
    if cfg.body_contains.is_none() && cfg.body_regex.is_none() && cfg.json.is_empty() {
        return Ok(());
    }
    // Borrowed when the body is UTF-8 (the usual case), so no copy.
    let text = String::from_utf8_lossy(body);
    if let Some(needle) = &cfg.body_contains
        && !text.contains(needle.as_str())
    {
        return Err(format!("body does not contain {needle:?}"));
    }
    if let Some(re) = &cfg.body_regex
        && !re.is_match(&text)
    {
        return Err(format!("body does not match /{}/", re.as_str()));
    }
    if !cfg.json.is_empty() {
        let doc: Value =
            serde_json::from_slice(body).map_err(|_| "body is not JSON".to_string())?;
        for (path, want) in &cfg.json {
            match lookup(&doc, path) {
                None => return Err(format!("json {path} missing")),
                Some(got) if !json_eq(got, want) => {
                    return Err(format!("json {path} = {}, expected {want}", short(got)));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The value as compact JSON, cut at 100 characters: a reason is one line in a page, not a dump
/// of whatever object the endpoint returned.
fn short(v: &Value) -> String {
    const MAX: usize = 100;
    let s = v.to_string();
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Follows a dot path into a JSON document: each segment is an object key, or an array index
/// when the value at that point is an array. An empty path is the whole document.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// JSON equality where numbers compare by value: the TOML integer `1` equals the JSON `1.0`.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Checks the certificate expiry against `cert_min_days`; `now` and `not_after` in Unix seconds.
/// Days are whole days left, rounded down.
pub fn cert_days(not_after: i64, now: i64, min_days: u32) -> Result<(), String> {
    let days = (not_after - now).div_euclid(86_400);
    if days >= i64::from(min_days) {
        return Ok(());
    }
    let unit = if days == 1 { "day" } else { "days" };
    if days < 0 {
        Err(format!(
            "certificate expired {} {} ago, expected at least {min_days} days left",
            -days,
            if days == -1 { "day" } else { "days" }
        ))
    } else {
        Err(format!(
            "certificate expires in {days} {unit}, expected at least {min_days}"
        ))
    }
}

#[cfg(test)]
mod tests;
