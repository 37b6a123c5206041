//! The configuration file (SPEC §2): typed sections, defaults in one place, and a loader that
//! reports every problem with its `line:column`.
//!
//! Loading goes in four steps (see the `load` module): TOML syntax (with recovery, so several syntax
//! errors are reported at once), `${VAR}`/`${file:PATH}` interpolation of every string,
//! deserialisation of each section and of each `[[...]]` element on its own (so one bad probe
//! does not hide the problems of the next), and cross-checks between sections.

mod current;
mod duration;
mod load;
mod rule_files;
pub mod schedule;
mod secret;

pub use current::{Current, ReloadRequest, Reloader};
pub use duration::{ConfigDuration, format_duration, parse_duration};
pub use load::{ConfigError, Problem, default_config_path, load_file, load_str};
pub use rule_files::{RuleGroupConfig, valid_label_name, valid_metric_name};
pub use secret::Secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::alert::Matcher;

/// The whole configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[server]`: the exporter and API listener.
    pub server: ServerConfig,
    /// `[storage]`: where history lives and for how long.
    pub storage: StorageConfig,
    /// `[global]`: defaults for every job, probe and rule.
    pub global: GlobalConfig,
    /// `[[job]]`: Prometheus scrape jobs.
    pub jobs: Vec<JobConfig>,
    /// `[[probe]]`: health probes, shared with the probe runner and its tasks (a thousand
    /// probes' checks are held once, not once per holder).
    pub probes: Vec<Arc<ProbeConfig>>,
    /// `[[rule]]`: alerting and recording rules.
    pub rules: Vec<RuleConfig>,
    /// The groups of the rule files `[global] rule_files` names, in file order.
    pub rule_groups: Vec<RuleGroupConfig>,
    /// The config file's name as given (what `[[rule]]`'s group shows as its file).
    pub origin: String,
    /// `[[inhibit]]`: inhibition rules.
    pub inhibits: Vec<InhibitConfig>,
    /// `[[route]]`: notification routes, in order.
    pub routes: Vec<RouteConfig>,
    /// `[[receiver]]`: where notifications go.
    pub receivers: Vec<ReceiverConfig>,
    /// `[[gate]]`: post-deployment gates.
    pub gates: Vec<GateConfig>,
    /// `[[maintenance]]`: weekly windows that mute matching alerts.
    pub maintenance: Vec<MaintenanceConfig>,
    /// `[[log]]`: log files and journald units counted into series (SPEC §9).
    pub logs: Vec<LogConfig>,
    /// `[[remote_write]]`: Prometheus remote write endpoints every sample is sent to.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// `[status_page]`: the public status page; `None` serves no `/status`.
    pub status_page: Option<StatusPageConfig>,
    /// `[query]`: limits of the query API.
    pub query: QueryConfig,
    /// Legal but risky settings, printed by `check` and logged by `run`.
    pub warnings: Vec<String>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the exporter and API. Defaults to 127.0.0.1:7980 (outside the 9100–9999 range
    /// other exporters use).
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// When set, every non-GET API call needs `Authorization: Bearer <token>`.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Base URL used in links inside notifications.
    #[serde(default)]
    pub external_url: Option<String>,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The store directory: sled's files and the segment files (see `store`).
    #[serde(default = "defaults::storage_path")]
    pub path: std::path::PathBuf,
    /// How long records are kept.
    #[serde(default = "defaults::retention")]
    pub retention: ConfigDuration,
    /// How often the head's samples are written to the store: what a crash can lose at most.
    #[serde(default = "defaults::checkpoint_interval")]
    pub checkpoint_interval: ConfigDuration,
    /// The least history the head holds in memory (at least a minute); rules and gates that
    /// reach further widen it (see `store::checkpoint::head_window`).
    #[serde(default = "defaults::head_window")]
    pub head_window: ConfigDuration,
}

/// `[query]`: limits of each query of the API, as Prometheus' `--query.*` flags. A reload
/// applies them to the queries that start after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// A query still running after this is stopped with a 503 `timeout`; the time spent
    /// waiting for a turn (see `max_concurrent`) counts.
    #[serde(default = "defaults::query_timeout")]
    pub timeout: ConfigDuration,
    /// Samples one query may load into memory; more is a 422 `execution` error. Bounds the
    /// memory of a query whatever it asks for.
    #[serde(default = "defaults::query_max_samples")]
    pub max_samples: std::num::NonZeroU64,
    /// Queries evaluated at once; more wait for a turn, within their timeout.
    #[serde(default = "defaults::query_max_concurrent")]
    pub max_concurrent: std::num::NonZeroUsize,
}

