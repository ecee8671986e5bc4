//! Issue 11: every value a user can type is bounded, and refused where it is
//! written (`path:line`, or a usage error on the command line), never a panic
//! later. Memory is measured as the child's peak RSS, never as time.

use crate::harness::Test;

#[test]
fn run_of_a_job_with_an_overlong_duration_exits_2_with_the_message_not_a_panic() {
    for value in [
        "9223372036854775807",
        "18446744073709551615",
        "\"300000000000y\"",
    ] {
        for key in [
            "timeout: V",
            "kill_grace: V",
            "requires_timeout: V",
            "retry: {attempts: 2, backoff: V}",
            "retry: {attempts: 2, max_backoff: V}",
            "watch: {paths: [d], debounce: V}",
        ] {
            let t = Test::new().file(
                "jobs.yaml",
                format!(
                    "jobs:\n  - name: a\n    command: \"true\"\n    requires: [{{file: /}}]\n    {}\n",
                    key.replace('V', value)
                ),
            );
            let out = t
                .run_args(["--config", "{root}/jobs.yaml", "run", "a"])
                .expect_code(2);
            assert!(
                out.stderr.contains("jobs.yaml:5: error: job a: ")
                    && out.stderr.contains("is too long; at most"),
                "{key} {value}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn numeric_and_duration_options_are_bounded_with_a_usage_error() {
    let cases: &[&[&str]] = &[
        &[
            "next",
            "--expr",
            "@reboot",
            "--count",
            "18446744073709551615",
        ],
        &["next", "--expr", "* * * * *", "--count", "1000000000000"],
        &["history", "--limit", "18446744073709551615"],
        &["history", "--since", "1000000y"],
        &["history", "--since", "300000000000y"],
        &["prune", "--keep-days", "4294967295"],
        &["daemon", "--keep-days", "4294967295"],
        &["daemon", "--shutdown-grace", "9223372036854775807"],
        &["daemon", "--shutdown-grace", "300000000000y"],
        &["daemon", "--max-catch-up", "300000000000y"],
        &["daemon", "--output-tail", "18446744073709551615"],
    ];
    for args in cases {
        let out = Test::new().args(args.iter()).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("is too long; at most") || out.stderr.contains("is not in 0..="),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Within the bounds, nothing changes.
    let out = Test::new()
        .args(["next", "--expr", "* * * * *", "--count", "3", "--json"])
        .run()
        .expect_code(0);
    assert_eq!(out.json()["times"].as_array().map(Vec::len), Some(3));
}

/// The address space a `check` child may use: enough for any linear stage on
/// these inputs, far below what a quadratic one needs, so a regression fails
/// at once (an allocation failure) instead of taking the machine's memory.
const ADDRESS_SPACE_CAP: u64 = 2 << 30;

/// Runs `jobrun ARGS` under [`ADDRESS_SPACE_CAP`] and returns its exit code,
/// its output and its peak resident memory in KiB (from `wait4`'s rusage:
/// the kernel's own high-water mark, whatever the child's lifetime).
fn run_measured(t: &Test, args: &[&str]) -> (i32, String, u64) {
    use std::os::unix::process::CommandExt;
    let out_path = t.path("measured.out");
    let out = std::fs::File::create(&out_path).expect("creating the output file");
    let err = out.try_clone().expect("cloning the output file");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jobrun"));
    cmd.args(
        args.iter()
            .map(|a| a.replace("{root}", &t.root().display().to_string())),
    )
    .env("TZ", "UTC")
    .env("JOBRUN_STATE_DIR", t.path("state"))
    .env_remove("JOBRUN_CONFIG")
    .stdout(out)
    .stderr(err);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_CAP,
                rlim_max: ADDRESS_SPACE_CAP,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &cap) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    // Reaped by wait4 below, which (unlike Child::wait) returns the rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("starting jobrun");
    let pid = i32::try_from(child.id()).expect("a pid fits i32");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet reaped (Child::wait is never called).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let peak_kib = u64::try_from(usage.ru_maxrss).expect("a non-negative maxrss");
    (code, output, peak_kib)
}

/// A bound on `check`'s peak memory well above what a linear reading needs
/// (a few MiB of input) and far below what a quadratic one reaches.
const CHECK_PEAK_KIB: u64 = 200 * 1024;

#[test]
fn a_long_chain_of_wrapper_words_derives_its_name_in_linear_memory() {
    // `env env ... env x`: one entry, 32,000 wrapper words (128 KB, just under
    // the line limit). Deriving the name once copied the remaining words per
    // wrapper: 4 GB here.
    let words = 31_000;
    let line = format!("* * * * * {}x\n", "env ".repeat(words));
    let t = Test::new().file("crontab", &line);
    let (code, out, peak) = run_measured(&t, &["--crontab", "{root}/crontab", "check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 job(s)"), "{out}");
    eprintln!("peak RSS {peak} KiB");
    assert!(
        peak < CHECK_PEAK_KIB,
        "peak RSS {peak} KiB for one {} byte entry",
        line.len()
    );
    let list = t
        .run_args(["--crontab", "{root}/crontab", "list", "--json"])
        .expect_code(0);
    assert_eq!(crate::harness::names(&list.json()), ["x"]);
}

#[test]
fn crontab_variables_are_shared_by_the_entries_after_them_not_copied() {
    // 5,000 variables, then 5,000 entries (issue 11: 6.6 GB for `check`,
    // every entry copied every variable).
    let n = 5_000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("V{i}=x\n"));
    }
    for i in 0..n {
        text.push_str(&format!("* * * * * /usr/bin/task{i}\n"));
    }
    let t = Test::new().file("crontab", &text);
    let (code, out, peak) = run_measured(&t, &["--crontab", "{root}/crontab", "check"]);
    eprintln!("peak RSS {peak} KiB");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{n} job(s)")), "{out}");
    assert!(
        peak < CHECK_PEAK_KIB,
        "peak RSS {peak} KiB for {} bytes",
        text.len()
    );
}

#[test]
fn yaml_defaults_env_is_shared_by_the_jobs_not_copied() {
    // 2,000 default variables of 100 bytes (200 KB, under the per-job
    // limit) and 2,000 jobs: a copy per job was 400 MB of strings.
    let n = 2_000;
    let mut text = String::from("defaults:\n  env:\n");
    for i in 0..n {
        text.push_str(&format!("    V{i}: {}\n", "x".repeat(100)));
    }
    text.push_str("jobs:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: j{i}, schedule: \"@daily\", command: task{i}}}\n"
        ));
    }
    let t = Test::new().file("jobs.yaml", &text);
    let (code, out, peak) = run_measured(&t, &["--config", "{root}/jobs.yaml", "check"]);
    eprintln!("peak RSS {peak} KiB");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{n} job(s)")), "{out}");
    assert!(
        peak < CHECK_PEAK_KIB,
        "peak RSS {peak} KiB for {} bytes",
        text.len()
    );
}

