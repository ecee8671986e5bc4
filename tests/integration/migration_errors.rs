//! What a user moving from cron meets first (issue 12, items 9 and 10): lines cron
//! accepts are accepted with a warning, and every error is jobrun's own message with
//! the place it is about and the exit code it deserves.

use crate::harness::Test;

#[test]
fn next_of_a_schedule_that_never_fires_prints_no_times_and_says_why() {
    let out = Test::new()
        .args(["next", "--expr", "0 0 30 2 *", "--json"])
        .run()
        .expect_code(0);
    let v = out.json();
    assert_eq!(v["times"], serde_json::json!([]));
    assert_eq!(v["never_fires"], "February has no day 30");

    // In a crontab: cron accepts the line, so `check` warns (exit 0) at its line,
    // and `next` names the reason for the job.
    let t = Test::new().file("tab", "0 0 30 2 * /bin/feb30\n0 1 * * * /bin/daily\n");
    let check = t
        .run_args(["--crontab", "{root}/tab", "check"])
        .expect_code(0);
    assert!(
        check
            .stdout
            .contains("tab:1: warning: schedule `0 0 30 2 *` never fires"),
        "{}",
        check.stdout
    );
    let next = t
        .run_args(["--crontab", "{root}/tab", "next", "--json"])
        .expect_code(0);
    let jobs = next.json();
    let feb30 = jobs
        .as_array()
        .and_then(|a| a.iter().find(|j| j["expr"] == "0 0 30 2 *"))
        .expect("the never-firing job is listed");
    assert_eq!(feb30["times"], serde_json::json!([]));
    assert!(feb30["never_fires"]
        .as_str()
        .is_some_and(|r| r.contains("February has no day 30")));
}

#[test]
fn a_star_in_a_day_list_and_a_large_step_are_read_as_debian_reads_them() {
    let t = Test::new().file("tab", "0 0 1 * *,1 /bin/first\n*/100 * * * * /bin/hourly\n");
    let check = t
        .run_args(["--crontab", "{root}/tab", "check"])
        .expect_code(0);
    assert!(check.stdout.contains("0 error(s)"), "{}", check.stdout);
    let next = t
        .run_args([
            "--crontab",
            "{root}/tab",
            "next",
            "--json",
            "--count",
            "2",
            "--from",
            "2026-01-01T00:30:00Z",
        ])
        .expect_code(0);
    let jobs = next.json();
    let times = |expr: &str| {
        jobs.as_array()
            .and_then(|a| a.iter().find(|j| j["expr"] == expr))
            .map(|j| j["times"].clone())
            .unwrap_or_else(|| panic!("{expr} listed: {jobs}"))
    };
    assert_eq!(
        times("0 0 1 * *,1"),
        serde_json::json!(["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"])
    );
    assert_eq!(
        times("*/100 * * * *"),
        serde_json::json!(["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"])
    );
}

#[test]
fn a_named_source_that_does_not_exist_is_a_usage_error_naming_it() {
    let t = Test::new();
    for command in ["list", "check", "next"] {
        let out = t
            .run_args(["--config", "{root}/nonexistent.yaml", command])
            .expect_code(2);
        assert!(
            out.stderr.contains("--config")
                && out
                    .stderr
                    .contains("nonexistent.yaml: no such file or directory"),
            "{command}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{command}: {}", out.stdout);
    }
    let out = t
        .run_args(["--crontab", "{root}/nope", "list"])
        .expect_code(2);
    assert!(out.stderr.contains("--crontab"), "{}", out.stderr);
    let out = Test::new()
        .env("JOBRUN_CONFIG", "/nonexistent/jobs.yaml")
        .arg("list")
        .run()
        .expect_code(2);
    assert!(out.stderr.contains("JOBRUN_CONFIG"), "{}", out.stderr);
}

/// Runs jobrun with its stdout a pipe whose reading end is already closed, as
/// `jobrun ... | head` is once `head` has what it wants: every write fails with
/// EPIPE, deterministically.
fn run_into_closed_pipe(t: &Test, args: &[&str]) -> (i32, String) {
    let (read, write) = nix::unistd::pipe().expect("a pipe");
    drop(read);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .args(args)
        .env_remove("JOBRUN_CONFIG")
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .env("JOBRUN_STATE_DIR", t.path("state"))
        .current_dir(t.root())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("running jobrun");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_output_into_a_closed_pipe_exits_0_silently_like_a_table() {
    let t = Test::new().file("tab", "0 1 * * * /bin/daily\n");
    let tab = t.path("tab").display().to_string();
    for args in [
        vec!["history", "--json"],
        vec!["history"],
        vec!["--crontab", &tab, "list", "--json"],
        vec!["--crontab", &tab, "list"],
        vec!["next", "--expr", "@daily", "--json"],
    ] {
        let (code, stderr) = run_into_closed_pipe(&t, &args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_system_crontab_line_for_a_user_that_does_not_exist_fails_check_at_its_line() {
    let t = Test::new();
    // `root` exists everywhere; the other name nowhere.
    t.write(
        "sys/etc/cron.d/app",
        "0 1 * * * root /bin/true good\n0 2 * * * no-such-user-jobrun /bin/true orphan\n",
    );
    t.write(
        "sys/etc/crontab",
        "SHELL=/bin/sh\n0 3 * * * no-such-user-jobrun /bin/true orphan-too\n",
    );
    let check = t
        .run_args(["--system-crontabs={root}/sys", "check"])
        .expect_code(1);
    for place in ["etc/cron.d/app:2: error:", "etc/crontab:2: error:"] {
        assert!(check.stdout.contains(place), "{place}: {}", check.stdout);
    }
    assert!(
        check
            .stdout
            .contains("there is no user `no-such-user-jobrun`"),
        "{}",
        check.stdout
    );
    let list = t
        .run_args(["--system-crontabs={root}/sys", "list", "--json"])
        .expect_code(0);
    let jobs = list.json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
}
