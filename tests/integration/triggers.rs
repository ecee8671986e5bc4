//! The triggers besides the schedule, end to end: retries, chains, file
//! watches and what `check` says about them.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, Test};

const LIMIT: Duration = Duration::from_secs(30);

fn lines(t: &Test, rel: &str) -> Vec<String> {
    std::fs::read_to_string(t.path(rel))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn a_failing_job_is_retried_with_each_attempt_its_own_row(backend: Backend) {
    // Fails twice, then succeeds; then its chain runs once.
    let Some(t) = backend.on(
        Test::new(),
        "a_failing_job_is_retried_with_each_attempt_its_own_row",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n\
         \x20 - name: flaky\n\
         \x20   command: echo \"$JOBRUN_ATTEMPT $JOBRUN_TRIGGER\" >> {root}/attempts; [ $JOBRUN_ATTEMPT -ge 3 ]\n\
         \x20   retry: {attempts: 4, backoff: 200ms, max_backoff: 300ms}\n\
         \x20   on_success: [after]\n\
         \x20 - name: after\n\
         \x20   command: echo \"$JOBRUN_PARENT_RUN_ID\" >> {root}/after\n",
    );
    t.run_args(["--config", "{root}/jobs.yaml", "run", "flaky"])
        .expect_code(0);
    assert_eq!(
        lines(&t, "attempts"),
        ["1 manual", "2 retry", "3 retry"],
        "stops at the first success"
    );
    let runs = t.history_oldest_first("flaky");
    let first = runs[0]["id"].clone();
    let rows: Vec<(String, u64, String)> = runs
        .iter()
        .map(|r| {
            (
                r["trigger"].as_str().expect("a trigger").to_string(),
                r["attempt"].as_u64().expect("an attempt"),
                r["status"].as_str().expect("a status").to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("manual".to_string(), 1, "failed".to_string()),
            ("retry".to_string(), 2, "failed".to_string()),
            ("retry".to_string(), 3, "succeeded".to_string()),
        ]
    );
    assert!(runs[0]["parent_id"].is_null());
    assert_eq!(runs[1]["parent_id"], first, "linked to the first attempt");
    assert_eq!(runs[2]["parent_id"], first);
    // The chain follows the run's final outcome, once, naming the last attempt.
    assert_eq!(lines(&t, "after"), [runs[2]["id"].to_string()]);
    let after = t.history_oldest_first("after");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["trigger"], "chain");
}

fn jobrun_run_starts_the_chained_jobs_side_by_side_and_waits_for_them(backend: Backend) {
    // README, Triggers: `on_success: [b, c]` starts b and c at once. Each
    // waits (up to 30 s) for the other to have started: one after the other,
    // the first would give up and fail; side by side both succeed at once.
    let Some(t) = backend.on(
        Test::new(),
        "jobrun_run_starts_the_chained_jobs_side_by_side_and_waits_for_them",
    ) else {
        return;
    };
    let sibling = |me: &str, other: &str| {
        format!(
            "touch {{root}}/{me}.started; i=0; \
             while [ ! -e {{root}}/{other}.started ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
             [ -e {{root}}/{other}.started ] && echo \"$JOBRUN_PARENT_RUN_ID\" > {{root}}/{me}.parent"
        )
    };
    t.write(
        "jobs.yaml",
        &format!(
            "jobs:\n\
             \x20 - name: a\n\
             \x20   command: exit 3\n\
             \x20   on_failure: [b, c]\n\
             \x20 - name: b\n\
             \x20   command: '{}'\n\
             \x20   on_success: [d]\n\
             \x20 - name: c\n\
             \x20   command: '{}'\n\
             \x20 - name: d\n\
             \x20   command: sleep 0.5; touch {{root}}/d.done\n",
            sibling("b", "c"),
            sibling("c", "b"),
        ),
    );
    // The named job's exit code, once the whole chain has ended.
    t.run_args(["--config", "{root}/jobs.yaml", "run", "a"])
        .expect_code(3);
    assert!(
        t.path("d.done").exists(),
        "b's own chain ended before the exit"
    );
    let a = t.history_oldest_first("a");
    let parent = a[0]["id"].to_string();
    for job in ["b", "c"] {
        let runs = t.history_oldest_first(job);
        assert_eq!(runs.len(), 1, "{job}: {runs:?}");
        assert_eq!(runs[0]["status"], "succeeded", "{job}: {:?}", runs[0]);
        assert_eq!(runs[0]["trigger"], "chain");
        assert_eq!(lines(&t, &format!("{job}.parent")), [parent.as_str()]);
    }
    let d = t.history_oldest_first("d");
    assert_eq!((d.len(), d[0]["status"].as_str()), (1, Some("succeeded")));
}

fn a_retry_overtaken_by_the_next_tick_still_chains_on_failure(backend: Backend) {
    // Each run fails after 2.5 s; its retry (1 s later) meets the next tick's
    // run holding the job: the retry is moot, the failure must still alert.
    let Some(t) = backend.on(
        Test::new(),
        "a_retry_overtaken_by_the_next_tick_still_chains_on_failure",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        "jobs:\n\
         \x20 - name: flaky\n\
         \x20   schedule: \"*/3 * * * * *\"\n\
         \x20   command: sleep 2.5; exit 1\n\
         \x20   retry: {attempts: 2, backoff: 1s}\n\
         \x20   on_failure: [alert]\n\
         \x20 - name: alert\n\
         \x20   command: echo \"$JOBRUN_PARENT_RUN_ID\" >> {root}/alerts\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(LIMIT, "an alert", || {
        (!lines(&t, "alerts").is_empty()).then_some(())
    });
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(15));
    let runs = t.history_oldest_first("flaky");
    let alerted: Vec<String> = lines(&t, "alerts");
    for parent in &alerted {
        let run = runs
            .iter()
            .find(|r| r["id"].as_i64().map(|id| id.to_string()).as_deref() == Some(parent.as_str()))
            .expect("the alert names a run of flaky");
        assert_eq!(run["status"], "failed", "{run}");
    }
}