#[test]
fn a_jobs_environment_over_the_limit_is_refused_with_its_line() {
    let big = "x".repeat(100 * 1024);
    let t = Test::new()
        .file(
            "crontab",
            format!("A={big}\nB={big}\n* * * * * one\nC={big}\n* * * * * two\n"),
        )
        .file(
            "jobs.yaml",
            format!(
                "defaults:\n  env:\n    A: {big}\n    B: {big}\njobs:\n  - name: a\n    command: x\n    env:\n      C: {big}\n  - name: b\n    command: y\n"
            ),
        );
    let out = t
        .run_args(["--crontab", "{root}/crontab", "check"])
        .expect_code(1);
    assert!(
        out.stdout.contains("crontab:5: error: environment: "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("at most 262144"), "{}", out.stdout);
    assert!(out.stdout.contains("1 job(s)"), "{}", out.stdout);
    let out = t
        .run_args(["--config", "{root}/jobs.yaml", "check"])
        .expect_code(1);
    assert!(
        out.stdout
            .contains("jobs.yaml:8: error: job a: environment: "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 job(s)"), "{}", out.stdout);
}

#[test]
fn a_deeply_nested_yaml_file_is_refused_with_its_line_before_parsing() {
    // 50,000 levels of flow collections (100 KB): 7 s of parsing, twice.
    let text = format!(
        "jobs: []\nx: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let t = Test::new().file("jobs.yaml", &text);
    let (code, out, peak) = run_measured(&t, &["--config", "{root}/jobs.yaml", "check"]);
    eprintln!("peak RSS {peak} KiB");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("jobs.yaml:2: error: nesting: "), "{out}");
    assert!(peak < CHECK_PEAK_KIB, "peak RSS {peak} KiB");
}

#[test]
fn yaml_aliases_of_a_large_value_are_refused_before_they_expand() {
    // Issue 11: `defaults.env` aliases one 100 KB string 1,000 times, with
    // 1,000 jobs (149 KB): killed by the OOM killer at 24 GB.
    let mut text = format!("defaults:\n  env:\n    BIG: &big {}\n", "x".repeat(100_000));
    for i in 0..1_000 {
        text.push_str(&format!("    V{i}: *big\n"));
    }
    text.push_str("jobs:\n");
    for i in 0..1_000 {
        text.push_str(&format!("  - {{name: j{i}, command: task{i}}}\n"));
    }
    let t = Test::new().file("jobs.yaml", &text);
    let (code, out, peak) = run_measured(&t, &["--config", "{root}/jobs.yaml", "check"]);
    eprintln!("peak RSS {peak} KiB");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("jobs.yaml:14: error: aliases: `*big`"),
        "{out}"
    );
    assert!(peak < CHECK_PEAK_KIB, "peak RSS {peak} KiB");
}

#[test]
fn source_files_over_the_size_and_line_limits_are_refused_with_their_place() {
    let huge = format!("{}\n", "# filler\n".repeat(1_000_000));
    let long = format!("* * * * * echo {}\n", "x".repeat(200_000));
    let t = Test::new()
        .file("big.yaml", &huge)
        .file("big.crontab", &huge)
        .file(
            "long.yaml",
            format!("jobs: []\n# {}\n", "x".repeat(200_000)),
        )
        .file(
            "long.crontab",
            format!("* * * * * one\n{long}* * * * * two\n"),
        );
    for (flag, file) in [("--config", "big.yaml"), ("--crontab", "big.crontab")] {
        let out = t
            .run_args([flag, &format!("{{root}}/{file}"), "check"])
            .expect_code(1);
        assert!(
            out.stdout.contains(&format!("{file}: error: "))
                && out.stdout.contains("the file is larger than 8388608 bytes"),
            "{}",
            out.stdout
        );
    }
    let out = t
        .run_args(["--config", "{root}/long.yaml", "check"])
        .expect_code(1);
    assert!(
        out.stdout
            .contains("long.yaml:2: error: line: 200002 bytes is too long"),
        "{}",
        out.stdout
    );
    let out = t
        .run_args(["--crontab", "{root}/long.crontab", "check"])
        .expect_code(1);
    assert!(
        out.stdout.contains("long.crontab:2: error: line: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 job(s)"),
        "the other lines are read: {}",
        out.stdout
    );
}

/// Issue 11, "done when": a daemon under reload of each input reproducer
/// keeps firing its other jobs (each is refused with its line, quickly and in
/// little memory, and nothing of it reaches a timer).
#[test]
fn a_daemon_reloading_each_input_reproducer_keeps_firing_its_other_jobs() {
    use nix::sys::signal::Signal;
    use std::time::Duration;

    let t = Test::new();
    t.write(
        "conf/ticker.yaml",
        "jobs:\n  - name: ticker\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {root}/ticks.txt\n",
    );
    std::fs::create_dir_all(t.path("watched")).expect("creating the watched directory");
    let ticks = || {
        std::fs::read_to_string(t.path("ticks.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    let grows = |what: &str| {
        let from = ticks();
        crate::harness::wait_for(Duration::from_secs(20), what, || {
            assert!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.pid()), None).is_ok(),
                "the daemon is gone: {}",
                daemon.log()
            );
            (ticks() >= from + 2).then_some(())
        });
    };
    grows("ticks at start");

    let big = "x".repeat(100_000);
    let mut aliases = format!("defaults:\n  env:\n    BIG: &big {big}\n");
    for i in 0..1_000 {
        aliases.push_str(&format!("    V{i}: *big\n"));
    }
    aliases.push_str("jobs:\n  - {name: a, command: x}\n");
    let reproducers = [
        (
            "deep.yaml",
            format!("jobs: []\nx: {}{}\n", "[".repeat(50_000), "]".repeat(50_000)),
            "deep.yaml:2",
        ),
        ("aliases.yaml", aliases, "aliases.yaml:14"),
        (
            "debounce.yaml",
            format!(
                "jobs:\n  - name: w\n    command: \"true\"\n    watch: {{paths: [{}], debounce: 18446744073709551615}}\n",
                t.path("watched").display()
            ),
            "debounce.yaml:4",
        ),
        (
            "timeout.yaml",
            "jobs:\n  - name: slow\n    schedule: \"* * * * * *\"\n    command: \"true\"\n    timeout: \"300000000000y\"\n".to_string(),
            "timeout.yaml:5",
        ),
    ];
    for (file, text, place) in reproducers {
        t.write(&format!("conf/{file}"), &text);
        daemon.signal(Signal::SIGHUP);
        crate::harness::wait_for(Duration::from_secs(20), place, || {
            daemon.log().contains(place).then_some(())
        });
        grows(file);
    }
    // A change in the directory the refused job would have watched.
    t.write("watched/new", "x");
    grows("ticks after a change in the watched directory");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}
