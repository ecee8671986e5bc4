//! What a user moving from cron expects to stay the same (issue 12): where a
//! crontab job runs, and what `check` says about copies of one job.

use std::os::unix::fs::PermissionsExt;

use crate::backends::{on_both_backends, Backend};
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

/// A crontab (certbot's line, two `run-parts` lines) and a state at schema
/// version 5 holding runs under the names jobrun's earlier rule derived:
/// `sleep` for certbot's line, `run-parts` and `run-parts-2` by position.
/// Returns the test and the day of those runs (yesterday: the daemon's
/// pruning keeps them).
fn an_old_state_with_runs_under_earlier_names() -> (Test, String) {
    let t = Test::new();
    #[allow(clippy::disallowed_methods)] // the daemon prunes against the real clock
    let day = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    t.write(
        "crontab",
        "0 0 1 1 * test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew\n\
         17 3 1 1 * cd / && run-parts --report {root}/hourly\n\
         25 6 1 1 * cd / && run-parts --report {root}/daily\n",
    );
    std::fs::create_dir_all(t.path("hourly")).expect("writing the old state");
    std::fs::create_dir_all(t.path("daily")).expect("writing the old state");
    // The state as jobrun left it at schema version 5.
    let state = t.path("state");
    std::fs::create_dir_all(&state).expect("writing the old state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))
        .expect("writing the old state");
    {
        let conn =
            rusqlite::Connection::open(state.join("jobrun.db")).expect("writing the old state");
        for migration in [
            include_str!("../../migrations/sqlite/0001_runs.sql"),
            include_str!("../../migrations/sqlite/0002_daemons.sql"),
            include_str!("../../migrations/sqlite/0003_followups.sql"),
            include_str!("../../migrations/sqlite/0004_missed.sql"),
            include_str!("../../migrations/sqlite/0005_daemon_loaded.sql"),
        ] {
            conn.execute_batch(migration)
                .expect("writing the old state");
        }
        conn.pragma_update(
            None,
            "application_id",
            jobrun::store::sqlite::APPLICATION_ID,
        )
        .expect("writing the old state");
        conn.pragma_update(None, "user_version", 5)
            .expect("writing the old state");
        // Sorted by command, the daily line came first: `run-parts`.
        for (job, tick) in [
            ("sleep", format!("{day}T00:00:00.000Z")),
            ("run-parts", format!("{day}T06:25:00.000Z")),
            ("run-parts-2", format!("{day}T07:17:00.000Z")),
        ] {
            conn.execute(
                "INSERT INTO runs (job, trigger, tick, claimed_at, started_at, finished_at,
                                   duration_ms, status, exit_code, host, owner)
                 VALUES (?1, 'schedule', ?2, ?2, ?2, ?2, 5, 'succeeded', 0, 'h', 'h:1:x')",
                [job, &tick],
            )
            .expect("writing the old state");
        }
    }
    (t, day)
}

/// The ticks of `job`'s runs in `history`, newest first (`manual` for none).
fn ticks(t: &Test, job: &str) -> Vec<String> {
    let runs = t.run_args(["history", job, "--json"]).expect_code(0).json();
    let runs = runs.as_array().expect("a list").clone();
    assert!(runs.iter().all(|r| r["job"] == job), "{runs:?}");
    runs.iter()
        .map(|r| r["tick"].as_str().unwrap_or("manual").to_string())
        .collect()
}

