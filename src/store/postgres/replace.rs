//! `concurrency: replace` across hosts (issue 14, guarantee 7): the request
//! to stop a running run travels through the database to whichever daemon
//! holds it. The holder reads its requests (at each heartbeat, or sooner) and
//! stops the run; if the holder is dead, its lease is gone and a live peer's
//! expiry has already marked the run `abandoned`, so there is nothing to stop.

use tokio_postgres::Client;

use super::daemons::ALIVE;
use super::{sql, Daemon, PgError};

/// A running run asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub run_id: i64,
    pub job: String,
    /// The host of the daemon that holds the run (for the requester) or that
    /// asked (for the holder).
    pub host: String,
}

/// Asks every running run of `job`, on any host, to stop; returns the runs
/// asked (with their holders' hosts). Only a live daemon may ask.
pub async fn request_stop(
    client: &Client,
    me: &Daemon,
    job: &str,
) -> Result<Vec<StopRequest>, PgError> {
    let rows = client
        .query(
            &format!(
                "UPDATE runs SET stop_requested_at = now(), stop_requested_by = $3
                 WHERE job = $1 AND status = 'running' AND stop_requested_at IS NULL
                   AND EXISTS (SELECT 1 FROM daemons d WHERE d.epoch = $2 AND {ALIVE})
                 RETURNING id, job, host"
            ),
            &[&job, &me.epoch, &me.host],
        )
        .await
        .map_err(sql("asking a running run to stop"))?;
    Ok(rows
        .iter()
        .map(|r| StopRequest {
            run_id: r.get(0),
            job: r.get(1),
            host: r.get(2),
        })
        .collect())
}

/// The runs this daemon holds that a peer asked to stop.
pub async fn stop_requests(client: &Client, me: &Daemon) -> Result<Vec<StopRequest>, PgError> {
    let rows = client
        .query(
            "SELECT id, job, stop_requested_by FROM runs
             WHERE owner_epoch = $1 AND status = 'running' AND stop_requested_at IS NOT NULL
             ORDER BY id",
            &[&me.epoch],
        )
        .await
        .map_err(sql("reading requests to stop runs"))?;
    Ok(rows
        .iter()
        .map(|r| StopRequest {
            run_id: r.get(0),
            job: r.get(1),
            host: r.get::<_, Option<String>>(2).unwrap_or_default(),
        })
        .collect())
}
