//! YAML job files (SPEC 1.1): `defaults:` and `jobs:`, or a bare list of jobs.
//!
//! Owns the file format: which keys exist, what their values mean, and the
//! `path:line` of every finding. Unknown keys are errors, never ignored. A job
//! that cannot be understood is reported and left out; the file's other jobs
//! are still read.
//!
//! Must not know: cron expression syntax (kept as text in [`ScheduleSpec`](crate::job::ScheduleSpec) for
//! `plan` to parse), SQLite, processes, the clock.

use std::path::Path;

mod build;
mod defs;
mod notify;

use super::yaml_locate::Locator;
use super::yaml_slot::{self, Slot};
use super::{bounded, yaml_scan};
use crate::limits;
use build::{build_job, Defaults};
use defs::{DefaultsDef, HistoryDef, TopDef};

use crate::job::{Diagnostic, Origin, SourceSet};

/// Reads one YAML job file from disk, at most [`limits::FILE_BYTES_MAX`],
/// once its owner and mode are found safe for a jobrun running as `euid`
/// ([`super::trust_named`]): the file checked is the file read.
pub fn read_yaml_file(path: &Path, euid: u32, naming: super::trust_named::Naming) -> SourceSet {
    let checked = match super::trust_named::read_named(path, euid, naming) {
        Ok(checked) => checked,
        Err(refused) => {
            return SourceSet {
                jobs: Vec::new(),
                diagnostics: vec![refused],
                ..SourceSet::default()
            }
        }
    };
    let mut out = SourceSet {
        diagnostics: checked.warnings,
        ..SourceSet::default()
    };
    match String::from_utf8(checked.bytes) {
        Ok(text) => out.extend(parse_yaml(path, &text)),
        Err(_) => out.diagnostics.push(Diagnostic::error(
            Some(Origin::new(path, 0)),
            "reading job file: stream did not contain valid UTF-8",
        )),
    }
    out
}

