//! The `daemons` table: registering a daemon with its fencing epoch, renewing
//! its lease, stopping it, and declaring dead peers dead (their `running` runs
//! `abandoned`). Every liveness comparison is with the server's `now()`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, GenericClient};

use super::{secs, sql, Daemon, PgError};

/// The SQL condition "this daemon row is alive" (alias `d`): what claiming,
/// starting and expiring others require.
pub(crate) const ALIVE: &str =
    "d.dead_at IS NULL AND d.stopped_at IS NULL AND d.lease_until > now()";

/// The SQL condition "no peer has declared this daemon dead" (alias `d`):
/// what finishing a run requires. A daemon whose lease ran out, or that is
/// stopping, may still record how its own runs ended until a peer acts: the
/// run's `status = 'running'` guard orders the two writes.
pub(crate) const NOT_DEAD: &str = "d.dead_at IS NULL";

/// Registers a daemon start: a new epoch, a random instance id made by the
/// server, and a lease of `lease` from the server's now. A daemon that was
/// fenced registers again and gets a new epoch.
pub async fn register(
    client: &Client,
    host: &str,
    pid: u32,
    lease: Duration,
) -> Result<Daemon, PgError> {
    register_as(client, host, pid, lease, Kind::Daemon).await
}

/// What registers with the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `jobrun daemon`.
    Daemon,
    /// `jobrun run`: a member while its run goes; not listed as a daemon.
    Run,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Daemon => "daemon",
            Kind::Run => "run",
        }
    }
}

/// [`register`] as `kind`.
pub async fn register_as(
    client: &Client,
    host: &str,
    pid: u32,
    lease: Duration,
    kind: Kind,
) -> Result<Daemon, PgError> {
    let pid = i32::try_from(pid).map_err(|_| PgError::Invalid {
        operation: "registering the daemon",
        what: format!("pid {pid} is out of range"),
    })?;
    let row = client
        .query_one(
            "INSERT INTO daemons (host, instance, pid, lease_until, kind)
             VALUES ($1, gen_random_uuid()::text, $2, now() + make_interval(secs => $3), $4)
             RETURNING epoch, instance",
            &[&host, &pid, &secs(lease), &kind.as_str()],
        )
        .await
        .map_err(sql("registering the daemon"))?;
    Ok(Daemon {
        epoch: row.get(0),
        host: host.to_string(),
        instance: row.get(1),
    })
}

/// What a heartbeat learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// The lease is renewed; the server's time, to measure this host's
    /// clock offset.
    Renewed { server_now: DateTime<Utc> },
    /// A peer declared this daemon dead (or it was stopped): it must stop
    /// claiming and register again.
    Fenced { reason: String },
}

/// Renews the lease, on condition that the epoch is still alive (not declared
/// dead, not stopped).
pub async fn heartbeat(client: &Client, me: &Daemon, lease: Duration) -> Result<Beat, PgError> {
    let row = client
        .query_opt(
            "UPDATE daemons SET last_beat = now(),
                    lease_until = now() + make_interval(secs => $2)
             WHERE epoch = $1 AND dead_at IS NULL AND stopped_at IS NULL
             RETURNING now()",
            &[&me.epoch, &secs(lease)],
        )
        .await
        .map_err(sql("renewing the daemon's lease"))?;
    match row {
        Some(row) => Ok(Beat::Renewed {
            server_now: row.get(0),
        }),
        None => Ok(Beat::Fenced {
            reason: fenced_reason(client, me.epoch).await?,
        }),
    }
}

/// Why an epoch is no longer alive, for the daemon's log.
pub(crate) async fn fenced_reason(
    client: &impl GenericClient,
    epoch: i64,
) -> Result<String, PgError> {
    let row = client
        .query_opt(
            "SELECT dead_reason, stopped_at IS NOT NULL, lease_until <= now()
             FROM daemons WHERE epoch = $1",
            &[&epoch],
        )
        .await
        .map_err(sql("reading why the daemon was fenced"))?;
    Ok(match row {
        None => format!("daemon epoch {epoch} is not registered"),
        Some(row) => match (row.get::<_, Option<String>>(0), row.get(1), row.get(2)) {
            (Some(reason), _, _) => reason,
            (None, true, _) => format!("daemon epoch {epoch} was stopped"),
            (None, false, true) => format!("daemon epoch {epoch}'s lease expired"),
            (None, false, false) => format!("daemon epoch {epoch} is alive"),
        },
    })
}