#[test]
fn changes_during_a_watch_run_give_exactly_one_more_run_with_the_paths() {
    // Debug logs show each watch being set up, should this ever fail.
    let t = Test::new().env("RUST_LOG", "jobrun=debug");
    t.write(
        "jobs.yaml",
        "jobs:\n\
         \x20 - name: sync\n\
         \x20   watch: {paths: [{root}/later/inbox], debounce: 300ms}\n\
         \x20   command: printf '%s\\n' \"$JOBRUN_CHANGED\" > {root}/run-$JOBRUN_RUN_ID; sleep 2\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(LIMIT, "the watches", || {
        daemon.log().contains("watching files").then_some(())
    });
    // The watched directory does not exist yet: it is watched from the
    // nearest existing parent, and its creation is seen.
    std::fs::create_dir_all(t.path("later/inbox")).unwrap();
    t.write("later/inbox/a.json", "{}");
    // Three changes while it runs (its command has started): one more run
    // after it, not three.
    let first = wait_for(LIMIT, "the first run's start", || {
        t.history_oldest_first("sync")
            .into_iter()
            .next()
            .filter(|r| !r["started_at"].is_null())
    });
    for name in ["b.json", "c.json", "b.json"] {
        t.write(&format!("later/inbox/{name}"), "{}");
    }
    let runs = wait_for(LIMIT, "the second run to end", || {
        let runs = t.history_oldest_first("sync");
        (runs.len() == 2 && runs[1]["status"] == "succeeded").then_some(runs)
    });
    // The second run ended; a moment in which a third (a burst) would show.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(t.history_oldest_first("sync").len(), 2, "no burst");
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(15));

    assert!(runs.iter().all(|r| r["trigger"] == "watch"));
    let changed = lines(&t, &format!("run-{}", runs[1]["id"]));
    let root = t.root().display().to_string();
    for name in ["b.json", "c.json"] {
        let path = format!("{root}/later/inbox/{name}");
        assert_eq!(
            changed.iter().filter(|l| **l == path).count(),
            1,
            "each changed path once: {changed:?}"
        );
    }
    assert!(!lines(&t, &format!("run-{}", first["id"])).is_empty());
}

/// The inotify instances a process holds (`/proc/PID/fd` links).
fn inotify_instances(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy() == "anon_inode:inotify")
                .count()
        })
        .unwrap_or(0)
}

