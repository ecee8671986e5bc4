//! The field grammar of a cron expression, checked strictly before croner sees it.
//!
//! Owns: reading one field (`*`, numbers, names, `a-b`, `*/n`, `a-b/n`, lists, and in
//! YAML croner's `L`, `W` and `#`), the messages for everything classic (Vixie/Debian)
//! cron would refuse, and the canonical numeric text handed to croner. Croner is
//! lenient where classic cron is not (it skips empty list items, maps `-SUN` to `-7`,
//! replaces names anywhere in the pattern), so every field is validated here and croner
//! only ever receives numbers in a grammar both agree on.
//!
//! Must not know: time zones, instants, how a schedule is searched, or where the
//! expression came from.

use super::ScheduleError;
use crate::job::Dialect;

/// Which field of the expression is being read; decides range, names and extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl FieldKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            FieldKind::Second => "second",
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }

    /// Inclusive value range, as Vixie cron's `FIRST_*`/`LAST_*` constants.
    /// Day-of-week runs to 7 because classic cron accepts 7 for Sunday.
    fn range(self) -> (u32, u32) {
        match self {
            FieldKind::Second | FieldKind::Minute => (0, 59),
            FieldKind::Hour => (0, 23),
            FieldKind::DayOfMonth => (1, 31),
            FieldKind::Month => (1, 12),
            FieldKind::DayOfWeek => (0, 7),
        }
    }

    fn names(self) -> Option<(&'static [&'static str], u32)> {
        match self {
            FieldKind::Month => Some((&MONTH_NAMES, 1)),
            FieldKind::DayOfWeek => Some((&WEEKDAY_NAMES, 0)),
            _ => None,
        }
    }
}

/// One field, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    /// The field as croner should read it: numbers only, same structure as written.
    pub(super) canonical: String,
    /// Bit `v` set when plain value `v` matches (extensions excluded). In day-of-week,
    /// 7 is folded onto 0 as classic cron does.
    pub(super) values: u64,
    /// Vixie's `*_STAR` flag: the field's text starts with `*`. It decides the day rule
    /// and whether a schedule is fixed-time.
    pub(super) starts_with_star: bool,
    /// The field uses `L`, `W` or `#` (YAML only).
    pub(super) has_extension: bool,
}

impl Field {
    pub(super) fn contains(&self, value: u32) -> bool {
        value < 64 && self.values & (1u64 << value) != 0
    }
}

fn err(kind: FieldKind, problem: impl Into<String>) -> ScheduleError {
    ScheduleError::Field {
        field: kind.name(),
        problem: problem.into(),
    }
}

/// Reads one field in the given dialect.
pub(super) fn parse_field(
    kind: FieldKind,
    text: &str,
    dialect: Dialect,
) -> Result<Field, ScheduleError> {
    // Quartz's `?` ("no specific value") is what croner reads as `*` in the day fields.
    // Classic cron has no such character.
    if text == "?" {
        if dialect == Dialect::Yaml && matches!(kind, FieldKind::DayOfMonth | FieldKind::DayOfWeek)
        {
            return parse_field(kind, "*", dialect);
        }
        return Err(err(
            kind,
            "`?` is not understood by classic cron; use `*` for any value",
        ));
    }
    if text.contains('?') {
        return Err(err(
            kind,
            format!("`?` can only stand alone, found `{text}`; use `*` for any value"),
        ));
    }

    let mut field = Field {
        canonical: String::with_capacity(text.len()),
        values: 0,
        starts_with_star: text.starts_with('*'),
        has_extension: false,
    };
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(
                kind,
                format!("empty list item in `{text}`; remove the extra comma"),
            ));
        }
        if !field.canonical.is_empty() {
            field.canonical.push(',');
        }
        parse_item(kind, item, text.len(), dialect, &mut field)?;
    }
    if kind == FieldKind::DayOfWeek && field.values & (1 << 7) != 0 {
        field.values = (field.values & !(1 << 7)) | 1;
    }
    Ok(field)
}

