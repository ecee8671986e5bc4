//! The plan: every source's jobs merged into one deduplicated schedule (SPEC 3).
//!
//! Owns the merge rule (same command, user, environment and working directory
//! is one job, whatever file it comes from), derived names for crontab jobs,
//! and compiling schedule expressions with their zones. Pure: time comes in as
//! a parameter. Must not know SQLite, processes, tokio or the wall clock.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::job::{Diagnostic, Dialect, HistorySpec, JobSpec, Origin, SourceKind, SourceSet};
use crate::schedule::{FireTimes, Schedule, ScheduleError};

mod chains;
mod drift;
mod names;
mod schedules;
pub use crate::job::DerivedName;
use chains::{chain_parents, check_chains};
use names::assign_derived_names;
pub use names::derive_name;
use schedules::ScheduleIndex;

/// One compiled schedule of a job, with the line that wrote it.
#[derive(Debug, Clone)]
pub struct PlannedSchedule {
    pub schedule: Schedule,
    /// Every place this exact expression and zone was written for this job.
    pub origins: Vec<Origin>,
}

/// A job of the merged schedule.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// The first definition: what to run, as whom, where, with which settings.
    /// Shared with the source file's copy the daemon keeps for reloads; the
    /// plan's changes to it (merged triggers, links dropped for errors) are
    /// made on a copy of its own (`Arc::make_mut`).
    pub spec: Arc<JobSpec>,
    pub schedules: Vec<PlannedSchedule>,
    /// Every entry that defines this job, in reading order (SPEC 3 provenance).
    pub origins: Vec<Origin>,
}

impl Job {
    /// True when more than one entry defines this job.
    pub fn is_merged(&self) -> bool {
        self.origins.len() > 1
    }

    /// The job's next tick strictly after `t`, over all its schedules. `None`
    /// for a job that only runs at reboot, manually, or is disabled.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.spec.enabled {
            return None;
        }
        self.schedules
            .iter()
            .filter_map(|s| s.schedule.next_after(t))
            .min()
    }

    /// Every tick strictly after `t`, in order, over all the job's schedules
    /// (several that fire at the same instant give one tick): each schedule's
    /// [`Schedule::iter_after`], merged. Empty for a disabled job; ends when
    /// every schedule has.
    pub fn iter_after(&self, t: DateTime<Utc>) -> JobTicks<'_> {
        let schedules = if self.spec.enabled {
            &self.schedules[..]
        } else {
            &[]
        };
        JobTicks {
            heads: schedules
                .iter()
                .map(|s| s.schedule.iter_after(t).peekable())
                .collect(),
        }
    }

    /// The next `count` ticks strictly after `t` ([`Job::iter_after`]).
    pub fn next_n(&self, t: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        // Not `with_capacity(count)`: the count is the user's, the ticks may be fewer.
        self.iter_after(t).take(count).collect()
    }

    /// The job's last tick in the window `(after, upto]`, in work that does not
    /// grow with the window (see [`Schedule::latest_in`]).
    pub fn latest_tick(&self, after: DateTime<Utc>, upto: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.spec.enabled {
            return None;
        }
        self.schedules
            .iter()
            .filter_map(|s| s.schedule.latest_in(after, upto))
            .max()
    }

    /// True when a `@reboot` schedule is among the job's schedules.
    pub fn runs_at_reboot(&self) -> bool {
        self.spec.enabled && self.schedules.iter().any(|s| s.schedule.is_reboot())
    }
}

/// A job's ticks after a time ([`Job::iter_after`]): its schedules' fire
/// times merged in order, each instant once.
pub struct JobTicks<'a> {
    heads: Vec<std::iter::Peekable<FireTimes<'a>>>,
}

impl Iterator for JobTicks<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self
            .heads
            .iter_mut()
            .filter_map(|h| h.peek().copied())
            .min()?;
        // Every schedule that fires at this instant moves on, so it is given once.
        for head in &mut self.heads {
            head.next_if_eq(&next);
        }
        Some(next)
    }
}

/// The merged, deduplicated schedule.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    jobs: Vec<Job>,
    /// The jobs' indexes in the order of their names (plan order among equal
    /// names), so [`Plan::get`] is a binary search: firing a tick's jobs must
    /// not scan every job for each (issue 12: every stage linear).
    by_name: Vec<usize>,
    /// The sources' `history:` retention setting, if one gave it.
    pub history: Option<HistorySpec>,
    /// Each crontab job's index and the hash of its identity.
    derived: Vec<(usize, u64)>,
    /// For each job some job chains to, the positions of its chain parents
    /// (built once with the plan; see [`Plan::chain_parents`]).
    parents: HashMap<String, Vec<usize>>,
    /// The zone of schedules that name none (the IANA name).
    default_zone: String,
}

