//! Supervising a started job to its end: waiting for its exit, the timeout
//! and stop requests, terminating its process group (SIGTERM, then SIGKILL
//! once the kill grace has passed and anything in the group still lives),
//! the guard that kills an abandoned job's group, collecting the rest of its
//! output, and stopping a group that another jobrun started.
//!
//! Must not know how the child was started or what its run records.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::children::own_children;
use super::launch::Child;
use super::output::lock;
use super::{Exit, Report, RunEnd, RunError, Running, StopLevel, Stopper, DRAIN_GRACE};

/// How often the group is probed while waiting for it to die after SIGTERM.
const GROUP_POLL: Duration = Duration::from_millis(50);

impl Running {
    /// The job's process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A handle to request a stop from elsewhere (shutdown, `replace`).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            requested: self.stop.clone(),
        }
    }

    /// Supervises the job to its end: waits for it to exit, or terminates its
    /// group on timeout or stop, then collects the rest of its output.
    ///
    /// An error means the exit could not be observed (someone else reaped the
    /// child); the job's group has then been killed.
    pub async fn wait(self) -> Result<Report, RunError> {
        let Running {
            job,
            pid,
            mut child,
            started,
            timeout,
            kill_grace,
            stop,
            stdin_task,
            mut stdout_task,
            mut stderr_task,
            capture,
            mut guard,
        } = self;
        let mut stop_requested = stop.subscribe();
        let deadline =
            timeout.map(|t| tokio::time::Instant::from_std(crate::clock::deadline(started, t)));

        enum Trigger {
            Exited(io::Result<ExitStatus>),
            TimedOut,
            Stopped,
        }
        let trigger = tokio::select! {
            // An exit that races a timeout or stop still counts as an exit.
            biased;
            status = child.wait() => Trigger::Exited(status),
            () = sleep_until(deadline) => Trigger::TimedOut,
            // `stop` lives in this frame, so the channel cannot close.
            _ = stop_requested.wait_for(|level| *level >= StopLevel::Terminate) => Trigger::Stopped,
        };
        let (status, end) = match trigger {
            Trigger::Exited(status) => (status, None),
            Trigger::TimedOut => {
                info!(job = %job, pid, "timed out; terminating its process group");
                let status = terminate(&mut child, guard.pgid, kill_grace, &stop).await;
                (status, Some(Ending::TimedOut))
            }
            Trigger::Stopped => {
                info!(job = %job, pid, "stop requested; terminating its process group");
                let status = terminate(&mut child, guard.pgid, kill_grace, &stop).await;
                (status, Some(Ending::Stopped))
            }
        };
        let duration = started.elapsed();
        // Waited for (or lost): no status of it is left to protect.
        own_children().remove(&pid);
        // On error the guard stays armed and kills the group when dropped.
        let status = status.map_err(|source| RunError::Wait {
            job: job.to_string(),
            source,
        })?;
        // Background processes left by a job that exited on its own are the
        // job's business (see the module docs); the run itself is over.
        guard.armed = false;
        if let Some(task) = stdin_task {
            task.abort();
        }

        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            // A reader that panicked (in the sink) has stopped reading: there
            // is nothing more to wait for from it.
            let _ = (&mut stdout_task).await;
            let _ = (&mut stderr_task).await;
        })
        .await;
        if drained.is_err() {
            info!(
                job = %job,
                pid,
                "output still open after the job ended (a background process holds it); \
                 streaming it without counting it toward the run"
            );
        }

        let (output_bytes, tail) = lock(&capture).snapshot();
        let exit = Exit::from_status(status);
        let end = match (end, exit) {
            (None, Exit::Code(code)) => RunEnd::Exited(code),
            (None, Exit::Signal(signal)) => RunEnd::Signaled(signal),
            (Some(Ending::TimedOut), exit) => RunEnd::TimedOut { exit },
            (Some(Ending::Stopped), exit) => RunEnd::Stopped { exit },
        };
        debug!(job = %job, pid, %end, output_bytes, "finished");
        Ok(Report {
            end,
            output_bytes,
            tail,
            duration,
        })
    }
}

/// Why the runner ended a job itself.
enum Ending {
    TimedOut,
    Stopped,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// SIGTERM to the group; SIGKILL to the group once `grace` has passed and
/// anything in it is still alive. Returns the direct child's status.
async fn terminate(
    child: &mut Child,
    pgid: Pid,
    grace: Duration,
    stop: &watch::Sender<StopLevel>,
) -> io::Result<ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::from_std(crate::clock::deadline(Instant::now(), grace));
    let mut level = stop.subscribe();
    // The grace ends early when a kill is requested (the daemon's shutdown
    // grace ran out before this job's kill grace).
    let grace_over = async {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            _ = level.wait_for(|l| *l == StopLevel::Kill) => {}
        }
    };
    tokio::pin!(grace_over);
    let status = tokio::select! {
        status = child.wait() => status?,
        () = &mut grace_over => {
            signal_group(pgid, Signal::SIGKILL);
            return child.wait().await;
        }
    };
    // The leader is gone but other members (a subshell trapping TERM, a
    // background process) may not be: they get the rest of the grace.
    // Polling stops at the first "no such group", so the id is not probed
    // after it could have been reused.
    while group_alive(pgid) {
        if tokio::time::Instant::now() >= deadline || *stop.borrow() == StopLevel::Kill {
            signal_group(pgid, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
    Ok(status)
}

/// Stops a job process group that this process does not supervise (a run of
/// another jobrun on this host, for `concurrency: replace`): SIGTERM now,
/// SIGKILL after `grace` if the group still exists. Needs a tokio runtime.
pub fn stop_foreign_group(pgid: u32, grace: Duration) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    let pgid = Pid::from_raw(raw);
    signal_group(pgid, Signal::SIGTERM);
    tokio::spawn(async move {
        let deadline =
            tokio::time::Instant::from_std(crate::clock::deadline(Instant::now(), grace));
        while group_alive(pgid) {
            if tokio::time::Instant::now() >= deadline {
                signal_group(pgid, Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    });
}

fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            warn!(pgid = pgid.as_raw(), %signal, error = %e, "signalling a job's process group")
        }
    }
}

fn group_alive(pgid: Pid) -> bool {
    // EPERM still means a member exists (one that changed its own user).
    killpg(pgid, None) != Err(Errno::ESRCH)
}

/// Kills the job's process group with SIGKILL when dropped while armed, so an
/// abandoned [`Running`] or `wait` future does not leave the job unsupervised.
#[derive(Debug)]
pub(super) struct GroupGuard {
    pub pgid: Pid,
    pub armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}