/// After the upgrade, `history` finds an old state's runs under the jobs'
/// new names, and `list` and `run` use those names.
#[test]
fn runs_recorded_under_an_earlier_derived_name_are_found_under_the_new_one() {
    let (t, day) = an_old_state_with_runs_under_earlier_names();
    let with = |more: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["--crontab", "{root}/crontab"];
        args.extend_from_slice(more);
        args
    };
    let jobs = t.run_args(with(&["list", "--json"])).expect_code(0).json();
    assert_eq!(
        crate::harness::names(&jobs),
        ["certbot", "run-parts-hourly", "run-parts-daily"],
        "{jobs}"
    );
    // The first command that writes the state with the plan in hand (here a
    // manual run; a daemon at its start) moves the runs.
    t.run_args(with(&["run", "run-parts-hourly"]))
        .expect_code(0);
    let ticks = |job: &str| ticks(&t, job);
    assert_eq!(ticks("certbot"), [format!("{day}T00:00:00Z")]);
    assert_eq!(ticks("run-parts-daily"), [format!("{day}T06:25:00Z")]);
    assert_eq!(
        ticks("run-parts-hourly"),
        ["manual".to_string(), format!("{day}T07:17:00Z")]
    );
    assert!(ticks("sleep").is_empty());
    assert!(ticks("run-parts-2").is_empty());
}

/// The daemon moves them at its start, before anything reads them.
#[test]
fn the_daemon_finds_an_old_states_runs_under_the_new_names_at_its_start() {
    let (t, day) = an_old_state_with_runs_under_earlier_names();
    let daemon = t.spawn_daemon(["--crontab", "{root}/crontab"]);
    crate::harness::wait_for(std::time::Duration::from_secs(20), "the start", || {
        daemon.log().contains("daemon started").then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(std::time::Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("runs of renamed crontab jobs moved"), "{log}");
    assert_eq!(ticks(&t, "certbot"), [format!("{day}T00:00:00Z")]);
    assert_eq!(ticks(&t, "run-parts-daily"), [format!("{day}T06:25:00Z")]);
    assert_eq!(ticks(&t, "run-parts-hourly"), [format!("{day}T07:17:00Z")]);
}

/// After a reload gives a job another name (a second job now shares its
/// base, so it takes a suffix), its runs move to that name.
fn a_job_renamed_by_a_reload_keeps_its_runs(backend: Backend) {
    let Some(t) = backend.on(Test::new(), "a_job_renamed_by_a_reload_keeps_its_runs") else {
        return;
    };
    t.script("backup.sh", "#!/bin/sh\nexit 0\n");
    t.write("crontab", "0 0 1 1 * {root}/backup.sh\n");
    let args = |more: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["--crontab", "{root}/crontab"];
        args.extend_from_slice(more);
        args
    };
    let jobs = t.run_args(args(&["list", "--json"])).expect_code(0).json();
    assert_eq!(crate::harness::names(&jobs), ["backup"], "{jobs}");
    t.run_args(args(&["run", "backup"])).expect_code(0);
    let before = t.history("backup");
    assert_eq!(before.len(), 1, "{before:?}");

    let daemon = t.spawn_daemon(args(&[]));
    crate::harness::wait_for(std::time::Duration::from_secs(20), "the start", || {
        daemon.log().contains("daemon started").then_some(())
    });
    t.write(
        "crontab",
        "0 0 1 1 * {root}/backup.sh\n0 0 1 1 * {root}/backup.sh --full\n",
    );
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    crate::harness::wait_for(std::time::Duration::from_secs(20), "the move", || {
        daemon
            .log()
            .contains("runs of renamed crontab jobs moved")
            .then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, log) = daemon.wait(std::time::Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");

    let jobs = t.run_args(args(&["list", "--json"])).expect_code(0).json();
    let renamed = jobs
        .as_array()
        .expect("a list")
        .iter()
        .find(|j| !j.to_string().contains("--full"))
        .and_then(|j| j["name"].as_str())
        .expect("the first job")
        .to_string();
    assert!(renamed.starts_with("backup-"), "{jobs}");
    assert!(t.history("backup").is_empty(), "{log}");
    let after = t.history(&renamed);
    assert_eq!(after.len(), 1, "{log}");
    assert_eq!(after[0]["id"], before[0]["id"]);
}

on_both_backends!(a_job_renamed_by_a_reload_keeps_its_runs);
