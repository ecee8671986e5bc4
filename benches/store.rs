//! Criterion: the store's claim + finish of one run, and the queries behind
//! `jobrun history --limit 50`, `history NAME` and `list`/`status` (each job's
//! latest run) on a database of 1,000,000 runs (issue 6).
//!
//! Claims per second on both backends (issue 14, group `claims`): one claim,
//! and a tick of 100 jobs claimed together as the daemon's recorder claims
//! them (`claim_and_start_many`), on SQLite and on PostgreSQL; and the same
//! tick claimed by three hosts at once on one PostgreSQL database (three
//! stores, three threads: each key is won once, the losers' inserts wait for
//! the winner's commit). PostgreSQL is `JOBRUN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), a fresh database made and
//! dropped by the tests' helper; without a server those benches say skipped.
//! `cargo bench --bench store -- claims` runs this group alone.
//!
//! The big database is built once, in one transaction with one prepared
//! statement on the file `Store::open` created and migrated, and cached under
//! `target/bench-data/` (keyed by the schema version), so reruns start at once.
//! Opening it through `Store::open` again applies any newer migration.

#[path = "../src/store/postgres/testdb.rs"]
#[allow(dead_code)]
mod testdb;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jobrun::clock::{Clock, SystemClock};
use jobrun::job::{RunOutcome, RunStatus, Trigger};
use jobrun::store::postgres::LeaseConfig;
use jobrun::store::{Declared, HistoryFilter, Location, Membership, NewRun, Store, LATEST_VERSION};

const RUNS: i64 = 1_000_000;
const JOBS: i64 = 1_000;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant")
}

fn claim_finish(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path()).expect("a new store");
    let mut minute = 0i64;
    let mut group = c.benchmark_group("store");
    group.bench_function("claim_and_finish", |b| {
        b.iter(|| {
            minute += 1;
            let tick = start() + chrono::Duration::minutes(minute);
            let id = store
                .claim(&NewRun {
                    job: "bench".into(),
                    trigger: Trigger::Schedule,
                    tick: Some(tick),
                    status: RunStatus::Running,
                    at: tick,
                    host: "bench-host".into(),
                    owner: "bench-host:1:2026-01-01T00:00:00.000Z".into(),
                    error: None,
                    parent_id: None,
                    attempt: 1,
                })
                .expect("claiming")
                .expect("a new tick is always won");
            store
                .finish(
                    id,
                    &RunOutcome {
                        status: RunStatus::Succeeded,
                        finished_at: tick,
                        duration_ms: Some(12),
                        exit_code: Some(0),
                        signal: None,
                        output_bytes: 3,
                        output_tail: std::sync::Arc::from(&b"ok\n"[..]),
                        error: None,
                    },
                )
                .expect("finishing");
        })
    });
    group.finish();
}

/// `target/bench-data/runs-1m-vN`: a state directory with 1,000,000 runs.
fn big_state_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    // Keyed by the schema version the data was written with; later migrations
    // are applied by Store::open.
    let dir = target.join(format!("bench-data/runs-1m-v{LATEST_VERSION}"));
    if dir.join("complete").is_file() {
        return dir;
    }
    let building = dir.with_extension("building");
    let _ = std::fs::remove_dir_all(&building);
    eprintln!("building {} (once)...", dir.display());
    drop(Store::open(&building).expect("a new store"));
    populate(&building.join("jobrun.db"));
    std::fs::write(building.join("complete"), b"").expect("marking the data complete");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&building, &dir).expect("moving the data into place");
    dir
}

/// 1,000,000 finished runs of 1,000 jobs, one a minute per job, with a few
/// failures and skips, as a long-lived daemon would leave them.
fn populate(db: &Path) {
    let mut conn = rusqlite::Connection::open(db).expect("opening the new database");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("bulk load without fsync");
    let tx = conn.transaction().expect("one transaction");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO runs (job, trigger, tick, claimed_at, started_at, finished_at,
                                   duration_ms, status, exit_code, pid, host, owner,
                                   output_bytes, output_tail, error)
                 VALUES (?1, 'schedule', ?2, ?2, ?2, ?3, ?4, ?5, ?6, ?7, 'bench-host',
                         'bench-host:1:2026-01-01T00:00:00.000Z', ?8, ?9, ?10)",
            )
            .expect("preparing the insert");
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for i in 0..RUNS {
            let job = format!("job-{:04}", i % JOBS);
            let tick = start() + chrono::Duration::minutes(i / JOBS);
            let duration = 5 + i % 300;
            let (status, exit, error, tail): (&str, Option<i64>, Option<&str>, &[u8]) = match i % 97
            {
                0 => ("failed", Some(1), None, b"error: connection refused\n"),
                1 => (
                    "skipped",
                    None,
                    Some("already running (run 1, pid 42 on bench-host)"),
                    b"",
                ),
                _ => ("succeeded", Some(0), None, b"done: 120 rows\n"),
            };
            insert
                .execute(rusqlite::params![
                    job,
                    fmt(tick),
                    fmt(tick + chrono::Duration::milliseconds(duration)),
                    duration,
                    status,
                    exit,
                    10_000 + i % 30_000,
                    tail.len() as i64,
                    tail,
                    error,
                ])
                .expect("inserting a run");
        }
    }
    tx.commit().expect("committing the runs");
}

