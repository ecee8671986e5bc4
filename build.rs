//! Build script: marks a build made as root with `cfg(jobrun_root)`, one
//! made where libfaketime is installed with `cfg(jobrun_faketime)` (its path in
//! `JOBRUN_LIBFAKETIME`), and one that has the production static binary to
//! test (`JOBRUN_STATIC_BIN`, or CI on glibc) with `cfg(jobrun_static_bin)`.
//!
//! Some behaviour only exists for root (running a job as another user,
//! chowned crontabs, a PID namespace for the PID-1 tests). Those tests are
//! `#[cfg_attr(not(jobrun_root), ignore = "needs root")]`, so a developer's
//! `cargo test` reports them as ignored rather than as passed, and CI (which
//! runs as root) runs them. The clock tests that step a real daemon's clock
//! through libfaketime are ignored the same way where it is not installed
//! (`apt-get install faketime`; then `touch build.rs`). Knows nothing of
//! jobrun itself.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(jobrun_root)");
    println!("cargo::rerun-if-changed=build.rs");
    // A rebuild as another user goes through a different target directory or
    // a fresh one in practice; USER changing is the cheap signal we have.
    println!("cargo::rerun-if-env-changed=USER");
    if effective_uid() == Some(0) {
        println!("cargo::rustc-cfg=jobrun_root");
    }
    // The production (static glibc) build, built once by .ci/run, is tested
    // on a host whose nsswitch.conf names modules (tests/integration/
    // static_build.rs). Under CI on glibc the test runs (and fails when the
    // binary is missing); elsewhere only when JOBRUN_STATIC_BIN names it.
    println!("cargo::rustc-check-cfg=cfg(jobrun_static_bin)");
    println!("cargo::rerun-if-env-changed=JOBRUN_STATIC_BIN");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|v| v == "gnu");
    if std::env::var_os("JOBRUN_STATIC_BIN").is_some() || (ci && gnu) {
        println!("cargo::rustc-cfg=jobrun_static_bin");
    }
    println!("cargo::rustc-check-cfg=cfg(jobrun_faketime)");
    if let Some(lib) = libfaketime() {
        println!("cargo::rustc-cfg=jobrun_faketime");
        println!("cargo::rustc-env=JOBRUN_LIBFAKETIME={lib}");
    }
}

/// Where Debian, Ubuntu, Fedora and a source build put libfaketime.
fn libfaketime() -> Option<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib64/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

/// The effective uid of the build, from /proc (no libc needed at build time).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}
