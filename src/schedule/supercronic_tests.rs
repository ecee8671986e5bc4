//! supercronic's reading of expressions: the 7- and 6-field forms, years,
//! `L`, `W`, `#`, its day rule, and the notes on where it differs from Vixie.
//! Expected dates were read off the calendar (`cal 11 2026` and so on).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{read_supercronic, Schedule};
use crate::job::Dialect;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 instant")
}

fn sc(expr: &str) -> Schedule {
    Schedule::parse(expr, Dialect::Supercronic, Tz::UTC).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// The next `n` times after `from`, as RFC 3339 text.
fn next_n(expr: &str, from: &str, n: usize) -> Vec<String> {
    let s = sc(expr);
    let mut t = at(from);
    let mut out = Vec::new();
    for _ in 0..n {
        match s.next_after(t) {
            Some(next) => {
                out.push(next.format("%Y-%m-%dT%H:%M:%S").to_string());
                t = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn seven_fields_start_with_seconds_and_end_with_a_year() {
    assert_eq!(
        next_n("*/15 * * * * * *", "2026-11-25T10:00:07Z", 4),
        [
            "2026-11-25T10:00:15",
            "2026-11-25T10:00:30",
            "2026-11-25T10:00:45",
            "2026-11-25T10:01:00"
        ]
    );
    assert_eq!(
        next_n("30 0 12 1 1 * 2027-2028", "2026-11-25T10:00:00Z", 3),
        ["2027-01-01T12:00:30", "2028-01-01T12:00:30"]
    );
    assert!(sc("*/15 * * * * * *").has_seconds());
}

#[test]
fn six_fields_end_with_a_year_not_start_with_seconds() {
    // `*/5` is the minute field here: every five minutes, not seconds.
    assert_eq!(
        next_n("*/5 * * * * *", "2026-11-25T10:00:07Z", 2),
        ["2026-11-25T10:05:00", "2026-11-25T10:10:00"]
    );
    assert_eq!(
        next_n("0 9 * * * 2027", "2026-11-25T10:00:00Z", 2),
        ["2027-01-01T09:00:00", "2027-01-02T09:00:00"]
    );
    assert_eq!(
        next_n("0 0 1 1 * */25", "2026-11-25T10:00:00Z", 5),
        [
            "2045-01-01T00:00:00",
            "2070-01-01T00:00:00",
            "2095-01-01T00:00:00"
        ]
    );
    assert!(!sc("0 9 * * * 2027").has_seconds());
}

#[test]
fn years_in_the_past_give_no_times_but_the_schedule_is_valid() {
    let s = sc("0 0 * * * 2020-2024");
    assert_eq!(s.never_fires(), None);
    assert_eq!(s.next_after(at("2026-11-25T00:00:00Z")), None);
    assert_eq!(s.next_after(at("2024-12-31T00:00:00Z")), None);
    assert_eq!(
        s.next_after(at("2024-12-30T12:00:00Z")),
        Some(at("2024-12-31T00:00:00Z"))
    );
    // The last year cronexpr knows; after it nothing.
    assert_eq!(
        next_n("0 0 1 1 * 2099", "2026-11-25T00:00:00Z", 2),
        ["2099-01-01T00:00:00"]
    );
    assert_eq!(
        next_n("* * * * * * *", "2099-12-31T23:59:59Z", 1),
        Vec::<String>::new()
    );
}

#[test]
fn a_far_year_is_found_in_a_few_searches() {
    let s = sc("* * * * * * 2099");
    let before = super::searches_on_this_thread();
    assert_eq!(
        s.next_after(at("2026-01-01T00:00:00Z")),
        Some(at("2099-01-01T00:00:00Z"))
    );
    assert!(super::searches_on_this_thread() - before <= 2);
    let s = sc("* * * * * * 2025");
    assert_eq!(
        s.latest_in(at("2025-01-01T00:00:00Z"), at("2026-06-01T00:00:00Z")),
        Some(at("2025-12-31T23:59:59Z"))
    );
}

#[test]
fn schedules_that_can_never_fire_have_no_times_and_say_why() {
    for expr in ["0 0 30 2 *", "0 0 29 2 * 2027", "0 0 31 4,6 * 2026-2099"] {
        let s = sc(expr);
        assert!(s.never_fires().is_some(), "{expr}");
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), None, "{expr}");
    }
    assert_eq!(
        next_n("0 0 29 2 * 2027-2030", "2026-01-01T00:00:00Z", 2),
        ["2028-02-29T00:00:00"]
    );
}

#[test]
fn last_day_and_last_weekday_of_the_month() {
    assert_eq!(
        next_n("0 0 L * *", "2026-11-25T00:00:00Z", 4),
        [
            "2026-11-30T00:00:00",
            "2026-12-31T00:00:00",
            "2027-01-31T00:00:00",
            "2027-02-28T00:00:00"
        ]
    );
    // January 31 and February 28, 2026 are Saturdays, May 31 a Sunday.
    assert_eq!(
        next_n("0 0 LW 1,2,3,5 *", "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-30T00:00:00",
            "2026-02-27T00:00:00",
            "2026-03-31T00:00:00",
            "2026-05-29T00:00:00"
        ]
    );
}

#[test]
fn nearest_weekday_stays_in_its_month() {
    // 15 Aug 2026 is a Saturday (Friday 14), 15 Nov a Sunday (Monday 16).
    assert_eq!(
        next_n("0 0 15W 8,11 *", "2026-01-01T00:00:00Z", 2),
        ["2026-08-14T00:00:00", "2026-11-16T00:00:00"]
    );
    // 1 Aug 2026 is a Saturday: Monday the 3rd, not Friday 31 July.
    assert_eq!(
        next_n("0 0 1W 8 *", "2026-01-01T00:00:00Z", 1),
        ["2026-08-03T00:00:00"]
    );
    // 31 Jan 2027 is a Sunday, the month's last day: Friday the 29th. November has no 31st.
    assert_eq!(
        next_n("0 0 31W 11,12,1 *", "2026-11-01T00:00:00Z", 2),
        ["2026-12-31T00:00:00", "2027-01-29T00:00:00"]
    );
}

#[test]
fn last_and_nth_weekday_of_the_month() {
    assert_eq!(
        next_n("0 0 * * 5L", "2026-11-01T00:00:00Z", 3),
        [
            "2026-11-27T00:00:00",
            "2026-12-25T00:00:00",
            "2027-01-29T00:00:00"
        ]
    );
    assert_eq!(
        next_n("0 0 * * fri#2", "2026-11-01T00:00:00Z", 3),
        [
            "2026-11-13T00:00:00",
            "2026-12-11T00:00:00",
            "2027-01-08T00:00:00"
        ]
    );
    // A fifth Monday: November 2026, then March 2027.
    assert_eq!(
        next_n("0 0 * * 1#5", "2026-11-01T00:00:00Z", 2),
        ["2026-11-30T00:00:00", "2027-03-29T00:00:00"]
    );
    // 7 is Sunday: `7L` is the last Sunday.
    assert_eq!(
        next_n("0 0 * * 7L", "2026-11-01T00:00:00Z", 1),
        ["2026-11-29T00:00:00"]
    );
}

#[test]
fn the_day_rule_unites_restricted_fields_and_star_slash_is_restricted() {
    // Odd days or Mondays (Vixie: odd Mondays, the 9th and 23rd).
    assert_eq!(
        next_n("0 0 */2 * 1", "2026-10-31T12:00:00Z", 5),
        [
            "2026-11-01T00:00:00",
            "2026-11-02T00:00:00",
            "2026-11-03T00:00:00",
            "2026-11-05T00:00:00",
            "2026-11-07T00:00:00"
        ]
    );
    // A bare `*` in the list makes the field unrestricted: Mondays only
    // (Vixie: `1,*` does not start with `*`, so every day).
    assert_eq!(
        next_n("0 0 1,* * 1", "2026-10-31T12:00:00Z", 2),
        ["2026-11-02T00:00:00", "2026-11-09T00:00:00"]
    );
    assert_eq!(
        next_n("0 0 13 * 5", "2026-11-01T00:00:00Z", 3),
        [
            "2026-11-06T00:00:00",
            "2026-11-13T00:00:00",
            "2026-11-20T00:00:00"
        ]
    );
    assert_eq!(
        next_n("0 0 ? * mon", "2026-11-01T00:00:00Z", 1),
        ["2026-11-02T00:00:00"]
    );
}

#[test]
fn supercronics_own_readings_of_values() {
    // `0-7` is Sunday alone (7 reads as 0).
    assert_eq!(
        next_n("0 0 * * 0-7", "2026-11-01T00:00:00Z", 2),
        ["2026-11-08T00:00:00", "2026-11-15T00:00:00"]
    );
    // A step from a single value runs to the end of the field.
    assert_eq!(
        next_n("5/20 * * * *", "2026-11-01T00:00:00Z", 4),
        [
            "2026-11-01T00:05:00",
            "2026-11-01T00:25:00",
            "2026-11-01T00:45:00",
            "2026-11-01T01:05:00"
        ]
    );
    assert_eq!(
        next_n("0 0 1 JANUARY,jul *", "2026-11-01T00:00:00Z", 2),
        ["2027-01-01T00:00:00", "2027-07-01T00:00:00"]
    );
    assert_eq!(
        next_n("@daily", "2026-11-01T00:00:00Z", 1),
        ["2026-11-02T00:00:00"]
    );
}

#[test]
fn what_supercronic_refuses_is_an_error_naming_the_field() {
    for (expr, field, says) in [
        ("0 0 * * 1-7", "day-of-week", "backwards"),
        ("0 0 * * 05", "day-of-week", "Sunday"),
        ("*/60 * * * *", "minute", "1 to 59"),
        ("0 0 * * */7", "day-of-week", "1 to 6"),
        ("0 0 * * * 1969", "year", "1970-2099"),
        ("0 0 * * * 2100", "year", "1970-2099"),
        ("0 0 * * L", "day-of-week", "not a value"),
        ("0 0 * * 5#6", "day-of-week", "1-5"),
        ("0 24 * * *", "hour", "out of range"),
        ("0 0 0 * *", "day-of-month", "out of range"),
        ("0 0 * * * * * *", "", "found 8"),
        ("0 0 * * 20-10/2", "day-of-week", "not a value"),
        ("0 0 * * 5-1/2", "day-of-week", "backwards"),
    ] {
        let e = Schedule::parse(expr, Dialect::Supercronic, Tz::UTC)
            .expect_err(expr)
            .to_string();
        assert!(e.contains(field) && e.contains(says), "{expr}: {e}");
    }
}

#[test]
fn notes_name_what_vixie_would_read_otherwise() {
    let notes = |e: &str| read_supercronic(e).expect(e).notes.join(" | ");
    assert!(notes("0 9 * * * 2027").contains("the year"));
    assert!(notes("*/10 * * * * * *").contains("seconds"));
    assert!(notes("0 0 */2 * 1").contains("day rule"));
    assert!(notes("0 0 L * *").contains("extension"));
    assert!(notes("0 0 * * 5#2").contains("extension"));
    assert!(notes("0 0 * * 0-7").contains("Sunday alone"));
    assert!(notes("@reboot").contains("not understood by supercronic"));
    // Lines Vixie reads the same way get no note.
    for same in [
        "*/5 * * * *",
        "0 0 1 * 1",
        "0 0 * * 1-5",
        "@hourly",
        "0 0 */2 * *",
    ] {
        assert_eq!(notes(same), "", "{same}");
    }
    assert!(read_supercronic("0 0 30 2 *")
        .expect("parses")
        .never
        .is_some());
    assert!(read_supercronic("0 0 * * 1-7").is_err());
}

#[test]
fn daylight_saving_follows_jobruns_rules() {
    // A fixed time in Berlin's spring-forward gap fires once, at 03:00 CEST.
    let s = Schedule::parse(
        "0 30 2 29 3 * 2026",
        Dialect::Supercronic,
        chrono_tz::Europe::Berlin,
    )
    .expect("parses");
    assert!(s.is_fixed_time());
    assert_eq!(
        s.next_after(at("2026-03-28T00:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
}

/// Where supercronic's reading and croner's (a YAML job) should agree, they
/// do, over years of fire times: an independent check of the day arithmetic.
#[test]
fn agrees_with_croner_on_extensions_where_both_mean_the_same() {
    for expr in [
        "0 0 L * *",
        "0 0 LW * *",
        "0 12 15W * *",
        "0 12 1W * *",
        "0 12 31W * *",
        "0 0 * * 5L",
        "0 0 * * 0L",
        "0 0 * * 5#2",
        "0 0 * * 1#5,3#1",
        "0 0 1,L * 3",
        "0 0 L * 5#3",
        "0 0 13 * 5",
        "30 4 1,15 2 *",
        "0 0 29 2 *",
    ] {
        let ours = sc(expr);
        let croner = Schedule::parse(expr, Dialect::Yaml, Tz::UTC).expect("a YAML schedule");
        let mut t = at("2026-01-01T00:00:00Z");
        for _ in 0..200 {
            let want = croner.next_after(t).expect("fires");
            if want >= at("2100-01-01T00:00:00Z") {
                // supercronic's years end with 2099; croner's go on.
                assert_eq!(ours.next_after(t), None, "{expr} after {t}");
                break;
            }
            assert_eq!(ours.next_after(t), Some(want), "{expr} after {t}");
            t = want;
        }
    }
}
