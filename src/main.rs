//! The `postflight` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// jemalloc, with its options built in (`.cargo/config.toml`): freed pages go back to the
/// kernel within a second from a background thread, so RSS follows the live heap, and all
/// threads share one arena. The `system-allocator` feature keeps the C library's malloc
/// instead, for heap profilers that hook it (heaptrack):
/// `cargo build --release --features system-allocator`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    postflight::cli::main(postflight::cli::Cli::parse())
}
