//! Tests of the jitter offset (range, determinism, spread) and of the
//! scheduler's view of jittered jobs: [`Plan::next_wakeup`] and
//! [`Plan::due`], the two functions the daemon's loop sleeps and fires by,
//! walked tick by tick against what `next` predicts ([`Job::starts_after`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{offset, Start};
use crate::job::{Command, Dialect, JobSpec, Origin, ScheduleSpec, SourceKind, SourceSet};
use crate::plan::Plan;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a valid instant")
}

/// A plan of YAML jobs `(name, schedule, jitter)`, in UTC.
fn plan_of(jobs: &[(&str, &str, Option<Duration>)]) -> Plan {
    let origin = Origin::new("jobs.yaml", 1);
    let specs = jobs
        .iter()
        .map(|(name, expr, jitter)| {
            let mut spec = JobSpec::new(
                Command::Shell(format!("echo {name}")),
                SourceKind::Yaml,
                origin.clone(),
            );
            spec.name = Some((*name).into());
            spec.jitter = *jitter;
            spec.schedules.push(ScheduleSpec {
                expr: (*expr).into(),
                dialect: Dialect::Yaml,
                timezone: None,
                origin: origin.clone(),
            });
            Arc::new(spec)
        })
        .collect();
    let (plan, diagnostics) = Plan::build(
        SourceSet {
            jobs: specs,
            ..Default::default()
        },
        chrono_tz::UTC,
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    plan
}

const THIRTY: Duration = Duration::from_secs(30);

#[test]
fn offsets_are_within_the_jitter_and_whole_milliseconds() {
    let t0 = at("2026-05-01T00:00:00Z");
    for jitter in [
        Duration::from_millis(1),
        Duration::from_millis(800),
        THIRTY,
        Duration::from_secs(86_400),
    ] {
        for name in ["a", "backup-db", "nightly.report", "x_y"] {
            for minute in 0..500 {
                let tick = t0 + chrono::Duration::minutes(minute);
                let off = offset(name, tick, jitter);
                assert!(off < jitter, "{name} {tick} {jitter:?}: {off:?}");
                assert_eq!(off.subsec_nanos() % 1_000_000, 0, "{off:?}");
            }
        }
    }
    // Under a millisecond there is nothing to spread over.
    assert_eq!(offset("a", t0, Duration::from_micros(900)), Duration::ZERO);
    assert_eq!(offset("a", t0, Duration::ZERO), Duration::ZERO);
}

#[test]
fn offsets_are_the_same_on_every_host_and_every_build() {
    // Pinned: these values are what every jobrun computes, so hosts of
    // different versions start a tick together. A change here moves every
    // jittered run of every user.
    let tick = at("2026-05-01T03:00:00Z");
    let pinned = [
        offset("backup-db", tick, THIRTY),
        offset("backup-db", tick + chrono::Duration::days(1), THIRTY),
        offset("report", tick, Duration::from_secs(3600)),
    ];
    assert_eq!(pinned, PINNED);
    // The same inputs, the same offset; a different name or tick, another.
    assert_eq!(offset("backup-db", tick, THIRTY), pinned[0]);
    assert_ne!(offset("backup-dc", tick, THIRTY), pinned[0]);
    assert_ne!(pinned[0], pinned[1]);
}

/// Also computed by an independent Python implementation of the same hash
/// (FNV-1a 64 over name, 0xff, big-endian seconds and nanoseconds, then
/// MurmurHash3's fmix64, scaled by the high 64 bits of a 128-bit product).
const PINNED: [Duration; 3] = [
    Duration::from_millis(14_195),
    Duration::from_millis(16_613),
    Duration::from_millis(1_872_425),
];

#[test]
fn offsets_spread_evenly_over_the_jitter() {
    // 10,000 ticks of one job in ten buckets of 3 s: each within 15% of a
    // tenth. A hash that ignored the tick, or favoured one end, fails.
    let t0 = at("2026-01-01T00:00:00Z");
    let mut buckets = [0u32; 10];
    for minute in 0..10_000 {
        let off = offset("backup-db", t0 + chrono::Duration::minutes(minute), THIRTY);
        buckets[(off.as_millis() / 3_000) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&n| (850..=1150).contains(&n)),
        "{buckets:?}"
    );
    // And across names: 1,000 jobs on one tick.
    let tick = t0 + chrono::Duration::hours(3);
    let mut buckets = [0u32; 10];
    for job in 0..10_000 {
        let off = offset(&format!("job-{job}"), tick, THIRTY);
        buckets[(off.as_millis() / 3_000) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&n| (850..=1150).contains(&n)),
        "{buckets:?}"
    );
}

/// Walks the scheduler's loop over `plan` from `from`: sleep until
/// [`Plan::next_wakeup`], fire [`Plan::due`] in the window, as
/// `daemon::next_tick` does; `(job, start)` for each of the first `n` firings.
/// Every wake-up fires something: the loop never wakes for a tick whose run
/// is jittered later.
fn walk_loop(plan: &Plan, from: DateTime<Utc>, n: usize) -> Vec<(String, Start)> {
    let mut cursor = from;
    let mut fired = Vec::new();
    while fired.len() < n {
        let wake = plan.next_wakeup(cursor).expect("a next wake-up");
        let due = plan.due(cursor, wake);
        assert!(!due.is_empty(), "a wake-up at {wake} with nothing to start");
        for (job, tick) in due {
            fired.push((job.name.clone(), Start { tick, at: wake }));
        }
        cursor = wake;
    }
    fired.truncate(n);
    fired
}

#[test]
fn a_hundred_ticks_with_a_30s_jitter_start_where_next_predicted() {
    // The property, through the functions the daemon's loop uses
    // (a daemon test would take 100 minutes; tests/integration/jitter.rs
    // checks the same on a real daemon with a shorter schedule).
    let plan = plan_of(&[("backup-db", "* * * * *", Some(THIRTY))]);
    let job = plan.get("backup-db").expect("the job");
    let from = at("2026-05-01T00:00:10Z");
    let predicted = job.starts_after(from, 100);
    let fired: Vec<Start> = walk_loop(&plan, from, 100)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(fired, predicted);
    let mut offsets = Vec::new();
    for s in &fired {
        let off = (s.at - s.tick)
            .to_std()
            .expect("a start is never before its tick");
        assert!(off < THIRTY, "{s:?}");
        assert_eq!(
            s.tick.timestamp() % 60,
            0,
            "ticks stay on the minute: {s:?}"
        );
        offsets.push(off);
    }
    // Spread, not one fixed delay.
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() > 90, "{offsets:?}");
    // One run per minute, none left out: the 00:00 tick too when its run
    // starts after `from` (00:00:10).
    let first = fired[0].tick;
    let midnight = at("2026-05-01T00:00:00Z");
    assert_eq!(first == midnight, job.start_of(midnight) > from);
    for (i, s) in fired.iter().enumerate() {
        assert_eq!(s.tick, first + chrono::Duration::minutes(i as i64));
    }
}

