//! Tests of the crontab lines classic cron accepts although they look wrong (issue
//! 12, item 10): a command that is a number, a schedule that never fires. Each is
//! read as cron reads it, with a warning at its line; nothing here is an error.

use std::path::Path;

use super::{parse_crontab, CrontabFormat};
use crate::job::{Command, Origin, Severity, SourceSet};

fn parse(text: &str, format: CrontabFormat) -> SourceSet {
    parse_crontab(
        Path::new("/etc/test"),
        text.as_bytes(),
        format,
        Some("alice"),
    )
}

fn commands(set: &SourceSet) -> Vec<&str> {
    set.jobs
        .iter()
        .map(|j| match &j.command {
            Command::Shell(s) => s.as_str(),
            Command::Argv(_) | Command::Signal(_) => "",
        })
        .collect()
}

#[test]
fn a_command_that_is_a_number_runs_as_cron_runs_it_with_a_warning() {
    let set = parse("0 2 * * * 5\n0 3 * * * 1-5 --flag\n", CrontabFormat::User);
    assert_eq!(commands(&set), ["5", "1-5 --flag"]);
    assert_eq!(set.diagnostics.len(), 2, "{:?}", set.diagnostics);
    for (d, line) in set.diagnostics.iter().zip([1, 2]) {
        assert_eq!(d.severity, Severity::Warning, "{d:?}");
        assert_eq!(d.origin, Some(Origin::new("/etc/test", line)));
        assert!(d.message.contains("sixth time field"), "{}", d.message);
        assert!(
            d.message.contains("YAML"),
            "the hint is kept: {}",
            d.message
        );
    }
    // The same after the user field of a system crontab.
    let set = parse("0 2 * * * root 5\n", CrontabFormat::System);
    assert_eq!(commands(&set), ["5"]);
    assert_eq!(set.diagnostics[0].severity, Severity::Warning);
}

#[test]
fn a_sixth_field_that_cannot_be_a_command_is_still_an_error() {
    // A glob as the command, or a number where the user goes: no reading as cron's.
    for (text, format) in [
        ("0 2 * * * * backup\n", CrontabFormat::User),
        ("*/5 * * * * */2 backup\n", CrontabFormat::User),
        ("0 2 * * * 5 root backup\n", CrontabFormat::System),
    ] {
        let set = parse(text, format);
        assert!(set.jobs.is_empty(), "{text}");
        assert_eq!(set.diagnostics.len(), 1, "{text}");
        assert_eq!(set.diagnostics[0].severity, Severity::Error, "{text}");
        assert!(set.diagnostics[0]
            .message
            .starts_with("more than five time fields"));
    }
}

#[test]
fn a_crontab_schedule_that_never_fires_is_a_warning_at_its_line() {
    let set = parse(
        "0 1 * * * ok\n0 0 30 2 * never\n0 0 31 4,6 */1 never-either\n0 0 30 2 1 mondays\n",
        CrontabFormat::User,
    );
    assert_eq!(
        commands(&set),
        ["ok", "never", "never-either", "mondays"],
        "cron accepts every line"
    );
    let found: Vec<(usize, &str)> = set
        .diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Warning, "{d:?}");
            (d.origin.as_ref().map_or(0, |o| o.line), d.message.as_str())
        })
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, 2);
    assert!(found[0].1.contains("never fires: February has no day 30"));
    assert_eq!(found[1].0, 3);
    assert!(found[1].1.contains("April and June have no day 31"));
}
