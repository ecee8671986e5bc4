//! A supercronic crontab (`--supercronic FILE`), read as supercronic reads it,
//! into [`JobSpec`]s.
//!
//! Owns the line grammar of supercronic's `crontab/crontab.go`: blanks and tabs
//! before a line are skipped; `#` starts a comment line; `NAME=value` (blanks
//! around `=` allowed, a value in matching quotes unquoted) is an environment
//! line; anything else is an entry whose schedule is its first 7 words if they
//! read as one, else its first 6, else 5, else 1 (a macro), and whose command
//! is the rest of the line, passed to the shell as written (`%` included).
//! See: <https://github.com/aptible/supercronic/blob/master/crontab/crontab.go>
//!
//! Decisions:
//! - The environment is the file's, not the line's: every job gets every
//!   variable the file sets, with its last value, wherever the line is
//!   (supercronic's `Context`). `SHELL` and `CRON_TZ` too.
//! - supercronic refuses the whole file for one bad line; jobrun reports the
//!   line as an error and runs the rest (`daemon --strict` refuses the file).
//! - Each line whose meaning differs from Vixie cron gets a note naming how
//!   (year and seconds fields, `L`/`W`/`#`, the day rule, `%`, a variable that
//!   reaches the jobs above it), so `check` tells a reader used to cron.
//!
//! It must not know what a time field means beyond asking `schedule` whether
//! supercronic's reading accepts it; it reads no files (the caller passes the
//! bytes) and names no clock, SQLite, tokio or process.

use std::collections::BTreeMap;
use std::path::Path;

use super::bounded;
use crate::job::{
    Command, Diagnostic, Dialect, JobEnv, JobSpec, Origin, ScheduleSpec, SourceKind, SourceSet,
};
use crate::limits;
use crate::schedule::{read_supercronic, ScheduleError};

/// Reads a supercronic crontab named with `--supercronic PATH`: its jobs run
/// as jobrun's own user. The file is checked as `--crontab` files are.
pub fn read_supercronic_file(path: &Path, euid: u32) -> SourceSet {
    let mut out = SourceSet::default();
    match super::trust_named::read_named(path, euid, super::trust_named::Naming::Given) {
        Ok(checked) => {
            out.diagnostics.extend(checked.warnings);
            out.extend(parse_supercronic(path, &checked.bytes));
        }
        Err(refused) => out.diagnostics.push(refused),
    }
    out
}

/// Go's `\s` (RE2): what separates words for supercronic.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// One environment line as supercronic's `^([^\s=]+)\s*=\s*(.*)$` reads it,
/// with its quote rule: a value that starts and ends with the same quote
/// (`"` or `'`) loses both.
fn env_line(line: &str) -> Option<(String, String)> {
    let name_end = line.find(|c: char| is_blank(c) || c == '=')?;
    if name_end == 0 {
        return None;
    }
    let rest = line[name_end..].trim_start_matches(is_blank);
    let value = rest.strip_prefix('=')?.trim_start_matches(is_blank);
    let bytes = value.as_bytes();
    let unquoted = match bytes.first() {
        Some(&q @ (b'"' | b'\'')) if bytes.len() > 1 && bytes[bytes.len() - 1] == q => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    Some((line[..name_end].to_string(), unquoted.to_string()))
}

/// The spans of the words of `line` (supercronic's `\S+`).
fn words(line: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, line.len()));
    }
    out
}

/// Whether a word could be meant as a time field (so that an error names the
/// field count the line seems to have): digits, `*`, `?`, `L`, `W`, `#`,
/// ranges, steps, lists and names.
fn looks_like_field(word: &str) -> bool {
    const NAMES: [&str; 19] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "sun",
        "mon", "tue", "wed", "thu", "fri", "sat",
    ];
    word.to_ascii_lowercase()
        .split([',', '-', '/', '#'])
        .all(|part| {
            part.is_empty()
                || part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"*?lw".contains(&b))
                || NAMES.iter().any(|n| part.starts_with(n))
        })
}

