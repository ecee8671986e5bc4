//! Tests of a job's ticks in a window ([`Job::latest_tick`], which the scheduler
//! and catch-up use): the latest tick is the last one the forward walk reaches,
//! for several schedules, zones and DST nights, and finding it costs the same
//! work for a window of a day or of ten years. Work is counted in next-tick
//! searches, never timed.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{Job, Plan};
use crate::job::{Command, Dialect, JobSpec, Origin, ScheduleSpec, SourceKind, SourceSet};
use crate::schedule::searches_on_this_thread;

/// A plan of one YAML job with the given schedules, in `tz`.
fn job_with(exprs: &[&str], tz: Tz) -> Job {
    let origin = Origin::new("jobs.yaml", 1);
    let mut spec = JobSpec::new(
        Command::Shell("true".into()),
        SourceKind::Yaml,
        origin.clone(),
    );
    spec.name = Some("job".into());
    for expr in exprs {
        spec.schedules.push(ScheduleSpec {
            expr: (*expr).into(),
            dialect: Dialect::Yaml,
            timezone: None,
            origin: origin.clone(),
        });
    }
    let (plan, diagnostics) = Plan::build(
        SourceSet {
            jobs: vec![std::sync::Arc::new(spec)],
            ..Default::default()
        },
        tz,
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    plan.jobs()[0].clone()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a valid instant")
}

/// Searches made by `f`.
fn searches<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = searches_on_this_thread();
    let out = f();
    (out, searches_on_this_thread() - before)
}

#[test]
fn a_per_second_catch_up_window_of_ten_years_costs_what_one_of_a_day_does() {
    let job = job_with(&["* * * * * *"], chrono_tz::Europe::Berlin);
    let upto = at("2026-05-01T12:00:00.250Z");
    let mut work = Vec::new();
    // Short windows first: the old forward walk fails here in seconds rather
    // than walking 315 million ticks.
    for days in [1, 10, 365, 3650] {
        let (latest, n) = searches(|| job.latest_tick(upto - chrono::Duration::days(days), upto));
        assert_eq!(latest, Some(at("2026-05-01T12:00:00Z")), "{days} days");
        work.push(n);
        assert!(
            work.iter().all(|w| *w == work[0]) && n <= 8,
            "searches for windows of 1, 10, 365, 3650 days: {work:?}"
        );
    }
}

#[test]
fn a_window_with_one_tick_or_none_costs_two_searches_at_most() {
    // The scheduler asks at every wake-up, for every job.
    let job = job_with(&["*/10 * * * * *"], chrono_tz::UTC);
    let t = at("2026-05-01T12:00:05Z");
    let (none, n) = searches(|| job.latest_tick(t, t + chrono::Duration::seconds(2)));
    assert_eq!((none, n), (None, 1));
    let (one, n) = searches(|| job.latest_tick(t, t + chrono::Duration::seconds(7)));
    assert_eq!((one, n), (Some(at("2026-05-01T12:00:10Z")), 2));
}

