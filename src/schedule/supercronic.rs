//! supercronic's reading of a cron expression (its fork of gorhill/cronexpr),
//! and the search for the next wall time it matches.
//!
//! Owns: the field grammar (5 fields; 6 with the **year last**; 7 from seconds
//! to year; `*` and `?`; numbers, full and short names, ranges, `*/n`, `n/m`,
//! `a-b/n`; `L`, `LW`, `15W`, `5L`, `5#2`), supercronic's day rule, and the
//! notes saying where a line means something else than Vixie cron.
//! Facts, not code, carried over from cronexpr:
//! - A day field is *restricted* unless one of its list items is exactly `*` or
//!   `?`: `*/2` is restricted. The days that match are the union of the
//!   restricted fields' days (all days when neither is), so `0 0 */2 * 1` runs
//!   on odd days **and** on Mondays, where Vixie runs it on odd Mondays.
//! - Years run from 1970 to 2099; a search past 2099 finds nothing.
//! - In the day-of-week field 7 is read as 0, so `0-7` is Sunday alone and
//!   `1-7` runs backwards (an error there and here). cronexpr reads `01`-`06`
//!   there as Sunday too (a lookup-table gap): refused here, since neither
//!   reading could be trusted to be what was meant.
//! - A step must lie in 1 up to the field's largest value (`*/60` is refused
//!   in minutes, `*/7` in days of the week).
//!   See: <https://github.com/aptible/supercronic/blob/master/cronexpr/cronexpr_parse.go>
//!   and `cronexpr_next.go` (`calculateActualDaysOfMonth`, `workdayOfMonth`).
//!
//! Must not know: time zones, DST, instants (time is a naive wall time here),
//! where the expression came from, or croner (which is not used for this
//! dialect: its day rule and year range are not supercronic's).

mod search;

use super::ScheduleError;