/// Reads one item of a field's list; `in_list` when the field has several.
fn parse_item(
    kind: FieldKind,
    item: &str,
    field_text_len: usize,
    dialect: Dialect,
    field: &mut Field,
) -> Result<(), ScheduleError> {
    if is_extension(kind, item) {
        if dialect == Dialect::Crontab {
            return Err(ScheduleError::Extension {
                field: kind.name(),
                token: item.to_string(),
            });
        }
        let canonical = parse_extension(kind, item)?;
        field.canonical.push_str(&canonical);
        field.has_extension = true;
        return Ok(());
    }

    let (min, max) = kind.range();
    let (range_text, step) = match item.split_once('/') {
        Some((range_text, step_text)) => (range_text, Some(parse_step(kind, item, step_text)?)),
        None => (item, None),
    };

    let (lo, hi) = if range_text == "*" {
        (min, max)
    } else if let Some((a, b)) = range_text.split_once('-') {
        let lo = parse_value(kind, a, item)?;
        let hi = parse_value(kind, b, item)?;
        if lo > hi {
            return Err(err(kind, reversed_range_problem(kind, range_text, lo, hi)));
        }
        (lo, hi)
    } else {
        let value = parse_value(kind, range_text, item)?;
        if let Some(step) = step {
            // Vixie cron reads `0/15` as an error (a step needs a range); some other
            // crons read it as "from 0 to the end". Refuse rather than guess.
            // See: https://man7.org/linux/man-pages/man5/crontab.5.html ("Step values can be used in conjunction with ranges")
            return Err(err(
                kind,
                format!(
                    "`{item}` steps from a single value, which classic cron rejects; write a range such as `{value}-{max}/{step}`"
                ),
            ));
        }
        (value, value)
    };

    let step_by = step.unwrap_or(1);
    let mut v = lo;
    while v <= hi {
        field.values |= 1u64 << v;
        v += step_by;
    }

    // croner reads `*` only as a whole field (`*,1` is its "Invalid number"); classic
    // cron reads `*` anywhere in a list as first-last. Inside a list it is handed to
    // croner as that range, which means the same. The day rule does not depend on
    // this text: it is decided from the field as written (`starts_with_star`).
    // See: https://github.com/vixie/cron/blob/master/entry.c (get_range: "'*' means \"first-last\"")
    let in_list = item.len() != field_text_len;
    let out = &mut field.canonical;
    let (first, last) = if kind == FieldKind::DayOfWeek {
        // 0 and 7 are both Sunday; croner is given 0-6 so that no day is doubled.
        (0, 6)
    } else {
        (min, max)
    };
    match (range_text == "*", step) {
        (true, Some(step)) if in_list => out.push_str(&format!("{first}-{last}/{step}")),
        (true, None) if in_list => out.push_str(&format!("{first}-{last}")),
        (true, Some(step)) => out.push_str(&format!("*/{step}")),
        (true, None) => out.push('*'),
        (false, Some(step)) => out.push_str(&format!("{lo}-{hi}/{step}")),
        (false, None) if lo == hi => out.push_str(&lo.to_string()),
        (false, None) => out.push_str(&format!("{lo}-{hi}")),
    }
    Ok(())
}

/// Classic cron refuses a range whose start is past its end (`fri-mon`, `22-2`); the
/// message says how to write the wrap-around that was probably meant, never the
/// values swapped (which would be the other days: `1-5` for `fri-mon`).
/// See: https://github.com/vixie/cron/blob/master/entry.c (get_range: "if (ch == EOF || num1 > num2)")
fn reversed_range_problem(kind: FieldKind, text: &str, lo: u32, hi: u32) -> String {
    let (min, max) = kind.range();
    let span = |a: u32, b: u32| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    if kind == FieldKind::DayOfWeek {
        // 7 is Sunday too, so `lo-7` reaches Sunday and the rest starts at Monday.
        let wrapped = match hi {
            0 => span(lo, 7),
            _ => format!("{},{}", span(lo, 7), span(1, hi)),
        };
        return format!(
            "range `{text}` runs backwards (Sunday is 0 and 7), which classic cron refuses; \
             for the days from {} round to {} write `{wrapped}`",
            WEEKDAY_NAMES[lo as usize % 7],
            WEEKDAY_NAMES[hi as usize % 7],
        );
    }
    format!(
        "range `{text}` runs backwards, which classic cron refuses; to wrap around from {lo} to {hi} write `{},{}`",
        span(lo, max),
        span(min, hi)
    )
}

fn parse_step(kind: FieldKind, item: &str, step_text: &str) -> Result<u32, ScheduleError> {
    if step_text.is_empty() || !step_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            kind,
            format!("`{item}`: the step after `/` must be a number, as in `*/5`"),
        ));
    }
    // Any step of at least the field's width selects only the first value, so it
    // becomes the width: absurdly long numbers cannot overflow, and croner (which
    // refuses steps above 65,535) reads the same schedule.
    let (min, max) = kind.range();
    let width = max - min + 1;
    let step = if step_text.len() > 6 {
        width
    } else {
        step_text.parse::<u32>().unwrap_or(width).min(width)
    };
    if step == 0 {
        return Err(err(
            kind,
            format!("`{item}` has step 0, which never advances; use a step of 1 or more"),
        ));
    }
    Ok(step)
}

