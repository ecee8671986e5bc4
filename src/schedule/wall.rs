//! The next wall-clock time (a naive date and time, no zone) that a parsed croner
//! pattern matches.
//!
//! Owns: the search only. What matches is croner's decision: the time-of-day sets
//! are read from croner's parsed components; a date is judged by croner's own
//! `month_match`/`day_match` when the pattern uses `L`, `W` or `#` (so they mean
//! exactly what croner says), and otherwise by the month and day sets read from
//! croner's parse with croner's day rule (a few bytes per schedule instead of
//! croner's pattern). The search is done here because croner's `find_next_occurrence` costs about
//! 0.7 µs per call, several times the whole budget of `next_after`; bit masks make
//! the time of day a few instructions and whole non-matching months are skipped.
//! A test checks this search against croner's own on many patterns and instants.
//!
//! Must not know: time zones, DST, instants, cron syntax.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use croner::{Cron, CronComponent};

/// croner's own search horizon (`YEAR_UPPER_LIMIT`); nothing is found beyond it.
const LAST_YEAR: i32 = 5000;

pub(super) struct WallMatcher {
    /// Which dates match (month and day fields).
    dates: Dates,
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// The pattern as croner parsed it, years included, for the test that
    /// compares this search with croner's own.
    #[cfg(test)]
    full: Cron,
}

/// The month and day fields. Without `L`, `W` or `#` (nearly every schedule)
/// they are three sets read from croner's parsed fields and croner's day rule
/// ([`plain_day_rule`]): a few bytes, where croner's pattern keeps seven
/// vectors (about 700 bytes a schedule: 70 MB for 100,000 different
/// expressions, issue 12). With them, croner itself judges each date.
enum Dates {
    Plain {
        /// Bit `m` for month `m` (1-12).
        months: u16,
        /// Bit `d` for day of the month `d` (1-31).
        days: u32,
        /// Bit `w` for weekday `w`, Sunday 0.
        weekdays: u8,
        star_dom: bool,
        star_dow: bool,
        dom_and_dow: bool,
    },
    /// croner's pattern without its year field (see [`WallMatcher::new`]).
    Croner(Box<Cron>),
}

/// croner's own `Debug` lists every bit of every field (5,000 for the years); the
/// masks say the same in a few numbers.
impl std::fmt::Debug for WallMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("WallMatcher");
        out.field("seconds", &format_args!("{:#x}", self.seconds))
            .field("minutes", &format_args!("{:#x}", self.minutes))
            .field("hours", &format_args!("{:#x}", self.hours));
        match &self.dates {
            Dates::Plain {
                months,
                days,
                weekdays,
                star_dom,
                star_dow,
                dom_and_dow,
            } => out
                .field("months", &format_args!("{months:#x}"))
                .field("days", &format_args!("{days:#x}"))
                .field("weekdays", &format_args!("{weekdays:#x}"))
                .field("star_dom", star_dom)
                .field("star_dow", star_dow)
                .field("dom_and_dow", dom_and_dow),
            Dates::Croner(cron) => out
                .field("pattern", &cron.pattern.as_str())
                .field("dom_and_dow", &cron.pattern.matches_dom_and_dow()),
        }
        .finish()
    }
}

fn mask(component: &CronComponent) -> u64 {
    component
        .values()
        .into_iter()
        .filter(|v| *v < 64)
        .fold(0, |m, v| m | (1u64 << v))
}

/// The smallest set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// croner's `day_match` for fields without `L`, `W` or `#`: a field that is
/// exactly `*` defers to the other; when both are restricted, either matches
/// (or both must, with `dom_and_dow`).
fn plain_day_rule(
    day_matches: bool,
    dow_matches: bool,
    star_dom: bool,
    star_dow: bool,
    dom_and_dow: bool,
) -> bool {
    if (day_matches && star_dow) || (dow_matches && star_dom) {
        true
    } else if !star_dom && !star_dow {
        if dom_and_dow {
            day_matches && dow_matches
        } else {
            day_matches || dow_matches
        }
    } else {
        false
    }
}

impl WallMatcher {
    /// Takes a pattern whose year field is never read (`Schedule::parse`
    /// gives croner any one year), and in tests croner's parse of the pattern
    /// with every year (`*`), which `croner_parse` returns.
    pub(super) fn new(cron: Cron, #[cfg(test)] full: Cron) -> WallMatcher {
        let pattern = &cron.pattern;
        let (seconds, minutes, hours) = (
            mask(&pattern.seconds),
            mask(&pattern.minutes),
            mask(&pattern.hours),
        );
        let dates = if pattern.days.has_modifiers() || pattern.days_of_week.has_modifiers() {
            let mut cron = cron;
            // croner keeps one byte per year up to 5000 (5 KB a pattern: issue
            // 6). The search here never asks croner about years (it stops at
            // LAST_YEAR itself), so the field is replaced by an empty one.
            cron.pattern.years = CronComponent::new(0, 0, 0, 0);
            Dates::Croner(Box::new(cron))
        } else {
            Dates::Plain {
                // Months 1-12 and days 1-31 fit; weekdays are 0-6 (croner
                // has already turned a 7 into 0).
                months: u16::try_from(mask(&pattern.months)).unwrap_or(u16::MAX),
                days: u32::try_from(mask(&pattern.days)).unwrap_or(u32::MAX),
                weekdays: u8::try_from(mask(&pattern.days_of_week) & 0x7f).unwrap_or(u8::MAX),
                star_dom: pattern.is_dom_wildcard(),
                star_dow: pattern.is_dow_wildcard(),
                dom_and_dow: pattern.matches_dom_and_dow(),
            }
        };
        WallMatcher {
            dates,
            seconds,
            minutes,
            hours,
            #[cfg(test)]
            full,
        }
    }

