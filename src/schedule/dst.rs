//! Turning wall-clock matches into real instants across UTC offset changes, with
//! Vixie/Debian cron's daylight-saving rules.
//!
//! Owns: walking the UTC time line in segments of constant offset, finding offset
//! transitions (chrono-tz does not expose them, so they are found by probing), and the
//! two DST rules: a fixed-time schedule fires once for a wall time in a spring-forward
//! gap (at the first instant after the gap) and only at the first occurrence of a
//! repeated wall time; a wildcard schedule fires at every real instant whose wall time
//! matches.
//! See: <https://manpages.debian.org/stable/cron/cron.8.en.html> ("Special considerations
//! exist when the clock is changed by less than 3 hours, for example at the beginning
//! and end of daylight savings time")
//!
//! Must not know: cron syntax (it receives a "next matching wall time" function), the
//! clock, or anything about jobs.

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

const DAY: i64 = 86_400;

/// How many segments or skipped candidates one search may visit before giving up.
/// Zones change offset at most a few times a year, so 10,000 steps covers every
/// transition up to croner's year-5000 horizon.
const MAX_STEPS: usize = 10_000;

#[cfg(test)]
thread_local! {
    /// How many searches ([`next_fire`]) this thread made: tests bound the work
    /// of what calls it by this count, never by time.
    pub(super) static SEARCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether `tz` is UTC under one of its names: offset 0, never changed.
fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC
            | Tz::Etc__UTC
            | Tz::UCT
            | Tz::Etc__UCT
            | Tz::Universal
            | Tz::Etc__Universal
            | Tz::Zulu
            | Tz::Etc__Zulu
    )
}

/// UTC offset in seconds in effect at the instant `secs` (Unix seconds).
fn offset_at(tz: Tz, secs: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp(secs, 0)?.naive_utc();
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

fn naive(secs: i64) -> Option<NaiveDateTime> {
    Some(DateTime::from_timestamp(secs, 0)?.naive_utc())
}

fn naive_secs(w: NaiveDateTime) -> i64 {
    w.and_utc().timestamp()
}

/// The first instant in `(lo, hi]` whose offset differs from `off`, given that
/// `offset_at(lo) == off`. Offsets are probed a day apart, then bisected to the
/// second; transitions in real zones are months apart, never two within a day.
fn first_transition(tz: Tz, lo: i64, off: i64, hi: i64) -> Option<Option<i64>> {
    let mut from = lo;
    while from < hi {
        let to = (from + DAY).min(hi);
        if offset_at(tz, to)? != off {
            // Invariant: offset(from) == off, offset(to) != off.
            let (mut same, mut differs) = (from, to);
            while differs - same > 1 {
                let mid = same + (differs - same) / 2;
                if offset_at(tz, mid)? == off {
                    same = mid;
                } else {
                    differs = mid;
                }
            }
            return Some(Some(differs));
        }
        from = to;
    }
    Some(None)
}

/// Whether `u` (wall time `w`, offset `off`) is the second occurrence of a wall time
/// repeated by a fall-back transition. If so, returns the instant where the repeated
/// range ends, from which a fixed-time schedule resumes.
fn repeated_until(tz: Tz, u: i64, w: NaiveDateTime, off: i64) -> Option<Option<i64>> {
    // A repeat is only possible if the offset a day earlier was larger. On the
    // first day of chrono's time line there is no earlier day, and no repeat.
    let Some(before) = offset_at(tz, u - DAY) else {
        return Some(None);
    };
    if before <= off {
        return Some(None);
    }
    let shift = before - off;
    // The same wall time under the earlier offset, if that offset still held then.
    let first = u - shift;
    if offset_at(tz, first)? != before {
        return Some(None);
    }
    debug_assert_eq!(naive_secs(w), first + before);
    // The transition T lies in (first, u]; the repeated wall range is
    // [T + off, T + before), which ends, in this segment, at T + shift.
    let transition = first_transition(tz, first, before, u)?;
    Some(transition.map(|t| t + shift))
}

/// `Some(s)` when a spring-forward transition happens exactly at `s` and a wall
/// time it skips matches: a fixed time in that gap fires at `s`, the first instant
/// after the gap. The walk below finds gaps at transitions it crosses; a search that
/// starts exactly at one (from the last second before it, or any instant within
/// that second) would otherwise begin in the new offset and miss the gap (issue 11).
fn gap_run_at(
    tz: Tz,
    s: i64,
    next_wall: &impl Fn(NaiveDateTime) -> Option<NaiveDateTime>,
) -> Option<Option<i64>> {
    let (before, off) = (offset_at(tz, s.checked_sub(1)?)?, offset_at(tz, s)?);
    if off <= before {
        return Some(None);
    }
    // The skipped wall times are [s + before, s + off).
    let in_gap = next_wall(naive(s + before)?).is_some_and(|w| naive_secs(w) < s + off);
    Some(in_gap.then_some(s))
}

/// The first instant strictly after `after` (Unix seconds) at which a schedule fires.
///
/// `next_wall(w)` returns the first wall time at or after `w` that the expression
/// matches. `fixed_time` selects the DST rule (SPEC 2).
pub(super) fn next_fire(
    tz: Tz,
    fixed_time: bool,
    after: i64,
    next_wall: impl Fn(NaiveDateTime) -> Option<NaiveDateTime>,
) -> Option<i64> {
    #[cfg(test)]
    SEARCHES.with(|n| n.set(n.get() + 1));
    let mut s = after.checked_add(1)?;
    // A zone with one offset for ever (UTC and its aliases, what most
    // containers run in) has no transition to find: probing for one a day at
    // a time was most of the search for a schedule months away, and of a
    // daemon's start with 100,000 of them (issue 12).
    if is_utc(tz) {
        return Some(naive_secs(next_wall(naive(s)?)?));
    }
    if fixed_time {
        if let Some(gap_run) = gap_run_at(tz, s, &next_wall)? {
            return Some(gap_run);
        }
    }
    for _ in 0..MAX_STEPS {
        let off = offset_at(tz, s)?;
        let w = next_wall(naive(s + off)?)?;
        let u = naive_secs(w) - off;
        if let Some(t) = first_transition(tz, s, off, u)? {
            // `w` is not a real time in this segment: the offset changed at `t`
            // before it. Nothing in [s, t) matched.
            if fixed_time {
                let new_off = offset_at(tz, t)?;
                // Spring forward skipped the wall times [t + off, t + new_off). `w` is
                // the first match at or after t + off; if it is in the gap, the fixed
                // time fires once, at the first instant after the gap.
                if new_off > off && naive_secs(w) < t + new_off {
                    return Some(t);
                }
            }
            s = t;
            continue;
        }
        if fixed_time {
            if let Some(resume) = repeated_until(tz, u, w, off)? {
                // Fall back repeated this wall time; a fixed time already fired at
                // its first occurrence.
                s = resume;
                continue;
            }
        }
        return Some(u);
    }
    None
}
