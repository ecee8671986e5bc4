//! Issue 11's reproducers, each reloaded into a running daemon: whatever a
//! source says, the daemon stays up and its other jobs keep firing.
//!
//! Each reproducer is a class of input that once took the scheduler down or
//! ate the machine's memory (a 6,000-link chain, durations at the integer
//! limits, quadratic environment expansion, YAML alias and nesting bombs, a
//! dangling symlink). The daemon runs under an address-space limit, so a
//! regression fails this test instead of the machine.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{wait_for, Daemon, Test};

const TICKER: &str = "jobs:\n  - name: ticker\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/ticks.txt\n";

/// The daemon's address space: generous for jobrun (a few MiB resident, a
/// few hundred MiB of reserved thread stacks and malloc arenas), far below
/// what the quadratic inputs needed (gigabytes).
const ADDRESS_SPACE: u64 = 3 << 30;

fn tick_count(t: &Test) -> usize {
    std::fs::read_to_string(t.path("ticks.txt"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits until the ticker has run `more` times after now, checking that the
/// daemon is still alive on the way.
#[track_caller]
fn keeps_firing(t: &Test, daemon: &mut Daemon, more: usize, after: &str) {
    let from = tick_count(t);
    wait_for(
        Duration::from_secs(30),
        &format!("{more} more ticks after {after}"),
        || {
            if let Some(code) = daemon.exited() {
                panic!("the daemon exited ({code}) after {after}");
            }
            (tick_count(t) >= from + more).then_some(())
        },
    );
}

fn chain(links: usize) -> String {
    let mut out = String::from("jobs:\n");
    for i in 0..links {
        out.push_str(&format!("  - name: j{i}\n    command: \"true {i}\"\n"));
        if i + 1 < links {
            out.push_str(&format!("    on_success: [j{}]\n", i + 1));
        }
    }
    out
}

fn huge_durations(dir: &Path) -> Vec<String> {
    let d = dir.display();
    let mut out = Vec::new();
    for value in [
        "18446744073709551615",
        "9223372036854775807",
        "\"300000000000y\"",
    ] {
        out.push(format!(
            "jobs:\n  - name: watcher\n    command: \"true\"\n    watch: {{paths: [{d}], debounce: {value}}}\n"
        ));
        for key in ["timeout", "kill_grace", "requires_timeout"] {
            out.push(format!(
                "jobs:\n  - name: big\n    schedule: \"* * * * * *\"\n    command: \"true\"\n    {key}: {value}\n"
            ));
        }
        for key in ["backoff", "max_backoff"] {
            out.push(format!(
                "jobs:\n  - name: big\n    schedule: \"* * * * * *\"\n    command: \"false\"\n    retry: {{attempts: 2, {key}: {value}}}\n"
            ));
        }
    }
    out
}

fn alias_bomb() -> String {
    let mut out = format!(
        "defaults:\n  env:\n    BIG: &big \"{}\"\n",
        "x".repeat(100_000)
    );
    for i in 0..1_000 {
        out.push_str(&format!("    V{i}: *big\n"));
    }
    out.push_str("jobs:\n");
    for i in 0..1_000 {
        out.push_str(&format!(
            "  - name: a{i}\n    schedule: \"0 0 1 1 *\"\n    command: \"true {i}\"\n"
        ));
    }
    out
}

fn deep_nesting(depth: usize) -> String {
    format!("jobs: {}{}\n", "[".repeat(depth), "]".repeat(depth))
}

fn many_variables(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!("V{i}=x\n"));
    }
    for i in 0..n {
        out.push_str(&format!("0 0 1 1 * echo {i}\n"));
    }
    out
}

fn env_wrappers(words: usize) -> String {
    format!("0 0 1 1 * {}x\n", "env ".repeat(words))
}

#[test]
fn a_daemon_reloading_each_issue_11_reproducer_keeps_firing_its_other_jobs() {
    let t = Test::new();
    t.write("conf/ticker.yaml", TICKER);
    t.write("repro.cron", "");
    std::fs::create_dir_all(t.path("watched")).expect("mkdir");
    let mut daemon = t.spawn_daemon_limited(
        ["--config", "{root}/conf", "--crontab", "{root}/repro.cron"],
        ADDRESS_SPACE,
    );
    keeps_firing(&t, &mut daemon, 2, "start");

    let mut yaml: Vec<(String, String)> = vec![
        ("a 6,000-job chain".into(), chain(6_000)),
        ("1,000 aliases of a 100 KB string".into(), alias_bomb()),
        ("flow YAML nested 50,000 deep".into(), deep_nesting(50_000)),
    ];
    for (i, text) in huge_durations(&t.path("watched")).into_iter().enumerate() {
        yaml.push((format!("huge duration #{i}"), text));
    }
    for (what, text) in &yaml {
        t.write("conf/repro.yaml", text);
        daemon.signal(Signal::SIGHUP);
        // A change in the watched directory reaches a `watch:` job if the
        // reproducer loaded one.
        t.write("watched/poke", what);
        keeps_firing(&t, &mut daemon, 2, what);
    }
    std::fs::remove_file(t.path("conf/repro.yaml")).expect("rm");

    for (what, text) in [
        (
            "5,000 variables before 5,000 entries",
            many_variables(5_000),
        ),
        ("an entry behind 16,000 `env` words", env_wrappers(16_000)),
    ] {
        t.write("repro.cron", &text);
        daemon.signal(Signal::SIGHUP);
        keeps_firing(&t, &mut daemon, 2, what);
    }

    std::os::unix::fs::symlink(t.path("nowhere"), t.path("conf/dangling.yaml")).expect("symlink");
    daemon.signal(Signal::SIGHUP);
    keeps_firing(&t, &mut daemon, 2, "a dangling symlink among the sources");

    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
}
