//! Criterion: reading and merging 10,000 crontab entries into one plan, and the
//! plan queries the daemon's loop and `jobrun list` make over many jobs
//! (`next_wakeup`, `due`) (issue 6).
//!
//! The crontab is generated: 10,000 entries over 9,000 distinct commands, so
//! 1,000 entries merge into jobs already seen (SPEC 3), with a mix of classic,
//! stepped and `CRON_TZ` schedules and derived names that collide.

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jobrun::plan::Plan;
use jobrun::source::crontab::{parse_crontab, CrontabFormat};

const ENTRIES: usize = 10_000;
const DISTINCT: usize = 9_000;

/// A user-format crontab with `entries` lines (`distinct` different commands).
fn crontab(entries: usize, distinct: usize) -> String {
    let schedules = [
        "*/5 * * * *",
        "0 9 * * 1-5",
        "17 */2 * * *",
        "@hourly",
        "30 2 * * *",
        "1-30/7 4 1,15 * *",
    ];
    let mut text = String::from("SHELL=/bin/sh\nPATH=/usr/local/bin:/usr/bin:/bin\n");
    for i in 0..entries {
        if i % 2_000 == 0 {
            // Zones switch every 2,000 entries.
            let zone = ["UTC", "Europe/Berlin", "America/New_York"][i / 2_000 % 3];
            text.push_str(&format!("CRON_TZ={zone}\n"));
        }
        let cmd = i % distinct;
        text.push_str(&format!(
            "{} /usr/local/bin/task-{} --shard {} >/dev/null 2>&1\n",
            schedules[i % schedules.len()],
            cmd % 500,
            cmd
        ));
    }
    text
}

fn merge(c: &mut Criterion) {
    let text = crontab(ENTRIES, DISTINCT);
    let path = Path::new("/bench/crontab");
    let mut group = c.benchmark_group("merge_10000_entries");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(20);
    group.bench_function("parse_crontab", |b| {
        b.iter(|| parse_crontab(path, black_box(text.as_bytes()), CrontabFormat::User, None))
    });
    let set = parse_crontab(path, text.as_bytes(), CrontabFormat::User, None);
    assert_eq!(set.jobs.len(), ENTRIES, "every generated entry parses");
    group.bench_function("plan_build", |b| {
        b.iter_batched(
            || set.clone(),
            |set| Plan::build(set, Tz::UTC),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("parse_and_build", |b| {
        b.iter(|| {
            let set = parse_crontab(path, black_box(text.as_bytes()), CrontabFormat::User, None);
            Plan::build(set, Tz::UTC)
        })
    });
    group.finish();
}

fn queries(c: &mut Criterion) {
    let now = Utc
        .with_ymd_and_hms(2026, 5, 13, 10, 7, 30)
        .single()
        .expect("a valid instant");
    let mut group = c.benchmark_group("plan_queries");
    for jobs in [1_000usize, 10_000] {
        let text = crontab(jobs, jobs);
        let set = parse_crontab(
            Path::new("/bench/crontab"),
            text.as_bytes(),
            CrontabFormat::User,
            None,
        );
        let (plan, _) = Plan::build(set, Tz::UTC);
        group.throughput(Throughput::Elements(jobs as u64));
        group.bench_function(format!("next_wakeup/{jobs}_jobs"), |b| {
            b.iter(|| plan.next_wakeup(black_box(now)))
        });
        // One minute of the loop's window, as the daemon asks after each wake-up.
        let upto = now + chrono::Duration::minutes(1);
        group.bench_function(format!("due_1min/{jobs}_jobs"), |b| {
            b.iter(|| plan.due(black_box(now), upto).len())
        });
    }
    group.finish();
}

criterion_group!(benches, merge, queries);
criterion_main!(benches);