/// A number (leading zeros allowed) or, in month and day-of-week, a three-letter name.
fn parse_value(kind: FieldKind, text: &str, item: &str) -> Result<u32, ScheduleError> {
    let (min, max) = kind.range();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = text.trim_start_matches('0');
        let value = if trimmed.len() > 6 {
            u32::MAX
        } else if trimmed.is_empty() {
            0
        } else {
            trimmed.parse::<u32>().unwrap_or(u32::MAX)
        };
        if value < min || value > max {
            let shown = if value == u32::MAX {
                text.to_string()
            } else {
                value.to_string()
            };
            return Err(err(kind, format!("{shown} is out of range {min}-{max}")));
        }
        return Ok(value);
    }
    if text == "*" {
        return Err(err(
            kind,
            format!("`*` cannot be one end of a range in `{item}`; use `*` alone or `a-b`"),
        ));
    }
    if let Some((names, first)) = kind.names() {
        if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(first + index as u32);
        }
        let hint = match kind {
            FieldKind::Month => "use 1-12 or jan-dec",
            _ => "use 0-7 or sun-sat",
        };
        return Err(err(
            kind,
            format!("`{text}` is not a {} ({hint})", kind.name()),
        ));
    }
    if text.is_empty() {
        return Err(err(kind, format!("`{item}` is missing a value")));
    }
    Err(err(
        kind,
        format!("`{text}` is not a number in {min}-{max}"),
    ))
}

/// Whether an item uses croner's `L`, `W` or `#` (names such as `jul` excluded).
fn is_extension(kind: FieldKind, item: &str) -> bool {
    // Other fields get the ordinary "not a number" message for stray letters.
    if !matches!(kind, FieldKind::DayOfMonth | FieldKind::DayOfWeek) {
        return false;
    }
    if item.contains('#') {
        return true;
    }
    let upper = item.to_ascii_uppercase();
    if !(upper.contains('L') || upper.contains('W')) {
        return false;
    }
    // A name (or a range of names) containing L or W, such as `jul` or `wed-fri`, is
    // not an extension.
    let is_name_list = upper
        .split(['-', '/'])
        .all(|part| part.bytes().all(|b| b.is_ascii_digit()) || is_name(kind, part));
    !is_name_list
}

fn is_name(kind: FieldKind, text: &str) -> bool {
    kind.names()
        .is_some_and(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(text)))
}

/// Croner's extensions, in the forms croner actually honours, as croner text.
fn parse_extension(kind: FieldKind, item: &str) -> Result<String, ScheduleError> {
    let upper = item.to_ascii_uppercase();
    match kind {
        FieldKind::DayOfMonth => {
            // `L` (last day), `LW` (last weekday), `15W` (weekday nearest the 15th).
            if upper == "L" || upper == "LW" {
                return Ok(upper);
            }
            if let Some(day) = upper.strip_suffix('W') {
                let day = parse_value(kind, day, item)?;
                return Ok(format!("{day}W"));
            }
            Err(err(
                kind,
                format!(
                    "`{item}` is not understood; day-of-month accepts `L` (last day), `LW` (last weekday) or `15W` (weekday nearest the 15th)"
                ),
            ))
        }
        FieldKind::DayOfWeek => {
            // `5L` (last Friday), `5#2` (second Friday). A bare `L` is accepted by
            // croner but matches no day at all, so it is refused here.
            if let Some((day, nth)) = upper.split_once('#') {
                let day = parse_value(kind, day, item)?;
                let nth_ok = nth.len() == 1 && matches!(nth.as_bytes()[0], b'1'..=b'5');
                if !nth_ok {
                    return Err(err(
                        kind,
                        format!("`{item}`: the number after `#` must be 1-5 (which week of the month)"),
                    ));
                }
                return Ok(format!("{day}#{nth}"));
            }
            if let Some(day) = upper.strip_suffix('L') {
                if !day.is_empty() {
                    let day = parse_value(kind, day, item)?;
                    return Ok(format!("{day}L"));
                }
            }
            Err(err(
                kind,
                format!(
                    "`{item}` is not understood; day-of-week accepts `5L` (last Friday of the month) or `5#2` (second Friday)"
                ),
            ))
        }
        _ => Err(err(
            kind,
            format!(
                "`{item}` is not understood; `L`, `W` and `#` are only meaningful in the day-of-month and day-of-week fields"
            ),
        )),
    }
}
