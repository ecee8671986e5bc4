//! Starting the job's direct child, by one of two ways: `posix_spawn`
//! ([`super::spawn`]) whenever spawn attributes can do all the child needs,
//! else std's fork ([`super::fork`]): for another user, a descriptor limit
//! other than jobrun's, a kernel without pidfds, or a program left to
//! execvp's search. Either way gives the same [`StartedChild`].
//!
//! Must not know output, timeouts or runs.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitStatus;

use tokio::io::{AsyncRead, AsyncWrite};

use super::identity::Identity;
use super::{descriptors, fork, spawn};

/// Starts `argv` with exactly `env`, in `workdir` if given, as `identity`
/// if given; `program` is what to execute (`None`: argv[0], left to
/// execvp's search in a forked child).
pub(super) fn launch(
    program: Option<&OsString>,
    argv: &[OsString],
    env: &BTreeMap<String, String>,
    identity: Option<Identity>,
    workdir: Option<CString>,
    stdin: bool,
) -> io::Result<StartedChild> {
    match (program, &identity) {
        // The fast way, whenever nothing but what spawn attributes can do is
        // needed between fork and exec (see `spawn`).
        // A job whose descriptor limit must differ from jobrun's (raised)
        // forks: spawn attributes cannot set a limit (see `descriptors`).
        (Some(program), None)
            if spawn::available() && !fork_only() && descriptors::job_limit().is_none() =>
        {
            spawned(program, argv, env, workdir.as_deref(), stdin)
        }
        _ => fork::fork(
            program.unwrap_or(&argv[0]),
            argv,
            env,
            identity,
            workdir,
            stdin,
        ),
    }
}

/// The fast way: `posix_spawn`, every string made a C string first.
fn spawned(
    program: &OsString,
    argv: &[OsString],
    env: &BTreeMap<String, String>,
    workdir: Option<&std::ffi::CStr>,
    stdin: bool,
) -> io::Result<StartedChild> {
    let c = |s: &OsString| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument contains a NUL byte",
            )
        })
    };
    let program = c(program)?;
    let argv = argv.iter().map(c).collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| c(&OsString::from(format!("{k}={v}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let spawned = spawn::spawn(&spawn::Spec {
        program: &program,
        argv: &argv,
        envp: &envp,
        workdir,
        stdin,
    })?;
    Ok(StartedChild {
        pid: spawned.pid,
        stdin: spawned
            .stdin
            .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
        stdout: Box::new(spawned.stdout),
        stderr: Box::new(spawned.stderr),
        exit: Child::Spawned(spawned.exit),
    })
}

/// Whether this thread's jobs must take the fork path: only ever in tests
/// (`tests::forked`), which check the fork path on a machine with pidfds.
#[cfg(not(test))]
fn fork_only() -> bool {
    false
}

#[cfg(test)]
fn fork_only() -> bool {
    super::tests::fork_only()
}

/// A child just started, by either way: its pid, the parent's ends of its
/// pipes, and its exit to wait for.
pub(super) struct StartedChild {
    pub pid: u32,
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    pub exit: Child,
}

/// The job's direct child, started by [`spawn`](super::spawn) or by std's fork.
#[derive(Debug)]
pub(super) enum Child {
    Spawned(spawn::Exit),
    Forked(tokio::process::Child),
}

impl Child {
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Child::Spawned(exit) => exit.wait().await,
            Child::Forked(child) => child.wait().await,
        }
    }
}
