//! Reading a config file into a validated [`Config`], collecting every problem.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    Config, EmailConfig, GateConfig, GlobalConfig, InhibitConfig, JobConfig, LogConfig,
    MaintenanceConfig, PagerdutyConfig, ProbeConfig, PromqlExpr, ReceiverConfig, ReceiverKind,
    RelativeBound, RouteConfig, RuleConfig, ServerConfig, SlackConfig, StorageConfig,
    WebhookConfig, defaults,
};
use crate::alert::Matcher;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file it is in when it is not the config file (a rule file).
    pub file: Option<String>,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the section element (`probe "api-health"`) where it can.
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems.
    #[error("{}", format_problems(.origin, .problems))]
    Invalid {
        /// The file name, as shown in messages.
        origin: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn format_problems(origin: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let origin = p.file.as_deref().unwrap_or(origin);
        match p.position {
            Some((l, c)) => out.push_str(&format!("{origin}:{l}:{c}: {}", p.message)),
            None => out.push_str(&format!("{origin}: {}", p.message)),
        }
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        match self.position {
            Some((l, c)) => write!(f, "{l}:{c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Where the config is looked for: `-c`, else `$POSTFLIGHT_CONFIG`, else `./postflight.toml`,
/// else `/etc/postflight/postflight.toml`.
pub fn default_config_path(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("POSTFLIGHT_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("postflight.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/postflight/postflight.toml")
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&src, &path.display().to_string())
}

/// Validates config text; `origin` names it in messages.
pub fn load_str(src: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut ctx = Ctx {
        src,
        origin,
        problems: Vec::new(),
        raw_index: Default::default(),
    };
    let config = ctx.load();
    if ctx.problems.is_empty() {
        Ok(config)
    } else {
        ctx.problems.sort_by(|a, b| {
            (&a.file, a.position.unwrap_or((usize::MAX, 0)))
                .cmp(&(&b.file, b.position.unwrap_or((usize::MAX, 0))))
        });
        Err(ConfigError::Invalid {
            origin: origin.to_string(),
            problems: ctx.problems,
        })
    }
}

struct Ctx<'s> {
    src: &'s str,
    /// The config file's name: rule files are found relative to its directory.
    origin: &'s str,
    problems: Vec<Problem>,
    /// For each array section, the position in the file of each element that made it into
    /// the config (elements with errors are left out, so indices differ).
    raw_index: std::collections::HashMap<&'static str, Vec<usize>>,
}

/// The sections a config file may have, and whether each is an array of tables.
const SECTIONS: &[(&str, bool)] = &[
    ("server", false),
    ("storage", false),
    ("global", false),
    ("job", true),
    ("probe", true),
    ("rule", true),
    ("inhibit", true),
    ("route", true),
    ("receiver", true),
    ("gate", true),
    ("maintenance", true),
    ("log", true),
    ("remote_write", true),
    ("status_page", false),
    ("query", false),
];

impl<'s> Ctx<'s> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1);
        (line, before[before.len() - col..].chars().count() + 1)
    }

    fn problem(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let position = span.map(|s| self.position(s.start));
        self.problems.push(Problem {
            file: None,
            position,
            message: message.into(),
        });
    }

    fn load(&mut self) -> Config {
        let (root, syntax) = DeTable::parse_recoverable(self.src);
        if !syntax.is_empty() {
            for e in syntax {
                self.problem(e.span(), format!("TOML syntax: {}", e.message().trim()));
            }
            return Config::default();
        }
        let mut root = root.into_inner();
        self.interpolate_table(&mut root, "");

        let mut config = Config::default();
        let mut seen_names: HashSet<&str> = HashSet::new();
        for (key, value) in root.iter() {
            let name = key.get_ref().as_ref();
            let Some(&(_, is_array)) = SECTIONS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
                self.problem(
                    Some(key.span()),
                    format!(
                        "unknown section `{name}` (expected one of: {})",
                        known.join(", ")
                    ),
                );
                continue;
            };
            seen_names.insert(name);
            match (is_array, value.get_ref()) {
                (false, DeValue::Table(_)) => match name {
                    "server" => {
                        if let Some(v) = self.de::<ServerConfig>(value, "[server]") {
                            config.server = v
                        }
                    }
                    "storage" => {
                        if let Some(v) = self.de::<StorageConfig>(value, "[storage]") {
                            config.storage = v
                        }
                    }
                    "global" => {
                        if let Some(v) = self.de::<GlobalConfig>(value, "[global]") {
                            config.global = v
                        }
                    }
                    "status_page" => {
                        config.status_page =
                            self.de::<super::StatusPageConfig>(value, "[status_page]")
                    }
                    "query" => {
                        if let Some(v) = self.de::<super::QueryConfig>(value, "[query]") {
                            config.query = v
                        }
                    }
                    _ => unreachable!("SECTIONS lists only these as tables"),
                },
                (true, DeValue::Array(items)) => {
                    let section: &'static str = SECTIONS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or("", |(n, _)| n);
                    for (raw, item) in items.iter().enumerate() {
                        let label = element_label(name, item);
                        let ok = match name {
                            "job" => push(&mut config.jobs, self.de::<JobConfig>(item, &label)),
                            "probe" => push(
                                &mut config.probes,
                                self.de::<ProbeConfig>(item, &label).map(Arc::new),
                            ),
                            "rule" => push(&mut config.rules, self.de::<RuleConfig>(item, &label)),
                            "inhibit" => {
                                push(&mut config.inhibits, self.de::<InhibitConfig>(item, &label))
                            }
                            "route" => {
                                push(&mut config.routes, self.de::<RouteConfig>(item, &label))
                            }
                            "receiver" => push(&mut config.receivers, self.receiver(item, &label)),
                            "gate" => push(&mut config.gates, self.de::<GateConfig>(item, &label)),
                            "maintenance" => push(
                                &mut config.maintenance,
                                self.de::<MaintenanceConfig>(item, &label),
                            ),
                            "log" => push(&mut config.logs, self.de::<LogConfig>(item, &label)),
                            "remote_write" => push(
                                &mut config.remote_write,
                                self.de::<super::RemoteWriteConfig>(item, &label),
                            ),
                            _ => unreachable!("SECTIONS lists only these as arrays"),
                        };
                        if ok {
                            self.raw_index.entry(section).or_default().push(raw);
                        }
                    }
                }
                (true, _) => self.problem(
                    Some(value.span()),
                    format!("`{name}` must be an array of tables: write [[{name}]]"),
                ),
                (false, _) => self.problem(
                    Some(value.span()),
                    format!("`{name}` must be a table: write [{name}]"),
                ),
            }
        }
        self.cross_check(&root, &mut config);
        self.rule_files(&root, &mut config);
        config.origin = self.origin.to_string();
        config
    }

    /// Loads the rule files `[global] rule_files` names, relative to the config file.
    fn rule_files(&mut self, root: &DeTable<'_>, config: &mut Config) {
        if config.global.rule_files.is_empty() {
            return;
        }
        let span = root.get("global").and_then(|g| match g.get_ref() {
            DeValue::Table(t) => t.get("rule_files").map(|v| v.span()),
            _ => None,
        });
        let base = Path::new(self.origin)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let (files, missing, warnings) =
            super::rule_files::expand(&base, &config.global.rule_files);
        for m in missing {
            self.problem(span.clone(), m);
        }
        config.warnings.extend(warnings);
        let (groups, problems) = super::rule_files::load_all(&files);
        self.problems.extend(problems);
        config.rule_groups = groups;
    }

    /// Deserialises one table on its own, so its problems do not hide the next table's.
    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Option<T> {
        let DeValue::Table(t) = value.get_ref() else {
            self.problem(Some(value.span()), format!("{label}: expected a table"));
            return None;
        };
        let table = Spanned::new(value.span(), t.clone());
        match T::deserialize(toml::de::Deserializer::from(table)) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or(Some(value.span()));
                self.problem(span, format!("{label}: {}", e.message().trim()));
                None
            }
        }
    }

    fn receiver(&mut self, item: &Spanned<DeValue<'_>>, label: &str) -> Option<ReceiverConfig> {
        let DeValue::Table(t) = item.get_ref() else {
            self.problem(Some(item.span()), format!("{label}: expected a table"));
            return None;
        };
        let mut t = t.clone();
        let take_str = |t: &mut DeTable<'_>,
                        key: &str|
         -> Result<Option<(String, Range<usize>)>, Range<usize>> {
            match t.remove(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::String(s) => Ok(Some((s.to_string(), v.span()))),
                    _ => Err(v.span()),
                },
            }
        };
        let name = match take_str(&mut t, "name") {
            Ok(Some((n, _))) => n,
            Ok(None) => {
                self.problem(Some(item.span()), format!("{label}: missing field `name`"));
                return None;
            }
            Err(span) => {
                self.problem(Some(span), format!("{label}: `name` must be a string"));
                return None;
            }
        };
        let (kind, kind_span) = match take_str(&mut t, "type") {
            Ok(Some(k)) => k,
            Ok(None) => {
                self.problem(
                    Some(item.span()),
                    format!(
                        "{label}: missing field `type` ({})",
                        super::RECEIVER_TYPES.join(", ")
                    ),
                );
                return None;
            }
            Err(span) => {
                self.problem(Some(span), format!("{label}: `type` must be a string"));
                return None;
            }
        };
        let mut send_resolved = true;
        match t
            .remove("send_resolved")
            .map(|v| (v.get_ref().as_bool(), v.span()))
        {
            None => {}
            Some((Some(b), _)) => send_resolved = b,
            Some((None, span)) => self.problem(
                Some(span),
                format!("{label}: `send_resolved` must be true or false"),
            ),
        }
        let mut timeout = defaults::receiver_timeout().get();
        match take_str(&mut t, "timeout") {
            Ok(None) => {}
            Ok(Some((s, span))) => match super::parse_duration(&s) {
                Ok(d) => timeout = d,
                Err(e) => self.problem(Some(span), format!("{label}: timeout: {e}")),
            },
            Err(span) => self.problem(
                Some(span),
                format!("{label}: `timeout` must be a duration string"),
            ),
        }
        let rest = Spanned::new(item.span(), DeValue::Table(t));
        let kind = match kind.as_str() {
            "slack" => ReceiverKind::Slack(self.de::<SlackConfig>(&rest, label)?),
            "email" => ReceiverKind::Email(self.de::<EmailConfig>(&rest, label)?),
            "webhook" => ReceiverKind::Webhook(self.de::<WebhookConfig>(&rest, label)?),
            "pagerduty" => ReceiverKind::Pagerduty(self.de::<PagerdutyConfig>(&rest, label)?),
            "teams" => ReceiverKind::Teams(self.de::<super::TeamsConfig>(&rest, label)?),
            "discord" => ReceiverKind::Discord(self.de::<super::DiscordConfig>(&rest, label)?),
            "telegram" => ReceiverKind::Telegram(self.de::<super::TelegramConfig>(&rest, label)?),
            "opsgenie" => ReceiverKind::Opsgenie(self.de::<super::OpsgenieConfig>(&rest, label)?),
            "googlechat" => {
                ReceiverKind::Googlechat(self.de::<super::GooglechatConfig>(&rest, label)?)
            }
            "ntfy" => ReceiverKind::Ntfy(self.de::<super::NtfyConfig>(&rest, label)?),
            "alertmanager" => {
                ReceiverKind::Alertmanager(self.de::<super::AlertmanagerConfig>(&rest, label)?)
            }
            other => {
                self.problem(
                    Some(kind_span),
                    format!(
                        "{label}: unknown receiver type {other:?} (expected one of: {})",
                        super::RECEIVER_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        Some(ReceiverConfig {
            name,
            send_resolved,
            timeout,
            kind,
        })
    }

    /// Replaces `${VAR}` and `${file:PATH}` in every string value; `$${` is a literal `${`.
    fn interpolate_table(&mut self, t: &mut DeTable<'_>, path: &str) {
        for (k, v) in t.iter_mut() {
            let key: &str = k.get_ref().as_ref();
            let path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            self.interpolate_value(v, &path);
        }
    }

    fn interpolate_value(&mut self, v: &mut Spanned<DeValue<'_>>, path: &str) {
        let span = v.span();
        match v.get_mut() {
            DeValue::String(s) if s.contains('$') => match interpolate(s) {
                Ok(new) => *s = Cow::Owned(new),
                Err(msg) => self.problem(Some(span), format!("{path}: {msg}")),
            },
            DeValue::Array(a) => {
                for (i, item) in a.iter_mut().enumerate() {
                    self.interpolate_value(item, &format!("{path}[{i}]"));
                }
            }
            DeValue::Table(t) => self.interpolate_table(t, path),
            _ => {}
        }
    }

    /// Checks between sections: unique names, references to receivers, and what serde cannot
    /// see. Spans come from the raw tree.
    fn cross_check(&mut self, root: &DeTable<'_>, config: &mut Config) {
        let raw_index = std::mem::take(&mut self.raw_index);
        let eval = config.global.evaluation_interval.get();
        for r in &mut config.receivers {
            if let ReceiverKind::Alertmanager(c) = &mut r.kind {
                c.evaluation_interval = eval;
                if c.urls.is_empty() {
                    self.problem(
                        None,
                        format!(
                            "receiver {:?}: urls must name at least one Alertmanager",
                            r.name
                        ),
                    );
                }
                for u in &c.urls {
                    let ok = reqwest::Url::parse(u)
                        .is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.has_host());
                    if !ok {
                        self.problem(None, format!("receiver {:?}: url {u:?} must be an Alertmanager's http:// or https:// base URL", r.name));
                    }
                }
            }
        }
        let span_of = |section: &str, idx: usize, key: &str| -> Option<Range<usize>> {
            let idx = *raw_index.get(section)?.get(idx)?;
            let arr = root.get(section)?;
            let DeValue::Array(items) = arr.get_ref() else {
                return None;
            };
            let item = items.get(idx)?;
            let DeValue::Table(t) = item.get_ref() else {
                return Some(item.span());
            };
            Some(t.get(key).map_or(item.span(), |v| v.span()))
        };
        if config.storage.head_window.get() < std::time::Duration::from_secs(60) {
            let span = root.get("storage").and_then(|t| match t.get_ref() {
                DeValue::Table(t) => t.get("head_window").map(|v| v.span()),
                _ => None,
            });
            self.problem(span, "storage: head_window must be at least 1m".to_string());
        }
        let receivers: HashSet<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();

        let dup = |problems: &mut Vec<(Option<Range<usize>>, String)>,
                   section: &str,
                   key: &str,
                   names: Vec<&str>| {
            let mut seen = HashSet::new();
            for (i, n) in names.into_iter().enumerate() {
                if !seen.insert(n) {
                    problems.push((
                        span_of(section, i, key),
                        format!("duplicate {section} {key} {n:?}"),
                    ));
                }
            }
        };
        let mut found: Vec<(Option<Range<usize>>, String)> = Vec::new();
        dup(
            &mut found,
            "job",
            "name",
            config.jobs.iter().map(|j| j.name.as_str()).collect(),
        );
        dup(
            &mut found,
            "probe",
            "name",
            config.probes.iter().map(|p| p.name.as_str()).collect(),
        );
        dup(
            &mut found,
            "receiver",
            "name",
            config.receivers.iter().map(|r| r.name.as_str()).collect(),
        );
        dup(
            &mut found,
            "gate",
            "job",
            config.gates.iter().map(|g| g.job.as_str()).collect(),
        );
        dup(
            &mut found,
            "remote_write",
            "url",
            config.remote_write.iter().map(|w| w.url.as_str()).collect(),
        );
        for (i, w) in config.remote_write.iter().enumerate() {
            let ok = reqwest::Url::parse(&w.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                found.push((
                    span_of("remote_write", i, "url"),
                    "remote_write: url must be the receiver's http:// or https:// write URL".into(),
                ));
            }
            if !(1..=64).contains(&w.shards) {
                found.push((
                    span_of("remote_write", i, "shards"),
                    format!(
                        "remote_write: shards must be between 1 and 64, not {}",
                        w.shards
                    ),
                ));
            }
            if w.max_samples_per_send == 0 {
                found.push((
                    span_of("remote_write", i, "max_samples_per_send"),
                    "remote_write: max_samples_per_send must be at least 1".into(),
                ));
            }
        }

        dup(
            &mut found,
            "maintenance",
            "name",
            config.maintenance.iter().map(|m| m.name.as_str()).collect(),
        );
        for (i, m) in config.maintenance.iter().enumerate() {
            if m.matchers.iter().all(|m| m.matches_value("")) {
                found.push((
                    span_of("maintenance", i, "matchers"),
                    format!(
                        "maintenance {:?}: at least one matcher must not match the empty string (a window must not mute everything)",
                        m.name
                    ),
                ));
            }
        }

        dup(
            &mut found,
            "log",
            "name",
            config.logs.iter().map(|l| l.name.as_str()).collect(),
        );
        for (i, l) in config.logs.iter().enumerate() {
            for (key, msg) in log_problems(l) {
                found.push((span_of("log", i, key), format!("log {:?}: {msg}", l.name)));
            }
        }

        for (i, route) in config.routes.iter().enumerate() {
            if route.receivers.is_empty() {
                found.push((
                    span_of("route", i, "receivers"),
                    "route has no receivers".into(),
                ));
            }
            for r in &route.receivers {
                if !receivers.contains(r.as_str()) {
                    found.push((
                        span_of("route", i, "receivers"),
                        format!("route refers to receiver {r:?}, which is not defined"),
                    ));
                }
            }
        }
        for (i, gate) in config.gates.iter().enumerate() {
            let label = format!("gate for job {:?}", gate.job);
            for r in &gate.notify {
                if !receivers.contains(r.as_str()) {
                    found.push((
                        span_of("gate", i, "notify"),
                        format!("{label}: notify refers to receiver {r:?}, which is not defined"),
                    ));
                }
            }
            if gate.check.is_empty() {
                found.push((
                    span_of("gate", i, "job"),
                    format!("{label}: has no [[gate.check]]"),
                ));
            }
            for c in &gate.check {
                for e in std::iter::once(&c.expr).chain(c.guard.as_ref()) {
                    if let Err(e) = crate::promql::check_supported(&e.expr) {
                        found.push((
                            span_of("gate", i, "check"),
                            format!("{label}: check {:?}: {e}", c.name),
                        ));
                    }
                }
                if c.max.is_none() && c.min.is_none() && c.max_increase.is_none() {
                    found.push((
                        span_of("gate", i, "check"),
                        format!(
                            "{label}: check {:?} has no bound (max, min or max_increase)",
                            c.name
                        ),
                    ));
                }
            }
            if gate.interval.get().is_zero() {
                found.push((
                    span_of("gate", i, "interval"),
                    format!("{label}: interval must be > 0"),
                ));
            }
            if gate.consecutive_failures == 0 {
                found.push((
                    span_of("gate", i, "consecutive_failures"),
                    format!("{label}: consecutive_failures must be at least 1"),
                ));
            }
        }
        for (i, r) in config.receivers.iter().enumerate() {
            for (key, msg) in receiver_problems(r) {
                found.push((
                    span_of("receiver", i, key),
                    format!("receiver {:?}: {msg}", r.name),
                ));
            }
        }
        for (i, p) in config.probes.iter().enumerate() {
            let label = format!("probe {:?}", p.name);
            let scheme = p.url.split_once("://").map(|(s, _)| s);
            match scheme {
                Some("http" | "https") => {
                    if let Err(e) = p.url.parse::<hyper::Uri>() {
                        found.push((
                            span_of("probe", i, "url"),
                            format!("{label}: invalid url: {e}"),
                        ));
                    }
                }
                Some("tcp") => {
                    let rest = &p.url["tcp://".len()..];
                    if rest
                        .rsplit_once(':')
                        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
                    {
                        found.push((
                            span_of("probe", i, "url"),
                            format!("{label}: tcp url must be tcp://host:port"),
                        ));
                    }
                }
                _ => found.push((
                    span_of("probe", i, "url"),
                    format!("{label}: url must start with http://, https:// or tcp://"),
                )),
            }
            if p.cert_min_days.is_some() && scheme != Some("https") {
                found.push((
                    span_of("probe", i, "cert_min_days"),
                    format!("{label}: cert_min_days needs an https url"),
                ));
            }
            if p.failure_threshold == 0 || p.success_threshold == 0 {
                found.push((
                    span_of("probe", i, "name"),
                    format!("{label}: thresholds must be at least 1"),
                ));
            }
            if p.timeout(&config.global) > p.interval(&config.global) {
                config.warnings.push(format!("{label}: timeout is longer than the interval; probes will not overlap, some runs are skipped"));
            }
        }
        for (i, p) in config.probes.iter().enumerate() {
            if let Some(slo) = p.slo
                && !(slo > 0.0 && slo < 100.0)
            {
                found.push((
                    span_of("probe", i, "slo"),
                    format!(
                        "probe {:?}: slo is a percentage above 0 and below 100, like 99.9",
                        p.name
                    ),
                ));
            }
        }
        if let Some(page) = &config.status_page {
            let probes: HashSet<&str> = config.probes.iter().map(|p| p.name.as_str()).collect();
            for (gi, g) in page.groups.iter().enumerate() {
                for (pi, name) in g.probes.iter().enumerate() {
                    if !probes.contains(name.as_str()) {
                        found.push((
                            status_probe_span(root, gi, pi),
                            format!(
                                "status_page group {:?}: probe {name:?} is not defined",
                                g.name
                            ),
                        ));
                    }
                }
            }
        }
        for (i, r) in config.rules.iter().enumerate() {
            for (key, msg) in super::rule_files::rule_problems(r, true) {
                found.push((
                    span_of("rule", i, key),
                    format!("rule {:?}: {msg}", r.name()),
                ));
            }
        }
        for (i, j) in config.jobs.iter().enumerate() {
            for t in &j.targets {
                if t.contains('/')
                    || t.rsplit_once(':')
                        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    found.push((
                        span_of("job", i, "targets"),
                        format!("job {:?}: target {t:?} must be host:port", j.name),
                    ));
                }
            }
            if j.timeout(&config.global) > j.interval(&config.global) {
                found.push((
                    span_of("job", i, "scrape_timeout"),
                    format!(
                        "job {:?}: scrape_timeout is longer than scrape_interval",
                        j.name
                    ),
                ));
            }
        }
        if config.routes.is_empty() && !config.receivers.is_empty() {
            config
                .warnings
                .push("no [[route]]: alerts will not be sent to any receiver".into());
        } else if !config.routes.is_empty() && !config.routes.iter().any(|r| r.matchers.is_empty())
        {
            config.warnings.push(
                "no catch-all [[route]] (one without matchers): alerts that match no route are only logged and counted"
                    .into(),
            );
        }
        for (span, msg) in found {
            self.problem(span, msg);
        }
    }
}

