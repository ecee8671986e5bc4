//! The fuzz targets on a stable toolchain: every checked-in seed of
//! `fuzz/corpus/<target>/` runs once through the very bodies libFuzzer runs
//! (`fuzz/src/targets.rs`, included here), so `cargo test` keeps the targets
//! compiling and their seeds passing without nightly or libFuzzer.
//!
//! Must not know: libFuzzer, or how the seeds were made (`fuzz/seeds.py`).

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/targets.rs"]
mod targets;

/// Runs `body` on every seed of `target`, naming the seed that fails.
fn run_corpus(target: &str, body: fn(&[u8]), at_least: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= at_least,
        "{}: {} seeds, expected at least {at_least}",
        dir.display(),
        seeds.len()
    );
    let mut failures = Vec::new();
    for seed in seeds {
        let data = std::fs::read(&seed).expect("a readable seed");
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            failures.push(format!("{}: {why}", seed.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz target `{target}` fails on {} seed(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fuzz_crontab_target_passes_its_seed_corpus() {
    run_corpus("crontab", targets::crontab, 55);
}

#[test]
fn fuzz_supercronic_target_passes_its_seed_corpus() {
    run_corpus("supercronic", targets::supercronic, 10);
}

#[test]
fn fuzz_yaml_target_passes_its_seed_corpus() {
    run_corpus("yaml", targets::yaml, 10);
}

#[test]
fn fuzz_expression_target_passes_its_seed_corpus() {
    run_corpus("expression", targets::expression, 50);
}

#[test]
fn fuzz_values_target_passes_its_seed_corpus() {
    run_corpus("values", targets::values, 16);
}
