//! Tests of [`Schedule`]: hand-computed tables, and a deliberately naive reference
//! (its own field matcher, minute-by-minute walk over UTC instants, SPEC 2's DST rules
//! applied literally) compared with `next_after` over many expressions, zones and
//! start instants. The reference shares no code with the implementation and does not
//! use croner.

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::{Schedule, ScheduleError};
use crate::job::Dialect;

const BERLIN: Tz = chrono_tz::Europe::Berlin;
const NEW_YORK: Tz = chrono_tz::America::New_York;
const LORD_HOWE: Tz = chrono_tz::Australia::Lord_Howe;
const KATHMANDU: Tz = chrono_tz::Asia::Kathmandu;
const UTC: Tz = chrono_tz::UTC;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instants are valid RFC 3339")
        .with_timezone(&Utc)
}

pub(super) fn crontab(expr: &str, tz: Tz) -> Schedule {
    Schedule::parse(expr, Dialect::Crontab, tz).expect("test expression parses")
}

pub(super) fn yaml(expr: &str, tz: Tz) -> Schedule {
    Schedule::parse(expr, Dialect::Yaml, tz).expect("test expression parses")
}

/// The first `n` fire instants after `from`, as RFC 3339 strings.
fn fires(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut t = at(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next_after(t).expect("schedule fires");
        out.push(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    out
}

// ---------------------------------------------------------------------------
// Hand-computed cases
// ---------------------------------------------------------------------------

#[test]
fn hand_computed_next_fires() {
    // (expression, dialect, zone, from, expected fires; reasoning)
    let cases: &[(&str, Dialect, Tz, &str, &[&str])] = &[
        // 2026-03-29 is the last Sunday of March; CET->CEST at 01:00Z, so 02:00-03:00
        // local does not exist. The fixed time 02:30 fires once at 03:00 CEST = 01:00Z.
        // The day before, 02:30 CET = 01:30Z; the day after, 02:30 CEST = 00:30Z.
        (
            "30 2 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ],
        ),
        // 03:00 exists on the spring day (03:00 CEST = 01:00Z); it fires once there.
        (
            "0 3 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"],
        ),
        // Two fixed times in the gap (02:00, 02:30) still fire once, at 01:00Z; 03:00
        // CEST is the same instant and does not fire again; 03:30 CEST = 01:30Z.
        (
            "0,30 2,3 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-03-29T00:00:00Z",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:30:00Z",
                "2026-03-30T00:00:00Z",
            ],
        ),
        // Wildcard on the spring day: 01:30 CET = 00:30Z, then 02:00 and 02:30 do not
        // exist, next is 03:00 CEST = 01:00Z.
        (
            "*/30 * * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-03-29T00:15:00Z",
            &[
                "2026-03-29T00:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:30:00Z",
            ],
        ),
        // `*/20 2 * * *` starts with `*`, so it is a wildcard: hour 2 does not exist on
        // 29 March and nothing fires until 02:00 CEST on the 30th = 00:00Z.
        (
            "*/20 2 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-03-28T23:00:00Z",
            &["2026-03-30T00:00:00Z", "2026-03-30T00:20:00Z"],
        ),
        // 2026-10-25 is the last Sunday of October; CEST->CET at 01:00Z, so 02:00-03:00
        // local happens twice (00:00Z-01:00Z CEST, 01:00Z-02:00Z CET). The fixed time
        // 02:30 fires at its first occurrence (00:30Z) only; next day 02:30 CET = 01:30Z.
        (
            "30 2 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        // Starting inside the second pass, the repeated 02:30 is still skipped.
        (
            "30 2 * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-10-25T01:10:00Z",
            &["2026-10-26T01:30:00Z"],
        ),
        // Wildcard hourly in fall back: 02:00 CEST (00:00Z), 02:00 CET (01:00Z), 03:00 CET.
        (
            "0 * * * *",
            Dialect::Crontab,
            BERLIN,
            "2026-10-24T23:30:00Z",
            &[
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z",
            ],
        ),
        // New York 2026-03-08 (second Sunday of March): EST->EDT at 02:00 EST = 07:00Z.
        // 02:30 is in the gap: fires at 03:00 EDT = 07:00Z; next day 02:30 EDT = 06:30Z.
        (
            "30 2 * * *",
            Dialect::Crontab,
            NEW_YORK,
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        // New York 2026-11-01 (first Sunday of November): EDT->EST at 02:00 EDT = 06:00Z;
        // 01:00-02:00 repeats. 01:30 fires at 01:30 EDT = 05:30Z only; next day 01:30 EST
        // = 06:30Z.
        (
            "30 1 * * *",
            Dialect::Crontab,
            NEW_YORK,
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        // Hourly wildcard there: 01:00 EDT (05:00Z), 01:00 EST (06:00Z), 02:00 EST (07:00Z).
        (
            "0 * * * *",
            Dialect::Crontab,
            NEW_YORK,
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
            ],
        ),
        // Lord Howe 2026-04-05 (first Sunday of April): 02:00 LHDT (+11:00) -> 01:30 LHST
        // (+10:30) at 15:00Z on 04-04; 01:30-02:00 repeats. 01:45 fires at 01:45 +11:00 =
        // 14:45Z only; next day 01:45 +10:30 = 15:15Z on 04-05.
        (
            "45 1 * * *",
            Dialect::Crontab,
            LORD_HOWE,
            "2026-04-04T12:00:00Z",
            &["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"],
        ),
        // Wildcard there fires in both passes: 01:30 and 01:45 at +11:00 (14:30Z, 14:45Z),
        // again at +10:30 (15:00Z, 15:15Z), then 02:00 +10:30 = 15:30Z.
        (
            "*/15 * * * *",
            Dialect::Crontab,
            LORD_HOWE,
            "2026-04-04T14:20:00Z",
            &[
                "2026-04-04T14:30:00Z",
                "2026-04-04T14:45:00Z",
                "2026-04-04T15:00:00Z",
                "2026-04-04T15:15:00Z",
                "2026-04-04T15:30:00Z",
            ],
        ),
        // Lord Howe 2026-10-04 (first Sunday of October): 02:00 LHST (+10:30) -> 02:30
        // LHDT (+11:00) at 15:30Z on 10-03; 02:00-02:30 does not exist. 02:15 fires at
        // 02:30 LHDT = 15:30Z; next day 02:15 +11:00 = 15:15Z on 10-04.
        (
            "15 2 * * *",
            Dialect::Crontab,
            LORD_HOWE,
            "2026-10-03T12:00:00Z",
            &["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"],
        ),
        // Wildcard there: 01:45 +10:30 = 15:15Z, then 02:00 and 02:15 do not exist, then
        // 02:30 +11:00 = 15:30Z, 02:45 = 15:45Z.
        (
            "*/15 * * * *",
            Dialect::Crontab,
            LORD_HOWE,
            "2026-10-03T15:10:00Z",
            &[
                "2026-10-03T15:15:00Z",
                "2026-10-03T15:30:00Z",
                "2026-10-03T15:45:00Z",
            ],
        ),
        // Kathmandu is +05:45 all year: 09:00 local = 03:15Z.
        (
            "0 9 * * *",
            Dialect::Crontab,
            KATHMANDU,
            "2026-06-01T00:00:00Z",
            &["2026-06-01T03:15:00Z", "2026-06-02T03:15:00Z"],
        ),
        // Feb 29 exists only in leap years; after 2026-03-01 the next is 2028.
        (
            "0 0 29 2 *",
            Dialect::Crontab,
            UTC,
            "2026-03-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        // Day rule AND (`*/2` starts with `*`): odd days that are Mondays. January 2026
        // Mondays are 5, 12, 19, 26: odd ones 5 and 19; February Mondays 2, 9, 16, 23:
        // odd ones 9 and 23.
        (
            "0 0 */2 * 1",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-05T00:00:00Z",
                "2026-01-19T00:00:00Z",
                "2026-02-09T00:00:00Z",
                "2026-02-23T00:00:00Z",
            ],
        ),
        // Day rule OR: the 1st, the 15th, or any Friday. 2026-01-02 and 09 are Fridays,
        // the 15th is a Thursday, 16 is a Friday.
        (
            "0 0 1,15 * 5",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-02T00:00:00Z",
                "2026-01-09T00:00:00Z",
                "2026-01-15T00:00:00Z",
                "2026-01-16T00:00:00Z",
            ],
        ),
        // Names: 2026-01-03 is a Saturday; next weekday noon is Monday the 5th.
        (
            "0 12 * * mon-fri",
            Dialect::Crontab,
            UTC,
            "2026-01-03T00:00:00Z",
            &["2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"],
        ),
        (
            "0 0 1 JAN-Mar *",
            Dialect::Crontab,
            UTC,
            "2026-03-02T00:00:00Z",
            &["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"],
        ),
        // Leading zeros.
        (
            "05 007 * * *",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-01T07:05:00Z"],
        ),
        // Seconds (YAML): every 10 seconds, and a fixed second.
        (
            "*/10 * * * * *",
            Dialect::Yaml,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"],
        ),
        (
            "30 0 12 * * *",
            Dialect::Yaml,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"],
        ),
        // A fixed-time 6-field schedule in the Berlin gap fires once at 01:00Z.
        (
            "*/20 30 2 * * *",
            Dialect::Yaml,
            BERLIN,
            "2026-03-29T00:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        ),
        // croner extensions (YAML): last day of February 2026 is the 28th; the last
        // Friday of January 2026 is the 30th (Fridays 2, 9, 16, 23, 30); the second is
        // the 9th; Feb 15 2026 is a Sunday, so the nearest weekday is Monday the 16th.
        (
            "0 0 L * *",
            Dialect::Yaml,
            UTC,
            "2026-02-01T00:00:00Z",
            &["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"],
        ),
        (
            "0 0 * * 5L",
            Dialect::Yaml,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-30T00:00:00Z"],
        ),
        (
            "0 0 * * fri#2",
            Dialect::Yaml,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-09T00:00:00Z", "2026-02-13T00:00:00Z"],
        ),
        (
            "0 0 15W * *",
            Dialect::Yaml,
            UTC,
            "2026-02-01T00:00:00Z",
            &["2026-02-16T00:00:00Z", "2026-03-16T00:00:00Z"],
        ),
        // Macros as Vixie expands them: @weekly = `0 0 * * 0`; 2026-01-04 is a Sunday.
        (
            "@weekly",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"],
        ),
        (
            "@YEARLY",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2027-01-01T00:00:00Z"],
        ),
        (
            "@monthly",
            Dialect::Crontab,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-02-01T00:00:00Z"],
        ),
        (
            "@hourly",
            Dialect::Yaml,
            UTC,
            "2026-01-01T00:00:00Z",
            &["2026-01-01T01:00:00Z"],
        ),
        // @daily is fixed-time: on the Berlin spring day midnight exists, so plain.
        (
            "@midnight",
            Dialect::Crontab,
            BERLIN,
            "2026-03-28T12:00:00Z",
            &["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"],
        ),
    ];
    for (expr, dialect, tz, from, expected) in cases {
        let s = Schedule::parse(expr, *dialect, *tz).expect("test expression parses");
        assert_eq!(
            fires(&s, from, expected.len()),
            *expected,
            "{expr} in {tz} after {from}"
        );
    }
}

#[test]
fn fifteen_minute_wildcard_fires_eight_times_in_the_repeated_berlin_hour() {
    // 02:00 CEST = 00:00Z to 03:00 CET = 02:00Z is two real hours of wall time 02:xx.
    let s = crontab("*/15 * * * *", BERLIN);
    let mut t = at("2026-10-24T23:59:59Z");
    let mut count = 0;
    loop {
        t = s.next_after(t).expect("fires");
        if t >= at("2026-10-25T02:00:00Z") {
            break;
        }
        count += 1;
    }
    assert_eq!(count, 8);
}

#[test]
fn next_after_is_strictly_after_and_whole_seconds() {
    let every_second = yaml("* * * * * *", UTC);
    let t = at("2026-01-01T10:00:00.5Z");
    assert_eq!(every_second.next_after(t), Some(at("2026-01-01T10:00:01Z")));
    let t = at("2026-01-01T10:00:00Z");
    assert_eq!(every_second.next_after(t), Some(at("2026-01-01T10:00:01Z")));

    let minutely = crontab("* * * * *", UTC);
    let t = at("2026-01-01T10:00:00Z");
    assert_eq!(minutely.next_after(t), Some(at("2026-01-01T10:01:00Z")));
    let t = at("2026-01-01T09:59:59.999Z");
    assert_eq!(minutely.next_after(t), Some(at("2026-01-01T10:00:00Z")));
    assert_eq!(
        minutely.next_after(t).map(|d| d.timestamp_subsec_nanos()),
        Some(0)
    );
}

#[test]
fn sunday_is_zero_and_seven_and_macros_match_their_expansions() {
    let pairs = [
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * sun", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("@weekly", "0 0 * * 0"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("0 0 * * 1-5", "0 0 * * mon-fri"),
        ("0 0 1 jan-mar *", "0 0 1 1,2,3 *"),
        ("0 0 1 */4 *", "0 0 1 1,5,9 *"),
    ];
    for (a, b) in pairs {
        for tz in [UTC, BERLIN, NEW_YORK] {
            let (sa, sb) = (crontab(a, tz), crontab(b, tz));
            assert_eq!(
                fires(&sa, "2026-01-01T00:00:00Z", 30),
                fires(&sb, "2026-01-01T00:00:00Z", 30),
                "{a} vs {b} in {tz}"
            );
            assert_eq!(sa.is_fixed_time(), sb.is_fixed_time(), "{a} vs {b}");
        }
    }
}

#[test]
fn accessors() {
    let s = crontab("  30 2 * * *  ", BERLIN);
    assert_eq!(s.expr(), "30 2 * * *");
    assert_eq!(s.timezone(), BERLIN);
    assert!(!s.is_reboot());
    assert!(!s.has_seconds());

    let reboot = crontab("@Reboot", UTC);
    assert!(reboot.is_reboot());
    assert_eq!(reboot.next_after(at("2026-01-01T00:00:00Z")), None);
    assert!(!reboot.is_fixed_time());

    assert!(yaml("0 0 * * * *", UTC).has_seconds());

    // SPEC 2: fixed-time when neither minute nor hour starts with `*`.
    let fixed = [
        "30 2 * * *",
        "0 1-3 * * *",
        "0-59/10 2 * * *",
        "0,30 2,3 * * *",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
    ];
    let wildcard = [
        "*/15 * * * *",
        "0 * * * *",
        "@hourly",
        "0 */2 * * *",
        "*/5 2 * * *",
    ];
    for e in fixed {
        assert!(crontab(e, UTC).is_fixed_time(), "{e}");
    }
    for e in wildcard {
        assert!(!crontab(e, UTC).is_fixed_time(), "{e}");
    }
    // 6 fields: the minute and hour are fields 2 and 3.
    assert!(yaml("*/10 30 2 * * *", UTC).is_fixed_time());
    assert!(!yaml("0 */5 2 * * *", UTC).is_fixed_time());
}

#[test]
fn rejections_have_clear_messages() {
    use Dialect::{Crontab, Yaml};
    let cases: &[(&str, Dialect, &str)] = &[
        ("", Crontab, "empty schedule: expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily"),
        ("0 0 * *", Crontab, "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found 4"),
        ("0 0 * *", Yaml, "expected 5 fields (minute hour day-of-month month day-of-week), 6 with leading seconds, or a macro such as @daily, found 4"),
        ("0 0 0 * * *", Crontab, "6 fields: seconds fields are only accepted in YAML jobs; a crontab entry has 5 (minute hour day-of-month month day-of-week)"),
        ("0 0 0 * * * 2026", Crontab, "7 fields: year fields are not supported; use 5 fields (minute hour day-of-month month day-of-week)"),
        ("0 0 0 * * * 2026", Yaml, "7 fields: year fields are not supported; use 5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds"),
        ("@foo", Crontab, "unknown macro @foo (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @reboot)"),
        ("@every 5m", Yaml, "unknown macro @every (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @reboot)"),
        ("@daily 0", Crontab, "@daily stands alone, but `0` follows it; write either the macro or 5 fields"),
        ("0 24 * * *", Crontab, "hour field: 24 is out of range 0-23"),
        ("60 0 * * *", Crontab, "minute field: 60 is out of range 0-59"),
        ("0 0 0 * *", Crontab, "day-of-month field: 0 is out of range 1-31"),
        ("0 0 32 * *", Crontab, "day-of-month field: 32 is out of range 1-31"),
        ("0 0 * 13 *", Crontab, "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", Crontab, "day-of-week field: 8 is out of range 0-7"),
        ("0 0-24 * * *", Crontab, "hour field: 24 is out of range 0-23"),
        ("0 99999999999 * * *", Crontab, "hour field: 99999999999 is out of range 0-23"),
        ("0/15 * * * *", Crontab, "minute field: `0/15` steps from a single value, which classic cron rejects; write a range such as `0-59/15`"),
        ("0/15 * * * *", Yaml, "minute field: `0/15` steps from a single value, which classic cron rejects; write a range such as `0-59/15`"),
        ("0 0 ? * *", Crontab, "day-of-month field: `?` is not understood by classic cron; use `*` for any value"),
        ("0 0 * * ?", Crontab, "day-of-week field: `?` is not understood by classic cron; use `*` for any value"),
        ("0 0 L * *", Crontab, "day-of-month field: `L` is a croner extension that classic cron does not understand; move this job to a YAML file to use it"),
        ("0 0 15W * *", Crontab, "day-of-month field: `15W` is a croner extension that classic cron does not understand; move this job to a YAML file to use it"),
        ("0 0 * * 5L", Crontab, "day-of-week field: `5L` is a croner extension that classic cron does not understand; move this job to a YAML file to use it"),
        ("0 0 * * 5#2", Crontab, "day-of-week field: `5#2` is a croner extension that classic cron does not understand; move this job to a YAML file to use it"),
        ("*/0 * * * *", Crontab, "minute field: `*/0` has step 0, which never advances; use a step of 1 or more"),
        ("0 0 1-10/0 * *", Crontab, "day-of-month field: `1-10/0` has step 0, which never advances; use a step of 1 or more"),
        ("0 5-1 * * *", Crontab, "hour field: range `5-1` runs backwards, which classic cron refuses; to wrap around from 5 to 1 write `5-23,0-1`"),
        ("0 0 * * fri-sun", Crontab, "day-of-week field: range `fri-sun` runs backwards (Sunday is 0 and 7), which classic cron refuses; for the days from fri round to sun write `5-7`"),
        ("0 1,,2 * * *", Crontab, "hour field: empty list item in `1,,2`; remove the extra comma"),
        ("0 1, * * *", Crontab, "hour field: empty list item in `1,`; remove the extra comma"),
        ("0 0 * * monday", Crontab, "day-of-week field: `monday` is not a day-of-week (use 0-7 or sun-sat)"),
        ("0 0 * mon *", Crontab, "month field: `mon` is not a month (use 1-12 or jan-dec)"),
        ("0 jan * * *", Crontab, "hour field: `jan` is not a number in 0-23"),
        ("0 0 * * 5L", Crontab, "day-of-week field: `5L` is a croner extension that classic cron does not understand; move this job to a YAML file to use it"),
        ("*/x * * * *", Crontab, "minute field: `*/x`: the step after `/` must be a number, as in `*/5`"),
        ("*-5 * * * *", Crontab, "minute field: `*` cannot be one end of a range in `*-5`; use `*` alone or `a-b`"),
        ("0 0 30 2 *", Yaml, "never fires: February has no day 30"),
        ("0 0 31 4 *", Yaml, "never fires: April has no day 31"),
        ("0 0 31 4,6 *", Yaml, "never fires: April and June have no day 31"),
        ("0 0 30,31 feb *", Yaml, "never fires: February has no day 30 or 31"),
        ("0 0 31 2,4,6 *", Yaml, "never fires: February, April and June have no day 31"),
        ("0 0 0 30 2 *", Yaml, "never fires: February has no day 30"),
        // `*/1` in day-of-week starts with `*`, so AND applies and it still never fires.
        // (Errors in YAML; in a crontab such a schedule has no times: see below.)
        ("0 0 30 2 */1", Yaml, "never fires: February has no day 30"),
        ("0 0 30W 2 *", Yaml, "never fires: no day in the 400-year calendar cycle matches its day-of-month, month and day-of-week fields"),
        ("0 0 * * L", Yaml, "day-of-week field: `L` is not understood; day-of-week accepts `5L` (last Friday of the month) or `5#2` (second Friday)"),
        ("0 0 5L * *", Yaml, "day-of-month field: `5L` is not understood; day-of-month accepts `L` (last day), `LW` (last weekday) or `15W` (weekday nearest the 15th)"),
        ("0 0 * * 5#6", Yaml, "day-of-week field: `5#6`: the number after `#` must be 1-5 (which week of the month)"),
        ("0 0 L * * *", Yaml, "hour field: `L` is not a number in 0-23"),
        ("0 0 * * ?1", Yaml, "day-of-week field: `?` can only stand alone, found `?1`; use `*` for any value"),
    ];
    for (expr, dialect, message) in cases {
        let got = Schedule::parse(expr, *dialect, UTC).map(|s| s.expr().to_string());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(message.to_string()),
            "{expr:?} ({dialect:?})"
        );
    }
    assert_eq!(
        Schedule::parse("0 0 30 2 *", Dialect::Yaml, UTC).map(|_| ()),
        Err(ScheduleError::NeverFires(
            "February has no day 30".to_string()
        ))
    );
}

#[test]
fn accepted_expressions() {
    use Dialect::{Crontab, Yaml};
    let cases: &[(&str, Dialect)] = &[
        ("0 0 29 2 *", Crontab),
        // OR rule: fires on April Mondays although April has no 31st.
        ("0 0 31 4 1", Crontab),
        ("0-59/15 * * * *", Crontab),
        ("1-30/7 * * * *", Crontab),
        ("0 0 * jul *", Crontab),
        ("0 0 * * wed-fri", Crontab),
        ("0 0 * * WED", Crontab),
        ("0 0 1,15 * *", Crontab),
        ("*/100 * * * *", Crontab),
        ("0 0 ? * *", Yaml),
        ("0 0 0 ? * mon", Yaml),
        ("0 0 L * *", Yaml),
        ("0 0 LW * *", Yaml),
        ("0 0 1,L * *", Yaml),
        ("0 0 * * 5L", Yaml),
        ("0 0 * * 7L", Yaml),
        ("0 0 * * fri#2", Yaml),
        ("0 0 * * 1#1,5L", Yaml),
        ("@reboot", Yaml),
        ("@DAILY", Crontab),
    ];
    for (expr, dialect) in cases {
        if let Err(e) = Schedule::parse(expr, *dialect, UTC) {
            panic!("{expr:?} ({dialect:?}) must be accepted: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Naive reference
// ---------------------------------------------------------------------------

/// A classic 5-field expression as plain sets, parsed without croner.
pub(super) struct Reference {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    dow: Vec<bool>,
    day_and: bool,
    fixed: bool,
}

fn ref_field(text: &str, lo: u32, hi: u32, names: &[&str], first_name: u32) -> Vec<bool> {
    let value = |s: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| first_name + i as u32)
            .unwrap_or_else(|| s.parse().expect("reference expressions are valid"))
    };
    let mut set = vec![false; hi as usize + 1];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().expect("step")),
            None => (item, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a), value(b))
        } else {
            (value(range), value(range))
        };
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    set
}

