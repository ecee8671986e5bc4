//! One crontab file, read the way Vixie/Debian cron reads it, into [`JobSpec`]s.
//!
//! Owns the line grammar of crontab(5): comments and blank lines, environment lines
//! (`NAME=value`, quoted values, `SHELL`, `CRON_TZ`, `MAILTO`), entries (five time
//! fields or an `@macro`, the user field of system crontabs, the command) and
//! Vixie's `%` rule for standard input. It also decides whether a `cron.d` file is
//! really in dcron's user format ([`CrontabFormat::SystemOrDcron`]).
//!
//! It must not know what a time field means: expressions are only split and passed
//! on as [`ScheduleSpec`] text for `schedule` to parse, which reports its errors
//! with the [`Origin`] given here. It reads no files (the caller passes the bytes),
//! looks up no users and names no clock, SQLite, tokio or process.
//!
//! Decisions where cron implementations differ or Debian would refuse the file:
//! - CRLF line endings, a missing final newline and a UTF-8 byte order mark are
//!   accepted, each with one note per file (Debian cron would ignore or misread
//!   such a file; dcron and busybox run it).
//! - A line that is not valid UTF-8 is an error unless it is a comment or blank.
//! - An empty value (`MAILTO=`) is an environment line, as in cronie. An empty
//!   `SHELL` or `CRON_TZ` means the default again; a variable with an empty name
//!   (`=x`, which Vixie would set) is not an environment line but an error.
//! - Every variable set so far, `SHELL`, `CRON_TZ` and `MAILTO` included, is in
//!   the entry's environment, as cron passes them to the job.
//! - cronie's `RANDOM_DELAY=N` (minutes) gives the entries after it a `jitter`
//!   of N minutes. cronie draws one random factor per daemon start; jobrun's
//!   offset is fixed per job and tick (see `plan::jitter`), the same on
//!   every host.
//! - The command is kept exactly as written after its leading blanks (trailing
//!   blanks included, as Vixie passes them to the shell).
//! - A first command word that looks like another time field (`*`, `0`, `*/5`) is
//!   an error: the line has six or seven time fields (supercronic's seconds and
//!   year), which classic cron would misread as a command named `*`.
//! - A user-format entry whose command starts with `root` gets a warning (once per
//!   file): it is almost certainly a system crontab given to `--crontab`.

use std::path::Path;

use super::bounded;
use crate::job::{
    Command, Diagnostic, Dialect, JobSpec, Origin, ScheduleSpec, SourceKind, SourceSet,
};
use crate::job_env::EnvStack;
use crate::limits;

mod env_line;
mod percent;

use env_line::{looks_like_env_attempt, parse_env};
use percent::split_percent;

/// Which layout a crontab file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrontabFormat {
    /// crontab(1)'s layout: five time fields (or a macro), then the command. The
    /// jobs run as the file's owner.
    User,
    /// `/etc/crontab` and `/etc/cron.d` layout: the user name follows the time fields.
    System,
    /// A `cron.d` file: [`CrontabFormat::System`], unless no entry has a user field,
    /// in which case the file is read as [`CrontabFormat::User`] owned by root, as
    /// Alpine's dcron reads `/etc/cron.d` (see [`parse_crontab`]).
    SystemOrDcron,
}

/// The note for `MAILTO`, given once per file.
const MAILTO_NOTE: &str = "MAILTO is accepted but jobrun does not send mail; job output goes to the daemon's stdout and the run history";

