//! Tests of the PostgreSQL state against a real server (see [`super::testdb`]):
//! hosts are clients with host ids of their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::Client;

use super::claims::{self, ClaimRequest, Claimed, Finished, Outcome};
use super::daemons::{self, Beat};
use super::fleet::{self, MemberState};
use super::testdb::{Cluster, TestDb};
use super::{connect, migrate, Daemon, LeaseConfig, PgError};
use super::{history, replace};
use crate::job::{RunStatus, Trigger};
use crate::store::{HistoryFilter, Retention};

const LEASE: Duration = Duration::from_secs(30);

/// A client of the test database, configured from its URL as `--database`
/// will be.
pub(super) async fn client(db: &TestDb) -> Client {
    connect::connect(&connect::config(&db.url).unwrap())
        .await
        .unwrap()
}

/// A migrated database and `n` connected clients.
pub(super) async fn fleet(test: &str, n: usize) -> Option<(TestDb, Vec<Client>)> {
    let db = TestDb::create(test)?;
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(client(&db).await);
    }
    migrate::migrate(&mut clients[0]).await.unwrap();
    Some((db, clients))
}

/// Two hosts on a fresh database, each a connection and its registration
/// (`host-a` first, then `host-b`, with `pid`).
pub(super) async fn two_hosts(
    test: &str,
    pid: u32,
) -> Option<(TestDb, (Client, Daemon), (Client, Daemon))> {
    let (db, mut clients) = fleet(test, 2).await?;
    let b = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    let da = daemons::register(&a, "host-a", pid, LEASE).await.unwrap();
    let db_ = daemons::register(&b, "host-b", pid, LEASE).await.unwrap();
    Some((db, (a, da), (b, db_)))
}

pub(super) fn tick(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, minute, 0).unwrap()
}

pub(super) fn request(job: &str, tick: DateTime<Utc>) -> ClaimRequest<'_> {
    ClaimRequest {
        job,
        tick: Some(tick),
        attempt: 1,
        trigger: Trigger::Schedule,
        parent_id: None,
        fingerprint: "fp-1",
        forbid: false,
    }
}

pub(super) fn succeeded() -> Outcome<'static> {
    Outcome {
        status: RunStatus::Succeeded,
        duration_ms: Some(5),
        exit_code: Some(0),
        signal: None,
        output_bytes: 2,
        output_tail: b"ok",
        error: None,
    }
}

/// Makes a daemon's lease end now, as a pause past its lease would.
async fn expire_lease(client: &Client, d: &Daemon) {
    client
        .execute(
            "UPDATE daemons SET lease_until = now() - interval '1 second' WHERE epoch = $1",
            &[&d.epoch],
        )
        .await
        .unwrap();
}

