//! The bodies of the fuzz targets: one function per target, from libFuzzer's bytes
//! through jobrun's own parsers, the plan and the next fire times, asserting
//! jobrun's invariants beyond "no panic" where they are cheap to check.
//!
//! Shared on purpose: `fuzz_targets/*.rs` call these under libFuzzer (nightly or
//! `RUSTC_BOOTSTRAP`), and the root crate's stable smoke test includes this very
//! file (`tests/integration/fuzz_smoke.rs`, through `#[path]`) and runs every seed
//! of `fuzz/corpus/<target>/` through it, so CI keeps the targets compiling and the
//! seeds passing. Hence this file names only jobrun's public API, chrono and
//! chrono-tz, nothing of libFuzzer, and reads no files and no clock.
//!
//! "The cron engine rejected" (an expression jobrun's own checks let through that
//! croner then refused) is a failure of every target: whatever `check` accepts
//! must be something the engine can run.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Parser;
use jobrun::cli::{Args, CommandArgs};
use jobrun::job::{Diagnostic, Dialect, JobSpec, Severity, SourceKind, SourceSet};
use jobrun::limits;
use jobrun::plan::Plan;
use jobrun::schedule::{Schedule, ScheduleError};
use jobrun::source::crontab::{parse_crontab, CrontabFormat};
use jobrun::source::supercronic::parse_supercronic;
use jobrun::source::yaml::{parse_yaml, valid_name};

/// The zone of sources that name none: one with daylight-saving time, so every
/// plan is searched across gaps and repeats.
const DEFAULT_ZONE: Tz = chrono_tz::Europe::Berlin;

/// Where the next fire times of every planned job are searched from: an ordinary
/// instant, the minute before Berlin's spring-forward gap, and inside the repeated
/// hour of its fall-back.
const STARTS: [i64; 3] = [
    1_767_225_600, // 2026-01-01T00:00:00Z
    1_774_745_999, // 2026-03-29T00:59:59Z
    1_792_891_800, // 2026-10-25T00:30:00Z
];

/// How many jobs of a plan get the full search: each costs a few dozen searches,
/// which a rare schedule (Feb 29) makes a few milliseconds under the sanitizer,
/// so a file of hundreds would time the input out without finding more.
const SEARCHED_JOBS: usize = 8;

/// Fire times asked for per job and start.
const TIMES_PER_START: usize = 3;

/// The latest instant a running daemon (or `next --from`) can hold: an accepted
/// duration must be addable to it, and subtractable from 1970, without overflow.
const LAST_INSTANT: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

const PLANNED_LAYOUTS: [CrontabFormat; 3] = [
    CrontabFormat::User,
    CrontabFormat::System,
    CrontabFormat::SystemOrDcron,
];

/// A crontab file, read in each of the three layouts, planned in one of them,
/// and its jobs' next fire times found.
pub fn crontab(data: &[u8]) {
    let path = Path::new("/etc/cron.d/fuzz");
    let lines = line_count(data);
    for (format, owner) in [
        (CrontabFormat::User, Some("owner")),
        (CrontabFormat::System, None),
        (CrontabFormat::SystemOrDcron, None),
    ] {
        let set = parse_crontab(path, data, format, owner);
        assert!(set.jobs.len() <= lines, "more jobs than lines");
        for job in &set.jobs {
            assert_eq!(job.schedules.len(), 1, "one schedule per entry: {job:?}");
            assert!(
                (1..=lines).contains(&job.origin.line),
                "entry line {} of {lines}",
                job.origin.line
            );
            match format {
                CrontabFormat::User => assert_eq!(job.user.as_deref(), Some("owner")),
                CrontabFormat::System => {
                    let user = job.user.as_deref().expect("a system entry names its user");
                    assert!(
                        !user.is_empty() && !user.contains([' ', '\t']),
                        "user field {user:?}"
                    );
                }
                CrontabFormat::SystemOrDcron => {}
            }
        }
        // Planning and searching cost far more than reading: one layout per
        // input (by its length, which the fuzzer varies all the time).
        if format == PLANNED_LAYOUTS[data.len() % PLANNED_LAYOUTS.len()] {
            plan_and_search(set, lines);
        }
    }
}

