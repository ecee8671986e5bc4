//! Readiness checks (`requires:`): before a claimed run starts its command,
//! wait until every check passes (a TCP port accepts connections, a file exists
//! and is not empty, a command exits 0), or give up after `requires_timeout`
//! with the reason of the last failing check.
//!
//! This is the answer to a job that runs before the service it reads from is up:
//! it waits, and if the service never comes, the run is recorded as failed
//! "not ready" and the command never runs (no fallback to a wrong default).
//!
//! Knows the checks and the runner (a command check is a small run of its
//! own); must not know the store, locks or the daemon's loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::job::Requirement;
use crate::runner::{self, OutputSink, Program, RunEnd, RunRequest, Stream};

/// Time between two rounds of checks.
pub const POLL: Duration = Duration::from_secs(1);
/// The longest one TCP connect or one command check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait looks whether it should stop (daemon shutdown).
const STOP_POLL: Duration = Duration::from_millis(100);

/// How a wait for readiness ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// `requires_timeout` passed; the last failing check and why.
    NotReady(String),
    /// `stop` said to give up (the daemon is shutting down).
    Stopped,
}

/// Polls `checks` every [`POLL`] until all pass, `timeout` passes, or `stop`
/// returns true. `command_request` builds the run of a `command:` check (the
/// job's user, environment and working directory).
pub async fn wait_ready(
    checks: &[Requirement],
    timeout: Duration,
    command_request: &(dyn Fn(&str) -> RunRequest + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Readiness {
    let deadline = crate::clock::deadline(Instant::now(), timeout);
    loop {
        let reason = match first_failure(checks, deadline, command_request, stop).await {
            Round::Passed => return Readiness::Ready,
            Round::Stopped => return Readiness::Stopped,
            Round::Failed(reason) => reason,
        };
        if Instant::now() >= deadline {
            return Readiness::NotReady(format!(
                "{reason} (waited {})",
                humantime::format_duration(Duration::from_secs(timeout.as_secs().max(1)))
            ));
        }
        let resume = crate::clock::deadline(Instant::now(), POLL).min(deadline);
        while Instant::now() < resume {
            if stop() {
                return Readiness::Stopped;
            }
            tokio::time::sleep(STOP_POLL.min(resume - Instant::now())).await;
        }
        if stop() {
            return Readiness::Stopped;
        }
    }
}

/// How one round of checks ended.
enum Round {
    Passed,
    /// The first failing check, as "check: why".
    Failed(String),
    Stopped,
}

/// Runs the checks in order, each one cut short by `stop`.
async fn first_failure(
    checks: &[Requirement],
    deadline: Instant,
    command_request: &(dyn Fn(&str) -> RunRequest + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Round {
    for check in checks {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(200), CHECK_TIMEOUT);
        let result = match check {
            Requirement::Tcp(addr) => tokio::select! {
                r = tcp(addr, budget) => r,
                () = stopped(stop) => return Round::Stopped,
            },
            Requirement::File(path) => file(path),
            Requirement::Command(command) => {
                let mut request = command_request(command);
                request.timeout = Some(budget);
                match self::command(request, stop).await {
                    Some(r) => r,
                    None => return Round::Stopped,
                }
            }
        };
        if let Err(why) = result {
            return Round::Failed(format!("{check}: {why}"));
        }
    }
    Round::Passed
}

/// Resolves once `stop` says so.
async fn stopped(stop: &(dyn Fn() -> bool + Sync)) {
    while !stop() {
        tokio::time::sleep(STOP_POLL).await;
    }
}

async fn tcp(addr: &str, budget: Duration) -> Result<(), String> {
    match tokio::time::timeout(budget, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(budget)
        )),
    }
}

/// A file counts when it has content; a directory when it has an entry.
fn file(path: &std::path::Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
        Err(e) => Err(e.to_string()),
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(path).map(|mut d| d.next()) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("is an empty directory".into()),
            Err(e) => Err(e.to_string()),
        },
        Ok(meta) if meta.len() == 0 => Err("is empty".into()),
        Ok(_) => Ok(()),
    }
}

/// Discards a check command's output as it comes; its tail explains a failure.
struct Discard;

impl OutputSink for Discard {
    fn line(&self, _job: &str, _stream: Stream, _line: &[u8]) {}
}

