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