/// `[global]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Default interval between scrapes of a job's targets.
    #[serde(default = "defaults::interval")]
    pub scrape_interval: ConfigDuration,
    /// Default interval between probes.
    #[serde(default = "defaults::interval")]
    pub probe_interval: ConfigDuration,
    /// Default probe timeout.
    #[serde(default = "defaults::probe_timeout")]
    pub probe_timeout: ConfigDuration,
    /// Interval between rule evaluations.
    #[serde(default = "defaults::interval")]
    pub evaluation_interval: ConfigDuration,
    /// Labels added to every alert (Prometheus' external labels).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Labels added to every series remote write sends (`replica = "a"` tells the two
    /// instances of an HA pair apart); a series' own label of the same name wins.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// `"i/n"`: this instance runs only the probes, scrape targets and log sources of shard i
    /// of n.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// Prometheus rule files to load, as globs relative to the config file's directory.
    #[serde(default)]
    pub rule_files: Vec<String>,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

/// `[[job]]`: a Prometheus scrape job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Sets the `job` label of every series.
    pub name: String,
    /// `host:port` of each target; each becomes the `instance` label.
    pub targets: Vec<String>,
    /// Path of the metrics page.
    #[serde(default = "defaults::metrics_path")]
    pub metrics_path: String,
    /// http or https.
    #[serde(default)]
    pub scheme: Scheme,
    /// Overrides `global.scrape_interval`.
    #[serde(default)]
    pub scrape_interval: Option<ConfigDuration>,
    /// Scrape timeout; defaults to the smaller of the interval and 10 s, as Prometheus does.
    #[serde(default)]
    pub scrape_timeout: Option<ConfigDuration>,
    /// Labels added to every scraped series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Largest body accepted, in bytes (default 10 MiB).
    #[serde(default = "defaults::body_size_limit")]
    pub body_size_limit: u64,
    /// Largest number of series accepted from one target (default 50,000).
    #[serde(default = "defaults::sample_limit")]
    pub sample_limit: u64,
}

impl JobConfig {
    /// The scrape interval in force for this job.
    pub fn interval(&self, g: &GlobalConfig) -> Duration {
        self.scrape_interval.unwrap_or(g.scrape_interval).get()
    }
    /// The scrape timeout in force for this job.
    pub fn timeout(&self, g: &GlobalConfig) -> Duration {
        self.scrape_timeout
            .map(|d| d.get())
            .unwrap_or_else(|| self.interval(g).min(Duration::from_secs(10)))
    }
}

/// `[[probe]]`: an HTTP(S) or TCP health probe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique name; the `probe` label.
    pub name: String,
    /// `http://`, `https://` or `tcp://host:port`.
    pub url: String,
    /// Sets the `job` label so rules and gates can join probes with metrics.
    #[serde(default)]
    pub job: Option<String>,
    /// Overrides `global.probe_interval`.
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
    /// Overrides `global.probe_timeout`.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// HTTP method.
    #[serde(default = "defaults::method")]
    pub method: String,
    /// Extra request headers (values may be secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Slower answers fail.
    #[serde(default)]
    pub max_latency: Option<ConfigDuration>,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regex.
    #[serde(default, deserialize_with = "load::de_regex_opt")]
    pub body_regex: Option<regex::Regex>,
    /// Dot paths into a JSON body and the value each must have, in path order.
    #[serde(default, deserialize_with = "load::de_json_checks")]
    pub json: Box<[(String, serde_json::Value)]>,
    /// The certificate chain must be valid for at least this many days (https only).
    #[serde(default)]
    pub cert_min_days: Option<u32>,
    /// Consecutive failures before ProbeFailed fires.
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u32,
    /// Consecutive successes before it resolves.
    #[serde(default = "defaults::success_threshold")]
    pub success_threshold: u32,
    /// `severity` label of ProbeFailed.
    #[serde(default = "defaults::severity")]
    pub severity: String,
    /// Whether a failing probe raises ProbeFailed.
    #[serde(default = "defaults::yes")]
    pub alert: bool,
    /// The objective for its uptime, in percent (`99.9`): the API's error budget.
    #[serde(default)]
    pub slo: Option<f64>,
}

impl ProbeConfig {
    /// The probe interval in force.
    pub fn interval(&self, g: &GlobalConfig) -> Duration {
        self.interval.unwrap_or(g.probe_interval).get()
    }
    /// The probe timeout in force.
    pub fn timeout(&self, g: &GlobalConfig) -> Duration {
        self.timeout.unwrap_or(g.probe_timeout).get()
    }
}

