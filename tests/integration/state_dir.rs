//! The state directory's safety end to end: a read-only one is refused at a
//! daemon's start (with or without SQLite's `-wal`/`-shm` files beside the
//! database), and still read by the read-only commands.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::Test;

/// A state directory with a recorded run, made by a real `jobrun run`.
fn state_with_history() -> Test {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: hello\n    schedule: \"0 0 1 1 *\"\n    command: \"echo hi\"\n",
    );
    t.run_args(["--config", "{root}/jobs.yaml", "run", "hello"])
        .expect_code(0);
    t
}

/// Runs `jobrun ARGS` through `wrapper` (a command that ends by running
/// its trailing arguments), waits at most 20 s for it to exit, and returns
/// its code, stdout and stderr.
fn run_through(t: &Test, wrapper: &[String], args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_jobrun"))
        .args(args)
        .env_remove("JOBRUN_CONFIG")
        .env("JOBRUN_STATE_DIR", t.path("state"))
        .current_dir(t.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting jobrun");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for jobrun") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jobrun {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |pipe: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        pipe.expect("piped")
            .read_to_string(&mut text)
            .expect("reading a pipe");
        text
    };
    let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn std::io::Read));
    let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn std::io::Read));
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// Checks what a read-only state directory does: the daemon refuses to
/// start (with the `-wal`/`-shm` files present and without them), and
/// `history` still reads it.
fn read_only_state_is_refused(t: &Test, wrapper: &[String], set_writable: &dyn Fn(bool)) {
    let state = t.path("state");
    let daemon = ["daemon", "--config", "{root}/jobs.yaml"];
    let daemon: Vec<String> = daemon
        .iter()
        .map(|a| a.replace("{root}", &t.root().display().to_string()))
        .collect();
    let daemon: Vec<&str> = daemon.iter().map(String::as_str).collect();
    // `jobrun run` leaves them, as a running daemon does.
    assert!(state.join("jobrun.db-wal").exists() && state.join("jobrun.db-shm").exists());
    let (code, _, stderr) = run_through(t, wrapper, &daemon);
    assert_refused(code, &stderr);
    let (code, stdout, stderr) = run_through(t, wrapper, &["history", "hello", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    // Made writable for a moment to take the -wal and -shm files away.
    set_writable(true);
    remove_wal_files(&state);
    set_writable(false);
    let (code, _, stderr) = run_through(t, wrapper, &daemon);
    assert_refused(code, &stderr);
}

/// Checkpoints the database and closes it, which makes SQLite remove its
/// `-wal` and `-shm` files.
fn remove_wal_files(state: &Path) {
    let conn = rusqlite::Connection::open(state.join("jobrun.db")).expect("opening the database");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .expect("checkpointing");
    drop(conn);
    assert!(!state.join("jobrun.db-wal").exists() && !state.join("jobrun.db-shm").exists());
}

#[track_caller]
fn assert_refused(code: i32, stderr: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("read-only") || stderr.contains("cannot be written"),
        "{stderr}"
    );
    assert!(stderr.contains("--state-dir"), "the fix is named: {stderr}");
}

/// As root, permissions do not stop writes: the state directory is made
/// read-only by a read-only bind mount in a mount namespace of its own.
#[test]
#[cfg_attr(not(jobrun_root), ignore = "a read-only bind mount needs root")]
fn a_read_only_state_dir_is_refused_at_start_on_a_read_only_mount() {
    let t = state_with_history();
    let s = t.path("state").display().to_string();
    let script = format!("mount --bind {s} {s} && mount -o remount,ro,bind {s} {s} && exec \"$@\"");
    let wrapper: Vec<String> = ["unshare", "-m", "sh", "-c", &script, "sh"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    // The mount is in the namespace of each command only.
    read_only_state_is_refused(&t, &wrapper, &|_| {});
}

/// Without root, taking the write permissions away makes it read-only (root
/// would ignore them: see the test above).
#[test]
#[cfg_attr(
    jobrun_root,
    ignore = "root ignores file permissions; the read-only mount test covers root"
)]
fn a_read_only_state_dir_is_refused_at_start_without_write_permission() {
    let t = state_with_history();
    let state = t.path("state");
    let set_writable = |writable: bool| {
        let mode = if writable { "u+w" } else { "a-w" };
        let status = Command::new("chmod")
            .args(["-R", mode])
            .arg(&state)
            .status()
            .expect("chmod");
        assert!(status.success());
    };
    set_writable(false);
    let wrapper: Vec<String> = ["sh", "-c", "exec \"$@\"", "sh"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    read_only_state_is_refused(&t, &wrapper, &set_writable);
    set_writable(true);
}

/// A state directory written before the store moved behind its seam (schema
/// version 5, its migrations then in `migrations/`, now in
/// `migrations/sqlite/`; see tests/fixtures/state-v5/README.md) still opens:
/// its history reads as before, and new runs are recorded after it.
#[test]
fn a_state_directory_written_by_an_earlier_jobrun_still_opens_and_grows() {
    let db = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/state-v5/jobrun.db"
    ))
    .expect("the fixture database");
    let t = Test::new().file("state/jobrun.db", db).file(
        "jobs.yaml",
        "jobs:\n  - name: hello\n    schedule: \"0 0 1 1 *\"\n    command: \"echo hi\"\n",
    );
    let state = t.path("state");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    std::fs::set_permissions(
        state.join("jobrun.db"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let old = t.run_args(["history", "--json"]).expect_code(0).json();
    assert_eq!(old.as_array().map(Vec::len), Some(1), "{old}");
    assert_eq!(old[0]["id"], 1);
    assert_eq!(old[0]["job"], "echo");
    assert_eq!(old[0]["status"], "succeeded");
    assert_eq!(old[0]["started_at"], "2026-11-25T23:52:36.111Z");
    let logs = t.run_args(["logs", "1"]).expect_code(0);
    assert!(logs.stdout.contains("hello from v5"), "{}", logs.stdout);
    t.run_args(["--config", "{root}/jobs.yaml", "run", "hello"])
        .expect_code(0);
    let all = t.run_args(["history", "--json"]).expect_code(0).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert_eq!(
        (all[0]["id"].clone(), all[0]["job"].clone()),
        (2.into(), "hello".into())
    );
    assert_eq!(all[0]["status"], "succeeded");
    assert_eq!(all[1], old[0], "the old run is unchanged");
}

/// The recorder's spool (`STATE/spool/`, issue 14) end to end through
/// `jobrun run`: a file there that is not jobrun's is moved aside with a
/// warning, never a failure, and the run's own spool file is gone when it
/// exits with nothing kept. (What a spool keeps across a restart needs a
/// store that refuses writes while its directory takes them, which SQLite
/// cannot be made to do here without waiting out its 30 s busy timeout:
/// that is tested at the recorder's level, src/store/recorder/spool_tests.rs.)
#[test]
fn a_foreign_spool_file_is_moved_aside_and_a_run_leaves_no_spool_behind() {
    let t = Test::new()
        .file("state/spool/1-0.spool", "not a spool file\n")
        .file(
            "jobs.yaml",
            "jobs:\n  - name: hello\n    schedule: \"0 0 1 1 *\"\n    command: \"echo hi\"\n",
        );
    let out = t
        .run_args(["--config", "{root}/jobs.yaml", "run", "hello"])
        .expect_code(0);
    assert!(
        out.stderr.contains("moved a corrupt spool file aside"),
        "{}",
        out.stderr
    );
    let mut left: Vec<String> = std::fs::read_dir(t.path("state/spool"))
        .expect("the spool directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    left.sort();
    assert_eq!(left, ["1-0.spool.aside"]);
    let runs = t.history("hello");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "succeeded");
}
