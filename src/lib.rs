//! jobrun: a cron replacement that reads every job source, merges them into
//! one deduplicated schedule, and runs each job at most once per tick.
//!
//! Data flows one way:
//!
//! ```text
//! YAML files ─┐
//!             ├─► source ─► JobSpecs ─► plan ─► daemon ─Firing─► fire: store.lease ─► store.claim ─► runner ─► store.finish
//! crontabs  ──┘  (parse)                (merged,  (tokio loop,
//!                                        pure)     clock, signals)
//! ```
//!
//! - [`job`]: the domain values every room shares (specs, origins, diagnostics, firings).
//! - [`job_env`]: a job's variables as shared layers (a file's variables held once).
//! - [`limits`]: every bound on what a user may write (durations, counts, file sizes).
//! - [`source`]: YAML job files and crontab files into [`job::JobSpec`]s, with `path:line`.
//! - [`schedule`]: cron expressions, zones and daylight-saving rules; `next_after(t)`.
//! - [`plan`]: the merge into one schedule, derived names, `due(after, upto)`.
//! - [`clock`]: the only wall-clock reader.
//! - [`procfs`]: the one reader of `/proc/PID/stat`.
//! - [`private_dir`]: the owner and mode rules of jobrun's own directories.
//! - [`users`]: users and groups (`/etc/passwd` and `/etc/group` read directly in the static build, NSS otherwise).
//! - [`store`]: the state behind one backend-neutral API: leases, claims, run history,
//!   heartbeats, retention, and the one "is this owner alive?" (`store::owner`). SQLite
//!   (`store::sqlite`: the database, its migrations, its flock leases) is its backend;
//!   `store::recorder` is the thread that makes the firing path's store calls, so async
//!   tasks await them.
//! - [`runner`]: one job process, supervised to its end.
//! - [`fire`]: one firing from lease to record, with its retries; every trigger shares it.
//!   In parts: the lease and `replace`, the claim, readiness (`requires:`), the
//!   command or the `signal:` job, the environment, the active runs, retries.
//! - [`daemon`]: the scheduler loop, signals, reload, clock jumps, reaping.
//! - [`health`]: the verdict of `status`, from what the state records (pure).
//! - [`cli`]: the command line; one module per subcommand.
//!
//! Lower rooms never know higher ones: `schedule`, `source` and `plan` name no
//! SQLite, tokio or process; `runner` and `store` do not know each other; only
//! `fire`, `daemon` and `cli` compose them.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod fire;
pub mod health;
pub mod job;
pub mod job_env;
pub mod limits;

pub mod plan;
pub mod private_dir;
pub mod procfs;

pub mod runner;
pub mod schedule;
pub mod source;
pub mod store;
pub mod users;