/// `None` when stopped: the check's process group was killed and reaped.
async fn command(
    request: RunRequest,
    stop: &(dyn Fn() -> bool + Sync),
) -> Option<Result<(), String>> {
    let running = match runner::start(request, Arc::new(Discard)) {
        Ok(running) => running,
        Err(e) => return Some(Err(e.to_string())),
    };
    let stopper = running.stopper();
    let wait = running.wait();
    tokio::pin!(wait);
    let outcome = tokio::select! {
        outcome = &mut wait => outcome,
        () = stopped(stop) => {
            stopper.kill();
            let _ = wait.await;
            return None;
        }
    };
    Some(command_result(outcome.map_err(|e| e.to_string())))
}

fn command_result(outcome: Result<runner::Report, String>) -> Result<(), String> {
    let outcome = outcome?;
    let said = String::from_utf8_lossy(&outcome.tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim().chars().take(200).collect::<String>()))
        .unwrap_or_default();
    match outcome.end {
        RunEnd::Exited(0) => Ok(()),
        RunEnd::Exited(code) => Err(format!("exited {code}{said}")),
        RunEnd::Signaled(sig) => Err(format!("killed by signal {sig}{said}")),
        RunEnd::TimedOut { .. } => Err("did not finish in time".into()),
        RunEnd::Stopped { .. } => Err("stopped".into()),
    }
}

/// A check command's run: `/bin/sh -c COMMAND`, otherwise as `job` would run.
pub fn command_request(base: &RunRequest, command: &str) -> RunRequest {
    RunRequest {
        program: Program::Shell {
            shell: runner::DEFAULT_SHELL.into(),
            command: command.into(),
        },
        stdin: None,
        tail_bytes: 1024,
        kill_grace: Duration::from_secs(1),
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn base() -> RunRequest {
        RunRequest {
            job: "check".into(),
            program: Program::Argv(vec!["true".into()]),
            env: [("PATH".to_string(), "/usr/bin:/bin".to_string())]
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            explicit_env: Default::default(),
            workdir: None,
            home_workdir: false,
            user: None,
            stdin: None,
            timeout: None,
            kill_grace: Duration::from_secs(1),
            tail_bytes: 1024,
        }
    }

    async fn wait(checks: &[Requirement], timeout: Duration) -> Readiness {
        let base = base();
        wait_ready(checks, timeout, &|c| command_request(&base, c), &|| false).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passing_checks_are_ready_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("config.json");
        std::fs::write(&file_path, "{}").unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let checks = [
            Requirement::Tcp(addr),
            Requirement::File(file_path),
            Requirement::Command("test 1 = 1".into()),
        ];
        let started = Instant::now();
        assert_eq!(
            wait(&checks, Duration::from_secs(5)).await,
            Readiness::Ready
        );
        assert!(started.elapsed() < POLL, "no poll round was needed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_check_names_itself_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("port");
        std::fs::write(&empty, "").unwrap();
        let cases = [
            (
                Requirement::File(dir.path().join("missing")),
                "does not exist",
            ),
            (Requirement::File(empty), "is empty"),
            (
                Requirement::Command("echo database is down; exit 3".into()),
                "exited 3: database is down",
            ),
        ];
        for (check, why) in cases {
            match wait(std::slice::from_ref(&check), Duration::from_millis(300)).await {
                Readiness::NotReady(reason) => {
                    assert!(reason.starts_with(&check.to_string()), "{reason}");
                    assert!(reason.contains(why), "{reason} should say {why}");
                }
                other => panic!("{check}: {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_port_is_not_ready() {
        // Port 1 (tcpmux) is closed on any machine that runs tests.
        let addr = "127.0.0.1:1".to_string();
        match wait(
            &[Requirement::Tcp(addr.clone())],
            Duration::from_millis(300),
        )
        .await
        {
            Readiness::NotReady(reason) => {
                assert!(reason.starts_with(&format!("tcp {addr}: ")), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_that_comes_true_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        let later = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::write(later, "yes").unwrap();
        });
        let started = Instant::now();
        assert_eq!(
            wait(&[Requirement::File(path)], Duration::from_secs(10)).await,
            Readiness::Ready
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1500), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_cuts_a_long_command_check_short() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc as StdArc;
        let stop = StdArc::new(AtomicBool::new(false));
        let flag = StdArc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        });
        let base = base();
        let started = Instant::now();
        let result = wait_ready(
            &[Requirement::Command("sleep 30".into())],
            Duration::from_secs(60),
            &|c| command_request(&base, c),
            &|| stop.load(Ordering::SeqCst),
        )
        .await;
        assert_eq!(result, Readiness::Stopped);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_ends_the_wait() {
        let base = base();
        let result = wait_ready(
            &[Requirement::File("/nonexistent/jobrun".into())],
            Duration::from_secs(60),
            &|c| command_request(&base, c),
            &|| true,
        )
        .await;
        assert_eq!(result, Readiness::Stopped);
    }
}
