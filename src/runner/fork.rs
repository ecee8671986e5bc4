//! The fork path: std forks, and the child resets its signals, takes the
//! descriptor limit jobrun was started with, becomes another user if asked,
//! and changes directory before it executes. Slower than [`super::spawn`]
//! (a fork copies the daemon's page tables), so taken only when spawn
//! attributes cannot do what the child needs (see [`super::launch`]).
//!
//! Everything the child needs is prepared before the fork: between fork and
//! exec only async-signal-safe system calls are made.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::io;
use std::process::Stdio;

use nix::libc::{self, c_int};
use nix::sys::signal::{self, SigSet, SigmaskHow};
use tokio::io::AsyncWrite;
use tokio::process::Command;

use super::descriptors;
use super::identity::Identity;
use super::launch::{Child, StartedChild};

/// The careful way: std forks, and the child resets its signals, becomes
/// another user if asked, and changes directory before it executes. For a
/// job run as another user, on kernels without pidfds (before Linux 5.3),
/// and for a program left to execvp's search.
pub(super) fn fork(
    program: &OsString,
    argv: &[OsString],
    env: &BTreeMap<String, String>,
    identity: Option<Identity>,
    workdir: Option<CString>,
    stdin: bool,
) -> io::Result<StartedChild> {
    let mut cmd = Command::new(program);
    cmd.arg0(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .process_group(0)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let last_signal = libc::SIGRTMAX();
    let nofile = descriptors::job_limit();
    let switch = identity.map(|identity| (identity.groups, identity.gid, identity.uid));
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It allocates nothing: every value
    // it needs (group list, ids, the directory as a C string) was prepared
    // above, and each call below is a thin wrapper over one system call.
    unsafe {
        cmd.pre_exec(move || {
            reset_signals(last_signal);
            if let Some(limit) = &nofile {
                descriptors::set_in_child(limit)?;
            }
            if let Some((groups, gid, uid)) = &switch {
                // The order matters: groups and gid need the privileges
                // that setuid gives up.
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            // After the identity switch, so the user's own rights decide
            // whether the job may enter its directory (as cron enters HOME).
            if let Some(dir) = &workdir {
                nix::unistd::chdir(dir.as_c_str())?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .expect("a child that was just spawned has not been waited for");
    Ok(StartedChild {
        pid,
        stdin: child
            .stdin
            .take()
            .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
        stdout: Box::new(child.stdout.take().expect("configured as a pipe")),
        stderr: Box::new(child.stderr.take().expect("configured as a pipe")),
        exit: Child::Forked(child),
    })
}

/// Runs in the forked child: an empty signal mask and every signal's default
/// disposition, real-time signals included (`last_signal` is `SIGRTMAX`, read
/// before the fork). Children inherit both the mask and ignored signals, and
/// the parent ignores SIGPIPE (the Rust runtime does) and may block or ignore
/// others, which would leave e.g. `yes | head -1` running forever.
///
/// glibc refuses to change its two reserved signals (32 and 33); they stay as
/// inherited, as they do under systemd, which resets signals the same way.
fn reset_signals(last_signal: c_int) {
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in 1..=last_signal {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL registers no handler; a failure (a
        // signal that cannot be changed) leaves that signal as it was.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
