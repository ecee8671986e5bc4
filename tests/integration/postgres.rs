//! The PostgreSQL state (issue 14) through the library's public API, against a
//! real server: the test database helper is shared with the lib's tests.
//! The daemon scenarios (`--database`, several `--host-id`s) come with the
//! wiring into the store seam.

// Also the fleet scenarios' (fleet.rs, pg_cluster.rs): one copy in the binary.
#[path = "../../src/store/postgres/testdb.rs"]
#[allow(dead_code)]
pub(crate) mod testdb;

use chrono::{TimeZone, Utc};
use jobrun::job::Trigger;
use jobrun::store::postgres::claims::{self, ClaimRequest, Claimed};
use jobrun::store::postgres::{connect, daemons, migrate};
use std::time::Duration;
use testdb::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_on_one_database_start_each_tick_once() {
    let Some(db) = TestDb::create("postgres three hosts") else {
        return;
    };
    let config = connect::config(&db.url).unwrap();
    let mut hosts = Vec::new();
    for name in ["replica-1", "replica-2", "replica-3"] {
        let mut client = connect::connect(&config).await.unwrap();
        // Every replica migrates at its first start; one of them does it.
        migrate::migrate(&mut client).await.unwrap();
        let me = daemons::register(&client, name, 1, Duration::from_secs(30))
            .await
            .unwrap();
        hosts.push((client, me));
    }
    let mut tasks = Vec::new();
    for (mut client, me) in hosts {
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for minute in 0..30 {
                let req = ClaimRequest {
                    job: "backup",
                    tick: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap()),
                    attempt: 1,
                    trigger: Trigger::Schedule,
                    parent_id: None,
                    fingerprint: "same everywhere",
                    forbid: false,
                };
                match claims::claim(&mut client, &me, &req).await.unwrap() {
                    Claimed::Run { .. } => won += 1,
                    Claimed::Lost { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
            won
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 30, "30 ticks, each started by exactly one replica");
}
