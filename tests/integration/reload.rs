//! Reloading while the daemon runs: SIGHUP and file changes, broken configs,
//! removed jobs, and no tick lost or doubled across reloads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, wait_until, Test};

fn ticks(t: &Test, file: &str) -> Vec<DateTime<Utc>> {
    std::fs::read_to_string(t.path(file))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("tick {l:?}: {e}")))
        .collect()
}

const TICKER: &str = "  - name: ticker\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/ticks.txt\n";

#[test]
fn a_broken_config_keeps_the_old_schedule_and_logs_the_error_with_its_line() {
    let t = Test::new();
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "ticks", || {
        (ticks(&t, "ticks.txt").len() >= 2).then_some(())
    });
    t.write(
        "jobs.yaml",
        "jobs:\n  - name: ticker\n    schedule: [\"* * * * * *\"\n    command: oops\n",
    );
    wait_for(Duration::from_secs(60), "the reload error", || {
        daemon
            .log()
            .contains("its previous version stays in force until it is fixed")
            .then_some(())
    });
    let before = ticks(&t, "ticks.txt").len();
    let fired = wait_until(Duration::from_secs(60), || {
        ticks(&t, "ticks.txt").len() >= before + 2
    });
    assert!(fired, "the old job stopped firing");
    let log = daemon.log();
    assert!(log.contains("jobs.yaml:"), "{log}");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

fn a_removed_job_finishes_its_running_instance_and_does_not_fire_again(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "a_removed_job_finishes_its_running_instance_and_does_not_fire_again",
    ) else {
        return;
    };
    t.write(
        "jobs.yaml",
        &format!(
            "jobs:\n{TICKER}  - name: slow\n    schedule: \"* * * * * *\"\n    command: sleep 2\n"
        ),
    );
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    let running = wait_for(Duration::from_secs(60), "slow to run", || {
        t.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running")
    });
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(60), "the reload", || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    });
    let finished = wait_for(
        Duration::from_secs(60),
        "the running instance to end",
        || {
            t.history("slow")
                .into_iter()
                .find(|r| r["id"] == running["id"] && r["status"] != "running")
        },
    );
    assert_eq!(
        finished["status"], "succeeded",
        "a reload never disturbs a run"
    );
    let count = t.history("slow").len();
    // Three more ticks of the ticker: the daemon has handed out every second
    // in which the removed job would have fired.
    let before = ticks(&t, "ticks.txt").len();
    wait_for(Duration::from_secs(60), "three more ticks", || {
        (ticks(&t, "ticks.txt").len() >= before + 3).then_some(())
    });
    assert_eq!(t.history("slow").len(), count, "a removed job fired again");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

fn a_per_second_job_runs_once_per_tick_across_10_reloads(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "a_per_second_job_runs_once_per_tick_across_10_reloads",
    ) else {
        return;
    };
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "ticks", || {
        (!ticks(&t, "ticks.txt").is_empty()).then_some(())
    });
    let reloads = || daemon.log().matches("configuration reloaded").count();
    for i in 0..10 {
        let before = reloads();
        if i % 2 == 0 {
            daemon.signal(Signal::SIGHUP);
        } else {
            // A change on disk (same jobs, a new comment) reloads too, once
            // the file has settled.
            t.write("jobs.yaml", &format!("# edit {i}\njobs:\n{TICKER}"));
        }
        wait_for(Duration::from_secs(60), "the reload", || {
            (reloads() > before).then_some(())
        });
    }
    // Two ticks after the last reload: a tick lost to it shows as a gap.
    let after = ticks(&t, "ticks.txt").len();
    wait_for(
        Duration::from_secs(60),
        "two ticks after the reloads",
        || (ticks(&t, "ticks.txt").len() >= after + 2).then_some(()),
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    let mut seen = ticks(&t, "ticks.txt");
    let written = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), written, "a tick ran twice");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was lost: {seen:?}"
        );
    }
    assert!(written >= 8, "{written} ticks");
    let rows = t.history("ticker");
    let succeeded = rows.iter().filter(|r| r["status"] == "succeeded").count();
    assert_eq!(succeeded, written, "one history row per tick");
}