/// cronexpr's year range.
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2099;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Second => "second",
            Kind::Minute => "minute",
            Kind::Hour => "hour",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
            Kind::Year => "year",
        }
    }

    /// Inclusive range of values (day-of-week is 0-6 once 7 is folded onto 0).
    fn range(self) -> (u32, u32) {
        match self {
            Kind::Second | Kind::Minute => (0, 59),
            Kind::Hour => (0, 23),
            Kind::DayOfMonth => (1, 31),
            Kind::Month => (1, 12),
            Kind::DayOfWeek => (0, 6),
            Kind::Year => (FIRST_YEAR as u32, LAST_YEAR as u32),
        }
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// A set of small values (bit `v` for value `v`; years offset by 1970).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bits([u64; 3]);

impl Bits {
    fn insert(&mut self, v: u32) {
        self.0[(v / 64) as usize] |= 1 << (v % 64);
    }
    fn contains(&self, v: u32) -> bool {
        (v as usize) < 192 && self.0[(v / 64) as usize] & (1 << (v % 64)) != 0
    }
    fn is_empty(&self) -> bool {
        self.0 == [0; 3]
    }
    fn low(&self) -> u64 {
        self.0[0]
    }
}

/// One field as read: the plain values, whether it counts as restricted (day
/// fields), and the day extensions.
#[derive(Debug, Default)]
struct Field {
    values: Bits,
    /// No list item is exactly `*` or `?`.
    restricted: bool,
    /// day-of-month `L`, `LW`, and the days of `15W`.
    last_day: bool,
    last_workday: bool,
    workdays: u32,
    /// day-of-week `5#2` (`nth[1]` has bit 5) and `5L`.
    nth: [u8; 5],
    last_weekday: u8,
    /// What a Vixie reader should be told about this field.
    notes: Vec<String>,
}

/// A parsed supercronic expression: which wall times it matches.
#[derive(Debug, Clone)]
pub(super) struct Matcher {
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    years: Bits,
    dom_restricted: bool,
    dom: u32,
    last_day: bool,
    last_workday: bool,
    workdays: u32,
    dow_restricted: bool,
    dow: u8,
    nth: [u8; 5],
    last_weekday: u8,
}

/// What parsing gives besides the matcher.
pub(super) struct Parsed {
    pub(super) matcher: Matcher,
    /// Debian's fixed-time rule: neither the minute nor the hour field starts with `*`.
    pub(super) fixed_time: bool,
    /// The 7-field form.
    pub(super) seconds: bool,
    /// Where this expression means something else than it would to Vixie cron.
    pub(super) notes: Vec<String>,
}

fn err(kind: Kind, problem: impl Into<String>) -> ScheduleError {
    ScheduleError::Field {
        field: kind.name(),
        problem: problem.into(),
    }
}

/// Reads the time fields of a supercronic line (5, 6 or 7 of them).
pub(super) fn parse(fields: &[&str]) -> Result<Parsed, ScheduleError> {
    let kinds: &[Kind] = match fields.len() {
        5 => &[
            Kind::Minute,
            Kind::Hour,
            Kind::DayOfMonth,
            Kind::Month,
            Kind::DayOfWeek,
        ],
        6 => &[
            Kind::Minute,
            Kind::Hour,
            Kind::DayOfMonth,
            Kind::Month,
            Kind::DayOfWeek,
            Kind::Year,
        ],
        7 => &[
            Kind::Second,
            Kind::Minute,
            Kind::Hour,
            Kind::DayOfMonth,
            Kind::Month,
            Kind::DayOfWeek,
            Kind::Year,
        ],
        found => {
            return Err(ScheduleError::FieldCount {
                expected: "5 fields (minute hour day-of-month month day-of-week), 6 (the same and a year), 7 (a second, the same and a year)",
                found,
            })
        }
    };
    let mut parsed = Vec::with_capacity(7);
    for (kind, text) in kinds.iter().zip(fields) {
        parsed.push((*kind, parse_field(*kind, text)?));
    }
    let get = |k: Kind| parsed.iter().find(|(kind, _)| *kind == k).map(|(_, f)| f);
    let all = |k: Kind| {
        let (lo, hi) = k.range();
        let mut b = Bits::default();
        (lo..=hi).for_each(|v| b.insert(v - if k == Kind::Year { lo } else { 0 }));
        b
    };
    let bits_of = |k: Kind| get(k).map_or_else(|| all(k), |f| f.values);
    let mut seconds_bits = Bits::default();
    seconds_bits.insert(0);
    let dom = get(Kind::DayOfMonth).expect("every form has a day-of-month field");
    let dow = get(Kind::DayOfWeek).expect("every form has a day-of-week field");
    let matcher = Matcher {
        seconds: get(Kind::Second).map_or(seconds_bits, |f| f.values).low(),
        minutes: bits_of(Kind::Minute).low(),
        hours: bits_of(Kind::Hour).low(),
        months: bits_of(Kind::Month).low(),
        years: bits_of(Kind::Year),
        dom_restricted: dom.restricted,
        dom: dom.values.low() as u32,
        last_day: dom.last_day,
        last_workday: dom.last_workday,
        workdays: dom.workdays,
        dow_restricted: dow.restricted,
        dow: dow.values.low() as u8,
        nth: dow.nth,
        last_weekday: dow.last_weekday,
    };

    let (minute_text, hour_text) = match fields.len() {
        7 => (fields[1], fields[2]),
        _ => (fields[0], fields[1]),
    };
    let mut notes = match fields.len() {
        6 => vec![format!(
            "6 fields: supercronic reads the last one (`{}`) as the year, not a leading seconds field; Vixie cron would read it as the command",
            fields[5]
        )],
        7 => vec![format!(
            "7 fields: a seconds field first (`{}`) and a year last (`{}`), which Vixie cron does not have",
            fields[0], fields[6]
        )],
        _ => Vec::new(),
    };
    for (_, f) in &parsed {
        notes.extend(f.notes.iter().cloned());
    }
    // Vixie: a day field starting with `*` is unrestricted, and then both must
    // match; supercronic: only a bare `*`/`?` item is, and the days of the
    // restricted fields are united.
    let (dom_text, dow_text) = match fields.len() {
        7 => (fields[3], fields[5]),
        _ => (fields[2], fields[4]),
    };
    let vixie_star = |t: &str| t.starts_with('*');
    let vixie_or = !vixie_star(dom_text) && !vixie_star(dow_text);
    let ours_or = dom.restricted && dow.restricted;
    if vixie_or != ours_or {
        notes.push(format!(
            "day rule: supercronic runs on the days that match day-of-month `{dom_text}` {} day-of-week `{dow_text}`; Vixie cron would run on the days that match {}",
            if ours_or { "or" } else { "and" },
            if vixie_or { "either" } else { "both" },
        ));
    }
    if matcher.years.is_empty() {
        return Err(err(Kind::Year, "no year in 1970-2099 is listed"));
    }
    Ok(Parsed {
        fixed_time: !minute_text.starts_with('*') && !hour_text.starts_with('*'),
        seconds: fields.len() == 7,
        notes,
        matcher,
    })
}

/// cronexpr's number tokens: one or two digits (a leading zero allowed) up to
/// 59, or a year 1970-2099. Anything else is not a number to it.
fn token_number(s: &str) -> Option<u32> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let v: u32 = if digits && s.len() <= 4 {
        s.parse().ok()?
    } else {
        return None;
    };
    match s.len() {
        1 | 2 if v <= 59 => Some(v),
        4 if (1970..=2099).contains(&v) => Some(v),
        _ => None,
    }
}

