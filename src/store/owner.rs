//! Is the owner of a run (or a daemon) alive? The one answer, used by
//! start-up recovery (which `running` rows to mark abandoned), by `fire`
//! (which run holds a busy lease, for `replace` and the skip reason) and by
//! `status` (is a daemon running).
//!
//! An owner is `host:pid:start` ([`owner_id`]): the process that claims runs
//! and, for a daemon, beats. The asking process itself is alive. On this
//! host its process decides: gone, or its
//! pid now belongs to a program that started after the owner recorded its
//! start, and it is dead; a heartbeat, stale or not, does not outvote a live
//! process. On another host only its heartbeat can tell: stopped, or older
//! than [`STALE_AFTER`], and it is dead. The process lookup is passed in
//! ([`crate::procfs::process_started`] in production), so the rule is tested
//! without processes.
//!
//! A free lease is not proof of death (the files of SQLite's leases can be
//! deleted under a live daemon), and a held one proves a live holder: the
//! callers combine both with this verdict.
//!
//! Must not know SQLite, schedules or how a job is started.

use chrono::{DateTime, SecondsFormat, Utc};

use super::DaemonRecord;

/// How far a process's start (from `/proc`, to about a second) may be from
/// a recorded start for the process to be taken for the recorded one.
const START_SLACK: f64 = 3.0;

/// A daemon on another host whose last heartbeat is older than this is dead:
/// three missed beats of a daemon that beats once a minute.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(180);

/// The identity of a jobrun process in the runs it claims and the beats it
/// records: `host:pid:start`, unique even when a container restarts as PID 1
/// again.
pub fn owner_id(host: &str, pid: u32, started: DateTime<Utc>) -> String {
    format!(
        "{host}:{pid}:{}",
        started.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// The parts of an owner id (see [`owner_id`]).
fn parse_owner(owner: &str) -> Option<(&str, u32, DateTime<Utc>)> {
    let (host, rest) = owner.split_once(':')?;
    let (pid, start) = rest.split_once(':')?;
    Some((host, pid.parse().ok()?, start.parse().ok()?))
}

/// Whether an owner is alive, with the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive(String),
    Dead(String),
}

impl Liveness {
    pub fn is_alive(&self) -> bool {
        matches!(self, Liveness::Alive(_))
    }
}

/// What the verdict is drawn from.
pub struct Evidence<'a> {
    /// The host the asking process runs on.
    pub this_host: &'a str,
    /// The asking process's own owner id, if it claims runs: alive.
    pub me: Option<&'a str>,
    /// The asking process's own pid: an owner with it is an earlier process.
    pub own_pid: u32,
    pub now: DateTime<Utc>,
    /// The owner's heartbeat record, if it ever beat.
    pub heartbeat: Option<&'a DaemonRecord>,
    /// When a live process started (seconds since the epoch), `None` if gone.
    pub process_started: &'a dyn Fn(u32) -> Option<f64>,
}

impl<'a> Evidence<'a> {
    /// The evidence of this process, on this machine: its own pid and
    /// `/proc` (through [`crate::procfs`]).
    pub fn here(
        this_host: &'a str,
        me: Option<&'a str>,
        now: DateTime<Utc>,
        heartbeat: Option<&'a DaemonRecord>,
    ) -> Evidence<'a> {
        Evidence {
            this_host,
            me,
            own_pid: std::process::id(),
            now,
            heartbeat,
            process_started: &crate::procfs::process_started,
        }
    }
}

/// Judges whether `owner` (an [`owner_id`]) is alive: the one rule.
pub fn owner_alive(owner: &str, e: &Evidence<'_>) -> Liveness {
    if e.me == Some(owner) {
        return Liveness::Alive("it is this process".into());
    }
    if let Some((host, pid, start)) = parse_owner(owner) {
        if host == e.this_host {
            if pid == e.own_pid {
                return Liveness::Dead(format!("its process id {pid} is now this daemon's"));
            }
            let start = start.timestamp_millis() as f64 / 1000.0;
            return match (e.process_started)(pid) {
                None => Liveness::Dead(format!("its process {pid} is gone")),
                // The owner recorded its start after its process began, so a
                // process that began later is another program with its pid.
                Some(at) if at > start + START_SLACK => Liveness::Dead(format!(
                    "its process id {pid} now belongs to a program started later"
                )),
                Some(_) => Liveness::Alive(format!("its process {pid} is still running")),
            };
        }
    }
    match e.heartbeat {
        Some(d) if d.stopped_at.is_some() => Liveness::Dead("it stopped".into()),
        Some(d) if e.now - d.last_beat > STALE_AFTER => Liveness::Dead(format!(
            "its last heartbeat was at {}",
            d.last_beat.to_rfc3339()
        )),
        Some(d) => Liveness::Alive(format!(
            "its heartbeat at {} is recent",
            d.last_beat.to_rfc3339()
        )),
        // Another host's process that never beat (`jobrun run`): nothing but
        // the lease is known, as before heartbeats.
        None => Liveness::Dead("it left no heartbeat and its lock is free".into()),
    }
}