impl Reference {
    pub(super) fn new(expr: &str) -> Reference {
        let expr = match expr {
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            e => e,
        };
        let f: Vec<&str> = expr.split_whitespace().collect();
        assert_eq!(f.len(), 5, "reference reads 5 fields");
        let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let months = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let mut dow = ref_field(f[4], 0, 7, &days, 0);
        dow[0] |= dow[7];
        Reference {
            minute: ref_field(f[0], 0, 59, &[], 0),
            hour: ref_field(f[1], 0, 23, &[], 0),
            dom: ref_field(f[2], 1, 31, &[], 0),
            month: ref_field(f[3], 1, 12, &months, 1),
            dow,
            day_and: f[2].starts_with('*') || f[4].starts_with('*'),
            fixed: !f[0].starts_with('*') && !f[1].starts_with('*'),
        }
    }

    fn matches(&self, w: NaiveDateTime) -> bool {
        let dom = self.dom[w.day() as usize];
        let dow = self.dow[w.weekday().num_days_from_sunday() as usize];
        let day = if self.day_and { dom && dow } else { dom || dow };
        self.minute[w.minute() as usize]
            && self.hour[w.hour() as usize]
            && self.month[w.month() as usize]
            && day
    }
}

pub(super) fn ref_offset(tz: Tz, secs: i64) -> i64 {
    let utc = DateTime::from_timestamp(secs, 0)
        .expect("in range")
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

fn wall(tz: Tz, secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs + ref_offset(tz, secs), 0)
        .expect("in range")
        .naive_utc()
}

