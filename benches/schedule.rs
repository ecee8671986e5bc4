//! Criterion: fire-time computation (`Schedule::next_after`) for classic,
//! stepped, zoned and DST-crossing schedules, and parsing (issue 6).
//!
//! Each case times one `next_after` call from a fixed instant, so criterion's
//! throughput line reads directly as fire times per second (target: at least
//! 1,000,000/s). The `walk` cases time a chain of successive fire times, as
//! `jobrun next --count N` and the daemon's loop compute them.

use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jobrun::job::Dialect;
use jobrun::schedule::Schedule;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid UTC instant")
}

fn schedule(expr: &str, dialect: Dialect, tz: Tz) -> Schedule {
    Schedule::parse(expr, dialect, tz).expect("the bench expressions are valid")
}

/// (name, expression, dialect, zone, from): one `next_after(from)` per case.
fn cases() -> Vec<(&'static str, &'static str, Dialect, Tz, DateTime<Utc>)> {
    let berlin = chrono_tz::Europe::Berlin;
    let utc = Tz::UTC;
    let may = at(2026, 5, 13, 10, 7);
    vec![
        (
            "classic/every-minute",
            "* * * * *",
            Dialect::Crontab,
            utc,
            may,
        ),
        (
            "classic/daily-0900",
            "0 9 * * *",
            Dialect::Crontab,
            utc,
            may,
        ),
        (
            "classic/weekdays",
            "30 17 * * 1-5",
            Dialect::Crontab,
            utc,
            may,
        ),
        ("classic/monthly", "@monthly", Dialect::Crontab, utc, may),
        (
            "stepped/every-15m",
            "*/15 * * * *",
            Dialect::Crontab,
            utc,
            may,
        ),
        (
            "stepped/ranges",
            "1-30/7 */3 1-15 * mon-fri",
            Dialect::Crontab,
            utc,
            may,
        ),
        ("stepped/seconds", "*/10 * * * * *", Dialect::Yaml, utc, may),
        (
            "zoned/berlin-daily",
            "0 9 * * *",
            Dialect::Crontab,
            berlin,
            may,
        ),
        (
            "zoned/new-york-hourly",
            "0 * * * *",
            Dialect::Crontab,
            chrono_tz::America::New_York,
            may,
        ),
        (
            "zoned/kathmandu-daily",
            "45 6 * * *",
            Dialect::Crontab,
            chrono_tz::Asia::Kathmandu,
            may,
        ),
        // 29 March 2026, Berlin springs forward 02:00 -> 03:00 CET -> CEST.
        (
            "dst/spring-gap-fixed",
            "30 2 * * *",
            Dialect::Crontab,
            berlin,
            at(2026, 3, 28, 23, 0),
        ),
        (
            "dst/spring-gap-wildcard",
            "*/15 2 * * *",
            Dialect::Crontab,
            berlin,
            at(2026, 3, 28, 23, 0),
        ),
        // 25 October 2026, Berlin falls back 03:00 CEST -> 02:00 CET.
        (
            "dst/fall-back-fixed",
            "30 2 * * *",
            Dialect::Crontab,
            berlin,
            at(2026, 10, 25, 0, 10),
        ),
        (
            "dst/fall-back-wildcard",
            "*/15 * * * *",
            Dialect::Crontab,
            berlin,
            at(2026, 10, 25, 0, 50),
        ),
        // A rare schedule: the search has to skip years.
        (
            "rare/feb-29-monday",
            "0 0 29 2 1",
            Dialect::Crontab,
            utc,
            may,
        ),
    ]
}

fn next_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_after");
    group.throughput(Throughput::Elements(1));
    for (name, expr, dialect, tz, from) in cases() {
        let s = schedule(expr, dialect, tz);
        group.bench_function(name, |b| b.iter(|| s.next_after(black_box(from))));
    }
    group.finish();
}

fn walk(c: &mut Criterion) {
    const STEPS: u64 = 1_000;
    let mut group = c.benchmark_group("walk_1000");
    group.throughput(Throughput::Elements(STEPS));
    let walks = [
        ("every-minute-utc", "* * * * *", Tz::UTC),
        (
            "every-15m-berlin",
            "*/15 * * * *",
            chrono_tz::Europe::Berlin,
        ),
        ("daily-berlin", "30 2 * * *", chrono_tz::Europe::Berlin),
    ];
    for (name, expr, tz) in walks {
        let s = schedule(expr, Dialect::Crontab, tz);
        let start = at(2026, 1, 1, 0, 0);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut t = start;
                for _ in 0..STEPS {
                    t = s.next_after(t).expect("these schedules always fire again");
                }
                t
            })
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, expr, dialect, tz, _) in cases().into_iter().step_by(3) {
        group.bench_function(name, |b| {
            b.iter(|| Schedule::parse(black_box(expr), dialect, tz))
        });
    }
    group.finish();
}

criterion_group!(benches, next_after, walk, parse);
criterion_main!(benches);