/// A supercronic crontab (`--supercronic`), planned, and its jobs' next fire
/// times found; every job of the file has the file's one environment.
pub fn supercronic(data: &[u8]) {
    let lines = line_count(data);
    let set = parse_supercronic(Path::new("/etc/crontab"), data);
    assert!(set.jobs.len() <= lines, "more jobs than lines");
    for job in &set.jobs {
        assert_eq!(job.schedules.len(), 1, "one schedule per entry: {job:?}");
        assert_eq!(job.schedules[0].dialect, Dialect::Supercronic);
        assert!(
            (1..=lines).contains(&job.origin.line),
            "entry line {} of {lines}",
            job.origin.line
        );
        assert_eq!(job.env, set.jobs[0].env, "one environment per file");
    }
    plan_and_search(set, lines);
}

/// A YAML job file, planned, and its jobs' next fire times found.
pub fn yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // The reader refuses a file that is not UTF-8 before parsing it.
        return;
    };
    let set = parse_yaml(Path::new("/etc/jobrun/fuzz.yaml"), text);
    for job in &set.jobs {
        if let Some(name) = &job.name {
            assert!(valid_name(name), "accepted job name {name:?}");
        }
        for name in job.env.keys() {
            assert!(
                !name.is_empty() && !name.contains(['=', '\0']),
                "accepted variable name {name:?}"
            );
        }
    }
    plan_and_search(set, line_count(data));
}

/// An expression in a zone from a start instant: `[zone: u16 LE][start: i64 LE]
/// [flags: u8][expression: UTF-8]`. Flags: bit 0 the dialect (YAML when set), bits
/// 1-2 the range the start is drawn from, bits 4-7 how many fire times to find
/// (1 to 16).
pub fn expression(data: &[u8]) {
    if data.len() < 11 {
        return;
    }
    let zones = chrono_tz::TZ_VARIANTS;
    let zone = zones[usize::from(u16::from_le_bytes([data[0], data[1]])) % zones.len()];
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&data[2..10]);
    let flags = data[10];
    let start = start_instant(i64::from_le_bytes(raw), (flags >> 1) & 3);
    let dialect = if flags & 1 == 0 {
        Dialect::Crontab
    } else {
        Dialect::Yaml
    };
    let count = 1 + usize::from(flags >> 4);
    let Ok(expr) = std::str::from_utf8(&data[11..]) else {
        return;
    };

    let schedule = match Schedule::parse(expr, dialect, zone) {
        Ok(schedule) => schedule,
        Err(e @ ScheduleError::Engine { .. }) => {
            panic!("{expr:?} ({dialect:?}) passed jobrun's checks, but {e}")
        }
        Err(_) => return,
    };
    assert_eq!(schedule.expr(), expr.trim());
    assert_eq!(schedule.timezone(), zone);
    if schedule.is_reboot() {
        assert_eq!(
            schedule.next_after(start),
            None,
            "@reboot has no fire times"
        );
        return;
    }

    let times = search(&schedule, start, count, zone);
    if dialect == Dialect::Crontab {
        if let Some(why) = schedule.never_fires() {
            // Cron accepts a line that can never fire (SPEC 2); YAML refuses it.
            assert!(
                times.is_empty(),
                "{expr:?} never fires ({why}) but has times"
            );
            assert!(
                Schedule::parse(expr, Dialect::Yaml, zone).is_err(),
                "{expr:?} never fires in a crontab ({why}) but is a YAML schedule"
            );
            return;
        }
        // Every crontab expression means the same in a YAML job.
        let as_yaml = match Schedule::parse(expr, Dialect::Yaml, zone) {
            Ok(s) => s,
            Err(e) => panic!("{expr:?} is a crontab schedule but not a YAML one: {e}"),
        };
        let mut t = start;
        for want in &times {
            assert_eq!(as_yaml.next_after(t), Some(*want), "{expr:?} as YAML");
            t = *want;
        }
    }
}

