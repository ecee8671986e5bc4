//! The command line as a user meets it: exit codes, errors, JSON shapes.

use crate::harness::{names, Test};

const EXAMPLE: &str = include_str!("../../jobs.example.yaml");

#[test]
fn the_example_schedule_checks_clean_and_lists_every_job() {
    let t = Test::new().file("jobs.yaml", EXAMPLE);
    let out = t
        .run_args(["--config", "{root}/jobs.yaml", "check"])
        .expect_code(0);
    assert!(out.stdout.contains("9 job(s)"), "{}", out.stdout);
    let list = t
        .run_args(["list", "--json", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert_eq!(
        names(&list.json()),
        [
            "heartbeat",
            "disk-report",
            "nightly-cleanup",
            "monthly-archive",
            "deploy-hook",
            "refresh-cache",
            "announce",
            "pick-up-inbox",
            "reload-web-server"
        ]
    );
}

#[test]
fn no_source_at_all_is_a_usage_error() {
    let out = Test::new().arg("list").run().expect_code(2);
    assert!(out.stderr.contains("no job sources"), "{}", out.stderr);
}

#[test]
fn unknown_subcommand_and_bad_flags_exit_2() {
    Test::new()
        .arg("frobnicate")
        .code(2)
        .stderr_has("unrecognized subcommand 'frobnicate'")
        .run();
    Test::new()
        .args(["next", "--count", "many"])
        .code(2)
        .stderr_has("invalid value 'many'")
        .run();
}

#[test]
fn check_reports_errors_with_path_line_and_exits_1() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: a\n    schedule: \"0 0 30 2 *\"\n    command: echo a\n  - name: b\n    schedule: \"@daily\"\n    command: echo b\n    colour: red\n",
    );
    t.args(["check", "--config", "{root}/jobs.yaml"])
        .code(1)
        .stdout_has("jobs.yaml:3: error:")
        .stdout_has("never fires")
        .stdout_has("jobs.yaml:8: error:")
        .stdout_has("unknown field `colour`")
        .run();
}

#[test]
fn next_expr_needs_no_config_and_prints_spec_json() {
    let out = Test::new()
        .args([
            "next",
            "--expr",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-28T12:00:00Z",
            "--count",
            "2",
            "--json",
        ])
        .run()
        .expect_code(0);
    let v = out.json();
    assert_eq!(v["job"], serde_json::Value::Null);
    assert_eq!(v["expr"], "30 2 * * *");
    assert_eq!(v["timezone"], "Europe/Berlin");
    // 2026-03-29 is the spring-forward day in Berlin: 02:30 does not exist, so the
    // fixed-time job fires at the first instant after the gap, 03:00 CEST = 01:00Z.
    assert_eq!(
        v["times"],
        serde_json::json!(["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"])
    );
}

