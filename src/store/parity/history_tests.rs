//! Parity: the history's reads, retention and renamed jobs on both backends.

use super::{both, new_run, outcome, t};
use crate::job::{DerivedName, RunId, RunStatus};
use crate::store::{Declared, HistoryFilter, Retention, Started, Store};

fn ids(runs: Vec<crate::store::RunRecord>) -> Vec<RunId> {
    runs.into_iter().map(|r| r.id).collect()
}

fn history(s: &Store, filter: HistoryFilter) -> Vec<RunId> {
    ids(s.history(&filter).unwrap())
}

fn of(job: &str) -> HistoryFilter {
    HistoryFilter {
        job: Some(job.into()),
        ..Default::default()
    }
}

fn succeed(s: &Store, id: RunId) {
    s.finish(id, &outcome(RunStatus::Succeeded, Some(0), b""))
        .unwrap();
}

#[test]
fn history_filters_by_job_since_status_and_limit_newest_first() {
    both("history filters", |b| {
        let s = &*b.store;
        let mut claimed = Vec::new();
        for minute in 0..5 {
            let job = if minute % 2 == 0 { "a" } else { "b" };
            let mut run = new_run(job, Some(t(9, minute, 0)));
            run.at = t(9, minute, 0);
            claimed.push(s.claim(&run).unwrap().unwrap());
        }
        succeed(s, claimed[4]);
        let newest_first: Vec<RunId> = claimed.iter().rev().copied().collect();
        assert_eq!(history(s, HistoryFilter::default()), newest_first);
        let (c0, c2, c3, c4) = (claimed[0], claimed[2], claimed[3], claimed[4]);
        assert_eq!(history(s, of("a")), [c4, c2, c0]);
        // `since` compares the claim's time (PostgreSQL: the server's).
        let since = s.get(c3).unwrap().unwrap().claimed_at;
        let recent = HistoryFilter {
            since: Some(since),
            ..Default::default()
        };
        assert_eq!(history(s, recent), [c4, c3]);
        let ok = HistoryFilter {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        };
        assert_eq!(history(s, ok), [c4]);
        let two = HistoryFilter {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(history(s, two), [c4, claimed[3]]);
        let a_running = HistoryFilter {
            status: Some(RunStatus::Running),
            limit: Some(1),
            ..of("a")
        };
        assert_eq!(history(s, a_running), [c2]);
        assert!(history(s, of("nothing")).is_empty());
    });
}

#[test]
fn the_latest_run_of_each_job_and_the_running_runs_oldest_first() {
    both("latest and running", |b| {
        let s = &*b.store;
        assert!(s.latest_runs().unwrap().is_empty());
        let a1 = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let b1 = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        let a2 = s.claim(&new_run("a", Some(t(9, 1, 0)))).unwrap().unwrap();
        let c1 = s.claim(&new_run("c", None)).unwrap().unwrap();
        succeed(s, b1);
        let mut latest: Vec<(String, RunId)> = s
            .latest_runs()
            .unwrap()
            .into_iter()
            .map(|r| (r.job, r.id))
            .collect();
        latest.sort();
        let want = [("a", a2), ("b", b1), ("c", c1)].map(|(j, id)| (j.to_string(), id));
        assert_eq!(latest, want);
        assert_eq!(ids(s.running().unwrap()), [a1, a2, c1]);
    });
}

#[test]
fn a_run_that_is_not_on_record_reads_as_none() {
    both("unknown run", |b| {
        let s = &*b.store;
        assert_eq!(s.get(RunId(424_242)).unwrap(), None);
        assert!(s.output_tail(RunId(424_242)).unwrap().is_empty());
        let id = s.claim(&new_run("a", None)).unwrap().unwrap();
        assert!(s.output_tail(id).unwrap().is_empty(), "nothing written yet");
    });
}

#[test]
fn the_last_success_is_the_latest_started_succeeded_run() {
    both("last success", |b| {
        let s = &*b.store;
        assert_eq!(s.last_success_start("a").unwrap(), None);
        let run = |minute: u32, status: RunStatus, started: bool| {
            let id = s
                .claim(&new_run("a", Some(t(9, minute, 0))))
                .unwrap()
                .unwrap();
            if started {
                let at = t(9, minute, 1);
                s.mark_started(Started {
                    run: id,
                    pid: Some(7),
                    at,
                })
                .unwrap();
            }
            s.finish(id, &outcome(status, Some(0), b"")).unwrap();
            s.get(id).unwrap().unwrap().started_at
        };
        let first = run(0, RunStatus::Succeeded, true);
        assert!(first.is_some());
        assert_eq!(s.last_success_start("a").unwrap(), first);
        run(1, RunStatus::Failed, true);
        run(2, RunStatus::Succeeded, false); // never started: saw nothing
        assert_eq!(s.last_success_start("a").unwrap(), first);
        let latest = run(3, RunStatus::Succeeded, true);
        assert_eq!(s.last_success_start("a").unwrap(), latest);
        assert_eq!(s.last_success_start("b").unwrap(), None);
    });
}

#[test]
fn a_tick_is_claimed_by_its_first_attempt() {
    both("tick claimed", |b| {
        let s = &*b.store;
        let nine = t(9, 0, 0);
        assert!(!s.tick_claimed("a", nine).unwrap());
        let mut retry = new_run("a", Some(nine));
        retry.attempt = 2;
        s.claim(&retry).unwrap().unwrap();
        assert!(!s.tick_claimed("a", nine).unwrap(), "only a retry");
        s.claim(&new_run("a", Some(nine))).unwrap().unwrap();
        assert!(s.tick_claimed("a", nine).unwrap());
        assert!(!s.tick_claimed("b", nine).unwrap());
        assert!(!s.tick_claimed("a", t(9, 1, 0)).unwrap());
    });
}

#[test]
fn pruning_keeps_the_newest_runs_and_never_a_running_one() {
    both("prune", |b| {
        let s = &*b.store;
        let running = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let mut finished = Vec::new();
        for minute in 1..5 {
            let id = s
                .claim(&new_run("a", Some(t(9, minute, 0))))
                .unwrap()
                .unwrap();
            succeed(s, id);
            finished.push(id);
        }
        let other = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        succeed(s, other);
        // SQLite prunes by `now` as given; PostgreSQL by the server's clock
        // (its claims are seconds old; SQLite's three hours at `now`).
        let now = t(12, 0, 0);
        let a_day = Retention {
            keep_days: 1,
            keep_runs: 2,
        };
        assert_eq!(s.prune(now, a_day).unwrap(), 2, "a's two oldest finished");
        assert_eq!(history(s, of("a")), [finished[3], finished[2], running]);
        assert_eq!(history(s, of("b")), [other]);
        let nothing_old = Retention {
            keep_days: 0,
            keep_runs: 10_000,
        };
        assert_eq!(s.prune(now, nothing_old).unwrap(), 3);
        assert_eq!(history(s, HistoryFilter::default()), [running]);
    });
}

/// Guarantee 10: claims outlive history pruning. Pruning raises the job's
/// claim floor to the newest tick it removed; every tick at or before it
/// counts as claimed (conservative: a tick never run before it cannot be
/// caught up any more), and PostgreSQL deletes the claims under it whose
/// run is gone, so its claims table stays bounded.
#[test]
fn a_pruned_tick_cannot_be_claimed_again() {
    both("prune and claims", |b| {
        let s = &*b.store;
        for minute in 0..4 {
            let id = s
                .claim(&new_run("a", Some(t(9, minute, 0))))
                .unwrap()
                .unwrap();
            succeed(s, id);
        }
        let other = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        succeed(s, other);
        assert_eq!(b.claim_rows().unwrap_or(5), 5);
        let keep_one = Retention {
            keep_days: 10_000,
            keep_runs: 1,
        };
        // a's 9:00 to 9:02 go; 9:03 and b's 9:00 stay.
        assert_eq!(s.prune(t(12, 0, 0), keep_one).unwrap(), 3);
        assert_eq!(history(s, of("a")).len(), 1);
        assert_eq!(b.claim_rows().unwrap_or(2), 2, "the pruned claims go");
        for minute in 0..3 {
            let tick = t(9, minute, 0);
            assert!(s.tick_claimed("a", tick).unwrap(), "9:0{minute}");
            assert_eq!(s.claim(&new_run("a", Some(tick))).unwrap(), None);
            let mut retry = new_run("a", Some(tick));
            retry.attempt = 2;
            assert_eq!(s.claim(&retry).unwrap(), None, "any attempt");
        }
        assert!(s.tick_claimed("a", t(9, 3, 0)).unwrap(), "kept");
        assert!(!s.tick_claimed("a", t(9, 4, 0)).unwrap());
        assert!(s.claim(&new_run("a", Some(t(9, 4, 0)))).unwrap().is_some());
        // Another job's floor is its own; runs without a tick have none.
        assert!(!s.tick_claimed("b", t(9, 1, 0)).unwrap());
        assert!(s.claim(&new_run("a", None)).unwrap().is_some());
        // By age too: every finished run goes, and so does every claim.
        let nothing_old = Retention {
            keep_days: 0,
            keep_runs: 10_000,
        };
        for id in ids(s.running().unwrap()) {
            succeed(s, id);
        }
        assert_eq!(s.prune(t(12, 0, 0), nothing_old).unwrap(), 4);
        assert!(history(s, HistoryFilter::default()).is_empty());
        assert_eq!(b.claim_rows().unwrap_or(0), 0, "the claims table is empty");
        assert!(s.tick_claimed("a", t(9, 4, 0)).unwrap());
        assert!(s.tick_claimed("b", t(9, 0, 0)).unwrap());
        assert_eq!(s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap(), None);
        assert!(s.claim(&new_run("b", Some(t(9, 1, 0)))).unwrap().is_some());
    });
}

fn named(key: &str, name: &str) -> DerivedName {
    DerivedName {
        key: key.into(),
        name: name.into(),
    }
}

#[test]
fn a_renamed_job_takes_its_runs_and_claims_along() {
    both("follow names", |b| {
        let s = &*b.store;
        let legacy = std::collections::HashMap::new;
        assert_eq!(
            s.follow_names(&[named("k1", "a"), named("k2", "b")], legacy)
                .unwrap(),
            0
        );
        let a0 = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let a1 = s.claim(&new_run("a", Some(t(9, 1, 0)))).unwrap().unwrap();
        let b0 = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        let manual = s.claim(&new_run("a", None)).unwrap().unwrap();
        // k1 is now "c"; k2 keeps "b".
        let moved = s
            .follow_names(&[named("k1", "c"), named("k2", "b")], legacy)
            .unwrap();
        assert_eq!(moved, 3);
        assert_eq!(history(s, of("c")), [manual, a1, a0]);
        assert!(history(s, of("a")).is_empty());
        assert_eq!(history(s, of("b")), [b0]);
        assert!(s.tick_claimed("c", t(9, 0, 0)).unwrap());
        assert_eq!(s.claim(&new_run("c", Some(t(9, 1, 0)))).unwrap(), None);
        // The old name is free again.
        assert!(!s.tick_claimed("a", t(9, 0, 0)).unwrap());
        assert!(s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().is_some());
        // Swapped names swap the runs, never merge them.
        let swapped = s
            .follow_names(&[named("k1", "b"), named("k2", "c")], legacy)
            .unwrap();
        assert_eq!(swapped, 4);
        assert_eq!(history(s, of("b")), [manual, a1, a0]);
        assert_eq!(history(s, of("c")), [b0]);
    });
}

#[test]
fn a_renamed_run_whose_tick_the_new_name_holds_stays_where_it_was() {
    both("follow names, taken tick", |b| {
        let s = &*b.store;
        let legacy = std::collections::HashMap::new;
        s.follow_names(&[named("k1", "x")], legacy).unwrap();
        let x0 = s.claim(&new_run("x", Some(t(9, 0, 0)))).unwrap().unwrap();
        let x1 = s.claim(&new_run("x", Some(t(9, 1, 0)))).unwrap().unwrap();
        // "y" (a job with no derived name: a YAML job) holds 9:00.
        let y0 = s.claim(&new_run("y", Some(t(9, 0, 0)))).unwrap().unwrap();
        let moved = s.follow_names(&[named("k1", "y")], legacy).unwrap();
        assert_eq!(moved, 1);
        assert_eq!(history(s, of("y")), [y0, x1]);
        assert_eq!(history(s, of("x")), [x0]);
        assert!(s.tick_claimed("x", t(9, 0, 0)).unwrap());
        assert!(s.tick_claimed("y", t(9, 1, 0)).unwrap());
    });
}

#[test]
fn a_running_one_at_a_time_job_renamed_onto_another_that_runs_still_moves() {
    both("follow names, forbid", |b| {
        let s = &*b.store;
        let legacy = std::collections::HashMap::new;
        let forbid = |job: &str| Declared {
            job: job.into(),
            fingerprint: "f".into(),
            exclusive: true,
        };
        s.declare(vec![forbid("x"), forbid("y")]);
        s.follow_names(&[named("k1", "x")], legacy).unwrap();
        let x = s.claim(&new_run("x", Some(t(9, 0, 0)))).unwrap().unwrap();
        let y = s.claim(&new_run("y", Some(t(9, 1, 0)))).unwrap().unwrap();
        // PostgreSQL's one-running-run index must not fail the whole rename.
        assert_eq!(s.follow_names(&[named("k1", "y")], legacy).unwrap(), 1);
        assert_eq!(history(s, of("y")), [y, x]);
        assert!(s.tick_claimed("y", t(9, 0, 0)).unwrap());
        for id in [x, y] {
            succeed(s, id);
        }
        assert!(s.running().unwrap().is_empty());
    });
}