impl Plan {
    /// Compiles and merges what the sources produced. Returns the plan and
    /// every finding: the sources' own, bad schedules, name conflicts, merges.
    pub fn build(set: SourceSet, default_tz: Tz) -> (Plan, Vec<Diagnostic>) {
        let mut diagnostics = set.diagnostics;
        let mut jobs: Vec<Job> = Vec::with_capacity(set.jobs.len());
        let mut by_key: HashMap<MergeKey, usize> = HashMap::with_capacity(set.jobs.len());
        // Where each YAML name was first defined, to report conflicts.
        let mut yaml_names: HashMap<String, (usize, Origin)> = HashMap::new();
        let mut parsed = ParseCache::default();
        let mut united = ScheduleIndex::default();

        for spec in set.jobs {
            let Some(schedules) =
                compile_schedules(&spec, default_tz, &mut parsed, &mut diagnostics)
            else {
                continue;
            };
            let key = MergeKey::of(&spec, set.own_user.as_ref());
            let mut target = by_key.get(&key).copied();
            if let Some(name) = &spec.name {
                if let Some((index, first)) = yaml_names.get(name) {
                    if MergeKey::of(&jobs[*index].spec, set.own_user.as_ref()) != key {
                        diagnostics.push(Diagnostic::error(
                            Some(spec.origin.clone()),
                            format!(
                                "job name {name:?} is already used at {first} by a job with a \
                                 different definition; rename one of them (names must be unique)"
                            ),
                        ));
                        continue;
                    }
                    target = Some(*index);
                } else if let Some(other) = target.and_then(|i| jobs[i].spec.name.as_ref()) {
                    // Two explicit names are two intents: both jobs are kept,
                    // neither's settings dropped, and the double run is said.
                    let index = target.expect("`other` came from it");
                    diagnostics.push(Diagnostic::warning(
                        Some(spec.origin.clone()),
                        format!(
                            "job {name:?} runs the same command as job {other:?} ({}) as the \
                             same user in the same environment; both are kept and each runs \
                             it on its own schedule (to run it once, make them one job)",
                            jobs[index].origins[0]
                        ),
                    ));
                    target = None;
                }
            }
            match target {
                Some(index) => {
                    let job = &mut jobs[index];
                    let origin = spec.origin.clone();
                    merge_into(job, spec, &mut diagnostics);
                    for (schedule, at) in schedules {
                        united.add(index, &mut job.schedules, schedule, at);
                    }
                    // A crontab job that a YAML definition just named now owns that name.
                    if let Some(name) = &job.spec.name {
                        yaml_names.entry(name.clone()).or_insert((index, origin));
                    }
                }
                None => {
                    let index = jobs.len();
                    if let Some(name) = &spec.name {
                        yaml_names.insert(name.clone(), (index, spec.origin.clone()));
                    }
                    // A second YAML name for the same command keeps the
                    // first as the one crontab copies merge into.
                    by_key.entry(key).or_insert(index);
                    let mut planned = Vec::with_capacity(schedules.len());
                    for (schedule, at) in schedules {
                        united.add(index, &mut planned, schedule, at);
                    }
                    jobs.push(Job {
                        name: spec.name.clone().unwrap_or_default(),
                        origins: vec![spec.origin.clone()],
                        spec,
                        schedules: planned,
                    });
                }
            }
        }

        let derived = assign_derived_names(&mut jobs, set.own_user.as_ref());
        drift::warn_drifted(&jobs, &mut diagnostics);
        check_chains(&mut jobs, &mut diagnostics);
        for job in jobs.iter().filter(|j| j.is_merged()) {
            let places: Vec<String> = job.origins.iter().map(ToString::to_string).collect();
            diagnostics.push(Diagnostic::warning(
                job.origins.get(1).cloned(),
                format!(
                    "job {} is defined {} times with the same command, user, environment and \
                     working directory; merged into one job that fires once per tick: {}",
                    job.name,
                    job.origins.len(),
                    places.join(", ")
                ),
            ));
        }
        // Merged entries leave room at the end (a job is 600 bytes).
        jobs.shrink_to_fit();
        let mut by_name: Vec<usize> = (0..jobs.len()).collect();
        by_name.sort_by(|&a, &b| jobs[a].name.cmp(&jobs[b].name));
        let parents = chain_parents(&jobs);
        (
            Plan {
                jobs,
                by_name,
                history: set.history,
                derived,
                parents,
                default_zone: default_tz.name().to_string(),
            },
            diagnostics,
        )
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The zone of schedules that name none, as an IANA name (part of each
    /// job's definition: hosts in different zones run it at other times).
    pub fn default_zone(&self) -> &str {
        &self.default_zone
    }

    /// The crontab jobs' names and identities, for the state to keep their
    /// runs under their names (see `Store::follow_names`).
    pub fn derived_names(&self) -> Vec<DerivedName> {
        self.derived
            .iter()
            .map(|&(i, hash)| DerivedName {
                key: names::key(hash),
                name: self.jobs[i].name.clone(),
            })
            .collect()
    }

    /// The names jobrun's earlier rule (before state schema 6) gave the
    /// crontab jobs, by identity: computed on demand, for the runs recorded
    /// under them.
    pub fn legacy_names(&self) -> HashMap<String, String> {
        names::legacy_names(&self.jobs, &self.derived)
    }

    /// The job named `name` (the first in plan order, were two named alike).
    pub fn get(&self, name: &str) -> Option<&Job> {
        let at = self
            .by_name
            .partition_point(|&i| self.jobs[i].name.as_str() < name);
        let job = &self.jobs[*self.by_name.get(at)?];
        (job.name == name).then_some(job)
    }

    /// The jobs whose outcome starts `job` (they name it in `on_success` or
    /// `on_failure`), in plan order, each once; none for a job nobody chains
    /// to or one not in the plan. The graph is built with the plan, so a call
    /// costs one look-up, however many jobs and links there are.
    pub fn chain_parents(&self, job: &str) -> impl Iterator<Item = &Job> + '_ {
        self.parents
            .get(job)
            .into_iter()
            .flatten()
            .filter_map(|&at| self.jobs.get(at))
    }

    /// The jobs due in the window `(after, upto]`, each with its latest tick in
    /// that window: a job whose ticks were several in the window (the loop woke
    /// late) fires once, for the latest.
    pub fn due(&self, after: DateTime<Utc>, upto: DateTime<Utc>) -> Vec<(&Job, DateTime<Utc>)> {
        let mut out = Vec::new();
        for job in &self.jobs {
            if let Some(tick) = job.latest_tick(after, upto) {
                out.push((job, tick));
            }
        }
        out
    }

    /// The earliest tick of any job strictly after `t`.
    ///
    /// Jobs that share an expression share its parse: the time found for one
    /// is reused for the jobs after it with the same parse, so 100,000 jobs on
    /// one expression cost one search, not 100,000 (issue 12).
    pub fn next_wakeup(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut last: Option<(&Schedule, Option<DateTime<Utc>>)> = None;
        let mut earliest = None;
        for job in self.jobs.iter().filter(|j| j.spec.enabled) {
            for planned in &job.schedules {
                let next = match last {
                    Some((seen, next)) if seen.same_parse(&planned.schedule) => next,
                    _ => {
                        let next = planned.schedule.next_after(t);
                        last = Some((&planned.schedule, next));
                        next
                    }
                };
                earliest = match (earliest, next) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
            }
        }
        earliest
    }
}

/// What makes two entries the same job (SPEC 3). The shell and standard input
/// are part of "the command": the same text run by bash instead of sh, or fed
/// different input, is a different job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    command: String,
    argv: bool,
    stdin: Option<String>,
    shell: Option<String>,
    user: Option<String>,
    env: MergeEnv,
    workdir: Option<PathBuf>,
}

