//! This process as a member of the fleet: its registration (a `daemons` row
//! with a fencing epoch), and the heartbeat task that renews its lease every
//! `--heartbeat`, measures its clock against the server's, declares dead the
//! peers whose lease ran out (their `running` runs `abandoned`), passes on
//! peers' requests to stop a run it holds (`replace`), and registers again
//! when a peer declared it dead (fenced).
//!
//! Self-fencing is [`Fence`]'s: claims stop once no beat was acknowledged
//! for `--fence`, which [`LeaseConfig::validate`](super::LeaseConfig::validate)
//! keeps safely below the lease, so a peer only ever takes over a daemon
//! that had stopped claiming.
//!
//! The task holds a weak handle: it ends when the store is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio_postgres::Client;
use tracing::{error, info, warn};

use super::daemons::{self, Beat};
use super::fence::{clock_offset, clock_warning, Fence};
use super::shared::Shared;
use super::{connect, replace, sql, Daemon, PgError};
use crate::job::RunId;

/// What this process knows of its membership.
pub(super) struct Member {
    /// Its registration; `None` before the first write, and after it was
    /// fenced until it registers again.
    pub me: Option<Daemon>,
    pub fence: Fence,
    /// The heartbeat task runs.
    pub beating: bool,
    /// The clock offset was warned about (said once, and again after it
    /// came back within bounds and went out again).
    pub offset_warned: bool,
    /// Drift already reported: (job, fingerprint).
    pub drift_reported: HashSet<(String, String)>,
    /// Stop requests already passed on.
    pub stops_passed: HashSet<i64>,
    /// The heartbeat's last error was logged (said once until it recovers).
    pub beat_failing: bool,
    /// Since when every beat was acknowledged within the fence deadline of
    /// the one before (from the registration). Peers are declared dead only
    /// after a whole lease of this: after an outage of the database every
    /// daemon's lease has run out, and the first one back must give its live
    /// peers a lease's time to renew before it resolves their runs.
    pub steady_since: Option<Instant>,
}

impl Member {
    pub fn new(fence: Fence) -> Self {
        Member {
            me: None,
            fence,
            beating: false,
            offset_warned: false,
            drift_reported: HashSet::new(),
            stops_passed: HashSet::new(),
            beat_failing: false,
            steady_since: None,
        }
    }
}

/// This process's registration: made now (on `client`) if there is none,
/// and the heartbeat task started with the first one.
pub(super) async fn registered(shared: &Arc<Shared>, client: &Client) -> Result<Daemon, PgError> {
    if let Some(me) = shared.member().me.clone() {
        return Ok(me);
    }
    if shared.is_closing() {
        // Stopped (or stopping): a registration now would never beat.
        return Err(PgError::Invalid {
            operation: "registering with the fleet",
            what: "this process has recorded its stop; it registers no more".into(),
        });
    }
    let sent = Instant::now();
    let me = daemons::register_as(
        client,
        &shared.host,
        shared.pid,
        shared.lease.lease,
        shared.kind,
    )
    .await?;
    let start_beats = {
        let mut member = shared.member();
        member.fence.acknowledged(sent);
        member.steady_since = Some(sent);
        member.me = Some(me.clone());
        !std::mem::replace(&mut member.beating, true)
    };
    info!(host = %me.host, epoch = me.epoch, "registered with the fleet's database");
    if start_beats {
        tokio::spawn(beat_loop(Arc::downgrade(shared)));
    }
    Ok(me)
}

async fn beat_loop(shared: Weak<Shared>) {
    let mut client: Option<Client> = None;
    loop {
        let every = match shared.upgrade() {
            Some(s) if !s.is_closing() => s.lease.heartbeat,
            _ => return,
        };
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.is_closing() {
            return;
        }
        if let Err(e) = beat(&shared, &mut client).await {
            client = None;
            let first = !std::mem::replace(&mut shared.member().beat_failing, true);
            if first {
                warn!(error = %e, deadline = ?shared.lease.fence,
                    "the fleet heartbeat failed; claiming stops once none is acknowledged for the fence deadline");
            }
        } else if std::mem::replace(&mut shared.member().beat_failing, false) {
            info!("the fleet heartbeat is acknowledged again");
        }
    }
}

