//! Domain values shared by every room: where a definition came from ([`Origin`]),
//! what a source says about a job ([`JobSpec`], [`ScheduleSpec`]), and the findings
//! reported to the user ([`Diagnostic`]), and a run's identity and end
//! ([`RunId`], [`RunOutcome`]).
//!
//! Plain data only: this module knows no parser, no clock, no SQLite and no process.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::job_env::JobEnv;

mod notify;
mod run;
pub use notify::{NotifyOn, NotifySpec};
pub use run::{Firing, RunId, RunOutcome, RunStatus, Trigger};

/// Where a definition was written: a file and a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Shared: every origin in one file points at one copy of its path (a
    /// job's origin is copied into its schedules, its plan entry and the
    /// daemon's record of the file: issue 12, memory with many jobs).
    pub path: Arc<Path>,
    pub line: usize,
}

impl Origin {
    pub fn new(path: impl AsRef<Path>, line: usize) -> Self {
        Origin {
            path: Arc::from(path.as_ref()),
            line,
        }
    }
}

impl Origin {
    /// Another line of the same file (sharing its path).
    pub fn at(&self, line: usize) -> Origin {
        Origin {
            path: Arc::clone(&self.path),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Which grammar a cron expression was written in.
///
/// Crontab files get exactly what classic (Vixie/Debian) cron understands: five
/// fields or a macro. YAML also accepts a leading seconds field and croner's
/// extensions (`L`, `W`, `#`). A supercronic crontab (`--supercronic`) is read
/// as supercronic reads it: 6 fields end with a year, 7 start with seconds,
/// and its own day rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Crontab,
    Yaml,
    Supercronic,
}

/// One schedule expression as written, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub expr: String,
    pub dialect: Dialect,
    /// IANA zone name from YAML `timezone` or crontab `CRON_TZ`; `None` means the
    /// default zone (the `TZ` environment variable, else the system zone).
    pub timezone: Option<String>,
    pub origin: Origin,
}

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// Run by a shell with `-c` (the shell is [`JobSpec::shell`], default `/bin/sh`).
    Shell(String),
    /// Executed directly, no shell.
    Argv(Vec<String>),
    /// No process: send a signal to the process a pidfile names (YAML `signal:`).
    /// Boxed: rare, and the largest variant (every command would be its size).
    Signal(Box<SignalSpec>),
}

/// YAML `signal:`: tell a running daemon to reload, through its pidfile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalSpec {
    pub pidfile: PathBuf,
    /// The signal's name without `SIG` (`HUP`, `USR1`), checked by the source.
    pub signal: String,
    /// When set, the process's name must match (guards against a stale pidfile
    /// whose pid now belongs to another program).
    pub process: Option<String>,
    pub if_not_running: IfNotRunning,
}

/// What a `signal:` job records when the process is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum IfNotRunning {
    /// `skipped`, with the reason (nothing to reload is not a failure).
    #[default]
    Skip,
    /// `failed`: the process is expected to be running.
    Fail,
}

impl IfNotRunning {
    pub fn as_str(self) -> &'static str {
        match self {
            IfNotRunning::Skip => "skip",
            IfNotRunning::Fail => "fail",
        }
    }
}