/// The environment as the merge rule sees it: hashed by its digest and
/// compared by content (SHELL=/bin/sh as unset), never flattened for it, so
/// 5,000 entries under 5,000 shared variables cost 5,000 steps, not 25 million.
#[derive(Debug, Clone)]
struct MergeEnv(crate::job::JobEnv);

impl PartialEq for MergeEnv {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_for_merge(&other.0)
    }
}

impl Eq for MergeEnv {}

impl std::hash::Hash for MergeEnv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.merge_digest().hash(state);
    }
}

impl MergeKey {
    /// `own`: the user jobrun runs as, which a job without `user:` runs as
    /// too, so naming it or not is the same job.
    fn of(spec: &JobSpec, own: Option<&crate::job::OwnUser>) -> Self {
        MergeKey {
            command: spec.command.normalized(),
            argv: matches!(spec.command, crate::job::Command::Argv(_)),
            stdin: spec.stdin.clone(),
            shell: spec.shell.clone().filter(|s| s != "/bin/sh"),
            user: spec
                .user
                .clone()
                .filter(|u| !own.is_some_and(|own| own.is(u))),
            // SHELL is already in `shell`; cron passes it to the job too, and a
            // crontab that sets SHELL=/bin/sh means the same as one that does not.
            env: MergeEnv(spec.env.clone()),
            workdir: spec.workdir.clone(),
        }
    }
}

