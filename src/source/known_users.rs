//! Whether the user a system crontab line names exists, checked while reading
//! the file, so that `check` reports the line (`path:line`) instead of the job
//! failing at run time. Vixie cron skips such a line too ("bad username").
//!
//! Owns: the check and its cache. Each user name is looked up once per read of
//! the sources, however many lines name it (a cron.d file names `root` on every
//! line). Must not know what a schedule or a command means, and names no clock,
//! SQLite, tokio or process.
//! See: <https://github.com/vixie/cron/blob/master/database.c> (process_crontab, "ORPHAN")

use std::collections::HashMap;

use crate::job::{Diagnostic, SourceSet};

/// Looks a user name up: `Ok(true)` when it exists, `Err` when the user
/// database could not answer.
pub type Lookup = fn(&str) -> Result<bool, String>;

/// The running system's user database (the jobs run on this system, also with a
/// `--system-crontabs` ROOT other than `/`), as [`crate::users`] reads it.
pub fn system_lookup(name: &str) -> Result<bool, String> {
    crate::users::user_by_name(name)
        .map(|user| user.is_some())
        .map_err(|e| e.to_string())
}

/// The answers so far, by user name.
pub struct KnownUsers {
    lookup: Lookup,
    answers: HashMap<String, Result<bool, String>>,
}

impl KnownUsers {
    pub fn new(lookup: Lookup) -> Self {
        KnownUsers {
            lookup,
            answers: HashMap::new(),
        }
    }

    /// Removes from `set` the jobs whose user does not exist, with an error at
    /// each one's line. A user database that cannot answer leaves the job in (it
    /// fails at run time with the reason) and says so once per user.
    pub fn check(&mut self, set: &mut SourceSet) {
        let mut findings = Vec::new();
        let lookup = self.lookup;
        let answers = &mut self.answers;
        set.jobs.retain(|job| {
            let Some(user) = job.user.as_deref() else {
                return true;
            };
            let (answer, first) = match answers.get(user) {
                Some(answer) => (answer.clone(), false),
                None => {
                    let answer = lookup(user);
                    answers.insert(user.to_owned(), answer.clone());
                    (answer, true)
                }
            };
            match answer {
                Ok(true) => true,
                Ok(false) => {
                    findings.push(Diagnostic::error(
                        Some(job.origin.clone()),
                        format!(
                            "there is no user `{user}` on this system, so this job cannot run \
                             (cron skips the line too); create the user or name an existing one \
                             in the user field"
                        ),
                    ));
                    false
                }
                Err(e) => {
                    if first {
                        findings.push(Diagnostic::warning(
                            Some(job.origin.clone()),
                            format!("could not look up user `{user}` ({e}); the job is kept"),
                        ));
                    }
                    true
                }
            }
        });
        set.diagnostics.extend(findings);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;

    use super::*;
    use crate::job::{Command, JobSpec, Origin, Severity, SourceKind};

    thread_local! {
        static LOOKUPS: Cell<usize> = const { Cell::new(0) };
    }

    fn fake(name: &str) -> Result<bool, String> {
        LOOKUPS.with(|n| n.set(n.get() + 1));
        match name {
            "broken" => Err("database unavailable".into()),
            other => Ok(other == "root" || other == "www-data"),
        }
    }

    fn job(user: Option<&str>, line: usize) -> JobSpec {
        let mut job = JobSpec::new(
            Command::Shell(format!("job{line}")),
            SourceKind::Crontab,
            Origin::new(Path::new("/etc/cron.d/app"), line),
        );
        job.user = user.map(str::to_owned);
        job
    }

    fn with_jobs(jobs: Vec<JobSpec>) -> SourceSet {
        SourceSet {
            jobs: jobs.into_iter().map(std::sync::Arc::new).collect(),
            ..SourceSet::default()
        }
    }

    #[test]
    fn a_line_for_a_user_that_does_not_exist_is_an_error_at_its_line() {
        let mut set = with_jobs(vec![
            job(Some("root"), 1),
            job(Some("ghost"), 2),
            job(Some("www-data"), 3),
            job(None, 4),
            job(Some("ghost"), 5),
        ]);
        KnownUsers::new(fake).check(&mut set);
        let lines: Vec<usize> = set.jobs.iter().map(|j| j.origin.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        let errors: Vec<String> = set.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("/etc/cron.d/app:2: error: there is no user `ghost`"));
        assert!(errors[1].starts_with("/etc/cron.d/app:5: error:"));
    }

    #[test]
    fn each_user_is_looked_up_once_however_many_lines_name_it() {
        LOOKUPS.with(|n| n.set(0));
        let mut users = KnownUsers::new(fake);
        // Two files read by the same reader, 10,000 lines naming three users.
        for _ in 0..2 {
            let mut set = with_jobs(
                (0..5_000)
                    .map(|i| job(Some(["root", "ghost", "broken"][i % 3]), i + 1))
                    .collect(),
            );
            users.check(&mut set);
        }
        assert_eq!(LOOKUPS.with(Cell::get), 3);
        // The database that cannot answer: the jobs stay, one warning.
        let mut set = with_jobs(vec![job(Some("broken"), 1), job(Some("broken"), 2)]);
        let mut fresh = KnownUsers::new(fake);
        fresh.check(&mut set);
        assert_eq!(set.jobs.len(), 2);
        assert_eq!(set.diagnostics.len(), 1);
        assert_eq!(set.diagnostics[0].severity, Severity::Warning);
    }
}
