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
    let mut mailto_noted = false;
    let mut root_warned = false;

    for raw in &text.lines {
        let origin = Origin::new(path, raw.number);
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
                    job.user = user;
                    job.env = env.env();
                    if let Err(m) = limits::check_env_bytes(job.env.bytes()) {
                        out.diagnostics.push(Diagnostic::error(
                            Some(job.origin.clone()),
                            format!("{m}; the variables are set by the lines above this entry"),
                        ));
                        continue;
                    }
                    out.jobs.push(job);
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

/// A line that failed as an entry but was probably meant as a variable: its first
/// word contains `=`, or the next word starts with one.
fn looks_like_env_attempt(body: &str) -> bool {
    match next_word(body) {
        Some((first, rest)) => {
            first.contains('=') || next_word(rest).is_some_and(|(w, _)| w.starts_with('='))
        }
        None => false,
    }
}

/// C's `isspace` in the "C" locale, which `load_env` uses.
fn c_isspace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// The state machine of `load_env` as in cronie and Debian: `NAME=value`, blanks
/// allowed around `=`, the name or the value optionally in single or double quotes
/// (the quotes are removed, nothing may follow the closing quote), an unquoted
/// value runs to the end of the line (a `#` in it is part of the value) with
/// trailing blanks removed, and nothing is expanded (`$HOME` stays `$HOME`).
/// See: https://github.com/cronie-crond/cronie/blob/master/src/env.c (load_env)
fn parse_env(line: &str) -> Option<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        NameStart,
        Name,
        BeforeEq,
        AfterEq,
        ValueStart,
        Value,
        Done,
    }
    let mut name = String::new();
    let mut value = String::new();
    let mut state = State::NameStart;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match state {
            State::NameStart | State::ValueStart => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    chars.next();
                }
                state = if state == State::NameStart {
                    State::Name
                } else {
                    State::Value
                };
            }
            State::Name | State::Value => {
                match quote {
                    Some(q) if c == q => {
                        chars.next();
                        state = if state == State::Name {
                            State::BeforeEq
                        } else {
                            State::Done
                        };
                        continue;
                    }
                    Some(_) if state == State::Name && c == '=' => return None,
                    None if state == State::Name && c_isspace(c) => {
                        chars.next();
                        state = State::BeforeEq;
                        continue;
                    }
                    None if state == State::Name && c == '=' => {
                        state = State::BeforeEq;
                        continue;
                    }
                    _ => {}
                }
                if state == State::Name {
                    name.push(c);
                } else {
                    value.push(c);
                }
                chars.next();
            }
            State::BeforeEq => {
                if c == '=' {
                    state = State::AfterEq;
                    quote = None;
                } else if !c_isspace(c) {
                    return None;
                }
                chars.next();
            }
            State::AfterEq | State::Done => {
                if c_isspace(c) {
                    chars.next();
                } else if state == State::AfterEq {
                    state = State::ValueStart;
                } else {
                    return None;
                }
            }
        }
    }
    let complete = match state {
        State::Done | State::AfterEq => true,
        State::Value => quote.is_none(),
        _ => false,
    };
    // An empty name would pass Vixie's parser but can never be a variable.
    if !complete || name.is_empty() {
        return None;
    }
    if state == State::Value {
        let trimmed = value.trim_end_matches(c_isspace).len();
        value.truncate(trimmed);
    }
    Some((name, value))
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

