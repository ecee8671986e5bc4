//! Cron expressions: parsing them in the crontab or YAML dialect and finding the next
//! instant a schedule fires, by the wall clock of its time zone (SPEC 2).
//!
//! Owns: [`Schedule`] and [`ScheduleError`]; the macros; the split into fields (whose
//! grammar is in `vixie`); Vixie's day-of-month/day-of-week rule; schedules that can
//! never fire (an error in YAML; in a crontab, as in cron, a schedule with no times); the fixed-time/wildcard distinction (whose DST rules are in
//! `dst`). croner is the expression engine: it parses the canonical fields and decides
//! which wall times match (`wall` searches with croner's own predicates, on naive wall
//! times, so croner's DST handling never applies); this module decides everything
//! croner would decide differently from classic cron.
//!
//! Must not know: the clock (time is always an argument), files, SQLite, tokio, jobs.

mod dst;
mod latest;
mod supercronic;
mod vixie;
mod wall;

#[cfg(test)]
mod supercronic_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transition_tests;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

use crate::job::Dialect;
use vixie::{parse_field, Field, FieldKind};
use wall::WallMatcher;

/// Why an expression is not a usable schedule. Messages are lowercase and say what is
/// wrong and what would be right.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error("empty schedule: expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily")]
    Empty,
    #[error("expected {expected} or a macro such as @daily, found {found}")]
    FieldCount {
        expected: &'static str,
        found: usize,
    },
    #[error("6 fields: seconds fields are only accepted in YAML jobs; a crontab entry has 5 (minute hour day-of-month month day-of-week)")]
    SecondsInCrontab,
    #[error("{found} fields: year fields are not supported; use 5 fields (minute hour day-of-month month day-of-week){}", if *.yaml { ", or 6 with leading seconds" } else { "" })]
    YearField { found: usize, yaml: bool },
    #[error("unknown macro {0} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @reboot)")]
    UnknownMacro(String),
    #[error("{name} stands alone, but `{rest}` follows it; write either the macro or 5 fields")]
    MacroWithFields { name: String, rest: String },
    #[error("{field} field: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
    #[error("{field} field: `{token}` is a croner extension that classic cron does not understand; move this job to a YAML file to use it")]
    Extension { field: &'static str, token: String },
    #[error("never fires: {0}")]
    NeverFires(String),
    /// croner refused what this module accepted; a bug here, reported rather than hidden.
    /// The engine's own text (`message`, for debugging) is not the user's message:
    /// it names croner's internals, not the field.
    #[error("`{expr}` uses a form of a field that jobrun cannot read although classic cron may; write each field as numbers, ranges (`1-5`), steps (`*/5`, `1-30/5`) and lists of them (`1,15`), and please report this expression")]
    Engine { expr: String, message: String },
}

/// A parsed schedule: an expression, its dialect's reading, and its time zone.
///
/// Cloning is cheap: the parsed fields and the expression are shared, so a plan can give every job
/// with the same expression one copy of them (issue 6: memory with many jobs).
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: Arc<str>,
    tz: Tz,
    /// `None` for `@reboot`, which has no time-based firings.
    wall: Option<Arc<Wall>>,
    fixed_time: bool,
    seconds: bool,
    /// Why a crontab schedule can never fire (SPEC 2: cron accepts such a line, so it
    /// is a schedule with no times, not an error); always `None` in YAML, where it is
    /// an error.
    never: Option<Arc<str>>,
}

/// The year field croner is given (any one year: see [`Schedule::parse`]).
const ENGINE_YEAR: &str = "2000";

/// The Vixie cron expansion of each macro, and whether it is `@reboot`.
/// See: https://man7.org/linux/man-pages/man5/crontab.5.html ("@weekly Run once a week, \"0 0 * * 0\"")
fn macro_fields(name: &str) -> Option<Option<&'static str>> {
    Some(Some(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => return Some(None),
        _ => return None,
    }))
}

