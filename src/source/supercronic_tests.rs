//! Reading supercronic crontabs: how a line splits into schedule and command,
//! the file-wide environment, and the notes for a reader used to Vixie cron.

use std::path::Path;

use super::parse_supercronic;
use crate::job::{Command, Dialect, Severity, SourceKind, SourceSet};

fn read(text: &str) -> SourceSet {
    parse_supercronic(Path::new("/etc/crontab"), text.as_bytes())
}

fn messages(set: &SourceSet, severity: Severity) -> Vec<String> {
    set.diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .map(ToString::to_string)
        .collect()
}

fn entries(set: &SourceSet) -> Vec<(String, String)> {
    set.jobs
        .iter()
        .map(|j| {
            let Command::Shell(c) = &j.command else {
                panic!("a shell command")
            };
            (j.schedules[0].expr.clone(), c.clone())
        })
        .collect()
}

#[test]
fn lines_split_into_7_6_5_fields_or_a_macro_as_supercronic_tries_them() {
    let set = read(
        "*/5 * * * * * * echo seconds\n\
         0 9 * * * 2027 echo year\n\
         */5 * * * * echo five\n\
         0 2 * * * 5 echo not-a-year\n\
         @daily   echo  daily  \n\
         \t # a comment\n\
         \n",
    );
    assert_eq!(messages(&set, Severity::Error), Vec::<String>::new());
    assert_eq!(
        entries(&set),
        [
            ("*/5 * * * * * *".to_string(), "echo seconds".to_string()),
            ("0 9 * * * 2027".to_string(), "echo year".to_string()),
            ("*/5 * * * *".to_string(), "echo five".to_string()),
            // 5 is no year (1970-2099), so the 6-field reading fails and `5` is the command.
            ("0 2 * * *".to_string(), "5 echo not-a-year".to_string()),
            ("@daily".to_string(), "echo  daily  ".to_string()),
        ]
    );
    for job in &set.jobs {
        assert_eq!(job.kind, SourceKind::Supercronic);
        assert_eq!(job.schedules[0].dialect, Dialect::Supercronic);
        assert_eq!(job.stdin, None);
    }
    // Six words and a command: the year reading wins over a command `*`.
    let set = read("*/5 * * * * * echo\n");
    assert_eq!(entries(&set), [("*/5 * * * * *".into(), "echo".into())]);
}

#[test]
fn percent_is_passed_literally_with_a_note() {
    let set = read("0 0 * * * date +%Y-%m-%d > /tmp/d\n0 1 * * * echo 50\\% done\n");
    let Command::Shell(c) = &set.jobs[0].command else {
        panic!("a shell command")
    };
    assert_eq!(c, "date +%Y-%m-%d > /tmp/d");
    assert_eq!(set.jobs[0].stdin, None);
    let notes = messages(&set, Severity::Note);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with("/etc/crontab:1: note: `%` is passed"),
        "{notes:?}"
    );
}

#[test]
fn the_environment_is_the_files_with_the_last_value_winning() {
    let set = read(
        "A=1\n\
         * * * * * echo first\n\
         A = \"2\"\n\
         B='x y'\n\
         SHELL=/bin/bash\n\
         CRON_TZ=Europe/Berlin\n\
         * * * * * echo second\n\
         C=\"unclosed\n",
    );
    assert_eq!(messages(&set, Severity::Error), Vec::<String>::new());
    for job in &set.jobs {
        assert_eq!(job.env.get("A"), Some("2"));
        assert_eq!(job.env.get("B"), Some("x y"));
        assert_eq!(job.env.get("C"), Some("\"unclosed"));
        assert_eq!(job.shell.as_deref(), Some("/bin/bash"));
        assert_eq!(job.schedules[0].timezone.as_deref(), Some("Europe/Berlin"));
    }
    let notes = messages(&set, Severity::Note);
    // A (line 3), B, SHELL, CRON_TZ and C reach the first entry, which Vixie
    // would give another value or none.
    for (line, name) in [(3, "A"), (4, "B"), (5, "SHELL"), (6, "CRON_TZ"), (8, "C")] {
        assert!(
            notes.iter().any(|n| n.starts_with(&format!(
                "/etc/crontab:{line}: note: {name} is set for every job"
            ))),
            "{name}: {notes:?}"
        );
    }
    assert!(notes
        .iter()
        .any(|n| n.contains("would give it the value set on line 1")));
    // Variables above every entry mean the same to both: no note.
    let set = read("A=1\nB=2\n* * * * * echo\n");
    assert_eq!(messages(&set, Severity::Note), Vec::<String>::new());
}

#[test]
fn lines_whose_meaning_differs_from_vixie_are_named() {
    let set = read(
        "0 9 * * * 2027 echo year\n\
         0 0 */2 * 1 echo day-rule\n\
         0 0 L * * echo last\n\
         0 0 * * 5#2 echo second-friday\n\
         0 0 1 * * echo same\n",
    );
    let notes = messages(&set, Severity::Note);
    for line in 1..=4 {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(&format!("/etc/crontab:{line}: note:"))),
            "line {line}: {notes:?}"
        );
    }
    assert!(
        !notes.iter().any(|n| n.starts_with("/etc/crontab:5:")),
        "{notes:?}"
    );
}

#[test]
fn bad_lines_are_errors_naming_the_field_and_the_rest_is_read() {
    let set = read(
        "*/70 * * * * * * echo bad-seconds\n\
         0 0 * * 1-7 echo backwards\n\
         0 0 * * *\n\
         @reboot\n\
         @every 5m echo\n\
         * * * * * echo good\n",
    );
    let errors = messages(&set, Severity::Error);
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(
        errors[0].starts_with("/etc/crontab:1: error:")
            && errors[0].contains("as 7 time fields")
            && errors[0].contains("second field"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("as 5 time fields") && errors[1].contains("backwards"),
        "{errors:?}"
    );
    assert!(errors[2].contains("then a command"), "{errors:?}");
    assert!(errors[3].contains("needs a command"), "{errors:?}");
    assert!(errors[4].contains("unknown macro @every"), "{errors:?}");
    assert_eq!(entries(&set), [("* * * * *".into(), "echo good".into())]);
}

#[test]
fn never_firing_schedules_are_warnings_and_kept() {
    let set = read("0 0 30 2 * echo never\n");
    assert_eq!(set.jobs.len(), 1);
    let warnings = messages(&set, Severity::Warning);
    assert!(warnings[0].contains("never fires"), "{warnings:?}");
}

#[test]
fn a_comment_in_another_encoding_is_skipped_and_a_bad_entry_is_an_error() {
    let set = parse_supercronic(
        Path::new("/etc/crontab"),
        b"# caf\xe9\n* * * * * echo caf\xe9\n* * * * * echo ok\n",
    );
    let errors = messages(&set, Severity::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("/etc/crontab:2: error:"),
        "{errors:?}"
    );
    assert_eq!(set.jobs.len(), 1);
}