/// Every fire instant in `[from, to)` (minute-aligned UTC seconds), by SPEC 2 taken
/// literally, one UTC minute at a time.
pub(super) fn brute_force(r: &Reference, tz: Tz, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut u = from;
    while u < to {
        let off = ref_offset(tz, u);
        let prev = ref_offset(tz, u - 60);
        if off != prev {
            // The reference assumes transitions on whole minutes; check it.
            assert_eq!(ref_offset(tz, u - 1), prev, "transition inside a minute");
        }
        let w = wall(tz, u);
        if r.fixed && off > prev {
            // Spring forward at u: wall times [u + prev, u + off) never happen. A fixed
            // time among them fires once, at u, the first instant after the gap.
            let gap_has_match = (u + prev..u + off)
                .step_by(60)
                .any(|g| r.matches(DateTime::from_timestamp(g, 0).expect("ok").naive_utc()));
            if gap_has_match || r.matches(w) {
                out.push(u);
            }
        } else if r.matches(w) {
            // A fixed time fires only at the first occurrence of its wall time: skip it
            // if any instant in the previous 3 hours showed the same wall time.
            let repeat = r.fixed && (1..=180).any(|m| wall(tz, u - m * 60) == w);
            if !repeat {
                out.push(u);
            }
        }
        u += 60;
    }
    out
}

