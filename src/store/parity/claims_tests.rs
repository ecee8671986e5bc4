//! Parity: claims, start marks, outcomes and abandonment on both backends.

use super::{both, new_run, outcome, t, HOST};
use crate::job::{RunOutcome, RunStatus};
use crate::store::{HistoryFilter, Operation, Started, Store};

fn runs_of(store: &Store, job: &str) -> Vec<crate::store::RunRecord> {
    store
        .history(&HistoryFilter {
            job: Some(job.into()),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn a_tick_is_claimed_once_per_job_tick_and_attempt() {
    both("claimed once", |b| {
        let s = &*b.store;
        let tick = Some(t(9, 0, 0));
        let first = s.claim(&new_run("a", tick)).unwrap();
        assert!(first.is_some());
        assert_eq!(s.claim(&new_run("a", tick)).unwrap(), None, "the same key");
        assert!(s.claim(&new_run("b", tick)).unwrap().is_some(), "other job");
        let other_tick = new_run("a", Some(t(9, 1, 0)));
        assert!(s.claim(&other_tick).unwrap().is_some(), "other tick");
        let mut retry = new_run("a", tick);
        retry.attempt = 2;
        retry.parent_id = first;
        let retried = s
            .claim(&retry)
            .unwrap()
            .expect("a retry is a key of its own");
        assert_eq!(s.claim(&retry).unwrap(), None, "the same retry again");
        // A lost claim leaves no row.
        assert_eq!(runs_of(s, "a").len(), 3);
        let r = s.get(retried).unwrap().unwrap();
        assert_eq!((r.attempt, r.parent_id), (2, first));
        assert_eq!((r.tick, r.status), (tick, RunStatus::Running));
    });
}

#[test]
fn manual_runs_claim_no_tick_and_are_always_claimable() {
    both("manual runs", |b| {
        let s = &*b.store;
        let one = s.claim(&new_run("a", None)).unwrap().unwrap();
        let two = s.claim(&new_run("a", None)).unwrap().unwrap();
        assert_ne!(one, two);
        let r = s.get(one).unwrap().unwrap();
        assert_eq!((r.trigger.as_str(), r.tick), ("manual", None));
        // A manual run takes no scheduled tick from the job.
        assert!(!s.tick_claimed("a", t(9, 0, 0)).unwrap());
        assert!(s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().is_some());
    });
}

#[test]
fn claims_from_two_processes_never_both_win() {
    both("two claimers", |b| {
        let other = b.another("host-b");
        let mut wins = 0;
        for minute in 0..20 {
            let tick = Some(t(10, minute, 0));
            wins += usize::from(b.store.claim(&new_run("j", tick)).unwrap().is_some());
            wins += usize::from(other.claim(&new_run("j", tick)).unwrap().is_some());
        }
        assert_eq!(wins, 20);
        assert_eq!(runs_of(&other, "j").len(), 20, "each sees every run");
    });
}

#[test]
fn claims_and_starts_written_together_decide_each_claim() {
    both("claims batched", |b| {
        let s = &*b.store;
        let nine = Some(t(9, 0, 0));
        let early = s.claim(&new_run("a", nine)).unwrap().unwrap();
        let start = Started {
            run: early,
            pid: Some(4242),
            at: t(9, 0, 1),
        };
        let ids = s
            .claim_and_start_many(
                &[
                    new_run("a", nine), // taken before the batch
                    new_run("b", nine),
                    new_run("b", nine), // taken within the batch
                    new_run("c", nine),
                ],
                &[start],
            )
            .unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!((ids[0], ids[2]), (None, None));
        assert!(ids[1].is_some() && ids[3].is_some());
        let running = s.running().unwrap();
        assert_eq!(running.len(), 3);
        let a = running.iter().find(|r| r.id == early).unwrap();
        assert_eq!(a.pid, Some(4242));
        assert!(a.started_at.is_some());
        // Nothing to claim: the start marks alone.
        let c = ids[3].unwrap();
        let none = s
            .claim_and_start_many(
                &[],
                &[Started {
                    run: c,
                    pid: None,
                    at: t(9, 0, 2),
                }],
            )
            .unwrap();
        assert!(none.is_empty());
        assert!(s.get(c).unwrap().unwrap().started_at.is_some());
    });
}

#[test]
fn a_run_is_recorded_from_claim_to_finish() {
    both("claim to finish", |b| {
        let s = &*b.store;
        let id = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let claimed = s.get(id).unwrap().unwrap();
        assert_eq!(claimed.status, RunStatus::Running);
        assert_eq!((claimed.started_at, claimed.pid), (None, None));
        assert_eq!(claimed.finished_at, None);
        assert_eq!((claimed.job.as_str(), claimed.host.as_str()), ("a", HOST));
        assert_eq!(claimed.trigger, "schedule");
        s.mark_started(Started {
            run: id,
            pid: Some(4242),
            at: t(9, 0, 1),
        })
        .unwrap();
        let running = s.running().unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].pid, Some(4242));
        let mut failed = outcome(RunStatus::Failed, Some(3), b"hello\nworld\n");
        failed.error = Some("exit status 3".into());
        s.finish(id, &failed).unwrap();
        let run = s.get(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!((run.exit_code, run.signal), (Some(3), None));
        assert_eq!(run.duration_ms, Some(3000));
        assert_eq!(run.output_bytes, 12);
        assert_eq!(run.error.as_deref(), Some("exit status 3"));
        assert_eq!(run.tick, Some(t(9, 0, 0)));
        assert_eq!(s.output_tail(id).unwrap(), b"hello\nworld\n");
        assert!(s.running().unwrap().is_empty());
        // Times: SQLite records the caller's (the daemon's clock);
        // PostgreSQL the server's (guarantee 2: one clock for the fleet).
        if b.is_postgres() {
            let (started, finished) = (run.started_at.unwrap(), run.finished_at.unwrap());
            assert!(run.claimed_at <= started && started <= finished, "{run:?}");
        } else {
            assert_eq!(run.started_at, Some(t(9, 0, 1)));
            assert_eq!(run.finished_at, Some(t(9, 0, 3)));
        }
    });
}

#[test]
fn outcomes_written_together_are_each_recorded() {
    both("finish many", |b| {
        let s = &*b.store;
        let one = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let two = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        let three = s.claim(&new_run("c", Some(t(9, 0, 0)))).unwrap().unwrap();
        s.finish_many(&[
            (one, outcome(RunStatus::Succeeded, Some(0), b"ok\n")),
            (two, outcome(RunStatus::TimedOut, None, b"")),
        ])
        .unwrap();
        assert_eq!(s.get(one).unwrap().unwrap().status, RunStatus::Succeeded);
        assert_eq!(s.output_tail(one).unwrap(), b"ok\n");
        assert_eq!(s.get(two).unwrap().unwrap().status, RunStatus::TimedOut);
        let running: Vec<_> = s.running().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(running, [three]);
        s.finish_many(&[]).unwrap();
    });
}

#[test]
fn an_inferred_ending_never_overwrites_a_recorded_one() {
    both("finish if running", |b| {
        let s = &*b.store;
        let id = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        let gone = RunOutcome::ended_early(
            RunStatus::Interrupted,
            t(9, 0, 2),
            None,
            Some("its firing ended".into()),
        );
        assert!(s.finish_if_running(id, &gone).unwrap());
        let run = s.get(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        assert_eq!(run.error.as_deref(), Some("its firing ended"));
        assert!(run.finished_at.is_some());
        let failed = RunOutcome::ended_early(RunStatus::Failed, t(9, 0, 3), None, None);
        assert!(!s.finish_if_running(id, &failed).unwrap());
        assert_eq!(s.get(id).unwrap().unwrap().status, RunStatus::Interrupted);
        let done = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        s.finish(done, &outcome(RunStatus::Succeeded, Some(0), b""))
            .unwrap();
        assert!(!s.finish_if_running(done, &gone).unwrap());
        assert_eq!(s.get(done).unwrap().unwrap().status, RunStatus::Succeeded);
    });
}

#[test]
fn a_second_outcome_of_one_run() {
    both("finish twice", |b| {
        let s = &*b.store;
        let id = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        s.finish(id, &outcome(RunStatus::Succeeded, Some(0), b"one"))
            .unwrap();
        s.finish(id, &outcome(RunStatus::Failed, Some(1), b"two"))
            .unwrap();
        // The owner's outcome after another process marked the run
        // abandoned (it judged the owner dead).
        let late = s.claim(&new_run("a", Some(t(9, 1, 0)))).unwrap().unwrap();
        assert!(s.mark_abandoned(late, t(9, 2, 0), "owner dead").unwrap());
        s.finish(late, &outcome(RunStatus::Succeeded, Some(0), b"late"))
            .unwrap();
        let (run, late) = (s.get(id).unwrap().unwrap(), s.get(late).unwrap().unwrap());
        // A difference: PostgreSQL finishes each run exactly once
        // (guarantee 11: guarded by `status = 'running'` and the owner's
        // epoch, so a fenced host cannot overwrite what a peer resolved); on
        // SQLite `finish` writes whatever it is given, over any status.
        if b.is_postgres() {
            assert_eq!(run.status, RunStatus::Succeeded);
            assert_eq!(s.output_tail(id).unwrap(), b"one");
            assert_eq!(late.status, RunStatus::Abandoned);
        } else {
            assert_eq!(run.status, RunStatus::Failed);
            assert_eq!(s.output_tail(id).unwrap(), b"two");
            assert_eq!(late.status, RunStatus::Succeeded);
        }
    });
}

#[test]
fn only_a_running_run_is_marked_abandoned() {
    both("abandoned", |b| {
        let s = &*b.store;
        let id = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        assert!(s.mark_abandoned(id, t(9, 5, 0), "owner died").unwrap());
        assert!(!s.mark_abandoned(id, t(9, 6, 0), "again").unwrap());
        let run = s.get(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Abandoned);
        assert_eq!(run.error.as_deref(), Some("owner died"));
        assert!(run.finished_at.is_some());
        assert!(s.running().unwrap().is_empty());
        let done = s.claim(&new_run("b", Some(t(9, 0, 0)))).unwrap().unwrap();
        s.finish(done, &outcome(RunStatus::Succeeded, Some(0), b""))
            .unwrap();
        assert!(!s.mark_abandoned(done, t(9, 5, 0), "too late").unwrap());
        assert_eq!(s.get(done).unwrap().unwrap().status, RunStatus::Succeeded);
        assert!(!s
            .mark_abandoned(crate::job::RunId(999_999), t(9, 5, 0), "none")
            .unwrap());
    });
}

#[test]
fn a_tick_that_will_not_run_is_recorded_finished_with_its_reason() {
    both("skipped and missed", |b| {
        let s = &*b.store;
        for (minute, status) in [(0, RunStatus::Skipped), (1, RunStatus::Missed)] {
            let mut run = new_run("a", Some(t(9, minute, 0)));
            run.status = status;
            run.error = Some(format!("not run ({})", status.as_str()));
            let id = s.claim(&run).unwrap().expect("recorded");
            let rec = s.get(id).unwrap().unwrap();
            assert_eq!(rec.status, status);
            assert!(rec.finished_at.is_some());
            assert_eq!(rec.started_at, None);
            assert_eq!(rec.error, run.error);
            // It holds the tick: nothing runs it afterwards.
            assert!(s.tick_claimed("a", t(9, minute, 0)).unwrap());
            assert_eq!(s.claim(&new_run("a", Some(t(9, minute, 0)))).unwrap(), None);
            assert_eq!(s.claim(&run).unwrap(), None, "recorded once");
        }
        assert!(s.running().unwrap().is_empty());
    });
}

#[test]
fn a_refused_write_is_an_error_naming_its_operation_and_leaves_nothing() {
    both("refused writes", |b| {
        let s = &*b.store;
        let id = s.claim(&new_run("a", Some(t(9, 0, 0)))).unwrap().unwrap();
        s.refuse_writes_for_tests(true);
        let err = s.claim(&new_run("a", Some(t(9, 1, 0)))).unwrap_err();
        assert_eq!(err.operation(), Operation::Claim, "{err}");
        let batch = s.claim_and_start_many(&[new_run("b", Some(t(9, 1, 0)))], &[]);
        assert_eq!(batch.unwrap_err().operation(), Operation::Claim);
        let ok = outcome(RunStatus::Succeeded, Some(0), b"");
        let err = s.finish_many(&[(id, ok.clone())]).unwrap_err();
        assert_eq!(err.operation(), Operation::Finish, "{err}");
        s.refuse_writes_for_tests(false);
        assert_eq!(s.history(&HistoryFilter::default()).unwrap().len(), 1);
        assert!(!s.tick_claimed("a", t(9, 1, 0)).unwrap());
        assert!(s.claim(&new_run("a", Some(t(9, 1, 0)))).unwrap().is_some());
        s.finish(id, &ok).unwrap();
        assert_eq!(s.get(id).unwrap().unwrap().status, RunStatus::Succeeded);
    });
}

#[test]
fn two_processes_racing_for_the_same_ticks_win_each_once() {
    both("racing claimers", |b| {
        let other = b.another("host-b");
        let runs: Vec<_> = (0..40).map(|m| new_run("j", Some(t(10, m, 0)))).collect();
        // One claims tick by tick, the other in batches, at the same time.
        let one_by_one = |s: &Store| {
            let won = runs.iter().map(|r| s.claim(r).unwrap());
            won.flatten().count()
        };
        let in_batches = |s: &Store| {
            let batches = runs.chunks(8);
            let won = batches.flat_map(|c| s.claim_and_start_many(c, &[]).unwrap());
            won.flatten().count()
        };
        let (mine, theirs) = std::thread::scope(|scope| {
            let mine = scope.spawn(|| one_by_one(&b.store));
            let theirs = scope.spawn(|| in_batches(&other));
            (mine.join().unwrap(), theirs.join().unwrap())
        });
        assert_eq!(mine + theirs, 40, "{mine} + {theirs}");
        let recorded = runs_of(&b.store, "j");
        assert_eq!(recorded.len(), 40);
        let mut ticks: Vec<_> = recorded.iter().map(|r| r.tick).collect();
        ticks.sort();
        ticks.dedup();
        assert_eq!(ticks.len(), 40, "one run per tick");
    });
}