/// Found in review: a wake-up for a reload at a tick used to skip that tick.
#[test]
fn a_storm_of_reloads_loses_no_tick() {
    let t = Test::new();
    t.write("jobs.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/jobs.yaml"]);
    wait_for(Duration::from_secs(60), "ticks", || {
        (!ticks(&t, "ticks.txt").is_empty()).then_some(())
    });
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        daemon.signal(Signal::SIGHUP);
        // The storm's pace (a HUP every 5 ms), not a wait.
        std::thread::sleep(Duration::from_millis(5));
    }
    // Two ticks after the storm: a tick lost to it shows as a gap.
    let after = ticks(&t, "ticks.txt").len();
    wait_for(Duration::from_secs(60), "two ticks after the storm", || {
        (ticks(&t, "ticks.txt").len() >= after + 2).then_some(())
    });
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
    let seen = ticks(&t, "ticks.txt");
    assert!(seen.len() >= 6, "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was lost: {seen:?}"
        );
    }
}

fn count(t: &Test, file: &str) -> usize {
    std::fs::read_to_string(t.path(file))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits for `more` lines to be added to `file` from now, checking on the
/// way that the daemon is still up.
#[track_caller]
fn grows(t: &Test, daemon: &crate::harness::Daemon, file: &str, more: usize, what: &str) {
    let from = count(t, file);
    wait_for(Duration::from_secs(20), what, || {
        assert!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.pid()), None).is_ok(),
            "the daemon is gone"
        );
        (count(t, file) >= from + more).then_some(())
    });
}

/// `j0 -> j1 -> ... -> j{links-1}` by `on_success`.
fn chain(links: usize) -> String {
    let mut chain = String::from("jobs:\n");
    for i in 0..links {
        chain.push_str(&format!("  - name: j{i}\n    command: \"true {i}\"\n"));
        if i + 1 < links {
            chain.push_str(&format!("    on_success: [j{}]\n", i + 1));
        }
    }
    chain
}