/// One beat on the task's own connection: renew, measure, expire peers,
/// pass on stop requests.
async fn beat(shared: &Arc<Shared>, client: &mut Option<Client>) -> Result<(), PgError> {
    if client.as_ref().is_none_or(Client::is_closed) {
        *client = Some(connect::connect(&shared.config).await?);
    }
    let Some(c) = client.as_ref() else {
        return Ok(());
    };
    let Some(me) = shared.member().me.clone() else {
        return Ok(());
    };
    let sent = Instant::now();
    let wall_sent = (shared.wall)();
    match daemons::heartbeat(c, &me, shared.lease.lease).await? {
        Beat::Renewed { server_now } => {
            let offset = clock_offset(wall_sent, (shared.wall)(), server_now);
            let warning = clock_warning(&me.host, offset);
            let ms = offset.num_milliseconds();
            c.execute(
                "UPDATE daemons SET clock_offset_ms = $2 WHERE epoch = $1",
                &[&me.epoch, &ms],
            )
            .await
            .map_err(sql("recording the clock offset"))?;
            let mut member = shared.member();
            if !member.fence.may_claim(sent) {
                // A gap: the lease may have run out meanwhile, ours and our
                // peers'. Steady again from now.
                member.steady_since = Some(sent);
            }
            member.fence.acknowledged(sent);
            match warning {
                Some(w) if !member.offset_warned => {
                    member.offset_warned = true;
                    warn!(offset_ms = ms, "{w}");
                }
                None => member.offset_warned = false,
                Some(_) => {}
            }
        }
        Beat::Fenced { reason } => {
            {
                let mut member = shared.member();
                member.fence.fenced();
                member.me = None;
            }
            error!(epoch = me.epoch, %reason,
                "this daemon was fenced: a peer declared it dead, so its runs were resolved by the fleet and it claimed nothing since; registering again");
            // Not through `registered`: the heartbeat task is this one.
            let sent = Instant::now();
            let lease = shared.lease.lease;
            let again =
                daemons::register_as(c, &shared.host, shared.pid, lease, shared.kind).await?;
            {
                let mut member = shared.member();
                member.fence.acknowledged(sent);
                member.steady_since = Some(sent);
                member.me = Some(again.clone());
            }
            info!(epoch = again.epoch, "registered again after being fenced");
            return Ok(());
        }
    }
    let steady = shared
        .member()
        .steady_since
        .is_some_and(|since| sent.duration_since(since) >= shared.lease.lease);
    if !steady {
        return pass_stop_requests(shared, client_mut(client)?, &me).await;
    }
    let expired = daemons::expire(client_mut(client)?, &me).await?;
    for (epoch, host) in &expired.daemons {
        warn!(peer = %host, peer_epoch = epoch, abandoned = expired.abandoned,
            "declared dead a peer whose lease ran out; its running runs are marked abandoned");
    }
    // A run of this host whose command may still go on, unsupervised (its
    // daemon was killed): the handler stops it if it is provably the run's.
    if let Some(handler) = shared.orphan_handler() {
        for run in expired.runs.iter().filter(|r| r.host == shared.host) {
            handler(run);
        }
    }
    pass_stop_requests(shared, client_mut(client)?, &me).await
}

fn client_mut(client: &mut Option<Client>) -> Result<&mut Client, PgError> {
    client.as_mut().ok_or(PgError::Invalid {
        operation: "the fleet heartbeat",
        what: "no connection".into(),
    })
}

/// Hands each new request to stop one of this daemon's runs (a peer's
/// `replace`) to the stop handler, once.
async fn pass_stop_requests(
    shared: &Arc<Shared>,
    client: &Client,
    me: &Daemon,
) -> Result<(), PgError> {
    let requests = replace::stop_requests(client, me).await?;
    let Some(handler) = shared.stop_handler() else {
        return Ok(());
    };
    for request in requests {
        if shared.member().stops_passed.insert(request.run_id) {
            info!(job = %request.job, run_id = request.run_id, by = %request.host,
                "a peer replaces this run (concurrency: replace); stopping it");
            handler(RunId(request.run_id));
        }
    }
    Ok(())
}