/// The values users type into a job file, a crontab line or the command line,
/// each put where a user would write it: `[kind: u8][value: UTF-8]`.
pub fn values(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    // One line: the value is what a user types into one place.
    let value = value.replace(['\n', '\r'], " ");
    let yaml_job = |key_and_value: &str| {
        format!(
            "jobs:\n  - name: fuzz\n    schedule: \"*/5 * * * *\"\n    command: \"true\"\n    {key_and_value}\n  - name: next\n    command: \"true\"\n"
        )
    };
    let text = match kind % 18 {
        // Durations, raw (a YAML number or string, as written).
        0 => yaml_job(&format!("timeout: {value}")),
        1 => yaml_job(&format!("kill_grace: {value}")),
        2 => yaml_job(&format!("requires_timeout: {value}")),
        3 => yaml_job(&format!("catch_up: {value}")),
        4 => yaml_job(&format!("retry: {{attempts: 5, backoff: {value}}}")),
        5 => yaml_job(&format!(
            "retry: {{attempts: 40, backoff: 1s, max_backoff: {value}}}"
        )),
        6 => yaml_job(&format!("watch: {{paths: [/tmp/in], debounce: {value}}}")),
        7 => yaml_job(&format!("retry: {{attempts: {value}}}")),
        // Names, zones, users, schedules and environment values.
        8 => yaml_job(&format!("timezone: {value}")),
        9 => yaml_job(&format!("user: {value}")),
        10 => yaml_job(&format!("env: {{{value}}}")),
        11 => yaml_job(&format!("schedule: {value}")),
        12 => yaml_job(&format!("on_success: [{value}]")),
        13 => format!("defaults:\n  timeout: {value}\njobs:\n  - name: fuzz\n    schedule: \"@hourly\"\n    command: \"true\"\n"),
        // Crontab lines: an environment line before an entry, and a user field.
        14 => {
            let text = format!("{value}\n*/5 * * * * true\n");
            crontab(text.as_bytes());
            return;
        }
        15 => {
            let text = format!("SHELL=/bin/sh\n*/5 * * * * {value} true\n");
            crontab(text.as_bytes());
            return;
        }
        // Command-line options, as the shell would split them.
        16 => {
            command_line(&["next", "--expr", "* * * * *", "--count"], &value);
            return;
        }
        _ => {
            command_line(&["daemon", "--max-catch-up"], &value);
            command_line(&["daemon", "--shutdown-grace"], &value);
            command_line(&["history", "--limit"], &value);
            return;
        }
    };
    yaml(text.as_bytes());
}

/// Parses `jobrun ARGS VALUE...` (the value split on blanks); what the parser
/// accepts stays within its documented bound.
fn command_line(args: &[&str], value: &str) {
    let argv = std::iter::once("jobrun")
        .chain(args.iter().copied())
        .chain(value.split_whitespace());
    let Ok(parsed) = Args::try_parse_from(argv) else {
        return;
    };
    match parsed.command {
        CommandArgs::Next(next) => assert!(next.count <= limits::NEXT_COUNT_MAX),
        CommandArgs::Daemon(daemon) => {
            assert!(daemon.max_catch_up <= limits::MAX_CATCH_UP.max);
            assert!(daemon.shutdown_grace <= limits::SHUTDOWN_GRACE.max);
        }
        CommandArgs::History(history) => assert!(history.limit <= limits::HISTORY_LIMIT_MAX),
        _ => {}
    }
}

/// Lines of a file as the readers number them (a last line without a newline counts).
fn line_count(data: &[u8]) -> usize {
    data.split(|b| *b == b'\n').count()
}

/// The instant a fuzz input starts from. Range 0 is a running daemon's life (1970 to
/// 2100), 1 what `next --from` can write (years 0 to 9999), 2 and 3 everything
/// chrono can represent.
fn start_instant(raw: i64, range: u8) -> DateTime<Utc> {
    let (lo, hi) = match range {
        0 => (0, 4_102_444_800),
        1 => (-62_167_219_200, LAST_INSTANT),
        _ => (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        ),
    };
    let span = u64::try_from(hi - lo).expect("hi is after lo") + 1;
    let offset = i64::try_from(raw.unsigned_abs() % span).expect("span fits in i64");
    DateTime::from_timestamp(lo + offset, 0).expect("inside chrono's range")
}