/// The names of the five time fields, for messages.
const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Reads one crontab file.
///
/// `owner` is the user a [`CrontabFormat::User`] file belongs to (the spool file's
/// name), `None` for `--crontab PATH` (the jobs run as jobrun's own user). Every
/// problem becomes a [`Diagnostic`] located at its line; the other lines are still
/// read, so one bad entry never hides the rest of the file.
///
/// With [`CrontabFormat::SystemOrDcron`] the format is decided once for the whole
/// file: when at least one entry's word after the schedule is not a plausible user
/// name (it contains `/`, for example) and no entry has a plausible one there, the
/// file has no user fields and is read in the user format as root's crontab, with
/// a note. Words that look like further time fields (`*`, `30`) count for neither
/// side: those lines are errors in both readings.
pub fn parse_crontab(
    path: &Path,
    bytes: &[u8],
    format: CrontabFormat,
    owner: Option<&str>,
) -> SourceSet {
    let mut out = SourceSet::default();
    let file_origin = Origin::new(path, 0);
    // What a source may say (README, "Limits on what a source may say"),
    // whoever read the bytes.
    if let Err(m) = bounded::check_size(bytes.len()) {
        out.diagnostics
            .push(Diagnostic::error(Some(file_origin), m));
        return out;
    }
    let text = RawText::split(bytes);

    if text.bom {
        out.diagnostics.push(Diagnostic::note(
            Some(file_origin.clone()),
            "UTF-8 byte order mark at the start: ignored, but Debian cron would read it as part of the first line; save the file without it",
        ));
    }
    if text.crlf {
        out.diagnostics.push(Diagnostic::note(
            Some(file_origin.clone()),
            "CRLF line endings: accepted, but Debian cron would ignore this file; convert it with dos2unix",
        ));
    }
    if text.missing_final_newline {
        out.diagnostics.push(Diagnostic::note(
            Some(file_origin.clone()),
            "no newline at the end of the file: accepted, but Debian's crontab refuses such a file; add a final newline",
        ));
    }

    let (format, owner) = match format {
        CrontabFormat::User => (CrontabFormat::User, owner),
        CrontabFormat::System => (CrontabFormat::System, owner),
        CrontabFormat::SystemOrDcron => match dcron_evidence(&text.lines) {
            Some((line, word)) => {
                out.diagnostics.push(Diagnostic::note(
                    Some(file_origin.clone()),
                    format!(
                        "no entry has a user field (`{word}` after the schedule on line {line} is not a user name): \
                         read in the user format as root's crontab, as Alpine's dcron reads /etc/cron.d; \
                         Debian and cronie would reject this file, so add the user (`root`) after the five time fields to make it portable"
                    ),
                ));
                (CrontabFormat::User, Some("root"))
            }
            None => (CrontabFormat::System, owner),
        },
    };

    // Shared by the entries that follow, not copied into each (issue 11).
    let mut env = EnvStack::new();
    let mut shell: Option<String> = None;
    let mut timezone: Option<String> = None;
    let mut random_delay: Option<std::time::Duration> = None;
    let mut mailto_noted = false;
    let mut root_warned = false;

    for raw in &text.lines {
        let origin = file_origin.at(raw.number);
        let line = match &raw.text {
            Ok(line) => line.as_str(),
            Err(()) => {
                out.diagnostics.push(Diagnostic::error(
                    Some(origin),
                    "this line is not valid UTF-8, so its command cannot be passed on faithfully; save the file as UTF-8",
                ));
                continue;
            }
        };
        // A line longer than any real one is refused alone, like any bad line.
        if line.len() > limits::LINE_BYTES_MAX {
            out.diagnostics.push(Diagnostic::error(
                Some(origin),
                format!(
                    "line: {} bytes is too long; at most {} (128 KiB)",
                    line.len(),
                    limits::LINE_BYTES_MAX
                ),
            ));
            continue;
        }
        match classify(line) {
            LineKind::Ignored => {}
            LineKind::Env(name, value) => {
                match name.as_str() {
                    // Vixie reads SHELL from the entry's environment when it runs the
                    // job, so it applies to the entries that follow.
                    // See: https://github.com/vixie/cron/blob/master/do_command.c
                    "SHELL" => shell = (!value.is_empty()).then(|| value.clone()),
                    // cronie's CRON_TZ: the zone of the following entries' schedules;
                    // empty means the default zone again.
                    "CRON_TZ" => timezone = (!value.is_empty()).then(|| value.clone()),
                    // cronie's RANDOM_DELAY (minutes): the following entries'
                    // runs start up to that much after their ticks (`jitter`).
                    "RANDOM_DELAY" => match random_delay_of(&value) {
                        Ok(delay) => random_delay = delay,
                        Err(m) => out
                            .diagnostics
                            .push(Diagnostic::error(Some(origin.clone()), m)),
                    },
                    "MAILTO" if !mailto_noted => {
                        mailto_noted = true;
                        out.diagnostics
                            .push(Diagnostic::note(Some(origin.clone()), MAILTO_NOTE));
                    }
                    _ => {}
                }
                env.set(name, value);
            }
            LineKind::Entry(body) => match parse_entry(body, format) {
                Ok(entry) => {
                    // Once per file: a misplaced system crontab has it on every line.
                    if let Some(warning) = entry.warning.filter(|_| !root_warned) {
                        root_warned = true;
                        out.diagnostics
                            .push(Diagnostic::warning(Some(origin.clone()), warning));
                    }
                    if let Some(hint) = entry.number_command {
                        out.diagnostics
                            .push(Diagnostic::warning(Some(origin.clone()), hint));
                    }
                    // SPEC 2: cron accepts a schedule that never fires; a warning here,
                    // and the job has no times.
                    if let Some(reason) = crate::schedule::crontab_never_fires(&entry.expr) {
                        out.diagnostics.push(Diagnostic::warning(
                            Some(origin.clone()),
                            format!(
                                "schedule `{}` never fires: {reason}; cron accepts the line, so the job is kept \
                                 but never runs; check the day-of-month and month fields",
                                entry.expr
                            ),
                        ));
                    }
                    let (command, stdin) = split_percent(entry.command);
                    if stdin.is_some() {
                        out.diagnostics.push(Diagnostic::warning(
                            Some(origin.clone()),
                            "unescaped `%` in the command: the text after it is passed as standard input, with further `%` as newlines (Vixie cron rule); \
                             busybox and dcron would pass it through as part of the command; write `\\%` for a literal `%`",
                        ));
                    }
                    let user = match format {
                        CrontabFormat::User => owner.map(str::to_owned),
                        _ => entry.user.map(str::to_owned),
                    };
                    let mut job =
                        JobSpec::new(Command::Shell(command), SourceKind::Crontab, origin.clone());
                    job.schedules.push(ScheduleSpec {
                        expr: entry.expr,
                        dialect: Dialect::Crontab,
                        timezone: timezone.clone(),
                        origin,
                    });
                    job.stdin = stdin;
                    job.shell = shell.clone();
                    job.jitter = random_delay;
                    job.user = user;
                    job.env = env.env();
                    if let Err(m) = limits::check_env_bytes(job.env.bytes()) {
                        out.diagnostics.push(Diagnostic::error(
                            Some(job.origin.clone()),
                            format!("{m}; the variables are set by the lines above this entry"),
                        ));
                        continue;
                    }
                    out.jobs.push(std::sync::Arc::new(job));
                }
                Err(message) => {
                    let message = if looks_like_env_attempt(body) {
                        "neither an environment line nor an entry: an environment line is NAME=value \
                         (blanks around `=` allowed; a quoted value must be closed, with nothing after the closing quote)"
                            .to_owned()
                    } else {
                        message
                    };
                    out.diagnostics
                        .push(Diagnostic::error(Some(origin), message));
                }
            },
        }
    }
    out
}

