//! The next wall-clock time (a naive date and time, no zone) that a parsed croner
//! pattern matches.
//!
//! Owns: the search only. What matches is croner's decision: the time-of-day sets
//! are read from croner's parsed components, and every date is judged by croner's own
//! `month_match`/`day_match` (so `L`, `W`, `#` and the day rule mean exactly what croner
//! says). The search is done here because croner's `find_next_occurrence` costs about
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
    /// croner's pattern without its year field (see [`WallMatcher::new`]).
    cron: Cron,
    seconds: u64,
    minutes: u64,
    hours: u64,
    /// The pattern as croner parsed it, years included, for the test that
    /// compares this search with croner's own.
    #[cfg(test)]
    full: Cron,
}

/// croner's own `Debug` lists every bit of every field (5,000 for the years); the
/// canonical pattern says the same in one line.
impl std::fmt::Debug for WallMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WallMatcher")
            .field("pattern", &self.cron.pattern.as_str())
            .field("dom_and_dow", &self.cron.pattern.matches_dom_and_dow())
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

impl WallMatcher {
    /// Takes a pattern parsed with years disallowed (so its year field is `*`).
    pub(super) fn new(cron: Cron) -> WallMatcher {
        #[cfg(test)]
        let full = cron.clone();
        let mut cron = cron;
        // croner keeps one byte per year up to 5000 (5 KB a pattern, most of a
        // schedule's memory: issue 6). The search here never asks croner about
        // years (it stops at LAST_YEAR itself), so the field is replaced by an
        // empty one.
        cron.pattern.years = CronComponent::new(0, 0, 0, 0);
        let pattern = &cron.pattern;
        WallMatcher {
            seconds: mask(&pattern.seconds),
            minutes: mask(&pattern.minutes),
            hours: mask(&pattern.hours),
            cron,
            #[cfg(test)]
            full,
        }
    }

    /// croner's own parse of the pattern, years included.
    #[cfg(test)]
    pub(super) fn croner_parse(&self) -> &Cron {
        &self.full
    }

    /// Whether croner matches this date (month and day fields).
    pub(super) fn date_matches(&self, date: NaiveDate) -> bool {
        let pattern = &self.cron.pattern;
        let weekday =
            croner::time::Weekday::from_days_from_sunday(date.weekday().num_days_from_sunday());
        pattern.month_match(date.month()).unwrap_or(false)
            && pattern
                .day_match(date.year(), date.month(), date.day(), weekday)
                .unwrap_or(false)
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
            if !self.cron.pattern.month_match(date.month()).unwrap_or(false) {
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