/// A PromQL expression, parsed at load time so a broken one is a config error.
#[derive(Clone)]
pub struct PromqlExpr {
    /// The expression as written.
    pub source: String,
    /// The parsed expression.
    pub expr: promql_parser::parser::Expr,
}

impl std::fmt::Debug for PromqlExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// `[[rule]]`, or a rule of a rule file: a Prometheus alerting rule (`alert`) or recording
/// rule (`record`), exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert name; empty for a recording rule.
    #[serde(default)]
    pub alert: String,
    /// The metric name a recording rule writes its result as; empty for an alerting rule.
    #[serde(default)]
    pub record: String,
    /// The PromQL condition.
    #[serde(deserialize_with = "load::de_promql")]
    pub expr: PromqlExpr,
    /// How long the condition must hold before firing.
    #[serde(default, rename = "for")]
    pub for_: ConfigDuration,
    /// How long a firing alert keeps firing after the condition clears.
    #[serde(default)]
    pub keep_firing_for: ConfigDuration,
    /// Labels added to the alert (templated).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (templated).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RuleConfig {
    /// The alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        if self.record.is_empty() {
            &self.alert
        } else {
            &self.record
        }
    }

    /// True for a recording rule.
    pub fn is_recording(&self) -> bool {
        !self.record.is_empty()
    }
}

/// `[[inhibit]]`: Alertmanager inhibition rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitConfig {
    /// Alerts that mute.
    #[serde(deserialize_with = "load::de_matchers")]
    pub source_matchers: Vec<Matcher>,
    /// Alerts that are muted.
    #[serde(deserialize_with = "load::de_matchers")]
    pub target_matchers: Vec<Matcher>,
    /// Labels that must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `[[maintenance]]`: a weekly window that mutes matching alerts like a silence while it is
/// active (shown in the silences list as created by `maintenance:<name>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Unique name.
    pub name: String,
    /// The alerts muted; at least one matcher must not match the empty string.
    #[serde(deserialize_with = "load::de_matchers")]
    pub matchers: Vec<Matcher>,
    /// Days and a time range, e.g. `Sun 02:00-04:00` or `Mon-Fri 22:00-02:00`.
    #[serde(deserialize_with = "load::de_schedule")]
    pub schedule: schedule::Schedule,
    /// The IANA time zone of the schedule's times (default UTC).
    #[serde(default = "defaults::timezone", deserialize_with = "load::de_zone")]
    pub timezone: chrono_tz::Tz,
}

/// `[status_page]`: the public status page at `/status` and its badges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// The page's title and heading.
    #[serde(default = "defaults::status_title")]
    pub title: String,
    /// `[[status_page.group]]`: the groups of probes shown, in order.
    #[serde(default, rename = "group")]
    pub groups: Vec<StatusGroupConfig>,
}

/// `[[status_page.group]]`: probes shown together under a name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusGroupConfig {
    /// The group's heading.
    pub name: String,
    /// Names of `[[probe]]`s, in the order shown.
    pub probes: Vec<String>,
}

impl StatusPageConfig {
    /// Whether the page lists the probe (only those get badges).
    pub fn lists(&self, probe: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.probes.iter().any(|p| p == probe))
    }
}

/// `[[route]]`: Alertmanager-style route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Alerts this route takes; none matches all.
    #[serde(default, deserialize_with = "load::de_matchers")]
    pub matchers: Vec<Matcher>,
    /// Receivers that get this route's notifications.
    pub receivers: Vec<String>,
    /// Labels that group alerts into one notification; `["..."]` groups by all labels.
    #[serde(default = "defaults::group_by")]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group.
    #[serde(default = "defaults::group_wait")]
    pub group_wait: ConfigDuration,
    /// Wait before notifying changes to a group.
    #[serde(default = "defaults::group_interval")]
    pub group_interval: ConfigDuration,
    /// Wait before repeating an unchanged firing group.
    #[serde(default = "defaults::repeat_interval")]
    pub repeat_interval: ConfigDuration,
    /// Go on matching the next routes after this one.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

/// `[[receiver]]`: one destination.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Unique name, used by routes and gates.
    pub name: String,
    /// Whether resolved notifications are sent.
    pub send_resolved: bool,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// The channel and its settings.
    pub kind: ReceiverKind,
}

