//! Issue 11 #14: the owner and mode rules for the files a user names (YAML job
//! files, `--config` directories, `--crontab` files), as `check` and a
//! reloading daemon meet them, whatever user jobrun runs as.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{names, wait_for, Test};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn job(name: &str) -> String {
    format!("jobs:\n  - name: {name}\n    schedule: \"@daily\"\n    command: echo {name}\n")
}

/// A job writing a line to `file` every second.
fn writer_job(name: &str, file: &str) -> String {
    format!(
        "jobs:\n  - name: {name}\n    schedule: \"* * * * * *\"\n    command: echo \"$JOBRUN_TICK\" >> {{root}}/{file}\n"
    )
}

fn lines(t: &Test, file: &str) -> usize {
    std::fs::read_to_string(t.path(file))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_world_writable_job_file_is_refused_by_check_with_its_path_and_the_fix() {
    let t = Test::new();
    t.write("conf/bad.yaml", &job("bad"));
    t.write("conf/good.yaml", &job("good"));
    chmod(&t.path("conf/bad.yaml"), 0o666);
    let out = t
        .run_args(["check", "--config", "{root}/conf"])
        .expect_code(1);
    let bad = t.path("conf/bad.yaml").display().to_string();
    assert!(
        out.stdout.contains(&format!("{bad}: error: refused")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("`chmod o-w {bad}`")),
        "{}",
        out.stdout
    );
    // The rest runs.
    let list = t
        .run_args(["list", "--json", "--config", "{root}/conf"])
        .expect_code(0);
    assert_eq!(names(&list.json()), ["good"]);
    // A file given by name, and a `--crontab` file, likewise.
    let out = t
        .run_args(["check", "--config", "{root}/conf/bad.yaml"])
        .expect_code(1);
    assert!(out.stdout.contains("chmod o-w"), "{}", out.stdout);
    t.write("crontab", "@daily echo hi\n");
    chmod(&t.path("crontab"), 0o646);
    let out = t
        .run_args(["check", "--crontab", "{root}/crontab"])
        .expect_code(1);
    assert!(
        out.stdout.contains("crontab: error: refused"),
        "{}",
        out.stdout
    );
    chmod(&t.path("conf/bad.yaml"), 0o644);
    chmod(&t.path("crontab"), 0o644);
    t.run_args([
        "check",
        "--config",
        "{root}/conf",
        "--crontab",
        "{root}/crontab",
    ])
    .expect_code(0);
}

#[test]
fn a_group_writable_job_file_is_read_with_a_warning() {
    let t = Test::new();
    t.write("jobs.yaml", &job("shared"));
    chmod(&t.path("jobs.yaml"), 0o664);
    let out = t
        .run_args(["check", "--config", "{root}/jobs.yaml"])
        .expect_code(0);
    assert!(
        out.stdout
            .contains("jobs.yaml: warning: the file is group-writable (mode 0664)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ConfigMap"), "{}", out.stdout);
    assert!(out.stdout.contains("1 job(s)"), "{}", out.stdout);
}

#[test]
fn a_world_writable_config_directory_is_refused() {
    let t = Test::new();
    t.write("conf/a.yaml", &job("a"));
    chmod(&t.path("conf"), 0o777);
    let out = t
        .run_args(["check", "--config", "{root}/conf"])
        .expect_code(1);
    let conf = t.path("conf").display().to_string();
    assert!(
        out.stdout.contains(&format!(
            "{conf}: error: refused: the directory is world-writable"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 job(s)"), "{}", out.stdout);
    // With the sticky bit (as /tmp), nobody can replace another's file.
    chmod(&t.path("conf"), 0o1777);
    t.run_args(["check", "--config", "{root}/conf"])
        .expect_code(0);
}

/// A Kubernetes ConfigMap volume: the files are links through `..data`, a
/// link to a timestamped directory. Owned by jobrun's own user here (root in
/// a pod), it loads as a directory and as a file, with no finding.
#[test]
fn a_configmap_style_data_symlink_tree_still_loads() {
    let t = Test::new();
    t.write("cm/..2026_01_01/a.yaml", &job("a"));
    t.write("cm/..2026_01_01/b.yaml", &job("b"));
    symlink("..2026_01_01", t.path("cm/..data")).expect("symlink");
    symlink("..data/a.yaml", t.path("cm/a.yaml")).expect("symlink");
    symlink("..data/b.yaml", t.path("cm/b.yaml")).expect("symlink");
    let out = t
        .run_args(["check", "--config", "{root}/cm"])
        .expect_code(0);
    assert!(
        out.stdout
            .contains("2 job(s) (0 merged from several entries): 0 error(s), 0 warning(s)"),
        "{}",
        out.stdout
    );
    let out = t
        .run_args(["check", "--config", "{root}/cm/a.yaml"])
        .expect_code(0);
    assert!(out.stdout.contains("1 job(s)"), "{}", out.stdout);
}

/// A file that loaded before and is now refused (replaced by a world-writable
/// one) keeps its previous version in a daemon, as a file with errors does,
/// without holding back its neighbour's change; fixing its mode applies it.
#[test]
fn a_job_file_refused_on_reload_keeps_its_previous_version() {
    let t = Test::new();
    t.write("conf/a.yaml", &writer_job("a", "a1.txt"));
    t.write("conf/b.yaml", &writer_job("b", "b1.txt"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    let grows = |file: &str, more: usize, what: &str| {
        let from = lines(&t, file);
        wait_for(Duration::from_secs(20), what, || {
            (lines(&t, file) >= from + more).then_some(())
        });
    };
    grows("a1.txt", 1, "a at start");
    grows("b1.txt", 1, "b at start");
    // The unsafe version is put in place whole, by a rename.
    t.write("conf/.a.tmp", &writer_job("a", "a2.txt"));
    chmod(&t.path("conf/.a.tmp"), 0o666);
    std::fs::rename(t.path("conf/.a.tmp"), t.path("conf/a.yaml")).expect("rename");
    t.write("conf/b.yaml", &writer_job("b", "b2.txt"));
    daemon.signal(Signal::SIGHUP);
    grows("b2.txt", 2, "b's new content");
    grows("a1.txt", 2, "a's previous version");
    assert_eq!(lines(&t, "a2.txt"), 0, "the refused version ran");
    let log = daemon.log();
    assert!(log.contains("chmod o-w"), "{log}");
    assert!(
        log.contains("a.yaml: not reloaded because it has errors; its previous version stays in force until it is fixed"),
        "{log}"
    );
    // The fix (a chmod, which the daemon's watch sees) applies the new version.
    chmod(&t.path("conf/a.yaml"), 0o644);
    grows("a2.txt", 1, "a's new version once it is safe");
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}

/// A `--config` directory that becomes world-writable is refused as a whole
/// on reload: its files keep their previous versions (a new version written
/// meanwhile is not applied), as when the directory cannot be read.
#[test]
fn a_config_directory_refused_on_reload_keeps_its_files_previous_versions() {
    let t = Test::new();
    t.write("conf/a.yaml", &writer_job("a", "a1.txt"));
    let daemon = t.spawn_daemon(["--config", "{root}/conf"]);
    let grows = |file: &str, more: usize, what: &str| {
        let from = lines(&t, file);
        wait_for(Duration::from_secs(20), what, || {
            (lines(&t, file) >= from + more).then_some(())
        });
    };
    grows("a1.txt", 1, "a at start");
    chmod(&t.path("conf"), 0o777);
    t.write("conf/a.yaml", &writer_job("a", "a2.txt"));
    daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(20), "the refusal", || {
        daemon
            .log()
            .contains("refused: the directory is world-writable")
            .then_some(())
    });
    grows("a1.txt", 2, "a's previous version");
    assert_eq!(
        lines(&t, "a2.txt"),
        0,
        "a file of the refused directory was applied"
    );
    let log = daemon.log();
    assert!(
        log.contains("a.yaml: not reloaded because its directory cannot be read"),
        "{log}"
    );
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
}
