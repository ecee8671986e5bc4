//! The command line: arguments, where sources are found, and one module per
//! subcommand. The top of the program: it composes sources, plan and output,
//! and turns results into exit codes (SPEC 5).

mod check;
mod completions;
mod daemon;
mod fleet_view;
mod history;
mod list;
mod logging;
mod logs;
mod man;
mod next;
mod prune;
mod run;
mod status;
mod table;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::{Clock, SystemClock};
use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;
use crate::source::{self, SourceOptions};
use crate::store::postgres::LeaseConfig;
use crate::store::{Location, Membership, Store};

/// Exit codes (SPEC 5).
pub const EXIT_OK: i32 = 0;
/// A job failed, or `check` found an error.
pub const EXIT_FAILURE: i32 = 1;
/// A usage error, or a configuration too broken to run.
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "jobrun",
    version,
    about = "A cron replacement: one deduplicated schedule from YAML jobs and crontabs",
    propagate_version = true
)]
pub struct Args {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: CommandArgs,
}

/// Options accepted before or after the subcommand.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// A YAML job file, or a directory of *.yaml/*.yml files (repeatable).
    /// Default: $JOBRUN_CONFIG (colon-separated), else /etc/jobrun/jobs.yaml and
    /// /etc/jobrun/jobs.d/ when no other source is given.
    #[arg(long = "config", short = 'c', global = true, value_name = "PATH")]
    pub configs: Vec<PathBuf>,
    /// A user-format crontab (5 fields and a command), run as jobrun's user (repeatable).
    #[arg(long = "crontab", global = true, value_name = "PATH")]
    pub crontabs: Vec<PathBuf>,
    /// A supercronic crontab, read as supercronic reads it: 6 fields end with
    /// a year, 7 start with seconds; L, W and #; `%` passed as written; each
    /// variable set for the whole file (repeatable; $JOBRUN_SUPERCRONIC,
    /// colon-separated). `CMD ["supercronic", "/etc/crontab"]` becomes
    /// `CMD ["jobrun", "--supercronic", "/etc/crontab", "daemon"]`.
    #[arg(
        long = "supercronic",
        global = true,
        env = "JOBRUN_SUPERCRONIC",
        value_delimiter = ':',
        value_name = "PATH"
    )]
    pub supercronics: Vec<PathBuf>,
    /// Read the system crontabs like crond: /etc/crontab, /etc/cron.d/* and the
    /// Debian, RHEL and Alpine spool directories, under ROOT (default /).
    #[arg(
        long = "system-crontabs",
        global = true,
        env = "JOBRUN_SYSTEM_CRONTABS",
        value_name = "ROOT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "/"
    )]
    pub system_root: Option<PathBuf>,
    /// Where the run history and locks live.
    #[arg(long, global = true, env = "JOBRUN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep runs, claims and daemons in this PostgreSQL database, shared by
    /// every host that runs the schedule (postgres://USER@HOST:PORT/DB):
    /// each tick runs at most once across the fleet. The state directory
    /// still holds this host's local files.
    #[arg(
        long,
        global = true,
        env = "JOBRUN_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// This daemon's name in the fleet (default: the host name).
    #[arg(long, global = true, env = "JOBRUN_HOST_ID", value_name = "NAME")]
    pub host_id: Option<String>,
    /// With --database: how often the daemon renews its lease.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = |s: &str| crate::limits::FLEET_HEARTBEAT.parse(s))]
    pub heartbeat: std::time::Duration,
    /// With --database: how long after its last renewal a peer may declare
    /// a daemon dead and resolve its runs.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = |s: &str| crate::limits::FLEET_LEASE.parse(s))]
    pub lease: std::time::Duration,
    /// With --database: how long without an acknowledged renewal before the
    /// daemon stops claiming on its own (at least 5 s below --lease).
    #[arg(long, global = true, value_name = "DURATION", default_value = "20s", value_parser = |s: &str| crate::limits::FLEET_FENCE.parse(s))]
    pub fence: std::time::Duration,
    /// Log format of the daemon's own messages and job output lines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Print tables at full width: one line a row, however wide, as when the
    /// output is not a terminal (on a terminal, long cells wrap to its width).
    #[arg(long, global = true)]
    pub wide: bool,
}