/// Channel-specific receiver settings.
#[derive(Debug, Clone)]
pub enum ReceiverKind {
    /// Slack incoming webhook.
    Slack(SlackConfig),
    /// SMTP email.
    Email(EmailConfig),
    /// Generic webhook (Alertmanager v4 payload).
    Webhook(WebhookConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerdutyConfig),
    /// Microsoft Teams through a Workflows webhook (Adaptive Card).
    Teams(TeamsConfig),
    /// Discord webhook (embeds).
    Discord(DiscordConfig),
    /// Telegram Bot API `sendMessage` in HTML mode.
    Telegram(TelegramConfig),
    /// Opsgenie Alert API v2.
    Opsgenie(OpsgenieConfig),
    /// Google Chat webhook (cardsV2).
    Googlechat(GooglechatConfig),
    /// ntfy topic.
    Ntfy(NtfyConfig),
    /// An Alertmanager cluster's `/api/v2/alerts`, as Prometheus sends to it.
    Alertmanager(AlertmanagerConfig),
}

impl ReceiverConfig {
    /// Every secret of this receiver, non-empty: the one list the log layer, the API, the
    /// notifier's error redaction and the tests use, so a new receiver type adds its
    /// secrets here and nowhere else.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match &self.kind {
            ReceiverKind::Slack(s) => out.push(s.url.expose()),
            ReceiverKind::Email(e) => out.extend(e.password.as_ref().map(Secret::expose)),
            ReceiverKind::Webhook(w) => {
                out.push(w.url.expose());
                out.extend(w.secret.as_ref().map(Secret::expose));
                out.extend(w.headers.values().map(Secret::expose));
            }
            ReceiverKind::Pagerduty(p) => out.push(p.routing_key.expose()),
            ReceiverKind::Teams(t) => out.push(t.url.expose()),
            ReceiverKind::Discord(d) => out.push(d.url.expose()),
            ReceiverKind::Telegram(t) => out.push(t.bot_token.expose()),
            ReceiverKind::Opsgenie(o) => out.push(o.api_key.expose()),
            ReceiverKind::Googlechat(g) => out.push(g.url.expose()),
            ReceiverKind::Ntfy(n) => {
                out.push(n.url.expose());
                out.extend(n.token.as_ref().map(Secret::expose));
            }
            ReceiverKind::Alertmanager(_) => {}
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

impl ReceiverKind {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            ReceiverKind::Slack(_) => "slack",
            ReceiverKind::Email(_) => "email",
            ReceiverKind::Webhook(_) => "webhook",
            ReceiverKind::Pagerduty(_) => "pagerduty",
            ReceiverKind::Teams(_) => "teams",
            ReceiverKind::Discord(_) => "discord",
            ReceiverKind::Telegram(_) => "telegram",
            ReceiverKind::Opsgenie(_) => "opsgenie",
            ReceiverKind::Googlechat(_) => "googlechat",
            ReceiverKind::Ntfy(_) => "ntfy",
            ReceiverKind::Alertmanager(_) => "alertmanager",
        }
    }
}

/// Every receiver `type`, as written in the config and listed in its error messages.
pub const RECEIVER_TYPES: [&str; 11] = [
    "slack",
    "email",
    "webhook",
    "pagerduty",
    "teams",
    "discord",
    "telegram",
    "opsgenie",
    "googlechat",
    "ntfy",
    "alertmanager",
];

/// `type = "alertmanager"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The base URL of every Alertmanager of the cluster (`http://am1:9093`); each gets every
    /// alert, as Prometheus sends them.
    pub urls: Vec<String>,
    /// How often a firing alert is sent again (Prometheus' `--rules.alert.resend-delay`).
    #[serde(default = "defaults::resend_interval")]
    pub resend_interval: ConfigDuration,
    /// `[global] evaluation_interval`, filled in at load: a firing alert's `endsAt` is
    /// now + 4 × max(`resend_interval`, this).
    #[serde(skip)]
    pub evaluation_interval: Duration,
}

/// `type = "slack"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a secret).
    pub url: Secret,
    /// Optional channel override.
    #[serde(default)]
    pub channel: Option<String>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for loopback relays).
    None,
    /// Upgrade with STARTTLS (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `type = "email"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the SMTP server.
    pub smtp: String,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// SMTP user, when the server wants authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password (a secret).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

/// `type = "webhook"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (a secret: webhook URLs often embed tokens).
    pub url: Secret,
    /// HMAC-SHA256 key for `X-Postflight-Signature`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// `type = "pagerduty"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// Events API v2 integration key (a secret).
    pub routing_key: Secret,
    /// Events API endpoint.
    #[serde(default = "defaults::pagerduty_url")]
    pub url: String,
}

/// `type = "teams"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The URL of the Workflows webhook ("Post to a channel when a webhook request is
    /// received"); a secret: its `sig` parameter is the credential.
    pub url: Secret,
}

/// `type = "discord"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The webhook URL, `https://discord.com/api/webhooks/<id>/<token>`; a secret: it holds
    /// the token.
    pub url: Secret,
}