/// One watcher serves every `watch:` job and the reload (issue 13): fifty
/// jobs cost one inotify instance and one thread, not fifty.
#[test]
fn fifty_watch_jobs_and_the_reload_share_one_inotify_instance() {
    let t = Test::new();
    let mut yaml = String::from("jobs:\n");
    for i in 0..50 {
        std::fs::create_dir_all(t.path(&format!("in/{i}"))).unwrap();
        yaml.push_str(&format!(
            "  - {{name: w{i}, command: \"echo $JOBRUN_TRIGGER >> {{root}}/ran-{i}\", watch: {{paths: [{{root}}/in/{i}], debounce: 100ms}}}}\n"
        ));
    }
    t.write("jobs.yaml", &yaml);
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(LIMIT, "the watches", || {
        daemon.log().contains("watching files").then_some(())
    });
    assert_eq!(inotify_instances(daemon.pid()), 1, "{}", daemon.log());
    // Every job still gets its own events, and only its own.
    t.write("in/7/a", "x");
    t.write("in/49/a", "x");
    for i in [7, 49] {
        wait_for(LIMIT, &format!("w{i}'s run"), || {
            (lines(&t, &format!("ran-{i}")) == ["watch"]).then_some(())
        });
    }
    // w7's and w49's runs are done; a moment in which a stray run of w0
    // would show.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!t.path("ran-0").exists());
    // A reload (a change of the sources) keeps to the same instance.
    t.write(
        "jobs.yaml",
        &format!("{yaml}  - {{name: extra, command: \"true\"}}\n"),
    );
    wait_for(LIMIT, "the reload", || {
        daemon.log().contains("extra").then_some(())
    });
    assert_eq!(inotify_instances(daemon.pid()), 1, "{}", daemon.log());
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(15));
}

/// A watched directory removed and created again is watched again: its
/// changes still start the job.
#[test]
fn a_watched_directory_removed_and_created_again_still_triggers() {
    let t = Test::new();
    std::fs::create_dir_all(t.path("inbox")).unwrap();
    t.write(
        "jobs.yaml",
        "jobs:\n\
         \x20 - name: sync\n\
         \x20   watch: {paths: [{root}/inbox], debounce: 100ms}\n\
         \x20   command: ls {root}/inbox >> {root}/seen\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(LIMIT, "the watches", || {
        daemon.log().contains("watching files").then_some(())
    });
    t.write("inbox/a", "x");
    wait_for(LIMIT, "the first run", || {
        (t.history_oldest_first("sync").len() == 1).then_some(())
    });
    std::fs::remove_dir_all(t.path("inbox")).unwrap();
    std::fs::create_dir_all(t.path("inbox")).unwrap();
    // The removal and the creation may run the job; wait until it is quiet:
    // a settle window past the 100 ms debounce, then no run still going.
    std::thread::sleep(Duration::from_secs(1));
    wait_for(LIMIT, "no sync run still going", || {
        t.history_oldest_first("sync")
            .iter()
            .all(|r| r["status"] != "running")
            .then_some(())
    });
    let before = t.history_oldest_first("sync").len();
    t.write("inbox/b", "x");
    wait_for(LIMIT, "a run for the new directory's file", || {
        lines(&t, "seen").contains(&"b".to_string()).then_some(())
    });
    assert!(t.history_oldest_first("sync").len() > before);
    daemon.signal(Signal::SIGTERM);
    daemon.wait(Duration::from_secs(15));
}

#[test]
fn check_rejects_chain_cycles_unknown_jobs_and_signal_with_command() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n\
         \x20 - name: a\n\
         \x20   command: a\n\
         \x20   on_success: [b]\n\
         \x20 - name: b\n\
         \x20   command: b\n\
         \x20   on_failure: [a, ghost]\n\
         \x20 - name: c\n\
         \x20   command: c\n\
         \x20   signal: {pidfile: /run/c.pid}\n",
    );
    let out = t
        .run_args(["--config", "{root}/jobs.yaml", "check"])
        .expect_code(1);
    let path = t.path("jobs.yaml").display().to_string();
    for expected in [
        format!("{path}:7: error: job b: `on_failure` names job \"ghost\", which is not defined"),
        format!("{path}:7: error: chained jobs form a cycle: a -> b -> a"),
        format!("{path}:10: error: job c: `signal` sends a signal instead of running a command"),
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&expected)),
            "missing {expected:?} in\n{}",
            out.stdout
        );
    }
}

on_both_backends!(
    a_failing_job_is_retried_with_each_attempt_its_own_row,
    a_retry_overtaken_by_the_next_tick_still_chains_on_failure,
    jobrun_run_starts_the_chained_jobs_side_by_side_and_waits_for_them,
);
