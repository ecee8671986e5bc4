//! A small builder for end-to-end tests: a temporary tree of source files, the
//! arguments, and the finished process's output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[must_use = "a test tree does nothing until a command runs in it"]
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    expect: Expect,
}

/// What `run` must see, declared up front as `just`'s tests do: the exit
/// code, and text the output must contain.
#[derive(Default)]
struct Expect {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("creating a temporary directory"),
            args: Vec::new(),
            env: Vec::new(),
            expect: Expect::default(),
        }
    }

    /// `run` fails the test unless jobrun exits with `code`.
    pub fn code(mut self, code: i32) -> Self {
        self.expect.code = Some(code);
        self
    }

    /// `run` fails the test unless stdout contains `text` (`{root}` expanded).
    pub fn stdout_has(mut self, text: &str) -> Self {
        let text = self.expand(text);
        self.expect.stdout.push(text);
        self
    }

    /// `run` fails the test unless stderr contains `text` (`{root}` expanded).
    pub fn stderr_has(mut self, text: &str) -> Self {
        let text = self.expand(text);
        self.expect.stderr.push(text);
        self
    }

    /// Writes `content` to `rel` under the test directory (parents created, mode 0644).
    pub fn file(self, rel: &str, content: impl AsRef<[u8]>) -> Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("writing a test file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        self
    }

    /// Writes a file without consuming the builder (content may use `{root}`).
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, self.expand(content)).expect("writing a test file");
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(self.expand(arg.as_ref()));
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), self.expand(value)));
        self
    }

    /// A path inside the test directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an executable script (content may use `{root}`).
    pub fn script(&self, rel: &str, content: &str) -> PathBuf {
        self.write(rel, content);
        let path = self.path(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Copies `examples/NAME.yaml` to `NAME.yaml` in the test directory, with
    /// each `(from, to)` replaced (`to` may use `{root}`): the recipe as users
    /// read it, pointed at local stand-ins. Every `from` must occur, so the
    /// test and the recipe cannot drift apart.
    #[track_caller]
    pub fn example(&self, name: &str, replace: &[(&str, &str)]) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(format!("{name}.yaml"));
        let mut text = std::fs::read_to_string(&source).expect("reading the example");
        for (from, to) in replace {
            assert!(text.contains(from), "examples/{name}.yaml has no {from:?}");
            text = text.replace(from, &self.expand(to));
        }
        let rel = format!("{name}.yaml");
        self.write(&rel, &text);
        self.path(&rel)
    }

    /// `{root}` in arguments stands for the test directory.
    fn expand(&self, s: &str) -> String {
        s.replace("{root}", &self.dir.path().display().to_string())
    }

    /// Runs with these arguments instead of the builder's, so one tree serves
    /// several commands.
    #[must_use = "check the exit code or the output"]
    pub fn run_args<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, args: I) -> Output {
        let args: Vec<String> = args.into_iter().map(|a| self.expand(a.as_ref())).collect();
        self.execute(&args)
    }

    /// Runs the builder's arguments and checks what was declared with
    /// `code`, `stdout_has` and `stderr_has`.
    #[track_caller]
    pub fn run(&self) -> Output {
        let out = self.execute(&self.args);
        let show = || format!("--- stdout\n{}\n--- stderr\n{}", out.stdout, out.stderr);
        if let Some(code) = self.expect.code {
            assert_eq!(out.code, code, "exit code of {:?}\n{}", self.args, show());
        }
        for text in &self.expect.stdout {
            assert!(
                out.stdout.contains(text),
                "stdout lacks {text:?}\n{}",
                show()
            );
        }
        for text in &self.expect.stderr {
            assert!(
                out.stderr.contains(text),
                "stderr lacks {text:?}\n{}",
                show()
            );
        }
        out
    }

    /// Every recorded run of `job`, newest first, as `history --json` prints them.
    #[track_caller]
    pub fn history(&self, job: &str) -> Vec<serde_json::Value> {
        self.history_of(&["history", job, "--json", "--limit", "1000000"])
    }

    /// Every recorded run of `job`, oldest first.
    #[track_caller]
    pub fn history_oldest_first(&self, job: &str) -> Vec<serde_json::Value> {
        let mut runs = self.history(job);
        runs.reverse();
        runs
    }

    /// Every recorded run of every job, newest first.
    #[track_caller]
    pub fn history_all(&self) -> Vec<serde_json::Value> {
        self.history_of(&["history", "--json", "--limit", "1000000"])
    }

    #[track_caller]
    fn history_of(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.run_args(args).expect_code(0);
        out.json().as_array().expect("history is an array").clone()
    }

    fn execute(&self, args: &[String]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobrun"));
        cmd.args(args)
            .env_remove("JOBRUN_CONFIG")
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .env("JOBRUN_STATE_DIR", self.path("state"))
            .current_dir(self.dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running jobrun");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The `name` of each object in a JSON array (list and next output).
#[track_caller]
pub fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|j| {
            j["name"]
                .as_str()
                .or(j["job"].as_str())
                .expect("a name")
                .to_string()
        })
        .collect()
}

/// A jobrun process running in the background for a test (a daemon, or any
/// command started with `Test::spawn`); killed when dropped.
#[must_use = "a background process is killed when dropped"]
pub struct Daemon {
    child: std::process::Child,
    stderr_path: PathBuf,
}