/// One value of a field (number or name), as cronexpr's value patterns accept it.
fn value(kind: Kind, s: &str, item: &str) -> Result<u32, ScheduleError> {
    let (lo, hi) = kind.range();
    let names: Option<&[&str]> = match kind {
        Kind::Month => Some(&MONTHS),
        Kind::DayOfWeek => Some(&WEEKDAYS),
        _ => None,
    };
    if let Some(names) = names {
        if let Some(i) = names
            .iter()
            .position(|n| *n == s || (s.len() == 3 && n.starts_with(s)))
        {
            return Ok(i as u32 + if kind == Kind::Month { 1 } else { 0 });
        }
    }
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let width_ok = match kind {
        Kind::Year => s.len() == 4,
        Kind::DayOfWeek => s.len() == 1 || (s.len() == 2 && s.starts_with('0')),
        _ => s.len() <= 2,
    };
    let shown_range = if kind == Kind::DayOfWeek {
        "0-7".to_string()
    } else {
        format!("{lo}-{hi}")
    };
    let hint = match kind {
        Kind::Month => format!("{shown_range} or a name such as jan or january"),
        Kind::DayOfWeek => format!("{shown_range} or a name such as mon or monday"),
        Kind::Year => format!("a year {shown_range}"),
        _ => shown_range,
    };
    if !digits || !width_ok {
        return Err(err(
            kind,
            format!("`{s}` in `{item}` is not a value supercronic accepts; use {hint}"),
        ));
    }
    let v: u32 = s
        .parse()
        .map_err(|_| err(kind, format!("`{s}` is out of range")))?;
    if kind == Kind::DayOfWeek {
        if s.len() == 2 && (1..=6).contains(&v) {
            return Err(err(
                kind,
                format!("`{s}` in `{item}`: supercronic reads a day of the week written with a leading zero as Sunday; write `{v}`"),
            ));
        }
        return match v {
            0..=6 => Ok(v),
            7 => Ok(0),
            _ => Err(err(kind, format!("{v} is out of range; use {hint}"))),
        };
    }
    if v < lo || v > hi {
        return Err(err(kind, format!("{v} is out of range; use {hint}")));
    }
    Ok(v)
}

fn step(kind: Kind, s: &str, item: &str) -> Result<u32, ScheduleError> {
    let (_, hi) = kind.range();
    match token_number(s) {
        Some(n) if n >= 1 && n <= hi => Ok(n),
        _ => Err(err(
            kind,
            format!("`{item}`: supercronic accepts a step from 1 to {hi} here"),
        )),
    }
}

