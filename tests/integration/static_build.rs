//! The README's production build (static glibc, non-PIE) on a host whose
//! `/etc/nsswitch.conf` names modules beyond `files` (issue 12, defect 1):
//! glibc loaded the `systemd` module into the static binary, which then
//! segfaulted on `check` of a crontab naming an unknown user and on the first
//! job run as another user. The static build must read `/etc/passwd` and
//! `/etc/group` itself and load no shared library at all.
//!
//! Each command runs in a mount namespace of its own (`unshare -m`) with
//! `tests/fixtures/nss/` bind-mounted over `/etc/nsswitch.conf`,
//! `/etc/passwd`, `/etc/group` and `/etc/resolv.conf`, so the host is never
//! changed and the user `jobrun-test` (with its supplementary groups) exists
//! only there. The
//! binary is the one `.ci/run` builds with the README's command, named by
//! `JOBRUN_STATIC_BIN` (building it here would take minutes per run).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{wait_for, Test};

/// The static binary under test.
fn static_binary() -> PathBuf {
    let path = std::env::var_os("JOBRUN_STATIC_BIN")
        .map(PathBuf::from)
        .expect(
            "JOBRUN_STATIC_BIN names the production build; .ci/run builds it and sets it \
         (under CI=true this test must not be skipped)",
        );
    assert!(
        path.is_file(),
        "JOBRUN_STATIC_BIN={} is not a file",
        path.display()
    );
    path
}

/// `unshare -m sh -c '<bind the fixtures> && exec "$@"' sh BINARY ARGS...`.
fn in_namespace(t: &Test, args: &[&str]) -> Command {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nss");
    let mut script = String::new();
    for file in ["nsswitch.conf", "passwd", "group", "resolv.conf"] {
        script += &format!(
            "mount --bind '{}' /etc/{file} && ",
            fixtures.join(file).display()
        );
    }
    script += "exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script, "sh"])
        .arg(static_binary())
        .args(args)
        .env_remove("JOBRUN_CONFIG")
        .env_remove("JOBRUN_SYSTEM_CRONTABS")
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .env("JOBRUN_STATE_DIR", t.path("state"))
        .current_dir(t.root())
        .stdin(Stdio::null());
    cmd
}

/// Runs a command in the namespace: exit code (128+N for signal N), stdout,
/// stderr.
fn run(t: &Test, args: &[&str]) -> (i32, String, String) {
    use std::os::unix::process::ExitStatusExt;
    let out = in_namespace(t, args).output().expect("running unshare");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shared libraries mapped into process `pid`: none for a static binary
/// that loaded no NSS module (a module brings `libc.so.6` with it).
fn shared_libraries(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("reading maps");
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.contains(".so"))
        .map(str::to_owned)
        .collect();
    libs.dedup();
    libs
}

/// A child killed when the test ends, also when it fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sources(t: &Test) {
    use std::os::unix::fs::PermissionsExt;
    // A spool crontab named after a user that does not exist, and a cron.d
    // line naming one: the look-ups that reached the systemd module.
    t.write(
        "root/var/spool/cron/crontabs/jobrun-ghost",
        "* * * * * true\n",
    );
    std::fs::set_permissions(
        t.path("root/var/spool/cron/crontabs/jobrun-ghost"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    t.write(
        "root/etc/cron.d/users",
        "* * * * * jobrun-ghost true\n* * * * * jobrun-test id -u\n",
    );
}

/// `check` and `list` on crontabs naming a user that does not exist report
/// it (they segfaulted: exit 139) and still read the rest.
#[test]
#[cfg_attr(
    not(all(jobrun_root, jobrun_static_bin)),
    ignore = "needs root (mount namespaces) and the production build in JOBRUN_STATIC_BIN (.ci/run builds it)"
)]
fn the_static_build_reports_an_unknown_user_instead_of_crashing() {
    let t = Test::new();
    sources(&t);
    let root = format!("--system-crontabs={}/root", t.root().display());
    let (code, stdout, stderr) = run(&t, &[&root, "check"]);
    let all = format!("{stdout}{stderr}");
    assert_eq!(code, 1, "check: an error for the cron.d line\n{all}");
    assert!(
        all.contains("users:1: error: there is no user `jobrun-ghost`"),
        "{all}"
    );
    assert!(
        all.contains("jobrun-ghost: warning: refused: there is no user `jobrun-ghost`"),
        "{all}"
    );
    // jobrun-test exists only in the fixture's /etc/passwd: its line is kept.
    assert!(all.contains("1 job(s)"), "{all}");

    let (code, stdout, stderr) = run(&t, &[&root, "list", "--json"]);
    assert_eq!(code, 0, "list\n{stdout}{stderr}");
    assert!(
        stdout.contains("\"id\""),
        "the jobrun-test job is listed\n{stdout}"
    );
}