/// `RANDOM_DELAY=N`: up to N minutes (cronie); empty or 0 is none. Any
/// other value is refused (cronie logs it and ignores it), so the entries
/// after it keep the delay set before it.
fn random_delay_of(value: &str) -> Result<Option<std::time::Duration>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let minutes: u64 = value.parse().map_err(|_| {
        format!(
            "RANDOM_DELAY={value}: not a number of minutes; write a whole number such as \
             RANDOM_DELAY=10 (the delay before the entries below it is kept)"
        )
    })?;
    let max = limits::JITTER.max.as_secs() / 60;
    if minutes > max {
        return Err(format!(
            "RANDOM_DELAY={minutes}: {minutes} minutes is too long; at most {max} (1 day) \
             (the delay before the entries below it is kept)"
        ));
    }
    Ok((minutes > 0).then(|| std::time::Duration::from_secs(minutes * 60)))
}

/// One line of the file: its 1-based number and its text, or `Err` when it is not
/// UTF-8 and not a comment or blank.
struct RawLine {
    number: usize,
    text: Result<String, ()>,
}

/// The file split into lines, with what was noticed about its shape.
struct RawText {
    lines: Vec<RawLine>,
    bom: bool,
    crlf: bool,
    missing_final_newline: bool,
}

impl RawText {
    fn split(bytes: &[u8]) -> RawText {
        let (bom, bytes) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (true, rest),
            None => (false, bytes),
        };
        let missing_final_newline = !bytes.is_empty() && !bytes.ends_with(b"\n");
        let mut crlf = false;
        let mut lines = Vec::new();
        // A final "\n" ends the last line; it does not start an empty one.
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        if !bytes.is_empty() {
            for (index, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = match line.strip_suffix(b"\r") {
                    Some(stripped) => {
                        crlf = true;
                        stripped
                    }
                    None => line,
                };
                let text = match std::str::from_utf8(line) {
                    Ok(s) => Ok(s.to_owned()),
                    // Comments may be in any encoding: cron never looks at them.
                    Err(_) if is_ignored_bytes(line) => Ok(String::new()),
                    Err(_) => Err(()),
                };
                lines.push(RawLine {
                    number: index + 1,
                    text,
                });
            }
        }
        RawText {
            lines,
            bom,
            crlf,
            missing_final_newline,
        }
    }
}