/// A Telegram chat: its numeric id (negative for groups and channels) or `@channelusername`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatId {
    /// A numeric chat id.
    Id(i64),
    /// A public channel's `@username`.
    Username(String),
}

impl<'de> Deserialize<'de> for ChatId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ChatId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a chat id: an integer like -1001234567890, or \"@channelusername\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ChatId, E> {
                Ok(ChatId::Id(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChatId, E> {
                // A number written as a string (as environment variables are) is still a number.
                if let Ok(id) = v.trim().parse::<i64>() {
                    return Ok(ChatId::Id(id));
                }
                if v.len() > 1 && v.starts_with('@') {
                    return Ok(ChatId::Username(v.to_string()));
                }
                Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// `type = "telegram"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather (`123456:ABC-...`); a secret, sent in the URL path.
    pub bot_token: Secret,
    /// The chat the bot writes to.
    pub chat_id: ChatId,
    /// Base URL of the Bot API, for a self-hosted Bot API server or tests.
    #[serde(default = "defaults::telegram_url")]
    pub url: String,
}

/// `type = "opsgenie"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    /// The API key of an Opsgenie "API" integration, sent as `Authorization: GenieKey ...`;
    /// a secret.
    pub api_key: Secret,
    /// Base URL of the Alert API: `https://api.eu.opsgenie.com` for the EU instance.
    #[serde(default = "defaults::opsgenie_url")]
    pub url: String,
}

/// `type = "googlechat"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GooglechatConfig {
    /// The space's incoming webhook URL; a secret: its `key` and `token` parameters are the
    /// credential.
    pub url: Secret,
}

/// `type = "ntfy"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// The topic's URL, e.g. `https://ntfy.sh/my-alerts`; a secret: on a public server the
    /// topic name is the only thing that keeps others from reading or writing it.
    pub url: Secret,
    /// An access token for a server that requires one, sent as `Authorization: Bearer ...`;
    /// a secret.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// `[[gate]]`: post-deployment verdict for one job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The job this gate judges.
    pub job: String,
    /// How long after a deployment the gate judges it.
    #[serde(default = "defaults::watch")]
    pub watch: ConfigDuration,
    /// Window before the deployment used as the baseline.
    #[serde(default = "defaults::watch")]
    pub baseline: ConfigDuration,
    /// No judgement during this first part of the watch.
    #[serde(default = "defaults::warmup")]
    pub warmup: ConfigDuration,
    /// Time between evaluations.
    #[serde(default = "defaults::gate_interval")]
    pub interval: ConfigDuration,
    /// Failing evaluations in a row that fail the verdict.
    #[serde(default = "defaults::consecutive_failures")]
    pub consecutive_failures: u32,
    /// Receivers told of the verdict.
    #[serde(default)]
    pub notify: Vec<String>,
    /// The checks.
    #[serde(default)]
    pub check: Vec<GateCheckConfig>,
}

/// A bound relative to the baseline: `"10%"` or `"+0.002"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RelativeBound {
    /// At most this fraction above the baseline (`"10%"` = 0.10).
    Percent(f64),
    /// At most this much above the baseline.
    Delta(f64),
}

impl RelativeBound {
    /// The upper bound this relative bound gives for a baseline value.
    pub fn bound(self, baseline: f64) -> f64 {
        match self {
            RelativeBound::Percent(p) => baseline + baseline.abs() * p,
            RelativeBound::Delta(d) => baseline + d,
        }
    }
}

/// `[[gate.check]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateCheckConfig {
    /// Name shown in verdicts.
    pub name: String,
    /// The PromQL value checked; must give one number.
    #[serde(deserialize_with = "load::de_promql")]
    pub expr: PromqlExpr,
    /// Absolute upper bound.
    #[serde(default)]
    pub max: Option<f64>,
    /// Upper bound relative to the baseline.
    #[serde(default, deserialize_with = "load::de_relative_opt")]
    pub max_increase: Option<RelativeBound>,
    /// Absolute lower bound.
    #[serde(default)]
    pub min: Option<f64>,
    /// While this gives no result the check is NoData.
    #[serde(default, deserialize_with = "load::de_promql_opt")]
    pub guard: Option<PromqlExpr>,
}

/// How the lines of a `[[log]]` source are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One line of text per line.
    #[default]
    Text,
    /// Docker's json-file driver: one JSON object per line, the text in its `log` field.
    DockerJson,
}

/// Where a `[[log]]` source starts in a file (or journal) it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// At its end: only lines written from now on count.
    #[default]
    End,
    /// At its beginning: every line already there counts.
    Beginning,
}