/// Which wall times an expression matches: croner's reading (crontab and
/// YAML), or supercronic's (its own day rule and a year field).
/// Held once behind an `Arc` per distinct expression, so a smaller
/// supercronic variant saves nothing worth another indirection.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Wall {
    Croner(WallMatcher),
    Supercronic(supercronic::Matcher),
}

impl Wall {
    fn next_at_or_after(&self, w: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        match self {
            Wall::Croner(m) => m.next_at_or_after(w),
            Wall::Supercronic(m) => m.next_at_or_after(w),
        }
    }

    /// croner's own parse, for the test that compares searches.
    #[cfg(test)]
    fn croner_parse(&self) -> &croner::Cron {
        match self {
            Wall::Croner(m) => m.croner_parse(),
            Wall::Supercronic(_) => panic!("a supercronic schedule has no croner parse"),
        }
    }
}

impl Schedule {
    /// Parses `expr` in `dialect`, firing by the wall clock of `tz`.
    pub fn parse(expr: &str, dialect: Dialect, tz: Tz) -> Result<Schedule, ScheduleError> {
        let expr = expr.trim();
        let words: Vec<&str> = expr.split_whitespace().collect();
        let Some(first) = words.first() else {
            return Err(ScheduleError::Empty);
        };

        let fields: Vec<&str> = if first.starts_with('@') {
            let expansion = macro_fields(first)
                .ok_or_else(|| ScheduleError::UnknownMacro(first.to_string()))?;
            if words.len() > 1 {
                return Err(ScheduleError::MacroWithFields {
                    name: first.to_string(),
                    rest: words[1..].join(" "),
                });
            }
            match expansion {
                Some(fields) => fields.split(' ').collect(),
                None => {
                    return Ok(Schedule {
                        expr: Arc::from(expr),
                        tz,
                        wall: None,
                        fixed_time: false,
                        seconds: false,
                        never: None,
                    })
                }
            }
        } else {
            words
        };

        if dialect == Dialect::Supercronic {
            return Schedule::parse_supercronic(expr, &fields, tz).map(|(s, _)| s);
        }
        let expected = match dialect {
            Dialect::Crontab | Dialect::Supercronic => {
                "5 fields (minute hour day-of-month month day-of-week)"
            }
            Dialect::Yaml => {
                "5 fields (minute hour day-of-month month day-of-week), 6 with leading seconds,"
            }
        };
        let seconds = match (fields.len(), dialect) {
            (5, _) => false,
            (6, Dialect::Yaml) => true,
            (6, _) => return Err(ScheduleError::SecondsInCrontab),
            (7, _) => {
                return Err(ScheduleError::YearField {
                    found: 7,
                    yaml: dialect == Dialect::Yaml,
                })
            }
            (found, _) => return Err(ScheduleError::FieldCount { expected, found }),
        };

        let kinds: &[FieldKind] = if seconds {
            &[
                FieldKind::Second,
                FieldKind::Minute,
                FieldKind::Hour,
                FieldKind::DayOfMonth,
                FieldKind::Month,
                FieldKind::DayOfWeek,
            ]
        } else {
            &[
                FieldKind::Minute,
                FieldKind::Hour,
                FieldKind::DayOfMonth,
                FieldKind::Month,
                FieldKind::DayOfWeek,
            ]
        };
        let parsed = kinds
            .iter()
            .zip(&fields)
            .map(|(kind, text)| parse_field(*kind, text, dialect))
            .collect::<Result<Vec<Field>, ScheduleError>>()?;
        let base = usize::from(seconds);
        let (minute, hour) = (&parsed[base], &parsed[base + 1]);
        let (dom, month, dow) = (&parsed[base + 2], &parsed[base + 3], &parsed[base + 4]);

        // Vixie's day rule: a day field starting with `*` is unrestricted, and then both
        // day fields must match; croner only treats an exact `*` that way, so the rule
        // is decided here from the text as written.
        // See: https://github.com/vixie/cron/blob/master/cron.c ("DOM_STAR || DOW_STAR")
        let dom_and_dow = dom.starts_with_star || dow.starts_with_star;

        // croner reads an omitted year field as `*` and sets one bit for each
        // year up to 5000: most of its parse time, which 100,000 different
        // expressions pay 100,000 times (issue 12). The search never asks
        // croner about years (`WallMatcher` drops the field), so croner is
        // given every field written out: the seconds (`0` when there are
        // none, as croner itself would fill in) and one year.
        let canonical = parsed
            .iter()
            .map(|f| f.canonical.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let engine_text = if seconds {
            format!("{canonical} {ENGINE_YEAR}")
        } else {
            format!("0 {canonical} {ENGINE_YEAR}")
        };
        let engine = |text: &str, parser: CronParser| {
            parser.parse(text).map_err(|e| ScheduleError::Engine {
                expr: expr.to_string(),
                message: e.to_string(),
            })
        };
        let cron = engine(
            &engine_text,
            CronParser::builder()
                .seconds(Seconds::Required)
                .year(Year::Required)
                .dom_and_dow(dom_and_dow)
                .sloppy_ranges(false)
                .alternative_weekdays(false)
                .build(),
        )?;
        // The tests compare the search with croner's own, which needs the
        // years: croner's parse of the pattern as written, years included.
        #[cfg(test)]
        let full = engine(
            &canonical,
            CronParser::builder()
                .seconds(match dialect {
                    Dialect::Crontab | Dialect::Supercronic => Seconds::Disallowed,
                    Dialect::Yaml => Seconds::Optional,
                })
                .year(Year::Disallowed)
                .dom_and_dow(dom_and_dow)
                .sloppy_ranges(false)
                .alternative_weekdays(false)
                .build(),
        )?;

        let wall = WallMatcher::new(
            cron,
            #[cfg(test)]
            full,
        );
        let never = match check_fires(dom, month, dow, dom_and_dow, &wall) {
            Ok(()) => None,
            Err(ScheduleError::NeverFires(reason)) if dialect == Dialect::Crontab => {
                Some(Arc::from(reason))
            }
            Err(e) => return Err(e),
        };

        Ok(Schedule {
            expr: Arc::from(expr),
            tz,
            wall: Some(Arc::new(Wall::Croner(wall))),
            // Debian cron's rule: fixed-time unless the minute or hour field starts with `*`.
            fixed_time: !minute.starts_with_star && !hour.starts_with_star,
            seconds,
            never,
        })
    }

    /// A supercronic expression's time fields (5, 6 or 7; a macro already
    /// expanded), and the notes on where it means something else than it
    /// would to Vixie cron.
    fn parse_supercronic(
        expr: &str,
        fields: &[&str],
        tz: Tz,
    ) -> Result<(Schedule, Vec<String>), ScheduleError> {
        let parsed = supercronic::parse(fields)?;
        // As in a crontab, a schedule that can never fire is kept, with no times.
        let never = (!parsed.matcher.fires_ever()).then(|| {
            Arc::from(
                "no day of its years (1970-2099 at most) matches its day-of-month, month and day-of-week fields",
            )
        });
        let schedule = Schedule {
            expr: Arc::from(expr),
            tz,
            wall: Some(Arc::new(Wall::Supercronic(parsed.matcher))),
            fixed_time: parsed.fixed_time,
            seconds: parsed.seconds,
            never,
        };
        Ok((schedule, parsed.notes))
    }

    /// Why this (crontab) schedule can never fire, as in "February has no day 30";
    /// such a schedule has no times.
    pub fn never_fires(&self) -> Option<&str> {
        self.never.as_deref()
    }

    /// Next fire instant strictly after `t`; None for @reboot and for a crontab schedule
    /// that can never fire ([`Schedule::never_fires`]).
    ///
    /// Whole seconds, by the wall clock of the schedule's zone with SPEC 2's DST rules.
    /// (Past year 5000, croner's horizon, there is no answer either.)
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never.is_some() {
            return None;
        }
        let wall = self.wall.as_ref()?;
        let next_wall = |w| wall.next_at_or_after(w);
        let secs = dst::next_fire(self.tz, self.fixed_time, t.timestamp(), next_wall)?;
        DateTime::from_timestamp(secs, 0)
    }

