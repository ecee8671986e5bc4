//! YAML job files (SPEC 1.1): `defaults:` and `jobs:`, or a bare list of jobs.
//!
//! Owns the file format: which keys exist, what their values mean, and the
//! `path:line` of every finding. Unknown keys are errors, never ignored. A job
//! that cannot be understood is reported and left out; the file's other jobs
//! are still read.
//!
//! Must not know: cron expression syntax (kept as text in [`ScheduleSpec`] for
//! `plan` to parse), SQLite, processes, the clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::yaml_locate::Locator;
use super::yaml_slot::{self, Slot};
use super::{bounded, yaml_scan};
use crate::limits::{self, DurationLimit};

use crate::job::{
    ChainLink, Command, Concurrency, Diagnostic, Dialect, IfNotRunning, JobEnv, JobSpec, Origin,
    Requirement, RetryPolicy, ScheduleSpec, SignalSpec, SourceKind, SourceSet, WatchSpec,
    DEFAULT_WATCH_DEBOUNCE,
};

/// A file with optional defaults and a list of jobs. Each job (and
/// `history:`) is a [`Slot`]: one that cannot be read is reported and left
/// out, from the same single parse.
#[derive(Default)]
struct FileDef {
    defaults: Option<DefaultsDef>,
    jobs: Vec<Slot<JobDef>>,
    history: Option<Slot<HistoryDef>>,
    /// Top-level keys that are none of the above.
    unknown: Vec<String>,
}

/// The whole file, deserialised in one pass straight into the typed
/// definitions.
enum TopDef {
    /// An empty file (or one of only comments).
    Empty,
    /// `defaults:`, `jobs:` and `history:`.
    File(Box<FileDef>),
    /// A bare list of jobs.
    List(Vec<Slot<JobDef>>),
}

impl<'de> Deserialize<'de> for TopDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::SeqAccessDeserializer;
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct Top;
        impl<'de> Visitor<'de> for Top {
            type Value = TopDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a mapping with `jobs:` (and optionally `defaults:`), or a list of jobs",
                )
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<TopDef, E> {
                Ok(TopDef::Empty)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<TopDef, E> {
                Ok(TopDef::Empty)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TopDef, A::Error> {
                Vec::<Slot<JobDef>>::deserialize(SeqAccessDeserializer::new(seq)).map(TopDef::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopDef, A::Error> {
                let mut file = FileDef::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "defaults" => file.defaults = map.next_value()?,
                        "jobs" => {
                            file.jobs = map
                                .next_value::<Option<Vec<Slot<JobDef>>>>()?
                                .unwrap_or_default()
                        }
                        "history" => file.history = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            file.unknown.push(key);
                        }
                    }
                }
                Ok(TopDef::File(Box::new(file)))
            }
        }
        d.deserialize_any(Top)
    }
}

/// The run history's retention (a global setting; one file may set it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryDef {
    keep_days: Option<u32>,
    keep_runs: Option<u32>,
}

/// Settings that apply to every job in the file unless the job sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsDef {
    timezone: Option<String>,
    timeout: Option<DurationDef>,
    kill_grace: Option<DurationDef>,
    concurrency: Option<ConcurrencyDef>,
    user: Option<String>,
    workdir: Option<PathBuf>,
    shell: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, ScalarDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobDef {
    name: String,
    schedule: Option<OneOrMany>,
    command: Option<String>,
    argv: Option<Vec<String>>,
    user: Option<String>,
    workdir: Option<PathBuf>,
    shell: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, ScalarDef>,
    timezone: Option<String>,
    timeout: Option<DurationDef>,
    kill_grace: Option<DurationDef>,
    concurrency: Option<ConcurrencyDef>,
    enabled: Option<bool>,
    requires: Option<Vec<RequirementDef>>,
    requires_timeout: Option<DurationDef>,
    retry: Option<RetryDef>,
    catch_up: Option<DurationDef>,
    run_on_start: Option<bool>,
    on_success: Option<OneOrMany>,
    on_failure: Option<OneOrMany>,
    watch: Option<WatchDef>,
    signal: Option<SignalDef>,
}