fn history(c: &mut Criterion) {
    let store = Store::open(&big_state_dir()).expect("opening the 1,000,000-run store");
    let mut group = c.benchmark_group("history_1m_runs");
    group.bench_function("limit_50", |b| {
        let filter = HistoryFilter {
            limit: Some(50),
            ..Default::default()
        };
        b.iter(|| store.history(black_box(&filter)).expect("history"))
    });
    group.bench_function("one_job_limit_50", |b| {
        let filter = HistoryFilter {
            job: Some("job-0500".into()),
            limit: Some(50),
            ..Default::default()
        };
        b.iter(|| store.history(black_box(&filter)).expect("history"))
    });
    group.bench_function("failed_limit_50", |b| {
        let filter = HistoryFilter {
            status: Some(RunStatus::Failed),
            limit: Some(50),
            ..Default::default()
        };
        b.iter(|| store.history(black_box(&filter)).expect("history"))
    });
    group.sample_size(10);
    group.bench_function("latest_runs_of_1000_jobs", |b| {
        b.iter(|| store.latest_runs().expect("latest runs"))
    });
    group.finish();
}

/// The claims of `jobs` jobs on one tick, as the recorder writes them.
fn tick_claims(jobs: usize, tick: DateTime<Utc>, owner: &str) -> Vec<NewRun> {
    (0..jobs)
        .map(|i| NewRun {
            job: format!("job-{i:04}"),
            trigger: Trigger::Schedule,
            tick: Some(tick),
            status: RunStatus::Running,
            at: tick,
            host: "bench-host".into(),
            owner: owner.into(),
            error: None,
            parent_id: None,
            attempt: 1,
        })
        .collect()
}

/// A fleet member's store on `url` as host `host`, its jobs declared.
fn postgres_store(url: &str, host: &str, jobs: usize) -> Store {
    let store = Store::open_at(&Location::Database(Membership {
        url: url.to_string(),
        host: host.to_string(),
        lease: LeaseConfig::default(),
        wall: Arc::new(|| SystemClock.now()),
        kind: jobrun::store::postgres::daemons::Kind::Daemon,
    }))
    .expect("opening the PostgreSQL store");
    store.declare(
        (0..jobs)
            .map(|i| Declared {
                job: format!("job-{i:04}"),
                fingerprint: "bench".into(),
                exclusive: false,
            })
            .collect(),
    );
    store
}

/// Claims of one tick per iteration, each iteration a new tick.
fn bench_claims(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    stores: &[Store],
    jobs: usize,
) {
    // One counter for every bench of the group: a tick is never claimed twice.
    static SECOND: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    group.throughput(Throughput::Elements(jobs as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let second = SECOND.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let tick = start() + chrono::Duration::seconds(second);
            let won: usize = std::thread::scope(|scope| {
                let claimers: Vec<_> = stores
                    .iter()
                    .enumerate()
                    .map(|(i, store)| {
                        let runs = tick_claims(jobs, tick, &format!("bench-host:{i}:x"));
                        scope.spawn(move || {
                            store
                                .claim_and_start_many(&runs, &[])
                                .expect("claiming")
                                .iter()
                                .filter(|id| id.is_some())
                                .count()
                        })
                    })
                    .collect();
                claimers
                    .into_iter()
                    .map(|c| c.join().expect("a claiming thread"))
                    .sum()
            });
            assert_eq!(won, jobs, "each key is won exactly once");
        })
    });
}

fn claims(c: &mut Criterion) {
    let mut group = c.benchmark_group("claims");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(5));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = [Store::open(dir.path()).expect("a new store")];
    bench_claims(&mut group, "sqlite_one", &sqlite, 1);
    bench_claims(&mut group, "sqlite_tick_of_100", &sqlite, 100);
    if let Some(db) = testdb::TestDb::create("claims/postgres_*") {
        let one = [postgres_store(&db.url, "h1", 100)];
        bench_claims(&mut group, "postgres_one", &one, 1);
        bench_claims(&mut group, "postgres_tick_of_100", &one, 100);
        drop(one);
        let three: Vec<Store> = ["h1", "h2", "h3"]
            .iter()
            .map(|h| postgres_store(&db.url, h, 100))
            .collect();
        bench_claims(&mut group, "postgres_tick_of_100_three_hosts", &three, 100);
        drop(three);
    }
    group.finish();
}

criterion_group!(benches, claim_finish, claims, history);
criterion_main!(benches);
