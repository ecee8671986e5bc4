//! `--supercronic FILE`: a supercronic crontab runs unchanged, read with
//! supercronic's meaning (seconds and year fields, `L`, `#`, `%` as written,
//! the file's environment with the last value winning).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_for, Test};

/// A crontab as a supercronic container ships it. Line 3 runs every second
/// (7 fields, with a year range), and its `%` and `$GREETING` must reach the
/// shell as supercronic passes them: `%` as written, the last `GREETING`.
const CRONTAB: &str = "\
GREETING=hello
# every second, in the years 2020-2099
*/1 * * * * * 2020-2099 printf '%s %s %s\\n' \"$GREETING\" \"$JOBRUN_TICK\" \"$(pwd)\" >> {root}/ticks
0 0 L 2 * 2028 echo leap-day
0 30 12 * * fri#2 * echo second-friday
0 0 * * 5L 2027 echo last-friday
GREETING=hi
";

/// The next times of the job a line defines, from `next --json`.
fn next_of(t: &Test, file: &str, line: usize, from: &str) -> Vec<String> {
    let out = t
        .run_args([
            "--supercronic",
            file,
            "next",
            "--json",
            "--count",
            "3",
            "--from",
            from,
        ])
        .expect_code(0);
    let list = t
        .run_args(["--supercronic", file, "list", "--json"])
        .expect_code(0);
    let name = list
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .find(|j| {
            j["sources"][0]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!(":{line}")))
        })
        .map(|j| j["name"].clone())
        .unwrap_or_else(|| panic!("no job from line {line}: {}", list.stdout));
    out.json()
        .as_array()
        .expect("an array")
        .iter()
        .find(|j| j["job"] == name)
        .expect("the job's times")["times"]
        .as_array()
        .expect("times")
        .iter()
        .map(|v| v.as_str().expect("a time").to_string())
        .collect()
}

#[test]
fn a_supercronic_crontab_with_seconds_year_l_and_hash_runs_unchanged() {
    let t = Test::new();
    t.write("crontab", CRONTAB);
    let file = "{root}/crontab";

    // L, # and the year field, as supercronic reads them.
    assert_eq!(
        next_of(&t, file, 4, "2026-11-01T00:00:00Z"),
        ["2028-02-29T00:00:00Z"]
    );
    assert_eq!(
        next_of(&t, file, 5, "2026-11-01T00:00:00Z"),
        [
            "2026-11-13T12:30:00Z",
            "2026-12-11T12:30:00Z",
            "2027-01-08T12:30:00Z"
        ]
    );
    assert_eq!(
        next_of(&t, file, 6, "2026-11-01T00:00:00Z"),
        [
            "2027-01-29T00:00:00Z",
            "2027-02-26T00:00:00Z",
            "2027-03-26T00:00:00Z"
        ]
    );
    let list = t
        .run_args(["--supercronic", file, "list", "--json"])
        .expect_code(0);
    let jobs = list.json();
    let jobs = jobs.as_array().expect("an array");
    assert_eq!(jobs.len(), 4, "{}", list.stdout);
    assert!(
        jobs.iter().all(|j| j["kind"] == "supercronic"),
        "{}",
        list.stdout
    );
    let table = t.run_args(["--supercronic", file, "list"]).expect_code(0);
    assert!(table.stdout.contains("[supercronic] "), "{}", table.stdout);

    // `check` accepts the file and names each line read otherwise than Vixie would.
    let check = t.run_args(["--supercronic", file, "check"]).expect_code(0);
    for line in [3, 4, 5, 6, 7] {
        assert!(
            check.stdout.contains(&format!("crontab:{line}: note:")),
            "line {line}:\n{}",
            check.stdout
        );
    }

    // The daemon runs the per-second job: recorded, and its marker written.
    let daemon = t.spawn_daemon(["--supercronic", file]);
    let ticks_path: PathBuf = t.path("ticks");
    let lines = wait_for(Duration::from_secs(20), "two per-second runs", || {
        let text = std::fs::read_to_string(&ticks_path).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= 2).then_some(lines)
    });
    let root = t.root().display().to_string();
    let mut ticks = Vec::new();
    for line in &lines[..2] {
        let words: Vec<&str> = line.split(' ').collect();
        // `%` passed as written (printf formatted it), the last GREETING, and
        // the daemon's working directory, as supercronic runs jobs.
        assert_eq!(words.len(), 3, "{line}");
        assert_eq!(words[0], "hi", "{line}");
        assert_eq!(words[2], root, "{line}");
        ticks.push(
            chrono::DateTime::parse_from_rfc3339(words[1])
                .unwrap_or_else(|e| panic!("{line}: {e}")),
        );
    }
    assert!(ticks[1] > ticks[0], "{lines:?}");
    let runs = wait_for(Duration::from_secs(10), "the runs recorded", || {
        let out = t.run_args(["history", "--json"]).expect_code(0);
        let runs: Vec<Value> = out
            .json()
            .as_array()
            .expect("an array")
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .cloned()
            .collect();
        (runs.len() >= 2).then_some(runs)
    });
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"), "{runs:?}");
    drop(daemon);
}