/// Whether a search from `t` must find a fire time: every schedule that parses
/// fires at least once in each 400-year calendar cycle, and the search goes on to
/// the year 5000. (At the very start of chrono's range a zone's offset can take
/// the wall time out of it, so the first days there are left out.)
fn must_fire_after(t: DateTime<Utc>) -> bool {
    let year = |y| {
        Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid date")
    };
    t > year(-262_000) && t < year(4500)
}

/// The next `count` fire times from `start`, checked: each strictly after the one
/// before, on a whole second, none skipped (searching again from inside the gap
/// finds the same time), and present while the calendar says there must be one.
fn search(schedule: &Schedule, start: DateTime<Utc>, count: usize, zone: Tz) -> Vec<DateTime<Utc>> {
    search_until(schedule, start, count, zone, true)
}

/// [`search`]; `endless` when the schedule's years do not end (a supercronic
/// year field does: it can list past years only, and ends with 2099).
fn search_until(
    schedule: &Schedule,
    start: DateTime<Utc>,
    count: usize,
    zone: Tz,
    endless: bool,
) -> Vec<DateTime<Utc>> {
    let mut times = Vec::with_capacity(count);
    if schedule.never_fires().is_some() {
        // A crontab schedule cron accepts although no day matches: no times.
        assert_eq!(
            schedule.next_after(start),
            None,
            "`{}` never fires",
            schedule.expr()
        );
        return times;
    }
    let mut t = start;
    for _ in 0..count {
        let Some(next) = schedule.next_after(t) else {
            assert!(
                !endless || !must_fire_after(t),
                "`{}` in {zone} has no fire time after {t}",
                schedule.expr()
            );
            break;
        };
        assert!(
            next > t,
            "`{}` in {zone}: {next} is not after {t}",
            schedule.expr()
        );
        assert_eq!(next.timestamp_subsec_nanos(), 0, "whole seconds");
        // Nothing fires in (t, next): searching from a later point of that span
        // answers `next` again.
        for inside in [next - TimeDelta::seconds(1), t + (next - t) / 2] {
            let inside = inside.max(t);
            assert_eq!(
                schedule.next_after(inside),
                Some(next),
                "`{}` in {zone}: from {t} the next time is {next}, but from {inside} it is not",
                schedule.expr()
            );
        }
        times.push(next);
        t = next;
    }
    times
}

/// Plans what a source read, then checks every diagnostic and every planned job.
fn plan_and_search(set: SourceSet, lines: usize) {
    check_diagnostics(&set.diagnostics, lines);
    check_engine_accepts(&set);
    let (plan, diagnostics) = Plan::build(set, DEFAULT_ZONE);
    check_diagnostics(&diagnostics, lines);
    let mut earliest = Vec::new();
    for (i, job) in plan.jobs().iter().enumerate() {
        check_accepted_values(&job.spec);
        if i >= SEARCHED_JOBS {
            // The plan-wide checks below still cover it.
            continue;
        }
        for &secs in &STARTS {
            let start = DateTime::from_timestamp(secs, 0).expect("a valid start");
            for planned in &job.schedules {
                if !planned.schedule.is_reboot() {
                    search_until(
                        &planned.schedule,
                        start,
                        TIMES_PER_START,
                        planned.schedule.timezone(),
                        job.spec.kind != SourceKind::Supercronic,
                    );
                }
            }
            let times = job.next_n(start, TIMES_PER_START);
            assert!(
                times.windows(2).all(|w| w[0] < w[1]),
                "{}: {times:?}",
                job.name
            );
            assert!(times.iter().all(|t| *t > start));
            if secs == STARTS[0] {
                earliest.extend(times.first().copied());
            }
        }
    }
    let start = DateTime::from_timestamp(STARTS[0], 0).expect("a valid start");
    let wakeup = plan.next_wakeup(start);
    if plan.jobs().len() <= SEARCHED_JOBS {
        assert_eq!(wakeup, earliest.iter().min().copied());
    } else {
        assert!(earliest.iter().all(|t| wakeup.is_some_and(|w| w <= *t)));
    }
    // What a daemon asks at each tick: every due job's tick lies in its window.
    let upto = start + TimeDelta::minutes(10);
    for (job, tick) in plan.due(start, upto) {
        assert!(tick > start && tick <= upto, "{}: {tick}", job.name);
        assert!(
            job.next_after(tick).is_none_or(|after| after > upto),
            "{}: {tick} is not the latest tick up to {upto}",
            job.name
        );
    }
}

