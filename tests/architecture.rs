//! The module layers of docs/architecture.md, checked on the source: a module's non-test code
//! names only modules of lower layers (`crate::x` paths and `use crate::{x, ...}` lists).
//! Unit tests may use higher layers as fixtures (the ingest tests parse pages with the scrape
//! parser), so `tests.rs` files and `#[cfg(test)]` items are not checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom to top. A module may import from the layers below its own, never beside or above.
const LAYERS: &[&[&str]] = &[
    &[
        "clock",
        "rt",
        "liveness",
        "telemetry",
        "template",
        "targets",
    ],
    &["series"],
    &["alert", "promql", "ingest"],
    &["config"],
    &["store"],
    &["notify", "probe"],
    &["scrape", "dispatch", "logs", "remote"],
    &["rules", "deploy"],
    &["api"],
    &["daemon"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src is readable") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's lines without `#[cfg(test)]` items (a `mod x;` line, or a braced item).
fn non_test_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push((n + 1, line));
            continue;
        }
        let mut depth = 0i32;
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("#[") {
                continue;
            }
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth <= 0 && (l.trim_end().ends_with(';') || l.trim_end().ends_with('}')) {
                break;
            }
        }
    }
    out
}

/// The top-level modules a line names through `crate::`.
fn named_modules(line: &str) -> BTreeSet<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = list.split('}').next().unwrap_or("");
            for item in list.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut unknown = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "lib" | "main") || rel.ends_with("tests.rs") {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            unknown.insert(top);
            continue;
        };
        let text = std::fs::read_to_string(f).expect("readable");
        for (n, line) in non_test_lines(&text) {
            for m in named_modules(line) {
                if m == top || m.is_empty() {
                    continue;
                }
                match layer_of(&m) {
                    Some(l) if l < own => {}
                    Some(_) => wrong.push(format!("{}:{n}: {top} imports {m}", rel.display())),
                    // Items of the crate root (`crate::install_crypto_provider`).
                    None if !src.join(format!("{m}.rs")).exists() && !src.join(&m).is_dir() => {}
                    None => {
                        unknown.insert(m);
                    }
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS (add them to docs/architecture.md too): {unknown:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that run up or across the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_and_skips_test_items() {
    assert_eq!(
        named_modules("use crate::{alert::Alert, series::Labels};"),
        BTreeSet::from(["alert".to_string(), "series".to_string()])
    );
    assert_eq!(
        named_modules("    let x = crate::rt::blocking(|| 1); // crate::api"),
        BTreeSet::from(["rt".to_string()])
    );
    let text = "use crate::series;\n#[cfg(test)]\nfn helper() {\n    crate::api::x();\n}\nfn f() {}\n#[cfg(test)]\nmod tests;\n";
    let kept: Vec<&str> = non_test_lines(text).into_iter().map(|(_, l)| l).collect();
    assert_eq!(kept, ["use crate::series;", "fn f() {}"]);
}
