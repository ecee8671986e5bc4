//! `jitter:` end to end: a real daemon starts each run where `next`
//! predicted, within `[tick, tick + jitter)`, with `JOBRUN_TICK` the tick,
//! and two daemons on one state directory still run each tick once.
//!
//! The issue asks for 100 ticks of a 30 s jitter; that takes 100 minutes.
//! Here the schedule ticks every 2 s with an 800 ms jitter, for a dozen ticks;
//! the 100-tick property is checked in `plan::jitter`'s unit tests through the
//! same functions the daemon's loop sleeps and fires by.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;

use crate::harness::{wait_until, Test};

const JITTER_MS: i64 = 800;
/// How far a start may be from its prediction: the loop wakes within a
/// millisecond; the rest is spawning the command on a loaded machine.
const TOLERANCE_MS: i64 = 50;
/// What no start may exceed, even on a loaded machine: well under the 2 s
/// between ticks, so a prediction off by a tick or by the jitter fails.
const LOADED_MS: i64 = 400;

fn instant(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a time"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[test]
fn runs_start_where_next_predicted_and_two_daemons_run_each_tick_once() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: spread\n    schedule: \"*/2 * * * * *\"\n    jitter: 800ms\n    \
         command: echo \"$JOBRUN_TICK\" >> ticks.txt\n",
    );
    let a = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let b = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let done = || {
        t.history("spread")
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(90), || done() >= 12),
        "12 runs in 90 s: {:?}\n{}",
        t.history("spread"),
        a.log()
    );
    a.signal(Signal::SIGTERM);
    b.signal(Signal::SIGTERM);
    let (code_a, log_a) = a.wait(Duration::from_secs(15));
    let (code_b, log_b) = b.wait(Duration::from_secs(15));
    assert_eq!((code_a, code_b), (0, 0), "{log_a}\n{log_b}");

    let runs: Vec<serde_json::Value> = t
        .history_oldest_first("spread")
        .into_iter()
        .filter(|r| r["status"] == "succeeded")
        .collect();
    let ticks: Vec<DateTime<Utc>> = runs.iter().map(|r| instant(&r["tick"])).collect();
    // Each tick once, none left out between the first and the last.
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(2),
            "ticks twice or missed: {ticks:?}"
        );
    }
    // Every row of the job (a daemon that loses a claim records nothing):
    // one per tick, a run stopped by the shutdown included.
    let mut all: Vec<DateTime<Utc>> = t
        .history("spread")
        .iter()
        .map(|r| instant(&r["tick"]))
        .collect();
    let rows = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), rows, "a tick has two rows: {all:?}");

    // What `next` predicts for these ticks, asked after the fact.
    let from = (ticks[0] - chrono::Duration::seconds(1)).to_rfc3339();
    let next = t
        .run_args([
            "next",
            "spread",
            "--json",
            "--count",
            &ticks.len().to_string(),
            "--from",
            &from,
            "--config",
            "{root}/jobs.yaml",
        ])
        .expect_code(0)
        .json();
    assert_eq!(next["jitter"], "800ms", "{next}");
    let predicted: Vec<(DateTime<Utc>, DateTime<Utc>)> = next["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .zip(next["times"].as_array().expect("times"))
        .map(|(tick, at)| (instant(tick), instant(at)))
        .collect();
    assert_eq!(
        predicted.iter().map(|p| p.0).collect::<Vec<_>>(),
        ticks,
        "{next}"
    );
    let mut offsets = Vec::new();
    for (run, (tick, at)) in runs.iter().zip(&predicted) {
        let started = instant(&run["started_at"]);
        let offset = (started - *tick).num_milliseconds();
        assert!(
            (0..JITTER_MS + LOADED_MS).contains(&offset),
            "started {offset} ms after its tick: {run}"
        );
        // Predictions are within the jitter, to the millisecond.
        assert!((0..JITTER_MS).contains(&(*at - *tick).num_milliseconds()));
        // Never before the prediction; never a tick's worth after it.
        let off_by = (started - *at).num_milliseconds();
        assert!(
            (-1..=LOADED_MS).contains(&off_by),
            "started {off_by} ms from `next`'s {at}: {run}"
        );
        offsets.push(offset);
    }
    // Most within the tolerance: on an idle machine all are, 1 to 10 ms
    // after the prediction; the whole suite beside other builds on two
    // cores has delayed a spawn past it.
    let mut off_by: Vec<i64> = runs
        .iter()
        .zip(&predicted)
        .map(|(run, (_, at))| (instant(&run["started_at"]) - *at).num_milliseconds())
        .collect();
    off_by.sort();
    eprintln!(
        "{} runs, ms after `next`'s prediction: {off_by:?}",
        runs.len()
    );
    let median = off_by[off_by.len() / 2];
    assert!(median <= TOLERANCE_MS, "{off_by:?}");
    // The offsets differ from tick to tick (a fixed delay would not).
    offsets.sort();
    offsets.dedup_by(|a, b| (*a - *b).abs() < 20);
    assert!(offsets.len() >= 4, "{offsets:?}");

    // JOBRUN_TICK is the tick, not the start.
    let written = std::fs::read_to_string(t.path("ticks.txt")).expect("the job wrote ticks");
    let env_ticks: Vec<DateTime<Utc>> = written
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(env_ticks, ticks);
}