fn is_ignored_bytes(line: &[u8]) -> bool {
    match line.iter().find(|&&b| b != b' ' && b != b'\t') {
        None => true,
        Some(&b) => b == b'#',
    }
}

/// What a line is.
#[derive(Debug, PartialEq)]
enum LineKind<'a> {
    /// Blank or a comment.
    Ignored,
    Env(String, String),
    /// An entry (or something that is neither of the others), without its leading
    /// blanks.
    Entry(&'a str),
}

/// Vixie's `skip_comments` skips blanks (space and tab only) before looking for `#`;
/// then a line that `load_env` accepts is an environment line, and anything else
/// is an entry.
/// See: https://github.com/vixie/cron/blob/master/misc.c (skip_comments)
fn classify(line: &str) -> LineKind<'_> {
    let body = line.trim_start_matches([' ', '\t']);
    if body.is_empty() || body.starts_with('#') {
        return LineKind::Ignored;
    }
    match parse_env(body) {
        Some((name, value)) => LineKind::Env(name, value),
        None => LineKind::Entry(body),
    }
}

/// An entry split into its parts; the command still carries its `%` text.
#[derive(Debug, PartialEq)]
struct Entry<'a> {
    expr: String,
    user: Option<&'a str>,
    command: &'a str,
    /// Something cron would accept but that is probably not what was meant (given
    /// once per file).
    warning: Option<String>,
    /// The command is a number, as a sixth time field would be (given per line).
    number_command: Option<String>,
}

/// Fields are separated by blanks (space and tab), as Vixie's `Skip_Blanks`.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The next blank-separated word and the text after it (not yet skipping blanks).
fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(is_blank);
    if s.is_empty() {
        return None;
    }
    let end = s.find(is_blank).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Splits the schedule off an entry: an `@macro` or five time fields, joined by
/// single spaces. Returns the expression and the rest of the line.
fn split_schedule(body: &str) -> Result<(String, &str), String> {
    if body.starts_with('@') {
        let (word, rest) = next_word(body).ok_or("empty entry")?;
        return Ok((word.to_owned(), rest));
    }
    let mut fields = Vec::with_capacity(5);
    let mut rest = body;
    for (index, field) in FIELD_NAMES.iter().enumerate() {
        match next_word(rest) {
            Some((word, after)) => {
                if !looks_like_time_field(word) {
                    return Err(format!(
                        "`{word}` is not a time field (the {field} field): an entry is five time fields \
                         (minute hour day-of-month month day-of-week) or an @macro, then the command \
                         (in /etc/crontab and cron.d: the user, then the command); is a field missing?"
                    ));
                }
                fields.push(word);
                rest = after;
            }
            None => {
                return Err(format!(
                    "too few fields: found {index} of the five time fields (minute hour day-of-month month day-of-week) and no command; \
                     an entry is five time fields or an @macro, then the command"
                ));
            }
        }
    }
    Ok((fields.join(" "), rest))
}

/// A loose shape check so that a missing field is reported as such instead of as
/// a strange value: what a time field may contain (numbers, names, `*`, `,`, `-`,
/// `/`, and the `?`/`L`/`W`/`#` that `schedule` rejects with its own message).
fn looks_like_time_field(word: &str) -> bool {
    let first_ok = word
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?');
    first_ok
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '/' | ',' | '-' | '#'))
}

/// A word made only of what numeric time fields are made of (`*`, `0`, `*/6`,
/// `1-5`, `?`): after five fields it means the line has six or seven.
fn looks_like_extra_time_field(word: &str) -> bool {
    word.chars()
        .any(|c| c.is_ascii_digit() || c == '*' || c == '?')
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '?' | '/' | ',' | '-'))
}

