//! `postflight check`: every invalid config is refused with a message that points at the
//! problem (`line:column` and what is wrong), and every shipped config is accepted.

use std::process::Command;

use postflight::config::{ConfigError, load_str};

/// Loads `src` and returns its problems as `line:col: message` strings.
fn problems(src: &str) -> Vec<String> {
    match load_str(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

/// Asserts that `src` is invalid with a problem at `line:col` whose message contains `needle`.
#[track_caller]
fn assert_problem(src: &str, line: usize, col: usize, needle: &str) {
    let ps = problems(src);
    let at = format!("{line}:{col}: ");
    assert!(
        ps.iter().any(|p| p.starts_with(&at) && p.contains(needle)),
        "expected a problem at {at}containing {needle:?}, got {ps:#?}"
    );
}

const PROBE: &str = "[[probe]]\nname = \"p\"\nurl = \"http://127.0.0.1:1/\"\n";
const RECV: &str =
    "[[receiver]]\nname = \"r\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n";

#[test]
fn toml_syntax_error() {
    assert_problem("[server]\nlisten = \"127.0.0.1:1\n", 2, 22, "TOML syntax");
}

#[test]
fn several_syntax_errors_are_all_reported() {
    let ps = problems("a = \nb = [1,\n");
    assert!(ps.len() >= 2, "{ps:?}");
}

#[test]
fn unknown_top_level_section() {
    assert_problem(
        "[servr]\nlisten = \"127.0.0.1:1\"\n",
        1,
        2,
        "unknown section `servr`",
    );
}

#[test]
fn unknown_key_in_server() {
    assert_problem(
        "[server]\nlisten = \"127.0.0.1:7980\"\nlisten_port = 1\n",
        3,
        1,
        "unknown field `listen_port`",
    );
}

#[test]
fn unknown_key_in_probe() {
    assert_problem(
        "[[probe]]\nname = \"p\"\nurl = \"http://a/\"\nexpected_status = [200]\n",
        4,
        1,
        "unknown field `expected_status`",
    );
}

#[test]
fn wrong_type() {
    assert_problem(
        "[[probe]]\nname = \"p\"\nurl = \"http://a/\"\nfailure_threshold = \"three\"\n",
        4,
        21,
        "invalid type",
    );
}

#[test]
fn bad_listen_address() {
    assert_problem(
        "[server]\nlisten = \"localhost\"\n",
        2,
        10,
        "invalid socket address",
    );
}

#[test]
fn bad_duration_unit() {
    assert_problem(
        "[global]\nscrape_interval = \"15x\"\n",
        2,
        19,
        "unknown unit \"x\"",
    );
}

#[test]
fn duration_without_unit() {
    assert_problem(
        &format!("{PROBE}interval = \"10\"\n"),
        4,
        12,
        "missing unit",
    );
}

#[test]
fn duration_units_out_of_order() {
    assert_problem(
        "[storage]\nretention = \"30m1h\"\n",
        2,
        13,
        "largest to smallest",
    );
}

#[test]
fn missing_required_field() {
    assert_problem("[[probe]]\nname = \"p\"\n", 1, 1, "missing field `url`");
}

#[test]
fn probe_url_scheme() {
    assert_problem(
        "[[probe]]\nname = \"p\"\nurl = \"ftp://a/\"\n",
        3,
        7,
        "must start with http://, https:// or tcp://",
    );
}

#[test]
fn tcp_probe_without_port() {
    assert_problem(
        "[[probe]]\nname = \"p\"\nurl = \"tcp://db.internal\"\n",
        3,
        7,
        "tcp://host:port",
    );
}

#[test]
fn cert_min_days_on_http() {
    assert_problem(
        &format!("{PROBE}cert_min_days = 14\n"),
        4,
        17,
        "needs an https url",
    );
}

#[test]
fn bad_body_regex() {
    assert_problem(
        &format!("{PROBE}body_regex = '\"status\": ('\n"),
        4,
        14,
        "invalid regex",
    );
}

#[test]
fn duplicate_probe_names() {
    assert_problem(
        &format!("{PROBE}{PROBE}"),
        5,
        8,
        "duplicate probe name \"p\"",
    );
}

#[test]
fn job_target_without_port() {
    assert_problem(
        "[[job]]\nname = \"api\"\ntargets = [\"127.0.0.1\"]\n",
        3,
        11,
        "must be host:port",
    );
}

#[test]
fn scrape_timeout_longer_than_interval() {
    assert_problem(
        "[[job]]\nname = \"api\"\ntargets = [\"127.0.0.1:80\"]\nscrape_interval = \"10s\"\nscrape_timeout = \"20s\"\n",
        5,
        18,
        "longer than scrape_interval",
    );
}

#[test]
fn broken_promql_names_its_rule() {
    assert_problem(
        "[[rule]]\nalert = \"HighErrorRate\"\nexpr = 'sum(rate(x[5m]) /'\n",
        3,
        8,
        "rule \"HighErrorRate\": invalid PromQL",
    );
}

#[test]
fn unsupported_promql_function_names_rule_and_function() {
    assert_problem(
        "[[rule]]\nalert = \"Spread\"\nexpr = 'mad_over_time(x[10m]) > 1'\n",
        3,
        8,
        "rule \"Spread\": function \"mad_over_time\" is not supported",
    );
}

#[test]
fn broken_promql_in_gate_guard_names_its_gate() {
    let src = format!(
        "{RECV}[[gate]]\njob = \"api\"\n[[gate.check]]\nname = \"e\"\nexpr = 'x'\nmax = 1\nguard = 'rate(x[5m]'\n"
    );
    assert_problem(&src, 11, 9, "gate for job \"api\": invalid PromQL");
}

#[test]
fn unsupported_template_names_rule_and_annotation() {
    assert_problem(
        "[[rule]]\nalert = \"A\"\nexpr = 'up == 0'\nannotations = { summary = \"{{ if $value }}x{{ end }}\" }\n",
        4,
        15,
        "rule \"A\": annotations.summary: template",
    );
}

#[test]
fn bad_route_matcher() {
    assert_problem(
        &format!("{RECV}[[route]]\nreceivers = [\"r\"]\nmatchers = ['severity=~\"(\"']\n"),
        7,
        12,
        "bad regex",
    );
}

#[test]
fn matcher_without_operator() {
    assert_problem(
        &format!("{RECV}[[inhibit]]\nsource_matchers = ['alertname']\ntarget_matchers = []\n"),
        6,
        19,
        "expected an operator",
    );
}

#[test]
fn route_to_unknown_receiver() {
    assert_problem(
        &format!("{RECV}[[route]]\nreceivers = [\"oncall\"]\n"),
        6,
        13,
        "receiver \"oncall\", which is not defined",
    );
}

#[test]
fn gate_notifies_unknown_receiver() {
    let src = "[[gate]]\njob = \"api\"\nnotify = [\"nobody\"]\n[[gate.check]]\nname = \"e\"\nexpr = 'x'\nmax = 1\n";
    assert_problem(src, 3, 10, "receiver \"nobody\", which is not defined");
}

#[test]
fn gate_check_without_bound() {
    let src = "[[gate]]\njob = \"api\"\n[[gate.check]]\nname = \"e\"\nexpr = 'x'\n";
    assert_problem(src, 3, 1, "has no bound");
}

#[test]
fn bad_max_increase() {
    let src = "[[gate]]\njob = \"api\"\n[[gate.check]]\nname = \"e\"\nexpr = 'x'\nmax_increase = \"ten percent\"\n";
    assert_problem(src, 6, 16, "invalid max_increase");
}

#[test]
fn unknown_receiver_type() {
    assert_problem(
        "[[receiver]]\nname = \"r\"\ntype = \"sms\"\n",
        3,
        8,
        "unknown receiver type \"sms\"",
    );
}

#[test]
fn unknown_key_in_receiver() {
    assert_problem(
        &format!("{RECV}routing_key = \"k\"\n"),
        5,
        1,
        "unknown field `routing_key`",
    );
}

#[test]
fn duplicate_receiver_names() {
    assert_problem(
        &format!("{RECV}{RECV}"),
        6,
        8,
        "duplicate receiver name \"r\"",
    );
}

/// One receiver of each type SPEC §11 added, each with every secret it can hold.
const NEW_RECEIVERS: &str = r#"
[[receiver]]
name = "msteams"
type = "teams"
url = "https://example.webhook.office.com/workflows/1/invoke?sig=teams-5ecret"
[[receiver]]
name = "chat"
type = "discord"
url = "https://discord.com/api/webhooks/1/discord-5ecret"
[[receiver]]
name = "tg"
type = "telegram"
bot_token = "123456:telegram-5ecret"
chat_id = -1001234567890
[[receiver]]
name = "genie"
type = "opsgenie"
api_key = "opsgenie-5ecret"
url = "https://api.eu.opsgenie.com"
[[receiver]]
name = "gchat"
type = "googlechat"
url = "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=gchat-5ecret"
[[receiver]]
name = "phone"
type = "ntfy"
url = "https://ntfy.sh/ntfy-topic-5ecret"
token = "ntfy-token-5ecret"
"#;

#[test]
fn new_receiver_types_load_with_their_defaults() {
    use postflight::config::{ChatId, ReceiverKind};
    let c = load_str(NEW_RECEIVERS, "t.toml").unwrap();
    let types: Vec<&str> = c.receivers.iter().map(|r| r.kind.type_name()).collect();
    assert_eq!(
        types,
        [
            "teams",
            "discord",
            "telegram",
            "opsgenie",
            "googlechat",
            "ntfy"
        ]
    );
    match &c.receivers[2].kind {
        ReceiverKind::Telegram(t) => {
            assert_eq!(t.chat_id, ChatId::Id(-1001234567890));
            assert_eq!(t.url, "https://api.telegram.org", "the default");
        }
        k => panic!("{k:?}"),
    }
    match &c.receivers[3].kind {
        ReceiverKind::Opsgenie(o) => assert_eq!(o.url, "https://api.eu.opsgenie.com"),
        k => panic!("{k:?}"),
    }
    let src = NEW_RECEIVERS.replace("chat_id = -1001234567890", "chat_id = \"@alerts\"");
    match &load_str(&src, "t.toml").unwrap().receivers[2].kind {
        ReceiverKind::Telegram(t) => assert_eq!(t.chat_id, ChatId::Username("@alerts".into())),
        k => panic!("{k:?}"),
    }
    // The receiver's Debug output (what a careless log line would print) shows no secret.
    let debug = format!("{:?}", c.receivers);
    assert!(!debug.contains("5ecret"), "{debug}");
}

/// `ReceiverConfig::secrets` is the one list the notifier's redaction and the tests use: each
/// new type lists each of its secret fields there.
#[test]
fn secrets_lists_every_secret_field_of_the_new_receiver_types() {
    let c = load_str(NEW_RECEIVERS, "t.toml").unwrap();
    let of = |name: &str| -> Vec<&str> { c.receiver(name).unwrap().secrets() };
    assert_eq!(
        of("msteams"),
        ["https://example.webhook.office.com/workflows/1/invoke?sig=teams-5ecret"]
    );
    assert_eq!(
        of("chat"),
        ["https://discord.com/api/webhooks/1/discord-5ecret"]
    );
    assert_eq!(of("tg"), ["123456:telegram-5ecret"]);
    assert_eq!(of("genie"), ["opsgenie-5ecret"]);
    assert_eq!(
        of("gchat"),
        ["https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=gchat-5ecret"]
    );
    assert_eq!(
        of("phone"),
        ["https://ntfy.sh/ntfy-topic-5ecret", "ntfy-token-5ecret"]
    );
    // And the config's list holds them all.
    let all = c.secrets();
    assert_eq!(all.iter().filter(|s| s.contains("5ecret")).count(), 7);
}

#[test]
fn new_receiver_settings_are_checked_with_their_position() {
    let recv = |body: &str| format!("[[receiver]]\nname = \"x\"\n{body}");
    assert_problem(
        &recv("type = \"discord\"\nurl = \"discord.com/api/webhooks/1/T0KEN\"\n"),
        4,
        7,
        "url must be the webhook's http:// or https:// URL",
    );
    // The message never quotes the secret URL.
    let ps = problems(&recv("type = \"teams\"\nurl = \"ftp://T0KEN\"\n"));
    assert!(ps.iter().all(|p| !p.contains("T0KEN")), "{ps:?}");
    assert_problem(
        &recv("type = \"ntfy\"\nurl = \"https://ntfy.sh/\"\n"),
        4,
        7,
        "url must name the topic",
    );
    assert_problem(
        &recv("type = \"telegram\"\nbot_token = \"123/456\"\nchat_id = 1\n"),
        4,
        13,
        "bot_token must be the token @BotFather gave",
    );
    assert_problem(
        &recv("type = \"telegram\"\nbot_token = \"1:A\"\nchat_id = \"alerts\"\n"),
        5,
        11,
        "expected a chat id",
    );
    assert_problem(
        &recv("type = \"opsgenie\"\napi_key = \"k\"\nurl = \"api.opsgenie.com\"\n"),
        5,
        7,
        "must be the Alert API's http:// or https:// base URL",
    );
    assert_problem(
        &recv("type = \"opsgenie\"\napi_key = \"\"\n"),
        4,
        11,
        "api_key must not be empty",
    );
    assert_problem(
        &recv("type = \"googlechat\"\nurl = \"https://chat.googleapis.com/x\"\nthread = 1\n"),
        5,
        1,
        "unknown field `thread`",
    );
    assert_problem(
        &recv("type = \"pigeon\"\n"),
        3,
        8,
        "expected one of: slack, email, webhook, pagerduty, teams, discord, telegram, opsgenie, googlechat, ntfy",
    );
}

#[test]
fn bad_smtp_tls_mode() {
    let src = "[[receiver]]\nname = \"m\"\ntype = \"email\"\nsmtp = \"127.0.0.1:25\"\ntls = \"ssl\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n";
    assert_problem(src, 5, 7, "unknown variant `ssl`");
}

#[test]
fn missing_environment_variable() {
    let src =
        "[[receiver]]\nname = \"s\"\ntype = \"slack\"\nurl = \"${POSTFLIGHT_TEST_SURELY_UNSET}\"\n";
    assert_problem(
        src,
        4,
        7,
        "environment variable POSTFLIGHT_TEST_SURELY_UNSET is not set",
    );
}

#[test]
fn missing_secret_file() {
    let src = "[[receiver]]\nname = \"s\"\ntype = \"slack\"\nurl = \"${file:/nonexistent/postflight-secret}\"\n";
    assert_problem(
        src,
        4,
        7,
        "cannot read ${file:/nonexistent/postflight-secret}",
    );
}

#[test]
fn sections_must_have_the_right_shape() {
    assert_problem("probe = 3\n", 1, 9, "array of tables");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let src = "[server]\nbogus = 1\n[[probe]]\nname = \"a\"\nurl = \"ftp://x\"\n[[rule]]\nalert = \"A\"\nexpr = 'sum('\n[[route]]\nreceivers = [\"none\"]\n";
    let ps = problems(src);
    assert_eq!(ps.len(), 4, "{ps:#?}");
}

#[test]
fn interpolation_reads_files_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "s3cret\n").unwrap();
    let src = format!(
        "[[receiver]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/$${{literal}}\"\nsecret = \"${{file:{}}}\"\n",
        f.display()
    );
    let c = load_str(&src, "t.toml").unwrap();
    match &c.receivers[0].kind {
        postflight::config::ReceiverKind::Webhook(w) => {
            assert_eq!(
                w.secret.as_ref().unwrap().expose(),
                "s3cret",
                "trailing newline removed"
            );
            assert_eq!(w.url.expose(), "http://127.0.0.1:1/${literal}");
        }
        k => panic!("wrong kind {k:?}"),
    }
}