async fn status_of(client: &Client, run_id: i64) -> String {
    client
        .query_one("SELECT status FROM runs WHERE id = $1", &[&run_id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_racing_for_the_same_ticks_win_each_exactly_once() {
    let Some((db, mut clients)) = fleet("claim race", 2).await else {
        return;
    };
    let b = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    let da = daemons::register(&a, "host-a", 1, LEASE).await.unwrap();
    let db_ = daemons::register(&b, "host-b", 1, LEASE).await.unwrap();
    assert_ne!(da.epoch, db_.epoch);
    const TICKS: u32 = 100;
    let started = Instant::now();
    // Both hosts claim each tick at the same moment.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let race = |mut client: Client, me: Daemon| {
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            let mut won = Vec::new();
            let mut lost = 0;
            for i in 0..TICKS {
                barrier.wait().await;
                let t = tick(0) + chrono::Duration::minutes(i64::from(i));
                match claims::claim(&mut client, &me, &request("backup", t))
                    .await
                    .unwrap()
                {
                    Claimed::Run { run_id } => won.push((i, run_id)),
                    Claimed::Lost { winner } => {
                        assert!(winner.contains("host-") && !winner.contains(&me.host));
                        lost += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (won, lost, client)
        })
    };
    let (ra, rb) = tokio::join!(race(a, da), race(b, db_));
    let ((won_a, lost_a, a), (won_b, lost_b, _b)) = (ra.unwrap(), rb.unwrap());
    assert_eq!(lost_a + lost_b, TICKS, "each tick lost by exactly one host");
    let elapsed = started.elapsed();
    let mut ticks: Vec<u32> = won_a.iter().chain(&won_b).map(|w| w.0).collect();
    ticks.sort_unstable();
    assert_eq!(
        ticks,
        (0..TICKS).collect::<Vec<_>>(),
        "each tick won exactly once"
    );
    let rows: i64 = a
        .query_one("SELECT count(*) FROM runs WHERE job = 'backup'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, i64::from(TICKS));
    eprintln!(
        "claim race: {} claims by 2 hosts in {elapsed:?} ({:.0} claim attempts/s); a won {}, b won {}",
        2 * TICKS,
        f64::from(2 * TICKS) / elapsed.as_secs_f64(),
        won_a.len(),
        won_b.len()
    );
    drop(db);
}

#[tokio::test]
async fn a_fenced_daemon_cannot_beat_claim_start_or_finish_and_its_run_is_abandoned_once() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("fencing", 7).await else {
        return;
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("report", tick(1)))
        .await
        .unwrap()
    else {
        panic!("a should win");
    };
    assert_eq!(
        claims::start(&a, &da, run_id, Some(4242)).await.unwrap(),
        Finished::Recorded
    );
    // a pauses past its lease; b declares it dead.
    expire_lease(&b, &da).await;
    // Until a peer acts, a's lease having run out refuses new starts...
    assert!(matches!(
        claims::start(&a, &da, run_id, Some(4243)).await.unwrap(),
        Finished::NotRunning { .. } | Finished::Fenced { .. }
    ));
    let expired = daemons::expire(&mut b, &db_).await.unwrap();
    assert_eq!(expired.daemons, vec![(da.epoch, "host-a".to_string())]);
    assert_eq!(expired.abandoned, 1);
    assert_eq!(status_of(&b, run_id).await, "abandoned");
    let error: String = b
        .query_one("SELECT error FROM runs WHERE id = $1", &[&run_id])
        .await
        .unwrap()
        .get(0);
    assert!(
        error.contains("host-a") && error.contains("declared dead by host-b"),
        "{error}"
    );
    // a wakes up: every write is refused, and it knows why.
    match claims::finish(&a, &da, run_id, &succeeded()).await.unwrap() {
        Finished::Fenced { reason } => assert!(reason.contains("host-b"), "{reason}"),
        other => panic!("finish of a fenced daemon: {other:?}"),
    }
    assert_eq!(status_of(&b, run_id).await, "abandoned");
    assert!(matches!(
        daemons::heartbeat(&a, &da, LEASE).await.unwrap(),
        Beat::Fenced { .. }
    ));
    assert!(matches!(
        claims::claim(&mut a, &da, &request("report", tick(2)))
            .await
            .unwrap(),
        Claimed::Fenced { .. }
    ));
    assert!(daemons::expire(&mut a, &da).await.unwrap().fenced);
    // It registers again with a new epoch and may claim again; b's beat is fine.
    let da2 = daemons::register(&a, "host-a", 7, LEASE).await.unwrap();
    assert!(da2.epoch > da.epoch && da2.instance != da.instance);
    assert!(matches!(
        claims::claim(&mut a, &da2, &request("report", tick(2)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
    assert!(matches!(
        daemons::heartbeat(&b, &db_, LEASE).await.unwrap(),
        Beat::Renewed { .. }
    ));
}

#[tokio::test]
async fn a_run_is_finished_exactly_once_and_only_by_its_owner() {
    let Some((_db, (mut a, da), (b, db_))) = two_hosts("finish once", 1).await else {
        return;
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("j", tick(3)))
        .await
        .unwrap()
    else {
        panic!("a should win");
    };
    // Not b's run.
    assert!(matches!(
        claims::finish(&b, &db_, run_id, &succeeded()).await.unwrap(),
        Finished::NotRunning { status } if status.contains("owned by epoch")
    ));
    assert_eq!(
        claims::finish(&a, &da, run_id, &succeeded()).await.unwrap(),
        Finished::Recorded
    );
    let failed = Outcome {
        status: RunStatus::Failed,
        ..succeeded()
    };
    assert_eq!(
        claims::finish(&a, &da, run_id, &failed).await.unwrap(),
        Finished::NotRunning {
            status: "succeeded".into()
        }
    );
    assert_eq!(status_of(&a, run_id).await, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_holds_across_hosts_and_a_held_tick_is_skipped_once() {
    let Some((_db, mut clients)) = fleet("forbid", 3).await else {
        return;
    };
    let c = clients.pop().unwrap();
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    let da = daemons::register(&a, "host-a", 1, LEASE).await.unwrap();
    let db_ = daemons::register(&b, "host-b", 1, LEASE).await.unwrap();
    let forbid = |t| ClaimRequest {
        forbid: true,
        ..request("sync", t)
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &forbid(tick(0))).await.unwrap()
    else {
        panic!("first run");
    };
    // The next tick, claimed by both hosts at once while a's run goes on.
    let next = forbid(tick(1));
    let (rb, ra) = tokio::join!(
        claims::claim(&mut b, &db_, &next),
        claims::claim(&mut a, &da, &next)
    );
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let skipped: Vec<_> = outcomes
        .iter()
        .filter(
            |o| matches!(o, Claimed::Skipped { running_on, .. } if running_on.contains("host-a")),
        )
        .collect();
    assert_eq!(skipped.len(), 1, "{outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Claimed::Lost { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    let counts: (i64, i64) = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'running'),
                    count(*) FILTER (WHERE status = 'skipped') FROM runs WHERE job = 'sync'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(counts, (1, 1));
    // Once it finished, the next tick runs, on whichever host claims it.
    claims::finish(&a, &da, run_id, &succeeded()).await.unwrap();
    assert!(matches!(
        claims::claim(&mut b, &db_, &forbid(tick(2))).await.unwrap(),
        Claimed::Run { .. }
    ));
    // A job without forbid runs beside itself.
    assert!(matches!(
        claims::claim(&mut a, &da, &request("sync-free", tick(3)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
    assert!(matches!(
        claims::claim(&mut b, &db_, &request("sync-free", tick(4)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
}

#[tokio::test]
async fn expiry_uses_the_server_clock_and_spares_live_and_stopped_daemons() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("expiry", 1).await else {
        return;
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("x", tick(5)))
        .await
        .unwrap()
    else {
        panic!();
    };
    // Nobody's lease has expired: nothing happens.
    assert_eq!(
        daemons::expire(&mut b, &db_).await.unwrap(),
        Default::default()
    );
    assert_eq!(status_of(&b, run_id).await, "running");
    // A stopped daemon is not declared dead.
    let dc = daemons::register(&b, "host-c", 1, LEASE).await.unwrap();
    daemons::stop(&b, &dc).await.unwrap();
    expire_lease(&b, &dc).await;
    // A short real lease (by the server's clock) runs out.
    let Beat::Renewed { server_now } = daemons::heartbeat(&a, &da, Duration::from_millis(200))
        .await
        .unwrap()
    else {
        panic!();
    };
    assert!(server_now.timestamp() > 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = daemons::expire(&mut b, &db_).await.unwrap();
    assert_eq!(expired.daemons, vec![(da.epoch, "host-a".to_string())]);
    assert_eq!(expired.abandoned, 1);
    assert_eq!(status_of(&b, run_id).await, "abandoned");
    // `status` shows each daemon's state by the server's clock.
    let states: Vec<(String, MemberState)> = fleet::members(&b, 3600.0)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.host, m.state))
        .collect();
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(states.contains(&("host-b".into(), MemberState::Alive)));
    assert!(states.contains(&("host-c".into(), MemberState::Stopped)));
    assert!(states.iter().any(|(h, s)| h == "host-a"
        && matches!(s, MemberState::Dead { reason } if reason.contains("host-b"))));
    // Done once: a second pass finds nothing.
    assert_eq!(
        daemons::expire(&mut b, &db_).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn a_claim_with_another_definition_than_the_fleets_is_refused_and_reported() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("drift", 1).await else {
        return;
    };
    assert!(matches!(
        claims::claim(&mut a, &da, &request("etl", tick(0)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
    let drifted = ClaimRequest {
        fingerprint: "fp-2",
        ..request("etl", tick(1))
    };
    assert_eq!(
        claims::claim(&mut b, &db_, &drifted).await.unwrap(),
        Claimed::Drift {
            peer_host: "host-a".into(),
            peer_fingerprint: "fp-1".into()
        }
    );
    // `status` names it.
    let drift = fleet::drift(&a).await.unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        (
            drift[0].job.as_str(),
            drift[0].host.as_str(),
            drift[0].fleet_host.as_str()
        ),
        ("etl", "host-b", "host-a")
    );
    // The refused claim took nothing: a, with the fleet's definition, claims it.
    assert!(matches!(
        claims::claim(&mut a, &da, &request("etl", tick(1)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
    // When a (the old definition) stops, b's definition is the fleet's.
    daemons::stop(&a, &da).await.unwrap();
    assert!(matches!(
        claims::claim(
            &mut b,
            &db_,
            &ClaimRequest {
                tick: Some(tick(2)),
                ..drifted
            }
        )
        .await
        .unwrap(),
        Claimed::Run { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_migrate_once() {
    let Some(db) = TestDb::create("concurrent migrations") else {
        return;
    };
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let db = Arc::clone(&db);
        tasks.push(tokio::spawn(async move {
            let mut c = client(&db).await;
            migrate::migrate(&mut c).await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    let expected: Vec<i64> = (1..=migrate::LATEST_VERSION).collect();
    applied.sort_unstable();
    assert_eq!(
        applied, expected,
        "each version applied by exactly one start"
    );
    let c = client(&db).await;
    assert_eq!(migrate::version(&c).await.unwrap(), migrate::LATEST_VERSION);
}

#[tokio::test]
async fn an_older_jobrun_refuses_a_newer_schema_and_changes_nothing() {
    let Some(db) = TestDb::create("newer schema") else {
        return;
    };
    let mut c = client(&db).await;
    assert_eq!(migrate::version(&c).await.unwrap(), 0);
    migrate::migrate(&mut c).await.unwrap();
    let newer = migrate::LATEST_VERSION + 1;
    c.execute(
        "INSERT INTO jobrun_migrations (version) VALUES ($1)",
        &[&newer],
    )
    .await
    .unwrap();
    let err = migrate::migrate(&mut c).await.unwrap_err();
    assert!(
        matches!(err, PgError::TooNew { found, known } if found == newer && known == migrate::LATEST_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade jobrun"), "{err}");
    assert_eq!(migrate::version(&c).await.unwrap(), newer);
}

#[test]
fn the_fence_deadline_must_stay_below_the_lease() {
    assert_eq!(LeaseConfig::default().validate(), Ok(()));
    let tight = LeaseConfig {
        fence: Duration::from_secs(28),
        ..LeaseConfig::default()
    };
    let e = tight.validate().unwrap_err();
    assert!(e.contains("below the lease"), "{e}");
    let slow_beat = LeaseConfig {
        heartbeat: Duration::from_secs(20),
        ..LeaseConfig::default()
    };
    assert!(slow_beat.validate().unwrap_err().contains("heartbeat"));
}

#[test]
fn the_test_database_url_names_the_test_database() {
    use super::testdb::database_url;
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        database_url("postgres://u@h?sslmode=disable", "t1"),
        "postgres://u@h/t1?sslmode=disable"
    );
    assert_eq!(
        database_url("host=h user=u", "t1"),
        "host=h user=u dbname=t1"
    );
}

#[tokio::test]
async fn each_test_database_is_new_and_dropped_at_the_end() {
    let Some(db) = TestDb::create("test database") else {
        return;
    };
    let admin = connect::connect(&db.admin_config()).await.unwrap();
    let exists = |name: String| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let name = db.name().to_string();
    assert_eq!(exists(name.clone()).await, 1);
    let c = client(&db).await;
    assert_eq!(migrate::version(&c).await.unwrap(), 0, "empty");
    drop(c);
    drop(db);
    assert_eq!(exists(name).await, 0);
}

#[tokio::test]
async fn a_missed_tick_is_recorded_once_and_never_over_a_tick_a_peer_ran() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("missed", 1).await else {
        return;
    };
    // a ran tick 0; b, back from an outage, must not call it missed.
    assert!(matches!(
        claims::claim(&mut a, &da, &request("m", tick(0)))
            .await
            .unwrap(),
        Claimed::Run { .. }
    ));
    let reason = "the database was unreachable";
    assert!(matches!(
        claims::record_missed(&mut b, &db_, &request("m", tick(0)), reason).await.unwrap(),
        Claimed::Lost { winner } if winner.contains("host-a")
    ));
    // Nobody ran tick 1: recorded missed once, by whichever host comes first.
    let Claimed::Recorded { run_id } =
        claims::record_missed(&mut b, &db_, &request("m", tick(1)), reason)
            .await
            .unwrap()
    else {
        panic!("b records it");
    };
    assert!(matches!(
        claims::record_missed(&mut a, &da, &request("m", tick(1)), reason)
            .await
            .unwrap(),
        Claimed::Lost { .. }
    ));
    assert!(matches!(
        claims::claim(&mut a, &da, &request("m", tick(1)))
            .await
            .unwrap(),
        Claimed::Lost { .. }
    ));
    let (status, error): (String, String) = a
        .query_one("SELECT status, error FROM runs WHERE id = $1", &[&run_id])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((status.as_str(), error.as_str()), ("missed", reason));
}

#[tokio::test]
async fn runs_without_a_tick_are_recorded_and_forbid_still_holds() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("untimed", 1).await else {
        return;
    };
    let manual = ClaimRequest {
        tick: None,
        trigger: Trigger::Manual,
        forbid: true,
        ..request("deploy", tick(0))
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &manual).await.unwrap() else {
        panic!("a manual run");
    };
    assert!(matches!(
        claims::claim(&mut b, &db_, &manual).await.unwrap(),
        Claimed::Skipped { running_on, .. } if running_on.contains("host-a")
    ));
    claims::finish(&a, &da, run_id, &succeeded()).await.unwrap();
    assert!(matches!(
        claims::claim(&mut b, &db_, &manual).await.unwrap(),
        Claimed::Run { .. }
    ));
    let claims_rows: i64 = a
        .query_one("SELECT count(*) FROM claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims_rows, 0, "a run without a tick claims no key");
}

#[tokio::test]
async fn an_outcome_is_kept_when_the_lease_ran_out_but_no_peer_acted_yet() {
    let Some((_db, mut clients)) = fleet("late finish", 1).await else {
        return;
    };
    let mut a = clients.pop().unwrap();
    let da = daemons::register(&a, "host-a", 1, LEASE).await.unwrap();
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("slow", tick(9)))
        .await
        .unwrap()
    else {
        panic!();
    };
    expire_lease(&a, &da).await;
    // No new claim while the lease is out...
    assert!(matches!(
        claims::claim(&mut a, &da, &request("slow", tick(10))).await.unwrap(),
        Claimed::Fenced { reason } if reason.contains("lease expired")
    ));
    // ...but the run's outcome is recorded, once.
    assert_eq!(
        claims::finish(&a, &da, run_id, &succeeded()).await.unwrap(),
        Finished::Recorded
    );
    assert_eq!(status_of(&a, run_id).await, "succeeded");
}

#[tokio::test]
async fn history_shows_every_hosts_runs_and_pruning_keeps_the_ticks_claimed() {
    let Some((_db, (mut a, da), (mut b, db_))) = two_hosts("history", 1).await else {
        return;
    };
    for minute in 0..4 {
        let (client, me) = if minute % 2 == 0 {
            (&mut a, &da)
        } else {
            (&mut b, &db_)
        };
        let Claimed::Run { run_id } = claims::claim(client, me, &request("h", tick(minute)))
            .await
            .unwrap()
        else {
            panic!();
        };
        claims::finish(client, me, run_id, &succeeded())
            .await
            .unwrap();
    }
    let all = history::history(&a, &HistoryFilter::default())
        .await
        .unwrap();
    let hosts: Vec<&str> = all.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(
        hosts,
        ["host-b", "host-a", "host-b", "host-a"],
        "newest first"
    );
    assert_eq!(all[0].tick, Some(tick(3)));
    assert_eq!(all[0].status, RunStatus::Succeeded);
    assert_eq!(all[0].output_bytes, 2);
    let limited = HistoryFilter {
        job: Some("h".into()),
        status: Some(RunStatus::Succeeded),
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(history::history(&a, &limited).await.unwrap().len(), 1);
    // Keep one run: three are removed with their claims, and the job's
    // claim floor keeps every pruned tick claimed.
    let removed = history::prune(
        &mut a,
        Retention {
            keep_days: 90,
            keep_runs: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(removed, 3);
    assert_eq!(
        claims::claim(&mut b, &db_, &request("h", tick(0)))
            .await
            .unwrap(),
        Claimed::Lost {
            winner: claims::PRUNED.into()
        }
    );
    let claims_left: i64 = a
        .query_one("SELECT count(*) FROM claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims_left, 1, "only the kept run's claim");
}

#[tokio::test]
async fn replace_asks_the_holder_on_another_host_to_stop_its_run() {
    let Some((_db, (mut a, da), (b, db_))) = two_hosts("replace", 1).await else {
        return;
    };
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("r", tick(0)))
        .await
        .unwrap()
    else {
        panic!();
    };
    assert!(replace::stop_requests(&a, &da).await.unwrap().is_empty());
    let asked = replace::request_stop(&b, &db_, "r").await.unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].run_id, asked[0].host.as_str()),
        (run_id, "host-a")
    );
    // Asked once: a second request finds nothing new.
    assert!(replace::request_stop(&b, &db_, "r")
        .await
        .unwrap()
        .is_empty());
    let mine = replace::stop_requests(&a, &da).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].run_id, mine[0].host.as_str()), (run_id, "host-b"));
    let killed = Outcome {
        status: RunStatus::Killed,
        ..succeeded()
    };
    claims::finish(&a, &da, run_id, &killed).await.unwrap();
    assert!(replace::stop_requests(&a, &da).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_terminated_connection_fails_the_next_statement_instead_of_hanging() {
    let Some((db, mut clients)) = fleet("terminated", 2).await else {
        return;
    };
    let admin = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    let da = daemons::register(&a, "host-a", 1, LEASE).await.unwrap();
    let pid: i32 = a
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let started = Instant::now();
    let beat = tokio::time::timeout(Duration::from_secs(10), daemons::heartbeat(&a, &da, LEASE))
        .await
        .expect("an error, not a hang");
    assert!(beat.is_err(), "{beat:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A new connection carries on with the same epoch.
    let again = client(&db).await;
    assert!(matches!(
        daemons::heartbeat(&again, &da, LEASE).await.unwrap(),
        Beat::Renewed { .. }
    ));
}

#[tokio::test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
async fn a_committed_claim_survives_an_immediate_server_restart() {
    let Some(cluster) = Cluster::start("server restart") else {
        return;
    };
    let config = connect::config(&cluster.url()).unwrap();
    let mut a = connect::connect(&config).await.unwrap();
    migrate::migrate(&mut a).await.unwrap();
    let da = daemons::register(&a, "host-a", 1, LEASE).await.unwrap();
    let Claimed::Run { run_id } = claims::claim(&mut a, &da, &request("r", tick(0)))
        .await
        .unwrap()
    else {
        panic!();
    };
    // The server crashes and comes back (immediate: no clean shutdown).
    cluster.pg_ctl("restart");
    assert!(
        daemons::heartbeat(&a, &da, LEASE).await.is_err(),
        "the old connection is gone"
    );
    let mut a = connect::connect(&config).await.unwrap();
    // The claim was committed before the command would have started: still
    // there, still this daemon's, and the tick cannot be claimed again.
    assert!(matches!(
        claims::claim(&mut a, &da, &request("r", tick(0))).await.unwrap(),
        Claimed::Lost { winner } if winner.contains("host-a")
    ));
    assert_eq!(
        claims::finish(&a, &da, run_id, &succeeded()).await.unwrap(),
        Finished::Recorded
    );
}

/// Two hosts claiming one tick's jobs at once, each batch in one transaction
/// as the recorder writes it, but queued in opposite orders (two daemons'
/// firings reach their recorders in any order): every batch commits (none
/// deadlocks with the other: a deadlock cost `deadlock_timeout`, 1 s, and the
/// batch again one claim at a time), each key is won by exactly one host, and
/// each answer is the caller's own claim's.
#[test]
fn two_hosts_claiming_a_tick_in_opposite_orders_do_not_deadlock() {
    use crate::store::{NewRun, PostgresStore, Store};
    let Some(db) = TestDb::create("claims in opposite orders") else {
        return;
    };
    let open = |host: &str| {
        Store::Postgres(
            PostgresStore::open(super::Membership {
                url: db.url.clone(),
                host: host.into(),
                lease: LeaseConfig::default(),
                wall: Arc::new(|| tick(0)),
                kind: super::daemons::Kind::Daemon,
            })
            .unwrap(),
        )
    };
    let (a, b) = (open("host-a"), open("host-b"));
    const JOBS: usize = 40;
    for round in 0..5 {
        let t = tick(round);
        let runs: Vec<NewRun> = (0..JOBS)
            .map(|i| NewRun {
                job: format!("job{i:02}"),
                trigger: Trigger::Schedule,
                tick: Some(t),
                status: RunStatus::Running,
                at: t,
                host: "h".into(),
                owner: "h:1:x".into(),
                error: None,
                parent_id: None,
                attempt: 1,
            })
            .collect();
        let reversed: Vec<NewRun> = runs.iter().rev().cloned().collect();
        let barrier = std::sync::Barrier::new(2);
        let claim = |store: &Store, runs: &[NewRun]| {
            barrier.wait();
            store.claim_and_start_many(runs, &[])
        };
        let (won_a, won_b) = std::thread::scope(|s| {
            let ha = s.spawn(|| claim(&a, &runs));
            let hb = s.spawn(|| claim(&b, &reversed));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let won_a = won_a.expect("host a's batch commits");
        let won_b = won_b.expect("host b's batch commits");
        for i in 0..JOBS {
            let (by_a, by_b) = (won_a[i], won_b[JOBS - 1 - i]);
            assert!(
                by_a.is_some() != by_b.is_some(),
                "{}: won by a {by_a:?}, by b {by_b:?}",
                runs[i].job
            );
            let id = by_a.or(by_b).unwrap();
            assert_eq!(a.get(id).unwrap().unwrap().job, runs[i].job);
        }
    }
}