/// Vixie's `%` rule: the first unescaped `%` ends the command and the rest is
/// standard input, where each further unescaped `%` becomes a newline and a final
/// newline is added when missing. `\%` becomes `%` in both parts; any other
/// backslash is kept. Returns the command and the standard input (`Some("")` for
/// a command ending in `%`: cron then gives the job an empty pipe).
/// See: https://github.com/vixie/cron/blob/master/do_command.c (child_process)
fn split_percent(raw: &str) -> (String, Option<String>) {
    let mut command = String::with_capacity(raw.len());
    let mut escaped = false;
    let mut input = None;
    for (index, c) in raw.char_indices() {
        if escaped {
            if c == '%' {
                command.pop();
            }
            command.push(c);
            escaped = false;
            continue;
        }
        if c == '\\' {
            command.push(c);
            escaped = true;
            continue;
        }
        if c == '%' {
            input = Some(&raw[index + 1..]);
            break;
        }
        command.push(c);
    }
    let Some(input) = input else {
        return (command, None);
    };
    let mut stdin = String::with_capacity(input.len() + 1);
    let mut escaped = false;
    let mut need_newline = false;
    for c in input.chars() {
        let mut c = c;
        if escaped {
            if c != '%' {
                stdin.push('\\');
            }
        } else if c == '%' {
            c = '\n';
        }
        escaped = c == '\\';
        if !escaped {
            stdin.push(c);
            need_newline = c != '\n';
        }
    }
    if escaped {
        stdin.push('\\');
    }
    if need_newline {
        stdin.push('\n');
    }
    (command, Some(stdin))
}