/// A job run as another user, by `jobrun run` and by the daemon, gets the
/// uid, primary group and supplementary groups of the fixture's
/// `/etc/passwd` and `/etc/group`, and the daemon maps no shared library
/// (it segfaulted at the first such run: exit 139), also after a `requires:
/// tcp:` check looked a host name up (glibc's `getaddrinfo` follows the
/// `hosts:` line, which names the systemd module).
#[test]
#[cfg_attr(
    not(all(jobrun_root, jobrun_static_bin)),
    ignore = "needs root (mount namespaces) and the production build in JOBRUN_STATIC_BIN (.ci/run builds it)"
)]
fn the_static_build_runs_a_job_as_another_user_from_the_files() {
    let t = Test::new().file(
        "jobs.yaml",
        "jobs:\n  - name: as-test-user\n    schedule: \"* * * * * *\"\n    user: jobrun-test\n    \
         workdir: /\n    command: echo \"uid=$(id -u) gid=$(id -g) groups=$(id -G)\"\n  \
         - name: needs-host\n    schedule: \"* * * * * *\"\n    requires:\n      \
         - tcp: jobrun-no-such-host.invalid:9\n    requires_timeout: 1s\n    command: \"true\"\n",
    );
    let config = t.path("jobs.yaml").display().to_string();
    // 4242 primary (listed in its own group too: once), 4243 and 4244 list
    // it; 4245 lists `jobrun-tester`, another name.
    let expected = "uid=4242 gid=4242 groups=4242 4243 4244";

    let (code, stdout, stderr) = run(&t, &["--config", &config, "run", "as-test-user"]);
    assert_eq!(code, 0, "run\n{stdout}{stderr}");
    assert!(stdout.contains(expected), "{stdout}{stderr}");

    let out = std::fs::File::create(t.path("daemon.out")).expect("creating daemon.out");
    let err = std::fs::File::create(t.path("daemon.err")).expect("creating daemon.err");
    let mut daemon = Running(
        in_namespace(&t, &["--config", &config, "daemon"])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting the daemon"),
    );
    // unshare and sh exec, so the child is the daemon itself.
    let pid = daemon.0.id();
    let read = |name: &str| std::fs::read_to_string(t.path(name)).unwrap_or_default();
    wait_for(Duration::from_secs(30), "two runs as jobrun-test", || {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!(
                "the daemon ended ({status}) before running the job twice\n{}{}",
                read("daemon.out"),
                read("daemon.err")
            );
        }
        let host_looked_up = read("daemon.err").contains("jobrun-no-such-host.invalid");
        (read("daemon.out").matches(expected).count() >= 2 && host_looked_up).then_some(())
    });
    let libraries = shared_libraries(pid);
    assert!(
        libraries.is_empty(),
        "the static daemon loaded shared libraries (NSS modules): {libraries:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signalling the daemon");
    let status = daemon.0.wait().expect("waiting for the daemon");
    assert_eq!(status.code(), Some(0), "{status}\n{}", read("daemon.err"));
}