/// An entry split as supercronic splits it: the schedule text, the command,
/// and what `schedule` noted about the schedule.
struct Entry<'a> {
    schedule: &'a str,
    command: &'a str,
    notes: Vec<String>,
    never: Option<String>,
}

fn split_entry(line: &str) -> Result<Entry<'_>, String> {
    let spans = words(line);
    let mut errors: Vec<(usize, ScheduleError)> = Vec::new();
    for count in [7, 6, 5, 1] {
        if spans.len() <= count {
            continue;
        }
        let schedule = &line[..spans[count - 1].1];
        match read_supercronic(schedule) {
            Ok(reading) => {
                return Ok(Entry {
                    schedule,
                    command: &line[spans[count].0..],
                    notes: reading.notes,
                    never: reading.never,
                })
            }
            Err(e) => errors.push((count, e)),
        }
    }
    if spans.len() <= 5 && !line.starts_with('@') {
        return Err(format!(
            "an entry needs 5 time fields (or 6 ending with a year, or 7 starting with seconds) and then a command; found {} word(s)",
            spans.len()
        ));
    }
    if line.starts_with('@') {
        let e = errors.iter().find(|(c, _)| *c == 1);
        return Err(match e {
            Some((_, e)) => e.to_string(),
            None => "a macro such as @daily needs a command after it".to_string(),
        });
    }
    // Report the reading the line seems to intend: as many time-like words
    // as it starts with (5 to 7).
    let time_like = spans
        .iter()
        .take_while(|(a, b)| looks_like_field(&line[*a..*b]))
        .count()
        .clamp(5, 7);
    let (count, e) = errors
        .iter()
        .find(|(c, _)| *c == time_like)
        .or_else(|| errors.iter().find(|(c, _)| *c == 5))
        .expect("the 5-field reading was tried: the line has more than 5 words");
    Err(format!(
        "not an entry as supercronic reads it: as {count} time fields, {e}"
    ))
}

/// Whether a command has a `%` that Vixie cron would treat specially (one
/// not escaped with a backslash).
fn has_vixie_percent(command: &str) -> bool {
    let mut escaped = false;
    for c in command.chars() {
        if c == '%' && !escaped {
            return true;
        }
        escaped = c == '\\' && !escaped;
    }
    false
}

/// Reads one supercronic crontab. Every problem becomes a [`Diagnostic`] at
/// its line; the other lines are still read.
pub fn parse_supercronic(path: &Path, bytes: &[u8]) -> SourceSet {
    let mut out = SourceSet::default();
    if let Err(m) = bounded::check_size(bytes.len()) {
        out.diagnostics
            .push(Diagnostic::error(Some(Origin::new(path, 0)), m));
        return out;
    }
    // The variables in the order they were set: (line, name, value).
    let mut sets: Vec<(usize, String, String)> = Vec::new();
    // The jobs, and for each the number of variable lines above it.
    let mut jobs: Vec<(JobSpec, usize)> = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let origin = Origin::new(path, index + 1);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            // Comments may be in any encoding: nothing reads them.
            let start = raw.iter().position(|b| !matches!(b, b' ' | b'\t'));
            if start.is_none_or(|i| raw[i] == b'#') {
                continue;
            }
            out.diagnostics.push(Diagnostic::error(
                Some(origin),
                "this line is not valid UTF-8, so it cannot be passed on faithfully; save the file as UTF-8",
            ));
            continue;
        };
        if text.len() > limits::LINE_BYTES_MAX {
            out.diagnostics.push(Diagnostic::error(
                Some(origin),
                format!(
                    "line: {} bytes is too long; at most {} (128 KiB)",
                    text.len(),
                    limits::LINE_BYTES_MAX
                ),
            ));
            continue;
        }
        let line = text.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = env_line(line) {
            if name == "USER" {
                out.diagnostics.push(Diagnostic::note(
                    Some(origin.clone()),
                    "USER only sets the variable: the jobs of a --supercronic file run as jobrun's own user, as supercronic runs them",
                ));
            }
            sets.push((index + 1, name, value));
            continue;
        }
        match split_entry(line) {
            Ok(entry) => {
                for note in entry.notes {
                    out.diagnostics
                        .push(Diagnostic::note(Some(origin.clone()), note));
                }
                if let Some(reason) = entry.never {
                    out.diagnostics.push(Diagnostic::warning(
                        Some(origin.clone()),
                        format!(
                            "schedule `{}` never fires: {reason}; the job is kept but never runs",
                            entry.schedule
                        ),
                    ));
                }
                if has_vixie_percent(entry.command) {
                    out.diagnostics.push(Diagnostic::note(
                        Some(origin.clone()),
                        "`%` is passed to the shell as written, as supercronic does; Vixie cron would end the command at the first unescaped `%` and pass the rest as standard input",
                    ));
                }
                let mut job = JobSpec::new(
                    Command::Shell(entry.command.to_string()),
                    SourceKind::Supercronic,
                    origin.clone(),
                );
                job.schedules.push(ScheduleSpec {
                    expr: entry.schedule.to_string(),
                    dialect: Dialect::Supercronic,
                    timezone: None,
                    origin,
                });
                jobs.push((job, sets.len()));
            }
            Err(message) => out
                .diagnostics
                .push(Diagnostic::error(Some(origin), message)),
        }
    }
    apply_file_environment(path, &sets, jobs, &mut out);
    out
}