/// Every finding's line is one of the file's, and every error has one.
fn check_diagnostics(diagnostics: &[Diagnostic], lines: usize) {
    for d in diagnostics {
        if let Some(origin) = &d.origin {
            assert!(origin.line <= lines, "{d} (the file has {lines} lines)");
        }
        assert!(!d.message.is_empty(), "an empty {:?} message", d.severity);
        if d.severity == Severity::Error {
            assert!(d.origin.is_some(), "an error without a location: {d}");
        }
    }
}

/// No schedule a source read is refused by the engine after jobrun's own checks
/// passed it (asked of the schedule, not read from the messages, which quote the
/// user's text).
fn check_engine_accepts(set: &SourceSet) {
    for spec in set.jobs.iter().flat_map(|j| &j.schedules) {
        let zone = match &spec.timezone {
            None => DEFAULT_ZONE,
            Some(name) => match name.trim().parse::<Tz>() {
                Ok(zone) => zone,
                Err(_) => continue,
            },
        };
        if let Err(e @ ScheduleError::Engine { .. }) =
            Schedule::parse(&spec.expr, spec.dialect, zone)
        {
            panic!(
                "{:?} ({:?}) passed jobrun's checks, but {e}",
                spec.expr, spec.dialect
            );
        }
    }
}

/// What `check` accepts, the daemon can run: every duration can be added to the
/// latest instant it handles and taken from the earliest, and the retry waits grow
/// up to their cap and no further.
fn check_accepted_values(spec: &JobSpec) {
    let durations = [
        (limits::TIMEOUT, spec.timeout),
        (limits::KILL_GRACE, spec.kill_grace),
        (limits::REQUIRES_TIMEOUT, spec.requires_timeout),
        (limits::CATCH_UP, spec.catch_up),
        (
            limits::RETRY_BACKOFF,
            spec.retry.as_deref().map(|r| r.backoff),
        ),
        (
            limits::RETRY_MAX_BACKOFF,
            spec.retry.as_deref().map(|r| r.max_backoff),
        ),
        (
            limits::WATCH_DEBOUNCE,
            spec.watch.as_ref().map(|w| w.debounce),
        ),
    ];
    for (limit, d) in durations {
        if let Some(d) = d {
            assert!(
                d <= limit.max,
                "accepted {} {d:?} is over its bound",
                limit.key
            );
            assert_fits_instants(limit.key, d);
        }
    }
    if let Some(retry) = spec.retry.as_deref() {
        assert!(retry.attempts <= limits::RETRY_ATTEMPTS_MAX, "{retry:?}");
        let mut before = Duration::ZERO;
        for attempt in 2..=retry.attempts.min(64) {
            let delay = retry.delay_before(attempt);
            assert!(delay >= before && delay <= retry.max_backoff, "{retry:?}");
            before = delay;
        }
    }
}

fn assert_fits_instants(key: &str, d: Duration) {
    let delta = TimeDelta::from_std(d)
        .unwrap_or_else(|_| panic!("accepted {key} {d:?} is not a representable span of time"));
    let latest = DateTime::from_timestamp(LAST_INSTANT, 0).expect("a valid instant");
    assert!(
        latest.checked_add_signed(delta).is_some()
            && DateTime::UNIX_EPOCH.checked_sub_signed(delta).is_some(),
        "accepted {key} {d:?} overflows instant arithmetic"
    );
}