#[test]
fn matches_the_naive_reference_around_transitions() {
    let exprs = [
        "* * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "30 * * * *",
        "0,30 * * * *",
        "45 */2 * * *",
        "30 2 * * *",
        "0 2 * * *",
        "15 2 * * *",
        "45 1 * * *",
        "59 1 * * *",
        "0 3 * * *",
        "15 1-3 * * *",
        "0 1-3 * * *",
        "*/20 2 * * *",
        "0-59/10 2 * * *",
        "45 0,2 * * *",
        "0,30 2,3 * * *",
        "30 0 * * 0",
        "0 12 * * mon-fri",
        "30 2 * * sun",
        "5 2 * * 7",
        "20 1 */2 * 0",
        "40 1 1,15 * 0",
        "@daily",
        "@hourly",
        "10 2 4,5 4 *",
        "0 2 3-5 10 *",
    ];
    // (zone, a transition instant, an ordinary instant): windows of 30h either side.
    let windows: &[(Tz, &[&str])] = &[
        // Berlin: last Sundays of March and October 2026, at 01:00Z.
        (
            BERLIN,
            &[
                "2026-03-29T01:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-07-01T00:00:00Z",
            ],
        ),
        // New York: 2026-03-08 02:00 EST = 07:00Z; 2026-11-01 02:00 EDT = 06:00Z.
        (NEW_YORK, &["2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z"]),
        // Lord Howe: 2026-04-05 02:00 +11:00 = 04-04 15:00Z; 2026-10-04 02:00 +10:30 =
        // 10-03 15:30Z.
        (LORD_HOWE, &["2026-04-04T15:00:00Z", "2026-10-03T15:30:00Z"]),
        (KATHMANDU, &["2026-03-29T01:00:00Z"]),
        // Historical oddities: Sao Paulo changed at local midnight (2018-11-04 00:00 -03
        // -> 01:00 -02 at 03:00Z; 2019-02-17 00:00 -02 -> 2019-02-16 23:00 -03 at
        // 02:00Z), and Apia skipped all of 2011-12-30 (-10 -> +14 at 10:00Z).
        (
            chrono_tz::America::Sao_Paulo,
            &["2018-11-04T03:00:00Z", "2019-02-17T02:00:00Z"],
        ),
        (chrono_tz::Pacific::Apia, &["2011-12-30T10:00:00Z"]),
        (UTC, &["2026-03-01T00:00:00Z"]),
    ];
    let mut compared = 0;
    for (tz, centres) in windows {
        for centre in *centres {
            let c = at(centre).timestamp();
            let (from, to) = (c - 30 * 3600, c + 30 * 3600);
            for expr in exprs {
                let s = crontab(expr, *tz);
                let expected = brute_force(&Reference::new(expr), *tz, from, to);

                // The whole sequence from the window start.
                let mut got = Vec::new();
                let mut t = from - 1;
                loop {
                    t = s
                        .next_after(DateTime::from_timestamp(t, 0).expect("in range"))
                        .expect("fires")
                        .timestamp();
                    if t >= to {
                        break;
                    }
                    got.push(t);
                }
                assert_eq!(got, expected, "{expr} in {tz} around {centre}");

                // Start instants at odd seconds through the window.
                let mut start = from + 7;
                while start < to {
                    let want = expected.iter().copied().find(|e| *e > start);
                    let got = s
                        .next_after(DateTime::from_timestamp(start, 0).expect("in range"))
                        .expect("fires")
                        .timestamp();
                    match want {
                        Some(w) => assert_eq!(got, w, "{expr} in {tz} after {start}"),
                        None => assert!(got >= to, "{expr} in {tz} after {start}"),
                    }
                    compared += 1;
                    start += 631;
                }
            }
        }
    }
    assert!(compared > 3000, "only {compared} comparisons");
}