/// What serde cannot see in a receiver's settings: URLs that are not http(s), a token that
/// would change the request's path. Each problem names its key; messages never quote a secret.
fn receiver_problems(r: &ReceiverConfig) -> Vec<(&'static str, String)> {
    fn http_url(url: &str) -> Option<reqwest::Url> {
        reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    }
    // The URL is a secret: the message says what is wrong, not what was written.
    let secret_url = |url: &str, what: &str| {
        http_url(url).is_none().then(|| {
            (
                "url",
                format!("url must be the {what}'s http:// or https:// URL"),
            )
        })
    };
    let base_url = |url: &str, what: &str| {
        http_url(url).is_none().then(|| {
            (
                "url",
                format!("url {url:?} must be the {what}'s http:// or https:// base URL"),
            )
        })
    };
    let mut out = Vec::new();
    match &r.kind {
        ReceiverKind::Teams(c) => out.extend(secret_url(c.url.expose(), "Workflows webhook")),
        ReceiverKind::Discord(c) => out.extend(secret_url(c.url.expose(), "webhook")),
        ReceiverKind::Googlechat(c) => out.extend(secret_url(c.url.expose(), "webhook")),
        ReceiverKind::Ntfy(c) => match http_url(c.url.expose()) {
            None => out.extend(secret_url("", "topic")),
            Some(u) if u.path().trim_matches('/').is_empty() => out.push((
                "url",
                "url must name the topic, as in https://ntfy.sh/my-alerts".to_string(),
            )),
            Some(_) => {}
        },
        ReceiverKind::Telegram(c) => {
            let token = c.bot_token.expose();
            if token.is_empty()
                || token.contains(['/', '?', '#', '%'])
                || token.chars().any(char::is_whitespace)
            {
                out.push((
                    "bot_token",
                    "bot_token must be the token @BotFather gave, like 123456:ABC-DEF (no '/', '?', '#', '%' or spaces)".to_string(),
                ));
            }
            out.extend(base_url(&c.url, "Bot API"));
        }
        ReceiverKind::Opsgenie(c) => {
            if c.api_key.expose().trim().is_empty() {
                out.push(("api_key", "api_key must not be empty".to_string()));
            }
            out.extend(base_url(&c.url, "Alert API"));
        }
        ReceiverKind::Slack(_)
        | ReceiverKind::Email(_)
        | ReceiverKind::Webhook(_)
        | ReceiverKind::Alertmanager(_)
        | ReceiverKind::Pagerduty(_) => {}
    }
    out
}

