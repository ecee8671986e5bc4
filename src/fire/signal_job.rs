//! `signal:` jobs: tell a running daemon to reload by signalling the process
//! its pidfile names (the Mailu incident: a watcher that should HUP dovecot
//! through `/run/dovecot/master.pid` crashed on that path, and dovecot kept
//! the old certificate).
//!
//! Every way this can go wrong is a value, never a panic: a missing or empty
//! pidfile and a dead process are "not running" (recorded `skipped` or
//! `failed` as the job says); a pid whose process has another name is a stale
//! pidfile, also "not running"; garbage in the pidfile or a refused signal is
//! a failure with the reason.
//!
//! Knows pidfiles, `/proc` and `kill(2)`; must not know the store or locks.

use std::path::Path;
use std::str::FromStr;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::job::SignalSpec;
use crate::procfs;

/// What became of a `signal:` job's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The signal was delivered; what was done, for the record.
    Sent { pid: u32, detail: String },
    /// There is no such process to signal, and why.
    NotRunning(String),
    /// The pidfile cannot be trusted or the signal was refused.
    Failed(String),
}

/// Reads the pidfile, checks the process, sends the signal.
pub fn send(spec: &SignalSpec) -> SignalOutcome {
    let pidfile = spec.pidfile.display();
    let Ok(signal) = Signal::from_str(&format!("SIG{}", spec.signal)) else {
        return SignalOutcome::Failed(format!("unknown signal {}", spec.signal));
    };
    let text = match read_pidfile(&spec.pidfile) {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    let Some(first) = text.split_whitespace().next() else {
        return SignalOutcome::NotRunning(format!("pidfile {pidfile} is empty"));
    };
    let pid = match first.parse::<i32>() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            return SignalOutcome::Failed(format!(
                "pidfile {pidfile} does not hold a process id (it starts with {:?})",
                first.chars().take(40).collect::<String>()
            ))
        }
    };
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return SignalOutcome::Failed(format!(
            "pidfile {pidfile} names jobrun itself (pid {pid}); refusing to signal it"
        ));
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    if procfs::is_zombie(pid.unsigned_abs()) {
        return SignalOutcome::NotRunning(format!(
            "process {pid} from pidfile {pidfile} has exited (stale pidfile)"
        ));
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(Errno::ESRCH) => {
            return SignalOutcome::NotRunning(format!(
                "process {pid} from pidfile {pidfile} is not running (stale pidfile)"
            ))
        }
        Err(e) => return SignalOutcome::Failed(format!("checking process {pid}: {e}")),
    }
    let names = process_names(&proc_dir);
    if let Some(expected) = &spec.process {
        if !names.is_empty() && !names.iter().any(|n| name_matches(n, expected)) {
            return SignalOutcome::NotRunning(format!(
                "process {pid} from pidfile {pidfile} is {:?}, not {expected:?} (stale pidfile)",
                names[0]
            ));
        }
    }
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) => SignalOutcome::Sent {
            pid: pid.unsigned_abs(),
            detail: format!(
                "sent SIG{} to process {pid}{} from pidfile {pidfile}",
                spec.signal,
                names
                    .first()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        },
        Err(Errno::ESRCH) => SignalOutcome::NotRunning(format!(
            "process {pid} from pidfile {pidfile} ended before it could be signalled"
        )),
        Err(Errno::EPERM) => SignalOutcome::Failed(format!(
            "not permitted to signal process {pid} from pidfile {pidfile}: run jobrun as its user or as root"
        )),
        Err(e) => SignalOutcome::Failed(format!("signalling process {pid}: {e}")),
    }
}

/// The most of a pidfile that is read: a pid is a few bytes.
const PIDFILE_MAX_BYTES: u64 = 4096;

