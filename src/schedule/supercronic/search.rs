//! The search of a supercronic expression: which days of a month match
//! (cronexpr's `calculateActualDaysOfMonth`) and the next matching wall time.
//!
//! Owns: the day arithmetic (`L`, `LW`, `W`, `5L`, `#`, the union of the
//! restricted day fields) and a search that skips whole years and months, so
//! its work is a few steps per month looked at, never per second or per day.
//!
//! Must not know: the grammar (the parent module reads it), time zones, DST.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::{Matcher, FIRST_YEAR, LAST_YEAR};

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// 0 = Sunday.
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    NaiveDate::from_ymd_opt(year, month, day).map_or(0, |d| d.weekday().num_days_from_sunday())
}

/// cronexpr's `workdayOfMonth`: a Saturday moves to the Friday before (to
/// Monday the 3rd from the 1st), a Sunday to the Monday after (to the Friday
/// before from the last day): never across the month's ends.
fn workday(year: i32, month: u32, day: u32, last: u32) -> u32 {
    match weekday(year, month, day) {
        6 if day > 1 => day - 1,
        6 => day + 2,
        0 if day < last => day + 1,
        0 => day - 2,
        _ => day,
    }
}

fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

impl Matcher {
    /// The days of `month` that match (bit `d` for day `d`), as cronexpr's
    /// `calculateActualDaysOfMonth`.
    fn days(&self, year: i32, month: u32) -> u32 {
        let last = days_in_month(year, month);
        let in_month = (u32::MAX >> (31 - last)) & !1;
        if !self.dom_restricted && !self.dow_restricted {
            return in_month;
        }
        let mut set = 0u32;
        if self.dom_restricted {
            if self.last_day {
                set |= 1 << last;
            }
            if self.last_workday {
                set |= 1 << workday(year, month, last, last);
            }
            set |= self.dom & in_month;
            for d in 1..=last {
                if self.workdays & (1 << d) != 0 {
                    set |= 1 << workday(year, month, d, last);
                }
            }
        }
        if self.dow_restricted {
            let first_weekday = weekday(year, month, 1);
            for wd in 0..7u32 {
                let first = 1 + (wd + 7 - first_weekday) % 7;
                let bit = 1u8 << wd;
                if self.dow & bit != 0 {
                    let mut d = first;
                    while d <= last {
                        set |= 1 << d;
                        d += 7;
                    }
                }
                for (n, weekdays) in self.nth.iter().enumerate() {
                    let d = first + 7 * n as u32;
                    if weekdays & bit != 0 && d <= last {
                        set |= 1 << d;
                    }
                }
                if self.last_weekday & bit != 0 {
                    set |= 1 << (first + 7 * ((last - first) / 7));
                }
            }
        }
        set
    }

    fn year_allowed(&self, year: i32) -> bool {
        (FIRST_YEAR..=LAST_YEAR).contains(&year) && self.years.contains((year - FIRST_YEAR) as u32)
    }

    /// The first allowed year at or after `year`.
    fn year_from(&self, year: i32) -> Option<i32> {
        (year.max(FIRST_YEAR)..=LAST_YEAR).find(|y| self.year_allowed(*y))
    }

    /// Whether some day of some allowed year and month matches (at most
    /// 130 × 12 months looked at, and usually the first one matches).
    pub(in crate::schedule) fn fires_ever(&self) -> bool {
        (FIRST_YEAR..=LAST_YEAR)
            .filter(|y| self.year_allowed(*y))
            .any(|y| (1..=12).any(|m| self.months & (1 << m) != 0 && self.days(y, m) != 0))
    }

    /// The first matching second of a day at or after `from` (seconds since midnight).
    fn time_from(&self, from: u32) -> Option<u32> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        let mut h = next_bit(self.hours, h0)?;
        loop {
            let mut m = next_bit(self.minutes, if h == h0 { m0 } else { 0 });
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

    /// The first wall time at or after `w` that matches; a year not allowed
    /// is skipped whole, a month that cannot match too, so the work is a few
    /// steps per month looked at, never per second or per day.
    pub(in crate::schedule) fn next_at_or_after(&self, w: NaiveDateTime) -> Option<NaiveDateTime> {
        let (mut year, mut month, mut day) = (w.year(), w.month(), w.day());
        let mut from = w.num_seconds_from_midnight();
        if year < FIRST_YEAR {
            (year, month, day, from) = (FIRST_YEAR, 1, 1, 0);
        }
        loop {
            if month > 12 {
                (year, month, day, from) = (year + 1, 1, 1, 0);
            }
            if !self.year_allowed(year) {
                year = self.year_from(year + 1)?;
                (month, day, from) = (1, 1, 0);
            }
            if self.months & (1 << month) != 0 {
                let days = u64::from(self.days(year, month));
                let mut d = next_bit(days, day);
                while let Some(dd) = d {
                    let since = if dd == day { from } else { 0 };
                    if let Some(t) = self.time_from(since) {
                        let time = NaiveTime::from_num_seconds_from_midnight_opt(t, 0)?;
                        return Some(NaiveDate::from_ymd_opt(year, month, dd)?.and_time(time));
                    }
                    d = next_bit(days, dd + 1);
                }
            }
            (month, day, from) = (month + 1, 1, 0);
        }
    }
}