fn parse_field(kind: Kind, text: &str) -> Result<Field, ScheduleError> {
    let mut field = Field {
        restricted: true,
        ..Field::default()
    };
    let (lo, hi) = kind.range();
    // Values are kept from 0 (years from 1970).
    let base = if kind == Kind::Year { lo } else { 0 };
    let mut items = 0;
    for written in text.split(',').filter(|i| !i.is_empty()) {
        let lower = written.to_ascii_lowercase();
        let item = lower.as_str();
        items += 1;
        if item == "*" || item == "?" {
            field.restricted = false;
            (lo..=hi).for_each(|v| field.values.insert(v - base));
            if item == "?" {
                field.notes.push(format!(
                    "{} field `?`: read as `*`, which Vixie cron does not accept",
                    kind.name()
                ));
            }
            continue;
        }
        if let Some(done) = extension(kind, item, written, &mut field)? {
            field.notes.push(done);
            continue;
        }
        let (range, by) = match item.split_once('/') {
            Some((r, s)) => (r, Some(step(kind, s, item)?)),
            None => (item, None),
        };
        // A bare `*` was read above, so this one has a step.
        let (first, last) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(kind, a, item)?, value(kind, b, item)?);
            if b < a {
                let sunday = if kind == Kind::DayOfWeek {
                    "; supercronic reads 7 as Sunday, 0, so a range cannot end on it"
                } else {
                    ""
                };
                return Err(err(
                    kind,
                    format!("range `{item}` runs backwards{sunday}; write it as a list of ranges that do not wrap"),
                ));
            }
            if kind == Kind::DayOfWeek && range.ends_with('7') && a == 0 {
                field.notes.push(format!(
                    "day-of-week `{item}`: supercronic reads 7 as Sunday, so this is Sunday alone; Vixie cron would read every day"
                ));
            }
            (a, b)
        } else {
            let a = value(kind, range, item)?;
            if by.is_some() {
                field.notes.push(format!(
                    "{} `{item}`: supercronic steps from {a} to the end of the field; Vixie cron refuses a step without a range",
                    kind.name()
                ));
                (a, hi)
            } else {
                (a, a)
            }
        };
        let mut v = first;
        while v <= last {
            field.values.insert(v - base);
            v += by.unwrap_or(1);
        }
    }
    if items == 0 {
        return Err(err(kind, format!("`{text}` has no value")));
    }
    Ok(field)
}

/// Reads `L`, `LW`, `15W` (day-of-month), `5L`, `5#2` (day-of-week) into
/// `field`; `None` when `item` is none of them.
fn extension(
    kind: Kind,
    item: &str,
    written: &str,
    field: &mut Field,
) -> Result<Option<String>, ScheduleError> {
    let note = |what: &str| {
        Some(format!(
            "{} `{written}` ({what}): a supercronic extension that Vixie cron does not accept",
            kind.name()
        ))
    };
    match kind {
        Kind::DayOfMonth => {
            if item == "l" {
                field.last_day = true;
                return Ok(note("the last day of the month"));
            }
            if item == "lw" {
                field.last_workday = true;
                return Ok(note("the last weekday of the month"));
            }
            if let Some(day) = item.strip_suffix('w') {
                let d = value(kind, day, item)?;
                field.workdays |= 1 << d;
                return Ok(note("the weekday nearest that day, in the same month"));
            }
            Ok(None)
        }
        Kind::DayOfWeek => {
            if let Some((day, nth)) = item.split_once('#') {
                let d = value(kind, day, item)?;
                let n = match nth {
                    "1" | "2" | "3" | "4" | "5" => nth.as_bytes()[0] - b'0',
                    _ => {
                        return Err(err(
                            kind,
                            format!(
                            "`{item}`: the number after `#` must be 1-5 (which week of the month)"
                        ),
                        ))
                    }
                };
                field.nth[usize::from(n - 1)] |= 1 << d;
                return Ok(note("that weekday's occurrence in the month"));
            }
            if let Some(day) = item.strip_suffix('l').filter(|d| !d.is_empty()) {
                let d = value(kind, day, item)?;
                field.last_weekday |= 1 << d;
                return Ok(note("the last such weekday of the month"));
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}
