//! Where the shared exposition corpus is, for tests and benchmarks.

use std::path::{Path, PathBuf};

/// `$POSTFLIGHT_CORPUS` if set, else `$CARGO_MANIFEST_DIR/../shared/corpus/exposition` (a
/// checkout beside `shared/`), else `../../shared/...` (a git worktree one level deeper).
pub fn corpus_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("POSTFLIGHT_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("../shared/corpus/exposition"),
            root.join("../../shared/corpus/exposition"),
        ])
        .find(|p| p.is_dir())
}