/// `[[log]]`: a log source (SPEC §9): files under a glob, or a journald unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Unique name; the `log` label.
    pub name: String,
    /// A glob of files to follow (`/var/log/app/*.log`); exactly one of `path` and
    /// `journal_unit`.
    #[serde(default)]
    pub path: Option<String>,
    /// A systemd unit whose journal is followed (`app.service`), through `journalctl`.
    #[serde(default)]
    pub journal_unit: Option<String>,
    /// A directory of journal files to read instead of the system journal (`journalctl
    /// --directory`): another machine's journal copied here, or a container's.
    #[serde(default)]
    pub journal_directory: Option<std::path::PathBuf>,
    /// `text` or `docker-json`.
    #[serde(default)]
    pub format: LogFormat,
    /// The `job` label, so rules and gates can join logs with the job's metrics.
    #[serde(default)]
    pub job: Option<String>,
    /// Where to start in a file present when the source first starts: `end` or `beginning`.
    /// A file that appears later is always read from its beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Parts of kept lines replaced by `<redacted>` before they are stored or sent.
    #[serde(default, deserialize_with = "load::de_regexes")]
    pub redact: Vec<regex::Regex>,
    /// `[[log.match]]`: the patterns counted, each its own `match` label.
    #[serde(default, rename = "match")]
    pub matches: Vec<LogMatchConfig>,
}

/// `[[log.match]]`: one pattern counted in `log_matches_total{match=NAME}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogMatchConfig {
    /// Unique within its log; the `match` label.
    pub name: String,
    /// The regex a line must match (anywhere in the line).
    #[serde(deserialize_with = "load::de_regex")]
    pub regex: regex::Regex,
}

/// Every default, in one place.
pub mod defaults {
    use super::ConfigDuration;
    use std::net::SocketAddr;

    /// The exporter and API address.
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7980))
    }
    /// The store directory.
    pub fn storage_path() -> std::path::PathBuf {
        "/var/lib/postflight".into()
    }
    /// 15 days, as Prometheus.
    pub fn retention() -> ConfigDuration {
        ConfigDuration::secs(15 * 86_400)
    }
    /// Head checkpoints.
    pub fn checkpoint_interval() -> ConfigDuration {
        ConfigDuration::secs(30)
    }
    /// The head's least window.
    pub fn head_window() -> ConfigDuration {
        ConfigDuration::secs(900)
    }
    /// Scrape, probe and evaluation interval.
    pub fn interval() -> ConfigDuration {
        ConfigDuration::secs(15)
    }
    /// Probe timeout.
    pub fn probe_timeout() -> ConfigDuration {
        ConfigDuration::secs(5)
    }
    /// Metrics path.
    pub fn metrics_path() -> String {
        "/metrics".into()
    }
    /// 10 MiB.
    pub fn body_size_limit() -> u64 {
        10 << 20
    }
    /// 50,000 series per target.
    pub fn sample_limit() -> u64 {
        50_000
    }
    /// HTTP probe method.
    pub fn method() -> String {
        "GET".into()
    }
    /// ProbeFailed after 3 failures.
    pub fn failure_threshold() -> u32 {
        3
    }
    /// Resolved after 1 success.
    pub fn success_threshold() -> u32 {
        1
    }
    /// ProbeFailed severity.
    pub fn severity() -> String {
        "page".into()
    }
    /// true.
    pub fn yes() -> bool {
        true
    }
    /// Alertmanager's default grouping is by nothing; we group by alertname, as most configs do.
    pub fn group_by() -> Vec<String> {
        vec!["alertname".into()]
    }
    /// Alertmanager's default group_wait.
    pub fn group_wait() -> ConfigDuration {
        ConfigDuration::secs(30)
    }
    /// Alertmanager's default group_interval.
    pub fn group_interval() -> ConfigDuration {
        ConfigDuration::secs(300)
    }
    /// Alertmanager's default repeat_interval.
    pub fn repeat_interval() -> ConfigDuration {
        ConfigDuration::secs(4 * 3600)
    }
    /// PagerDuty Events API v2.
    pub fn pagerduty_url() -> String {
        "https://events.pagerduty.com/v2/enqueue".into()
    }
    /// The status page's title.
    pub fn status_title() -> String {
        "Status".into()
    }
    /// Maintenance windows' time zone.
    pub fn timezone() -> chrono_tz::Tz {
        chrono_tz::UTC
    }
    /// Telegram Bot API.
    pub fn telegram_url() -> String {
        "https://api.telegram.org".into()
    }
    /// Opsgenie Alert API (US instance).
    pub fn opsgenie_url() -> String {
        "https://api.opsgenie.com".into()
    }
    /// Receiver delivery timeout.
    pub fn receiver_timeout() -> ConfigDuration {
        ConfigDuration::secs(10)
    }
    /// Gate watch and baseline windows.
    pub fn watch() -> ConfigDuration {
        ConfigDuration::secs(30 * 60)
    }
    /// Gate warmup.
    pub fn warmup() -> ConfigDuration {
        ConfigDuration::secs(60)
    }
    /// A query's time limit: Prometheus' `--query.timeout`.
    pub fn query_timeout() -> ConfigDuration {
        ConfigDuration::secs(120)
    }
    /// Samples a query may load: Prometheus' `--query.max-samples`.
    pub fn query_max_samples() -> std::num::NonZeroU64 {
        std::num::NonZeroU64::new(50_000_000).expect("a nonzero constant")
    }
    /// Queries at once: Prometheus' `--query.max-concurrency`.
    pub fn query_max_concurrent() -> std::num::NonZeroUsize {
        std::num::NonZeroUsize::new(20).expect("a nonzero constant")
    }
    /// Gate evaluation interval.
    pub fn gate_interval() -> ConfigDuration {
        ConfigDuration::secs(30)
    }
    /// Failing evaluations in a row.
    pub fn consecutive_failures() -> u32 {
        3
    }
    /// Remote write senders per endpoint.
    pub fn remote_write_shards() -> u32 {
        2
    }
    /// Prometheus' default `max_samples_per_send`.
    pub fn max_samples_per_send() -> usize {
        2000
    }
    /// Prometheus' default `batch_send_deadline`.
    pub fn batch_send_deadline() -> ConfigDuration {
        ConfigDuration::secs(5)
    }
    /// Prometheus' default `remote_timeout`.
    pub fn remote_timeout() -> ConfigDuration {
        ConfigDuration::secs(30)
    }
    /// Prometheus' default `min_backoff` (30 ms).
    pub fn min_backoff() -> ConfigDuration {
        ConfigDuration::millis(30)
    }
    /// Prometheus' default `max_backoff`.
    pub fn max_backoff() -> ConfigDuration {
        ConfigDuration::secs(5)
    }
    /// Prometheus resends firing alerts to Alertmanager every minute.
    pub fn resend_interval() -> ConfigDuration {
        ConfigDuration::secs(60)
    }
    /// A `write_relabel` rule reads the metric name unless told otherwise.
    pub fn source_labels() -> Vec<String> {
        vec!["__name__".into()]
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: defaults::listen(),
            api_token: None,
            external_url: None,
        }
    }
}

