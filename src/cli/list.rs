//! `jobrun list`: the merged schedule.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::table::{local_time, new_table, relative, rfc3339};
use super::{load_plan, report_problems, Env, GlobalArgs, EXIT_OK};
use crate::plan::{Job, Plan};
use crate::status::live_daemon;
use crate::store::{DaemonRecord, RunRecord};
use std::collections::HashMap;

#[derive(Serialize)]
struct JobJson {
    name: String,
    command: String,
    user: Option<String>,
    enabled: bool,
    schedules: Vec<ScheduleJson>,
    next_run: Option<String>,
    /// What starts the job besides its schedule ("on change: /certs",
    /// "after renew-certificates", "at daemon start", "at boot").
    triggers: Vec<String>,
    last_run: Option<String>,
    last_status: Option<String>,
    sources: Vec<String>,
    /// What kind of file defines the job: `yaml`, `crontab` or `supercronic`.
    kind: &'static str,
    merged: bool,
}

#[derive(Serialize)]
struct ScheduleJson {
    expr: String,
    timezone: String,
    sources: Vec<String>,
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32> {
    let (plan, diagnostics, zone) = load_plan(global, env)?;
    report_problems(&diagnostics);
    let (last, daemon) = last_runs(global, env, now);
    if json {
        let jobs: Vec<JobJson> = plan
            .jobs()
            .iter()
            .map(|j| job_json(j, now, last.get(&j.name), other_triggers(&plan, j)))
            .collect();
        serde_json::to_writer_pretty(&mut *out, &jobs)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    match &daemon {
        Some(d) => writeln!(
            out,
            "daemon: running, pid {} on {}, since {}",
            d.pid,
            d.host,
            local_time(d.started_at, zone)
        )?,
        None => writeln!(out, "daemon: not running")?,
    }
    let mut table = new_table(
        &[
            "NAME", "SCHEDULE", "ZONE", "NEXT RUN", "LAST RUN", "SOURCES",
        ],
        global.table_width(),
    );
    for job in plan.jobs() {
        let exprs: Vec<&str> = job.schedules.iter().map(|s| s.schedule.expr()).collect();
        let mut zones: Vec<String> = job
            .schedules
            .iter()
            .map(|s| s.schedule.timezone().name().to_string())
            .collect();
        zones.dedup();
        let triggers = other_triggers(&plan, job);
        let next = match job.next_after(now) {
            Some(t) if triggers.is_empty() => {
                format!("{} ({})", local_time(t, zone), relative(t, now))
            }
            Some(t) => format!(
                "{} ({}); {}",
                local_time(t, zone),
                relative(t, now),
                triggers.join("; ")
            ),
            None if !job.spec.enabled => "disabled".to_string(),
            None if triggers.is_empty() => "manual only".to_string(),
            None => triggers.join("; "),
        };
        let mut sources: Vec<String> = job.origins.iter().map(ToString::to_string).collect();
        if job.is_merged() {
            sources[0] = format!("[merged] {}", sources[0]);
        }
        // A supercronic file reads like a crontab but means something else.
        if job.spec.kind == crate::job::SourceKind::Supercronic {
            sources[0] = format!("[supercronic] {}", sources[0]);
        }
        table.add_row(vec![
            job.name.clone(),
            if exprs.is_empty() {
                "-".to_string()
            } else {
                exprs.join(", ")
            },
            if zones.is_empty() {
                "-".to_string()
            } else {
                zones.join(", ")
            },
            next,
            match last.get(&job.name) {
                Some(run) => {
                    let at = run.started_at.unwrap_or(run.claimed_at);
                    format!("{} {}", relative(at, now), run.status)
                }
                None => "never".to_string(),
            },
            sources.join(", "),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(EXIT_OK)
}

/// What starts an enabled job besides its schedule.
fn other_triggers(plan: &Plan, job: &Job) -> Vec<String> {
    if !job.spec.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    if job.runs_at_reboot() {
        out.push("at boot (@reboot)".to_string());
    }
    if job.spec.run_on_start {
        out.push("at daemon start".to_string());
    }
    if let Some(watch) = &job.spec.watch {
        let paths: Vec<String> = watch
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        out.push(format!("on change: {}", paths.join(", ")));
    }
    let parents: Vec<&str> = plan
        .chain_parents(&job.name)
        .map(|p| p.name.as_str())
        .collect();
    if !parents.is_empty() {
        out.push(format!("after {}", parents.join(", ")));
    }
    out
}

/// Each job's latest run, when a history exists. A history that cannot be
/// read is reported and the schedule is still shown.
fn last_runs(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
) -> (HashMap<String, RunRecord>, Option<DaemonRecord>) {
    let read = || -> anyhow::Result<(Vec<RunRecord>, Option<DaemonRecord>)> {
        Ok(match super::open_existing_store(global, env)? {
            Some(store) => (store.latest_runs()?, live_daemon(&store, now, None)?),
            None => (Vec::new(), None),
        })
    };
    match read() {
        Ok((runs, daemon)) => (
            runs.into_iter().map(|r| (r.job.clone(), r)).collect(),
            daemon,
        ),
        Err(e) => {
            eprintln!("jobrun: warning: run history not shown: {e:#}");
            (HashMap::new(), None)
        }
    }
}

fn job_json(
    job: &Job,
    now: DateTime<Utc>,
    last: Option<&RunRecord>,
    triggers: Vec<String>,
) -> JobJson {
    JobJson {
        name: job.name.clone(),
        command: job.spec.command.to_string(),
        user: job.spec.user.clone(),
        enabled: job.spec.enabled,
        schedules: job
            .schedules
            .iter()
            .map(|s| ScheduleJson {
                expr: s.schedule.expr().to_string(),
                timezone: s.schedule.timezone().name().to_string(),
                sources: s.origins.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        next_run: job.next_after(now).map(rfc3339),
        triggers,
        last_run: last.map(|r| rfc3339(r.started_at.unwrap_or(r.claimed_at))),
        last_status: last.map(|r| r.status.to_string()),
        sources: job.origins.iter().map(ToString::to_string).collect(),
        kind: job.spec.kind.as_str(),
        merged: job.is_merged(),
    }
}
