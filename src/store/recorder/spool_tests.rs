//! The recorder's spool across a restart: what the store refused is on disk
//! when the recorder ends, and the next recorder in the same state directory
//! (on a fresh store handle, as a restarted daemon has) writes it.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::spool::MAX_FINISHES;
use super::*;
use crate::job::Trigger;
use crate::store::HistoryFilter;

fn tick() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn claim(job: &str, status: RunStatus) -> NewRun {
    NewRun {
        job: job.into(),
        trigger: Trigger::Schedule,
        tick: Some(tick()),
        status,
        at: tick(),
        host: "h".into(),
        owner: "o".into(),
        error: (status == RunStatus::Missed).then(|| "not claimed: disk full".into()),
        parent_id: None,
        attempt: 1,
    }
}

fn outcome(tail: &[u8]) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Succeeded,
        finished_at: tick(),
        duration_ms: Some(5),
        exit_code: Some(0),
        signal: None,
        output_bytes: tail.len() as u64,
        output_tail: Arc::from(tail),
        error: None,
    }
}

fn runs_of(store: &Store, job: &str) -> Vec<crate::store::RunRecord> {
    store
        .history(&HistoryFilter {
            job: Some(job.into()),
            ..Default::default()
        })
        .unwrap()
}

fn spool_files(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// A recorder on a store that refuses writes: the runs `jobs` claimed
/// first, their outcomes refused, a missed tick of `missed` refused; then
/// the recorder ends (a daemon stopping, or its process killed: the file is
/// the same, written ahead). Returns the claimed runs.
async fn refused_then_ended(state: &Path, jobs: &[&str], missed: &str) -> Vec<RunId> {
    let store = Arc::new(Store::open(state).unwrap());
    let recorder = Recorder::start_spooled(Arc::clone(&store), state).unwrap();
    let mut ids = Vec::new();
    for job in jobs {
        let id = recorder
            .claim(claim(job, RunStatus::Running))
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    store.refuse_writes_for_tests(true);
    for (i, id) in ids.iter().enumerate() {
        let tail = format!("output of run {i}\n");
        assert!(recorder
            .finish(*id, outcome(tail.as_bytes()))
            .await
            .is_err());
    }
    recorder.record_missed(claim(missed, RunStatus::Missed));
    drop(recorder);
    assert_eq!(spool_files(state).len(), 1, "kept on disk");
    ids
}

#[tokio::test]
async fn what_the_store_refused_is_written_by_the_next_recorder_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ids = refused_then_ended(dir.path(), &["a"], "b").await;
    // A restart: a fresh handle on the same state directory takes writes.
    let store = Arc::new(Store::open(dir.path()).unwrap());
    assert_eq!(runs_of(&store, "a")[0].status, RunStatus::Running);
    assert!(runs_of(&store, "b").is_empty());
    let recorder = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    // Written before `start_spooled` returned (before a daemon's recovery).
    let a = store.get(ids[0]).unwrap().unwrap();
    assert_eq!(a.status, RunStatus::Succeeded);
    assert_eq!(store.output_tail(ids[0]).unwrap(), b"output of run 0\n");
    let b = runs_of(&store, "b");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].status, RunStatus::Missed);
    assert_eq!(b[0].error.as_deref(), Some("not claimed: disk full"));
    // The earlier file is gone; this recorder's own goes when it ends empty.
    assert_eq!(spool_files(dir.path()).len(), 1);
    drop(recorder);
    assert!(spool_files(dir.path()).is_empty());
}

#[tokio::test]
async fn a_run_abandoned_meanwhile_and_a_tick_run_meanwhile_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ids = refused_then_ended(dir.path(), &["a"], "b").await;
    let store = Arc::new(Store::open(dir.path()).unwrap());
    // Before the restart: a peer marked the run abandoned, and ran the tick
    // this process missed.
    assert!(store.mark_abandoned(ids[0], tick(), "peer").unwrap());
    let peer_run = store
        .claim(&claim("b", RunStatus::Running))
        .unwrap()
        .unwrap();
    let _recorder = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    assert_eq!(
        store.get(ids[0]).unwrap().unwrap().status,
        RunStatus::Abandoned
    );
    let b = runs_of(&store, "b");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].id, peer_run);
    assert_eq!(b[0].status, RunStatus::Running);
}

#[tokio::test]
async fn a_torn_last_record_is_ignored_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let ids = refused_then_ended(dir.path(), &["a", "c"], "b").await;
    // The missed tick was the last record: cut it short, as a crash would.
    let file = dir.path().join("spool").join(&spool_files(dir.path())[0]);
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let recorder = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    for id in ids {
        assert_eq!(store.get(id).unwrap().unwrap().status, RunStatus::Succeeded);
    }
    assert!(
        runs_of(&store, "b").is_empty(),
        "the torn record is ignored"
    );
    drop(recorder);
    assert!(spool_files(dir.path()).is_empty(), "not kept as corrupt");
}

