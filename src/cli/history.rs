//! `jobrun history`: past runs, newest first.

use std::io::Write;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use super::table::{local_time, new_table, relative};
use super::{default_zone, Env, GlobalArgs, EXIT_OK};
use crate::job::RunStatus;
use crate::store::{HistoryFilter, RunRecord};

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this job's runs.
    pub name: Option<String>,
    /// At most this many runs (up to 1000000).
    #[arg(long, short = 'n', default_value_t = 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=crate::limits::HISTORY_LIMIT_MAX as u64))]
    pub limit: usize,
    /// Only runs claimed since TIME (RFC 3339) or within DURATION ("2h", "7d";
    /// at most 100 years).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,
    /// Only runs with this status (running, succeeded, failed, timed_out,
    /// killed, skipped, interrupted, abandoned, missed).
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<RunStatus>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_status(s: &str) -> Result<RunStatus, String> {
    RunStatus::parse(s).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status {s:?}; one of: {}", all.join(", "))
    })
}

/// RFC 3339, or a duration back from now.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let span = match crate::limits::HISTORY_SINCE.parse(text) {
        Ok(span) => span,
        Err(e @ crate::limits::DurationError::TooLong { .. }) => bail!("--since: {e}"),
        Err(_) => bail!(
            "--since {text:?}: expected RFC 3339 (2026-03-29T01:00:00Z) or a duration (2h, 7d)"
        ),
    };
    // Bounded above, so neither the conversion nor the subtraction can fail;
    // saturate all the same rather than trust that.
    let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    Ok(now
        .checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC))
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &HistoryArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let filter = HistoryFilter {
        job: args.name.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()?,
        status: args.status,
        limit: Some(args.limit),
    };
    let runs = match super::open_existing_store(global, env)? {
        Some(store) => store.history(&filter).context("reading the run history")?,
        None => Vec::new(),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &runs)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let zone = default_zone(env).0;
    // A fleet's history, or one host's that other hosts wrote to: which host
    // ran each run.
    let hosts = global.database.is_some() || runs.iter().any(|r| r.host != runs[0].host);
    let mut header = vec!["ID", "JOB"];
    if hosts {
        header.push("HOST");
    }
    header.extend(["TRIGGER", "STARTED", "DURATION", "STATUS", "RESULT"]);
    let mut table = new_table(&header, global.table_width());
    for run in &runs {
        let when = run.started_at.unwrap_or(run.claimed_at);
        let mut row = vec![run.id.to_string(), run.job.clone()];
        if hosts {
            row.push(run.host.clone());
        }
        row.extend([
            match run.attempt {
                1 => run.trigger.clone(),
                n => format!("{} #{n}", run.trigger),
            },
            format!("{} ({})", local_time(when, zone), relative(when, now)),
            run.duration_ms.map(format_ms).unwrap_or_else(|| "-".into()),
            run.status.to_string(),
            result_text(run),
        ]);
        table.add_row(row);
    }
    if runs.is_empty() {
        writeln!(
            out,
            "no runs recorded in {}",
            super::location_text(global, env)?
        )?;
    } else {
        writeln!(out, "{table}")?;
    }
    Ok(EXIT_OK)
}

/// "exit 3", "signal 9", or why jobrun ended or skipped the run.
pub fn result_text(run: &RunRecord) -> String {
    let mut parts = Vec::new();
    if let Some(code) = run.exit_code {
        parts.push(format!("exit {code}"));
    }
    if let Some(sig) = run.signal {
        parts.push(format!("signal {sig}"));
    }
    if let Some(error) = &run.error {
        parts.push(error.clone());
    }
    parts.join(", ")
}

pub fn format_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m {}s", ms / 60_000, ms / 1000 % 60)
    }
}