#[test]
fn next_for_every_job_is_an_array_and_for_one_job_an_object() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: a\n    schedule: \"0 * * * *\"\n    command: echo a\n  - name: b\n    schedule: \"*/30 * * * * *\"\n    command: echo b\n",
    );
    let all = t
        .run_args([
            "next",
            "--config",
            "{root}/jobs.yaml",
            "--from",
            "2026-01-01T00:00:00Z",
            "-n",
            "1",
            "--json",
        ])
        .expect_code(0);
    assert_eq!(
        all.json(),
        serde_json::json!([
            {"job": "a", "expr": "0 * * * *", "timezone": "UTC", "times": ["2026-01-01T01:00:00Z"]},
            {"job": "b", "expr": "*/30 * * * * *", "timezone": "UTC", "times": ["2026-01-01T00:00:30Z"]},
        ])
    );
    let one = t
        .run_args([
            "next",
            "b",
            "--config",
            "{root}/jobs.yaml",
            "--from",
            "2026-01-01T00:00:00Z",
            "-n",
            "3",
            "--json",
        ])
        .expect_code(0);
    assert_eq!(
        one.json()["times"],
        serde_json::json!([
            "2026-01-01T00:00:30Z",
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:01:30Z"
        ])
    );
    let missing = t
        .run_args(["next", "zzz", "--config", "{root}/jobs.yaml"])
        .expect_code(2);
    assert!(
        missing.stderr.contains("no job named \"zzz\""),
        "{}",
        missing.stderr
    );
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: a\n    schedule: \"@hourly\"\n    command: echo a\n",
    );
    let before = t
        .run_args(["--config", "{root}/jobs.yaml", "list", "--json"])
        .expect_code(0);
    let after = t
        .run_args(["list", "--json", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert_eq!(before.json()[0]["name"], "a");
    assert_eq!(before.json()[0]["name"], after.json()[0]["name"]);
}

#[test]
fn jobrun_config_env_is_read_when_no_config_flag_is_given() {
    let t = Test::new()
        .file("a.yaml", "jobs:\n  - name: a\n    command: echo a\n")
        .file("d/b.yml", "jobs:\n  - name: b\n    command: echo b\n")
        .file("d/.hidden.yaml", "not: [valid")
        .env("JOBRUN_CONFIG", "{root}/a.yaml:{root}/d")
        .args(["list", "--json"]);
    let out = t.run().expect_code(0);
    assert_eq!(names(&out.json()), ["a", "b"]);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let t = Test::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .args(["next", "--expr", "* * * * * *", "--count", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(t.root())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("read some output");
    drop(stdout);
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_default_shutdown_grace_ends_before_docker_stops_sigkill() {
    // `docker stop` sends SIGKILL 10 s after SIGTERM; jobrun's own grace must
    // end first so the interrupted runs are recorded.
    let out = Test::new().args(["daemon", "--help"]).run().expect_code(0);
    let line = out
        .stdout
        .lines()
        .skip_while(|l| !l.contains("--shutdown-grace"))
        .find(|l| l.contains("[default: "))
        .unwrap_or_else(|| panic!("no default for --shutdown-grace:\n{}", out.stdout));
    let default = line
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("{line}"));
    let secs: f64 = default
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("default {default:?} is not in seconds"));
    assert!(
        secs < 10.0,
        "default --shutdown-grace {default} is not below docker stop's 10s"
    );
    assert!(
        out.stdout.contains("docker stop"),
        "the help says why:\n{}",
        out.stdout
    );
}

/// `list` in a terminal of `cols` columns (a real pty through util-linux's
/// `script`), with `extra` arguments: its output lines.
fn list_in_a_terminal(t: &Test, cols: u16, extra: &str) -> Vec<String> {
    let command = format!(
        "stty cols {cols} rows 50; TZ=UTC JOBRUN_STATE_DIR={root}/state {bin} --crontab {root}/crontab list {extra}",
        root = t.root().display(),
        bin = env!("CARGO_BIN_EXE_jobrun"),
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("COLUMNS")
        .output()
        .expect("running util-linux script (a pty)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn tables_fit_the_terminal_and_wide_or_a_pipe_gets_whole_lines() {
    let long = "/usr/local/lib/backups/nightly-database-dump-with-a-long-name.sh --target /srv/backup/databases/primary";
    let t = Test::new().file(
        "crontab",
        format!("30 2 * * * {long}\n*/5 * * * * /usr/bin/true\n"),
    );
    // On an 80-column terminal every line fits, and the job is still there.
    let narrow = list_in_a_terminal(&t, 80, "");
    assert!(narrow.len() > 3, "{narrow:#?}");
    for line in &narrow {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
    assert!(
        narrow.iter().any(|l| l.contains("30 2 * * *")),
        "{narrow:#?}"
    );
    // `--wide`: one line a job, however long.
    let wide = list_in_a_terminal(&t, 80, "--wide");
    assert!(wide.iter().any(|l| l.chars().count() > 80), "{wide:#?}");
    // Not a terminal: whole lines too, so `grep` sees a job on one line.
    let piped = t
        .run_args(["--crontab", "{root}/crontab", "list"])
        .expect_code(0);
    let row = piped
        .stdout
        .lines()
        .find(|l| l.contains("30 2 * * *"))
        .expect("the job's row");
    assert!(row.chars().count() > 80, "{row}");
}

#[test]
fn a_background_command_is_stopped_by_sigterm_like_any_command() {
    // `jobrun run` of a long job, started in the background: SIGTERM stops
    // the job and jobrun reports it with 128+15, its run recorded.
    let t = Test::new();
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: long\n    schedule: \"@yearly\"\n    command: 'touch {root}/started; sleep 30'\n",
    );
    let run = t.spawn(["--config", "{root}/jobs.yaml", "run", "long"]);
    crate::harness::wait_for(
        std::time::Duration::from_secs(10),
        "the job to start",
        || t.path("started").exists().then_some(()),
    );
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = run.wait(std::time::Duration::from_secs(20));
    assert_eq!(code, 128 + 15, "{log}");
    let runs = t.history("long");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_ne!(runs[0]["status"], "running", "{runs:?}");
}