/// Issue 11 #1: the chain check recursed once per link and overflowed the
/// reload's 2 MiB stack (SIGABRT) at the first SIGHUP.
#[test]
fn a_daemon_reloading_a_6000_job_chain_keeps_firing() {
    let t = Test::new();
    t.write("conf/ticker.yaml", &format!("jobs:\n{TICKER}"));
    t.write("conf/chain.yaml", &chain(6_000));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    grows(&t, &daemon, "ticks.txt", 1, "ticks at start");
    for _ in 0..2 {
        let before = daemon.log().matches("configuration reloaded").count();
        daemon.signal(Signal::SIGHUP);
        wait_for(Duration::from_secs(20), "the reload", || {
            (daemon.log().matches("configuration reloaded").count() > before).then_some(())
        });
        grows(&t, &daemon, "ticks.txt", 2, "ticks after the reload");
    }
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// Issue 11 #1: on the main thread's 8 MiB stack, `check` (and a daemon's
/// start) aborted from about 23,000 chained jobs. Under a 1 MiB stack limit
/// (which sizes the main thread) 10,000 are enough to show a walk that
/// recurses with the chain, and take seconds rather than minutes to read.
#[test]
fn check_accepts_a_long_chain_on_a_small_main_stack() {
    use std::os::unix::process::CommandExt;
    let t = Test::new();
    t.write("chain.yaml", &chain(10_000));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jobrun"));
    cmd.args(["check", "--config"])
        .arg(t.path("chain.yaml"))
        .env("JOBRUN_STATE_DIR", t.path("state"));
    let limit = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: setrlimit is async-signal-safe and reads only `limit`, a copy
    // owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_STACK, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().expect("running jobrun check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 11 #4: a reload read its sources on the scheduler loop, so no tick
/// fired while a slow source was read. The source here is a FIFO: reading it
/// blocks until the test writes it, which makes the reload's window exact.
#[test]
fn ticks_keep_firing_while_a_reload_reads_a_slow_source() {
    let t = Test::new();
    t.write("ticker.yaml", &format!("jobs:\n{TICKER}"));
    t.write("slow.yaml", "jobs: []\n");
    let daemon = t.spawn_daemon([
        "--config",
        "{root}/ticker.yaml",
        "--config",
        "{root}/slow.yaml",
    ]);
    grows(&t, &daemon, "ticks.txt", 1, "ticks at start");
    std::fs::remove_file(t.path("slow.yaml")).expect("rm");
    nix::unistd::mkfifo(&t.path("slow.yaml"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    daemon.signal(Signal::SIGHUP);
    // Opening a FIFO for writing waits for its reader: the reload is reading.
    // Each read gets the file once the test says so; a write changes the
    // FIFO's times, so the reload reads it again (a file that changed while
    // it was read), and gets it again.
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let fifo = t.path("slow.yaml");
    let text = format!(
        "jobs:\n  - name: late\n    schedule: \"* * * * * *\"\n    command: echo x >> {}/late.txt\n",
        t.root().display()
    );
    std::thread::spawn(move || {
        use std::io::Write;
        let mut first = true;
        while let Ok(mut writer) = std::fs::OpenOptions::new().write(true).open(&fifo) {
            let _ = opened_tx.send(());
            if std::mem::take(&mut first) && go_rx.recv().is_err() {
                return;
            }
            let _ = writer.write_all(text.as_bytes());
        }
    });
    opened
        .recv_timeout(Duration::from_secs(20))
        .expect("the reload opens the slow source");
    // While the reload is stuck in the read, rows keep being recorded.
    let rows = |t: &Test| t.history("ticker").len();
    let before = rows(&t);
    wait_for(Duration::from_secs(60), "rows during the reload", || {
        (rows(&t) >= before + 2).then_some(())
    });
    assert!(
        !daemon.log().contains("configuration reloaded"),
        "the reload was still reading"
    );
    go.send(()).expect("the FIFO's writer waits");
    wait_for(Duration::from_secs(60), "the reload to finish", || {
        daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    });
    grows(&t, &daemon, "ticks.txt", 2, "ticks after the reload");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// Issue 11 #10: a file written a few bytes at a time was applied mid-write,
/// and jobs with truncated names ran. `name` comes last in each job so that
/// a file cut inside it is valid YAML with a wrong name.
#[test]
fn a_file_written_slowly_is_applied_only_whole() {
    let t = Test::new();
    t.write("conf/ticker.yaml", &format!("jobs:\n{TICKER}"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    grows(&t, &daemon, "ticks.txt", 1, "ticks at start");
    let names = [
        "alpha-job-with-a-rather-long-name",
        "bravo-job-with-a-rather-long-name",
        "charlie-job-with-a-rather-long-name",
    ];
    let mut text = String::from("jobs:\n");
    for name in names {
        text.push_str(&format!(
            "  - schedule: \"* * * * * *\"\n    command: echo {name} >> {}/ran.txt\n    name: {name}\n",
            t.root().display()
        ));
    }
    {
        use std::io::Write;
        let mut file = std::fs::File::create(t.path("conf/new.yaml")).expect("create");
        for (i, piece) in text.as_bytes().chunks(6).enumerate() {
            file.write_all(piece).expect("write");
            if i % 5 == 0 {
                daemon.signal(Signal::SIGHUP);
            }
            // The slow writer's pace (the scenario), not a wait.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for name in names {
        wait_for(Duration::from_secs(20), name, || {
            (!t.history(name).is_empty()).then_some(())
        });
    }
    let all = t
        .run_args(["history", "--json", "--limit", "100000"])
        .expect_code(0)
        .json();
    for run in all.as_array().expect("an array") {
        let job = run["job"].as_str().expect("a job name");
        assert!(
            job == "ticker" || names.contains(&job),
            "a job of a half-written file ran: {job}"
        );
    }
    let ran = std::fs::read_to_string(t.path("ran.txt")).unwrap_or_default();
    for line in ran.lines() {
        assert!(
            names.contains(&line),
            "a half-written command ran: {line:?}"
        );
    }
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

fn writer_job(name: &str, file: &str) -> String {
    format!(
        "jobs:\n  - name: {name}\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {{root}}/{file}\n"
    )
}

/// Issue 11 #11: one dangling symlink in cron.d refused the whole reload, so
/// a changed neighbour kept running its old content.
#[test]
fn a_dangling_symlink_in_cron_d_does_not_hold_back_a_changed_neighbour() {
    let t = Test::new();
    std::fs::create_dir_all(t.path("etc/cron.d")).expect("mkdir");
    t.write("conf/a.yaml", &writer_job("a", "a1.txt"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf", "--system-crontabs={root}"]);
    grows(&t, &daemon, "a1.txt", 1, "a at start");
    std::os::unix::fs::symlink(t.path("nowhere"), t.path("etc/cron.d/broken")).expect("symlink");
    t.write("conf/a.yaml", &writer_job("a", "a2.txt"));
    daemon.signal(Signal::SIGHUP);
    grows(&t, &daemon, "a2.txt", 2, "a's new content");
    let log = daemon.log();
    assert!(
        log.contains("cron.d/broken"),
        "the dangling link is reported: {log}"
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// Issue 11 #11: a file that loaded before and now has errors keeps its
/// previous version (its jobs keep running) without holding back its
/// neighbours; a new file with errors is left out with its error.
#[test]
fn a_broken_file_keeps_its_previous_version_and_a_new_broken_one_is_left_out() {
    let t = Test::new();
    t.write("conf/a.yaml", &writer_job("a", "a.txt"));
    t.write("conf/b.yaml", &writer_job("b", "b1.txt"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    grows(&t, &daemon, "a.txt", 1, "a at start");
    grows(&t, &daemon, "b1.txt", 1, "b at start");
    t.write("conf/a.yaml", "jobs:\n  - name: a\n    command: [oops\n");
    t.write("conf/b.yaml", &writer_job("b", "b2.txt"));
    t.write("conf/c.yaml", "jobs:\n  - name: c\n    schedule: [\n");
    daemon.signal(Signal::SIGHUP);
    grows(&t, &daemon, "b2.txt", 2, "b's new content");
    grows(&t, &daemon, "a.txt", 2, "a's previous version");
    let log = daemon.log();
    assert!(
        log.contains("a.yaml: not reloaded because it has errors; its previous version stays in force until it is fixed"),
        "{log}"
    );
    assert!(log.contains("c.yaml:"), "the new file's error: {log}");
    assert!(t.history("c").is_empty());
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// A source directory replaced as a whole (`mv new conf`, a volume
/// remounted) is noticed, and its new inode is watched from then on.
#[test]
fn a_replaced_config_directory_is_reloaded_and_watched_again() {
    let t = Test::new();
    t.write("conf/a.yaml", &writer_job("a", "a1.txt"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    grows(&t, &daemon, "a1.txt", 1, "a at start");
    t.write("next/a.yaml", &writer_job("a", "a2.txt"));
    std::fs::rename(t.path("conf"), t.path("old")).expect("mv conf old");
    std::fs::rename(t.path("next"), t.path("conf")).expect("mv next conf");
    grows(&t, &daemon, "a2.txt", 2, "the new directory's content");
    // A change inside the new directory reloads too.
    t.write("conf/a.yaml", &writer_job("a", "a3.txt"));
    grows(&t, &daemon, "a3.txt", 2, "a change in the new directory");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// Kubernetes updates a ConfigMap volume by pointing its `..data` link at a
/// new directory (the files are links through `..data`): both a `--config`
/// file inside it and the whole directory see the new content.
#[test]
fn a_configmap_data_swap_is_applied() {
    use std::os::unix::fs::symlink;
    let t = Test::new();
    t.write("cm/..2026_01/a.yaml", &writer_job("a", "a1.txt"));
    t.write("cm/..2026_01/b.yaml", &writer_job("b", "b1.txt"));
    symlink("..2026_01", t.path("cm/..data")).expect("symlink");
    symlink("..data/a.yaml", t.path("cm/a.yaml")).expect("symlink");
    symlink("..data/b.yaml", t.path("cm/b.yaml")).expect("symlink");
    let file_daemon = t.spawn_daemon(["--config", "{root}/cm/a.yaml"]);
    grows(&t, &file_daemon, "a1.txt", 1, "a at start");
    // The other daemon, on a state directory of its own, reads the directory.
    let dir_daemon = t.spawn_daemon(["--config", "{root}/cm", "--state-dir", "{root}/state2"]);
    grows(&t, &dir_daemon, "b1.txt", 1, "b at start");
    t.write("cm/..2026_02/a.yaml", &writer_job("a", "a2.txt"));
    t.write("cm/..2026_02/b.yaml", &writer_job("b", "b2.txt"));
    symlink("..2026_02", t.path("cm/..data_tmp")).expect("symlink");
    std::fs::rename(t.path("cm/..data_tmp"), t.path("cm/..data")).expect("swap");
    std::fs::remove_dir_all(t.path("cm/..2026_01")).expect("rm old");
    grows(&t, &file_daemon, "a2.txt", 2, "the file's new content");
    grows(&t, &dir_daemon, "b2.txt", 2, "the directory's new content");
    for daemon in [file_daemon, dir_daemon] {
        daemon.signal(Signal::SIGTERM);
        let (code, log) = daemon.wait(Duration::from_secs(10));
        assert_eq!(code, 0, "{log}");
    }
}

/// Only what may be a source has to settle: a job writing its log into a
/// `--config` directory every second must not hold every reload back for
/// the longest settle wait (30 s).
#[test]
fn a_log_written_into_a_config_directory_does_not_delay_reloads() {
    let t = Test::new();
    t.write("conf/a.yaml", &writer_job("a", "a1.txt"));
    t.write(
        "conf/noisy.yaml",
        "jobs:\n  - name: noisy\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/conf/noise.log\n",
    );
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    grows(&t, &daemon, "a1.txt", 1, "a at start");
    t.write("conf/a.yaml", &writer_job("a", "a2.txt"));
    grows(&t, &daemon, "a2.txt", 2, "a's new content");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

on_both_backends!(
    a_per_second_job_runs_once_per_tick_across_10_reloads,
    a_removed_job_finishes_its_running_instance_and_does_not_fire_again,
);