/// The binary: exit 2 and every problem on stderr for a bad file, exit 0 for each shipped config.
#[test]
fn check_command_exit_codes_and_shipped_configs() {
    let bin = env!("CARGO_BIN_EXE_postflight");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nope\"\n[[probe]]\nname = \"p\"\nurl = \"ftp://a\"\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:10:"), "{err}");
    assert!(err.contains("bad.toml:5:7:"), "{err}");
    assert!(err.contains("2 problems found"), "{err}");

    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![
        format!("{root}/config/postflight.toml"),
        format!("{root}/config/docker.toml"),
        format!("{root}/config/systemd.toml"),
    ];
    for e in std::fs::read_dir(format!("{root}/config/examples")).unwrap() {
        let path = e.unwrap().path();
        // config/examples/rules/ holds the rule files an example config loads.
        if path.extension().is_some_and(|x| x == "toml") {
            files.push(path.display().to_string());
        }
    }
    for t in postflight::config::RECEIVER_TYPES {
        assert!(
            files.iter().any(|f| f.ends_with(&format!("/{t}.toml"))),
            "an example for receiver type {t}: {files:?}"
        );
    }
    for f in files {
        let out = Command::new(bin)
            .args(["check", "-c", &f])
            .env("SLACK_WEBHOOK_URL", "https://hooks.example.com/x")
            .env("WEBHOOK_SECRET", "s")
            .env("PAGERDUTY_ROUTING_KEY", "k")
            .env("SMTP_PASSWORD", "p")
            .env(
                "TEAMS_WEBHOOK_URL",
                "https://example.webhook.office.com/workflows/x/invoke?sig=s",
            )
            .env(
                "DISCORD_WEBHOOK_URL",
                "https://discord.com/api/webhooks/1/t",
            )
            .env("TELEGRAM_BOT_TOKEN", "123456:ABC")
            .env("TELEGRAM_CHAT_ID", "-1001234567890")
            .env("OPSGENIE_API_KEY", "k")
            .env(
                "GOOGLECHAT_WEBHOOK_URL",
                "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=t",
            )
            .env("NTFY_TOPIC_URL", "https://ntfy.sh/pf-alerts-x")
            .env("NTFY_TOKEN", "tk_x")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn maintenance_windows_are_checked_with_their_positions() {
    let ok = "[[maintenance]]\nname = \"db\"\nmatchers = ['job=\"db\"']\nschedule = \"Mon-Fri 22:00-02:00\"\ntimezone = \"Europe/Berlin\"\n";
    assert!(problems(ok).is_empty(), "{:?}", problems(ok));
    assert_problem(
        "[[maintenance]]\nname = \"db\"\nmatchers = ['job=\"db\"']\nschedule = \"Sun 25:00-26:00\"\n",
        4,
        12,
        "invalid time \"25:00\"",
    );
    assert_problem(
        "[[maintenance]]\nname = \"db\"\nmatchers = ['job=\"db\"']\nschedule = \"Sun 02:00-04:00\"\ntimezone = \"Mars/Olympus\"\n",
        5,
        12,
        "unknown time zone",
    );
    assert_problem(
        "[[maintenance]]\nname = \"all\"\nmatchers = ['job=~\".*\"']\nschedule = \"Sun 02:00-04:00\"\n",
        3,
        12,
        "must not mute everything",
    );
}

#[test]
fn toml_recording_rules_are_checked_as_prometheus_checks_them() {
    let ok = "[[rule]]\nrecord = \"job:up:sum\"\nexpr = \"sum by (job) (up)\"\nlabels = { source = \"toml\" }\n";
    assert!(problems(ok).is_empty(), "{:?}", problems(ok));
    assert_problem(
        "[[rule]]\nrecord = \"job-up\"\nexpr = \"up\"\n",
        2,
        10,
        "rule \"job-up\": invalid recording rule name: job-up",
    );
    assert_problem(
        "[[rule]]\nrecord = \"job:up\"\nexpr = \"up\"\nfor = \"1m\"\n",
        2,
        10,
        "invalid field 'for' in recording rule",
    );
    assert_problem(
        "[[rule]]\nrecord = \"job:up\"\nalert = \"Up\"\nexpr = \"up\"\n",
        2,
        10,
        "only one of 'record' and 'alert' must be set",
    );
    assert_problem(
        "[[rule]]\nexpr = \"up\"\n",
        1,
        1,
        "one of 'record' or 'alert' must be set",
    );
}

#[test]
fn slo_out_of_range_points_at_it() {
    let src = format!("{PROBE}slo = 100\n");
    assert_problem(&src, 4, 7, "slo is a percentage above 0 and below 100");
    let src = format!("{PROBE}slo = 0\n");
    assert_problem(&src, 4, 7, "slo is a percentage");
    let ok = load_str(&format!("{PROBE}slo = 99.9\n"), "t.toml").expect("valid");
    assert_eq!(ok.probes[0].slo, Some(99.9));
}

#[test]
fn status_page_names_an_unknown_probe_at_its_place() {
    let src = format!(
        "{PROBE}[status_page]\ntitle = \"Example\"\n[[status_page.group]]\nname = \"Web\"\nprobes = [\"p\", \"nope\"]\n"
    );
    assert_problem(
        &src,
        8,
        16,
        "status_page group \"Web\": probe \"nope\" is not defined",
    );
    let src = format!("{PROBE}[status_page]\ntitel = \"x\"\n");
    assert_problem(&src, 5, 1, "unknown field `titel`");
    let ok = load_str(
        &format!("{PROBE}[status_page]\n[[status_page.group]]\nname = \"W\"\nprobes = [\"p\"]\n"),
        "t.toml",
    )
    .expect("valid");
    let page = ok.status_page.expect("a status page");
    assert_eq!(page.title, "Status");
    assert!(page.lists("p"));
    assert!(
        load_str(PROBE, "t.toml")
            .expect("valid")
            .status_page
            .is_none()
    );
}
