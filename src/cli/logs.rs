//! `jobrun logs RUN_ID`: one run's details and its stored output.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::history::{format_ms, result_text};
use super::table::{local_time, relative};
use super::{default_zone, Env, GlobalArgs, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The run's id (from `jobrun history`).
    pub run_id: i64,
    /// Print JSON (the run's fields and its output as text).
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &LogsArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let store = match super::open_existing_store(global, env)? {
        Some(store) => store,
        None => anyhow::bail!("no run history in {}", super::location_text(global, env)?),
    };
    let place = store.describe();
    let run = store
        .get(crate::job::RunId(args.run_id))
        .context("reading the run")?
        .with_context(|| format!("no run with id {} in {place}", args.run_id))?;
    let tail = store
        .output_tail(run.id)
        .context("reading the run's output")?;
    let truncated = run.output_bytes > tail.len() as u64;
    if args.json {
        let mut value = serde_json::to_value(&run)?;
        value["output"] = String::from_utf8_lossy(&tail).into_owned().into();
        value["output_truncated"] = truncated.into();
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let zone = default_zone(env).0;
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| format!("{} ({})", local_time(t, zone), relative(t, now)))
            .unwrap_or_else(|| "-".into())
    };
    writeln!(out, "run {} of {}", run.id, run.job)?;
    match (run.trigger.as_str(), run.parent_id) {
        ("retry", Some(first)) => writeln!(
            out,
            "  trigger:  retry (attempt {}; first attempt: run {first})",
            run.attempt
        )?,
        ("chain", Some(parent)) => writeln!(out, "  trigger:  chain (after run {parent})")?,
        (trigger, _) => writeln!(out, "  trigger:  {trigger}")?,
    }
    writeln!(out, "  tick:     {}", time(run.tick))?;
    writeln!(out, "  started:  {}", time(run.started_at))?;
    writeln!(out, "  finished: {}", time(run.finished_at))?;
    if let Some(ms) = run.duration_ms {
        writeln!(out, "  duration: {}", format_ms(ms))?;
    }
    writeln!(out, "  status:   {}", run.status)?;
    let result = result_text(&run);
    if !result.is_empty() {
        writeln!(out, "  result:   {result}")?;
    }
    if let Some(pid) = run.pid {
        writeln!(out, "  pid:      {pid} on {}", run.host)?;
    }
    writeln!(
        out,
        "  output:   {} bytes{}",
        run.output_bytes,
        if truncated {
            format!(", last {} shown", tail.len())
        } else {
            String::new()
        }
    )?;
    if !tail.is_empty() {
        writeln!(out, "---")?;
        out.write_all(&tail)?;
        if !tail.ends_with(b"\n") {
            writeln!(out)?;
        }
    }
    Ok(EXIT_OK)
}
