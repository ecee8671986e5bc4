//! Tests of the runner: pure pieces (line splitting, the tail) and real
//! `sh -c` jobs run through [`super::start`] by both ways of starting them.

use nix::libc;
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::unistd::Uid;

use super::identity::resolve_user;
use super::output::LineSplitter;
use super::*;

thread_local! {
    static FORK_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread's jobs take the fork path (see `forked`).
pub fn fork_only() -> bool {
    FORK_ONLY.with(|f| f.get())
}

/// Runs `f` with this thread's jobs started by std's fork, the way taken
/// for another user and on kernels without pidfds. For current-thread
/// tests: `start` runs on the test's own thread.
async fn forked<F: std::future::Future>(f: F) -> F::Output {
    FORK_ONLY.with(|flag| flag.set(true));
    let out = f.await;
    FORK_ONLY.with(|flag| flag.set(false));
    out
}

/// Collects every line with its stream.
#[derive(Default)]
struct Collect {
    lines: Mutex<Vec<(Stream, Vec<u8>)>>,
}

impl OutputSink for Collect {
    fn line(&self, job: &str, stream: Stream, line: &[u8]) {
        assert_eq!(job, "testjob");
        self.lines.lock().unwrap().push((stream, line.to_vec()));
    }
}

impl Collect {
    fn stream(&self, stream: Stream) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn stdout(&self) -> Vec<String> {
        self.stream(Stream::Stdout)
    }
}

fn request(command: &str) -> RunRequest {
    let mut req = RunRequest::new("testjob", Program::shell(command));
    req.env.insert("PATH".into(), "/usr/bin:/bin".into());
    req
}

/// Generous upper bound so a broken runner fails instead of hanging.
const HANG: Duration = Duration::from_secs(120);

async fn run(req: RunRequest) -> (Report, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let running = start(req, sink.clone()).expect("start");
    let outcome = tokio::time::timeout(HANG, running.wait())
        .await
        .expect("the run ended")
        .expect("wait");
    (outcome, sink)
}

/// Gone, or a zombie nobody reaped yet (the test's PID 1 may not reap).
fn process_gone(pid: i32) -> bool {
    !u32::try_from(pid).is_ok_and(crate::procfs::is_running)
}

async fn wait_until_gone(pid: i32) -> bool {
    for _ in 0..100 {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[test]
fn splitter_delivers_lines_and_caps_long_ones() {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut split = LineSplitter::new(4);
    let mut emit = |l: &[u8]| out.push(l.to_vec());
    split.push(b"ab\ncd", &mut emit);
    split.push(b"ef\n\nabcd\nabcdefghij", &mut emit);
    split.push(b"k\nxy", &mut emit);
    split.finish(&mut emit);
    let expected: Vec<&[u8]> = vec![
        b"ab", b"cdef", b"", b"abcd", b"abcd", b"efgh", b"ijk", b"xy",
    ];
    assert_eq!(out, expected);
}

#[test]
fn capture_keeps_exactly_the_last_bytes() {
    let mut capture = Capture::new(5);
    capture.record(b"abc");
    assert_eq!(capture.snapshot(), (3, b"abc".to_vec()));
    capture.record(b"def");
    assert_eq!(capture.snapshot(), (6, b"bcdef".to_vec()));
    capture.record(b"0123456789");
    assert_eq!(capture.snapshot(), (16, b"56789".to_vec()));
    let mut none = Capture::new(0);
    none.record(b"abc");
    assert_eq!(none.snapshot(), (3, Vec::new()));
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_is_recorded() {
    let (outcome, _) = run(request("exit 3")).await;
    assert_eq!(outcome.end, RunEnd::Exited(3));
    assert!(!outcome.end.success());
    let (outcome, _) = run(request("true")).await;
    assert!(outcome.end.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_signal_is_recorded() {
    let (outcome, _) = run(request("kill -9 $$")).await;
    assert_eq!(outcome.end, RunEnd::Signaled(9));
    assert_eq!(outcome.end.exit().signal(), Some(9));
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_reach_the_sink_in_order_per_stream() {
    let (outcome, sink) = run(request(
        "echo one; echo err1 >&2; echo two; echo err2 >&2; echo; printf last",
    ))
    .await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), ["one", "two", "", "last"]);
    assert_eq!(sink.stream(Stream::Stderr), ["err1", "err2"]);
    assert_eq!(outcome.output_bytes, 4 + 5 + 4 + 5 + 1 + 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_is_exactly_what_was_passed() {
    // Some variable of the test process that must not leak.
    let (parent_var, _) = std::env::vars()
        .find(|(k, _)| k != "PATH")
        .expect("the test process has some environment");
    let mut req = RunRequest::new("testjob", Program::Argv(vec!["env".into()]));
    req.env.insert("PATH".into(), "/usr/bin:/bin".into());
    req.env.insert("JOBRUN_TEST_VAR".into(), "a b=c".into());
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let mut lines = sink.stdout();
    lines.sort();
    assert_eq!(lines, ["JOBRUN_TEST_VAR=a b=c", "PATH=/usr/bin:/bin"]);
    assert!(!lines
        .iter()
        .any(|l| l.starts_with(&format!("{parent_var}="))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crontab_job_whose_home_cannot_be_entered_runs_in_the_root_directory() {
    let mut req = request("pwd -P");
    req.home_workdir = true;
    req.env.insert("HOME".into(), "/nonexistent/home".into());
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), ["/"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn workdir_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request("pwd -P");
    req.workdir = Some(dir.path().to_path_buf());
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let expected = dir.path().canonicalize().unwrap();
    assert_eq!(sink.stdout(), [expected.to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_bytes_are_delivered() {
    let mut req = request("cat");
    req.stdin = Some(b"hello\nworld\n".to_vec());
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), ["hello", "world"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_stdin_is_not_an_error() {
    let mut req = request("exit 0");
    req.stdin = Some(vec![b'x'; 1024 * 1024]);
    let (outcome, _) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_dev_null_by_default() {
    let (outcome, sink) = run(request("cat; readlink /proc/self/fd/0")).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), ["/dev/null"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut req = request(&format!(
        "sleep 300 & echo $! > {}; wait",
        pidfile.display()
    ));
    req.timeout = Some(Duration::from_secs(3));
    req.kill_grace = Duration::from_secs(5);
    let begun = Instant::now();
    let (outcome, _) = run(req).await;
    assert_eq!(
        outcome.end,
        RunEnd::TimedOut {
            exit: Exit::Signal(15)
        }
    );
    assert!(begun.elapsed() < Duration::from_secs(60));
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_gone(grandchild).await,
        "sleep {grandchild} survived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
    // The timeout leaves the shell seconds to install its trap first.
    let mut req = request("trap '' TERM; sleep 300; echo survived");
    req.timeout = Some(Duration::from_secs(3));
    req.kill_grace = Duration::from_secs(1);
    let begun = Instant::now();
    let (outcome, sink) = run(req).await;
    assert_eq!(
        outcome.end,
        RunEnd::TimedOut {
            exit: Exit::Signal(9)
        }
    );
    assert!(begun.elapsed() >= Duration::from_secs(4));
    assert!(begun.elapsed() < Duration::from_secs(60));
    assert!(sink.stdout().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn group_members_outliving_the_leader_are_killed_after_the_grace() {
    // The shell dies of SIGTERM; its background subshell ignores it.
    let mut req = request("(trap '' TERM; sleep 300) & echo $!; wait");
    req.timeout = Some(Duration::from_secs(3));
    req.kill_grace = Duration::from_secs(1);
    let begun = Instant::now();
    let (outcome, sink) = run(req).await;
    assert_eq!(
        outcome.end,
        RunEnd::TimedOut {
            exit: Exit::Signal(15)
        }
    );
    assert!(begun.elapsed() >= Duration::from_secs(4));
    let subshell: i32 = sink.stdout()[0].parse().unwrap();
    assert!(wait_until_gone(subshell).await, "{subshell} survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_yields_stopped() {
    let sink = Arc::new(Collect::default());
    let running = start(request("echo ready; sleep 300"), sink.clone()).unwrap();
    let stopper = running.stopper();
    let waiting = tokio::spawn(running.wait());
    // Stop once the shell is surely running its command.
    for _ in 0..100 {
        if !sink.stdout().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stopper.stop();
    let outcome = tokio::time::timeout(HANG, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome.end,
        RunEnd::Stopped {
            exit: Exit::Signal(15)
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_running_job_kills_its_group() {
    let sink = Arc::new(Collect::default());
    let running = start(request("sleep 300 & echo $!; wait"), sink.clone()).unwrap();
    let mut grandchild = None;
    for _ in 0..200 {
        if let Some(line) = sink.stdout().first() {
            grandchild = Some(line.parse::<i32>().unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grandchild = grandchild.expect("the job printed its background pid");
    let leader = running.pid() as i32;
    drop(running);
    assert!(wait_until_gone(grandchild).await);
    assert!(wait_until_gone(leader).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_process_holding_the_output_does_not_hold_the_run() {
    let begun = Instant::now();
    let (outcome, sink) = run(request("sleep 300 & echo $!")).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert!(begun.elapsed() < Duration::from_secs(60));
    let background: i32 = sink.stdout()[0].parse().unwrap();
    // The run is over but the background process was left alone.
    assert!(!process_gone(background));
    nix::sys::signal::kill(Pid::from_raw(background), Signal::SIGKILL).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn output_bytes_are_exact_and_the_tail_is_the_end() {
    let mut req = request("head -c 10000000 /dev/zero; printf 'the end'");
    req.tail_bytes = 1000;
    let (outcome, _) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(outcome.output_bytes, 10_000_007);
    let mut expected = vec![0u8; 993];
    expected.extend_from_slice(b"the end");
    assert_eq!(outcome.tail, expected);

    // Text that shows where the tail starts.
    let mut req = request("seq 1 100000");
    req.tail_bytes = 100;
    let (outcome, _) = run(req).await;
    let all: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(outcome.output_bytes, all.len() as u64);
    assert_eq!(outcome.tail, all.as_bytes()[all.len() - 100..]);

    // Both streams are counted and both reach the tail, each in order.
    // Which of two pipes is read first is up to the scheduler, so the
    // streams use disjoint bytes (stderr: letters and `;`) and are
    // separated again to be compared.
    let mut req = request("seq 1 50000 | tr '0-9\\n' 'a-j;' >&2; seq 50001 100000");
    req.tail_bytes = all.len();
    let (outcome, _) = run(req).await;
    assert_eq!(outcome.output_bytes, all.len() as u64);
    let (stdout, stderr): (Vec<u8>, Vec<u8>) = outcome
        .tail
        .iter()
        .partition(|b| b.is_ascii_digit() || **b == b'\n');
    let expected_stdout: String = (50_001..=100_000).map(|n| format!("{n}\n")).collect();
    let expected_stderr: String = (1..=50_000)
        .map(|n| format!("{n};"))
        .collect::<String>()
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from(b'a' + d as u8),
            None => c,
        })
        .collect();
    assert_eq!(stdout, expected_stdout.as_bytes());
    assert_eq!(stderr, expected_stderr.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_line_arrives_in_bounded_pieces() {
    let size: usize = 5 * 1024 * 1024;
    let (outcome, sink) = run(request(&format!(
        "head -c {size} /dev/zero | tr '\\0' a; echo; echo after"
    )))
    .await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(outcome.output_bytes, size as u64 + 7);
    let lines = sink.lines.lock().unwrap();
    let (last, pieces) = lines.split_last().unwrap();
    assert_eq!(last.1, b"after");
    assert_eq!(pieces.len(), size.div_ceil(LINE_CAP));
    assert!(pieces.iter().all(|(_, p)| p.len() <= LINE_CAP));
    assert!(pieces.iter().all(|(_, p)| p.iter().all(|&b| b == b'a')));
    assert_eq!(pieces.iter().map(|(_, p)| p.len()).sum::<usize>(), size);
}

#[tokio::test(flavor = "current_thread")]
async fn the_job_gets_a_clean_signal_state() {
    the_job_gets_a_clean_signal_state_here().await;
}

async fn the_job_gets_a_clean_signal_state_here() {
    // Ignore and block signals here (this thread spawns the child), which
    // the child must not inherit.
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    let mut old = SigSet::empty();
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), Some(&mut old)).unwrap();
    // SAFETY: ignoring installs no handler; nothing in this test binary
    // uses SIGUSR2 or real-time signals. std resets only SIGPIPE: the
    // real-time one shows that the runner resets them all.
    unsafe {
        signal::signal(Signal::SIGUSR2, signal::SigHandler::SigIgn).unwrap();
        libc::signal(libc::SIGRTMIN() + 1, libc::SIG_IGN);
    }

    let (outcome, sink) = run(request("grep -E '^Sig(Blk|Ign):' /proc/self/status")).await;
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let masks: Vec<u64> = sink
        .stdout()
        .iter()
        .map(|l| u64::from_str_radix(l.split_once('\t').unwrap().1, 16).unwrap())
        .collect();
    // Bit n-1 is signal n; glibc's reserved 32 and 33 cannot be reset
    // (and `cargo test` runs with 32 ignored).
    let reserved = (1u64 << 31) | (1u64 << 32);
    assert_eq!(masks.len(), 2);
    assert_eq!(masks[0], 0, "blocked: {:x}", masks[0]);
    assert_eq!(masks[1] & !reserved, 0, "ignored: {:x}", masks[1]);

    let (outcome, sink) = run(request("yes | head -1")).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), ["y"]);
}

#[tokio::test(flavor = "current_thread")]
async fn jobs_start_by_posix_spawn_where_the_kernel_has_pidfds() {
    // Linux 5.3 and later; an older kernel takes the fork path by design.
    let running = start(request("exit 7"), Arc::new(Collect::default())).unwrap();
    if spawn::available() {
        assert!(
            matches!(running.child, Child::Spawned(_)),
            "{:?}",
            running.child
        );
    } else {
        eprintln!("no pidfd_open on this kernel: jobs start by fork");
        assert!(
            matches!(running.child, Child::Forked(_)),
            "{:?}",
            running.child
        );
    }
    let outcome = running.wait().await.unwrap();
    assert_eq!(outcome.end, RunEnd::Exited(7));

    let running =
        forked(async { start(request("exit 7"), Arc::new(Collect::default())).unwrap() }).await;
    assert!(
        matches!(running.child, Child::Forked(_)),
        "{:?}",
        running.child
    );
    assert_eq!(running.wait().await.unwrap().end, RunEnd::Exited(7));
}

#[tokio::test(flavor = "current_thread")]
async fn the_fork_path_gives_the_same_process_state() {
    forked(async {
        the_job_gets_a_clean_signal_state_here().await;
        let dir = tempfile::tempdir().unwrap();
        let mut req = request("pwd; cat; env | sort");
        req.workdir = Some(dir.path().to_path_buf());
        req.stdin = Some(b"from stdin\n".to_vec());
        req.env.insert("ONLY".into(), "this".into());
        let (outcome, sink) = run(req).await;
        assert_eq!(outcome.end, RunEnd::Exited(0));
        let out = sink.stdout();
        assert_eq!(out[0], dir.path().display().to_string());
        assert_eq!(out[1], "from stdin");
        assert!(out.contains(&"ONLY=this".to_string()), "{out:?}");
        assert!(!out.iter().any(|l| l.starts_with("HOME=")), "{out:?}");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_bare_name_is_found_in_the_jobs_path_or_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("jobrun-test-tool");
    std::fs::write(&tool, "#!/bin/sh\necho found \"$0\"\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut req = RunRequest::new("testjob", Program::Argv(vec!["jobrun-test-tool".into()]));
    req.env.insert(
        "PATH".into(),
        format!("/nonexistent:{}:/usr/bin:/bin", dir.path().display()),
    );
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    assert_eq!(sink.stdout(), [format!("found {}", tool.display())]);

    let mut req = RunRequest::new("testjob", Program::Argv(vec!["jobrun-test-tool".into()]));
    req.env.insert("PATH".into(), "/usr/bin:/bin".into());
    let err = start(req, Arc::new(Collect::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starting job testjob: jobrun-test-tool: command not found"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_failures_say_what_is_wrong() {
    let sink: Arc<dyn OutputSink> = Arc::new(Collect::default());
    let err = start(
        RunRequest::new(
            "testjob",
            Program::Argv(vec!["/nonexistent/jobrun-test".into()]),
        ),
        sink.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "starting job testjob: /nonexistent/jobrun-test: command not found"
    );

    let mut req = request("true");
    req.workdir = Some("/nonexistent/dir".into());
    let err = start(req, sink.clone()).unwrap_err();
    assert!(matches!(err, RunError::Workdir { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("starting job testjob: working directory /nonexistent/dir: "));

    let err = start(
        RunRequest::new("testjob", Program::Argv(vec![])),
        sink.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::EmptyCommand { .. }), "{err:?}");

    let mut req = request("true");
    req.user = Some("jobrun-no-such-user".into());
    let err = start(req, sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starting job testjob: unknown user jobrun-no-such-user"
    );
}

#[test]
fn another_user_needs_root() {
    // Every Linux system has `nobody`; a machine without it cannot run this
    // test, and says so by failing rather than by passing untested.
    let nobody = crate::users::user_by_name("nobody")
        .expect("reading the passwd database")
        .expect("a user `nobody` on the test machine");
    let other = Uid::from_raw(nobody.uid.wrapping_add(1).max(1));
    let err = resolve_user("testjob", "nobody", other).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starting job testjob: running as user nobody needs jobrun to run as root"
    );
    // The user jobrun already runs as needs no privilege and no change.
    assert!(resolve_user("testjob", "nobody", Uid::from_raw(nobody.uid))
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(jobrun_root),
    ignore = "running as another user needs the tests to run as root"
)]
async fn user_is_set_with_groups_and_identity_variables() {
    // Every Linux system has `nobody`; a machine without it cannot run this
    // test, and says so by failing rather than by passing untested.
    let nobody = crate::users::user_by_name("nobody")
        .expect("reading the passwd database")
        .expect("a user `nobody` on the test machine");
    let mut req = request("id -u; id -G; echo \"$HOME $USER $LOGNAME\"");
    req.user = Some("nobody".into());
    req.env.insert("HOME".into(), "/root".into());
    req.env.insert("USER".into(), "root".into());
    let (outcome, sink) = run(req).await;
    assert_eq!(outcome.end, RunEnd::Exited(0));
    let lines = sink.stdout();
    assert_eq!(lines[0], nobody.uid.to_string());
    assert!(!lines[1].split_whitespace().any(|g| g == "0"), "{lines:?}");
    let home = &nobody.home;
    assert_eq!(lines[2], format!("{home} nobody nobody"));

    // A directory the user may not enter is refused with the user's rights.
    let private = tempfile::tempdir().unwrap();
    let only_root = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(private.path(), only_root).unwrap();
    let mut req = request("true");
    req.user = Some("nobody".into());
    req.workdir = Some(private.path().to_path_buf());
    let err = start(req, Arc::new(Collect::default())).unwrap_err();
    assert!(matches!(err, RunError::Spawn { .. }), "{err:?}");
    let expected = format!(
        "starting job testjob: /bin/sh (as user nobody, in {}): ",
        private.path().display()
    );
    assert!(err.to_string().starts_with(&expected), "{err}");

    // A variable the job's definition set wins over the passwd entry.
    let mut req = request("echo \"$HOME\"");
    req.user = Some("nobody".into());
    req.env.insert("HOME".into(), "/srv/app".into());
    req.explicit_env.insert("HOME".into());
    let (_, sink) = run(req).await;
    assert_eq!(sink.stdout(), ["/srv/app"]);
}
