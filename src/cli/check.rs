//! `jobrun check`: validate every source and report with `path:line`, as text
//! or (`--json`) as one JSON object a CI pipeline can gate on.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{load_plan, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;
use crate::store::postgres::fingerprint::fingerprint;

#[derive(Debug, Default, clap::Args)]
pub struct CheckArgs {
    /// Print one JSON object instead of text: {"diagnostics": [{path, line,
    /// severity, message}], "jobs", "merged", "errors", "warnings", "notes"}.
    /// The exit code is the same as without it.
    #[arg(long)]
    pub json: bool,
}

/// `check --json`: every finding, and the counts the text summary line gives.
#[derive(Serialize)]
struct Report<'a> {
    diagnostics: Vec<Finding<'a>>,
    jobs: usize,
    merged: usize,
    errors: usize,
    warnings: usize,
    notes: usize,
}

/// One finding. `path` is null for a finding about no file (such as `TZ`);
/// `line` is null for one about a whole file or no file.
#[derive(Serialize)]
struct Finding<'a> {
    path: Option<&'a Path>,
    line: Option<usize>,
    severity: &'static str,
    message: &'a str,
}

impl<'a> From<&'a Diagnostic> for Finding<'a> {
    fn from(d: &'a Diagnostic) -> Self {
        Finding {
            path: d.origin.as_ref().map(|o| &*o.path),
            line: d.origin.as_ref().map(|o| o.line).filter(|&l| l > 0),
            severity: d.severity.as_str(),
            message: &d.message,
        }
    }
}

/// With `--database`: each job whose definition here differs from the one
/// the fleet's live daemons claim it with is an error at its line (a daemon
/// started with it would have that job's claims refused).
fn fleet_drift(
    global: &GlobalArgs,
    env: &Env,
    plan: &Plan,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<()> {
    let Some(store) = super::open_existing_store(global, env)? else {
        return Ok(());
    };
    let fleet = store.fleet_definitions()?;
    for job in plan.jobs() {
        let Some((host, theirs)) = fleet.get(&job.name) else {
            continue;
        };
        let ours = fingerprint(&job.spec, plan.default_zone());
        if *theirs != ours {
            diagnostics.push(Diagnostic::error(
                Some(job.spec.origin.clone()),
                format!(
                    "job {}: its definition here ({ours}) differs from the one the fleet claims it \
                     with ({theirs}, from {host}): schedule, zone, command, user or environment; a \
                     daemon started with it would have this job's claims refused; deploy one \
                     definition to every host",
                    job.name
                ),
            ));
        }
    }
    Ok(())
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &CheckArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let (plan, mut diagnostics, _) = load_plan(global, env)?;
    // A supercronic year field can list only years that are over: the line
    // is valid (it ran once), but the job will never run again.
    for job in plan.jobs() {
        for planned in &job.schedules {
            let s = &planned.schedule;
            if s.is_reboot() || s.never_fires().is_some() || s.next_after(now).is_some() {
                continue;
            }
            for origin in &planned.origins {
                diagnostics.push(Diagnostic::warning(
                    Some(origin.clone()),
                    format!(
                        "schedule `{}` has no times after now: every year it lists is over, so job {} never runs again; \
                         remove the line or change its year field",
                        s.expr(),
                        job.name
                    ),
                ));
            }
        }
    }
    if !env.running_as_root {
        for job in plan.jobs().iter().filter(|j| j.spec.user.is_some()) {
            diagnostics.push(Diagnostic::warning(
                Some(job.spec.origin.clone()),
                format!(
                    "job {} runs as user {:?}, which needs jobrun to run as root; \
                     started as this user it will fail",
                    job.name,
                    job.spec.user.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    if global.database.is_some() {
        fleet_drift(global, env, &plan, &mut diagnostics)?;
    }
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    let (errors, warnings, notes) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Note),
    );
    let merged = plan.jobs().iter().filter(|j| j.is_merged()).count();
    let code = if errors > 0 { EXIT_FAILURE } else { EXIT_OK };
    if args.json {
        let report = Report {
            diagnostics: diagnostics.iter().map(Finding::from).collect(),
            jobs: plan.jobs().len(),
            merged,
            errors,
            warnings,
            notes,
        };
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(code);
    }
    for d in &diagnostics {
        writeln!(out, "{d}")?;
    }
    writeln!(
        out,
        "{} job(s) ({merged} merged from several entries): {errors} error(s), {warnings} warning(s), {notes} note(s)",
        plan.jobs().len()
    )?;
    Ok(code)
}
