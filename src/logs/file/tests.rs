use super::*;
use std::io::Write;

/// Polls `fs` once; returns the lines read and the bytes consumed.
fn poll(fs: &mut FileSet) -> (Vec<String>, u64, PollReport) {
    let mut lines = Vec::new();
    let mut bytes = 0;
    let r = fs.poll(
        |l, _| lines.push(String::from_utf8_lossy(l).into_owned()),
        |b| bytes += b,
    );
    (lines, bytes, r)
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn glob_in(dir: &Path) -> String {
    format!("{}/*.log", dir.display())
}

#[test]
fn partial_line_waits_for_its_newline_and_restart_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    append(&p, "one\ntw");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    let (lines, bytes, r) = poll(&mut fs);
    assert_eq!(lines, ["one"]);
    assert_eq!(bytes, 4);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    // The stored position is the start of the partial line.
    let saved = fs.positions();
    assert_eq!(saved[0].offset, 4);
    append(&p, "o\nthree\n");
    assert_eq!(poll(&mut fs).0, ["two", "three"]);
    // A restart from the saved positions reads the partial line again whole, nothing else.
    let mut again = FileSet::new(&glob_in(dir.path()), saved, true);
    assert_eq!(poll(&mut again).0, ["two", "three"]);
}

#[test]
fn start_at_end_skips_existing_lines_but_new_files_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("old.log"), "before\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), true);
    assert!(poll(&mut fs).0.is_empty());
    append(&dir.path().join("old.log"), "after\n");
    append(&dir.path().join("new.log"), "first\nsecond\n");
    let mut got = poll(&mut fs).0;
    got.sort();
    assert_eq!(got, ["after", "first", "second"]);
}

#[test]
fn rename_and_create_rotation_counts_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    append(&p, "a1\na2\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    assert_eq!(poll(&mut fs).0, ["a1", "a2"]);
    append(&p, "a3\n");
    // Rotated out of the glob, with a late line written to the old file, then a new file.
    std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
    append(&dir.path().join("app.log.1"), "a4\n");
    append(&p, "b1\n");
    let mut got = poll(&mut fs).0;
    got.sort();
    assert_eq!(got, ["a3", "a4", "b1"]);
    // Rotated within the glob: the renamed file keeps its position.
    std::fs::rename(&p, dir.path().join("app.1.log")).unwrap();
    append(&p, "c1\n");
    assert_eq!(poll(&mut fs).0, ["c1"]);
    assert!(poll(&mut fs).0.is_empty());
}

#[test]
fn copytruncate_reads_the_file_again_from_its_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    append(&p, "line one\nline two\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    assert_eq!(poll(&mut fs).0.len(), 2);
    // Truncated and written again, already longer than before by the next poll.
    std::fs::write(&p, "fresh 1\nfresh 2\nfresh 3 is longer\n").unwrap();
    let (lines, _, r) = poll(&mut fs);
    assert_eq!(lines, ["fresh 1", "fresh 2", "fresh 3 is longer"]);
    assert_eq!(r.truncations, 1);
    // Truncated to empty, then one line.
    std::fs::write(&p, "").unwrap();
    assert!(poll(&mut fs).0.is_empty());
    append(&p, "x\n");
    assert_eq!(poll(&mut fs).0, ["x"]);
}

#[test]
fn a_file_replaced_under_the_same_name_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    append(&p, "old content 1\nold content 2\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    assert_eq!(poll(&mut fs).0.len(), 2);
    std::fs::remove_file(&p).unwrap();
    append(&p, "new content\n");
    assert_eq!(poll(&mut fs).0, ["new content"]);
    // Deleted: nothing, no problem (an empty glob is not an error).
    std::fs::remove_file(&p).unwrap();
    let (lines, _, r) = poll(&mut fs);
    assert!(lines.is_empty() && r.problems.is_empty());
}

