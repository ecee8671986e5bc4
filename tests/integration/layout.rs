//! The house rule that data flows one way (STYLE.md): lower rooms never name
//! higher ones. Checked by reading the sources, like `just` checks its rules.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return out;
    }
    for entry in std::fs::read_dir(dir).expect("reading src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Fails when any file of `room` contains one of `banned`.
#[track_caller]
fn room_does_not_name(room: &str, banned: &[&str]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_files(&src.join(room)) {
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        // Code only: module docs say what a room must not know, by name.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in banned {
            assert!(
                !code.contains(word),
                "{} names `{word}`, which its room must not know (see STYLE.md)",
                file.display()
            );
        }
    }
}

const HIGHER: &[&str] = &[
    "crate::store",
    "crate::runner",
    "crate::fire",
    "crate::daemon",
    "crate::cli",
    "crate::lock",
];

#[test]
fn pure_rooms_know_no_sqlite_tokio_process_or_higher_room() {
    let io = [
        "rusqlite",
        "tokio",
        "std::process",
        "Utc::now",
        "SystemTime::now",
    ];
    for room in [
        "schedule",
        "source",
        "plan.rs",
        "plan",
        "job.rs",
        "job_env.rs",
        "limits.rs",
        "health.rs",
        "users.rs",
    ] {
        room_does_not_name(room, &io);
        room_does_not_name(room, HIGHER);
    }
}

#[test]
fn runner_and_store_do_not_know_each_other() {
    for room in ["runner.rs", "runner"] {
        room_does_not_name(
            room,
            &["crate::store", "rusqlite", "crate::lock", "crate::plan"],
        );
    }
    room_does_not_name(
        "store",
        &[
            "crate::runner",
            "std::process",
            "tokio",
            "crate::lock",
            "crate::plan",
        ],
    );
    room_does_not_name("lock.rs", &["rusqlite", "crate::store", "crate::runner"]);
}

#[test]
fn no_helper_grab_bags() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_files(&src) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            !["utils.rs", "helpers.rs", "misc.rs", "common.rs"].contains(&name),
            "{}: name a module for what it owns",
            file.display()
        );
    }
}
