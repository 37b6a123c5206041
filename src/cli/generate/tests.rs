use super::*;

#[test]
fn completions_offer_the_operators_commands_and_not_generate() {
    let mut script = Vec::new();
    let mut cmd = visible_command();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut cmd,
        "postflight",
        &mut script,
    );
    let script = String::from_utf8(script).unwrap();
    let top = script
        .lines()
        .find(|l| l.trim_start().starts_with("opts=\"-"))
        .unwrap();
    for word in [
        "--log-level",
        "--version",
        "run",
        "check",
        "deploy",
        "notify-test",
        "import",
    ] {
        assert!(top.split([' ', '"']).any(|w| w == word), "{word}: {top}");
    }
    assert!(!script.contains("generate"), "{script}");
}

#[test]
fn man_pages_cover_every_operator_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = write_man_pages(dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "postflight-check.1",
            "postflight-deploy.1",
            "postflight-import.1",
            "postflight-notify-test.1",
            "postflight-run.1",
            "postflight.1"
        ]
    );
    let main = std::fs::read_to_string(dir.path().join("postflight.1")).unwrap();
    assert!(main.contains(".SH FILES") && main.contains("/etc/postflight/env"));
}