    /// croner's own parse of the pattern, years included.
    #[cfg(test)]
    pub(super) fn croner_parse(&self) -> &Cron {
        &self.full
    }

    /// Whether the month field matches `month` (1-12).
    fn month_matches(&self, month: u32) -> bool {
        match &self.dates {
            Dates::Plain { months, .. } => months >> month & 1 == 1,
            Dates::Croner(cron) => cron.pattern.month_match(month).unwrap_or(false),
        }
    }

    /// Whether croner matches this date (month and day fields).
    pub(super) fn date_matches(&self, date: NaiveDate) -> bool {
        match &self.dates {
            Dates::Plain {
                days,
                weekdays,
                star_dom,
                star_dow,
                dom_and_dow,
                ..
            } => {
                self.month_matches(date.month())
                    && plain_day_rule(
                        days >> date.day() & 1 == 1,
                        weekdays >> date.weekday().num_days_from_sunday() & 1 == 1,
                        *star_dom,
                        *star_dow,
                        *dom_and_dow,
                    )
            }
            Dates::Croner(cron) => {
                let pattern = &cron.pattern;
                let weekday = croner::time::Weekday::from_days_from_sunday(
                    date.weekday().num_days_from_sunday(),
                );
                pattern.month_match(date.month()).unwrap_or(false)
                    && pattern
                        .day_match(date.year(), date.month(), date.day(), weekday)
                        .unwrap_or(false)
            }
        }
    }

    /// The first matching second of the day at or after `from` (seconds since midnight).
    fn time_from(&self, from: u32) -> Option<u32> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        let mut h = next_bit(self.hours, h0)?;
        loop {
            let m_from = if h == h0 { m0 } else { 0 };
            let mut m = next_bit(self.minutes, m_from);
            while let Some(minute) = m {
                let s_from = if h == h0 && minute == m0 { s0 } else { 0 };
                if let Some(second) = next_bit(self.seconds, s_from) {
                    return Some(h * 3600 + minute * 60 + second);
                }
                m = next_bit(self.minutes, minute + 1);
            }
            h = next_bit(self.hours, h + 1)?;
        }
    }

    /// The first wall time at or after `w` that the pattern matches.
    pub(super) fn next_at_or_after(&self, w: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = w.date();
        let mut from = w.num_seconds_from_midnight();
        while date.year() <= LAST_YEAR {
            if !self.month_matches(date.month()) {
                // Skip the rest of a month that cannot match.
                date = first_of_next_month(date)?;
                from = 0;
                continue;
            }
            if self.date_matches(date) {
                if let Some(t) = self.time_from(from) {
                    let time = NaiveTime::from_num_seconds_from_midnight_opt(t, 0)?;
                    return Some(date.and_time(time));
                }
            }
            date = date.succ_opt()?;
            from = 0;
        }
        None
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Dialect;
    use crate::schedule::Schedule;

    /// The search agrees with croner's own `find_next_occurrence` on naive times.
    #[test]
    fn agrees_with_croners_own_search() {
        let exprs: &[(&str, Dialect)] = &[
            ("* * * * *", Dialect::Crontab),
            ("*/7 * * * *", Dialect::Crontab),
            ("30 2 * * *", Dialect::Crontab),
            ("0 */5 * * 1-5", Dialect::Crontab),
            ("15 10 1,15 * 5", Dialect::Crontab),
            ("0 0 */2 * 1", Dialect::Crontab),
            ("0 0 29 2 *", Dialect::Crontab),
            ("59 23 31 * *", Dialect::Crontab),
            ("0 0 1 jan,jul *", Dialect::Crontab),
            ("*/10 * * * * *", Dialect::Yaml),
            ("5,50 59 23 * * *", Dialect::Yaml),
            ("0 0 L * *", Dialect::Yaml),
            ("0 0 LW * *", Dialect::Yaml),
            ("0 12 15W * *", Dialect::Yaml),
            ("0 0 * * 5L", Dialect::Yaml),
            ("0 0 * * fri#2,mon#1", Dialect::Yaml),
            ("0 0 1,L * 3", Dialect::Yaml),
            // Plain fields (judged by the masks): each case of the day rule.
            ("0 0 1-7 * 1", Dialect::Crontab),
            ("0 0 */3 * 0,7", Dialect::Crontab),
            ("0 0 * 2,3 7", Dialect::Crontab),
            ("30 6 13 * 5", Dialect::Crontab),
            ("0 0 1 * *", Dialect::Crontab),
            ("0 0 1-31/2 1-12/5 *", Dialect::Crontab),
            ("0 0 *,15 * 1", Dialect::Crontab),
        ];
        let starts = [
            "2026-01-01T00:00:00",
            "2026-02-28T23:59:59",
            "2026-03-29T02:30:00",
            "2026-12-31T23:59:30",
            "2027-06-15T12:34:56",
            "2028-02-28T10:00:00",
        ];
        for (expr, dialect) in exprs {
            let schedule = Schedule::parse(expr, *dialect, chrono_tz::UTC).expect("parses");
            let matcher = schedule.wall.as_ref().expect("not @reboot");
            for start in starts {
                let mut w: NaiveDateTime = start.parse().expect("valid start");
                for _ in 0..40 {
                    let ours = matcher.next_at_or_after(w);
                    let croner = matcher.croner_parse().find_next_occurrence(&w, true).ok();
                    assert_eq!(ours, croner, "{expr} from {w}");
                    w = ours.expect("fires") + chrono::Duration::seconds(1);
                }
            }
        }
    }
}