/// What serde cannot see in a `[[log]]`: one source (a glob or a unit, not both), a glob
/// that parses, match names unique within the log.
fn log_problems(l: &LogConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match (&l.path, &l.journal_unit) {
        (Some(_), Some(_)) => out.push((
            "journal_unit",
            "set either path (files) or journal_unit (journald), not both".to_string(),
        )),
        (None, None) => out.push((
            "name",
            "needs path (a glob of files) or journal_unit (a systemd unit)".to_string(),
        )),
        (Some(p), None) => {
            if let Err(e) = glob::Pattern::new(p) {
                out.push(("path", format!("invalid glob {p:?}: {}", e.msg)));
            } else if !p.starts_with('/') {
                out.push((
                    "path",
                    format!("path {p:?} must be absolute (the daemon's working directory is not the config's)"),
                ));
            }
            if l.journal_directory.is_some() {
                out.push((
                    "journal_directory",
                    "journal_directory needs journal_unit".to_string(),
                ));
            }
        }
        (None, Some(u)) => {
            if u.trim().is_empty() {
                out.push(("journal_unit", "journal_unit must not be empty".to_string()));
            }
            if l.format != super::LogFormat::Text {
                out.push((
                    "format",
                    "format applies to files; journald entries are read as they are".to_string(),
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for m in &l.matches {
        if !seen.insert(m.name.as_str()) {
            out.push(("match", format!("duplicate match name {:?}", m.name)));
        }
    }
    out
}

/// Where `[[status_page.group]]` number `group` names its probe number `probe`.
fn status_probe_span(root: &DeTable<'_>, group: usize, probe: usize) -> Option<Range<usize>> {
    let page = root.get("status_page")?;
    let DeValue::Table(page_t) = page.get_ref() else {
        return Some(page.span());
    };
    let groups = page_t.get("group")?;
    let DeValue::Array(groups_a) = groups.get_ref() else {
        return Some(groups.span());
    };
    let g = groups_a.get(group)?;
    let DeValue::Table(g_t) = g.get_ref() else {
        return Some(g.span());
    };
    let probes = g_t.get("probes")?;
    match probes.get_ref() {
        DeValue::Array(a) => a.get(probe).map(|p| p.span()).or(Some(probes.span())),
        _ => Some(probes.span()),
    }
}

/// Appends a successfully read element; tells whether there was one.
fn push<T>(v: &mut Vec<T>, item: Option<T>) -> bool {
    let ok = item.is_some();
    v.extend(item);
    ok
}

/// Names an array element in messages: `probe "api-health"`, `rule "HighErrorRate"`, or
/// `[[route]] #2` when it has no name.
fn element_label(section: &str, item: &Spanned<DeValue<'_>>) -> String {
    let key = match section {
        "rule" if matches!(item.get_ref(), DeValue::Table(t) if t.get("alert").is_none()) => {
            "record"
        }
        "rule" => "alert",
        "gate" => "job",
        _ => "name",
    };
    if let DeValue::Table(t) = item.get_ref()
        && let Some(DeValue::String(s)) = t.get(key).map(|v| v.get_ref())
    {
        let what = if section == "gate" {
            "gate for job"
        } else {
            section
        };
        return format!("{what} {s:?}");
    }
    format!("[[{section}]]")
}

/// Expands `${VAR}` and `${file:PATH}`; an unknown variable or unreadable file is an error,
/// never an empty string.
fn interpolate(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let reference = &r[..end];
            if let Some(path) = reference.strip_prefix("file:") {
                let content = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read ${{file:{path}}}: {e}"))?;
                out.push_str(content.strip_suffix('\n').unwrap_or(&content));
            } else {
                if reference.is_empty()
                    || !reference
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(format!("invalid variable reference ${{{reference}}}"));
                }
                let val = std::env::var(reference)
                    .map_err(|_| format!("environment variable {reference} is not set"))?;
                out.push_str(&val);
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub(super) fn de_promql<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PromqlExpr, D::Error> {
    let source = String::deserialize(d)?;
    parse_promql(&source).map_err(serde::de::Error::custom)
}

pub(super) fn de_promql_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<PromqlExpr>, D::Error> {
    let source = String::deserialize(d)?;
    parse_promql(&source)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_promql(source: &str) -> Result<PromqlExpr, String> {
    let expr = promql_parser::parser::parse(source).map_err(|e| format!("invalid PromQL: {e}"))?;
    Ok(PromqlExpr {
        source: source.to_string(),
        expr,
    })
}

pub(super) fn de_matchers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Matcher>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|m| Matcher::parse(m).map_err(serde::de::Error::custom))
        .collect()
}

pub(super) fn de_schedule<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<super::schedule::Schedule, D::Error> {
    let raw = String::deserialize(d)?;
    super::schedule::Schedule::parse(&raw).map_err(serde::de::Error::custom)
}

pub(super) fn de_zone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let raw = String::deserialize(d)?;
    super::schedule::parse_zone(&raw).map_err(serde::de::Error::custom)
}

pub(super) fn de_regex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<regex::Regex, D::Error> {
    let raw = String::deserialize(d)?;
    regex::Regex::new(&raw).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid regex: {}",
            crate::alert::one_line_regex_error(&e)
        ))
    })
}