impl GlobalArgs {
    /// The width tables are fitted to: the terminal's, unless `--wide` or not a terminal.
    pub fn table_width(&self) -> Option<u16> {
        table::table_width(self.wide)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CommandArgs {
    /// Validate every source; errors and warnings with path:line. Exit 0 (clean
    /// or warnings only), 1 (errors), 2 (nothing to check or unusable input).
    Check(check::CheckArgs),
    /// Show the merged schedule: name, schedules, zone, next run, sources.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the next fire times of one job, every job, or an ad-hoc expression.
    Next(next::NextArgs),
    /// Run the scheduler in the foreground until SIGTERM/SIGINT.
    Daemon(daemon::DaemonArgs),
    /// Run a job now (same lock and record as scheduled runs); exits with its exit code.
    Run(run::RunArgs),
    /// Show past runs, newest first.
    History(history::HistoryArgs),
    /// Show one run's details and its stored output.
    Logs(logs::LogsArgs),
    /// Is a daemon alive, and each job's latest result; exit 0 when healthy.
    Status(status::StatusArgs),
    /// Apply the history retention now.
    Prune(prune::PruneArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) to stdout: `jobrun man | man -l -`.
    Man(man::ManArgs),
}

/// Parses `args` (the program name first) and runs the command. Returns the
/// process exit code; errors are printed here with their context chain.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            // Printing help or a usage error can only fail on a closed pipe.
            let _ = e.print();
            return code;
        }
    };
    let clock = SystemClock;
    // Not locked for the whole command: the daemon's job output is written to
    // stdout from other threads.
    let mut out = std::io::stdout();
    // The daemon's stdout belongs to its output writer, which may be stuck on
    // a full pipe; only the listing commands flush what they wrote.
    // `run` passes the job's output through and exits with the job's code,
    // which a closed pipe must not turn into 0.
    let flush = !matches!(args.command, CommandArgs::Daemon(_) | CommandArgs::Run(_));
    match dispatch(&args, &clock, &mut out).and_then(|code| {
        if flush {
            out.flush().context("writing output")?;
        }
        Ok(code)
    }) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => EXIT_OK,
        Err(e) => {
            eprintln!("jobrun: {e:#}");
            EXIT_USAGE
        }
    }
}

fn dispatch(args: &Args, clock: &dyn Clock, out: &mut dyn Write) -> Result<i32> {
    let env = Env::from_process();
    // The daemon narrates at info; one-shot commands only speak up when
    // something is wrong (their results are their output).
    let level = if matches!(args.command, CommandArgs::Daemon(_)) {
        "info"
    } else {
        "warn"
    };
    logging::init(args.global.log_format, level);
    match &args.command {
        CommandArgs::Daemon(a) => daemon::run(&args.global, &env, a),
        CommandArgs::Run(a) => run::run(&args.global, &env, a),
        CommandArgs::Check(a) => check::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::List { json } => list::run(&args.global, &env, clock.now(), *json, out),
        CommandArgs::Next(a) => next::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::History(a) => history::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::Logs(a) => logs::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::Status(a) => status::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::Prune(a) => prune::run(&args.global, &env, clock.now(), a, out),
        CommandArgs::Completions(a) => completions::run(a, out),
        CommandArgs::Man(a) => man::run(a, out),
    }
}