#[test]
fn the_latest_tick_is_the_last_of_the_forward_walk_across_dst_nights() {
    let exprs: &[&[&str]] = &[
        &["30 2 * * *"],
        &["0 1-3 * * *"],
        &["@daily"],
        &["0 0 * * *", "45 23 * * *"],
        &["*/15 * * * *"],
        &["@hourly"],
        &["*/7 * * * * *"],
        &["20 30 2 * * *"],
        &["0 */2 * * *", "30 2 * * *"],
        &["* * * * *"],
    ];
    // (zone, instants around which windows are tried): spring and autumn nights.
    let nights: &[(Tz, &[&str])] = &[
        (
            chrono_tz::Europe::Berlin,
            &["2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"],
        ),
        (
            chrono_tz::America::New_York,
            &["2025-03-09T07:00:00Z", "2025-11-02T06:00:00Z"],
        ),
        (
            chrono_tz::Australia::Lord_Howe,
            &["2025-04-05T15:00:00Z", "2025-10-04T15:30:00Z"],
        ),
        (chrono_tz::America::Santiago, &["2025-09-07T04:00:00Z"]),
        (chrono_tz::Asia::Beirut, &["2025-03-29T22:00:00Z"]),
    ];
    let mut compared = 0;
    for (tz, centres) in nights {
        for centre in *centres {
            let centre = at(centre);
            for schedules in exprs {
                let job = job_with(schedules, *tz);
                // Every tick from 26 hours before to 26 hours after, walking forward.
                let (from, to) = (
                    centre - chrono::Duration::hours(26),
                    centre + chrono::Duration::hours(26),
                );
                let mut walk = Vec::new();
                let mut t = from;
                while let Some(next) = job.next_after(t).filter(|n| *n <= to) {
                    walk.push(next);
                    t = next;
                }
                // Windows ending at odd instants through the night (and at the
                // ticks themselves, and just before them), of several lengths.
                let mut ends: Vec<DateTime<Utc>> = (0..160)
                    .map(|i| from + chrono::Duration::milliseconds(i * 1_168_277))
                    .collect();
                let near = |t: &&DateTime<Utc>| (**t - centre).num_minutes().abs() < 90;
                for tick in walk.iter().filter(near).step_by(7) {
                    ends.push(*tick);
                    ends.push(*tick - chrono::Duration::milliseconds(1));
                }
                for upto in ends.into_iter().filter(|u| *u <= to) {
                    for back in [1, 59, 3600, 4 * 3600, 26 * 3600] {
                        let after = (upto - chrono::Duration::seconds(back)).max(from);
                        let last = walk.partition_point(|t| *t <= upto);
                        let want = last.checked_sub(1).map(|i| walk[i]).filter(|t| *t > after);
                        assert_eq!(
                            job.latest_tick(after, upto),
                            want,
                            "{schedules:?} in {tz}: ({after}, {upto}]"
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 20_000, "only {compared} comparisons");
}

/// The old walk of `jobrun next`: the earliest next tick over every schedule,
/// again from there.
fn min_walk(job: &Job, mut t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    while out.len() < n {
        let Some(next) = job.next_after(t) else { break };
        out.push(next);
        t = next;
    }
    out
}

#[test]
fn a_jobs_ticks_merge_its_schedules_once_per_instant_across_dst_nights() {
    // Overlapping schedules (09:00 is in both), a fixed time in the spring
    // gap and a wildcard through the autumn overlap.
    let job = job_with(
        &["0 9 * * *", "0 9,17 * * *", "30 2 * * *", "*/20 * * * 0"],
        chrono_tz::Europe::Berlin,
    );
    for from in ["2026-03-27T00:00:00Z", "2026-10-23T00:00:00Z"] {
        let from = at(from);
        let merged = job.next_n(from, 400);
        assert_eq!(merged, min_walk(&job, from, 400));
        assert!(
            merged.windows(2).all(|w| w[0] < w[1]),
            "in order, once each"
        );
    }
    let ticks = job.next_n(at("2026-05-01T00:00:00Z"), 3);
    assert_eq!(
        ticks,
        [
            at("2026-05-01T00:30:00Z"),
            at("2026-05-01T07:00:00Z"),
            at("2026-05-01T15:00:00Z")
        ],
        "09:00 CEST once, though two schedules name it"
    );
}

#[test]
fn a_disabled_or_never_firing_job_has_no_ticks_and_the_walk_ends() {
    let mut job = job_with(&["0 9 * * *"], chrono_tz::UTC);
    std::sync::Arc::make_mut(&mut job.spec).enabled = false;
    assert_eq!(job.iter_after(at("2026-01-01T00:00:00Z")).count(), 0);
    let reboot = job_with(&["@reboot"], chrono_tz::UTC);
    assert_eq!(reboot.iter_after(at("2026-01-01T00:00:00Z")).count(), 0);
    // A schedule that ends leaves the others going.
    let both = job_with(&["@reboot", "0 9 * * *"], chrono_tz::UTC);
    assert_eq!(
        both.next_n(at("2026-01-01T00:00:00Z"), 2),
        [at("2026-01-01T09:00:00Z"), at("2026-01-02T09:00:00Z")]
    );
}

#[test]
fn each_tick_of_a_job_costs_one_search_per_schedule_that_fires_then() {
    // The old walk searched every schedule for every tick: 100 schedules,
    // 100 ticks, 10,000 searches. The merge searches each once to start and
    // then only the one that fired.
    let exprs: Vec<String> = (0..100)
        .map(|m| format!("0 {} {} * * *", m % 60, m / 60))
        .collect();
    let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
    let job = job_with(&exprs, chrono_tz::UTC);
    let (ticks, work) = searches(|| job.next_n(at("2026-01-01T00:00:00Z"), 100));
    assert_eq!(ticks.len(), 100);
    assert!(work <= 200 + 2, "{work} searches");
}
