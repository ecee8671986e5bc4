//! Every bound on what a user may write: durations (YAML keys and command-line
//! options), counts, and what one source file may say or expand to. One table,
//! so README's "Limits on what a source may say" and the checks cannot drift.
//!
//! Why bounds at all: a value that is parsed but never bounded is a time bomb
//! for whoever uses it later (`Instant + 300000000000y` panics in a firing;
//! `Vec::with_capacity(count)` aborts). Refusing it where it is written, with
//! its `path:line`, is the only place the user can still fix it.
//!
//! Pure values and parsing only: no file, no clock, no process.

use std::fmt;
use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
/// humantime's year (365.25 days), so that `1y` is exactly the bound.
const YEAR: u64 = 31_557_600;

/// A duration the user writes, and the longest it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationLimit {
    /// How the value is named where it is written (`timeout`, `--shutdown-grace`).
    pub key: &'static str,
    pub max: Duration,
}

const fn limit(key: &'static str, secs: u64) -> DurationLimit {
    DurationLimit {
        key,
        max: Duration::from_secs(secs),
    }
}

/// YAML `timeout` (job or `defaults:`): a job may run for up to a year.
pub const TIMEOUT: DurationLimit = limit("timeout", YEAR);
/// YAML `kill_grace`: from SIGTERM to SIGKILL.
pub const KILL_GRACE: DurationLimit = limit("kill_grace", DAY);
/// YAML `requires_timeout`: how long readiness checks are waited for.
pub const REQUIRES_TIMEOUT: DurationLimit = limit("requires_timeout", 7 * DAY);
/// YAML `retry.backoff`.
pub const RETRY_BACKOFF: DurationLimit = limit("retry.backoff", 7 * DAY);
/// YAML `retry.max_backoff`.
pub const RETRY_MAX_BACKOFF: DurationLimit = limit("retry.max_backoff", 7 * DAY);
/// YAML `catch_up`: a yearly job may still catch up its missed tick.
pub const CATCH_UP: DurationLimit = limit("catch_up", YEAR);
/// YAML `watch.debounce`.
pub const WATCH_DEBOUNCE: DurationLimit = limit("watch.debounce", HOUR);
/// `jobrun daemon --shutdown-grace`.
pub const SHUTDOWN_GRACE: DurationLimit = limit("--shutdown-grace", DAY);
/// `jobrun daemon --max-catch-up`.
pub const MAX_CATCH_UP: DurationLimit = limit("--max-catch-up", YEAR);
/// `--heartbeat` (with `--database`).
pub const FLEET_HEARTBEAT: DurationLimit = limit("--heartbeat", HOUR);
/// `--lease` (with `--database`).
pub const FLEET_LEASE: DurationLimit = limit("--lease", DAY);
/// `--fence` (with `--database`).
pub const FLEET_FENCE: DurationLimit = limit("--fence", DAY);
/// `jobrun history --since DURATION`.
pub const HISTORY_SINCE: DurationLimit = limit("--since", 100 * YEAR);

/// Every duration bound, for the README table and its test.
pub const DURATIONS: &[DurationLimit] = &[
    TIMEOUT,
    KILL_GRACE,
    REQUIRES_TIMEOUT,
    RETRY_BACKOFF,
    RETRY_MAX_BACKOFF,
    CATCH_UP,
    WATCH_DEBOUNCE,
    SHUTDOWN_GRACE,
    MAX_CATCH_UP,
    HISTORY_SINCE,
];

/// Why a written duration was refused. Displayed without the key: the caller
/// puts it where its messages put keys (`job x: timeout: ...`, clap's
/// `invalid value ... for '--shutdown-grace'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a duration at all.
    Invalid { written: String, reason: String },
    /// A duration, but longer than the bound (or too large to represent).
    TooLong { written: String, max: Duration },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid { written, reason } => write!(
                f,
                "duration {written:?} is not valid ({reason}): write it like \"90s\", \"10m\" or \"1h 30m\""
            ),
            DurationError::TooLong { written, max } => write!(
                f,
                "{written} is too long; at most {}",
                humantime::format_duration(*max)
            ),
        }
    }
}

impl std::error::Error for DurationError {}

