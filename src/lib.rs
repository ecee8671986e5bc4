//! jobrun: a cron replacement that reads every job source, merges them into
//! one deduplicated schedule, and runs each job at most once per tick.
//!
//! Data flows one way:
//!
//! ```text
//! YAML files ───┐
//! crontabs ─────┼─► source ─► JobSpecs ─► plan ─► daemon ─Firing─► fire ─► store.lease ─► store.claim ─► runner ─► store.finish
//! supercronic ──┘   (parse)               (merged,  (loop, clock,        (one firing,   (SQLite; later   (one process)
//!                                          pure)     reload, signals)     retries,       PostgreSQL)
//!                                                                         chains)
//! ```
//!
//! Values and rules every room shares (pure):
//! - [`job`]: the domain values (specs, origins, diagnostics, firings, `RunId`, `RunOutcome`).
//! - [`job_env`]: a job's variables as shared layers (a file's variables held once).
//! - [`limits`]: every bound on what a user may write (durations, counts, file sizes).
//! - [`schedule`]: cron expressions (Vixie, YAML, supercronic dialects), zones and
//!   daylight-saving rules; `next_after(t)`, `iter_after(t)`.
//! - [`source`]: YAML job files, crontabs and supercronic crontabs into
//!   [`job::JobSpec`]s, with `path:line`.
//! - [`plan`]: the merge into one schedule, derived names, chain parents, `due(after, upto)`.
//! - [`health`]: the verdict of `status`, from what the state records.
//!
//! The machine:
//! - [`clock`]: the only wall-clock reader.
//! - [`procfs`]: the one reader of `/proc/PID/stat`.
//! - [`private_dir`]: the owner and mode rules of jobrun's own directories.
//! - [`users`]: users and groups (`/etc/passwd` and `/etc/group` read directly in the
//!   static build, NSS otherwise).
//! - [`runner`]: one job process, supervised to its end (`runner/`: identity, argv,
//!   spawn or fork, output, supervision).
//!
//! The state:
//! - [`store`]: one backend-neutral API: leases, claims, run history, heartbeats,
//!   retention, and the one "is this owner alive?" (`store::owner`). SQLite
//!   (`store::sqlite`: the database, its migrations, its flock leases) is the
//!   backend in use; `store::postgres` is the fleet backend being built (issue 14);
//!   `store::recorder` is the thread that makes the firing path's store calls, so
//!   async tasks await them.
//!
//! The composers:
//! - [`fire`]: one firing from lease to record, with its retries; every trigger shares
//!   it. In parts: the lease and `replace` (`acquire`), readiness (`requires:`), the
//!   command or the `signal:` job (`execute`, `signal_job`), the environment, the active
//!   runs, retries, chains, recording.
//! - [`status`]: the status of a state directory (the live daemon, each job's latest
//!   run, the verdict), read once for `jobrun status` and the daemon's `/status`.
//! - [`http`]: `daemon --http`, read-only: `/metrics` (kept in memory from the
//!   run-event hook of `fire`), `/healthz`, `/status` and the status page `/`.
//! - [`daemon`]: start-up, the scheduler loop (`scheduler`) and its components: source
//!   reloads, `watch:` runs over one file watcher, the heartbeat thread, the clock-jump
//!   watch, the executor, housekeeping, one awaitable shutdown.
//! - [`cli`]: the command line; one module per subcommand.
//!
//! Lower rooms never know higher ones. The rule is a table, checked by
//! `tests/integration/layout.rs` over every `crate::` path: the pure rooms name no
//! SQLite, tokio, process or clock; `runner` and `store` do not know each other;
//! only `fire`, `daemon` and `cli` compose them.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod fire;
pub mod health;
pub mod http;
pub mod job;
pub mod job_env;
pub mod limits;

pub mod plan;
pub mod private_dir;
pub mod procfs;

pub mod runner;
pub mod schedule;
pub mod source;
pub mod status;
pub mod store;
pub mod users;