impl Test {
    /// Starts `jobrun daemon` with `args` (global options included); its stdout
    /// (job output) is discarded unless `stdout_to` names a file.
    pub fn spawn_daemon<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, args: I) -> Daemon {
        self.spawn_daemon_to(args, None)
    }

    /// Starts jobrun with exactly `args` (any subcommand) in the background:
    /// its stderr is kept (`log`), its stdout discarded.
    pub fn spawn<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, args: I) -> Daemon {
        self.spawn_process(args, None, None, &[])
    }

    /// Starts `jobrun daemon` with `args` and, besides the test's
    /// environment, the variables `env` (the fleet tests' daemons stand for
    /// different hosts, and their jobs say which host ran them).
    pub fn spawn_daemon_env<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        env: &[(&str, &str)],
    ) -> Daemon {
        let args = std::iter::once("daemon".to_string())
            .chain(args.into_iter().map(|a| a.as_ref().to_string()));
        self.spawn_process(args, None, None, env)
    }

    pub fn spawn_daemon_to<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        stdout_to: Option<&str>,
    ) -> Daemon {
        self.spawn_daemon_with(args, stdout_to, None)
    }

    /// Starts a daemon whose address space is limited to `bytes`
    /// (`RLIMIT_AS`): an input that makes it allocate without bound fails
    /// the test instead of exhausting the machine.
    pub fn spawn_daemon_limited<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        bytes: u64,
    ) -> Daemon {
        self.spawn_daemon_with_pre_exec(args, move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            // SAFETY: setrlimit reads only `limit`, a copy owned by the closure.
            if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }

    fn spawn_daemon_with<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        stdout_to: Option<&str>,
        pre_exec: Option<PreExec>,
    ) -> Daemon {
        let args = std::iter::once("daemon".to_string())
            .chain(args.into_iter().map(|a| a.as_ref().to_string()));
        self.spawn_process(args, stdout_to, pre_exec, &[])
    }

    /// The one way a test starts jobrun in the background: `args` as given,
    /// the test's environment, stderr kept in a file of its own (`log`),
    /// stdout discarded or written to `stdout_to`, `pre_exec` run in the
    /// child before jobrun executes (resource limits, signal dispositions),
    /// and `env` added to the test's environment.
    fn spawn_process<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        stdout_to: Option<&str>,
        pre_exec: Option<PreExec>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let args: Vec<String> = args.into_iter().map(|a| self.expand(a.as_ref())).collect();
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr_path = self.path(&format!("daemon-{n}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).expect("creating the daemon's log");
        let stdout = match stdout_to {
            Some(rel) => std::process::Stdio::from(
                std::fs::File::create(self.path(rel)).expect("creating the stdout file"),
            ),
            None => std::process::Stdio::null(),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobrun"));
        if let Some(pre_exec) = pre_exec {
            use std::os::unix::process::CommandExt;
            // SAFETY: the tests' closures make only async-signal-safe calls
            // (setrlimit, signal), allocating nothing.
            unsafe {
                cmd.pre_exec(pre_exec);
            }
        }
        let child = cmd
            .args(&args)
            .env_remove("JOBRUN_CONFIG")
            .env("TZ", "UTC")
            .env("JOBRUN_STATE_DIR", self.path("state"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("starting jobrun in the background");
        Daemon { child, stderr_path }
    }
}

/// What a child runs between fork and exec.
type PreExec = Box<dyn FnMut() -> std::io::Result<()> + Send + Sync + 'static>;

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The exit code (128+N for signal N) if the daemon has exited.
    pub fn exited(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.try_wait().expect("waiting for the daemon")?;
        Some(
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        )
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling the daemon");
    }

    /// Waits for the daemon to exit, at most `limit`; panics if it does not.
    #[track_caller]
    pub fn wait(mut self, limit: std::time::Duration) -> (i32, String) {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the daemon") {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                return (code, self.log());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("daemon did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The last `bytes` or so of the daemon's stderr (a log of a big input
    /// can run to megabytes).
    pub fn log_tail(&self, bytes: usize) -> String {
        let log = self.log();
        let mut from = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(from) {
            from += 1;
        }
        log[from..].to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test must not leave a daemon running, and shows what the
        // daemon said (the test harness prints it with the failure).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("the daemon's log (its end):\n{}", self.log_tail(16 * 1024));
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, at most `limit`.
#[track_caller]
pub fn wait_for<T>(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Polls `f` until it holds or `limit` has passed; whether it held. For a
/// wait whose timeout the caller asserts on with its own message.
pub fn wait_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Test {
    /// Starts `jobrun daemon` with `args`, running `pre_exec` in the child
    /// before it executes jobrun (resource limits, signal dispositions: what
    /// a test can set up without root).
    pub fn spawn_daemon_with_pre_exec<I, S, F>(&self, args: I, pre_exec: F) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
        F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.spawn_daemon_with(args, None, Some(Box::new(pre_exec)))
    }

    /// Starts `jobrun daemon` with `args` under an open-file limit of
    /// `soft`/`hard` descriptors (no root needed to lower a limit).
    pub fn spawn_daemon_with_nofile<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        soft: u64,
        hard: u64,
    ) -> Daemon {
        self.spawn_daemon_with_pre_exec(args, move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
