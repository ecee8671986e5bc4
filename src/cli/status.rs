//! `jobrun status`: is a daemon alive, did its sources load without error,
//! and how did each job's latest run end? Exit 0 when healthy (the rule is
//! `crate::health`), else 1, so it serves as a container `HEALTHCHECK`.
//! Reads only the state (what the daemon recorded it loaded); creates nothing.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::table::{local_time, new_table, relative};
use super::{default_zone, Env, GlobalArgs, EXIT_FAILURE, EXIT_OK};
use crate::status::Report;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    // Only the state: the daemon recorded what it loaded, so a HEALTHCHECK
    // needs none of the daemon's source options (any given are not read).
    let zone = default_zone(env).0;
    let store = super::open_existing_store(global, env)?;
    let report = Report::read(store.as_ref(), now, None)?;
    let jobs = report.jobs();
    let verdict = report.verdict(&jobs, report.daemon.is_some());
    let daemon = &report.daemon;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report.json(&verdict, &jobs))?;
        writeln!(out)?;
    } else {
        match daemon {
            Some(d) => writeln!(
                out,
                "daemon: running, pid {} on {}, since {} (last beat {})",
                d.pid,
                d.host,
                local_time(d.started_at, zone),
                relative(d.last_beat, now)
            )?,
            None => writeln!(
                out,
                "daemon: not running ({})",
                super::location_text(global, env)?
            )?,
        }
        if let Some(fleet) = &report.fleet {
            super::fleet_view::write_fleet(out, fleet, now, zone, global.table_width())?;
        }
        let mut table = new_table(
            &["JOB", "LAST RUN", "STATUS", "RESULT"],
            global.table_width(),
        );
        for job in &jobs {
            match job.last_run {
                Some(r) => table.add_row(vec![
                    job.name.to_string(),
                    relative(r.started_at.unwrap_or(r.claimed_at), now),
                    r.status.to_string(),
                    super::history::result_text(r),
                ]),
                None => table.add_row(vec![
                    job.name.to_string(),
                    "never".into(),
                    "-".into(),
                    String::new(),
                ]),
            };
        }
        writeln!(out, "{table}")?;
        if verdict.healthy() {
            writeln!(out, "healthy")?;
        }
        for reason in &verdict.reasons {
            writeln!(out, "{reason}")?;
        }
    }
    Ok(if verdict.healthy() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
