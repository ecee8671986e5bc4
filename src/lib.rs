//! jobrun: a cron replacement that reads every job source, merges them into
//! one deduplicated schedule, and runs each job at most once per tick.
//!
//! Data flows one way:
//!
//! ```text
//! YAML files ─┐
//!             ├─► source ─► JobSpecs ─► plan (merged, deduplicated)
//! crontabs  ──┘  (parse)                 (pure: now in, ticks out)
//! ```
//!
//! - [`job`]: the domain values every room shares (specs, origins, diagnostics).
//! - [`source`]: YAML job files and crontab files into [`job::JobSpec`]s, with `path:line`.
//! - [`schedule`]: cron expressions, zones and daylight-saving rules; `next_after(t)`.
//! - [`plan`]: the merge into one schedule and derived names.
//! - [`clock`]: the only wall-clock reader.
//! - [`cli`]: the command line; one module per subcommand.
//!
//! Lower rooms never know higher ones: `schedule`, `source` and `plan` name no
//! SQLite, tokio or process.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod fire;
pub mod job;
pub mod lock;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod source;
pub mod store;