#[test]
fn day_rules_match_the_naive_reference_over_years() {
    let exprs = [
        "0 0 */2 * 1",
        "0 0 1,15 * 5",
        "0 0 29 2 *",
        "0 0 * * 7",
        "0 0 13 * 5",
        "0 0 */10 */3 *",
        "0 0 1-7 * mon",
        "0 0 * jan-mar sat,sun",
        "0 0 31 * *",
        "0 0 31 4 1",
        "0 0 1-31/2 * */3",
        "0 0 30 feb,mar 2",
        "0 0 * * *",
    ];
    let from = at("2026-01-01T00:00:00Z").timestamp();
    let to = at("2030-01-01T00:00:00Z").timestamp();
    for expr in exprs {
        let r = Reference::new(expr);
        let expected: Vec<i64> = (from..to)
            .step_by(86_400)
            .filter(|d| r.matches(wall(UTC, *d)))
            .collect();
        let s = crontab(expr, UTC);
        let mut got = Vec::new();
        let mut t = from - 1;
        loop {
            t = s
                .next_after(DateTime::from_timestamp(t, 0).expect("in range"))
                .expect("fires")
                .timestamp();
            if t >= to {
                break;
            }
            got.push(t);
        }
        assert_eq!(got, expected, "{expr}");
    }
}

