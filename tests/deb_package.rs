//! The Debian package (packaging/build-deb.sh) as an operator gets it. Anywhere dpkg-deb runs:
//! its files, modes, conffiles and metadata. As root on a Debian machine (CI): a real
//! `dpkg -i`, every file in place, the config checks, the man page renders, completions load,
//! systemd accepts the unit, an edited config survives a reinstall, a broken one stops the
//! configure step, and `dpkg --purge` leaves nothing behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const CONFIG: &str = "/etc/postflight/postflight.toml";
const ENV_FILE: &str = "/etc/postflight/env";
const UNIT: &str = "/lib/systemd/system/postflight.service";
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants/postflight.service";

/// Every file the package installs besides the docs, with its mode.
const FILES: &[(&str, u32)] = &[
    ("/usr/bin/postflight", 0o755),
    (UNIT, 0o644),
    (CONFIG, 0o644),
    (ENV_FILE, 0o600),
    ("/usr/share/man/man1/postflight.1.gz", 0o644),
    ("/usr/share/man/man1/postflight-run.1.gz", 0o644),
    ("/usr/share/man/man1/postflight-check.1.gz", 0o644),
    ("/usr/share/man/man1/postflight-deploy.1.gz", 0o644),
    ("/usr/share/man/man1/postflight-notify-test.1.gz", 0o644),
    ("/usr/share/man/man1/postflight-import.1.gz", 0o644),
    ("/usr/share/bash-completion/completions/postflight", 0o644),
    ("/usr/share/zsh/vendor-completions/_postflight", 0o644),
    (
        "/usr/share/fish/vendor_completions.d/postflight.fish",
        0o644,
    ),
    ("/usr/share/doc/postflight/README.md", 0o644),
    ("/usr/share/doc/postflight/copyright", 0o644),
];

/// The docs the package installs: the examples, and docs/ when the repository has one.
fn doc_files() -> Vec<String> {
    let mut files = Vec::new();
    for (dir, into) in [("config/examples", "examples"), ("docs", "docs")] {
        let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join(dir)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".toml") || name.ends_with(".md") {
                files.push(format!("/usr/share/doc/postflight/{into}/{name}"));
            }
        }
    }
    files
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn tools(names: &[&str]) -> bool {
    names.iter().all(|t| common::require(t))
}

fn arch() -> String {
    stdout(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

/// The package built from the binary under test, once per test binary (building strips and
/// compresses a large dev binary: about ten seconds).
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb");
        let _ = std::fs::remove_dir_all(&out);
        let built = stdout(
            Command::new("bash")
                .arg(format!("{ROOT}/packaging/build-deb.sh"))
                .arg(env!("CARGO_BIN_EXE_postflight"))
                .arg(&out),
        );
        let deb = PathBuf::from(built.trim());
        assert_eq!(
            deb,
            out.join(format!("postflight_{VERSION}_{}.deb", arch()))
        );
        deb
    })
}

/// The package's entries from `dpkg-deb --contents`: path (without the leading `.`, no
/// trailing `/`) to permissions and owner as `ls -l` prints them.
fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    stdout(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 6, "{l}");
            let path = f[5].trim_start_matches('.').trim_end_matches('/');
            (path.to_string(), (f[0].to_string(), f[1].to_string()))
        })
        .filter(|(path, _)| !path.is_empty())
        .collect()
}