/// `jobrun history | head` closes the pipe early; that is success, not an error.
/// serde_json's error wraps the io error without naming it as its source (its
/// `source()` is the io error's own source), so `--json` output is asked for its
/// io error kind: `history --json | head` said "Broken pipe" and exited 2.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// What the command line reads from the process environment, gathered in one
/// place so the rest is a function of its inputs.
#[derive(Debug, Clone)]
pub struct Env {
    /// `$JOBRUN_CONFIG`, colon-separated.
    pub jobrun_config: Option<String>,
    /// `$TZ`.
    pub tz: Option<String>,
    pub running_as_root: bool,
    /// The effective user id, which cron's file safety rules trust.
    pub euid: u32,
    /// `$XDG_STATE_HOME` and `$HOME`, for the default state directory.
    pub xdg_state_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            jobrun_config: std::env::var("JOBRUN_CONFIG").ok(),
            tz: std::env::var("TZ").ok(),
            running_as_root: nix::unistd::geteuid().is_root(),
            euid: nix::unistd::geteuid().as_raw(),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            home: std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// The state directory (SPEC 4): `--state-dir` or `$JOBRUN_STATE_DIR`, else
/// `/var/lib/jobrun` as root, else `$XDG_STATE_HOME/jobrun` or
/// `~/.local/state/jobrun`.
pub fn state_dir(global: &GlobalArgs, env: &Env) -> Result<PathBuf> {
    if let Some(dir) = &global.state_dir {
        return Ok(dir.clone());
    }
    if env.running_as_root {
        return Ok(PathBuf::from("/var/lib/jobrun"));
    }
    if let Some(xdg) = &env.xdg_state_home {
        return Ok(xdg.join("jobrun"));
    }
    match &env.home {
        Some(home) => Ok(home.join(".local/state/jobrun")),
        None => anyhow::bail!(
            "no state directory: pass --state-dir DIR or set JOBRUN_STATE_DIR (HOME is not set)"
        ),
    }
}

/// This process's host in runs and heartbeats: `--host-id`, else the
/// host name.
pub fn host_id(global: &GlobalArgs) -> String {
    global
        .host_id
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(crate::fire::this_host)
}

/// Where the state is: `--database`, else the state directory.
pub fn location(global: &GlobalArgs, env: &Env) -> Result<Location> {
    let Some(url) = global.database.clone().filter(|u| !u.is_empty()) else {
        return Ok(Location::StateDir(state_dir(global, env)?));
    };
    let lease = LeaseConfig {
        heartbeat: global.heartbeat,
        lease: global.lease,
        fence: global.fence,
    };
    lease
        .validate()
        .map_err(|e| anyhow::anyhow!("--heartbeat/--fence/--lease: {e}"))?;
    Ok(Location::Database(Membership {
        url,
        host: host_id(global),
        lease,
        wall: Arc::new(|| SystemClock.now()),
        kind: crate::store::postgres::daemons::Kind::Daemon,
    }))
}

/// Where the state is, in words (never a password).
pub fn location_text(global: &GlobalArgs, env: &Env) -> Result<String> {
    Ok(match location(global, env)? {
        Location::StateDir(dir) => format!("state directory {}", dir.display()),
        Location::Database(m) => match crate::store::postgres::connect::config(&m.url) {
            Ok(config) => format!(
                "PostgreSQL {}",
                crate::store::postgres::connect::target(&config)
            ),
            Err(_) => "the --database".to_string(),
        },
    })
}

/// The store of a read-only command, if there is one: it is never created.
pub fn open_existing_store(global: &GlobalArgs, env: &Env) -> Result<Option<Store>> {
    let location = location(global, env)?;
    Store::open_existing_at(&location).with_context(|| match &location {
        Location::StateDir(dir) => format!("opening the run history in {}", dir.display()),
        Location::Database(_) => "opening the run history in the database".to_string(),
    })
}

/// Where jobs come from (SPEC 1.1): `--config`, else `$JOBRUN_CONFIG`; the
/// `/etc/jobrun` files are the default only when no source at all was given,
/// so `jobrun --crontab FILE list` shows exactly that file.
pub fn source_options(global: &GlobalArgs, env: &Env) -> SourceOptions {
    let mut configs = global.configs.clone();
    if configs.is_empty() {
        if let Some(list) = env.jobrun_config.as_deref() {
            configs = list
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
        }
    }
    let no_source = configs.is_empty()
        && global.crontabs.is_empty()
        && global.supercronics.is_empty()
        && global.system_root.is_none()
        && env.jobrun_config.is_none();
    if no_source {
        configs = ["/etc/jobrun/jobs.yaml", "/etc/jobrun/jobs.d"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
    }
    SourceOptions {
        configs,
        crontabs: global.crontabs.clone(),
        supercronics: global.supercronics.clone(),
        system_root: global.system_root.clone(),
        euid: env.euid,
    }
}

/// The zone for schedules that name none (SPEC 2): `TZ`, else the system zone,
/// else UTC. A `TZ` that is not an IANA name is reported, not silently ignored.
pub fn default_zone(env: &Env) -> (Tz, Option<Diagnostic>) {
    if let Some(tz) = env.tz.as_deref().filter(|t| !t.is_empty()) {
        // POSIX allows a leading ':' and a path into the zoneinfo tree.
        let name = tz.trim_start_matches(':');
        let name = name.split_once("zoneinfo/").map(|(_, n)| n).unwrap_or(name);
        return match name.parse::<Tz>() {
            Ok(zone) => (zone, None),
            Err(_) => (
                system_zone(),
                Some(Diagnostic::warning(
                    None,
                    format!(
                        "TZ={tz:?} is not an IANA zone name (such as \"Europe/Berlin\"); \
                         using the system zone {} instead",
                        system_zone()
                    ),
                )),
            ),
        };
    }
    (system_zone(), None)
}

fn system_zone() -> Tz {
    iana_time_zone::get_timezone()
        .ok()
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC)
}

/// The sources to read; an error (exit 2) when there is nothing to read.
fn configured_sources(global: &GlobalArgs, env: &Env) -> Result<source::SourceOptions> {
    let opts = source_options(global, env);
    if opts.is_empty() {
        anyhow::bail!(
            "no job sources: pass --config FILE, --crontab FILE, --supercronic FILE or --system-crontabs, \
             set JOBRUN_CONFIG, or create /etc/jobrun/jobs.yaml"
        );
    }
    Ok(opts)
}

/// A source named on the command line (or in `$JOBRUN_CONFIG`) that does not
/// exist is a usage error (exit 2) for the commands that read the sources once:
/// `list` showed an empty table and exited 0, as if the file had no jobs. (The
/// daemon keeps reading the rest and reports the file, which may appear later.)
fn named_sources_exist(global: &GlobalArgs, opts: &source::SourceOptions) -> Result<()> {
    let configs_from = if global.configs.is_empty() {
        "JOBRUN_CONFIG names"
    } else {
        "--config"
    };
    let named = opts
        .configs
        .iter()
        .map(|p| (configs_from, p))
        .chain(opts.crontabs.iter().map(|p| ("--crontab", p)))
        .chain(opts.supercronics.iter().map(|p| ("--supercronic", p)));
    for (option, path) in named {
        if let Err(e) = std::fs::metadata(path) {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::bail!(
                    "{option} {}: no such file or directory; name an existing file{}",
                    path.display(),
                    if option == "--crontab" || option == "--supercronic" {
                        ""
                    } else {
                        " or directory of YAML job files"
                    }
                );
            }
        }
    }
    Ok(())
}