// ---------------------------------------------------------------------------
// Issue 12, item 10: classic cron semantics
// ---------------------------------------------------------------------------

#[test]
fn a_star_inside_a_day_list_is_first_to_last_and_keeps_the_day_rule() {
    // Debian reads `*,1` as 0-7 plus 1 and, since the field starts with `*`, sets
    // DOW_STAR: both day fields must match, so only the 1st of each month fires.
    let s = crontab("0 0 1 * *,1", UTC);
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 3),
        [
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ]
    );
    // The same with the star in day-of-month: Mondays only (January 2026: 5, 12).
    let s = crontab("0 0 *,1 * 1", UTC);
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 2),
        ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"]
    );
    // `*/20,5` in the minute field: 0, 5, 20, 40.
    let s = crontab("*/20,5 1 * * *", UTC);
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-01T01:00:00Z",
            "2026-01-01T01:05:00Z",
            "2026-01-01T01:20:00Z",
            "2026-01-01T01:40:00Z"
        ]
    );
    // And in the day-of-week field with a step: `*/2,1` is Sun, Mon, Tue, Thu, Sat.
    let s = crontab("0 0 * * */2,1", UTC);
    // 2026-01-01 is a Thursday; Friday the 2nd is skipped.
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2026-01-05T00:00:00Z"
        ]
    );
}

