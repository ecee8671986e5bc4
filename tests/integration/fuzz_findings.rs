//! Regression tests for what the fuzz targets found (fuzz/ and README
//! "### Fuzzing"): each names what it protects; its reproducer is also a seed of
//! the target that found it, so the smoke test runs it too.
//!
//! Must not know: libFuzzer. Calls the readers directly, like the targets do.

use std::path::Path;

use chrono::{DateTime, Utc};
use jobrun::job::{Dialect, Severity};
use jobrun::schedule::Schedule;
use jobrun::source::yaml::parse_yaml;

/// libyaml reports an error found at the end of the text one line past the last
/// one; `path:line` must still name a line of the file (found by the `yaml`
/// target on a test's YAML without a final newline).
#[test]
fn a_yaml_error_at_the_end_of_the_file_names_its_last_line() {
    for (text, last) in [
        ("jobs:\n{TICKER}", 2),
        ("# edit {i}\njobs:\n{TICKER}", 3),
        ("jobs:\n  - name: a\n    command: [", 3),
    ] {
        let set = parse_yaml(Path::new("/etc/jobrun/jobs.yaml"), text);
        let lines: Vec<usize> = set
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.origin.as_ref().expect("errors have a location").line)
            .collect();
        assert!(!lines.is_empty(), "{text:?} is not valid YAML");
        assert!(
            lines.iter().all(|l| (1..=last).contains(l)),
            "{text:?}: error lines {lines:?}, the file has {last}"
        );
    }
}

fn fire_times(expr: &str, dialect: Dialect) -> Vec<DateTime<Utc>> {
    let schedule = Schedule::parse(expr, dialect, chrono_tz::UTC)
        .unwrap_or_else(|e| panic!("{expr:?} ({dialect:?}): {e}"));
    let mut t = DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01");
    (0..20)
        .map(|_| {
            t = schedule.next_after(t).expect("fires");
            t
        })
        .collect()
}

/// Classic cron reads `*` as "first-last" in any item of a list (`*,15`), and
/// jobrun accepted it, but croner refuses a `*` inside a list: every such
/// schedule was an "engine rejected" error (found by the `expression` target with
/// `40 1 *,15 *  *`). Whatever jobrun's field checks accept, the engine must run,
/// with classic cron's meaning.
#[test]
fn a_star_inside_a_list_is_run_by_the_engine_as_first_to_last() {
    for (expr, same_as, dialect) in [
        ("40 1 *,15 * *", "40 1 * * *", Dialect::Crontab),
        ("40 1 15,* * *", "40 1 1-31 * *", Dialect::Crontab),
        ("*,5 * * * *", "* * * * *", Dialect::Crontab),
        ("0 3,* * * *", "0 0-23 * * *", Dialect::Crontab),
        ("0 0 1 *,2 *", "0 0 1 * *", Dialect::Crontab),
        ("0 0 * * *,1", "0 0 * * *", Dialect::Crontab),
        ("0 0 * * 1,*", "0 0 * * 0-6", Dialect::Crontab),
        ("*/20,7 * * * *", "0,7,20,40 * * * *", Dialect::Crontab),
        ("0 0 2,*/10 * *", "0 0 1,2,11,21,31 * *", Dialect::Crontab),
        ("*,30 0 0 * * *", "* 0 0 * * *", Dialect::Yaml),
        ("0 0 0 L,* * *", "0 0 0 * * *", Dialect::Yaml),
    ] {
        assert_eq!(
            fire_times(expr, dialect),
            fire_times(same_as, dialect),
            "{expr:?} should fire as {same_as:?}"
        );
    }
}

/// A step wider than its field selects only the first value, as in classic cron,
/// and jobrun accepted any; croner refuses steps above 65,535, so those were
/// "engine rejected" errors (found by the `expression` target with
/// `*/3000000000000000000000 * * * *`).
#[test]
fn a_step_wider_than_its_field_selects_only_the_first_value() {
    for (expr, same_as, dialect) in [
        ("*/65536 * * * *", "0 * * * *", Dialect::Crontab),
        (
            "*/3000000000000000000000 * * * *",
            "0 * * * *",
            Dialect::Crontab,
        ),
        (
            "0 0 2-5/99999999999999999999 * *",
            "0 0 2 * *",
            Dialect::Crontab,
        ),
        ("0 1-23/70000 * * *", "0 1 * * *", Dialect::Crontab),
        ("0 0 * * */100000", "0 0 * * 0", Dialect::Crontab),
        ("0 0 1 */4294967296 *", "0 0 1 1 *", Dialect::Crontab),
        ("*/70000 * * * * *", "0 * * * * *", Dialect::Yaml),
        ("*/60 * * * *", "0 * * * *", Dialect::Crontab),
    ] {
        assert_eq!(
            fire_times(expr, dialect),
            fire_times(same_as, dialect),
            "{expr:?} should fire as {same_as:?}"
        );
    }
}

/// The YAML pre-scan measured an alias from the start of its line, so an alias
/// of an anchor opened earlier on the same line (`{A: &v hi, B: *v}`) made
/// `line start - anchor offset` underflow: a panic with overflow checks, and in a
/// release build a wrapped size that refused the file as "aliases repeat more
/// than 1 MiB" (found by the `values` target on an `env:` map).
#[test]
fn an_alias_of_an_anchor_on_the_same_line_is_read() {
    let text = "jobs:\n  - name: a\n    command: x\n    env: {A: &v hi, B: *v}\n";
    let set = parse_yaml(Path::new("/etc/jobrun/jobs.yaml"), text);
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs[0].env.get("B"), Some("hi"));
    let flow = "- {name: a, command: &c echo hi, on_success: [b]}\n- {name: b, command: *c}\n";
    let set = parse_yaml(Path::new("/etc/jobrun/jobs.yaml"), flow);
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 2);
}
