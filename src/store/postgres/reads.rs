//! The PostgreSQL store's reads and its housekeeping through the seam:
//! history, one run and its output, running and latest runs, the daemons and
//! the fleet, retention, renamed jobs. Each is one call of
//! [`PostgresStore::op`] around a function of the rooms beside it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::fleet::{self, MemberState};
use super::shared::connected;
use super::store::PostgresStore;
use super::{history, names, runs, sql};
use crate::job::{DerivedName, RunId};
use crate::store::{
    DaemonRecord, DefinitionDrift, Fleet, FleetMember, HistoryFilter, Loaded, Operation, Retention,
    RunRecord, StoreError,
};

/// A `daemons` row as [`DaemonRecord`] (owner `HOST#EPOCH`).
const DAEMON_COLUMNS: &str = "host || '#' || epoch, pid, host, started_at, last_beat,
                              coalesce(stopped_at, dead_at), loaded";

fn daemon_record(row: &tokio_postgres::Row) -> DaemonRecord {
    DaemonRecord {
        owner: row.get(0),
        pid: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
        host: row.get(2),
        started_at: row.get(3),
        last_beat: row.get(4),
        stopped_at: row.get(5),
        loaded: row
            .get::<_, Option<String>>(6)
            .and_then(|text| serde_json::from_str::<Loaded>(&text).ok()),
    }
}

impl PostgresStore {
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRecord>, StoreError> {
        let filter = filter.clone();
        self.op(Operation::History, "querying history", |s| async move {
            let mut guard = s.client().await?;
            history::history(connected(&mut guard)?, &filter).await
        })
    }

    pub fn get(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.op(Operation::History, "reading a run", move |s| async move {
            let mut guard = s.client().await?;
            runs::get(connected(&mut guard)?, id.0).await
        })
    }

    pub fn output_tail(&self, id: RunId) -> Result<Vec<u8>, StoreError> {
        self.op(
            Operation::History,
            "reading a run's output",
            move |s| async move {
                let mut guard = s.client().await?;
                runs::output_tail(connected(&mut guard)?, id.0).await
            },
        )
    }