    /// Every fire instant strictly after `t`, in order: [`Schedule::next_after`]
    /// walked forward. Ends (rather than loops) for `@reboot`, for a schedule
    /// that can never fire, and past croner's horizon; each item costs one
    /// search. Take what you need: a per-second schedule has no end.
    pub fn iter_after(&self, t: DateTime<Utc>) -> FireTimes<'_> {
        FireTimes {
            schedule: self,
            after: Some(t),
        }
    }

    /// The latest fire instant in `(after, upto]`: the last one [`Schedule::next_after`]
    /// would reach walking forward from `after`, found in work that does not grow with
    /// the window (a per-second schedule's year-long catch-up window costs a few
    /// searches, not 31 million).
    pub fn latest_in(&self, after: DateTime<Utc>, upto: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never.is_some() {
            return None;
        }
        let wall = self.wall.as_ref()?;
        let next = |t| dst::next_fire(self.tz, self.fixed_time, t, |w| wall.next_at_or_after(w));
        // Ticks are whole seconds: one is after `after` exactly when it is after its
        // whole second, and at or before `upto` when at or before its whole second.
        let secs = latest::latest_in(after.timestamp(), upto.timestamp(), next)?;
        DateTime::from_timestamp(secs, 0)
    }

    /// Whether `other` is a copy of this very parse (a plan gives every job
    /// with the same expression, dialect and zone one parse, shared): then
    /// both have the same times.
    pub fn same_parse(&self, other: &Schedule) -> bool {
        match (&self.wall, &other.wall) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) && self.tz == other.tz,
            _ => false,
        }
    }

    pub fn is_reboot(&self) -> bool {
        self.wall.is_none()
    }

    /// The expression as written, trimmed.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Whether DST treats this as a fixed time (SPEC 2): neither the minute nor the hour
    /// field starts with `*`. `@reboot` is not a time at all, so false.
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Whether the expression has a leading seconds field (6-field YAML).
    pub fn has_seconds(&self) -> bool {
        self.seconds
    }
}

