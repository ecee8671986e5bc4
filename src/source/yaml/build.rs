//! From a YAML job's definition to a [`JobSpec`]: the file's defaults
//! resolved once, then each job's keys checked against their bounds and given
//! their meaning, every finding at the `path:line` of its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defs::*;
use super::valid_name;
use crate::job::{
    ChainLink, Command, Concurrency, Diagnostic, Dialect, IfNotRunning, JobEnv, JobSpec,
    NotifySpec, Origin, Requirement, RetryPolicy, ScheduleSpec, SignalSpec, SourceKind, WatchSpec,
    DEFAULT_WATCH_DEBOUNCE,
};
use crate::limits::{self, DurationLimit};
use crate::source::yaml_locate::Locator;

/// The first wait of a `retry:` that sets no `backoff`.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait of a `retry:` that sets no `max_backoff`.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The signals a `signal:` job may send: the ones daemons use for "reload",
/// "reopen logs" and "stop". Numbers are not accepted: they differ by platform.
const SIGNAL_NAMES: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH", "ALRM", "CONT", "STOP", "TSTP", "KILL",
    "TTIN", "TTOU", "PWR",
];

/// Defaults after validation, ready to apply.
pub(super) struct Defaults {
    pub(super) timezone: Option<String>,
    pub(super) timeout: Option<Duration>,
    pub(super) kill_grace: Option<Duration>,
    pub(super) concurrency: Option<Concurrency>,
    pub(super) user: Option<String>,
    pub(super) workdir: Option<PathBuf>,
    pub(super) shell: Option<String>,
    pub(super) env: JobEnv,
    pub(super) jitter: Option<Duration>,
    /// One copy for every job of the file that has no `notify:` of its own.
    pub(super) notify: Option<std::sync::Arc<NotifySpec>>,
}

impl Defaults {
    pub(super) fn resolve(
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
            jitter: duration(&d.jitter, limits::JITTER)?,
            notify: d
                .notify
                .map(|n| {
                    super::notify::notify_spec(n).map_err(|m| Diagnostic::error(at("notify"), m))
                })
                .transpose()?,
            timezone: d.timezone,
            concurrency: d.concurrency.map(Into::into),
            user: d.user,
            workdir: d.workdir.map(|w| base_dir.join(w)),
            shell: d.shell,
            env,
        })
    }
}

pub(super) fn build_job(
    def: JobDef,
    index: usize,
    defaults: &Defaults,
    file: &Origin,
    loc: &Locator,
    base_dir: &Path,
) -> Result<JobSpec, Diagnostic> {
    let item_line = loc.item_line(index).unwrap_or(1);
    let at = |key: &str| Some(file.at(loc.key_line(index, key).unwrap_or(item_line)));
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
        (None, None, Some(sig)) => Command::Signal(Box::new(
            signal_spec(sig, base_dir).map_err(|m| Diagnostic::error(at("signal"), format!("job {name}: {m}")))?,
        )),
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
    let exprs = match def.schedule.map(|s| s.0) {
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
            origin: file.at(schedule_line),
        })
        .collect();

    let mut job = JobSpec::new(command, SourceKind::Yaml, file.at(item_line));
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
        job.retry = Some(Box::new(retry_policy(retry).map_err(|m| {
            Diagnostic::error(at("retry"), format!("job {name}: {m}"))
        })?));
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
    // A job's own `jitter` without a schedule is a mistake; the file's
    // default simply does not apply to a job that has no ticks.
    if def.jitter.is_some() && job.schedules.is_empty() {
        return Err(Diagnostic::error(
            at("jitter"),
            format!("job {name}: `jitter` needs a `schedule`: it delays scheduled runs"),
        ));
    }
    job.jitter = duration(def.jitter, limits::JITTER, "jitter", defaults.jitter)?
        .filter(|j| !j.is_zero() && !job.schedules.is_empty());
    job.notify = match def.notify {
        // A job's own `notify:` replaces the defaults' (it is not merged).
        Some(n) => Some(
            super::notify::notify_spec(n)
                .map_err(|m| Diagnostic::error(at("notify"), format!("job {name}: {m}")))?,
        ),
        None => defaults.notify.clone(),
    };
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
                        origin: file.at(loc.key_line(index, key).unwrap_or(item_line)),
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
        job.watch = Some(Box::new(WatchSpec {
            paths,
            debounce: duration(
                w.debounce,
                limits::WATCH_DEBOUNCE,
                "watch",
                Some(DEFAULT_WATCH_DEBOUNCE),
            )?
            .unwrap_or(DEFAULT_WATCH_DEBOUNCE),
            origin: file.at(loc.key_line(index, "watch").unwrap_or(item_line)),
        }));
    }
    Ok(job)
}

pub(super) fn requirement(r: RequirementDef, base_dir: &Path) -> Result<Requirement, String> {
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

pub(super) fn retry_policy(r: RetryDef) -> Result<RetryPolicy, String> {
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

pub(super) fn signal_spec(def: SignalDef, base_dir: &Path) -> Result<SignalSpec, String> {
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

pub(super) fn check_zone(tz: &str) -> Result<(), String> {
    tz.parse::<chrono_tz::Tz>().map(|_| ()).map_err(|_| {
        format!("unknown time zone {tz:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
    })
}

/// A duration as written, within its bound; the message names the key.
pub(super) fn parse_duration(d: &DurationDef, limit: DurationLimit) -> Result<Duration, String> {
    match d {
        DurationDef::Seconds(s) => limit.check_secs(*s),
        DurationDef::Text(t) => limit.parse(t),
    }
    .map_err(|e| format!("{}: {e}", limit.key))
}

pub(super) fn resolve_env(
    env: BTreeMap<String, ScalarDef>,
) -> Result<BTreeMap<String, String>, String> {
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