/// Reads a pidfile from one open file: never blocking on a FIFO or reading a
/// device without end, and refusing one that other users may write (anyone
/// could then make jobrun signal any process it may signal).
fn read_pidfile(path: &Path) -> Result<String, SignalOutcome> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let failed = |e: std::io::Error| SignalOutcome::Failed(format!("reading pidfile {shown}: {e}"));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignalOutcome::NotRunning(format!(
                "pidfile {shown} does not exist"
            )))
        }
        Err(e) => return Err(failed(e)),
    };
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(SignalOutcome::Failed(format!(
            "pidfile {shown} is not a regular file; point `pidfile:` at the file the service writes"
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SignalOutcome::Failed(format!(
            "pidfile {shown} is writable by other users (mode {mode:04o}), so anyone could choose \
             the process jobrun signals; refused; fix it with `chmod go-w {shown}`"
        )));
    }
    let mut bytes = Vec::new();
    file.take(PIDFILE_MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The process's short name (`comm`) and its program's base name (argv[0]).
fn process_names(proc_dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(comm) = std::fs::read_to_string(proc_dir.join("comm")) {
        names.push(comm.trim_end_matches('\n').to_string());
    }
    if let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) {
        if let Some(argv0) = cmdline.split(|&b| b == 0).next() {
            let argv0 = String::from_utf8_lossy(argv0);
            // Daemons may rewrite argv[0] ("dovecot: master"); keep the first word.
            let program = argv0.split([' ', ':']).next().unwrap_or_default();
            let base = program.rsplit('/').next().unwrap_or_default();
            if !base.is_empty() {
                names.push(base.to_string());
            }
        }
    }
    names
}

/// The kernel keeps only 15 bytes of `comm`.
fn name_matches(actual: &str, expected: &str) -> bool {
    actual == expected || (actual.len() == 15 && expected.starts_with(actual))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::IfNotRunning;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    fn spec(pidfile: &Path, process: Option<&str>) -> SignalSpec {
        SignalSpec {
            pidfile: pidfile.to_path_buf(),
            signal: "HUP".into(),
            process: process.map(Into::into),
            if_not_running: IfNotRunning::Skip,
        }
    }

    /// A process that counts the SIGHUPs it gets in `count`; returns once
    /// its trap is in place.
    fn hup_counter(dir: &Path) -> Child {
        let count = dir.join("count");
        let script = format!(
            "n=0; trap 'n=$((n+1)); echo $n > {0}' HUP; echo 0 > {0}; while :; do sleep 0.05; done",
            count.display()
        );
        let child = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
        wait_for_count(dir, "0");
        child
    }

    fn wait_for_count(dir: &Path, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = std::fs::read_to_string(dir.join("count")).unwrap_or_default();
            if got.trim() == want {
                return;
            }
            assert!(Instant::now() < deadline, "count is {got:?}, want {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn signals_the_process_the_pidfile_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = hup_counter(dir.path());
        let pidfile = dir.path().join("master.pid");
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        match send(&spec(&pidfile, Some("sh"))) {
            SignalOutcome::Sent { pid, detail } => {
                assert_eq!(pid, child.id());
                assert!(detail.contains("SIGHUP"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        wait_for_count(dir.path(), "1");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_missing_empty_or_stale_pidfile_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("master.pid");
        let reason = |outcome| match outcome {
            SignalOutcome::NotRunning(reason) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(send(&spec(&pidfile, None))).contains("does not exist"));
        std::fs::write(&pidfile, "\n").unwrap();
        assert!(reason(send(&spec(&pidfile, None))).contains("is empty"));

        let mut dead = Command::new("true").spawn().unwrap();
        let pid = dead.id();
        dead.wait().unwrap();
        std::fs::write(&pidfile, pid.to_string()).unwrap();
        assert!(reason(send(&spec(&pidfile, None))).contains("not running"));

        let mut other = Command::new("sleep").arg("5").spawn().unwrap();
        std::fs::write(&pidfile, other.id().to_string()).unwrap();
        let why = reason(send(&spec(&pidfile, Some("dovecot"))));
        assert!(why.contains("not \"dovecot\""), "{why}");
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn garbage_and_jobrun_itself_are_failures() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("master.pid");
        std::fs::write(&pidfile, "dovecot").unwrap();
        assert!(
            matches!(send(&spec(&pidfile, None)), SignalOutcome::Failed(m) if m.contains("does not hold a process id"))
        );
        std::fs::write(&pidfile, std::process::id().to_string()).unwrap();
        assert!(
            matches!(send(&spec(&pidfile, None)), SignalOutcome::Failed(m) if m.contains("jobrun itself"))
        );
    }

    #[test]
    fn comm_is_cut_at_fifteen_bytes() {
        assert!(name_matches("a-very-long-nam", "a-very-long-name-indeed"));
        assert!(!name_matches("short", "shorter"));
        assert!(name_matches("dovecot", "dovecot"));
    }

    #[test]
    fn a_fifo_or_a_world_writable_pidfile_is_refused_without_blocking() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.pid");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // On a thread: reading a FIFO nobody writes would block for ever.
        let (tx, rx) = std::sync::mpsc::channel();
        let spec_fifo = spec(&fifo, None);
        std::thread::spawn(move || tx.send(send(&spec_fifo)).unwrap());
        let outcome = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading the pidfile blocked");
        assert!(
            matches!(&outcome, SignalOutcome::Failed(m) if m.contains("not a regular file")),
            "{outcome:?}"
        );
        let open = dir.path().join("open.pid");
        std::fs::write(&open, std::process::id().to_string()).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let outcome = send(&spec(&open, None));
        assert!(
            matches!(&outcome, SignalOutcome::Failed(m) if m.contains("chmod go-w")),
            "{outcome:?}"
        );
    }
}
