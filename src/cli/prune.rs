//! `jobrun prune`: apply the history retention now.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{state_dir, Env, GlobalArgs, EXIT_OK};
use crate::store::{Retention, Store};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove runs older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = Retention::default().keep_days)]
    pub keep_days: u32,
    /// Keep at most this many runs per job (the newest).
    #[arg(long, value_name = "N", default_value_t = Retention::default().keep_runs)]
    pub keep_runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &PruneArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let dir = state_dir(global, env)?;
    let removed = match Store::open_existing(&dir).context("opening the run history")? {
        Some(store) => store
            .prune(
                now,
                Retention {
                    keep_days: args.keep_days,
                    keep_runs: args.keep_runs,
                },
            )
            .context("pruning the run history")?,
        None => 0,
    };
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "removed": removed }))?;
    } else {
        writeln!(out, "removed {removed} run(s) from {}", dir.display())?;
    }
    Ok(EXIT_OK)
}
