//! The store's own values, the same for every backend: the run to claim,
//! how a run ended, a run and a daemon as the history holds them, the
//! history's filter and the retention. Owned and free of any backend's
//! types (times are `DateTime<Utc>`, never a backend's text).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::job::{RunId, RunStatus, Trigger};

/// A run to claim: a (job, tick) for scheduled triggers, or a manual run
/// (no tick, so never in conflict). Owns its values: it may wait in the
/// recorder's queue or spool after its firing is gone. Serializable for the
/// recorder's spool file; a field added here needs `#[serde(default)]`, or
/// ticks spooled by an older jobrun are moved aside unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NewRun {
    pub job: String,
    pub trigger: Trigger,
    pub tick: Option<DateTime<Utc>>,
    /// `Running` for a run about to start; `Skipped` or `Missed` to record a
    /// tick that will not run (with `error` saying why).
    pub status: RunStatus,
    pub at: DateTime<Utc>,
    pub host: String,
    pub owner: String,
    pub error: Option<String>,
    /// The first attempt (for a retry) or the run that started a chain.
    pub parent_id: Option<RunId>,
    /// 1 for a first attempt.
    pub attempt: u32,
}

/// That a claimed run's command started: its process group (`None` for a
/// run with no process of its own, a `signal:` job) and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub run: RunId,
    pub pid: Option<u32>,
    pub at: DateTime<Utc>,
}

/// One row of the history, as `history --json` prints it (SPEC 5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub job: String,
    pub trigger: String,
    #[serde(serialize_with = "ser_time_opt")]
    pub tick: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    #[serde(serialize_with = "ser_status")]
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub pid: Option<u32>,
    pub host: String,
    pub output_bytes: u64,
    pub error: Option<String>,
    /// The first attempt of a retry, or the run whose outcome started a chain.
    pub parent_id: Option<RunId>,
    /// 1 for a first attempt, 2 for the first retry, ...
    pub attempt: u32,
    #[serde(skip)]
    pub claimed_at: DateTime<Utc>,
    #[serde(skip)]
    pub owner: String,
}

fn ser_time_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        // Whole seconds print as `...:00Z` (ticks always are), fractions only
        // when there are some.
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

fn ser_status<S: serde::Serializer>(status: &RunStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.as_str())
}

/// Which runs `history` shows.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub job: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
    pub limit: Option<usize>,
}

/// A daemon as it last reported itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DaemonRecord {
    pub owner: String,
    pub pid: u32,
    pub host: String,
    #[serde(serialize_with = "ser_time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub last_beat: DateTime<Utc>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_time_opt"
    )]
    pub stopped_at: Option<DateTime<Utc>>,
    /// What it loaded at start or its last reload; `None` for a daemon that
    /// recorded nothing (an older version, or one still starting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded: Option<Loaded>,
}

/// What a daemon runs, as it recorded it, so `status` needs no sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Loaded {
    /// The names of the jobs it runs.
    pub jobs: Vec<String>,
    /// Source errors, `path:line: message` (a job or a file left out, or a
    /// new version of a file not applied).
    pub errors: Vec<String>,
    /// Source warnings, likewise.
    pub warnings: Vec<String>,
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    ser_time_opt(&Some(*t), s)
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Runs claimed longer ago than this many days are removed.
    pub keep_days: u32,
    /// At most this many runs per job are kept (the newest).
    pub keep_runs: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_days: 90,
            keep_runs: 10_000,
        }
    }
}

/// The fleet sharing a PostgreSQL state, as `status` shows it (SQLite has
/// none: one host).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fleet {
    pub members: Vec<FleetMember>,
    /// Jobs whose live daemons declare different definitions.
    pub drift: Vec<DefinitionDrift>,
}

/// One daemon start of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetMember {
    pub host: String,
    /// Its fencing token: a new one at each start and after being fenced.
    pub epoch: i64,
    pub pid: i32,
    /// `alive`, `expired` (its lease ran out, no peer acted yet), `dead`
    /// (declared dead by a peer: fenced) or `stopped`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(serialize_with = "ser_time")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub last_beat: DateTime<Utc>,
    /// Its clock minus the server's at its last heartbeat.
    pub clock_offset_ms: Option<i64>,
}

/// A live daemon whose definition of a job differs from the fleet's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionDrift {
    pub job: String,
    pub host: String,
    pub fingerprint: String,
    pub fleet_host: String,
    pub fleet_fingerprint: String,
}

/// How this process's claims in a fleet came out, since it started (the
/// `jobrun_claims_total{result}` metric).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClaimCounts {
    /// Claims this host won (its run, or its record of a skipped or missed tick).
    pub won: u64,
    /// Ticks a peer had claimed first.
    pub lost: u64,
    /// Claims refused because this daemon was fenced (declared dead, or it
    /// fenced itself with no acknowledged heartbeat).
    pub fenced: u64,
    /// Claims refused because this host's definition of the job differs
    /// from the fleet's.
    pub refused: u64,
}

/// What the store needs of a job to claim it for a fleet: its definition's
/// fingerprint (hosts claiming with another are refused) and whether one
/// run at a time is allowed (`forbid`, `replace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub job: String,
    pub fingerprint: String,
    pub exclusive: bool,
}

/// The run history summed up ([`Store::run_totals`](super::Store::run_totals)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub counts: Vec<RunTotal>,
    /// Per job that has one: its latest finished run.
    pub last: Vec<LastRuns>,
}

/// How many finished runs of `job` ended `status` for `trigger`, with an
/// error starting with `error_start` (the first characters, or empty).
#[derive(Debug, Clone, PartialEq)]
pub struct RunTotal {
    pub job: String,
    pub status: crate::job::RunStatus,
    pub trigger: String,
    pub error_start: String,
    pub count: u64,
}

/// A job's latest finished run (not a skip or a missed tick) and its latest success.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRuns {
    pub job: String,
    pub finished_at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub last_success: Option<DateTime<Utc>>,
}