#[test]
fn next_and_list_say_the_times_are_jittered() {
    let t = Test::new().file(
        "jobs.yaml",
        "defaults:\n  jitter: 30s\njobs:\n  - name: nightly\n    schedule: \"0 3 * * *\"\n    \
         command: \"true\"\n  - name: exact\n    schedule: \"0 3 * * *\"\n    jitter: 0\n    \
         command: \"false\"\n",
    );
    let config = ["--config", "{root}/jobs.yaml"];
    let table = t
        .run_args(
            [
                "next",
                "nightly",
                "--from",
                "2026-05-01T00:00:00Z",
                "--count",
                "3",
            ]
            .into_iter()
            .chain(config),
        )
        .expect_code(0);
    assert!(
        table.stdout.contains("0 3 * * * +jitter 30s"),
        "{}",
        table.stdout
    );
    let json = t
        .run_args(
            [
                "next",
                "nightly",
                "--json",
                "--from",
                "2026-05-01T00:00:00Z",
                "--count",
                "3",
            ]
            .into_iter()
            .chain(config),
        )
        .expect_code(0)
        .json();
    let ticks: Vec<&str> = json["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        ticks,
        [
            "2026-05-01T03:00:00Z",
            "2026-05-02T03:00:00Z",
            "2026-05-03T03:00:00Z"
        ]
    );
    for (tick, at) in ticks.iter().zip(json["times"].as_array().expect("times")) {
        let at = instant(at);
        let tick: DateTime<Utc> = tick.parse().expect("a tick");
        assert!(
            at >= tick && at < tick + chrono::Duration::seconds(30),
            "{json}"
        );
        // Shown to the millisecond: a jittered start is rarely whole.
        assert!(
            json["times"][0].as_str().is_some_and(|s| s.contains('.')),
            "{json}"
        );
    }
    let exact = t
        .run_args(
            [
                "next",
                "exact",
                "--json",
                "--from",
                "2026-05-01T00:00:00Z",
                "--count",
                "1",
            ]
            .into_iter()
            .chain(config),
        )
        .expect_code(0)
        .json();
    assert_eq!(exact["times"][0], "2026-05-01T03:00:00Z", "{exact}");
    assert!(
        exact.get("jitter").is_none() && exact.get("ticks").is_none(),
        "{exact}"
    );

    let list = t
        .run_args(["list"].into_iter().chain(config))
        .expect_code(0);
    assert!(list.stdout.contains("+jitter 30s"), "{}", list.stdout);
    let list = t
        .run_args(["list", "--json"].into_iter().chain(config))
        .expect_code(0)
        .json();
    assert_eq!(list[0]["jitter"], "30s", "{list}");
    assert!(list[1].get("jitter").is_none(), "{list}");
}

#[test]
fn check_warns_of_a_jitter_as_long_as_the_interval() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: busy\n    schedule: \"*/10 * * * * *\"\n    jitter: 10s\n    \
         command: \"true\"\n  - name: calm\n    schedule: \"@hourly\"\n    jitter: 10m\n    \
         command: \"false\"\n",
    );
    let out = t
        .run_args(["check", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("jobs.yaml:2: warning: job busy: jitter 10s is not shorter than the 10s between its ticks"),
        "{text}"
    );
    assert!(!text.contains("job calm"), "{text}");
}