    pub fn latest_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.op(
            Operation::History,
            "reading each job's latest run",
            |s| async move {
                let mut guard = s.client().await?;
                runs::latest_runs(connected(&mut guard)?).await
            },
        )
    }

    pub fn run_totals(&self) -> Result<crate::store::RunTotals, StoreError> {
        self.op(
            Operation::History,
            "summing up the run history",
            |s| async move {
                let mut guard = s.client().await?;
                runs::run_totals(connected(&mut guard)?).await
            },
        )
    }

    pub fn running(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.op(
            Operation::History,
            "reading the running runs",
            |s| async move {
                let mut guard = s.client().await?;
                runs::running(connected(&mut guard)?).await
            },
        )
    }

    pub fn last_success_start(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let job = job.to_string();
        self.op(
            Operation::History,
            "reading a job's last success",
            |s| async move {
                let mut guard = s.client().await?;
                runs::last_success_start(connected(&mut guard)?, &job).await
            },
        )
    }

    pub fn tick_claimed(&self, job: &str, tick: DateTime<Utc>) -> Result<bool, StoreError> {
        let job = job.to_string();
        self.op(
            Operation::History,
            "reading a tick's claim",
            move |s| async move {
                let mut guard = s.client().await?;
                runs::tick_claimed(connected(&mut guard)?, &job, tick).await
            },
        )
    }

    /// Whether the owner of a run is alive by the server's clock; `None` for
    /// an owner that is no fleet member's.
    pub fn owner_alive(&self, owner: &str) -> Result<Option<Result<String, String>>, StoreError> {
        let owner = owner.to_string();
        self.op(
            Operation::Daemons,
            "reading a daemon's lease",
            |s| async move {
                let mut guard = s.client().await?;
                runs::owner_alive(connected(&mut guard)?, &owner).await
            },
        )
    }

    /// Every daemon that has not stopped and was not declared dead, latest
    /// beat first.
    pub fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        self.op(Operation::Daemons, "reading the daemons", |s| async move {
            let mut guard = s.client().await?;
            let rows = connected(&mut guard)?
                .query(
                    &format!(
                        "SELECT {DAEMON_COLUMNS} FROM daemons
                         WHERE stopped_at IS NULL AND dead_at IS NULL AND kind = 'daemon'
                         ORDER BY last_beat DESC"
                    ),
                    &[],
                )
                .await
                .map_err(sql("reading the daemons"))?;
            Ok(rows.iter().map(daemon_record).collect())
        })
    }

    pub fn daemon(&self, owner: &str) -> Result<Option<DaemonRecord>, StoreError> {
        let Some(epoch) = super::owner::epoch(owner) else {
            return Ok(None);
        };
        self.op(
            Operation::Daemons,
            "reading a daemon",
            move |s| async move {
                let mut guard = s.client().await?;
                let row = connected(&mut guard)?
                    .query_opt(
                        &format!("SELECT {DAEMON_COLUMNS} FROM daemons WHERE epoch = $1"),
                        &[&epoch],
                    )
                    .await
                    .map_err(sql("reading a daemon"))?;
                Ok(row.as_ref().map(daemon_record))
            },
        )
    }

    /// The last moment a daemon of the fleet that is no longer alive (other
    /// than this one) is known to have been scheduling: its stop or its
    /// last beat. A live peer is not counted: it has been scheduling since
    /// it started (its start is in `daemons`).
    pub fn last_daemon_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let me = self.member().map(|d| d.epoch).unwrap_or(-1);
        self.op(
            Operation::Daemons,
            "reading when the fleet last scheduled",
            move |s| async move {
                let mut guard = s.client().await?;
                let row = connected(&mut guard)?
                    .query_one(
                        "SELECT max(coalesce(stopped_at, last_beat)) FROM daemons
                         WHERE epoch <> $1 AND kind = 'daemon'
                           AND NOT (dead_at IS NULL AND stopped_at IS NULL
                                    AND lease_until > now())",
                        &[&me],
                    )
                    .await
                    .map_err(sql("reading when the fleet last scheduled"))?;
                Ok(row.get(0))
            },
        )
    }

    /// The daemons alive, or stopped or dead within the last hour, and the
    /// jobs the live ones define differently.
    pub fn fleet(&self) -> Result<Fleet, StoreError> {
        self.op(Operation::Daemons, "listing the fleet", |s| async move {
            let mut guard = s.client().await?;
            let client = connected(&mut guard)?;
            let members = fleet::members(client, 3600.0).await?;
            let drift = fleet::drift(client).await?;
            Ok(Fleet {
                members: members
                    .into_iter()
                    .map(|m| {
                        let (state, reason) = match m.state {
                            MemberState::Alive => ("alive", None),
                            MemberState::Expired => ("expired", None),
                            MemberState::Dead { reason } => ("dead", Some(reason)),
                            MemberState::Stopped => ("stopped", None),
                        };
                        FleetMember {
                            host: m.host,
                            epoch: m.epoch,
                            pid: m.pid,
                            state: state.into(),
                            reason,
                            started_at: m.started_at,
                            last_beat: m.last_beat,
                            clock_offset_ms: m.clock_offset_ms,
                        }
                    })
                    .collect(),
                drift: drift
                    .into_iter()
                    .map(|d| DefinitionDrift {
                        job: d.job,
                        host: d.host,
                        fingerprint: d.fingerprint,
                        fleet_host: d.fleet_host,
                        fleet_fingerprint: d.fleet_fingerprint,
                    })
                    .collect(),
            })
        })
    }

    /// Each job the fleet's live daemons claim, with the earliest live
    /// definition: (host, fingerprint), for `check` to compare.
    pub fn fleet_definitions(&self) -> Result<HashMap<String, (String, String)>, StoreError> {
        self.op(
            Operation::Daemons,
            "reading the fleet's job definitions",
            |s| async move {
                let mut guard = s.client().await?;
                let rows = connected(&mut guard)?
                    .query(
                        &format!(
                            "SELECT DISTINCT ON (f.job) f.job, d.host, f.fingerprint
                             FROM definitions f JOIN daemons d ON d.epoch = f.epoch
                             WHERE {}
                             ORDER BY f.job, f.declared_at, f.epoch",
                            super::daemons::ALIVE
                        ),
                        &[],
                    )
                    .await
                    .map_err(sql("reading the fleet's job definitions"))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get(0), (r.get(1), r.get(2))))
                    .collect())
            },
        )
    }

    pub fn prune(&self, retention: Retention) -> Result<u64, StoreError> {
        self.op(
            Operation::Prune,
            "pruning the history",
            move |s| async move {
                let mut guard = s.client().await?;
                history::prune(connected(&mut guard)?, retention).await
            },
        )
    }

    pub fn follow_names(&self, derived: &[DerivedName]) -> Result<usize, StoreError> {
        let derived = derived.to_vec();
        self.op(
            Operation::Rename,
            "following renamed jobs",
            |s| async move {
                let mut guard = s.client().await?;
                names::follow_names(connected(&mut guard)?, &derived).await
            },
        )
    }
}