impl Command {
    /// The command with runs of whitespace collapsed, used to decide whether two
    /// entries are the same job (SPEC 3).
    pub fn normalized(&self) -> String {
        match self {
            Command::Shell(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
            Command::Argv(v) => v.join("\u{0}"),
            Command::Signal(s) => format!(
                "signal\u{0}{}\u{0}{}\u{0}{}",
                s.signal,
                s.pidfile.display(),
                s.process.as_deref().unwrap_or_default()
            ),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Argv(v) => {
                let quoted: Vec<String> = v
                    .iter()
                    .map(|a| {
                        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                            format!("'{}'", a.replace('\'', "'\\''"))
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                f.write_str(&quoted.join(" "))
            }
            Command::Signal(s) => {
                write!(f, "signal {} to {}", s.signal, s.pidfile.display())?;
                match &s.process {
                    Some(p) => write!(f, " ({p})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// What to do when a tick comes while the previous run of the job is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Concurrency {
    /// Skip the new tick and record it as `skipped`.
    #[default]
    Forbid,
    /// Start another instance alongside.
    Allow,
    /// Stop the running instance, then start the new one.
    Replace,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Forbid => "forbid",
            Concurrency::Allow => "allow",
            Concurrency::Replace => "replace",
        }
    }
}

/// Which kind of file defined a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// A YAML job file.
    Yaml,
    /// A crontab file (user or system format, `/etc/crontab`, `cron.d`, spool).
    Crontab,
    /// A supercronic crontab (`--supercronic`): its jobs run in jobrun's own
    /// working directory, as supercronic runs them.
    Supercronic,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Yaml => "yaml",
            SourceKind::Crontab => "crontab",
            SourceKind::Supercronic => "supercronic",
        }
    }
}

/// One job as one source defines it, before merging.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The YAML name; crontab entries have none and get a derived one in `plan`.
    pub name: Option<String>,
    pub schedules: Vec<ScheduleSpec>,
    pub command: Command,
    /// Standard input for the command (crontab `%` rule); `None` means `/dev/null`.
    pub stdin: Option<String>,
    /// Shell for [`Command::Shell`]; `None` means `/bin/sh`.
    pub shell: Option<String>,
    /// Run as this user (only possible when jobrun runs as root).
    pub user: Option<String>,
    pub workdir: Option<PathBuf>,
    /// The source's variables, on top of jobrun's own environment (shared
    /// layers: a file's variables are held once, not once per job).
    pub env: JobEnv,
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a timeout or shutdown stops the job.
    pub kill_grace: Option<Duration>,
    pub concurrency: Concurrency,
    pub enabled: bool,
    /// Readiness checks that must all pass before the command starts.
    pub requires: Vec<Requirement>,
    /// How long a run waits for `requires`; `None` means [`DEFAULT_REQUIRES_TIMEOUT`].
    pub requires_timeout: Option<Duration>,
    /// Boxed, as `watch` is: most jobs have neither, and each of 100,000
    /// jobs would carry their room (issue 12, memory with many jobs).
    pub retry: Option<Box<RetryPolicy>>,
    /// After downtime, run the latest tick within this window if nobody claimed it.
    pub catch_up: Option<Duration>,
    /// YAML `jitter` (crontab `RANDOM_DELAY`): each scheduled run starts
    /// this much after its tick at most, by an offset fixed by the job's
    /// name and the tick (`plan::jitter`). `None` (or zero): at the tick.
    pub jitter: Option<Duration>,
    /// YAML `notify:`: webhook and ping on the job's run events. Shared:
    /// the file's `defaults:` give every job one copy.
    pub notify: Option<Arc<NotifySpec>>,
    /// Run once each time a daemon starts.
    pub run_on_start: bool,
    /// Jobs to start after a run of this job succeeds.
    pub on_success: Vec<ChainLink>,
    /// Jobs to start after a run of this job fails (after its last retry).
    pub on_failure: Vec<ChainLink>,
    /// Run when files change.
    pub watch: Option<Box<WatchSpec>>,
    pub kind: SourceKind,
    /// The line that defines the job (the entry line, or the YAML `name:` line).
    pub origin: Origin,
}

impl JobSpec {
    /// A job with the given command and nothing else set, for sources to fill in.
    pub fn new(command: Command, kind: SourceKind, origin: Origin) -> Self {
        JobSpec {
            name: None,
            schedules: Vec::new(),
            command,
            stdin: None,
            shell: None,
            user: None,
            workdir: None,
            env: JobEnv::new(),
            timeout: None,
            kill_grace: None,
            concurrency: Concurrency::default(),
            enabled: true,
            requires: Vec::new(),
            requires_timeout: None,
            retry: None,
            catch_up: None,
            jitter: None,
            notify: None,
            run_on_start: false,
            on_success: Vec::new(),
            on_failure: Vec::new(),
            watch: None,
            kind,
            origin,
        }
    }
}

/// How long a run waits for its readiness checks when `requires_timeout` is not set.
pub const DEFAULT_REQUIRES_TIMEOUT: Duration = Duration::from_secs(120);

/// One readiness check of `requires:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `host:port` accepts a TCP connection.
    Tcp(String),
    /// The file exists and is not empty.
    File(PathBuf),
    /// The command (run by `/bin/sh -c`, as the job's user, in its environment) exits 0.
    Command(String),
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Tcp(addr) => write!(f, "tcp {addr}"),
            Requirement::File(path) => write!(f, "file {}", path.display()),
            Requirement::Command(c) => write!(f, "command `{c}`"),
        }
    }
}