/// Whether a word could be a user name: the portable POSIX set
/// `[A-Za-z0-9._-]`, not starting with `-` or `.`, not all digits, an optional
/// final `$` (Samba machine accounts), at most 32 bytes (the Linux limit).
fn is_plausible_user_name(word: &str) -> bool {
    let name = word.strip_suffix('$').unwrap_or(word);
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with(['-', '.'])
        && !name.chars().all(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

const SIX_FIELDS: &str = "more than five time fields: classic cron takes exactly five (minute hour day-of-month month day-of-week), \
     and would read the extra field as part of the command; the six- and seven-field forms with seconds and year are supercronic's: \
     read a supercronic file with `--supercronic FILE`, or drop the extra fields, or move the job to a YAML file, where a leading seconds field is allowed";

/// Splits an entry as Vixie's `load_entry` does: the schedule, then (system format)
/// the user, then the command, which is the rest of the line after its leading
/// blanks.
/// See: https://github.com/vixie/cron/blob/master/entry.c (load_entry)
fn parse_entry(body: &str, format: CrontabFormat) -> Result<Entry<'_>, String> {
    let (expr, rest) = split_schedule(body)?;
    let (user, rest) = if format == CrontabFormat::User {
        (None, rest)
    } else {
        let Some((user, after)) = next_word(rest) else {
            return Err(format!(
                "missing user and command after `{expr}`: an /etc/crontab or cron.d entry is the schedule, the user, then the command"
            ));
        };
        if looks_like_extra_time_field(user) {
            return Err(SIX_FIELDS.to_owned());
        }
        if !is_plausible_user_name(user) {
            return Err(format!(
                "`{user}` is not a user name: an /etc/crontab or cron.d entry is the schedule, the user, then the command \
                 (a cron.d file whose entries all lack the user is read as root's, in dcron's user format)"
            ));
        }
        (Some(user), after)
    };
    let command = rest.trim_start_matches(is_blank);
    if command.is_empty() {
        return Err(match user {
            Some(user) => format!("missing command after the user `{user}`"),
            None => format!("missing command after the schedule `{expr}`"),
        });
    }
    let first = next_word(command).map_or("", |(word, _)| word);
    // cron runs `0 2 * * * 5` as the command `5`, so a command made of digits is
    // read as cron reads it, with the hint as a warning. A `*` or `?` cannot be
    // meant as a command (the shell would run whatever file the glob finds first):
    // that line is a six- or seven-field schedule, refused.
    let number_command = if looks_like_extra_time_field(first) {
        if first.contains(['*', '?']) {
            return Err(SIX_FIELDS.to_owned());
        }
        Some(format!(
            "the command `{first}` looks like a sixth time field; cron runs it as a command named `{first}`, and so does jobrun. \
             If it is a time field: {SIX_FIELDS}"
        ))
    } else {
        None
    };
    // A system-format file given as a user crontab would run a command named `root`.
    let warning = (format == CrontabFormat::User && first == "root").then(|| {
        "the command starts with `root`, which looks like the user field of a system crontab: \
         a user crontab has no user field, so cron would run a command named `root`; \
         read /etc/crontab and cron.d files with --system-crontabs"
            .to_owned()
    });
    Ok(Entry {
        expr,
        user,
        command,
        warning,
        number_command,
    })
}

/// For [`CrontabFormat::SystemOrDcron`]: the first entry whose word after the
/// schedule is not a user name, when no entry has a user name there.
fn dcron_evidence(lines: &[RawLine]) -> Option<(usize, String)> {
    let mut evidence = None;
    for raw in lines {
        let Ok(line) = &raw.text else { continue };
        let LineKind::Entry(body) = classify(line) else {
            continue;
        };
        let Ok((_, rest)) = split_schedule(body) else {
            continue;
        };
        let Some((word, _)) = next_word(rest) else {
            continue;
        };
        if looks_like_extra_time_field(word) {
            continue;
        }
        if is_plausible_user_name(word) {
            return None;
        }
        if evidence.is_none() {
            evidence = Some((raw.number, word.to_owned()));
        }
    }
    evidence
}

#[cfg(test)]
#[path = "crontab_semantics_tests.rs"]
mod semantics_tests;

#[cfg(test)]
mod tests;