#[test]
fn a_tick_before_now_whose_start_is_after_it_is_still_ahead() {
    let plan = plan_of(&[("j", "* * * * *", Some(THIRTY))]);
    let job = plan.get("j").expect("the job");
    let tick = at("2026-05-01T00:01:00Z");
    let start = job.start_of(tick);
    assert!(start > tick, "pick a tick with an offset: {start}");
    // Between the tick and its start, the next run is that tick's.
    let between = tick + (start - tick) / 2;
    assert_eq!(
        job.next_start_after(between),
        Some(Start { tick, at: start })
    );
    assert_eq!(plan.next_wakeup(between), Some(start));
    assert_eq!(job.due_tick(between, start), Some(tick));
    assert_eq!(job.due_tick(tick, between), None, "not before its start");
}

#[test]
fn jobs_with_and_without_jitter_share_one_loop() {
    let plan = plan_of(&[
        ("plain", "*/20 * * * * *", None),
        ("spread", "*/20 * * * * *", Some(Duration::from_secs(10))),
    ]);
    let from = at("2026-05-01T00:00:00Z");
    let fired = walk_loop(&plan, from, 40);
    let plain: Vec<&Start> = fired
        .iter()
        .filter(|(j, _)| j == "plain")
        .map(|(_, s)| s)
        .collect();
    let spread: Vec<&Start> = fired
        .iter()
        .filter(|(j, _)| j == "spread")
        .map(|(_, s)| s)
        .collect();
    assert!(plain.iter().all(|s| s.at == s.tick), "{plain:?}");
    assert!(plain.len() >= 19 && spread.len() >= 19, "{fired:?}");
    let job = plan.get("spread").expect("the job");
    let predicted = job.starts_after(from, spread.len());
    assert_eq!(spread.into_iter().copied().collect::<Vec<_>>(), predicted);
}

#[test]
fn a_jitter_longer_than_the_interval_starts_every_tick_once() {
    // Ticks every 10 s, starts up to 30 s later: runs overlap in time and
    // may start out of tick order, but each tick starts once, when predicted.
    let plan = plan_of(&[("busy", "*/10 * * * * *", Some(THIRTY))]);
    let job = plan.get("busy").expect("the job");
    let from = at("2026-05-01T00:00:00Z");
    let predicted = job.starts_after(from, 200);
    let fired: Vec<Start> = walk_loop(&plan, from, 200)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(fired, predicted);
    let mut ticks: Vec<_> = fired.iter().map(|s| s.tick).collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), 200, "no tick twice");
    // Starts come in order of time; the ticks they belong to need not.
    assert!(fired.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn without_jitter_starts_are_the_ticks() {
    let plan = plan_of(&[("j", "0 3 * * *", None)]);
    let job = plan.get("j").expect("the job");
    let from = at("2026-05-01T00:00:00Z");
    let starts = job.starts_after(from, 3);
    assert_eq!(
        starts.iter().map(|s| s.at).collect::<Vec<_>>(),
        job.next_n(from, 3)
    );
    assert!(starts.iter().all(|s| s.at == s.tick));
}