/// YAML `retry:`: how often a failed run is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (`attempts: 1` never retries).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(32);
        self.backoff
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_backoff)
    }
}

/// One entry of `on_success:` / `on_failure:`: a job name and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub job: String,
    pub origin: Origin,
}

/// YAML `watch:`: run the job when one of these paths changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    pub paths: Vec<PathBuf>,
    /// Changes are gathered for this long after the first one, then the job runs once.
    pub debounce: Duration,
    pub origin: Origin,
}

/// The debounce of a `watch:` that sets none.
pub const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_secs(1);

/// How serious a finding is. `check` exits 1 when there is any error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A finding about the sources, located where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file and line; a whole-file finding uses line 0 and prints the path alone.
    pub origin: Option<Origin>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(origin: Option<Origin>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            origin,
            message: message.into(),
        }
    }
    pub fn warning(origin: Option<Origin>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            origin,
            message: message.into(),
        }
    }
    pub fn note(origin: Option<Origin>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Note,
            origin,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) if o.line == 0 => write!(f, "{}: ", o.path.display())?,
            Some(o) => write!(f, "{o}: ")?,
            None => {}
        }
        write!(f, "{}: {}", self.severity.as_str(), self.message)
    }
}

/// What reading a set of sources produced: the jobs that could be understood and
/// every finding, so one bad line never hides the rest of a file.
#[derive(Debug, Clone, Default)]
pub struct SourceSet {
    /// Shared: the plan's job and the daemon's record of the file that
    /// defines it (kept so a reload can keep a file's previous version) hold
    /// one copy of each definition (issue 12, memory with many jobs).
    pub jobs: Vec<Arc<JobSpec>>,
    pub diagnostics: Vec<Diagnostic>,
    /// The YAML `history:` setting, where one file gives it.
    pub history: Option<HistorySpec>,
    /// The user jobrun runs as, when known: a job without `user:` runs as
    /// this user, so the merge rule takes it for the same user as one that
    /// names it (a YAML job and root's crontab when jobrun is root).
    pub own_user: Option<OwnUser>,
}

/// Who jobrun runs as, for the merge rule (the plan must not ask the system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnUser {
    /// `None` where the user database has no entry for the uid.
    pub name: Option<String>,
    pub uid: u32,
}

impl OwnUser {
    /// True when `user` (a name or a numeric uid) is this user.
    pub fn is(&self, user: &str) -> bool {
        self.name.as_deref() == Some(user) || user.parse::<u32>() == Ok(self.uid)
    }
}

/// A crontab job's derived name and its identity: what the state needs to
/// keep the job's runs under its name when the name changes (see
/// `plan::derive_name`, `Store::follow_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedName {
    /// A stable hash of the job's merge key (user, command, shell, standard
    /// input, environment, directory), as 16 hex digits.
    pub key: String,
    pub name: String,
}

/// How much run history to keep, as a YAML file's `history:` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpec {
    pub keep_days: Option<u32>,
    pub keep_runs: Option<u32>,
    pub origin: Origin,
}

impl SourceSet {
    /// Adds another source's findings. `history:` is a global setting: two
    /// files that both set it are an error naming both places.
    pub fn extend(&mut self, other: SourceSet) {
        // The first set is taken as it is: moving 100,000 jobs of 550 bytes
        // one by one into a growing vector cost a copy of each and of the
        // vector (issue 12).
        if self.jobs.is_empty() {
            self.jobs = other.jobs;
        } else {
            self.jobs.extend(other.jobs);
        }
        if self.diagnostics.is_empty() {
            self.diagnostics = other.diagnostics;
        } else {
            self.diagnostics.extend(other.diagnostics);
        }
        if self.own_user.is_none() {
            self.own_user = other.own_user;
        }
        match (&self.history, other.history) {
            (_, None) => {}
            (None, Some(h)) => self.history = Some(h),
            (Some(first), Some(second)) => self.diagnostics.push(Diagnostic::error(
                Some(second.origin.clone()),
                format!(
                    "`history:` is already set at {}; it is a global setting: keep it in one file",
                    first.origin
                ),
            )),
        }
    }
}