/// What `--supercronic` makes of a line's schedule text: the notes on where it
/// means something else than it would to Vixie cron, and why it can never
/// fire if it cannot. An error when supercronic's reading refuses it.
pub fn read_supercronic(expr: &str) -> Result<SupercronicReading, ScheduleError> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    let notes = match words.first() {
        Some(first) if first.starts_with('@') => {
            Schedule::parse(expr, Dialect::Supercronic, Tz::UTC)?;
            let lower = first.to_ascii_lowercase();
            if lower == "@reboot" || lower == "@midnight" {
                vec![format!(
                    "`{first}` is not understood by supercronic (it refuses the file); jobrun reads it as Vixie cron does"
                )]
            } else {
                Vec::new()
            }
        }
        _ => {
            let (schedule, notes) = Schedule::parse_supercronic(expr, &words, Tz::UTC)?;
            return Ok(SupercronicReading {
                notes,
                never: schedule.never.map(|r| r.to_string()),
            });
        }
    };
    Ok(SupercronicReading { notes, never: None })
}

/// See [`read_supercronic`].
#[derive(Debug, Clone, PartialEq)]
pub struct SupercronicReading {
    pub notes: Vec<String>,
    pub never: Option<String>,
}

/// The fire instants of a schedule after a time ([`Schedule::iter_after`]).
#[derive(Clone, Debug)]
pub struct FireTimes<'a> {
    schedule: &'a Schedule,
    /// The last instant given (or the start); `None` once the schedule ended.
    after: Option<DateTime<Utc>>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let after = self.after?;
        // Strictly later, or the end: an answer that did not move forward
        // would give the same instant for ever.
        self.after = self.schedule.next_after(after).filter(|&next| next > after);
        self.after
    }
}

impl std::iter::FusedIterator for FireTimes<'_> {}