impl DurationLimit {
    /// `10m`, `1h 30m`, `90s` (humantime's grammar), or a bare number of
    /// seconds, at most [`DurationLimit::max`].
    pub fn parse(&self, text: &str) -> Result<Duration, DurationError> {
        let trimmed = text.trim();
        let too_long = || DurationError::TooLong {
            written: trimmed.to_string(),
            max: self.max,
        };
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            // A bare number too large for u64 is still just "too long".
            let secs = trimmed.parse::<u64>().map_err(|_| too_long())?;
            return self.check_secs(secs);
        }
        match humantime::parse_duration(trimmed) {
            Ok(d) if d <= self.max => Ok(d),
            Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
            Err(e) => Err(DurationError::Invalid {
                written: text.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// A number of seconds (YAML `timeout: 90`), at most the bound.
    pub fn check_secs(&self, secs: u64) -> Result<Duration, DurationError> {
        let d = Duration::from_secs(secs);
        if d <= self.max {
            Ok(d)
        } else {
            Err(DurationError::TooLong {
                written: secs.to_string(),
                max: self.max,
            })
        }
    }
}

/// `next --count`: how many fire times one command prints.
pub const NEXT_COUNT_MAX: usize = 100_000;
/// `history --limit`: how many runs one command prints.
pub const HISTORY_LIMIT_MAX: usize = 1_000_000;
/// `daemon --output-tail`: bytes of each run's output kept in the history.
pub const OUTPUT_TAIL_MAX: usize = 16 * 1024 * 1024;
/// `keep_days` (YAML `history:`, `--keep-days`): 100 years; more would put
/// the cut-off before the calendar's range.
pub const KEEP_DAYS_MAX: u32 = 36_500;
/// YAML `retry.attempts`: the first run included.
pub const RETRY_ATTEMPTS_MAX: u32 = 100;

/// The largest source file (YAML or crontab) read, in bytes. Real files are
/// a few kilobytes; 10,000 YAML jobs are about 1.5 MB.
pub const FILE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// The longest line of a source file, in bytes (cronie's longest crontab line
/// is 128 KiB too; so is Linux's longest single argument or variable).
pub const LINE_BYTES_MAX: usize = 128 * 1024;
/// The variables one job's sources give it, in bytes (`NAME=value` each):
/// Linux refuses to start a program whose arguments and environment pass
/// 2 MiB (with the default stack limit), and jobrun's own environment and the
/// command need room too.
pub const ENV_BYTES_MAX: usize = 256 * 1024;
/// Refuses a job whose sources give it more than [`ENV_BYTES_MAX`] bytes of
/// variables (`bytes` as `exec` counts them: `NAME=value` and a NUL each).
pub fn check_env_bytes(bytes: usize) -> Result<(), String> {
    if bytes <= ENV_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "environment: {bytes} bytes of variables is too much; at most {ENV_BYTES_MAX} \
             (256 KiB): pass large data in a file instead"
        ))
    }
}

/// How deep a YAML file may nest (a job file needs about 5 levels).
pub const YAML_DEPTH_MAX: usize = 64;
/// How many times a YAML file may use aliases (`*name`).
pub const YAML_ALIASES_MAX: usize = 1_000;
/// How many bytes of source text a YAML file's aliases may repeat in all.
pub const YAML_ALIAS_BYTES_MAX: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_duration_bound_refuses_what_would_overflow_an_instant() {
        for limit in DURATIONS {
            for written in [
                "9223372036854775807",
                "18446744073709551615",
                "99999999999999999999999",
                "300000000000y",
            ] {
                let e = limit.parse(written).expect_err(written);
                assert!(
                    matches!(e, DurationError::TooLong { .. }),
                    "{}: {written}: {e}",
                    limit.key
                );
                assert!(e.to_string().contains("is too long; at most"), "{e}");
            }
            assert_eq!(limit.parse(&limit.max.as_secs().to_string()), Ok(limit.max));
            assert!(limit.check_secs(u64::MAX).is_err());
        }
    }

    #[test]
    fn the_readme_table_states_every_duration_bound() {
        let readme = include_str!("../README.md");
        for limit in DURATIONS {
            let row = format!(
                "| `{}` | {} |",
                limit.key,
                humantime::format_duration(limit.max)
            );
            assert!(readme.contains(&row), "README.md lacks {row}");
        }
    }

    #[test]
    fn durations_read_as_before_within_the_bound() {
        assert_eq!(TIMEOUT.parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(TIMEOUT.parse(" 90 "), Ok(Duration::from_secs(90)));
        assert_eq!(TIMEOUT.parse("1y"), Ok(Duration::from_secs(YEAR)));
        assert_eq!(
            WATCH_DEBOUNCE.parse("2h").map_err(|e| e.to_string()),
            Err("2h is too long; at most 1h".to_string())
        );
        let e = TIMEOUT.parse("soon").expect_err("not a duration");
        assert!(
            e.to_string().starts_with("duration \"soon\" is not valid"),
            "{e}"
        );
    }
}