impl ServerConfig {
    /// The base of links in notifications: `external_url`, or this server's own address when
    /// none is set.
    pub fn link_base(&self) -> String {
        self.external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: defaults::storage_path(),
            retention: defaults::retention(),
            checkpoint_interval: defaults::checkpoint_interval(),
            head_window: defaults::head_window(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: defaults::query_timeout(),
            max_samples: defaults::query_max_samples(),
            max_concurrent: defaults::query_max_concurrent(),
        }
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: defaults::interval(),
            probe_interval: defaults::interval(),
            probe_timeout: defaults::probe_timeout(),
            evaluation_interval: defaults::interval(),
            labels: BTreeMap::new(),
            external_labels: BTreeMap::new(),
            shard: None,
            rule_files: Vec::new(),
        }
    }
}

impl Config {
    /// The receiver with this name.
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name == name)
    }
    /// Every rule: the `[[rule]]` sections, then the rule files' rules.
    pub fn all_rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules
            .iter()
            .chain(self.rule_groups.iter().flat_map(|g| &g.rules))
    }
    /// The gate of this job.
    pub fn gate(&self, job: &str) -> Option<&GateConfig> {
        self.gates.iter().find(|g| g.job == job)
    }
    /// The settings that differ from `running` and that only a restart applies: the listen
    /// address, the store's path and the checkpoint interval. A reload applies everything else.
    pub fn restart_required(&self, running: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.server.listen != running.server.listen {
            out.push("server.listen");
        }
        if self.storage.path != running.storage.path {
            out.push("storage.path");
        }
        if self.storage.checkpoint_interval != running.storage.checkpoint_interval {
            out.push("storage.checkpoint_interval");
        }
        out
    }

    /// Every secret value in the config, so tests and the log layer can check none leaks.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if let Some(t) = &self.server.api_token {
            out.push(t.expose());
        }
        for p in &self.probes {
            out.extend(p.headers.values().map(Secret::expose));
        }
        for r in &self.receivers {
            out.extend(r.secrets());
        }
        for w in &self.remote_write {
            out.extend(w.headers.values().map(Secret::expose));
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// `[[remote_write]]`: a Prometheus remote write 1.0 endpoint (Prometheus, Mimir, Thanos,
/// Cortex, VictoriaMetrics) that every sample the head takes is sent to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's write URL, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Extra request headers, such as `Authorization` or `X-Scope-OrgID` (values are secrets:
    /// never logged or shown).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Keep or drop series before they are sent, in order (Prometheus' `write_relabel_configs`,
    /// the `keep` and `drop` actions).
    #[serde(default)]
    pub write_relabel: Vec<WriteRelabelConfig>,
    /// Parallel senders. A series always goes through the same one (by the hash of its
    /// labels), so its samples arrive in time order.
    #[serde(default = "defaults::remote_write_shards")]
    pub shards: u32,
    /// Samples in one request at most.
    #[serde(default = "defaults::max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// How often what arrived is sent, full batch or not.
    #[serde(default = "defaults::batch_send_deadline")]
    pub batch_send_deadline: ConfigDuration,
    /// Timeout of one request.
    #[serde(default = "defaults::remote_timeout")]
    pub remote_timeout: ConfigDuration,
    /// First wait before a retry; doubles up to `max_backoff`.
    #[serde(default = "defaults::min_backoff")]
    pub min_backoff: ConfigDuration,
    /// Longest wait between two retries (a `Retry-After` may ask for longer).
    #[serde(default = "defaults::max_backoff")]
    pub max_backoff: ConfigDuration,
}