/// One readiness check: `{tcp: host:port}`, `{file: path}` or `{command: text}`
/// (a struct, not an enum: serde_yaml reads enums as `!tags`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementDef {
    tcp: Option<String>,
    file: Option<PathBuf>,
    command: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDef {
    attempts: u32,
    backoff: Option<DurationDef>,
    max_backoff: Option<DurationDef>,
}

/// The first wait of a `retry:` that sets no `backoff`.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait of a `retry:` that sets no `max_backoff`.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchDef {
    paths: OneOrMany,
    debounce: Option<DurationDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalDef {
    pidfile: PathBuf,
    signal: Option<String>,
    process: Option<String>,
    if_not_running: Option<IfNotRunningDef>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum IfNotRunningDef {
    Skip,
    Fail,
}

/// The signals a `signal:` job may send: the ones daemons use for "reload",
/// "reopen logs" and "stop". Numbers are not accepted: they differ by platform.
const SIGNAL_NAMES: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH", "ALRM", "CONT", "STOP", "TSTP", "KILL",
    "TTIN", "TTOU", "PWR",
];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `10m`, `1h 30m`, `90s`, or a bare number of seconds.
#[derive(Debug, Clone)]
enum DurationDef {
    Seconds(u64),
    Text(String),
}

/// By hand rather than `untagged`, whose error names no duration ("data did
/// not match any variant") and which buffers the value first.
impl<'de> Deserialize<'de> for DurationDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = DurationDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a duration such as \"90s\", \"10m\" or \"1h 30m\", or a number of seconds",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationDef, E> {
                Ok(DurationDef::Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationDef, E> {
                u64::try_from(v)
                    .map(DurationDef::Seconds)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationDef, E> {
                Ok(DurationDef::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Environment values may be written as YAML numbers or booleans (`PORT:
/// 8080`); each is passed as text. By hand rather than `untagged`, which
/// buffered every value once more and whose error named no expectation.
#[derive(Debug, Clone)]
struct ScalarDef(String);

impl ScalarDef {
    fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for ScalarDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ScalarDef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ScalarDef, E> {
                Ok(ScalarDef(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConcurrencyDef {
    Forbid,
    Allow,
    Replace,
}

impl From<ConcurrencyDef> for Concurrency {
    fn from(c: ConcurrencyDef) -> Self {
        match c {
            ConcurrencyDef::Forbid => Concurrency::Forbid,
            ConcurrencyDef::Allow => Concurrency::Allow,
            ConcurrencyDef::Replace => Concurrency::Replace,
        }
    }
}

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
                history: None,
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
    let at = |line: usize| Some(Origin::new(path, line.max(1)));

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
            out.diagnostics
                .push(Diagnostic::error(at(error_line(&e)), yaml_message(&e)));
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
    let defaults = match Defaults::resolve(defaults, path, &loc, base_dir) {
        Ok(d) => d,
        Err(diag) => {
            out.diagnostics.push(diag);
            return out;
        }
    };
    for (index, slot) in jobs.into_iter().enumerate() {
        match slot {
            Slot::Good(def) => match build_job(def, index, &defaults, path, &loc, base_dir) {
                Ok(job) => out.jobs.push(job),
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

/// Defaults after validation, ready to apply.
struct Defaults {
    timezone: Option<String>,
    timeout: Option<Duration>,
    kill_grace: Option<Duration>,
    concurrency: Option<Concurrency>,
    user: Option<String>,
    workdir: Option<PathBuf>,
    shell: Option<String>,
    env: JobEnv,
}

impl Defaults {
    fn resolve(
        d: DefaultsDef,
        path: &Path,
        loc: &Locator,
        base_dir: &Path,
    ) -> Result<Defaults, Diagnostic> {
        let at = |key: &str| Some(Origin::new(path, loc.defaults_key_line(key)));
        if let Some(tz) = &d.timezone {
            check_zone(tz).map_err(|m| Diagnostic::error(at("timezone"), m))?;
        }
        let duration = |v: &Option<DurationDef>, limit: DurationLimit| {
            v.as_ref()
                .map(|v| parse_duration(v, limit).map_err(|m| Diagnostic::error(at(limit.key), m)))
                .transpose()
        };
        // One layer, shared by every job of the file (issue 11: a copy per
        // job made memory grow with jobs x variables).
        let env =
            JobEnv::new().with(resolve_env(d.env).map_err(|m| Diagnostic::error(at("env"), m))?);
        limits::check_env_bytes(env.bytes()).map_err(|m| Diagnostic::error(at("env"), m))?;
        Ok(Defaults {
            timeout: duration(&d.timeout, limits::TIMEOUT)?,
            kill_grace: duration(&d.kill_grace, limits::KILL_GRACE)?,
            timezone: d.timezone,
            concurrency: d.concurrency.map(Into::into),
            user: d.user,
            workdir: d.workdir.map(|w| base_dir.join(w)),
            shell: d.shell,
            env,
        })
    }
}

fn build_job(
    def: JobDef,
    index: usize,
    defaults: &Defaults,
    path: &Path,
    loc: &Locator,
    base_dir: &Path,
) -> Result<JobSpec, Diagnostic> {
    let item_line = loc.item_line(index).unwrap_or(1);
    let at = |key: &str| {
        Some(Origin::new(
            path,
            loc.key_line(index, key).unwrap_or(item_line),
        ))
    };
    let name = def.name;
    if !valid_name(&name) {
        return Err(Diagnostic::error(
            at("name"),
            format!(
                "job name {name:?} is not valid: use lowercase letters, digits and `_.-`, \
                 starting with a letter or digit (for example \"backup-db\")"
            ),
        ));
    }
    let command = match (def.command, def.argv, def.signal) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(Diagnostic::error(
                at("signal"),
                format!(
                    "job {name}: `signal` sends a signal instead of running a command; \
                     remove `command`/`argv`, or make the signal a separate job"
                ),
            ))
        }
        (None, None, Some(sig)) => Command::Signal(
            signal_spec(sig, base_dir).map_err(|m| Diagnostic::error(at("signal"), format!("job {name}: {m}")))?,
        ),
        (Some(c), None, None) if !c.trim().is_empty() => Command::Shell(c),
        (None, Some(argv), None) if argv.first().is_some_and(|p| !p.is_empty()) => Command::Argv(argv),
        (Some(_), Some(_), None) => {
            return Err(Diagnostic::error(
                at("argv"),
                format!("job {name}: set either `command` (run by a shell) or `argv` (run directly), not both"),
            ))
        }
        (None, None, None) => {
            return Err(Diagnostic::error(
                at("name"),
                format!(
                    "job {name}: no `command`, `argv` or `signal`: say what to run, \
                     e.g. `command: /usr/local/bin/backup.sh`"
                ),
            ))
        }
        (Some(_), None, None) => {
            return Err(Diagnostic::error(at("command"), format!("job {name}: `command` is empty")))
        }
        (None, Some(_), None) => {
            return Err(Diagnostic::error(
                at("argv"),
                format!("job {name}: `argv` must start with the program to run"),
            ))
        }
    };
    let timezone = def.timezone.or_else(|| defaults.timezone.clone());
    if let Some(tz) = &timezone {
        check_zone(tz)
            .map_err(|m| Diagnostic::error(at("timezone"), format!("job {name}: {m}")))?;
    }
    // `key` is where the line is found (`watch.debounce` is on `watch`'s line).
    let duration = |v: Option<DurationDef>,
                    limit: DurationLimit,
                    key: &str,
                    default: Option<Duration>| match v {
        Some(v) => parse_duration(&v, limit)
            .map(Some)
            .map_err(|m| Diagnostic::error(at(key), format!("job {name}: {m}"))),
        None => Ok(default),
    };
    let timeout = duration(def.timeout, limits::TIMEOUT, "timeout", defaults.timeout)?;
    let kill_grace = duration(
        def.kill_grace,
        limits::KILL_GRACE,
        "kill_grace",
        defaults.kill_grace,
    )?;
    let env = defaults.env.with(
        resolve_env(def.env)
            .map_err(|m| Diagnostic::error(at("env"), format!("job {name}: {m}")))?,
    );
    limits::check_env_bytes(env.bytes())
        .map_err(|m| Diagnostic::error(at("env"), format!("job {name}: {m}")))?;

    let schedule_line = loc.key_line(index, "schedule").unwrap_or(item_line);
    let exprs = match def.schedule {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let schedules = exprs
        .into_iter()
        .map(|expr| ScheduleSpec {
            expr,
            dialect: Dialect::Yaml,
            timezone: timezone.clone(),
            origin: Origin::new(path, schedule_line),
        })
        .collect();

    let mut job = JobSpec::new(command, SourceKind::Yaml, Origin::new(path, item_line));
    job.name = Some(name.clone());
    job.schedules = schedules;
    job.user = def.user.or_else(|| defaults.user.clone());
    job.workdir = def
        .workdir
        .map(|w| base_dir.join(w))
        .or_else(|| defaults.workdir.clone());
    job.shell = def.shell.or_else(|| defaults.shell.clone());
    job.env = env;
    job.timeout = timeout;
    job.kill_grace = kill_grace;
    job.concurrency = def
        .concurrency
        .map(Into::into)
        .or(defaults.concurrency)
        .unwrap_or_default();
    job.enabled = def.enabled.unwrap_or(true);

    if let Some(requires) = def.requires {
        job.requires = requires
            .into_iter()
            .map(|r| requirement(r, base_dir))
            .collect::<Result<_, _>>()
            .map_err(|m| Diagnostic::error(at("requires"), format!("job {name}: {m}")))?;
    }
    job.requires_timeout = duration(
        def.requires_timeout,
        limits::REQUIRES_TIMEOUT,
        "requires_timeout",
        None,
    )?;
    if job.requires_timeout.is_some() && job.requires.is_empty() {
        return Err(Diagnostic::error(
            at("requires_timeout"),
            format!("job {name}: `requires_timeout` without `requires`: list the readiness checks to wait for"),
        ));
    }
    if let Some(retry) = def.retry {
        job.retry = Some(
            retry_policy(retry)
                .map_err(|m| Diagnostic::error(at("retry"), format!("job {name}: {m}")))?,
        );
    }
    job.catch_up = duration(def.catch_up, limits::CATCH_UP, "catch_up", None)?;
    if job.catch_up.is_some_and(|d| d.is_zero()) {
        return Err(Diagnostic::error(
            at("catch_up"),
            format!("job {name}: `catch_up` must be longer than 0, e.g. \"6h\""),
        ));
    }
    if job.catch_up.is_some() && job.schedules.is_empty() {
        return Err(Diagnostic::error(
            at("catch_up"),
            format!("job {name}: `catch_up` needs a `schedule`: it runs a missed tick"),
        ));
    }
    job.run_on_start = def.run_on_start.unwrap_or(false);
    let chain = |v: Option<OneOrMany>, key: &str| -> Result<Vec<ChainLink>, Diagnostic> {
        let names = match v {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        names
            .into_iter()
            .map(|job| {
                if valid_name(&job) {
                    Ok(ChainLink {
                        job,
                        origin: Origin::new(path, loc.key_line(index, key).unwrap_or(item_line)),
                    })
                } else {
                    Err(Diagnostic::error(
                        at(key),
                        format!("job {name}: {job:?} in `{key}` is not a job name"),
                    ))
                }
            })
            .collect()
    };
    job.on_success = chain(def.on_success, "on_success")?;
    job.on_failure = chain(def.on_failure, "on_failure")?;
    if let Some(w) = def.watch {
        let paths: Vec<PathBuf> = match w.paths {
            OneOrMany::One(p) => vec![p],
            OneOrMany::Many(v) => v,
        }
        .into_iter()
        .map(|p| base_dir.join(p))
        .collect();
        if paths.is_empty() {
            return Err(Diagnostic::error(
                at("watch"),
                format!("job {name}: `watch` needs at least one path in `paths`"),
            ));
        }
        job.watch = Some(WatchSpec {
            paths,
            debounce: duration(
                w.debounce,
                limits::WATCH_DEBOUNCE,
                "watch",
                Some(DEFAULT_WATCH_DEBOUNCE),
            )?
            .unwrap_or(DEFAULT_WATCH_DEBOUNCE),
            origin: Origin::new(path, loc.key_line(index, "watch").unwrap_or(item_line)),
        });
    }
    Ok(job)
}

fn requirement(r: RequirementDef, base_dir: &Path) -> Result<Requirement, String> {
    match (r.tcp, r.file, r.command) {
        (Some(addr), None, None) => {
            let addr = addr.trim().to_string();
            let port = addr.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            match port {
                Some((host, Ok(port))) if !host.is_empty() && port > 0 => Ok(Requirement::Tcp(addr)),
                _ => Err(format!(
                    "readiness check `tcp: {addr}` needs a host and a port, e.g. `tcp: db:5432` or `tcp: \"[::1]:8080\"`"
                )),
            }
        }
        (None, Some(p), None) if p.as_os_str().is_empty() => {
            Err("readiness check `file:` needs a path".into())
        }
        (None, Some(p), None) => Ok(Requirement::File(base_dir.join(p))),
        (None, None, Some(c)) if c.trim().is_empty() => {
            Err("readiness check `command:` is empty".into())
        }
        (None, None, Some(c)) => Ok(Requirement::Command(c)),
        _ => Err(
            "each readiness check is one of `- tcp: host:port`, `- file: path` or `- command: text`"
                .into(),
        ),
    }
}

fn retry_policy(r: RetryDef) -> Result<RetryPolicy, String> {
    if r.attempts == 0 {
        return Err(
            "`retry.attempts` counts the first run too, so it must be at least 1 (2 retries once)"
                .into(),
        );
    }
    if r.attempts > limits::RETRY_ATTEMPTS_MAX {
        return Err(format!(
            "retry.attempts: {} is too many; at most {}",
            r.attempts,
            limits::RETRY_ATTEMPTS_MAX
        ));
    }
    let backoff = r
        .backoff
        .as_ref()
        .map(|d| parse_duration(d, limits::RETRY_BACKOFF))
        .transpose()?
        .unwrap_or(DEFAULT_BACKOFF);
    let max_backoff = r
        .max_backoff
        .as_ref()
        .map(|d| parse_duration(d, limits::RETRY_MAX_BACKOFF))
        .transpose()?
        .unwrap_or(DEFAULT_MAX_BACKOFF.max(backoff));
    if max_backoff < backoff {
        return Err(format!(
            "`retry.max_backoff` ({}) is shorter than `retry.backoff` ({}): the wait only grows",
            humantime::format_duration(max_backoff),
            humantime::format_duration(backoff)
        ));
    }
    Ok(RetryPolicy {
        attempts: r.attempts,
        backoff,
        max_backoff,
    })
}

fn signal_spec(def: SignalDef, base_dir: &Path) -> Result<SignalSpec, String> {
    let written = def.signal.unwrap_or_else(|| "HUP".into());
    let upper = written.trim().to_ascii_uppercase();
    let signal = upper.strip_prefix("SIG").unwrap_or(&upper).to_string();
    if !SIGNAL_NAMES.contains(&signal.as_str()) {
        return Err(format!(
            "unknown signal {written:?}: use a name such as HUP, USR1, USR2 or TERM"
        ));
    }
    if def.pidfile.as_os_str().is_empty() {
        return Err("`signal.pidfile` is empty: name the file holding the process id".into());
    }
    Ok(SignalSpec {
        pidfile: base_dir.join(def.pidfile),
        signal,
        process: def.process.filter(|p| !p.trim().is_empty()),
        if_not_running: match def.if_not_running {
            None | Some(IfNotRunningDef::Skip) => IfNotRunning::Skip,
            Some(IfNotRunningDef::Fail) => IfNotRunning::Fail,
        },
    })
}

/// SPEC 1.1: `[a-z0-9][a-z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

fn check_zone(tz: &str) -> Result<(), String> {
    tz.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        format!("unknown time zone {tz:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
    })
}

/// A duration as written, within its bound; the message names the key.
fn parse_duration(d: &DurationDef, limit: DurationLimit) -> Result<Duration, String> {
    match d {
        DurationDef::Seconds(s) => limit.check_secs(*s),
        DurationDef::Text(t) => limit.parse(t),
    }
    .map_err(|e| format!("{}: {e}", limit.key))
}

fn resolve_env(env: BTreeMap<String, ScalarDef>) -> Result<BTreeMap<String, String>, String> {
    env.into_iter()
        .map(|(k, v)| {
            let ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok((k, v.into_string()))
            } else {
                Err(format!(
                    "environment variable name {k:?} is not valid: use letters, digits and `_`, not starting with a digit"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
