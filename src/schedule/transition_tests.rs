//! Tests of [`Schedule`] at the edges of UTC offset changes: every start instant
//! of the minutes before a transition (whole seconds and instants within a second),
//! in zones that skip 02:00, half an hour (Lord Howe) or midnight (Santiago, Beirut,
//! Havana), checked against the naive reference of `tests`. The forward search must
//! give the same set of ticks whatever instant it starts from (issue 11: a gap run
//! was found only when the search started two seconds or more before the gap).

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::tests::{brute_force, crontab, ref_offset, Reference};

/// Every offset change in `[from, to)`, to the second: probed hourly, then bisected.
fn transitions(tz: Tz, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let next = t + 3600;
        if ref_offset(tz, next) != ref_offset(tz, t) {
            let (mut same, mut differs) = (t, next);
            while differs - same > 1 {
                let mid = same + (differs - same) / 2;
                if ref_offset(tz, mid) == ref_offset(tz, t) {
                    same = mid;
                } else {
                    differs = mid;
                }
            }
            out.push(differs);
        }
        t = next;
    }
    out
}

fn instant(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).expect("in range")
}

const EXPRS: [&str; 14] = [
    "30 2 * * *",
    "0 2 * * *",
    "59 1 * * *",
    "0 1-3 * * *",
    "15 1-3 * * *",
    "0,30 2,3 * * *",
    "30 0 * * *",
    "0 0 * * *",
    "@daily",
    "45 23 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "* * * * *",
    "@hourly",
];

/// (zone, the year whose transitions are tested).
const ZONES: [(Tz, i32); 7] = [
    (chrono_tz::Europe::Berlin, 2025),
    (chrono_tz::America::New_York, 2025),
    // Half-hour shift: 02:00 -> 02:30 in October, 02:00 -> 01:30 in April.
    (chrono_tz::Australia::Lord_Howe, 2025),
    // Midnight is skipped: 24:00 -> 01:00 in September.
    (chrono_tz::America::Santiago, 2025),
    // Midnight is skipped: 00:00 -> 01:00 at the end of March.
    (chrono_tz::Asia::Beirut, 2025),
    (chrono_tz::America::Havana, 2025),
    // Changed at local midnight (2018-11-04 00:00 -> 01:00).
    (chrono_tz::America::Sao_Paulo, 2018),
];

fn year_bounds(year: i32) -> (i64, i64) {
    let start = |y| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .expect("valid date")
            .and_hms_opt(0, 0, 0)
            .expect("valid time")
            .and_utc()
            .timestamp()
    };
    (start(year), start(year + 1))
}

#[test]
fn a_gap_run_is_found_from_every_instant_before_the_gap() {
    let mut gaps = 0;
    let mut compared = 0;
    for (tz, year) in ZONES {
        let (from, to) = year_bounds(year);
        let found = transitions(tz, from, to);
        assert!(!found.is_empty(), "{tz} changes offset in {year}");
        for t in found {
            if ref_offset(tz, t) > ref_offset(tz, t - 1) {
                gaps += 1;
            }
            for expr in EXPRS {
                let s = crontab(expr, tz);
                // Minute-aligned reference window: the ticks around t, and far enough
                // past it for the next daily tick.
                let start = (t - 4 * 3600).div_euclid(60) * 60;
                let expected = brute_force(&Reference::new(expr), tz, start, t + 2 * 86_400);
                let want = |x: DateTime<Utc>| {
                    expected
                        .iter()
                        .copied()
                        .find(|e| instant(*e, 0) > x)
                        .expect("a tick within two days")
                };
                let mut starts: Vec<DateTime<Utc>> =
                    (t - 180..=t + 2).map(|x| instant(x, 0)).collect();
                for x in [t - 2, t - 1, t] {
                    for nanos in [1, 500_000_000, 999_999_999] {
                        starts.push(instant(x, nanos));
                    }
                }
                for x in starts {
                    let got = s.next_after(x).expect("fires");
                    assert_eq!(
                        got.timestamp(),
                        want(x),
                        "{expr} in {tz} from {x} (transition at {})",
                        instant(t, 0)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(
        gaps >= ZONES.len(),
        "only {gaps} spring-forward transitions"
    );
    assert!(compared > 20_000, "only {compared} comparisons");
}

#[test]
fn the_issue_case_berlin_2025_from_the_last_second_before_the_gap() {
    let s = crontab("30 2 * * *", chrono_tz::Europe::Berlin);
    let gap_run: DateTime<Utc> = "2025-03-30T01:00:00Z".parse().expect("valid");
    for from in [
        "2025-03-30T00:59:58Z",
        "2025-03-30T00:59:59Z",
        "2025-03-30T00:59:59.999Z",
    ] {
        let from: DateTime<Utc> = from.parse().expect("valid");
        assert_eq!(s.next_after(from), Some(gap_run), "from {from}");
    }
    // Strictly after: from the gap run itself, the next day's 02:30 CEST.
    assert_eq!(
        s.next_after(gap_run),
        Some("2025-03-31T00:30:00Z".parse().expect("valid"))
    );
}

#[test]
fn a_leap_second_instant_counts_as_after_its_whole_second() {
    // `--from 2016-12-31T23:59:60Z`: chrono reads it as 23:59:59 plus 1.5 s of
    // nanoseconds (a leap second), which is after 23:59:59 and before 00:00:00.
    let leap = DateTime::parse_from_rfc3339("2016-12-31T23:59:60Z")
        .expect("chrono reads a leap second")
        .with_timezone(&Utc);
    let second: DateTime<Utc> = "2016-12-31T23:59:59Z".parse().expect("valid");
    let new_year: DateTime<Utc> = "2017-01-01T00:00:00Z".parse().expect("valid");
    for s in [
        super::tests::yaml("* * * * * *", chrono_tz::UTC),
        crontab("@daily", chrono_tz::UTC),
        crontab("0 0 * * *", chrono_tz::Europe::London),
    ] {
        assert_eq!(s.next_after(leap), Some(new_year), "{}", s.expr());
    }
    let per_second = super::tests::yaml("* * * * * *", chrono_tz::UTC);
    assert_eq!(
        per_second.latest_in(second - chrono::Duration::seconds(5), leap),
        Some(second)
    );
    assert_eq!(per_second.latest_in(second, leap), None);
}

#[test]
fn the_ends_of_the_time_line_give_no_tick_rather_than_a_panic() {
    let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let horizon: DateTime<Utc> = "5000-12-31T23:59:59Z".parse().expect("valid");
    for tz in [
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::Australia::Lord_Howe,
    ] {
        let per_second = super::tests::yaml("* * * * * *", tz);
        assert_eq!(per_second.next_after(max), None);
        assert_eq!(per_second.next_after(horizon), None);
        assert!(per_second.next_after(min).is_some());
        // Past croner's year-5000 horizon (by the zone's wall clock) there is
        // nothing; the latest tick of the whole time line is its last second.
        let last = tz
            .with_ymd_and_hms(5000, 12, 31, 23, 59, 59)
            .single()
            .expect("one instant")
            .with_timezone(&Utc);
        assert_eq!(per_second.latest_in(min, max), Some(last), "{tz}");
        let daily = crontab("30 2 * * *", tz);
        assert_eq!(daily.latest_in(horizon, max), None);
        assert!(daily.latest_in(min, max).is_some_and(|t| t <= horizon));
    }
}
