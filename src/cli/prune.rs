//! `jobrun prune`: apply the history retention now.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{load_plan, state_dir, Env, GlobalArgs, EXIT_OK};
use crate::job::HistorySpec;
use crate::store::{Retention, Store};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove runs older than this many days. Default: the YAML `history:
    /// keep_days` of the sources, else 90. At most 36500.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::limits::KEEP_DAYS_MAX)))]
    pub keep_days: Option<u32>,
    /// Keep at most this many runs per job (the newest). Default: YAML
    /// `history: keep_runs`, else 10000.
    #[arg(long, value_name = "N")]
    pub keep_runs: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags win over the YAML `history:` key, which wins over the defaults.
pub fn retention(
    keep_days: Option<u32>,
    keep_runs: Option<u32>,
    yaml: Option<&HistorySpec>,
) -> Retention {
    let defaults = Retention::default();
    Retention {
        keep_days: keep_days
            .or(yaml.and_then(|h| h.keep_days))
            .unwrap_or(defaults.keep_days),
        keep_runs: keep_runs
            .or(yaml.and_then(|h| h.keep_runs))
            .unwrap_or(defaults.keep_runs),
    }
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &PruneArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let dir = state_dir(global, env)?;
    // The sources' `history:` setting, when there are sources to read.
    let yaml = if args.keep_days.is_none() || args.keep_runs.is_none() {
        load_plan(global, env)
            .ok()
            .and_then(|(plan, _, _)| plan.history)
    } else {
        None
    };
    let retention = retention(args.keep_days, args.keep_runs, yaml.as_ref());
    let store = super::open_existing_store(global, env)?;
    let place = store
        .as_ref()
        .map_or_else(|| dir.display().to_string(), Store::describe);
    let removed = match store {
        Some(store) => store
            .prune(now, retention)
            .context("pruning the run history")?,
        None => 0,
    };
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "removed": removed }))?;
    } else {
        writeln!(out, "removed {removed} run(s) from {place}")?;
    }
    Ok(EXIT_OK)
}