/// `keep` or `drop` of a `write_relabel` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Send only the series whose source labels match.
    Keep,
    /// Send every series except those whose source labels match.
    Drop,
}

/// One `write_relabel` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRelabelConfig {
    /// `keep` or `drop`.
    pub action: RelabelAction,
    /// The labels whose values, joined with `;`, the regex is matched against (default
    /// `["__name__"]`).
    #[serde(default = "defaults::source_labels")]
    pub source_labels: Vec<String>,
    /// Matched against the whole joined value, as Prometheus anchors it.
    #[serde(deserialize_with = "load::de_anchored_regex")]
    pub regex: regex::Regex,
}

/// `[global] shard = "i/n"`: which share of the probes, scrape targets and log sources this
/// instance runs.
/// A probe belongs to shard FNV-1a 64(name) mod n + 1, a target to FNV-1a 64(`job/target`)
/// mod n + 1, so every instance of a sharded fleet, given the same config, agrees on the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This instance's shard, from 1.
    pub index: u32,
    /// How many shards there are.
    pub count: u32,
}

impl Shard {
    /// Parses `"i/n"` with 1 ≤ i ≤ n.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard {s:?} must be \"i/n\" with 1 <= i <= n, e.g. \"2/3\"");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The shard (from 1) of `key` among `count`.
    pub fn of(key: &str, count: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % u64::from(count.max(1))) as u32 + 1
    }

    /// Whether this shard runs `key`.
    pub fn owns(&self, key: &str) -> bool {
        Shard::of(key, self.count) == self.index
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Shard::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How many probes, scrape targets and log sources one shard runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardShare {
    /// `[[probe]]`s.
    pub probes: usize,
    /// Scrape targets, over every job.
    pub targets: usize,
    /// `[[log]]` sources.
    pub logs: usize,
}

impl Config {
    /// The config this instance runs under `[global] shard`: only its probes, scrape targets
    /// (jobs left without a target go) and log sources. Rules, gates and receivers stay whole.
    /// Without `shard`, a copy of the config.
    pub fn for_shard(&self) -> Config {
        let mut c = self.clone();
        if let Some(shard) = self.global.shard {
            c.probes.retain(|p| shard.owns(&p.name));
            for j in &mut c.jobs {
                let name = j.name.clone();
                j.targets.retain(|t| shard.owns(&format!("{name}/{t}")));
            }
            c.jobs.retain(|j| !j.targets.is_empty());
            c.logs.retain(|l| shard.owns(&l.name));
        }
        c
    }

    /// The share of each of `count` shards, shard 1 first.
    pub fn shard_split(&self, count: u32) -> Vec<ShardShare> {
        let mut out = vec![ShardShare::default(); count.max(1) as usize];
        for p in &self.probes {
            out[(Shard::of(&p.name, count) - 1) as usize].probes += 1;
        }
        for j in &self.jobs {
            for t in &j.targets {
                out[(Shard::of(&format!("{}/{t}", j.name), count) - 1) as usize].targets += 1;
            }
        }
        for l in &self.logs {
            out[(Shard::of(&l.name, count) - 1) as usize].logs += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests;