/// Marks a clean shutdown (its runs must have been finished first).
pub async fn stop(client: &Client, me: &Daemon) -> Result<(), PgError> {
    client
        .execute(
            "UPDATE daemons SET stopped_at = now() WHERE epoch = $1 AND stopped_at IS NULL",
            &[&me.epoch],
        )
        .await
        .map_err(sql("marking the daemon stopped"))?;
    Ok(())
}

/// What one expiry pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    /// The daemons declared dead: (epoch, host).
    pub daemons: Vec<(i64, String)>,
    /// How many of their runs were marked `abandoned`.
    pub abandoned: u64,
    /// Those runs, with where their command ran.
    pub runs: Vec<AbandonedRun>,
    /// The caller itself is no longer alive: it declared nobody dead.
    pub fenced: bool,
}

/// A run marked `abandoned` because its daemon was declared dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonedRun {
    pub run_id: i64,
    pub job: String,
    pub host: String,
    /// Its process group, if its command started.
    pub pid: Option<u32>,
    pub started_at: Option<DateTime<Utc>>,
}

/// Declares dead every daemon whose lease has expired by the server's clock,
/// and marks their `running` runs `abandoned` with the host and why, in one
/// transaction; only a live daemon may do it.
pub async fn expire(client: &mut Client, me: &Daemon) -> Result<Expired, PgError> {
    let tx = client
        .transaction()
        .await
        .map_err(sql("starting the lease expiry"))?;
    // No FOR SHARE here (unlike a claim): two peers expiring each other at
    // once would deadlock, and declaring an expired lease dead is right
    // whoever does it, even a daemon being fenced at that moment.
    let alive = tx
        .query_opt(
            &format!("SELECT 1 FROM daemons d WHERE d.epoch = $1 AND {ALIVE}"),
            &[&me.epoch],
        )
        .await
        .map_err(sql("checking the daemon's own lease"))?;
    if alive.is_none() {
        return Ok(Expired {
            fenced: true,
            ..Expired::default()
        });
    }
    let reason = format!(
        "lease expired; declared dead by {} (daemon epoch {})",
        me.host, me.epoch
    );
    let dead = tx
        .query(
            "UPDATE daemons SET dead_at = now(), dead_reason = $2
             WHERE lease_until <= now() AND dead_at IS NULL AND stopped_at IS NULL
               AND epoch <> $1
             RETURNING epoch, host",
            &[&me.epoch, &reason],
        )
        .await
        .map_err(sql("declaring dead daemons dead"))?;
    let daemons: Vec<(i64, String)> = dead.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut epochs: Vec<i64> = daemons.iter().map(|d| d.0).collect();
    // A daemon that recorded its stop with a run still `running` (it was
    // killed while stopping): once its lease has run out too, its runs are
    // resolved as a dead one's are.
    let stopped: Vec<i64> = tx
        .query(
            "SELECT DISTINCT d.epoch FROM daemons d JOIN runs r ON r.owner_epoch = d.epoch
             WHERE d.stopped_at IS NOT NULL AND d.lease_until <= now()
               AND r.status = 'running'",
            &[],
        )
        .await
        .map_err(sql("finding stopped daemons' running runs"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    epochs.extend(stopped);
    let runs: Vec<AbandonedRun> = tx
        .query(
            "UPDATE runs SET status = 'abandoned', finished_at = now(),
                    error = 'the daemon on ' || host || ' (epoch ' || owner_epoch
                            || ') lost its lease while the run was going: ' || $2
             WHERE owner_epoch = ANY($1) AND status = 'running'
             RETURNING id, job, host, pid, started_at",
            &[&epochs, &reason],
        )
        .await
        .map_err(sql("marking a dead daemon's runs abandoned"))?
        .iter()
        .map(|r| AbandonedRun {
            run_id: r.get(0),
            job: r.get(1),
            host: r.get(2),
            pid: r
                .get::<_, Option<i32>>(3)
                .and_then(|p| u32::try_from(p).ok()),
            started_at: r.get(4),
        })
        .collect();
    let abandoned = runs.len() as u64;
    tx.commit()
        .await
        .map_err(sql("committing the lease expiry"))?;
    Ok(Expired {
        daemons,
        abandoned,
        runs,
        fenced: false,
    })
}
