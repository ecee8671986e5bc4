//! Tests of the claim floors against a real server (issue 14, guarantee 10):
//! pruning raises a job's floor and never lowers it, deletes only the claims
//! whose run is gone, a claim racing a prune still loses a pruned tick, and
//! a renamed job carries its floor.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::claims::{self, Claimed};
use super::tests::{client, fleet, request, succeeded, tick, two_hosts};
use super::{history, names, runs, Daemon};
use crate::job::DerivedName;
use crate::store::Retention;

fn keep(keep_runs: u32) -> Retention {
    Retention {
        keep_days: 10_000,
        keep_runs,
    }
}

fn pruned() -> Claimed {
    Claimed::Lost {
        winner: claims::PRUNED.into(),
    }
}

/// Claims `job` at `minute`; finishes its run unless `running`.
async fn run(client: &mut Client, me: &Daemon, job: &str, minute: u32, running: bool) -> i64 {
    let Claimed::Run { run_id } = claims::claim(client, me, &request(job, tick(minute)))
        .await
        .unwrap()
    else {
        panic!("{job} at {minute} not claimed");
    };
    if !running {
        claims::finish(&*client, me, run_id, &succeeded())
            .await
            .unwrap();
    }
    run_id
}

async fn floor(client: &Client, job: &str) -> Option<DateTime<Utc>> {
    client
        .query_opt("SELECT tick FROM claim_floors WHERE job = $1", &[&job])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn claim_ticks(client: &Client, job: &str) -> Vec<DateTime<Utc>> {
    client
        .query(
            "SELECT tick FROM claims WHERE job = $1 ORDER BY tick",
            &[&job],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn pruning_raises_the_floor_only_and_deletes_only_claims_whose_run_is_gone() {
    let Some((_db, (mut a, da), _)) = two_hosts("floors", 1).await else {
        return;
    };
    run(&mut a, &da, "j", 0, true).await; // running: never pruned
    for minute in 1..5 {
        run(&mut a, &da, "j", minute, false).await;
    }
    assert_eq!(floor(&a, "j").await, None);
    // Keeps 4:00 (the newest) and 0:00 (running): 1:00 to 3:00 go.
    assert_eq!(history::prune(&mut a, keep(1)).await.unwrap(), 3);
    assert_eq!(floor(&a, "j").await, Some(tick(3)));
    assert_eq!(
        claim_ticks(&a, "j").await,
        [tick(0), tick(4)],
        "the claims of the kept runs stay, the pruned ones go"
    );
    for minute in 1..=3 {
        assert!(runs::tick_claimed(&a, "j", tick(minute)).await.unwrap());
        let again = claims::claim(&mut a, &da, &request("j", tick(minute))).await;
        assert_eq!(again.unwrap(), pruned(), "minute {minute}");
    }
    let mut retry = request("j", tick(2));
    retry.attempt = 2;
    assert_eq!(
        claims::claim(&mut a, &da, &retry).await.unwrap(),
        pruned(),
        "any attempt"
    );
    let missed = claims::record_missed(&mut a, &da, &request("j", tick(1)), "down")
        .await
        .unwrap();
    assert_eq!(missed, pruned(), "nor recorded missed");
    assert_eq!(
        claim_ticks(&a, "j").await,
        [tick(0), tick(4)],
        "a refused claim is withdrawn"
    );
    assert!(!runs::tick_claimed(&a, "j", tick(5)).await.unwrap());
    run(&mut a, &da, "j", 5, false).await;
    // Never lowered: "k" claims 9:00, then 6:00; pruning 9:00 sets the floor
    // to 9:00, and pruning 6:00 later leaves it there.
    run(&mut a, &da, "k", 9, false).await;
    run(&mut a, &da, "k", 6, false).await;
    history::prune(&mut a, keep(1)).await.unwrap();
    assert_eq!(floor(&a, "k").await, Some(tick(9)));
    assert_eq!(claim_ticks(&a, "k").await, [tick(6)]);
    assert_eq!(
        claims::claim(&mut a, &da, &request("k", tick(8)))
            .await
            .unwrap(),
        pruned(),
        "conservative: a tick never run at or before the floor"
    );
    run(&mut a, &da, "k", 10, false).await;
    history::prune(&mut a, keep(1)).await.unwrap();
    assert_eq!(floor(&a, "k").await, Some(tick(9)), "never lowered");
    assert_eq!(claim_ticks(&a, "k").await, [tick(10)]);
    assert_eq!(floor(&a, "j").await, Some(tick(4)));
}

/// Waits until another backend waits on a lock (the claim queued behind the
/// prune's uncommitted delete of its tick's claim).
async fn until_a_backend_waits_on_a_lock(observer: &Client) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the claim never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_racing_a_prune_of_its_tick_still_loses_it() {
    let Some((db, (mut a, da), (mut b, db_))) = two_hosts("floors race", 1).await else {
        return;
    };
    run(&mut a, &da, "j", 0, false).await;
    run(&mut a, &da, "j", 1, false).await;
    // The prune, held open after its delete of 0:00's claim.
    let tx = a.transaction().await.unwrap();
    let removed = tx
        .execute("DELETE FROM runs WHERE tick = $1", &[&tick(0)])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    tx.execute(
        "INSERT INTO claim_floors (job, tick) VALUES ('j', $1)",
        &[&tick(0)],
    )
    .await
    .unwrap();
    tx.execute(
        "DELETE FROM claims WHERE job = 'j' AND tick = $1",
        &[&tick(0)],
    )
    .await
    .unwrap();
    // A host claims 0:00 again (a clock stepped back): its insert waits for
    // the prune, and then no claim is in its way.
    let racer = tokio::spawn(async move {
        claims::claim(&mut b, &db_, &request("j", tick(0)))
            .await
            .unwrap()
    });
    until_a_backend_waits_on_a_lock(&client(&db).await).await;
    tx.commit().await.unwrap();
    assert_eq!(racer.await.unwrap(), pruned());
    assert_eq!(claim_ticks(&a, "j").await, [tick(1)]);
}

#[tokio::test]
async fn a_renamed_job_carries_its_floor_and_swapped_names_swap_floors() {
    let Some((_db, mut clients)) = fleet("floors rename", 1).await else {
        return;
    };
    let c = &mut clients[0];
    let named = |key: &str, name: &str| DerivedName {
        key: key.into(),
        name: name.into(),
    };
    let set = |job: &'static str, minute: u32| {
        format!(
            "INSERT INTO claim_floors VALUES ('{job}', '{}')",
            tick(minute).to_rfc3339()
        )
    };
    names::follow_names(c, &[named("k1", "a"), named("k2", "b")])
        .await
        .unwrap();
    for (job, minute) in [("a", 5), ("b", 2), ("c", 9)] {
        c.batch_execute(&set(job, minute)).await.unwrap();
    }
    names::follow_names(c, &[named("k1", "b"), named("k2", "a")])
        .await
        .unwrap();
    assert_eq!(floor(c, "b").await, Some(tick(5)));
    assert_eq!(floor(c, "a").await, Some(tick(2)));
    // Onto a name with a floor of its own ("c", a YAML job): the later.
    names::follow_names(c, &[named("k1", "c"), named("k2", "a")])
        .await
        .unwrap();
    assert_eq!(floor(c, "c").await, Some(tick(9)));
    assert_eq!(floor(c, "b").await, None, "the old name is free");
    names::follow_names(c, &[named("k1", "c"), named("k2", "d")])
        .await
        .unwrap();
    assert_eq!(floor(c, "d").await, Some(tick(2)));
    // Made at once: c takes d's floor, not the later of its own.
    names::follow_names(c, &[named("k1", "e"), named("k2", "c")])
        .await
        .unwrap();
    assert_eq!(floor(c, "c").await, Some(tick(2)));
    assert_eq!(floor(c, "e").await, Some(tick(9)));
}