/// `rwxr-xr-x` for 0o755, as `ls -l` prints a mode.
fn ls_mode(mode: u32) -> String {
    (0..9)
        .map(|i| {
            if mode & (0o400 >> i) == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}

#[test]
fn deb_holds_every_file_with_its_mode_and_metadata() {
    if !tools(&["dpkg-deb", "dpkg-shlibdeps", "strip", "readelf"]) {
        return;
    }
    let deb = deb();
    let entries = contents(deb);
    for (path, (mode, owner)) in &entries {
        assert_eq!(owner, "root/root", "{path}");
        assert!(!path.starts_with("/usr/local"), "{path}");
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{path}");
        }
    }
    let files: BTreeSet<&str> = entries
        .iter()
        .filter(|(_, (mode, _))| !mode.starts_with('d'))
        .map(|(path, _)| path.as_str())
        .collect();
    let docs = doc_files();
    let expected: BTreeSet<&str> = FILES
        .iter()
        .map(|(p, _)| *p)
        .chain(docs.iter().map(String::as_str))
        .collect();
    assert_eq!(files, expected);
    for (path, mode) in FILES {
        assert_eq!(entries[*path].0, format!("-{}", ls_mode(*mode)), "{path}");
    }

    let field = |name: &str| {
        stdout(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "postflight");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Architecture"), arch());
    assert!(
        field("Depends").contains("libc6 (>= "),
        "{}",
        field("Depends")
    );
    assert!(field("Recommends").contains("ca-certificates"));
    assert!(!field("Description").is_empty());

    // `dpkg-deb --info` alone lists the control members; with a member's name, prints it.
    let info =
        |member: &[&str]| stdout(Command::new("dpkg-deb").arg("--info").arg(deb).args(member));
    let listed = info(&[]);
    for member in ["postinst", "prerm", "postrm", "conffiles", "md5sums"] {
        assert!(listed.contains(member), "no {member} in\n{listed}");
    }
    assert_eq!(info(&["conffiles"]), format!("{CONFIG}\n{ENV_FILE}\n"));
    assert!(info(&["postinst"]).contains("/usr/bin/postflight check -c \"$config\""));

    // What the files hold: the repository's config, env template and unit (pointed at
    // /usr/bin), and a stripped binary.
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    let read = |p: &str| std::fs::read_to_string(dir.path().join(&p[1..])).unwrap();
    let repo = |p: &str| std::fs::read_to_string(Path::new(ROOT).join(p)).unwrap();
    assert_eq!(read(CONFIG), repo("config/systemd.toml"));
    assert_eq!(read(ENV_FILE), repo("packaging/env"));
    assert_eq!(
        read(UNIT),
        repo("systemd/postflight.service").replace("/usr/local/bin/", "/usr/bin/")
    );
    assert!(
        read(UNIT).contains("ExecStart=/usr/bin/postflight run -c /etc/postflight/postflight.toml")
    );
    let sections = stdout(
        Command::new("readelf")
            .args(["--section-headers", "--wide"])
            .arg(dir.path().join("usr/bin/postflight")),
    );
    assert!(
        !sections.contains(".symtab") && !sections.contains(".debug_info"),
        "the binary is not stripped:\n{sections}"
    );
}

/// Holds an exclusive lock on a file while it lives, through util-linux's flock(1): test runs
/// from other checkouts on this machine wait instead of installing over each other. The holder
/// is a child that exits when its stdin closes, so the lock also goes when this process dies.
struct MachineLock(Child);

impl MachineLock {
    fn acquire() -> MachineLock {
        let mut child = Command::new("flock")
            .args(["--wait", "900", "/run/lock/postflight-deb-test.lock"])
            .args(["-c", "echo locked && exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line, "locked\n",
            "no lock on /run/lock/postflight-deb-test.lock"
        );
        MachineLock(child)
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Purges the package when the test ends, passed or not, then releases the lock.
struct Installed {
    /// Whether the test made /var/lib/private (systemd's DynamicUser state root), to remove.
    made_private: bool,
    _lock: MachineLock,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "postflight"])
            .stdin(Stdio::null())
            .output();
        if self.made_private {
            let _ = std::fs::remove_dir("/var/lib/private");
        }
    }
}

fn dpkg(args: &[&str]) -> Output {
    Command::new("dpkg")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// dpkg's status of the package: `install ok installed`, or empty when dpkg does not know it.
fn status() -> String {
    let out = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", "postflight"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn gone(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_err()
}

#[test]
fn deb_installs_checks_its_config_and_purges_cleanly() {
    if !tools(&[
        "dpkg",
        "dpkg-deb",
        "dpkg-shlibdeps",
        "strip",
        "man",
        "systemd-analyze",
        "flock",
    ]) {
        return;
    }
    if stdout(Command::new("id").arg("-u")).trim() != "0" {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: the package test must install"
        );
        eprintln!("skipping: installing the package needs root");
        return;
    }
    let deb = deb();
    let lock = MachineLock::acquire();
    // Never clobber a real installation or a hand-installed binary.
    let before = status();
    assert!(
        before.is_empty() || before.ends_with(" not-installed"),
        "postflight is installed here ({before}); this test installs and purges it: \
         dpkg --purge postflight first"
    );
    assert!(
        gone("/usr/bin/postflight"),
        "/usr/bin/postflight exists outside the package"
    );
    // What the purge must remove: every path of the package that is not there before.
    let new_paths: Vec<String> = contents(deb).into_keys().filter(|p| gone(p)).collect();
    let installed = Installed {
        made_private: gone("/var/lib/private"),
        _lock: lock,
    };

    let out = dpkg(&["--install", deb.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "dpkg -i: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(), "install ok installed");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{CONFIG}: valid")),
        "postinst did not check the config: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    for (path, mode) in FILES {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{path}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path}");
    }
    for path in doc_files() {
        assert!(Path::new(&path).is_file(), "{path}");
    }
    let version = stdout(Command::new("/usr/bin/postflight").arg("--version"));
    assert_eq!(version.trim(), format!("postflight {VERSION}"));
    let check = stdout(Command::new("/usr/bin/postflight").args(["check", "-c", CONFIG]));
    assert!(check.contains("valid"), "{check}");

    // `man postflight` finds the page and it renders with its sections.
    let found = stdout(Command::new("man").args(["-w", "postflight"]));
    assert_eq!(found.trim(), "/usr/share/man/man1/postflight.1.gz");
    let page = stdout(
        Command::new("man")
            .args(["-l", "/usr/share/man/man1/postflight.1.gz"])
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"),
    );
    for needle in [
        "NAME",
        "postflight - ",
        "SYNOPSIS",
        "--log-level",
        "postflight-check(1)",
        "FILES",
        ENV_FILE,
        "EXIT STATUS",
    ] {
        assert!(
            page.contains(needle),
            "no {needle:?} in the man page:\n{page}"
        );
    }
    let check_page = stdout(
        Command::new("man")
            .args(["-l", "/usr/share/man/man1/postflight-check.1.gz"])
            .env("MANPAGER", "cat"),
    );
    assert!(check_page.contains("--config"), "{check_page}");

    // bash completes the subcommands (not the hidden `generate`) and their options.
    let completed = stdout(Command::new("bash").arg("-c").arg(
        ". /usr/share/bash-completion/completions/postflight
         COMP_WORDS=(postflight ''); COMP_CWORD=1; _postflight postflight '' postflight
         echo \"${COMPREPLY[*]}\"
         COMP_WORDS=(postflight check --c); COMP_CWORD=2; _postflight postflight --c check
         echo \"${COMPREPLY[*]}\"",
    ));
    let lines: Vec<&str> = completed.lines().collect();
    for sub in ["run", "check", "deploy", "notify-test"] {
        assert!(lines[0].split(' ').any(|w| w == sub), "{completed}");
    }
    assert!(!lines[0].contains("generate"), "{completed}");
    assert!(lines[1].contains("--config"), "{completed}");
    let zsh = std::fs::read_to_string("/usr/share/zsh/vendor-completions/_postflight").unwrap();
    assert!(zsh.starts_with("#compdef postflight"));
    let fish =
        std::fs::read_to_string("/usr/share/fish/vendor_completions.d/postflight.fish").unwrap();
    assert!(fish.contains("complete -c postflight"));

    // The installed unit, with its binary and man page in place, verifies and stays hardened.
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert!(
        verify.stderr.is_empty(),
        "warnings: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let level = common::exposure(Path::new(UNIT));
    assert!(level <= 2.0, "exposure {level} > 2.0");
    // Enabled (also without a running systemd), not started.
    assert_eq!(std::fs::read_link(ENABLED).unwrap(), Path::new(UNIT));

    // An edited config, with a secret from the env file, survives a reinstall, and the
    // configure step checks it with the env file's variables.
    let edited = std::fs::read_to_string(CONFIG).unwrap().replace(
        "labels = { env = \"production\" }",
        "labels = { env = \"${POSTFLIGHT_TEST_ENV}\" }",
    );
    assert!(edited.contains("POSTFLIGHT_TEST_ENV"));
    std::fs::write(CONFIG, &edited).unwrap();
    let mut env = std::fs::read_to_string(ENV_FILE).unwrap();
    env.push_str("POSTFLIGHT_TEST_ENV='edited by hand'\n");
    std::fs::write(ENV_FILE, &env).unwrap();
    let out = dpkg(&["--install", deb.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "reinstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    assert_eq!(std::fs::read_to_string(ENV_FILE).unwrap(), env);
    assert_eq!(
        std::fs::metadata(ENV_FILE).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    // A config that does not check stops the configure step (a restart would stop the
    // daemon); fixed, `dpkg --configure` finishes it.
    std::fs::write(CONFIG, format!("{edited}\n[server]\n")).unwrap();
    let out = dpkg(&["--install", deb.to_str().unwrap()]);
    assert!(!out.status.success(), "a broken config was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not check"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(), "install ok half-configured");
    std::fs::write(CONFIG, &edited).unwrap();
    run(Command::new("dpkg").args(["--configure", "postflight"]));
    assert_eq!(status(), "install ok installed");

    // The store as systemd lays out a DynamicUser's StateDirectory; the purge removes it.
    std::fs::create_dir_all("/var/lib/private/postflight/segments").unwrap();
    std::fs::write("/var/lib/private/postflight/db", "state").unwrap();
    std::os::unix::fs::symlink("private/postflight", "/var/lib/postflight").unwrap();

    let out = dpkg(&["--purge", "postflight"]);
    assert!(
        out.status.success(),
        "purge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = status();
    assert!(
        after.is_empty() || after.ends_with(" not-installed"),
        "{after}"
    );
    let left: Vec<&String> = new_paths.iter().filter(|p| !gone(p)).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    for path in [
        "/etc/postflight",
        "/var/lib/postflight",
        "/var/lib/private/postflight",
        ENABLED,
        "/var/lib/systemd/deb-systemd-helper-enabled/postflight.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/postflight.service",
        "/var/lib/dpkg/info/postflight.list",
        "/var/lib/dpkg/info/postflight.postrm",
    ] {
        assert!(gone(path), "left after purge: {path}");
    }
    drop(installed);
}
