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

/// A test tree whose every command uses the test database (`JOBRUN_DATABASE_URL`).
fn on_database(db: &TestDb, jobs: &str) -> crate::harness::Test {
    crate::harness::Test::new()
        .env("JOBRUN_DATABASE_URL", &db.url)
        .env("JOBRUN_HOST_ID", "cli-host")
        .file("jobs.yaml", jobs)
}

#[test]
fn every_history_command_works_with_database_as_with_a_state_dir() {
    let Some(db) = TestDb::create("postgres cli parity") else {
        return;
    };
    let t = on_database(
        &db,
        "jobs:\n  - {name: hello, command: 'echo hello from the fleet', schedule: '@daily'}\n  \
         - {name: broken, command: 'echo oops >&2; exit 3', schedule: '@daily'}\n",
    );
    // Read-only commands create nothing in a database jobrun never used.
    t.run_args(["-c", "jobs.yaml", "history"])
        .expect_code(0)
        .stdout
        .contains("no runs recorded in PostgreSQL");
    let out = t
        .run_args(["-c", "jobs.yaml", "run", "hello"])
        .expect_code(0);
    assert!(
        out.stdout.contains("hello from the fleet"),
        "{}",
        out.stdout
    );
    t.run_args(["-c", "jobs.yaml", "run", "broken"])
        .expect_code(3);
    let runs = t.history_all();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert_eq!(run["host"], "cli-host", "{run}");
        assert_eq!(run["trigger"], "manual");
    }
    assert_eq!(runs[0]["job"], "broken");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["exit_code"], 3);
    assert_eq!(runs[1]["status"], "succeeded");
    // The table names the host of each run.
    let table = t.run_args(["history"]).expect_code(0).stdout;
    assert!(
        table.contains("HOST") && table.contains("cli-host"),
        "{table}"
    );
    // The output tail, by run id.
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    let logs = t.run_args(["logs", &id]).expect_code(0).stdout;
    assert!(logs.contains("oops"), "{logs}");
    // `jobrun run` was a member only while its run went: no daemon runs.
    let status = t.run_args(["status", "--json"]).json();
    assert!(status["daemon"].is_null(), "{status}");
    assert_eq!(
        status["fleet"]["members"],
        serde_json::json!([]),
        "{status}"
    );
    assert_eq!(status["state"], "unhealthy", "{status}");
    // Pruning keeps at most one run per job here, and says where.
    let pruned = t
        .run_args(["prune", "--keep-runs", "1", "--keep-days", "1"])
        .expect_code(0);
    assert!(pruned.stdout.contains("PostgreSQL"), "{}", pruned.stdout);
    // list shows each job's last run from the database.
    let list = t.run_args(["-c", "jobs.yaml", "list", "--json"]).json();
    let hello = list
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "hello")
        .unwrap()
        .clone();
    assert!(hello.to_string().contains("succeeded"), "{hello}");
}

#[test]
fn a_bad_lease_configuration_or_url_is_refused_with_the_rule() {
    let t = crate::harness::Test::new().file(
        "jobs.yaml",
        "jobs:\n  - {name: a, command: 'true', schedule: '@daily'}\n",
    );
    let out = t.run_args([
        "--database",
        "postgres://nobody@127.0.0.1:1/none",
        "--fence",
        "28s",
        "history",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--fence") && out.stderr.contains("below the lease"),
        "{}",
        out.stderr
    );
    let out = t.run_args(["--database", "mysql://x", "history"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("postgres://USER@HOST:PORT/DATABASE"),
        "{}",
        out.stderr
    );
    let out = t.run_args(["--database", "postgres://db/x?sslmode=require", "status"]);
    assert!(out.stderr.contains("TLS"), "{}", out.stderr);
}