#[test]
fn a_step_larger_than_its_field_selects_only_the_first_value() {
    // Debian accepts `*/100`: from 0, the next step is past 59, so minute 0 alone.
    let s = crontab("*/100 * * * *", UTC);
    assert_eq!(
        fires(&s, "2026-01-01T00:30:00Z", 2),
        ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
    );
    let s = crontab("0 0 */45 * *", UTC);
    assert_eq!(
        fires(&s, "2026-01-02T00:00:00Z", 1),
        ["2026-02-01T00:00:00Z"]
    );
}

#[test]
fn a_crontab_schedule_that_never_fires_is_accepted_with_no_times_and_a_reason() {
    let s = Schedule::parse("0 0 30 2 *", Dialect::Crontab, UTC)
        .expect("cron accepts a line that never fires");
    assert_eq!(s.never_fires(), Some("February has no day 30"));
    assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), None);
    assert_eq!(
        s.latest_in(at("2026-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")),
        None
    );
    assert!(!s.is_reboot());
    // The source's cheap check says the same, and nothing for schedules that fire.
    assert_eq!(
        super::crontab_never_fires("0 0 30 2 *").as_deref(),
        Some("February has no day 30")
    );
    assert_eq!(
        super::crontab_never_fires("0 0 31 4,6 */1").as_deref(),
        Some("April and June have no day 31")
    );
    for fires in [
        "0 0 30 2 1",
        "0 0 29 2 *",
        "0 0 * 2 *",
        "@daily",
        "0 0 x 2 *",
    ] {
        assert_eq!(super::crontab_never_fires(fires), None, "{fires}");
    }
    // In YAML it stays an error (SPEC 2).
    assert!(matches!(
        Schedule::parse("0 0 30 2 *", Dialect::Yaml, UTC),
        Err(ScheduleError::NeverFires(_))
    ));
}

