//! What a user moving from cron expects to stay the same (issue 12): where a
//! crontab job runs, and what `check` says about copies of one job.

use crate::harness::Test;

/// Cron runs a crontab job in its user's `HOME`, so relative paths in the
/// command (`./bin/report.sh >> report.log`) work; jobrun's own directory
/// is not the user's.
#[test]
fn crontab_jobs_run_in_the_home_of_their_user() {
    let t = Test::new();
    for home in ["set", "inherited"] {
        t.script(
            &format!("{home}/bin/report.sh"),
            &format!("#!/bin/sh\npwd -P > {{root}}/{home}.pwd\n"),
        );
    }
    // The crontab's own HOME= line wins, as in cron.
    t.write(
        "with-home",
        "HOME={root}/set\n* * * * * ./bin/report.sh >> report.log\n",
    );
    // Without one, the job runs in the HOME of the user it runs as: here
    // jobrun's own user, whose HOME is jobrun's.
    t.write("without-home", "* * * * * ./bin/report.sh >> report.log\n");
    let root = t.root().canonicalize().unwrap();
    for (file, home) in [("with-home", "set"), ("without-home", "inherited")] {
        let out = Test::new()
            .env("HOME", &root.join("inherited").display().to_string())
            .env(
                "JOBRUN_STATE_DIR",
                &root.join(format!("state-{file}")).display().to_string(),
            )
            .run_args([
                "--crontab".to_string(),
                root.join(file).display().to_string(),
                "run".into(),
                "report".into(),
            ]);
        assert_eq!(out.code, 0, "{file}: {}{}", out.stdout, out.stderr);
        let pwd = std::fs::read_to_string(root.join(format!("{home}.pwd"))).unwrap();
        assert_eq!(pwd.trim(), root.join(home).display().to_string(), "{file}");
        assert!(root.join(home).join("report.log").exists(), "{file}");
    }
}

/// A system crontab line for another user runs in that user's `HOME` from
/// the passwd entry (`nobody`'s `/nonexistent` cannot be entered: `/`, as
/// under Debian's cron), or in the file's `HOME=` when it sets one.
#[test]
#[cfg_attr(not(jobrun_root), ignore = "running a job as another user needs root")]
fn system_crontab_jobs_run_in_the_home_of_the_user_they_run_as() {
    let t = Test::new()
        .file("root/etc/cron.d/passwd-home", "* * * * * nobody pwd -P\n")
        .file(
            "root/etc/cron.d/set-home",
            "HOME=/tmp\n* * * * * nobody pwd -P; true\n",
        );
    let list = t
        .run_args(["--system-crontabs={root}/root", "list", "--json"])
        .expect_code(0)
        .json();
    let names = crate::harness::names(&list);
    assert_eq!(names.len(), 2, "{list}");
    let mut seen = Vec::new();
    for name in names {
        let out = t.run_args(["--system-crontabs={root}/root", "run", name.as_str()]);
        assert_eq!(out.code, 0, "{name}: {}{}", out.stdout, out.stderr);
        seen.push(out.stdout);
    }
    let tmp = std::fs::canonicalize("/tmp").unwrap().display().to_string();
    assert!(
        seen.iter()
            .any(|o| o.lines().any(|l| l.ends_with(" /") || l == "/")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|o| o.lines().any(|l| l.ends_with(&tmp))),
        "{seen:?}"
    );
}

/// `@reboot` is once per boot per jobrun instance: a second jobrun (its own
/// sources and state directory) sharing the marker directory (the default
/// `/run/jobrun` as root) runs its own `@reboot` jobs, and a restart of
/// either within the boot runs none again.
#[test]
fn each_jobrun_instance_runs_its_reboot_jobs_once_per_boot() {
    use nix::sys::signal::Signal;
    use std::time::Duration;
    let t = Test::new();
    for name in ["a", "b"] {
        t.write(
            &format!("{name}.cron"),
            &format!("@reboot echo {name} >> {{root}}/boots.txt\n"),
        );
    }
    let boots = || std::fs::read_to_string(t.path("boots.txt")).unwrap_or_default();
    let start = |name: &str, expected: &'static str| {
        let daemon = t.spawn_daemon([
            "--crontab".to_string(),
            format!("{{root}}/{name}.cron"),
            "--state-dir".into(),
            format!("{{root}}/state-{name}"),
            "--reboot-marker-dir".into(),
            "{root}/run".into(),
        ]);
        crate::harness::wait_for(Duration::from_secs(20), "the @reboot decision", || {
            let ran = boots() == expected;
            let skipped = daemon.log().contains("already ran in this boot");
            (ran || skipped).then_some(())
        });
        daemon.signal(Signal::SIGTERM);
        let (code, log) = daemon.wait(Duration::from_secs(10));
        assert_eq!(code, 0, "{log}");
        log
    };
    start("a", "a\n");
    start("b", "a\nb\n");
    let log = start("a", "never");
    assert!(log.contains("already ran in this boot"), "{log}");
    assert_eq!(boots(), "a\nb\n", "each instance ran its @reboot job once");
}

/// A YAML job without `user:` and a `cron.d` copy naming the user jobrun
/// runs as are one job (the Wallos double email, spelled differently), and
/// `check` names the job whose copies are scheduled differently.
#[test]
fn check_names_a_job_whose_copies_are_scheduled_differently() {
    let me = jobrun::users::user_by_uid(nix::unistd::geteuid().as_raw())
        .expect("the user database")
        .expect("the test's user has a name")
        .name;
    let t = Test::new()
        .file(
            "jobs.yaml",
            "jobs:\n  - name: sendnotifications\n    schedule: \"0 9 * * *\"\n    command: php /app/send.php\n",
        )
        .file(
            "root/etc/cron.d/app",
            format!("0 8 * * * {me} php /app/send.php\n"),
        );
    let args = |cmd: &'static str| {
        vec![
            "--config",
            "{root}/jobs.yaml",
            "--system-crontabs={root}/root",
            cmd,
        ]
    };
    let mut list = args("list");
    list.push("--json");
    let jobs = t.run_args(list).expect_code(0).json();
    assert_eq!(
        crate::harness::names(&jobs),
        ["sendnotifications"],
        "{jobs}"
    );
    let check = t.run_args(args("check")).expect_code(0);
    let drift = check
        .stdout
        .lines()
        .find(|l| l.contains("scheduled differently"))
        .unwrap_or_else(|| panic!("no drift warning:\n{}{}", check.stdout, check.stderr));
    assert!(drift.contains("warning"), "{drift}");
    assert!(drift.contains("sendnotifications"), "{drift}");
    assert!(drift.contains("jobs.yaml:"), "{drift}");
    assert!(drift.contains("etc/cron.d/app:1"), "{drift}");

    // The daemon says it too, at start.
    let daemon = t.spawn_daemon([
        "--config",
        "{root}/jobs.yaml",
        "--system-crontabs={root}/root",
    ]);
    // Waits for the start (SIGTERM is handled from then on), not only for
    // the warning, which is logged before.
    crate::harness::wait_for(std::time::Duration::from_secs(20), "the start", || {
        daemon.log().contains("daemon started").then_some(())
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("scheduled differently"))
        .unwrap_or_else(|| panic!("no drift warning in the daemon's log:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("sendnotifications"),
        "{line}"
    );
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(std::time::Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}