#[tokio::test]
async fn a_corrupt_or_foreign_file_is_moved_aside_and_the_recorder_works() {
    let dir = tempfile::tempdir().unwrap();
    let ids = refused_then_ended(dir.path(), &["a", "c"], "b").await;
    let spool = dir.path().join("spool");
    let name = spool_files(dir.path())[0].clone();
    // A byte of the first record flipped: damage before the end.
    let mut bytes = std::fs::read(spool.join(&name)).unwrap();
    bytes[40] ^= 0x55;
    std::fs::write(spool.join(&name), bytes).unwrap();
    std::fs::write(spool.join("1-0.spool"), b"not jobrun's").unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let recorder = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    for id in &ids {
        assert_eq!(
            store.get(*id).unwrap().unwrap().status,
            RunStatus::Running,
            "nothing after the damage is trusted"
        );
    }
    let names = spool_files(dir.path());
    assert!(names.contains(&format!("{name}.aside")), "{names:?}");
    assert!(names.contains(&"1-0.spool.aside".to_string()), "{names:?}");
    // Still a recorder: an outcome goes through it.
    recorder.finish(ids[0], outcome(b"later\n")).await.unwrap();
    assert_eq!(
        store.get(ids[0]).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    drop(recorder);
    assert_eq!(
        spool_files(dir.path()).len(),
        2,
        "only the moved-aside files"
    );
}

#[tokio::test]
async fn a_spool_directory_that_cannot_be_used_leaves_the_spool_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spool"), b"a file, not a directory").unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let recorder = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    let id = recorder
        .claim(claim("a", RunStatus::Running))
        .await
        .unwrap()
        .unwrap();
    store.refuse_writes_for_tests(true);
    assert!(recorder.finish(id, outcome(b"ok\n")).await.is_err());
    store.refuse_writes_for_tests(false);
    drop(recorder);
    assert_eq!(store.get(id).unwrap().unwrap().status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_recorder_beside_a_live_one_leaves_its_spool_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let daemon = Recorder::start_spooled(Arc::clone(&store), dir.path()).unwrap();
    let id = daemon
        .claim(claim("a", RunStatus::Running))
        .await
        .unwrap()
        .unwrap();
    store.refuse_writes_for_tests(true);
    assert!(daemon.finish(id, outcome(b"ok\n")).await.is_err());
    // A `jobrun run` starting beside the daemon, on a store taking writes.
    let other = Arc::new(Store::open(dir.path()).unwrap());
    let run = Recorder::start_spooled(Arc::clone(&other), dir.path()).unwrap();
    assert_eq!(other.get(id).unwrap().unwrap().status, RunStatus::Running);
    assert_eq!(spool_files(dir.path()).len(), 2);
    drop(run);
    assert_eq!(spool_files(dir.path()).len(), 1, "the daemon's stays");
    store.refuse_writes_for_tests(false);
    drop(daemon);
    assert_eq!(store.get(id).unwrap().unwrap().status, RunStatus::Succeeded);
    assert!(spool_files(dir.path()).is_empty());
}

#[test]
fn the_bounds_hold_on_disk_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.refuse_writes_for_tests(true);
    let extra = 104;
    let total = MAX_FINISHES + extra;
    let mut spool = spool::Spool::open(dir.path(), &store);
    for batch in 0..total / 100 {
        spool.keep_finishes(
            (0..100)
                .map(|i| (RunId((batch * 100 + i) as i64), outcome(b"x\n")))
                .collect(),
        );
    }
    for batch in 0..100 {
        let ticks = (0..10).map(|i| {
            let mut c = claim("busy", RunStatus::Missed);
            c.tick = DateTime::from_timestamp(1_780_000_000 + batch * 10 + i, 0);
            c
        });
        spool.keep_missed(ticks.collect());
    }
    let check = |spool: &spool::Spool| {
        let (finishes, dropped, missed, missed_dropped, frames) = spool.counts_for_tests();
        assert_eq!(finishes, MAX_FINISHES);
        assert_eq!(dropped, extra as u64);
        assert_eq!(missed, PER_JOB);
        assert_eq!(missed_dropped, 1000 - PER_JOB as u64);
        let kept = finishes + missed + 2;
        assert!(frames <= 2 * kept + 64, "{frames} frames for {kept} kept");
        frames
    };
    check(&spool);
    // Killed: no close; the next start reads the file.
    drop(spool);
    let spool = spool::Spool::open(dir.path(), &store);
    let frames = check(&spool);
    assert_eq!(
        frames,
        MAX_FINISHES + PER_JOB + 2,
        "rewritten to what is kept"
    );
    // The oldest kept outcome is the first one past the bound.
    assert_eq!(spool.first_finish_for_tests(), Some(RunId(extra as i64)));
}