/// Whether a process that owned a run is still the process it was: on this
/// host, `pid` runs and started within a few seconds of `started` (for a
/// job's process group, whose start jobrun recorded).
pub fn same_process(process_started: Option<f64>, started: DateTime<Utc>) -> bool {
    process_started
        .is_some_and(|at| (at - started.timestamp_millis() as f64 / 1000.0).abs() < START_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    fn beat(last: &str, stopped: Option<&str>) -> DaemonRecord {
        DaemonRecord {
            owner: "other:7:2026-05-01T09:00:00.000Z".into(),
            pid: 7,
            host: "other".into(),
            started_at: at("2026-05-01T09:00:00Z"),
            last_beat: at(last),
            stopped_at: stopped.map(at),
            loaded: None,
        }
    }

    fn judge(owner: &str, heartbeat: Option<&DaemonRecord>, started: Option<f64>) -> Liveness {
        let lookup = move |_pid: u32| started;
        owner_alive(
            owner,
            &Evidence {
                this_host: "here",
                me: Some("here:99:2026-05-01T10:00:00.000Z"),
                own_pid: 99,
                now: at("2026-05-01T10:05:00Z"),
                heartbeat,
                process_started: &lookup,
            },
        )
    }

    /// 2026-05-01T09:00:00Z, the owner's recorded start, in epoch seconds.
    const OWNER_START: f64 = 1_777_626_000.0;

    #[test]
    fn an_owner_id_reads_back_as_its_parts() {
        let id = owner_id("web-1", 42, at("2026-05-01T09:00:00.123Z"));
        assert_eq!(id, "web-1:42:2026-05-01T09:00:00.123Z");
        assert_eq!(
            parse_owner(&id),
            Some(("web-1", 42, at("2026-05-01T09:00:00.123Z")))
        );
        assert_eq!(parse_owner("web-1:x:2026"), None);
    }

    #[test]
    fn on_this_host_a_live_owner_process_is_alive_whatever_its_heartbeat() {
        let owner = "here:7:2026-05-01T09:00:00.000Z";
        // Started before it recorded itself: the same process.
        assert!(judge(owner, None, Some(OWNER_START - 1.5)).is_alive());
        assert!(matches!(judge(owner, None, None), Liveness::Dead(w) if w.contains("gone")));
        assert!(matches!(
            judge(owner, None, Some(OWNER_START + 60.0)),
            Liveness::Dead(w) if w.contains("started later")
        ));
        // A stale heartbeat does not outvote a live process on this host.
        let stale = beat("2026-05-01T09:00:00Z", None);
        assert!(judge(owner, Some(&stale), Some(OWNER_START)).is_alive());
        // This very pid is the asking process: the owner was an earlier one.
        assert!(!judge("here:99:2026-05-01T09:00:00.000Z", None, Some(OWNER_START)).is_alive());
        // ... and the asking process itself is alive, whatever it is.
        assert!(judge("here:99:2026-05-01T10:00:00.000Z", None, None).is_alive());
    }

    #[test]
    fn on_another_host_the_heartbeat_decides() {
        let owner = "other:7:2026-05-01T09:00:00.000Z";
        let fresh = beat("2026-05-01T10:04:00Z", None);
        assert!(judge(owner, Some(&fresh), None).is_alive());
        let stale = beat("2026-05-01T10:01:00Z", None);
        assert!(matches!(
            judge(owner, Some(&stale), None),
            Liveness::Dead(w) if w.contains("last heartbeat")
        ));
        let stopped = beat("2026-05-01T10:04:00Z", Some("2026-05-01T10:04:30Z"));
        assert!(matches!(
            judge(owner, Some(&stopped), None),
            Liveness::Dead(w) if w.contains("stopped")
        ));
        assert!(!judge(owner, None, None).is_alive(), "never beat");
    }

    #[test]
    fn this_process_is_alive_to_another_process_on_this_host() {
        let me = std::process::id();
        let started = crate::procfs::process_started(me).expect("alive");
        let start = DateTime::from_timestamp_millis((started * 1000.0) as i64 + 500).unwrap();
        let owner = owner_id("here", me, start);
        let e = Evidence {
            own_pid: me + 1,
            ..Evidence::here("here", None, start, None)
        };
        assert!(owner_alive(&owner, &e).is_alive());
        assert!(same_process(Some(started), start));
        assert!(!same_process(None, start));
    }
}