/// How many next-tick searches this thread has made so far (for tests that bound
/// work by a count).
#[cfg(test)]
pub(crate) fn searches_on_this_thread() -> u64 {
    dst::SEARCHES.with(std::cell::Cell::get)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The longest a month can be (February in a leap year).
fn max_days(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Rejects a schedule whose day fields can never match in its months.
///
/// With the OR rule every month has every weekday, so it always fires. With the AND
/// rule, over the 400-year Gregorian cycle every valid (month, day) falls on every
/// weekday (Feb 29 included), so it fires exactly when some listed day exists in some
/// listed month. Extensions (`L`, `W`, `#`) are checked by scanning one full cycle.
fn check_fires(
    dom: &Field,
    month: &Field,
    dow: &Field,
    dom_and_dow: bool,
    wall: &WallMatcher,
) -> Result<(), ScheduleError> {
    if dom.has_extension || dow.has_extension {
        return scan_cycle(wall);
    }
    if !dom_and_dow {
        return Ok(());
    }
    check_days(dom, month)
}

/// Why a crontab expression can never fire, without building a schedule: for a
/// source to warn at the entry's line (SPEC 2) in a few field reads, so that it
/// costs nothing next to the parse the plan makes anyway. `None` when it fires or
/// does not parse (the plan reports that).
pub fn crontab_never_fires(expr: &str) -> Option<String> {
    let mut words = expr.split_whitespace();
    let (Some(_), Some(_), Some(dom), Some(month), Some(dow), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return None;
    };
    // The OR rule (neither day field starts with `*`) fires in every month, and a
    // day-of-month starting with `*` always holds day 1.
    if !dow.starts_with('*') || dom.starts_with('*') {
        return None;
    }
    let dom = parse_field(FieldKind::DayOfMonth, dom, Dialect::Crontab).ok()?;
    let month = parse_field(FieldKind::Month, month, Dialect::Crontab).ok()?;
    parse_field(FieldKind::DayOfWeek, dow, Dialect::Crontab).ok()?;
    match check_days(&dom, &month) {
        Err(ScheduleError::NeverFires(reason)) => Some(reason),
        _ => None,
    }
}

/// With the AND rule: whether some listed day exists in some listed month.
fn check_days(dom: &Field, month: &Field) -> Result<(), ScheduleError> {
    let months: Vec<u32> = (1..=12).filter(|m| month.contains(*m)).collect();
    let days: Vec<u32> = (1..=31).filter(|d| dom.contains(*d)).collect();
    let fires = months
        .iter()
        .any(|m| days.iter().any(|d| *d <= max_days(*m)));
    if fires {
        return Ok(());
    }
    let month_names: Vec<&str> = months.iter().map(|m| MONTHS[*m as usize - 1]).collect();
    let verb = if month_names.len() == 1 {
        "has"
    } else {
        "have"
    };
    let day_list: Vec<String> = days.iter().map(u32::to_string).collect();
    Err(ScheduleError::NeverFires(format!(
        "{} {verb} no day {}",
        join_words(&month_names, "and"),
        join_words(&day_list, "or")
    )))
}

fn join_words<S: AsRef<str>>(words: &[S], last: &str) -> String {
    match words {
        [] => String::new(),
        [only] => only.as_ref().to_string(),
        [init @ .., tail] => format!(
            "{} {last} {}",
            init.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(", "),
            tail.as_ref()
        ),
    }
}

/// Looks for a matching day in one 400-year cycle (146,097 days), where the Gregorian
/// calendar repeats with its weekdays. Used only for croner's extensions.
fn scan_cycle(wall: &WallMatcher) -> Result<(), ScheduleError> {
    let mut day = NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01 is a valid date");
    for _ in 0..146_097 {
        if wall.date_matches(day) {
            return Ok(());
        }
        day += Duration::days(1);
    }
    Err(ScheduleError::NeverFires(
        "no day in the 400-year calendar cycle matches its day-of-month, month and day-of-week fields"
            .to_string(),
    ))
}
