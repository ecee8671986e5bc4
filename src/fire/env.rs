//! A run's environment and request (SPEC 6): jobrun's own environment, then
//! the job's variables, then the `JOBRUN_*` variables; the program, user,
//! directory and limits the runner is given.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{FireContext, Firing};
use crate::job::{Command, RunId, SourceKind};
use crate::plan::Job;
use crate::runner::{Program, RunRequest, DEFAULT_KILL_GRACE, DEFAULT_SHELL};

/// The job's environment (SPEC 6): jobrun's own, then the source's variables,
/// then the `JOBRUN_*` variables.
pub(super) fn build_request(
    ctx: &FireContext,
    job: &Job,
    firing: &Firing,
    run_id: RunId,
) -> RunRequest {
    let mut env = ctx.base_env.clone();
    env.extend(job.spec.env.clone());
    env.insert("JOBRUN_JOB".into(), job.name.clone());
    env.insert("JOBRUN_RUN_ID".into(), run_id.to_string());
    env.insert(
        "JOBRUN_TICK".into(),
        firing.tick.map(rfc3339).unwrap_or_default(),
    );
    env.insert("JOBRUN_TRIGGER".into(), firing.trigger.as_str().into());
    env.insert("JOBRUN_ATTEMPT".into(), firing.attempt.to_string());
    if let Some(parent) = firing.parent {
        env.insert("JOBRUN_PARENT_RUN_ID".into(), parent.to_string());
    }
    if !firing.changed.is_empty() {
        // Retries of a watch run carry its changes too.
        let (paths, cut) = changed_paths(&firing.changed);
        env.insert("JOBRUN_CHANGED".into(), paths);
        if cut || firing.changed_truncated {
            env.insert("JOBRUN_CHANGED_TRUNCATED".into(), "1".into());
        }
    }
    let program = match &job.spec.command {
        Command::Shell(command) => Program::Shell {
            shell: job
                .spec
                .shell
                .clone()
                .unwrap_or_else(|| DEFAULT_SHELL.into()),
            command: command.clone(),
        },
        Command::Argv(argv) => Program::Argv(argv.clone()),
        // Never started: a signal job's request only carries the user,
        // environment and directory for its readiness command checks.
        Command::Signal(_) => Program::Argv(Vec::new()),
    };
    RunRequest {
        job: job.name.clone(),
        program,
        env,
        explicit_env: job.spec.env.keys().cloned().collect(),
        workdir: job.spec.workdir.clone(),
        // Crontab jobs run in the user's HOME, as cron runs them (SPEC 9);
        // a YAML job without `workdir` stays in jobrun's directory.
        home_workdir: job.spec.kind == SourceKind::Crontab,
        user: job.spec.user.clone(),
        stdin: job.spec.stdin.clone().map(String::into_bytes),
        timeout: job.spec.timeout,
        kill_grace: job.spec.kill_grace.unwrap_or(DEFAULT_KILL_GRACE),
        tail_bytes: ctx.tail_bytes,
    }
}

/// The most bytes `JOBRUN_CHANGED` holds: Linux refuses to start a program
/// with one environment string over 128 KiB (E2BIG).
const CHANGED_CAP: usize = 64 * 1024;

/// `JOBRUN_CHANGED`: the changed paths, one per line, each once, in order,
/// and whether some were left out to stay under [`CHANGED_CAP`].
fn changed_paths(paths: &[PathBuf]) -> (String, bool) {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for p in paths.iter().filter(|p| seen.insert(*p)) {
        let p = p.to_string_lossy();
        if out.len() + p.len() + 1 > CHANGED_CAP {
            return (out, true);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&p);
    }
    (out, false)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
