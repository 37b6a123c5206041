//! `postflight generate`: the man pages and shell completions the Debian package ships
//! (packaging/build-deb.sh), generated from the clap definition in [`super::Cli`] so they
//! cannot drift from it. A hidden subcommand rather than a build script, which cannot see the
//! CLI's types.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Subcommand};
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::Cli;

/// What `postflight generate` writes.
#[derive(Subcommand, Debug)]
pub enum Generate {
    /// `postflight.1` and one page per subcommand (`postflight-check.1`, ...).
    Man {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// One shell's completion script, named as that shell's packaged scripts are
    /// (`postflight.bash`, `_postflight`, `postflight.fish`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Writes the man pages or the completions and prints each path written; 1 when it cannot.
pub fn run(what: Generate) -> ExitCode {
    let (out, written) = match what {
        Generate::Man { out } => {
            let written = write_man_pages(&out);
            (out, written)
        }
        Generate::Completions { shell, out } => {
            let written =
                clap_complete::generate_to(shell, &mut visible_command(), "postflight", &out)
                    .map(|path| vec![path]);
            (out, written)
        }
    };
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postflight: cannot write into {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

/// The command line as operators see it: [`Cli`]'s without its hidden subcommands, which
/// clap_complete would offer for completion (clap_mangen leaves them out by itself). clap
/// cannot remove a subcommand, so this rebuilds the top level from [`Cli`]'s parts.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    clap::Command::new("postflight")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
}

/// The DESCRIPTION of `man postflight`, longer than `--help`'s line.
const DESCRIPTION: &str = "postflight watches services in the hours after a deployment, as \
    one daemon: it probes health endpoints, scrapes Prometheus metrics, evaluates PromQL alert \
    rules and post-deployment gates, keeps its history in an embedded store, and pages people \
    through Slack, email, webhooks and PagerDuty.\n\n\
    Installed from the Debian package it runs as the postflight systemd service, enabled but \
    not started: edit /etc/postflight/postflight.toml (and /etc/postflight/env for secrets), \
    then run systemctl start postflight.";

/// The FILES section of `man postflight`: where the package puts what an operator edits.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/postflight/postflight.toml",
        "The config (a conffile). Validate an edit with postflight check, apply it with \
         systemctl reload postflight: a config that does not check is refused and the running \
         one stays.",
    ),
    (
        "/etc/postflight/env",
        "Secrets as KEY=value lines (mode 0600, read by systemd), referenced as ${KEY} in the \
         config.",
    ),
    (
        "/var/lib/postflight",
        "The store: history, samples, the outbox, silences and deployments (the unit's \
         StateDirectory).",
    ),
    (
        "/lib/systemd/system/postflight.service",
        "The unit: Type=notify with a watchdog, a dynamic user, and reload on SIGHUP.",
    ),
];

/// The EXIT STATUS section of `man postflight` (SPEC §1).
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success: a clean stop, a valid config, a passing deployment.",
    ),
    (
        "1",
        "A runtime failure, a failed notification, or a failing deployment.",
    ),
    ("2", "An invalid config or a usage error."),
    (
        "3",
        "deploy --wait: the deployment's verdict is inconclusive.",
    ),
    (
        "4",
        "deploy --wait: a newer deployment of the job superseded this one.",
    ),
    (
        "130",
        "deploy --wait interrupted by Ctrl-C; the daemon goes on watching the deployment.",
    ),
];

/// Writes `postflight.1` and a page per subcommand into `out`; the main page gains the
/// FILES, EXIT STATUS and SEE ALSO sections an operator of the packaged service looks for.
fn write_man_pages(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let source = concat!("postflight ", env!("CARGO_PKG_VERSION"));
    // No page for clap's `help` subcommand (as clap_mangen::generate_to does). Built, each
    // subcommand is named `postflight-check` and so on: its page's title and file name.
    let mut cmd = Cli::command()
        .disable_help_subcommand(true)
        .long_about(DESCRIPTION);
    cmd.build();
    let mut written = Vec::new();
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let man = clap_mangen::Man::new(sub.clone()).source(source);
        written.push(man.generate_to(out)?);
    }

    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(source)
        .render(&mut page)?;
    let mut more = Roff::new();
    more.control("SH", ["FILES"]);
    for (path, what) in FILES {
        more.control("TP", [])
            .text([italic(*path)])
            .text([roman(*what)]);
    }
    more.control("SH", ["EXIT STATUS"]);
    for (code, what) in EXIT_STATUS {
        more.control("TP", [])
            .text([bold(*code)])
            .text([roman(*what)]);
    }
    more.control("SH", ["SEE ALSO"]).text([roman(
        "postflight-run(1), postflight-check(1), postflight-deploy(1), \
         postflight-notify-test(1), postflight-import(1), systemctl(1), journalctl(1), \
         /usr/share/doc/postflight/README.md",
    )]);
    more.to_writer(&mut page)?;
    let path = out.join("postflight.1");
    std::fs::write(&path, page)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests;
