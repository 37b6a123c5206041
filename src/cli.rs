//! The `postflight` command line (SPEC §1). `main.rs` parses arguments and calls [`main`].

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError};
use crate::telemetry::{self, LogFormat};

pub mod generate;
pub mod import;

#[cfg(test)]
mod tests;

/// postflight: watches services after a deployment, probes, scrapes, evaluates PromQL rules and
/// gates, and pages people.
#[derive(Parser, Debug)]
#[command(name = "postflight", version, about, propagate_version = true)]
pub struct Cli {
    /// Log level or filter (`info`, `debug`, `postflight=debug,hyper=warn`); overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log format: text (journald-friendly) or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run {
        /// Config file (else $POSTFLIGHT_CONFIG, ./postflight.toml, /etc/postflight/postflight.toml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate the config: exit 0 when valid, 2 with every problem otherwise.
    Check {
        /// Config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Record a deployment on a running daemon; with --wait, follow it to its verdict.
    // `--version` is the deployed version here (SPEC §1), not clap's propagated version flag.
    #[command(disable_version_flag = true)]
    Deploy {
        /// The job deployed (a gate must be configured for it).
        #[arg(long)]
        job: String,
        /// The version deployed.
        #[arg(long)]
        version: String,
        /// Follow the watch and exit 0 pass, 1 fail, 3 inconclusive, 4 superseded; Ctrl-C (130)
        /// leaves the watch running on the daemon.
        #[arg(long)]
        wait: bool,
        /// Daemon URL; default http://<server.listen>.
        #[arg(long)]
        server: Option<String>,
        /// API token; default $POSTFLIGHT_API_TOKEN.
        #[arg(long, env = "POSTFLIGHT_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Refuse (exit 2) when the job has a deployment under watch, instead of superseding it.
        #[arg(long)]
        no_supersede: bool,
        /// Accepted for older pipelines: superseding is the default.
        #[arg(long, hide = true, conflicts_with = "no_supersede")]
        supersede: bool,
        /// Optional commit id recorded with the deployment.
        #[arg(long)]
        commit: Option<String>,
        /// Optional author recorded with the deployment.
        #[arg(long)]
        author: Option<String>,
        /// Optional link (pipeline run, release notes) recorded with the deployment.
        #[arg(long)]
        url: Option<String>,
        /// Config file, to find server.listen.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Send one clearly marked test notification through a receiver and report its answer.
    NotifyTest {
        /// The receiver's name.
        receiver: String,
        /// Config file.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Bring history over: write the samples of a file into the store (the daemon must be
    /// stopped).
    Import {
        #[command(subcommand)]
        what: ImportKind,
    },
    /// Write the man pages or a shell's completions, generated from this definition.
    // Hidden: packaging/build-deb.sh calls it; operators get the files installed.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: generate::Generate,
    },
}

/// What `postflight import` reads.
#[derive(Subcommand, Debug)]
pub enum ImportKind {
    /// An OpenMetrics text file with a timestamp (in seconds) on every sample, ending with
    /// `# EOF`: what `promtool tsdb create-blocks-from openmetrics` takes. All or nothing: a
    /// malformed file is exit 2 with its line and nothing imported; a store held by a running
    /// daemon is exit 1. Samples may come in any order. Where the store already holds samples
    /// of a series, those win: imported samples inside the time span of a stored chunk are
    /// skipped (and counted), so importing a file twice imports it once. Of two samples of a
    /// series at one timestamp the later line wins; samples older than the retention or after
    /// now are skipped.
    Openmetrics {
        /// The file.
        file: PathBuf,
        /// Config file, for the store's path and retention.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    telemetry::init_logging(cli.log_format, cli.log_level.as_deref());
    match cli.command {
        Command::Run { config } => {
            let path = config::default_config_path(config.as_deref());
            let rt = match crate::rt::runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("postflight: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(crate::daemon::run(path)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let code = e.exit_code();
                    match &e {
                        crate::daemon::DaemonError::Config(ConfigError::Invalid { .. }) => {
                            eprintln!("postflight: invalid config:\n{e}")
                        }
                        _ => eprintln!("postflight: {e}"),
                    }
                    ExitCode::from(code)
                }
            }
        }
        Command::Check { config } => check(&config::default_config_path(config.as_deref())),
        Command::Generate { what } => generate::run(what),
        Command::Import {
            what: ImportKind::Openmetrics { file, config },
        } => import::main(&file, &config::default_config_path(config.as_deref())),
        Command::NotifyTest { receiver, config } => {
            let path = config::default_config_path(config.as_deref());
            match crate::rt::runtime() {
                Ok(rt) => ExitCode::from(rt.block_on(notify_test(&path, &receiver))),
                Err(e) => {
                    eprintln!("postflight: cannot start the async runtime: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Deploy {
            job,
            version,
            wait,
            server,
            token,
            no_supersede,
            supersede: _,
            commit,
            author,
            url,
            config,
        } => {
            let server = server.unwrap_or_else(|| {
                let path = config::default_config_path(config.as_deref());
                let listen = config::load_file(&path)
                    .map(|c| c.server.listen)
                    .unwrap_or_else(|_| config::defaults::listen());
                format!("http://{listen}")
            });
            let req = DeployRequest {
                job,
                version,
                supersede: !no_supersede,
                commit,
                author,
                url,
            };
            match crate::rt::runtime() {
                Ok(rt) => ExitCode::from(rt.block_on(deploy(&server, token.as_deref(), req, wait))),
                Err(e) => {
                    eprintln!("postflight: cannot start the async runtime: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: valid ({} jobs, {} probes, {} rules, {} routes, {} receivers, {} gates)",
                path.display(),
                c.jobs.len(),
                c.probes.len(),
                // [[rule]] and the rules of the rule files
                c.rules.len() + c.rule_groups.iter().map(|g| g.rules.len()).sum::<usize>(),
                c.routes.len(),
                c.receivers.len(),
                c.gates.len()
            );
            if let Some(shard) = c.global.shard {
                for (i, share) in c.shard_split(shard.count).iter().enumerate() {
                    let this = if i + 1 == shard.index as usize {
                        "  (this instance)"
                    } else {
                        ""
                    };
                    println!(
                        "shard {}/{}: {} probes, {} scrape targets, {} log sources{this}",
                        i + 1,
                        shard.count,
                        share.probes,
                        share.targets,
                        share.logs
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            if let ConfigError::Invalid { problems, .. } = &e {
                eprintln!(
                    "{} problem{} found",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                );
            }
            ExitCode::from(2)
        }
    }
}

/// Sends a test notification; 0 delivered, 1 failed (2 for an invalid config).
async fn notify_test(path: &std::path::Path, receiver: &str) -> u8 {
    let config = match config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let Some(rc) = config.receiver(receiver) else {
        let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "postflight: no receiver {receiver:?} in {} (receivers: {})",
            path.display(),
            names.join(", ")
        );
        return 1;
    };
    let clients = match crate::notify::Clients::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postflight: cannot build the HTTP client: {e}");
            return 1;
        }
    };
    let external = config.server.link_base();
    match crate::notify::send_test(&clients, rc, &external).await {
        Ok(d) => {
            println!(
                "delivered a test notification to {receiver} ({}): {}",
                rc.kind.type_name(),
                d.detail
            );
            0
        }
        Err(e) => {
            let kind = if e.is_retryable() {
                "temporary failure"
            } else {
                "refused"
            };
            eprintln!(
                "postflight: test notification to {receiver} failed ({kind}): {}",
                e.message()
            );
            1
        }
    }
}

/// What `deploy` sends.
struct DeployRequest {
    job: String,
    version: String,
    supersede: bool,
    commit: Option<String>,
    author: Option<String>,
    url: Option<String>,
}

/// Records a deployment and, with `wait`, follows it. Returns the exit code.
async fn deploy(server: &str, token: Option<&str>, req: DeployRequest, wait: bool) -> u8 {
    crate::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postflight: cannot build an HTTP client: {e}");
            return 2;
        }
    };
    let server = server.trim_end_matches('/');
    let mut body =
        serde_json::json!({"job": req.job, "version": req.version, "supersede": req.supersede});
    for (k, v) in [
        ("commit", req.commit),
        ("author", req.author),
        ("url", req.url),
    ] {
        if let Some(v) = v {
            body[k] = v.into();
        }
    }
    let mut post = client
        .post(format!("{server}/api/v1/deployments"))
        .json(&body);
    if let Some(t) = token {
        post = post.bearer_auth(t);
    }
    let answer = match post.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postflight: cannot reach {server}: {e}");
            return 2;
        }
    };
    let status = answer.status();
    let v: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = v
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no error message");
        eprintln!("postflight: the daemon refused the deployment ({status}): {msg}");
        return 2;
    }
    let Some(id) = v.get("id").and_then(|i| i.as_str()).map(str::to_string) else {
        eprintln!("postflight: the daemon's answer has no deployment id: {v}");
        return 2;
    };
    println!(
        "deployment {id} recorded: job {} version {}",
        req.job, req.version
    );
    if !wait {
        return 0;
    }
    let follow = follow(&client, server, &id, std::io::stdout().is_terminal());
    tokio::select! {
        code = follow => code,
        _ = tokio::signal::ctrl_c() => {
            // The watch belongs to the daemon: leaving the client changes nothing there.
            println!();
            eprintln!(
                "postflight: interrupted; deployment {id} is still under watch on the daemon \
                 (GET {server}/api/v1/deployments/{id})"
            );
            INTERRUPTED
        }
    }
}

/// The exit code of `deploy --wait` interrupted by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// Polls deployment `id` until its verdict; returns the exit code. On a terminal, one progress
/// line rewritten in place every poll; elsewhere one line per evaluation, so CI logs stay
/// readable.
async fn follow(client: &reqwest::Client, server: &str, id: &str, terminal: bool) -> u8 {
    use std::io::Write as _;
    let since = tokio::time::Instant::now();
    let mut last_evaluations = 0u64;
    let mut failures = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = client
            .get(format!("{server}/api/v1/deployments/{id}"))
            .send()
            .await;
        let d: serde_json::Value = match r {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            Ok(r) => {
                eprintln!("postflight: following deployment {id}: HTTP {}", r.status());
                return 2;
            }
            Err(e) => {
                // The daemon may be restarting: keep trying for a while before giving up.
                failures += 1;
                if failures > 120 {
                    eprintln!("postflight: lost the daemon at {server}: {e}");
                    return 2;
                }
                continue;
            }
        };
        failures = 0;
        let elapsed = since.elapsed();
        if terminal {
            print!("{}", progress_line(&d, elapsed));
            let _ = std::io::stdout().flush();
        } else {
            let evaluations = d.get("evaluations").and_then(|e| e.as_u64()).unwrap_or(0);
            if evaluations != last_evaluations {
                last_evaluations = evaluations;
                println!("{}", evaluation_line(&d, elapsed));
            }
        }
        let code = match d.get("verdict").and_then(|v| v.as_str()) {
            Some("pass") => 0,
            Some("fail") => 1,
            Some("inconclusive") => 3,
            Some("superseded") => 4,
            _ => continue,
        };
        if terminal {
            println!();
            // The table a terminal did not keep: each check's last state, once.
            print_checks(&d);
        }
        let reason = d.get("reason").and_then(|r| r.as_str()).unwrap_or("");
        println!(
            "verdict: {} ({reason})",
            d["verdict"].as_str().unwrap_or("")
        );
        return code;
    }
}

/// A field of a deployment's JSON as text: `-` for null or missing.
fn field(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::Null) | None => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// The watch's length, from the deployment's `startedAt` and `watchUntil`.
fn watch_of(d: &serde_json::Value) -> Option<Duration> {
    let t = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    (t("watchUntil")? - t("startedAt")?).to_std().ok()
}

/// `elapsed/watch`, e.g. `1m30s/30m`.
fn clock(d: &serde_json::Value, elapsed: Duration) -> String {
    let secs = Duration::from_secs(elapsed.as_secs());
    let watch = watch_of(d).map_or("?".to_string(), config::format_duration);
    format!("{}/{watch}", config::format_duration(secs))
}

/// Each check as `name state value`, separated by two spaces.
fn check_states(d: &serde_json::Value) -> String {
    let empty = Vec::new();
    d.get("checks")
        .and_then(|c| c.as_array())
        .unwrap_or(&empty)
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                field(c, "name"),
                field(c, "state"),
                field(c, "value")
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The terminal's progress line: back to the start of the line, elapsed of the watch, the
/// evaluation count, each check's state, then "clear to the end of the line" so a shorter line
/// leaves nothing of the longer one before it.
pub fn progress_line(d: &serde_json::Value, elapsed: Duration) -> String {
    format!(
        "\r[{}] #{} {}\x1b[K",
        clock(d, elapsed),
        d.get("evaluations").and_then(|e| e.as_u64()).unwrap_or(0),
        check_states(d)
    )
}

/// One evaluation off a terminal: `#3 [12s/30m] error-rate pass 0.001  latency nodata -`, then
/// the reason of each check that is not passing.
pub fn evaluation_line(d: &serde_json::Value, elapsed: Duration) -> String {
    let mut line = format!(
        "#{} [{}] {}",
        d.get("evaluations").and_then(|e| e.as_u64()).unwrap_or(0),
        clock(d, elapsed),
        check_states(d)
    );
    let empty = Vec::new();
    for c in d.get("checks").and_then(|c| c.as_array()).unwrap_or(&empty) {
        if !matches!(c.get("state").and_then(|s| s.as_str()), Some("pass")) {
            line.push_str(&format!(" · {}: {}", field(c, "name"), field(c, "reason")));
        }
    }
    line
}

/// Each check's last state, value, bound, baseline and reason, a line each.
fn print_checks(d: &serde_json::Value) {
    let empty = Vec::new();
    for c in d.get("checks").and_then(|c| c.as_array()).unwrap_or(&empty) {
        println!(
            "{:<20} {:<8} value={:<12} bound={:<16} baseline={:<12} {}",
            field(c, "name"),
            field(c, "state"),
            field(c, "value"),
            field(c, "bound"),
            field(c, "baseline"),
            field(c, "reason")
        );
    }
}
