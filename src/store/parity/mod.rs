//! One behaviour, two backends (issue 14, guarantee 12): the store's tests
//! written once against the backend-neutral [`Store`] and run on a SQLite
//! state directory and on a fresh PostgreSQL database ([`TestDb`]). Outside
//! CI without a PostgreSQL server a test runs on SQLite only and says so.
//!
//! Where the backends legitimately differ (PostgreSQL takes every time from
//! the server's clock, guarantee 2; its lease is renewed by a task of its
//! own rather than by `beat`), a test checks each side's own behaviour and
//! says why in a comment.
//!
//! Tests only (`#[cfg(test)]`): [`backends`] and [`both`] are also how the
//! recorder's tests run on both.

mod claims_tests;
mod daemons_tests;
mod history_tests;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::postgres::testdb::TestDb;
use super::postgres::LeaseConfig;
use super::{Location, Membership, NewRun, Store};
use crate::clock::{Clock, SystemClock};
use crate::job::{RunOutcome, RunStatus, Trigger};

/// One backend's state for one test. Fields drop in order: the store before
/// the state it lives in.
pub(crate) struct Backend {
    /// `sqlite` or `postgres`, for messages.
    pub name: &'static str,
    pub store: Arc<Store>,
    location: Location,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

impl Backend {
    /// Another process's store on the same state (PostgreSQL: another host
    /// of the fleet, `host`; SQLite: another connection to the same file).
    pub fn another(&self, host: &str) -> Store {
        let location = match &self.location {
            Location::StateDir(dir) => Location::StateDir(dir.clone()),
            Location::Database(m) => Location::Database(membership(&m.url, host)),
        };
        Store::open_at(&location).expect("opening another store on the same state")
    }

    pub fn is_postgres(&self) -> bool {
        self.store.is_fleet()
    }

    /// How many rows PostgreSQL's `claims` table holds (`None` on SQLite,
    /// whose claims are its runs).
    pub fn claim_rows(&self) -> Option<i64> {
        let db = self._db.as_ref()?;
        Some(db.read_count("SELECT count(*) FROM claims"))
    }
}

/// The host every test's first store is, on both backends.
pub(crate) const HOST: &str = "host-a";

fn membership(url: &str, host: &str) -> Membership {
    Membership {
        url: url.to_string(),
        host: host.to_string(),
        lease: LeaseConfig::default(),
        wall: Arc::new(|| SystemClock.now()),
        kind: crate::store::postgres::daemons::Kind::Daemon,
    }
}

/// A fresh SQLite state, and a fresh PostgreSQL one when a server answers
/// (`test` names the test in the message that says it was skipped).
pub(crate) fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("a temporary state directory");
    let location = Location::StateDir(dir.path().to_path_buf());
    let sqlite = Backend {
        name: "sqlite",
        store: Arc::new(Store::open_at(&location).expect("opening the SQLite store")),
        location,
        _dir: Some(dir),
        _db: None,
    };
    let mut out = vec![sqlite];
    if let Some(db) = TestDb::create(&format!("{test} (on PostgreSQL)")) {
        let location = Location::Database(membership(&db.url, HOST));
        out.push(Backend {
            name: "postgres",
            store: Arc::new(Store::open_at(&location).expect("opening the PostgreSQL store")),
            location,
            _dir: None,
            _db: Some(db),
        });
    }
    out
}

/// Runs `f` on each backend in turn; a failure names the backend (the
/// harness shows the test's output when it fails).
pub(crate) fn both(test: &str, f: impl Fn(&Backend)) {
    for backend in backends(test) {
        eprintln!("-- {test}: on {}", backend.name);
        f(&backend);
    }
}

/// 2026-05-01 at `h:m:s` UTC.
pub(crate) fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, h, m, s).unwrap()
}

/// A first attempt of `job` at `tick` (a manual run without one), about to
/// start, by [`HOST`].
pub(crate) fn new_run(job: &str, tick: Option<DateTime<Utc>>) -> NewRun {
    NewRun {
        job: job.into(),
        trigger: if tick.is_some() {
            Trigger::Schedule
        } else {
            Trigger::Manual
        },
        tick,
        status: RunStatus::Running,
        at: tick.unwrap_or(t(9, 0, 0)),
        host: HOST.into(),
        owner: format!("{HOST}:1:x"),
        error: None,
        parent_id: None,
        attempt: 1,
    }
}

/// A run's ending with `status` and `exit_code`, output `out`.
pub(crate) fn outcome(status: RunStatus, exit_code: Option<i32>, out: &[u8]) -> RunOutcome {
    RunOutcome {
        status,
        finished_at: t(9, 0, 3),
        duration_ms: Some(3000),
        exit_code,
        signal: None,
        output_bytes: out.len() as u64,
        output_tail: Arc::from(out),
        error: None,
    }
}