/// A real supercronic file (AzuraCast, in the corpus): Vixie cron rejects
/// every line; `--supercronic` reads both.
#[test]
fn azuracasts_supercronic_file_is_read() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let bytes = std::fs::read(
        corpus.join("github/AzuraCast__AzuraCast/util/docker/web/cron/azuracast@71ab777"),
    )
    .expect("reading the supercronic file");
    let t = Test::new().file("azuracast", bytes);
    let file = "{root}/azuracast";
    t.run_args(["--supercronic", file, "check"]).expect_code(0);
    assert_eq!(
        next_of(&t, file, 1, "2026-11-01T10:00:30Z"),
        [
            "2026-11-01T10:01:00Z",
            "2026-11-01T10:02:00Z",
            "2026-11-01T10:03:00Z"
        ]
    );
    assert_eq!(
        next_of(&t, file, 2, "2026-11-01T10:00:30Z"),
        [
            "2026-11-01T12:30:00Z",
            "2026-11-01T18:30:00Z",
            "2026-11-02T00:30:00Z"
        ]
    );
}

#[test]
fn the_supercronic_option_has_an_environment_variable_and_names_a_missing_file() {
    let t = Test::new()
        .file("a", "* * * * * echo a\n")
        .file("b", "* * * * * echo b\n");
    let out = t.run_args(["list", "--json"]).expect_code(2);
    assert!(out.stderr.contains("--supercronic"), "{}", out.stderr);
    let t = t.env("JOBRUN_SUPERCRONIC", "{root}/a:{root}/b");
    let list = t.run_args(["list", "--json"]).expect_code(0);
    assert_eq!(
        list.json().as_array().expect("an array").len(),
        2,
        "{}",
        list.stdout
    );
    let missing = t
        .run_args(["--supercronic", "{root}/nope", "list"])
        .expect_code(2);
    assert!(
        missing.stderr.contains("--supercronic"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_year_field_that_is_over_is_a_warning_from_check() {
    let t = Test::new().file("crontab", "0 0 * * * 2020 echo once-upon-a-time\n");
    let check = t
        .run_args(["--supercronic", "{root}/crontab", "check"])
        .expect_code(0);
    assert!(
        check.stdout.contains("crontab:1: warning:")
            && check.stdout.contains("every year it lists is over"),
        "{}",
        check.stdout
    );
}

/// supercronic's `-inotify` is the default: a changed file is reloaded.
#[test]
fn a_changed_supercronic_file_is_reloaded_without_a_flag() {
    let t = Test::new();
    t.write("crontab", "* * * * * * * touch {root}/before\n");
    let _daemon = t.spawn_daemon(["--supercronic", "{root}/crontab"]);
    wait_for(Duration::from_secs(20), "the first job to run", || {
        t.path("before").exists().then_some(())
    });
    // Replaced as editors and ConfigMaps do: a new file renamed over the old.
    t.write("crontab.new", "* * * * * * * touch {root}/after\n");
    std::fs::rename(t.path("crontab.new"), t.path("crontab")).expect("rename");
    wait_for(Duration::from_secs(20), "the reloaded job to run", || {
        t.path("after").exists().then_some(())
    });
}

/// supercronic refuses a file with a bad line; so does `daemon --strict`.
#[test]
fn strict_refuses_a_file_with_a_bad_line_as_supercronic_does() {
    let t = Test::new().file("crontab", "* * * * * echo ok\n*/70 * * * * * * echo bad\n");
    let daemon = t.spawn_daemon(["--supercronic", "{root}/crontab", "--strict"]);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("crontab:2"), "{log}");
}