#[test]
fn every_field_form_classic_cron_accepts_is_read_without_the_engine_error() {
    // Each item form (alone and in lists, `*` forms included) in each field: the
    // validation here and croner must agree, or the user sees croner's text.
    let items: [&[&str]; 5] = [
        &["*", "*/7", "*/100", "3", "2-5", "2-50/9", "07"],
        &["*", "*/5", "4", "1-3", "2-20/6"],
        &["*", "*/10", "1", "3-9", "1-31/8"],
        &["*", "*/5", "2", "jan", "mar-may", "1-12/4"],
        &["*", "*/2", "1", "7", "sun", "mon-fri", "0-7/3", "5-7"],
    ];
    let mut checked = 0;
    for field in 0..5 {
        let forms = items[field];
        let mut lists: Vec<String> = forms.iter().map(|f| f.to_string()).collect();
        for a in forms {
            for b in forms {
                lists.push(format!("{a},{b}"));
            }
        }
        for list in lists {
            let mut fields = ["0", "0", "1", "*", "*"];
            fields[field] = &list;
            let expr = fields.join(" ");
            match Schedule::parse(&expr, Dialect::Crontab, UTC) {
                Ok(_) | Err(ScheduleError::NeverFires(_)) => {}
                Err(e) => panic!("{expr}: {e}"),
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn a_backwards_range_is_answered_with_the_days_it_wraps_over_not_their_opposite() {
    use Dialect::Crontab;
    // `fri-mon` was answered with `1-5` (Monday to Friday: the other days).
    let cases = [
        ("0 0 * * fri-mon", "`5-7,1`"),
        ("0 0 * * sat-tue", "`6-7,1-2`"),
        ("0 0 * * 6-0", "`6-7`"),
        ("0 22-2 * * *", "`22-23,0-2`"),
        ("0 0 * nov-feb *", "`11-12,1-2`"),
        ("0 0 28-3 * *", "`28-31,1-3`"),
        ("59-0 * * * *", "`59,0`"),
    ];
    for (expr, hint) in cases {
        let message = Schedule::parse(expr, Crontab, UTC)
            .expect_err("classic cron refuses a backwards range")
            .to_string();
        assert!(message.contains(hint), "{expr}: {message}");
        assert!(
            !message.contains("smaller value first"),
            "{expr}: {message}"
        );
        // The hint itself is accepted and is what the words say.
        let fields: Vec<&str> = expr.split(' ').collect();
        let wrapped = hint.trim_matches('`');
        let fixed: Vec<&str> = fields
            .iter()
            .map(|f| if f.contains('-') { wrapped } else { *f })
            .collect();
        Schedule::parse(&fixed.join(" "), Crontab, UTC)
            .unwrap_or_else(|e| panic!("{expr}: the hint {hint} parses: {e}"));
    }
    // fri-mon's hint is Friday, Saturday, Sunday and Monday.
    let s = crontab("0 0 * * 5-7,1", UTC);
    assert_eq!(
        fires(&s, "2026-01-01T00:00:00Z", 5),
        [
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-09T00:00:00Z"
        ]
    );
}

/// UTC skips the search for offset changes (it has none); Abidjan, at offset
/// 0 since 1912 but not known to be fixed, takes the full search. Both must
/// give every time alike.
#[test]
fn utc_fast_path_agrees_with_the_full_search_at_offset_zero() {
    let abidjan = chrono_tz::Africa::Abidjan;
    let exprs = [
        "* * * * *",
        "*/7 3 * * *",
        "0 0 29 2 *",
        "30 2 1 2 *",
        "59 23 31 12 *",
        "0 9 * * 1-5",
        "@monthly",
    ];
    for expr in exprs {
        let (fast, full) = (crontab(expr, UTC), crontab(expr, abidjan));
        let mut t = at("2026-03-29T00:59:59Z");
        for _ in 0..50 {
            let next = fast.next_after(t);
            assert_eq!(next, full.next_after(t), "{expr} after {t}");
            t = next.expect("fires");
        }
    }
    for zone in [chrono_tz::Etc::UTC, chrono_tz::Zulu, chrono_tz::UCT] {
        let t = at("2026-05-01T10:00:00Z");
        assert_eq!(
            crontab("15 10 * * *", zone).next_after(t),
            Some(at("2026-05-01T10:15:00Z"))
        );
    }
}

/// `iter_after` as RFC 3339 strings, at most `n`.
fn iterated(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    s.iter_after(at(from))
        .take(n)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn iter_after_walks_the_fire_times_through_a_dst_gap_and_overlap() {
    // 02:30 does not exist in Berlin on 29 March 2026: the fixed-time job
    // fires once, as the gap ends (03:00 CEST = 01:00Z), then at 02:30 CEST.
    let s = crontab("30 2 * * *", BERLIN);
    assert_eq!(
        iterated(&s, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // The repeated hour of 25 October: a wildcard schedule fires in both.
    let quarter = crontab("*/15 * * * *", BERLIN);
    let in_overlap = quarter
        .iter_after(at("2026-10-24T23:59:59Z"))
        .take_while(|&t| t < at("2026-10-25T02:00:00Z"))
        .count();
    assert_eq!(in_overlap, 8);
    // ... and its ticks are the ones `next_after` gives, walked by hand.
    assert_eq!(
        iterated(&quarter, "2026-10-24T23:59:59Z", 12),
        fires(&quarter, "2026-10-24T23:59:59Z", 12)
    );
}

#[test]
fn iter_after_follows_the_schedules_zone() {
    let from = "2026-01-01T00:00:00Z";
    assert_eq!(
        iterated(&crontab("0 9 * * *", NEW_YORK), from, 2),
        ["2026-01-01T14:00:00Z", "2026-01-02T14:00:00Z"]
    );
    // Kathmandu is UTC+5:45.
    assert_eq!(
        iterated(&crontab("0 9 * * *", KATHMANDU), from, 2),
        ["2026-01-01T03:15:00Z", "2026-01-02T03:15:00Z"]
    );
    // Strictly after: a start on a tick does not give that tick.
    assert_eq!(
        iterated(&crontab("0 9 * * *", UTC), "2026-01-01T09:00:00Z", 1),
        ["2026-01-02T09:00:00Z"]
    );
}

#[test]
fn iter_after_ends_for_a_schedule_that_never_fires_or_has_no_time() {
    let never = Schedule::parse("0 0 30 2 *", Dialect::Crontab, UTC).expect("cron accepts it");
    let reboot = crontab("@reboot", UTC);
    for s in [&never, &reboot] {
        let mut times = s.iter_after(at("2026-01-01T00:00:00Z"));
        assert_eq!(times.next(), None, "{}", s.expr());
        assert_eq!(times.next(), None, "stays ended: {}", s.expr());
        // `count` would never return if the iterator looped.
        assert_eq!(s.iter_after(at("2026-01-01T00:00:00Z")).count(), 0);
    }
    // A yearly schedule near croner's horizon ends there too.
    let yearly = crontab("0 0 1 1 *", UTC);
    let left = yearly.iter_after(at("4990-06-01T00:00:00Z")).count();
    assert!(left <= 11, "{left} ticks before year 5001");
}