#[test]
fn a_restored_position_on_a_file_with_other_content_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    append(&p, "aaaa\nbbbb\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    poll(&mut fs);
    let saved = fs.positions();
    // Same inode, other first bytes (rewritten in place while stopped).
    std::fs::write(&p, "cccc\ndddd\neeee\n").unwrap();
    let mut again = FileSet::new(&glob_in(dir.path()), saved, false);
    assert_eq!(poll(&mut again).0, ["cccc", "dddd", "eeee"]);
}

#[test]
fn long_lines_are_cut_and_counted_once_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    // 200 KiB without a newline, written in pieces across polls.
    for _ in 0..4 {
        append(&p, &"x".repeat(50 * 1024));
        let (lines, _, _) = poll(&mut fs);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert!(fs.files.values().all(|t| t.partial.len() <= MAX_LINE));
    }
    append(&p, "tail of the long line\nnext\n");
    let (lines, _, _) = poll(&mut fs);
    assert_eq!(lines, ["next"]);
    // Exactly one cut line was counted for the 200 KiB run.
    let mut again = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    let (lines, bytes, r) = poll(&mut again);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), MAX_LINE);
    assert_eq!(r.cut_lines, 1);
    assert_eq!(bytes, std::fs::metadata(&p).unwrap().len());
}

#[test]
fn invalid_utf8_is_a_line_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.log");
    std::fs::write(&p, b"ok\n\xff\xfe bad \xc3\n").unwrap();
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    let (lines, _, r) = poll(&mut fs);
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains('\u{fffd}'));
    assert!(r.problems.is_empty());
}

#[test]
fn unreadable_things_are_reasons_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist.
    let mut fs = FileSet::new(
        &format!("{}/missing/*.log", dir.path().display()),
        Vec::new(),
        false,
    );
    let (_, _, r) = poll(&mut fs);
    assert!(r.problems[0].contains("does not exist"), "{:?}", r.problems);
    // A directory where a file was expected, and a FIFO.
    std::fs::create_dir(dir.path().join("sub.log")).unwrap();
    let fifo = dir.path().join("pipe.log");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()));
    append(&dir.path().join("good.log"), "fine\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    let (lines, _, r) = poll(&mut fs);
    assert_eq!(lines, ["fine"], "the readable file is still read");
    let all = r.problems.join("\n");
    assert!(all.contains("sub.log is a directory"), "{all}");
    assert!(all.contains("pipe.log is a FIFO"), "{all}");
}

#[test]
fn the_position_of_a_file_gone_for_good_is_dropped_even_beside_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.log");
    append(&gone, "one\n");
    append(&dir.path().join("kept.log"), "two\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    poll(&mut fs);
    let saved = fs.positions();
    assert_eq!(saved.len(), 2);
    // Stopped; meanwhile one file is deleted and a FIFO appears under the glob.
    std::fs::remove_file(&gone).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe.log"))
            .status()
            .unwrap()
            .success()
    );
    let mut fs = FileSet::new(&glob_in(dir.path()), saved, false);
    let (lines, _, r) = poll(&mut fs);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(r.problems[0].contains("is a FIFO"), "{:?}", r.problems);
    let paths: Vec<String> = fs.positions().into_iter().map(|p| p.path).collect();
    assert_eq!(paths, [dir.path().join("kept.log").display().to_string()]);
}

#[test]
fn bytes_written_during_a_poll_are_behind_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    append(&p, "one\ntwo\n");
    append(&dir.path().join("b.log"), "three\n");
    let mut fs = FileSet::new(&glob_in(dir.path()), Vec::new(), false);
    let mut wrote = false;
    let r = fs.poll(
        |l, _| {
            // The writer adds a line while the first file is being read.
            if l == b"one" && !wrote {
                append(&p, "late\n");
                wrote = true;
            }
        },
        |_| {},
    );
    assert_eq!((r.files, r.behind), (2, 5));
    let (lines, _, r) = poll(&mut fs);
    assert_eq!(lines, ["late"]);
    assert_eq!((r.files, r.behind), (2, 0));
}