#[cfg(test)]
#[path = "crontab_semantics_tests.rs"]
mod semantics_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Severity;
    use std::path::PathBuf;

    fn parse(text: &str, format: CrontabFormat, owner: Option<&str>) -> SourceSet {
        parse_crontab(Path::new("/etc/test"), text.as_bytes(), format, owner)
    }

    fn errors(set: &SourceSet) -> Vec<&Diagnostic> {
        set.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect()
    }

    fn shell(job: &JobSpec) -> &str {
        match &job.command {
            Command::Shell(s) => s,
            Command::Argv(_) | Command::Signal(_) => panic!("crontab jobs are shell commands"),
        }
    }

    #[test]
    fn env_lines_follow_vixie_load_env() {
        // (line, expected name and value, or None when it is not an env line)
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("FOO=bar", Some(("FOO", "bar"))),
            ("FOO = bar", Some(("FOO", "bar"))),
            ("FOO\t=\tbar  ", Some(("FOO", "bar"))),
            ("FOO='bar baz'", Some(("FOO", "bar baz"))),
            ("FOO=\"bar baz\"", Some(("FOO", "bar baz"))),
            ("FOO = \" padded \"  ", Some(("FOO", " padded "))),
            ("FOO=\"bar\" extra", None),
            ("FOO=\"unterminated", None),
            ("FOO='mixed\"", None),
            (
                "FOO=bar baz  # not a comment",
                Some(("FOO", "bar baz  # not a comment")),
            ),
            (
                "GHLISTER_ROOT=$HOME/src",
                Some(("GHLISTER_ROOT", "$HOME/src")),
            ),
            (
                "PATH=\"$PATH:/usr/sbin\"",
                Some(("PATH", "$PATH:/usr/sbin")),
            ),
            ("MAILTO=", Some(("MAILTO", ""))),
            ("MAILTO=\"\"", Some(("MAILTO", ""))),
            ("\"QUOTED NAME\"=x", Some(("QUOTED NAME", "x"))),
            ("'A=B'=x", None),
            ("FOO=a=b", Some(("FOO", "a=b"))),
            ("=bar", None),
            ("0 1 * * * FOO=bar cmd", None),
            ("* * * * * cmd", None),
            ("@daily X=1 cmd", None),
            ("FOO bar=baz", None),
        ];
        for (line, expected) in cases {
            let got = parse_env(line);
            let expected = expected.map(|(n, v)| (n.to_owned(), v.to_owned()));
            assert_eq!(got, expected, "line {line:?}");
        }
    }

    #[test]
    fn entries_split_into_schedule_user_and_command() {
        use CrontabFormat::{System, User};
        // (format, line, expr, user, command)
        let cases: &[(CrontabFormat, &str, &str, Option<&str>, &str)] = &[
            (User, "0 1 * * * /bin/true", "0 1 * * *", None, "/bin/true"),
            (
                User,
                "0\t1\t*\t*\t*\techo  a   b",
                "0 1 * * *",
                None,
                "echo  a   b",
            ),
            (
                User,
                "*/15    *   *  *  mon-fri    run-parts /x",
                "*/15 * * * mon-fri",
                None,
                "run-parts /x",
            ),
            (User, "0 8 * * * cmd   ", "0 8 * * *", None, "cmd   "),
            (
                System,
                "17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly",
                "17 * * * *",
                Some("root"),
                "cd / && run-parts --report /etc/cron.hourly",
            ),
            (
                System,
                "@reboot root /usr/sbin/logrotate",
                "@reboot",
                Some("root"),
                "/usr/sbin/logrotate",
            ),
            (
                System,
                "00 00   * * *   www-data    php x",
                "00 00 * * *",
                Some("www-data"),
                "php x",
            ),
            (
                System,
                "0 0 * * * machine$ cmd",
                "0 0 * * *",
                Some("machine$"),
                "cmd",
            ),
            (User, "@daily echo hi", "@daily", None, "echo hi"),
        ];
        for (format, line, expr, user, command) in cases {
            let entry = parse_entry(line, *format).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(entry.expr, *expr, "{line:?}");
            assert_eq!(entry.user, *user, "{line:?}");
            assert_eq!(entry.command, *command, "{line:?}");
        }
    }

    #[test]
    fn every_macro_is_passed_through() {
        for m in [
            "@reboot",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ] {
            let set = parse(&format!("{m} /bin/job\n"), CrontabFormat::User, None);
            assert!(errors(&set).is_empty(), "{m}: {:?}", set.diagnostics);
            assert_eq!(set.jobs.len(), 1);
            assert_eq!(set.jobs[0].schedules[0].expr, m);
            assert_eq!(set.jobs[0].schedules[0].dialect, Dialect::Crontab);
            assert_eq!(shell(&set.jobs[0]), "/bin/job");
        }
    }

    #[test]
    fn invalid_lines_are_errors_with_their_line_and_the_rest_is_read() {
        use CrontabFormat::{System, User};
        // (format, line, text expected in the message)
        let cases: &[(CrontabFormat, &str, &str)] = &[
            (User, "0 1 * *", "too few fields: found 4"),
            (User, "0 1 * * *", "missing command"),
            (
                User,
                "0 1 * * /bin/foo arg",
                "`/bin/foo` is not a time field (the day-of-week field)",
            ),
            (User, "@daily", "missing command"),
            (
                User,
                "0 * * * * * * azuracast_cli sync",
                "more than five time fields",
            ),
            (
                User,
                "0 30 */6 * * * * temp_cleanup",
                "more than five time fields",
            ),
            (
                System,
                "0 1 * * * root",
                "missing command after the user `root`",
            ),
            (System, "0 1 * * *", "missing user and command"),
            (
                System,
                "0 1 * * * /usr/bin/php x",
                "`/usr/bin/php` is not a user name",
            ),
            (
                System,
                "0 * * * * * * azuracast_cli sync",
                "more than five time fields",
            ),
            (
                User,
                "FOO=\"bar\" extra",
                "neither an environment line nor an entry",
            ),
            (
                User,
                "FOO = 'unclosed",
                "neither an environment line nor an entry",
            ),
        ];
        for (format, line, expected) in cases {
            let text = format!("# header\nA=1\n{line}\n0 2 * * * good\n");
            let text = if *format == System {
                text.replace("good", "root good")
            } else {
                text
            };
            let set = parse(&text, *format, None);
            let errs = errors(&set);
            assert_eq!(errs.len(), 1, "{line:?}: {:?}", set.diagnostics);
            assert_eq!(
                errs[0].origin,
                Some(Origin::new("/etc/test", 3)),
                "{line:?}"
            );
            assert!(
                errs[0].message.contains(expected),
                "{line:?}: {}",
                errs[0].message
            );
            assert_eq!(set.jobs.len(), 1, "{line:?}");
            assert_eq!(set.jobs[0].origin.line, 4);
            assert_eq!(shell(&set.jobs[0]), "good");
        }
    }

    #[test]
    fn comments_blanks_and_leading_blanks() {
        let text =
            "# comment\n\n   \n\t# indented comment\n  \t 0 8  *   *   *     cmd one\n  FOO=bar\n";
        let set = parse(text, CrontabFormat::User, Some("alice"));
        assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 1);
        let job = &set.jobs[0];
        assert_eq!(job.schedules[0].expr, "0 8 * * *");
        assert_eq!(shell(job), "cmd one");
        assert_eq!(job.origin, Origin::new("/etc/test", 5));
        assert_eq!(job.schedules[0].origin, job.origin);
        assert_eq!(job.user.as_deref(), Some("alice"));
        assert_eq!(job.kind, SourceKind::Crontab);
        assert!(job.enabled);
        assert!(job.name.is_none());
        assert!(job.env.is_empty(), "variables apply only to later entries");
    }

    #[test]
    fn variables_apply_to_the_entries_that_follow() {
        let text = "\
SHELL=/bin/bash
0 1 * * * first
CRON_TZ=Europe/Berlin
MAILTO=ops@example.com
HOME = '/srv/$USER'
0 2 * * * second
SHELL=
CRON_TZ=
MAILTO=\"\"
0 3 * * * third
";
        let set = parse(text, CrontabFormat::User, None);
        assert_eq!(set.jobs.len(), 3);
        let (first, second, third) = (&set.jobs[0], &set.jobs[1], &set.jobs[2]);

        assert_eq!(first.shell.as_deref(), Some("/bin/bash"));
        assert_eq!(first.schedules[0].timezone, None);
        assert_eq!(first.env.len(), 1);
        assert_eq!(first.env.get("SHELL"), Some("/bin/bash"));

        assert_eq!(second.shell.as_deref(), Some("/bin/bash"));
        assert_eq!(
            second.schedules[0].timezone.as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(second.env.get("HOME"), Some("/srv/$USER"));
        assert_eq!(second.env.get("MAILTO"), Some("ops@example.com"));
        assert_eq!(second.env.get("CRON_TZ"), Some("Europe/Berlin"));

        assert_eq!(third.shell, None);
        assert_eq!(third.schedules[0].timezone, None);
        assert_eq!(third.env.get("MAILTO"), Some(""));

        let notes: Vec<_> = set.diagnostics.iter().collect();
        assert_eq!(notes.len(), 1, "one MAILTO note per file: {notes:?}");
        assert_eq!(notes[0].severity, Severity::Note);
        assert_eq!(notes[0].message, MAILTO_NOTE);
        assert_eq!(notes[0].origin, Some(Origin::new("/etc/test", 4)));
    }

    #[test]
    fn percent_rule_table() {
        // (command text, command, stdin)
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("echo hi", "echo hi", None),
            ("date +\\%Y\\%m\\%d", "date +%Y%m%d", None),
            (
                "mail -s hi root%line one%line two",
                "mail -s hi root",
                Some("line one\nline two\n"),
            ),
            ("cat%", "cat", Some("")),
            ("cat%a%", "cat", Some("a\n")),
            ("cat%100\\% sure", "cat", Some("100% sure\n")),
            ("cat%back\\slash", "cat", Some("back\\slash\n")),
            ("printf '\\n' %x", "printf '\\n' ", Some("x\n")),
            ("a\\\\%b", "a\\\\", Some("b\n")),
            ("cat%\\\\%", "cat", Some("\\%\n")),
            ("cat%ends\\", "cat", Some("ends\\\n")),
            (
                "sleep $((60 + $RANDOM % 230))",
                "sleep $((60 + $RANDOM ",
                Some(" 230))\n"),
            ),
        ];
        for (raw, command, stdin) in cases {
            let (c, s) = split_percent(raw);
            assert_eq!(c, *command, "{raw:?}");
            assert_eq!(s.as_deref(), *stdin, "{raw:?}");
        }
    }

    #[test]
    fn unescaped_percent_is_a_warning_and_escaped_is_not() {
        let set = parse(
            "0 1 * * * date +\\%F\n0 2 * * * mail root%hello\n",
            CrontabFormat::User,
            None,
        );
        assert_eq!(set.jobs.len(), 2);
        assert_eq!(shell(&set.jobs[0]), "date +%F");
        assert_eq!(set.jobs[0].stdin, None);
        assert_eq!(shell(&set.jobs[1]), "mail root");
        assert_eq!(set.jobs[1].stdin.as_deref(), Some("hello\n"));
        assert_eq!(set.diagnostics.len(), 1, "{:?}", set.diagnostics);
        let warning = &set.diagnostics[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert_eq!(warning.origin, Some(Origin::new("/etc/test", 2)));
        assert!(warning.message.contains("standard input"));
        assert!(warning.message.contains("\\%"));
    }

    #[test]
    fn crlf_and_missing_final_newline_are_accepted_with_one_note_each() {
        let set = parse(
            "A=1\r\n0 1 * * * one\r\n0 2 * * * two\r\n0 3 * * * three",
            CrontabFormat::User,
            None,
        );
        assert!(errors(&set).is_empty());
        let commands: Vec<_> = set.jobs.iter().map(shell).collect();
        assert_eq!(commands, ["one", "two", "three"]);
        assert_eq!(set.jobs[0].env.get("A"), Some("1"));
        let notes: Vec<_> = set.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0]
            .starts_with("CRLF line endings: accepted, but Debian cron would ignore this file"));
        assert!(notes[1].starts_with("no newline at the end of the file"));
        for d in &set.diagnostics {
            assert_eq!(d.severity, Severity::Note);
            assert_eq!(d.origin, Some(Origin::new("/etc/test", 0)));
        }
    }

    #[test]
    fn byte_order_mark_and_empty_file() {
        let set = parse("\u{feff}0 1 * * * one\n", CrontabFormat::User, None);
        assert_eq!(set.jobs.len(), 1);
        assert_eq!(set.jobs[0].schedules[0].expr, "0 1 * * *");
        assert_eq!(set.diagnostics.len(), 1);
        assert!(set.diagnostics[0].message.contains("byte order mark"));

        let set = parse("", CrontabFormat::User, None);
        assert!(set.jobs.is_empty() && set.diagnostics.is_empty());
    }

    #[test]
    fn invalid_utf8_is_an_error_except_in_comments() {
        let bytes = b"# caf\xe9\n0 1 * * * echo caf\xe9\n0 2 * * * ok\n";
        let set = parse_crontab(Path::new("/x"), bytes, CrontabFormat::User, None);
        assert_eq!(set.jobs.len(), 1);
        let errs = errors(&set);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].origin, Some(Origin::new("/x", 2)));
    }

    #[test]
    fn system_format_user_and_root_warning_in_user_format() {
        let set = parse(
            "0 1 * * * root /bin/x\n0 2 * * * root /bin/y\n",
            CrontabFormat::User,
            None,
        );
        assert_eq!(set.jobs.len(), 2);
        assert_eq!(shell(&set.jobs[0]), "root /bin/x");
        assert_eq!(set.diagnostics.len(), 1);
        assert_eq!(set.diagnostics[0].severity, Severity::Warning);

        let set = parse(
            "0 1 * * * www-data /bin/x\n",
            CrontabFormat::System,
            Some("ignored"),
        );
        assert_eq!(set.jobs[0].user.as_deref(), Some("www-data"));
        assert_eq!(shell(&set.jobs[0]), "/bin/x");
    }

    #[test]
    fn dcron_detection_is_per_file() {
        let dcron = "# jobs\n0 1 * * * /usr/local/bin/php a.php\n@daily /usr/bin/b\n";
        let set = parse(dcron, CrontabFormat::SystemOrDcron, None);
        assert!(errors(&set).is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 2);
        assert!(set.jobs.iter().all(|j| j.user.as_deref() == Some("root")));
        assert_eq!(shell(&set.jobs[0]), "/usr/local/bin/php a.php");
        let note = &set.diagnostics[0];
        assert_eq!(note.severity, Severity::Note);
        assert!(note
            .message
            .contains("`/usr/local/bin/php` after the schedule on line 2"));

        // One entry with a user: the file is in the system format, and the other
        // entry is an error.
        let mixed = "0 1 * * * /usr/local/bin/php a.php\n0 2 * * * root /bin/b\n";
        let set = parse(mixed, CrontabFormat::SystemOrDcron, None);
        assert_eq!(set.jobs.len(), 1);
        assert_eq!(set.jobs[0].user.as_deref(), Some("root"));
        assert_eq!(shell(&set.jobs[0]), "/bin/b");
        assert_eq!(errors(&set).len(), 1);

        // A normal cron.d file stays in the system format, without a note.
        let system = "PATH=/bin\n0 1 * * * nobody /bin/a\n";
        let set = parse(system, CrontabFormat::SystemOrDcron, None);
        assert!(set.diagnostics.is_empty());
        assert_eq!(set.jobs[0].user.as_deref(), Some("nobody"));

        // /etc/crontab never switches.
        let set = parse(dcron, CrontabFormat::System, None);
        assert!(set.jobs.is_empty());
        assert_eq!(errors(&set).len(), 2);
    }

    /// The real-world crontabs, copied into the repository with their provenance
    /// (tests/fixtures/corpus/SOURCES.md), so these tests always run.
    fn corpus_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
    }

    fn corpus_file(name: &str) -> (PathBuf, Vec<u8>) {
        let path = corpus_dir().join(name);
        let bytes = std::fs::read(&path).expect("corpus file listed in SOURCES.md");
        (path, bytes)
    }

    #[test]
    fn wallos_in_cron_d_is_read_as_roots_dcron_crontab() {
        let (path, bytes) = corpus_file("github/ellite__Wallos/cronjobs@7c2e7f0");
        let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
        assert!(errors(&set).is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 3);
        for job in &set.jobs {
            assert_eq!(job.user.as_deref(), Some("root"));
            assert!(shell(job).starts_with("/usr/local/bin/php "), "{job:?}");
            assert!(!shell(job).ends_with('\r'));
        }
        assert_eq!(set.jobs[2].schedules[0].expr, "0 9 * * *");
        let notes: Vec<_> = set.diagnostics.iter().map(|d| &d.message).collect();
        assert_eq!(notes.len(), 2, "CRLF and dcron: {notes:?}");
    }

    #[test]
    fn mdadm_escaped_percent() {
        let (path, bytes) = corpus_file("debian/mdadm/etc/cron.d/mdadm");
        let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
        assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 1);
        let job = &set.jobs[0];
        assert_eq!(job.user.as_deref(), Some("root"));
        assert_eq!(job.stdin, None);
        assert_eq!(job.schedules[0].expr, "57 0 * * 0");
        assert_eq!(
            shell(job),
            "if [ -x /usr/share/mdadm/checkarray ] && [ $(date +%d) -le 7 ]; then /usr/share/mdadm/checkarray --cron --all --idle --quiet; fi"
        );
        assert_eq!(job.origin.line, 12);
    }

    #[test]
    fn swh_lister_leading_blanks_and_literal_home() {
        let (path, bytes) = corpus_file("github/SoftwareHeritage__swh-lister/etc/crontab@28aa210");
        let set = parse_crontab(&path, &bytes, CrontabFormat::User, Some("zack"));
        assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 1);
        let job = &set.jobs[0];
        assert_eq!(
            job.env.get("GHLISTER_ROOT"),
            Some("$HOME/src/swh-lister-github")
        );
        assert_eq!(job.schedules[0].expr, "0 8 * * *");
        assert!(shell(job).starts_with("PATH=$GHLISTER_ROOT/bin:$PATH PYTHONPATH="));
        assert_eq!(job.user.as_deref(), Some("zack"));
    }

    /// Every corpus file: what Debian accepts gives no error and as many jobs as
    /// the model of Debian's parser counted; the supercronic file gives errors for
    /// each entry line and no job, in either format.
    #[test]
    fn corpus_matches_the_vixie_model() {
        let dir = corpus_dir();
        let index = std::fs::read(dir.join("index.json")).expect("readable index.json");
        let index: serde_json::Value = serde_json::from_slice(&index).expect("valid index.json");
        let entries = index.as_array().expect("index.json is a list");
        assert!(entries.len() >= 50, "{} corpus entries", entries.len());
        // Every copied file is in the index (and so in SOURCES.md), and only those.
        fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).expect("readable corpus directory") {
                let path = e.expect("a directory entry").path();
                if path.is_dir() {
                    files_under(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut on_disk = Vec::new();
        files_under(&dir, &mut on_disk);
        let mut on_disk: Vec<PathBuf> = on_disk
            .into_iter()
            .filter(|p| p.parent() != Some(dir.as_path()))
            .collect();
        on_disk.sort();
        let mut listed: Vec<PathBuf> = entries
            .iter()
            .map(|e| dir.join(e["file"].as_str().expect("file")))
            .collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for entry in entries {
            let file = entry["file"].as_str().expect("file");
            let path = dir.join(file);
            let bytes = std::fs::read(&path).expect("corpus file");
            let expected = entry["vixie_model"]["entries"].as_u64().expect("entries");
            // What the index records about the bytes is noted, once per file.
            for (fact, note) in [
                ("has_crlf", "CRLF line endings"),
                ("missing_final_newline", "no newline at the end of the file"),
            ] {
                let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
                let noted = set
                    .diagnostics
                    .iter()
                    .filter(|d| d.message.starts_with(note))
                    .count();
                let want = entry["vixie_model"][fact]
                    .as_bool()
                    .expect("a recorded fact");
                assert_eq!(noted, usize::from(want), "{file}: {fact}");
            }
            match entry["format"].as_str().expect("format") {
                "supercronic" => {
                    for format in [
                        CrontabFormat::User,
                        CrontabFormat::System,
                        CrontabFormat::SystemOrDcron,
                    ] {
                        let set = parse_crontab(&path, &bytes, format, None);
                        assert!(set.jobs.is_empty(), "{file} {format:?}");
                        let lines: Vec<_> = errors(&set)
                            .iter()
                            .filter_map(|d| d.origin.as_ref().map(|o| o.line))
                            .collect();
                        assert_eq!(lines, [1, 2], "{file} {format:?}: {:?}", set.diagnostics);
                    }
                }
                format => {
                    let format = if format == "system" {
                        CrontabFormat::System
                    } else {
                        CrontabFormat::User
                    };
                    let set = parse_crontab(&path, &bytes, format, Some("owner"));
                    assert!(errors(&set).is_empty(), "{file}: {:?}", set.diagnostics);
                    assert_eq!(set.jobs.len() as u64, expected, "{file}");
                    let reboots = set
                        .jobs
                        .iter()
                        .filter(|j| j.schedules[0].expr == "@reboot")
                        .count() as u64;
                    assert_eq!(
                        Some(reboots),
                        entry["vixie_model"]["reboot_entries"].as_u64(),
                        "{file}"
                    );
                    let percent = set
                        .diagnostics
                        .iter()
                        .any(|d| d.message.starts_with("unescaped `%`"));
                    assert_eq!(
                        Some(percent),
                        entry["vixie_model"]["unescaped_percent_in_command"].as_bool(),
                        "{file}"
                    );
                    if format == CrontabFormat::System {
                        // cron.d files that Debian reads stay in the system format.
                        let dcron =
                            parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
                        assert_eq!(dcron.jobs, set.jobs, "{file}");
                    }
                }
            }
        }
    }
}
