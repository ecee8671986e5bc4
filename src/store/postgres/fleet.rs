//! What `jobrun status` shows of the fleet: every daemon with its host, last
//! beat and state judged by the server's clock, and the jobs whose
//! definitions differ between live daemons (configuration drift).

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::daemons::ALIVE;
use super::{sql, PgError};

/// A daemon's state, by the server's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    Alive,
    /// Its lease ran out and no peer has declared it dead yet.
    Expired,
    /// Declared dead by a peer (fenced), and why.
    Dead {
        reason: String,
    },
    Stopped,
}

/// One daemon start of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub epoch: i64,
    pub host: String,
    pub instance: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub last_beat: DateTime<Utc>,
    pub state: MemberState,
    /// The host's clock minus the server's at its last heartbeat.
    pub clock_offset_ms: Option<i64>,
}

/// The daemons that are alive, or stopped or died within `recent_secs`.
pub async fn members(client: &Client, recent_secs: f64) -> Result<Vec<Member>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT d.epoch, d.host, d.instance, d.pid, d.started_at, d.last_beat,
                        d.stopped_at IS NOT NULL, d.dead_at IS NOT NULL, d.dead_reason,
                        {ALIVE}, d.clock_offset_ms
                 FROM daemons d
                 WHERE coalesce(d.stopped_at, d.dead_at, d.lease_until)
                       > now() - make_interval(secs => $1)
                   AND d.kind = 'daemon'
                 ORDER BY d.host, d.epoch"
            ),
            &[&recent_secs],
        )
        .await
        .map_err(sql("listing the fleet"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let state = match (r.get(6), r.get(7), r.get(9)) {
                (true, _, _) => MemberState::Stopped,
                (_, true, _) => MemberState::Dead {
                    reason: r.get::<_, Option<String>>(8).unwrap_or_default(),
                },
                (_, _, true) => MemberState::Alive,
                _ => MemberState::Expired,
            };
            Member {
                epoch: r.get(0),
                host: r.get(1),
                instance: r.get(2),
                pid: r.get(3),
                started_at: r.get(4),
                last_beat: r.get(5),
                state,
                clock_offset_ms: r.get(10),
            }
        })
        .collect())
}

/// A live daemon whose definition of a job differs from the fleet's (the
/// earliest live declaration), so its claims of that job are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub job: String,
    pub host: String,
    pub epoch: i64,
    pub fingerprint: String,
    pub fleet_host: String,
    pub fleet_fingerprint: String,
}

/// Every job whose live daemons declare different definitions.
pub async fn drift(client: &Client) -> Result<Vec<Drift>, PgError> {
    let rows = client
        .query(
            &format!(
                "WITH live AS (
                     SELECT f.job, f.fingerprint, f.declared_at, f.epoch, d.host
                     FROM definitions f JOIN daemons d ON d.epoch = f.epoch WHERE {ALIVE}
                 ), fleet AS (
                     SELECT DISTINCT ON (job) job, fingerprint, host
                     FROM live ORDER BY job, declared_at, epoch
                 )
                 SELECT l.job, l.host, l.epoch, l.fingerprint, f.host, f.fingerprint
                 FROM live l JOIN fleet f USING (job)
                 WHERE l.fingerprint <> f.fingerprint
                 ORDER BY l.job, l.host, l.epoch"
            ),
            &[],
        )
        .await
        .map_err(sql("comparing the fleet's job definitions"))?;
    Ok(rows
        .iter()
        .map(|r| Drift {
            job: r.get(0),
            host: r.get(1),
            epoch: r.get(2),
            fingerprint: r.get(3),
            fleet_host: r.get(4),
            fleet_fingerprint: r.get(5),
        })
        .collect())
}