/// Parses the text of one YAML job file. `path` is used for locations and to
/// resolve a relative `workdir` (against the file's directory).
pub fn parse_yaml(path: &Path, text: &str) -> SourceSet {
    let mut out = SourceSet::default();
    // libyaml places an error at the end of the text one line past the last.
    let last_line = text.lines().count().max(1);
    let at = |line: usize| Some(Origin::new(path, line.clamp(1, last_line)));

    // What a source may say (README, "Limits on what a source may say"),
    // checked before the parser, whose work grows with nesting and aliases.
    if let Err(m) = bounded::check_size(text.len()) {
        out.diagnostics
            .push(Diagnostic::error(Some(Origin::new(path, 0)), m));
        return out;
    }
    if let Err(d) = bounded::check_lines(path, text.as_bytes()) {
        out.diagnostics.push(d);
        return out;
    }
    if let Err((line, m)) = yaml_scan::scan(text) {
        out.diagnostics.push(Diagnostic::error(at(line), m));
        return out;
    }
    let loc = Locator::new(text);

    // One pass, straight into the typed definitions; a job that does not
    // type-check is a `Slot::Bad` of that same pass. Only a syntax error (or
    // bad `defaults:`, which change every job) leaves nothing.
    #[cfg(test)]
    PARSES.with(|n| n.set(n.get() + 1));
    let top = match serde_yaml::from_str::<TopDef>(text) {
        Ok(top) => top,
        Err(e) => {
            out.diagnostics.push(syntax_error(path, text, &e));
            return out;
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let (defaults, jobs) = match top {
        TopDef::Empty => return out,
        TopDef::List(jobs) => (DefaultsDef::default(), jobs),
        TopDef::File(file) => {
            let file = *file;
            for key in file.unknown {
                out.diagnostics.push(Diagnostic::error(
                    at(loc.top_key_line(&key)),
                    format!("unknown field `{key}`, expected one of `defaults`, `jobs`, `history`"),
                ));
            }
            match file.history {
                None => {}
                Some(Slot::Bad { message, .. }) => {
                    let line = loc.top_key_line("history");
                    let line = yaml_slot::locate(&lines, line, None, &message).unwrap_or(line);
                    out.diagnostics
                        .push(Diagnostic::error(at(line), format!("history: {message}")));
                }
                Some(Slot::Good(h)) => history(h, &loc, path, &mut out),
            }
            (file.defaults.unwrap_or_default(), file.jobs)
        }
    };

    // Relative paths in the file (workdir, watch, pidfile, file checks) are
    // the file's folder's, made absolute now: file events name absolute paths.
    let parent = path.parent().unwrap_or(Path::new("."));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let base_dir = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    let base_dir = base_dir.as_path();
    // One copy of the path for every origin in the file.
    let file = Origin::new(path, 0);
    let defaults = match Defaults::resolve(defaults, path, &loc, base_dir) {
        Ok(d) => d,
        Err(diag) => {
            out.diagnostics.push(diag);
            return out;
        }
    };
    for (index, slot) in jobs.into_iter().enumerate() {
        match slot {
            Slot::Good(def) => match build_job(def, index, &defaults, &file, &loc, base_dir) {
                Ok(job) => out.jobs.push(std::sync::Arc::new(job)),
                Err(diag) => out.diagnostics.push(diag),
            },
            Slot::Bad { message, name } => {
                let line = loc.item_line(index).unwrap_or(1);
                let end = loc.item_line(index + 1);
                let line = yaml_slot::locate(&lines, line, end, &message).unwrap_or(line);
                let job = match name {
                    Some(name) => format!("job {name}"),
                    None => format!("job #{}", index + 1),
                };
                out.diagnostics
                    .push(Diagnostic::error(at(line), format!("{job}: {message}")));
            }
        }
    }
    out
}

#[cfg(test)]
thread_local! {
    /// How many times this thread ran the YAML parser over a whole file.
    static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `history:` of a file, within its bounds.
fn history(h: HistoryDef, loc: &Locator, path: &Path, out: &mut SourceSet) {
    let origin = Origin::new(path, loc.top_key_line("history"));
    match h.keep_days.filter(|&d| d > limits::KEEP_DAYS_MAX) {
        Some(days) => out.diagnostics.push(Diagnostic::error(
            Some(origin),
            format!(
                "history.keep_days: {days} is too long; at most {} (100 years)",
                limits::KEEP_DAYS_MAX
            ),
        )),
        None => {
            out.history = Some(crate::job::HistorySpec {
                keep_days: h.keep_days,
                keep_runs: h.keep_runs,
                origin,
            })
        }
    }
}

/// A parse error of the whole file, at the quote or bracket left open when one
/// is (the parser stops where the file stops making sense, which for an
/// unclosed quote is often the end of the file).
fn syntax_error(path: &Path, text: &str, e: &serde_yaml::Error) -> Diagnostic {
    let line = error_line(e);
    let Some(open) = yaml_scan::open_at(text, line) else {
        // The parser can stop one line past the last (at the end of the file):
        // name the last line the file has.
        let last_line = text.lines().count().max(1);
        return Diagnostic::error(
            Some(Origin::new(path, line.clamp(1, last_line))),
            yaml_message(e),
        );
    };
    let full = e.to_string();
    let parser = full.split(" at line ").next().unwrap_or(&full);
    let what = match open.opener {
        '[' => "a list `[` opened here is not closed by `]`",
        '{' => "a mapping `{` opened here is not closed by `}`",
        '"' => "a double-quoted value opened here is not closed by `\"`",
        _ => "a single-quoted value opened here is not closed by `'`",
    };
    Diagnostic::error(
        Some(Origin::new(path, open.line)),
        format!(
            "{what} (column {}): the YAML parser read on and gave up at line {line} ({parser}); \
             close it on this line",
            open.column
        ),
    )
}

fn error_line(e: &serde_yaml::Error) -> usize {
    e.location().map(|l| l.line()).unwrap_or(1)
}

/// serde_yaml appends " at line L column C" to its messages; the line is
/// already in the diagnostic's location, so keep the column only.
fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match (e.location(), text.rfind(" at line ")) {
        (Some(l), Some(cut)) => format!("{} (column {})", &text[..cut], l.column()),
        _ => text,
    }
}

/// SPEC 1.1: `[a-z0-9][a-z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

#[cfg(test)]
mod tests;