/// A regex anchored at both ends, as Prometheus' relabelling anchors it.
pub(super) fn de_anchored_regex<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<regex::Regex, D::Error> {
    let raw = String::deserialize(d)?;
    regex::Regex::new(&format!("^(?:{raw})$")).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid regex: {}",
            crate::alert::one_line_regex_error(&e)
        ))
    })
}

pub(super) fn de_regexes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<regex::Regex>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|r| {
            regex::Regex::new(r).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid regex {r:?}: {}",
                    crate::alert::one_line_regex_error(&e)
                ))
            })
        })
        .collect()
}

pub(super) fn de_regex_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<regex::Regex>, D::Error> {
    let raw = String::deserialize(d)?;
    regex::Regex::new(&raw).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid regex: {}",
            crate::alert::one_line_regex_error(&e)
        ))
    })
}

/// A probe's `json` table, as a slice in path order: two checks take 112 bytes in one
/// allocation instead of a B-tree node of ~600 (a thousand probes hold them all the time).
pub(super) fn de_json_checks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Box<[(String, serde_json::Value)]>, D::Error> {
    let checks = std::collections::BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(checks.into_iter().collect())
}

pub(super) fn de_relative_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RelativeBound>, D::Error> {
    let raw = String::deserialize(d)?;
    parse_relative(&raw)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_relative(raw: &str) -> Result<RelativeBound, String> {
    let bad = || {
        format!(
            "invalid max_increase {raw:?}: write a percentage like \"10%\" or an absolute delta like \"+0.002\""
        )
    };
    let s = raw.trim();
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .trim_start_matches('+')
            .parse()
            .map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        Ok(RelativeBound::Percent(v / 100.0))
    } else if let Some(d) = s.strip_prefix('+') {
        let v: f64 = d.parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        Ok(RelativeBound::Delta(v))
    } else {
        Err(bad())
    }
}
