//! Prometheus rule files (`[global] rule_files`): YAML groups of alerting and recording rules,
//! read unchanged and checked as `promtool check rules` checks them, every problem with its
//! `file:line:column`.
//!
//! The YAML is walked node by node (each node keeps its position) instead of deserialised, so
//! that an unknown field, a wrong type and a bad expression are all reported at once, each where
//! it is, as Prometheus' own `rulefmt` does over its YAML nodes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::load::Problem;
use super::{ConfigDuration, PromqlExpr, RuleConfig};

/// A group of rules: from a rule file, or the `[[rule]]` sections of the config file.
#[derive(Debug, Clone)]
pub struct RuleGroupConfig {
    /// The group's name, unique in its file.
    pub name: String,
    /// The file it comes from, as the rules API shows it.
    pub file: String,
    /// How often its rules are evaluated; `None` is `[global] evaluation_interval`.
    pub interval: Option<ConfigDuration>,
    /// The most alerts or series one rule of the group may produce; 0 is no limit.
    pub limit: u64,
    /// The rules, in the order they are evaluated.
    pub rules: Vec<RuleConfig>,
}

/// The fields a group may have.
const GROUP_FIELDS: &[&str] = &["name", "interval", "limit", "rules"];
/// The fields a rule may have.
const RULE_FIELDS: &[&str] = &[
    "record",
    "alert",
    "expr",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
];