/// Reads every source and builds the plan. Fails (exit 2) when there is
/// nothing to read at all, or a named source does not exist.
pub fn load_plan(global: &GlobalArgs, env: &Env) -> Result<(Plan, Vec<Diagnostic>, Tz)> {
    let opts = configured_sources(global, env)?;
    named_sources_exist(global, &opts)?;
    let (zone, zone_note) = default_zone(env);
    let set = source::read_all(&opts);
    let (plan, mut diagnostics) = Plan::build(set, zone);
    diagnostics.extend(zone_note);
    Ok((plan, diagnostics, zone))
}

/// Reads every source file by file and builds the plan from them, as
/// [`load_plan`] does: the daemon keeps each file's part, so that a reload
/// can keep a file's previous version (see `daemon::reload`).
pub fn load_files(
    global: &GlobalArgs,
    env: &Env,
) -> Result<(Vec<source::SourceFile>, Plan, Vec<Diagnostic>)> {
    let opts = configured_sources(global, env)?;
    let (zone, zone_note) = default_zone(env);
    let files = source::read_files(&opts);
    let (plan, mut diagnostics) = Plan::build(source::merge(files.iter().cloned()), zone);
    diagnostics.extend(zone_note);
    Ok((files, plan, diagnostics))
}

/// Prints errors and warnings to stderr for commands other than `check`, so a
/// listing never hides that part of the configuration was not understood.
pub fn report_problems(diagnostics: &[Diagnostic]) {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
    {
        eprintln!("{d}");
    }
    if errors > 0 {
        eprintln!("jobrun: {errors} error(s) in the job sources; those entries are left out (see `jobrun check`)");
    }
}