/// Gives every job the file's variables with their last values, and notes
/// each variable line whose value reaches jobs Vixie cron would give another
/// value (or none): those above it.
fn apply_file_environment(
    path: &Path,
    sets: &[(usize, String, String)],
    jobs: Vec<(JobSpec, usize)>,
    out: &mut SourceSet,
) {
    let mut last: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (line, name, value) in sets {
        last.insert(name.as_str(), (*line, value.as_str()));
    }
    for (name, (line, value)) in &last {
        // The value of `name` Vixie would give the first job above the winning
        // line that sees another one.
        let differs = jobs.iter().find_map(|(job, seen)| {
            let vixie = sets[..*seen]
                .iter()
                .rev()
                .find(|(_, n, _)| n == name)
                .map(|(l, _, v)| (*l, v.as_str()));
            (vixie.map(|(_, v)| v) != Some(*value)).then_some((job.origin.line, vixie))
        });
        if let Some((job_line, vixie)) = differs {
            let theirs = match vixie {
                Some((l, _)) => format!("the value set on line {l}"),
                None => "no such variable".to_string(),
            };
            out.diagnostics.push(Diagnostic::note(
                Some(Origin::new(path, *line)),
                format!(
                    "{name} is set for every job of this file with its last value, as supercronic does: \
                     the entry on line {job_line} gets this one, where Vixie cron would give it {theirs}"
                ),
            ));
        }
    }
    let vars: BTreeMap<String, String> = last
        .iter()
        .map(|(n, (_, v))| (n.to_string(), v.to_string()))
        .collect();
    let shell = vars.get("SHELL").filter(|s| !s.is_empty()).cloned();
    let timezone = vars.get("CRON_TZ").filter(|s| !s.is_empty()).cloned();
    // One layer, shared by every job of the file.
    let env = JobEnv::new().with(vars);
    if let Err(m) = limits::check_env_bytes(env.bytes()) {
        let line = sets.last().map_or(0, |(l, _, _)| *l);
        out.diagnostics.push(Diagnostic::error(
            Some(Origin::new(path, line)),
            format!("{m}; the variables of this file are given to every job in it, so none of its jobs is loaded"),
        ));
        return;
    }
    for (mut job, _) in jobs {
        job.env = env.clone();
        job.shell = shell.clone();
        for s in &mut job.schedules {
            s.timezone = timezone.clone();
        }
        out.jobs.push(std::sync::Arc::new(job));
    }
}

#[cfg(test)]
#[path = "supercronic_tests.rs"]
mod tests;