/// The files `patterns` name, each pattern relative to `base` unless absolute: sorted matches
/// of each glob (`*`, `?` and `[...]` in any path component), in pattern order, each file once.
/// A pattern without wildcards names a file that must exist (a problem); a glob that matches
/// nothing is a warning.
pub fn expand(base: &Path, patterns: &[String]) -> (Vec<PathBuf>, Vec<String>, Vec<String>) {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for p in patterns {
        let full = base.join(p);
        if !has_meta(p) {
            if full.is_file() {
                files.push(full);
            } else {
                problems.push(format!("rule_files: {} does not exist", full.display()));
            }
            continue;
        }
        let mut matched = vec![PathBuf::new()];
        let mut comps = full.components().peekable();
        while let Some(c) = comps.next() {
            let text = c.as_os_str().to_string_lossy();
            let last = comps.peek().is_none();
            let mut next = Vec::new();
            for dir in &matched {
                if !has_meta(&text) {
                    next.push(dir.join(c.as_os_str()));
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                }) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(&text, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
            if last {
                next.retain(|f| f.is_file());
            }
            matched = next;
        }
        if matched.is_empty() {
            warnings.push(format!("rule_files: {} matches no file", full.display()));
        }
        for f in matched {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    (files, problems, warnings)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`/`[^a]`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // A name starting with a dot is matched only by a pattern starting with one.
    if n.first() == Some(&'.') && p.first() != Some(&'.') {
        return false;
    }
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        let mut i = 1;
        let negate = matches!(p.get(1), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let start = i;
        while i < p.len() && (p[i] != ']' || i == start) {
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((hit != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(p, n.first().copied().unwrap_or('\0'))) {
                (Some(_), Some((true, used))) => go(&p[used..], &n[1..]),
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// Reads every rule file; problems carry their file.
pub fn load_all(files: &[PathBuf]) -> (Vec<RuleGroupConfig>, Vec<Problem>) {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        match std::fs::read_to_string(f) {
            Ok(src) => {
                let (g, p) = parse(&src, &shown);
                groups.extend(g);
                problems.extend(p);
            }
            Err(e) => problems.push(Problem {
                file: Some(shown.clone()),
                position: None,
                message: format!("cannot read rule file: {e}"),
            }),
        }
    }
    (groups, problems)
}

/// Parses and checks one rule file's text; `file` names it in the groups and the problems.
pub fn parse(src: &str, file: &str) -> (Vec<RuleGroupConfig>, Vec<Problem>) {
    let mut ctx = Ctx {
        file,
        problems: Vec::new(),
    };
    let groups = ctx.file(src);
    (groups, ctx.problems)
}

struct Ctx<'f> {
    file: &'f str,
    problems: Vec<Problem>,
}

/// 1-based line and column of a node.
fn pos(n: &MarkedYaml<'_>) -> (usize, usize) {
    (n.span.start.line(), n.span.start.col() + 1)
}

/// The node's value as text when it is a scalar (numbers and booleans as written in YAML's
/// core schema, as Prometheus takes them into its string fields); `None` for null.
fn scalar_text(n: &MarkedYaml<'_>) -> Result<Option<String>, ()> {
    match &n.data {
        YamlData::Value(Scalar::String(s)) => Ok(Some(s.to_string())),
        YamlData::Value(Scalar::Integer(i)) => Ok(Some(i.to_string())),
        YamlData::Value(Scalar::FloatingPoint(f)) => Ok(Some(f.to_string())),
        YamlData::Value(Scalar::Boolean(b)) => Ok(Some(b.to_string())),
        YamlData::Value(Scalar::Null) => Ok(None),
        YamlData::Representation(s, _, _) => Ok(Some(s.to_string())),
        _ => Err(()),
    }
}

fn kind(n: &MarkedYaml<'_>) -> &'static str {
    match &n.data {
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Value(Scalar::Null) => "null",
        _ => "a scalar",
    }
}

impl Ctx<'_> {
    fn problem(&mut self, at: Option<(usize, usize)>, message: String) {
        self.problems.push(Problem {
            file: Some(self.file.to_string()),
            position: at,
            message,
        });
    }

    fn file(&mut self, src: &str) -> Vec<RuleGroupConfig> {
        let docs = match MarkedYaml::load_from_str(src) {
            Ok(d) => d,
            Err(e) => {
                let m = e.marker();
                self.problem(
                    Some((m.line(), m.col() + 1)),
                    format!("YAML syntax: {}", e.info()),
                );
                return Vec::new();
            }
        };
        let Some(root) = docs.first() else {
            return Vec::new();
        };
        if docs.len() > 1 {
            self.problem(
                docs.get(1).map(pos),
                "a rule file holds one YAML document".into(),
            );
        }
        let root_map = match &root.data {
            YamlData::Mapping(m) => m,
            // An empty file has no groups, as in Prometheus.
            YamlData::Value(Scalar::Null) | YamlData::BadValue => return Vec::new(),
            _ => {
                self.problem(
                    Some(pos(root)),
                    format!("expected a mapping with `groups`, found {}", kind(root)),
                );
                return Vec::new();
            }
        };
        let mut groups_node = None;
        for (k, v) in root_map {
            match scalar_text(k) {
                Ok(Some(key)) if key == "groups" => groups_node = Some(v),
                _ => self.unknown(k, "the rule file", &["groups"]),
            }
        }
        let Some(groups_node) = groups_node else {
            return Vec::new();
        };
        let items = match &groups_node.data {
            YamlData::Sequence(s) => s.as_slice(),
            YamlData::Value(Scalar::Null) => &[],
            _ => {
                self.problem(
                    Some(pos(groups_node)),
                    format!("groups: expected a list, found {}", kind(groups_node)),
                );
                return Vec::new();
            }
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for g in items {
            if let Some(group) = self.group(g, &mut seen) {
                out.push(group);
            }
        }
        out
    }

    fn unknown(&mut self, key: &MarkedYaml<'_>, what: &str, allowed: &[&str]) {
        let name = scalar_text(key).ok().flatten().unwrap_or_default();
        self.problem(
            Some(pos(key)),
            format!(
                "field {name:?} not found in {what} (allowed: {})",
                allowed.join(", ")
            ),
        );
    }

    /// The fields of a mapping node by name, unknown ones reported.
    fn fields<'n, 'i>(
        &mut self,
        n: &'n MarkedYaml<'i>,
        what: &str,
        allowed: &[&str],
    ) -> Option<BTreeMap<String, (&'n MarkedYaml<'i>, &'n MarkedYaml<'i>)>> {
        let YamlData::Mapping(m) = &n.data else {
            self.problem(
                Some(pos(n)),
                format!("{what}: expected a mapping, found {}", kind(n)),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in m {
            match scalar_text(k) {
                Ok(Some(key)) if allowed.contains(&key.as_str()) => {
                    out.insert(key, (k, v));
                }
                _ => self.unknown(k, what, allowed),
            }
        }
        Some(out)
    }

    fn string(&mut self, v: &MarkedYaml<'_>, what: &str) -> Option<String> {
        match scalar_text(v) {
            Ok(s) => Some(s.unwrap_or_default()),
            Err(()) => {
                self.problem(
                    Some(pos(v)),
                    format!("{what}: expected a string, found {}", kind(v)),
                );
                None
            }
        }
    }

    fn duration(&mut self, v: &MarkedYaml<'_>, what: &str) -> Option<ConfigDuration> {
        let s = self.string(v, what)?;
        if s.is_empty() {
            return Some(ConfigDuration::default());
        }
        match super::parse_duration(&s) {
            Ok(d) => Some(ConfigDuration(d)),
            Err(e) => {
                self.problem(Some(pos(v)), format!("{what}: {e}"));
                None
            }
        }
    }

    fn string_map(&mut self, v: &MarkedYaml<'_>, what: &str) -> Option<BTreeMap<String, String>> {
        match &v.data {
            YamlData::Value(Scalar::Null) => Some(BTreeMap::new()),
            YamlData::Mapping(m) => {
                let mut out = BTreeMap::new();
                let mut ok = true;
                for (k, val) in m {
                    let key = self.string(k, what);
                    let value = self.string(val, what);
                    match (key, value) {
                        (Some(k), Some(v)) => {
                            out.insert(k, v);
                        }
                        _ => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.problem(
                    Some(pos(v)),
                    format!("{what}: expected a mapping, found {}", kind(v)),
                );
                None
            }
        }
    }

    fn group(&mut self, g: &MarkedYaml<'_>, seen: &mut HashSet<String>) -> Option<RuleGroupConfig> {
        let at = pos(g);
        let fields = self.fields(g, "group", GROUP_FIELDS)?;
        let name = match fields.get("name") {
            Some((_, v)) => self.string(v, "group name").unwrap_or_default(),
            None => String::new(),
        };
        if name.is_empty() {
            self.problem(Some(at), "Groupname must not be empty".into());
        } else if !seen.insert(name.clone()) {
            self.problem(
                Some(at),
                format!("groupname: {name:?} is repeated in the same file"),
            );
        }
        let label = format!("group {name:?}");
        let mut ok = true;
        let interval = match fields.get("interval") {
            Some((_, v)) => match self.duration(v, &format!("{label}: interval")) {
                Some(d) if d.get().is_zero() => None,
                Some(d) => Some(d),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let limit = match fields.get("limit") {
            Some((_, v)) => match &v.data {
                YamlData::Value(Scalar::Integer(i)) if *i >= 0 => *i as u64,
                YamlData::Value(Scalar::Null) => 0,
                _ => {
                    self.problem(
                        Some(pos(v)),
                        format!("{label}: limit must be a whole number of 0 or more"),
                    );
                    ok = false;
                    0
                }
            },
            None => 0,
        };
        let mut rules = Vec::new();
        if let Some((_, v)) = fields.get("rules") {
            match &v.data {
                YamlData::Sequence(items) => {
                    for (i, r) in items.iter().enumerate() {
                        match self.rule(r, &name, i + 1) {
                            Some(rule) => rules.push(rule),
                            None => ok = false,
                        }
                    }
                }
                YamlData::Value(Scalar::Null) => {}
                _ => {
                    self.problem(
                        Some(pos(v)),
                        format!("{label}: rules: expected a list, found {}", kind(v)),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| RuleGroupConfig {
            name,
            file: self.file.to_string(),
            interval,
            limit,
            rules,
        })
    }

    fn rule(&mut self, r: &MarkedYaml<'_>, group: &str, index: usize) -> Option<RuleConfig> {
        let at = pos(r);
        let fields = self.fields(r, &format!("group {group:?}, rule {index}"), RULE_FIELDS)?;
        let before = self.problems.len();
        let text = |ctx: &mut Self, key: &str| -> (String, Option<(usize, usize)>) {
            match fields.get(key) {
                Some((_, v)) => (
                    ctx.string(v, &format!("group {group:?}, rule {index}: {key}"))
                        .unwrap_or_default(),
                    Some(pos(v)),
                ),
                None => (String::new(), None),
            }
        };
        let (alert, alert_at) = text(self, "alert");
        let (record, record_at) = text(self, "record");
        let (expr_src, expr_at) = text(self, "expr");
        let name = if alert.is_empty() { &record } else { &alert };
        let label = format!("group {group:?}, rule {index}, {name:?}");
        let dur = |ctx: &mut Self, key: &str| match fields.get(key) {
            Some((_, v)) => ctx.duration(v, &format!("{label}: {key}")),
            None => Some(ConfigDuration::default()),
        };
        let for_ = dur(self, "for").unwrap_or_default();
        let keep_firing_for = dur(self, "keep_firing_for").unwrap_or_default();
        let map = |ctx: &mut Self, key: &str| match fields.get(key) {
            Some((_, v)) => ctx
                .string_map(v, &format!("{label}: {key}"))
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let labels = map(self, "labels");
        let annotations = map(self, "annotations");
        let expr = if expr_src.is_empty() {
            None
        } else {
            match promql_parser::parser::parse(&expr_src) {
                Ok(e) => Some(PromqlExpr {
                    source: expr_src.clone(),
                    expr: e,
                }),
                Err(e) => {
                    self.problem(expr_at, format!("{label}: could not parse expression: {e}"));
                    None
                }
            }
        };
        let rule = RuleConfig {
            alert,
            record,
            expr: expr.clone().unwrap_or_else(|| PromqlExpr {
                source: String::new(),
                expr: promql_parser::parser::Expr::NumberLiteral(
                    promql_parser::parser::NumberLiteral { val: 0.0 },
                ),
            }),
            for_,
            keep_firing_for,
            labels,
            annotations,
        };
        for (field, msg) in rule_problems(&rule, expr.is_some() || !expr_src.is_empty()) {
            let place = match field {
                "record" => record_at,
                "alert" => alert_at,
                "expr" => expr_at,
                _ => fields.get(field).map(|(k, _)| pos(k)),
            };
            self.problem(place.or(Some(at)), format!("{label}: {msg}"));
        }
        (self.problems.len() == before && expr.is_some()).then_some(rule)
    }
}

/// What Prometheus (`rulefmt`, `promtool check rules`) refuses in a rule, and what postflight
/// cannot evaluate, each with the field it is about. `has_expr` is false when `expr` is
/// missing or empty.
pub fn rule_problems(r: &RuleConfig, has_expr: bool) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    match (r.alert.is_empty(), r.record.is_empty()) {
        (false, false) => out.push((
            "record",
            "only one of 'record' and 'alert' must be set".into(),
        )),
        (true, true) => out.push(("record", "one of 'record' or 'alert' must be set".into())),
        _ => {}
    }
    if !has_expr {
        out.push(("expr", "field 'expr' must be set in rule".into()));
    } else if let Err(e) = crate::promql::check_supported(&r.expr.expr) {
        out.push(("expr", e));
    }
    if !r.record.is_empty() {
        if !r.annotations.is_empty() {
            out.push((
                "record",
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if !r.for_.get().is_zero() {
            out.push(("record", "invalid field 'for' in recording rule".into()));
        }
        if !r.keep_firing_for.get().is_zero() {
            out.push((
                "record",
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if !valid_metric_name(&r.record) {
            out.push((
                "record",
                format!("invalid recording rule name: {}", r.record),
            ));
        }
    }
    for k in r.labels.keys() {
        if !valid_label_name(k) || k == crate::series::METRIC_NAME {
            out.push(("labels", format!("invalid label name: {k}")));
        }
    }
    for k in r.annotations.keys() {
        if !valid_label_name(k) {
            out.push(("annotations", format!("invalid annotation name: {k}")));
        }
    }
    if r.record.is_empty() {
        for (what, map) in [("labels", &r.labels), ("annotations", &r.annotations)] {
            for (k, v) in map {
                if let Err(e) = crate::template::Template::parse(v) {
                    out.push((what, format!("{what}.{k}: template: {e}")));
                }
            }
        }
    }
    out
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus' metric names.
pub fn valid_metric_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus' label names.
pub fn valid_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
