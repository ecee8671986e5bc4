//! A run's values: why it started ([`Trigger`]), what is to be run
//! ([`Firing`]), its identity in the state ([`RunId`]) and how it ended
//! ([`RunStatus`], [`RunOutcome`]). Plain data, like the rest of `job`.

use std::fmt;
use std::path::PathBuf;

/// Why a run started (SPEC 4; later triggers are added by their features).
/// Serialized as [`Trigger::as_str`] (the recorder's spool file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A scheduled tick.
    Schedule,
    /// `jobrun run NAME`.
    Manual,
    /// `@reboot`: once per boot, when the daemon starts.
    Reboot,
    /// After a forward clock jump or suspend, or after downtime (`catch_up:`):
    /// once for the missed ticks.
    #[serde(rename = "catch-up")]
    CatchUp,
    /// `on_success:` / `on_failure:` of another job's run.
    Chain,
    /// A change to a watched path.
    Watch,
    /// Another attempt after a failed run (`retry:`).
    Retry,
    /// `run_on_start:`: once per daemon start.
    Start,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Reboot => "reboot",
            Trigger::CatchUp => "catch-up",
            Trigger::Chain => "chain",
            Trigger::Watch => "watch",
            Trigger::Retry => "retry",
            Trigger::Start => "start",
        }
    }

    pub const ALL: [Trigger; 8] = [
        Trigger::Schedule,
        Trigger::Manual,
        Trigger::Reboot,
        Trigger::CatchUp,
        Trigger::Chain,
        Trigger::Watch,
        Trigger::Retry,
        Trigger::Start,
    ];

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The state of a run as recorded (SPEC 4). Serialized as
/// [`RunStatus::as_str`] (the recorder's spool file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Killed,
    Skipped,
    Interrupted,
    Abandoned,
    /// A tick jobrun could not claim or start through a failure of its own
    /// (out of descriptors, its state unwritable): the reason is in `error`.
    Missed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 9] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Killed,
        RunStatus::Skipped,
        RunStatus::Interrupted,
        RunStatus::Abandoned,
        RunStatus::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Killed => "killed",
            RunStatus::Skipped => "skipped",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Missed => "missed",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// A finished run that did not do its work.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunStatus::Failed
                | RunStatus::TimedOut
                | RunStatus::Killed
                | RunStatus::Interrupted
                | RunStatus::Abandoned
                | RunStatus::Missed
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's identity in the store, as `history` and `logs` show it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a run ended: the one shape of it, built once by `fire` and recorded
/// as is by the store (whatever ended it: its command, jobrun not starting
/// it, a `signal:` job, a shutdown).
///
/// Serializable for the recorder's spool file (an outcome kept on disk while
/// the store refuses writes); a field added here needs `#[serde(default)]`,
/// or outcomes spooled by an older jobrun are moved aside unread.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// From the start to the end; `None` for a run that never started.
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Every byte of output the run wrote.
    pub output_bytes: u64,
    /// The end of its output (shared: a firing's result and the store's
    /// queue hold the same bytes).
    #[serde(with = "tail_bytes")]
    pub output_tail: std::sync::Arc<[u8]>,
    /// Why jobrun ended or failed the run itself ("not ready: ...").
    pub error: Option<String>,
}

impl RunOutcome {
    /// A run jobrun ended itself, with no output or exit of its own.
    pub fn ended_early(
        status: RunStatus,
        finished_at: chrono::DateTime<chrono::Utc>,
        duration_ms: Option<i64>,
        error: Option<String>,
    ) -> RunOutcome {
        RunOutcome {
            status,
            finished_at,
            duration_ms,
            exit_code: None,
            signal: None,
            output_bytes: 0,
            output_tail: std::sync::Arc::from(&[][..]),
            error,
        }
    }
}

/// An output tail as text when it is UTF-8 (job output nearly always is: no
/// bloat), else as hex: `{"text": "..."}` or `{"hex": "..."}`.
mod tail_bytes {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Tail<'a> {
        Text(std::borrow::Cow<'a, str>),
        Hex(String),
    }

    pub fn serialize<S: Serializer>(tail: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(tail) {
            Ok(text) => Tail::Text(text.into()).serialize(s),
            Err(_) => {
                let hex = tail.iter().map(|b| format!("{b:02x}")).collect();
                Tail::Hex(hex).serialize(s)
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        match Tail::deserialize(d)? {
            Tail::Text(text) => Ok(Arc::from(text.as_bytes())),
            Tail::Hex(hex) => {
                let digit = |c: u8| (c as char).to_digit(16);
                let bytes = hex
                    .as_bytes()
                    .chunks(2)
                    .map(|pair| match pair {
                        [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
                        _ => None,
                    })
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| serde::de::Error::custom("an output tail that is not hex"))?;
                Ok(Arc::from(bytes))
            }
        }
    }
}

/// One decision to run a job: which job, for which tick, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub job: String,
    /// The scheduled instant; `None` for runs that claim no tick (manual,
    /// chain, watch, start). A retry keeps its first attempt's tick.
    pub tick: Option<chrono::DateTime<chrono::Utc>>,
    pub trigger: Trigger,
    /// The run this one follows: the first attempt of a retry, or the run
    /// whose outcome started a chain.
    pub parent: Option<RunId>,
    /// 1 for a first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// The changed paths that started a `watch` run.
    pub changed: Vec<PathBuf>,
    /// More paths changed than `changed` holds.
    pub changed_truncated: bool,
    /// When the first of the `watch` run's changes was seen: a run of the job
    /// that started after it and succeeded has already handled them.
    pub changes_seen: Option<chrono::DateTime<chrono::Utc>>,
}

impl Firing {
    pub fn new(
        job: impl Into<String>,
        tick: Option<chrono::DateTime<chrono::Utc>>,
        trigger: Trigger,
    ) -> Self {
        Firing {
            job: job.into(),
            tick,
            trigger,
            parent: None,
            attempt: 1,
            changed: Vec::new(),
            changed_truncated: false,
            changes_seen: None,
        }
    }
}
