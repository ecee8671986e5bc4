//! A small builder for end-to-end tests: a temporary tree of source files, the
//! arguments, and the finished process's output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
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
        }
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
    pub fn run_args<I: IntoIterator<Item = S>, S: AsRef<str>>(&self, args: I) -> Output {
        let args: Vec<String> = args.into_iter().map(|a| self.expand(a.as_ref())).collect();
        self.execute(&args)
    }

    pub fn run(&self) -> Output {
        self.execute(&self.args)
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

/// A `jobrun daemon` running in the background for a test.
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
        self.spawn_daemon_with(args, None, Some(bytes))
    }

    fn spawn_daemon_with<I: IntoIterator<Item = S>, S: AsRef<str>>(
        &self,
        args: I,
        stdout_to: Option<&str>,
        address_space: Option<u64>,
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
        if let Some(bytes) = address_space {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            // SAFETY: setrlimit is async-signal-safe and reads only `limit`,
            // a copy owned by the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd
            .arg("daemon")
            .args(&args)
            .env_remove("JOBRUN_CONFIG")
            .env("TZ", "UTC")
            .env("JOBRUN_STATE_DIR", self.path("state"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("starting jobrun daemon");
        Daemon { child, stderr_path }
    }
}

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
        use std::os::unix::process::CommandExt;
        let args: Vec<String> = args.into_iter().map(|a| self.expand(a.as_ref())).collect();
        let stderr_path = self.path("daemon-pre-exec.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("creating the daemon's log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobrun"));
        cmd.arg("daemon")
            .args(&args)
            .env_remove("JOBRUN_CONFIG")
            .env("TZ", "UTC")
            .env("JOBRUN_STATE_DIR", self.path("state"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        // SAFETY: the tests' closures make only async-signal-safe calls
        // (setrlimit, signal), allocating nothing.
        unsafe {
            cmd.pre_exec(pre_exec);
        }
        let child = cmd.spawn().expect("starting jobrun daemon");
        Daemon { child, stderr_path }
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