/// Parses each expression of `spec` in its zone, with the line that wrote
/// it. `None` (with errors pushed) when any of them is invalid: a job runs as
/// written or not at all.
fn compile_schedules(
    spec: &JobSpec,
    default_tz: Tz,
    parsed: &mut ParseCache,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<(Schedule, Origin)>> {
    let mut out = Vec::with_capacity(spec.schedules.len());
    let mut ok = true;
    for s in &spec.schedules {
        let tz = match &s.timezone {
            None => default_tz,
            Some(name) => match name.trim().parse::<Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    diagnostics.push(Diagnostic::error(
                        Some(s.origin.clone()),
                        format!(
                            "unknown time zone {name:?}: use an IANA name such as \
                             \"Europe/Berlin\" or \"UTC\""
                        ),
                    ));
                    ok = false;
                    continue;
                }
            },
        };
        match parsed.parse(&s.expr, s.dialect, tz) {
            Ok(schedule) => out.push((schedule, s.origin.clone())),
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    Some(s.origin.clone()),
                    format!("schedule {:?}: {e}", s.expr.trim()),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Every expression parsed while building one plan, by its text, dialect and
/// zone: many jobs share a few expressions (`*/5 * * * *`, `@hourly`), and
/// each is parsed once (15 µs) and its parsed fields kept once (issue 6).
#[derive(Default)]
struct ParseCache(HashMap<(String, Dialect, Tz), Result<Schedule, ScheduleError>>);

impl ParseCache {
    fn parse(&mut self, expr: &str, dialect: Dialect, tz: Tz) -> Result<Schedule, ScheduleError> {
        let key = (expr.to_string(), dialect, tz);
        self.0
            .entry(key)
            .or_insert_with(|| Schedule::parse(expr, dialect, tz))
            .clone()
    }
}

/// Merges `spec` into `job` (its schedules are united by the caller).
fn merge_into(job: &mut Job, spec: Arc<JobSpec>, diagnostics: &mut Vec<Diagnostic>) {
    // A YAML definition gives the job its name and settings even when a
    // crontab entry for the same command was read first.
    if job.spec.kind != SourceKind::Yaml && spec.kind == SourceKind::Yaml {
        job.spec = Arc::clone(&spec);
        job.name = job.spec.name.clone().unwrap_or_default();
    } else if job.spec.kind == SourceKind::Yaml && spec.kind == SourceKind::Yaml {
        // Only copies under one name get here (two names stay two jobs).
        let (a, b) = (&job.spec, &spec);
        let differs = a.timeout != b.timeout
            || a.kill_grace != b.kill_grace
            || a.concurrency != b.concurrency
            || a.enabled != b.enabled
            || a.requires != b.requires
            || a.requires_timeout != b.requires_timeout
            || a.retry != b.retry
            || a.catch_up != b.catch_up;
        if differs {
            diagnostics.push(Diagnostic::warning(
                Some(spec.origin.clone()),
                format!(
                    "this definition of job {} has other settings (timeout, retry, requires, \
                     catch_up...) than {}; the first definition's settings are used",
                    job.name, job.origins[0]
                ),
            ));
        }
        unite_triggers(Arc::make_mut(&mut job.spec), &spec);
    }
    job.origins.push(spec.origin.clone());
}

/// Like schedules, what starts a job is united when definitions merge: every
/// watched path, every chained job, and a start run if either asks for one.
fn unite_triggers(job: &mut JobSpec, other: &JobSpec) {
    for (mine, theirs) in [
        (&mut job.on_success, &other.on_success),
        (&mut job.on_failure, &other.on_failure),
    ] {
        // A set of what is there, not a scan per link: both lists may be long.
        let mut seen: HashSet<String> = mine.iter().map(|l| l.job.clone()).collect();
        for link in theirs {
            if seen.insert(link.job.clone()) {
                mine.push(link.clone());
            }
        }
    }
    job.run_on_start |= other.run_on_start;
    match (&mut job.watch, &other.watch) {
        (_, None) => {}
        (None, Some(w)) => job.watch = Some(w.clone()),
        (Some(mine), Some(theirs)) => {
            let mut seen: HashSet<PathBuf> = mine.paths.iter().cloned().collect();
            for p in &theirs.paths {
                if seen.insert(p.clone()) {
                    mine.paths.push(p.clone());
                }
            }
            mine.debounce = mine.debounce.min(theirs.debounce);
        }
    }
}

#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod tick_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Command, Dialect, ScheduleSpec, Severity};
    use chrono::TimeZone;

    fn crontab_job(path: &str, line: usize, expr: &str, user: &str, command: &str) -> JobSpec {
        let origin = Origin::new(path, line);
        let mut spec = JobSpec::new(
            Command::Shell(command.into()),
            SourceKind::Crontab,
            origin.clone(),
        );
        spec.user = Some(user.into());
        spec.schedules.push(ScheduleSpec {
            expr: expr.into(),
            dialect: Dialect::Crontab,
            timezone: None,
            origin,
        });
        spec
    }

    fn yaml_job(name: &str, line: usize, expr: &str, command: &str) -> JobSpec {
        let origin = Origin::new("/etc/jobrun/jobs.yaml", line);
        let mut spec = JobSpec::new(
            Command::Shell(command.into()),
            SourceKind::Yaml,
            origin.clone(),
        );
        spec.name = Some(name.into());
        spec.schedules.push(ScheduleSpec {
            expr: expr.into(),
            dialect: Dialect::Yaml,
            timezone: None,
            origin,
        });
        spec
    }

    fn build(jobs: Vec<JobSpec>) -> (Plan, Vec<Diagnostic>) {
        Plan::build(
            SourceSet {
                jobs: jobs.into_iter().map(Arc::new).collect(),
                ..Default::default()
            },
            chrono_tz::UTC,
        )
    }

    #[test]
    fn get_finds_each_job_by_its_name_and_nothing_else() {
        // Names out of order, one a prefix of another.
        let names = ["backup", "b", "zeta", "backup-2", "alpha", "backups"];
        let specs = names
            .iter()
            .enumerate()
            .map(|(i, n)| yaml_job(n, i + 1, "0 9 * * *", &format!("cmd {i}")))
            .collect();
        let (plan, _) = build(specs);
        for (i, name) in names.iter().enumerate() {
            let job = plan.get(name).expect("found");
            assert_eq!(job.name, *name);
            assert_eq!(job.spec.origin.line, i + 1);
        }
        for missing in ["", "a", "backup-", "zz", "Backup"] {
            assert!(plan.get(missing).is_none(), "{missing}");
        }
        assert!(Plan::default().get("backup").is_none());
    }

    #[test]
    fn same_command_in_two_crontabs_is_one_job_with_both_sources() {
        let php = "/usr/local/bin/php /var/www/html/endpoints/cronjobs/sendnotifications.php >> /var/log/cron/sendnotifications.log 2>&1";
        let (plan, diags) = build(vec![
            crontab_job("/etc/cron.d/cronjobs", 4, "0 9 * * *", "root", php),
            crontab_job(
                "/var/spool/cron/crontabs/root",
                4,
                "0 9 * * *",
                "root",
                &php.replace(' ', "  "),
            ),
        ]);
        assert_eq!(plan.jobs().len(), 1);
        let job = &plan.jobs()[0];
        assert_eq!(job.name, "sendnotifications");
        assert_eq!(job.origins.len(), 2);
        assert_eq!(job.schedules.len(), 1, "identical schedules are united");
        assert_eq!(job.schedules[0].origins.len(), 2);
        let warning = diags
            .iter()
            .find(|d| d.severity == Severity::Warning)
            .expect("merge warning");
        assert!(
            warning.message.contains("/etc/cron.d/cronjobs:4"),
            "{warning}"
        );
        assert!(
            warning.message.contains("/var/spool/cron/crontabs/root:4"),
            "{warning}"
        );
        // One tick at 09:00, not two.
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
        assert_eq!(
            job.next_n(t, 2),
            vec![
                Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn different_user_env_or_workdir_keeps_jobs_apart() {
        let a = crontab_job("/etc/crontab", 1, "0 9 * * *", "root", "backup");
        let mut b = crontab_job("/etc/crontab", 2, "0 9 * * *", "www-data", "backup");
        let mut c = crontab_job("/etc/crontab", 3, "0 9 * * *", "root", "backup");
        c.env = c.env.with([("X".to_string(), "1".to_string())].into());
        let mut d = crontab_job("/etc/crontab", 4, "0 9 * * *", "root", "backup");
        d.workdir = Some("/srv".into());
        b.user = Some("www-data".into());
        let (plan, _) = build(vec![a.clone(), b.clone(), c.clone(), d.clone()]);
        let names: Vec<_> = plan.jobs().iter().map(|j| j.name.as_str()).collect();
        // Four jobs of one base: each suffixed with its own hash (six digits
        // of who and what; two more of everything for the three alike in that).
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("backup-")), "{names:?}");
        assert_eq!(names[1].len(), "backup-".len() + 6, "{names:?}");

        // Reading order does not rename anything (history and locks are keyed
        // by name): the same jobs, read the other way round.
        let (reversed, _) = build(vec![d, c, b, a]);
        for job in plan.jobs() {
            let same = reversed
                .jobs()
                .iter()
                .find(|r| {
                    r.spec.user == job.spec.user
                        && r.spec.env == job.spec.env
                        && r.spec.workdir == job.spec.workdir
                })
                .expect("the same job");
            assert_eq!(same.name, job.name);
        }
    }

    #[test]
    fn merged_schedules_are_united() {
        let (plan, _) = build(vec![
            crontab_job("/a", 1, "0 9 * * *", "root", "report"),
            crontab_job("/b", 1, "30 17 * * *", "root", "report"),
        ]);
        let job = &plan.jobs()[0];
        assert_eq!(job.schedules.len(), 2);
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
        assert_eq!(
            job.next_n(t, 3),
            vec![
                Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 5, 1, 17, 30, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 5, 2, 9, 0, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn yaml_names_conflicting_definitions_are_an_error_naming_both() {
        let (plan, diags) = build(vec![
            yaml_job("a", 2, "@daily", "echo 1"),
            yaml_job("a", 9, "@daily", "echo 2"),
        ]);
        assert_eq!(plan.jobs().len(), 1);
        let err = diags
            .iter()
            .find(|d| d.severity == Severity::Error)
            .expect("conflict");
        assert_eq!(err.origin.as_ref().map(|o| o.line), Some(9));
        assert!(err.message.contains("/etc/jobrun/jobs.yaml:2"), "{err}");
    }

    #[test]
    fn yaml_name_wins_over_a_crontab_entry_for_the_same_command() {
        let (plan, diags) = build(vec![
            crontab_job("/etc/crontab", 3, "0 9 * * *", "root", "/usr/bin/report"),
            {
                let mut y = yaml_job("daily-report", 4, "0 9 * * *", "/usr/bin/report");
                y.user = Some("root".into());
                y
            },
        ]);
        assert_eq!(plan.jobs().len(), 1);
        assert_eq!(plan.jobs()[0].name, "daily-report");
        assert!(diags.iter().any(|d| d.severity == Severity::Warning));
    }

    #[test]
    fn a_bad_schedule_drops_its_entry_with_an_error_and_keeps_the_rest() {
        let (plan, diags) = build(vec![
            crontab_job("/etc/crontab", 3, "61 9 * * *", "root", "a"),
            crontab_job("/etc/crontab", 4, "0 9 * * *", "root", "b"),
        ]);
        assert_eq!(plan.jobs().len(), 1);
        let err = &diags[0];
        assert_eq!(err.severity, Severity::Error);
        assert_eq!(err.origin, Some(Origin::new("/etc/crontab", 3)));
    }

    #[test]
    fn due_gives_each_job_its_latest_tick_in_the_window_once() {
        let (plan, _) = build(vec![
            yaml_job("every-second", 1, "* * * * * *", "a"),
            yaml_job("every-minute", 2, "* * * * *", "b"),
            yaml_job("hourly", 3, "0 * * * *", "c"),
        ]);
        let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 9, 59, 58).unwrap();
        let due = |from: DateTime<Utc>, secs: i64| -> Vec<(String, DateTime<Utc>)> {
            plan.due(from, from + chrono::Duration::seconds(secs))
                .into_iter()
                .map(|(j, t)| (j.name.clone(), t))
                .collect()
        };
        // Nothing is due in an empty window; the window is (after, upto].
        assert!(due(t0, 0).is_empty());
        assert_eq!(
            due(t0, 1),
            vec![(
                "every-second".to_string(),
                t0 + chrono::Duration::seconds(1)
            )]
        );
        let ten = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
        assert_eq!(
            due(t0, 2),
            vec![
                ("every-second".to_string(), ten),
                ("every-minute".to_string(), ten),
                ("hourly".to_string(), ten),
            ]
        );
        // A late wake-up fires each job once, for its latest tick.
        assert_eq!(
            due(t0, 5)[0],
            (
                "every-second".to_string(),
                t0 + chrono::Duration::seconds(5)
            )
        );
        assert_eq!(
            plan.next_wakeup(t0),
            Some(t0 + chrono::Duration::seconds(1))
        );
    }

    #[test]
    fn next_wakeup_is_the_earliest_of_shared_and_distinct_schedules() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        // Runs of jobs sharing a parse, interleaved with others; the earliest
        // (12:07) is in the middle, and a disabled job's earlier time is not.
        let mut specs = Vec::new();
        for (i, expr) in [
            "30 * * * *",
            "30 * * * *",
            "7 * * * *",
            "30 * * * *",
            "0 13 * * *",
            "0 13 * * *",
        ]
        .iter()
        .enumerate()
        {
            specs.push(yaml_job(&format!("j{i}"), i + 1, expr, &format!("c{i}")));
        }
        let mut off = yaml_job("off", 9, "1 * * * *", "off");
        off.enabled = false;
        specs.push(off);
        let (plan, _) = build(specs);
        let earliest = Utc.with_ymd_and_hms(2026, 5, 1, 12, 7, 0).unwrap();
        assert_eq!(plan.next_wakeup(t0), Some(earliest));
        let scan = plan.jobs().iter().filter_map(|j| j.next_after(t0)).min();
        assert_eq!(scan, Some(earliest));
    }

    #[test]
    fn derived_names_are_readable() {
        let cases = [
            ("/usr/local/bin/php /var/www/html/endpoints/cronjobs/sendnotifications.php >> /var/log/x.log 2>&1", "sendnotifications"),
            ("test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )", "run-parts-cron.daily"),
            ("[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi", "sessionclean"),
            ("cd /srv/app && python3 -u manage.py clearsessions", "manage"),
            ("LANG=C nice -n 10 /opt/backup.sh --full", "backup"),
            ("sudo -u www-data /usr/bin/php -f /var/www/cron.php", "cron"),
            ("timeout 5m /usr/bin/certbot -q renew", "certbot"),
            ("run-parts /etc/periodic/15min", "run-parts-15min"),
            ("/usr/bin/Some_Tool", "some_tool"),
            ("echo hello", "echo"),
            (">/dev/null", "job"),
        ];
        for (command, want) in cases {
            assert_eq!(derive_name(command), want, "{command}");
        }
    }

    fn link(job: &str, line: usize) -> crate::job::ChainLink {
        crate::job::ChainLink {
            job: job.into(),
            origin: Origin::new("/etc/jobrun/jobs.yaml", line),
        }
    }

    #[test]
    fn chains_to_unknown_jobs_and_cycles_are_errors_and_left_out() {
        let mut a = yaml_job("a", 1, "@daily", "a");
        a.on_success = vec![link("b", 2), link("nope", 2)];
        let mut b = yaml_job("b", 10, "@daily", "b");
        b.on_failure = vec![link("c", 11)];
        let mut c = yaml_job("c", 20, "@daily", "c");
        c.on_success = vec![link("a", 21)];
        let mut d = yaml_job("d", 30, "@daily", "d");
        d.on_failure = vec![link("d", 31)];
        let mut e = yaml_job("e", 40, "@daily", "e");
        e.on_success = vec![link("b", 41)];
        let (plan, diags) = build(vec![a, b, c, d, e]);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(
            errors[0].starts_with(
                "/etc/jobrun/jobs.yaml:2: error: job a: `on_success` names job \"nope\""
            ),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(
                "/etc/jobrun/jobs.yaml:21: error: chained jobs form a cycle: a -> b -> c -> a"
            )),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e
                .starts_with("/etc/jobrun/jobs.yaml:31: error: chained jobs form a cycle: d -> d")),
            "{errors:#?}"
        );
        let targets = |name: &str| {
            let job = plan.get(name).unwrap();
            job.spec
                .on_success
                .iter()
                .chain(&job.spec.on_failure)
                .map(|l| l.job.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(targets("a"), ["b"]);
        assert_eq!(targets("b"), ["c"]);
        assert!(
            targets("c").is_empty(),
            "the link closing the cycle is left out"
        );
        assert!(targets("d").is_empty());
        assert_eq!(targets("e"), ["b"], "two chains into one job are no cycle");
    }

    #[test]
    fn merged_definitions_unite_their_watches_and_chains() {
        let mut a = yaml_job("reload", 1, "@daily", "nginx -s reload");
        a.schedules.clear();
        a.watch = Some(Box::new(crate::job::WatchSpec {
            paths: vec!["/certs/a".into()],
            debounce: std::time::Duration::from_secs(2),
            origin: Origin::new("/etc/jobrun/jobs.yaml", 2),
        }));
        // Copies under one name (two names stay two jobs).
        let mut b = yaml_job("reload", 10, "@daily", "nginx -s reload");
        b.schedules.clear();
        b.watch = Some(Box::new(crate::job::WatchSpec {
            paths: vec!["/certs/b".into()],
            debounce: std::time::Duration::from_secs(1),
            origin: Origin::new("/etc/jobrun/jobs.yaml", 11),
        }));
        b.on_success = vec![link("notify", 12)];
        let notify = yaml_job("notify", 20, "@daily", "notify");
        let (plan, _) = build(vec![a, b, notify]);
        let job = plan.get("reload").expect("merged");
        let watch = job.spec.watch.as_ref().unwrap();
        assert_eq!(
            watch.paths,
            [PathBuf::from("/certs/a"), PathBuf::from("/certs/b")]
        );
        assert_eq!(watch.debounce, std::time::Duration::from_secs(1));
        assert_eq!(job.spec.on_success[0].job, "notify");
    }

    #[test]
    fn merging_many_schedules_of_one_command_is_linear_work() {
        // 5,000 entries running one command at different times (and each
        // written twice): one job, its schedules united by look-up. Uniting
        // once compared each new schedule with every one before it.
        let n = 5_000;
        let mut set = SourceSet::default();
        for copy in 0..2 {
            for i in 0..n {
                let expr = format!("{} {} {} * *", i % 60, (i / 60) % 24, (i / 1440) % 28 + 1);
                set.jobs.push(Arc::new(crontab_job(
                    "/etc/crontab",
                    copy * n + i + 1,
                    &expr,
                    "root",
                    "task",
                )));
            }
        }
        let before = schedules::NORMALIZED.with(std::cell::Cell::get);
        let (plan, _) = Plan::build(set, chrono_tz::UTC);
        let work = schedules::NORMALIZED.with(std::cell::Cell::get) - before;
        assert_eq!(plan.jobs().len(), 1);
        let job = &plan.jobs()[0];
        assert_eq!(job.schedules.len(), n);
        assert!(job.schedules.iter().all(|s| s.origins.len() == 2));
        assert_eq!(work, 2 * n, "one normalisation per schedule written");
    }

    #[test]
    fn jobs_alike_but_for_their_variables_are_named_without_flattening_them() {
        // 1,000 shared variables, then 1,000 entries of one command, each
        // after its own `V=i`: 1,000 jobs named x-HASH. Ordering them once
        // flattened both environments (2,000 layers each) per comparison.
        let n = 1_000;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!("A{i}=x\n"));
        }
        for i in 0..n {
            text.push_str(&format!("V={i}\n* * * * * x\n"));
        }
        let set = crate::source::crontab::parse_crontab(
            std::path::Path::new("/etc/cron.d/x"),
            text.as_bytes(),
            crate::source::crontab::CrontabFormat::User,
            Some("root"),
        );
        let before = crate::job_env::LAYERS_WALKED.with(std::cell::Cell::get);
        let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
        let walked = crate::job_env::LAYERS_WALKED.with(std::cell::Cell::get) - before;
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(plan.jobs().len(), n);
        let mut names: Vec<&str> = plan.jobs().iter().map(|j| j.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|name| name.starts_with("x-")), "{names:?}");
        assert!(walked < 10 * n, "{walked} layers walked for {n} jobs");
    }
}
