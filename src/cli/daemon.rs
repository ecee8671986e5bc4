//! `jobrun daemon`: run the scheduler in the foreground until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use super::{
    default_zone, load_files, source_options, state_dir, Env, GlobalArgs, LogFormat, EXIT_OK,
    EXIT_USAGE,
};
use crate::clock::SystemClock;
use crate::daemon::reload::ReloadOptions;
use crate::daemon::{self, DaemonOptions};
use crate::job::Severity;
use crate::limits;
use crate::runner::DEFAULT_TAIL_BYTES;
use crate::source;

/// Below `docker stop`'s 10 s default: the SIGKILL that follows it must not
/// race jobrun's record of the runs it interrupted (issue 12).
pub const DEFAULT_SHUTDOWN_GRACE: &str = "8s";

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// How long running jobs get after SIGTERM when the daemon stops, before SIGKILL.
    /// At most 1 day. The default, 8s, stays below the 10s `docker stop` (and
    /// Kubernetes' 30s) gives jobrun before its own SIGKILL, so jobrun has
    /// time to record the interrupted runs; raise the container's stop
    /// timeout along with it.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = |s: &str| limits::SHUTDOWN_GRACE.parse(s))]
    pub shutdown_grace: Duration,
    /// How many bytes of the end of each run's output to keep in the history
    /// (at most 16 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_TAIL_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=limits::OUTPUT_TAIL_MAX as u64))]
    pub output_tail: usize,
    /// A forward clock jump (or suspend) up to this long runs each job that
    /// missed ticks once (trigger catch-up); a longer one only logs a warning.
    /// At most 1 year.
    #[arg(long, value_name = "DURATION", default_value = "3h", value_parser = |s: &str| limits::MAX_CATCH_UP.parse(s))]
    pub max_catch_up: Duration,
    /// Where the once-per-boot marker of @reboot jobs is kept. Default:
    /// /run/jobrun as root, else $XDG_RUNTIME_DIR/jobrun, else STATE_DIR/run.
    #[arg(long, value_name = "DIR")]
    pub reboot_marker_dir: Option<std::path::PathBuf>,
    /// Reap orphaned zombie processes, as an init process must (on by default
    /// when jobrun runs as PID 1, e.g. as a container's entrypoint).
    #[arg(long)]
    pub reap: bool,
    /// Remove runs older than this many days (pruned at start and hourly).
    /// Default: YAML `history: keep_days`, else 90. At most 36500.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=i64::from(limits::KEEP_DAYS_MAX)))]
    pub keep_days: Option<u32>,
    /// Refuse to start, and refuse a reload (the whole previous schedule
    /// keeps running), when any source has an error, as supercronic and
    /// yacron do. Without it a bad entry is left out, the rest runs, and
    /// `jobrun status` reports "degraded" naming it.
    #[arg(long, env = "JOBRUN_STRICT", value_parser = clap::builder::BoolishValueParser::new())]
    pub strict: bool,
    /// Keep at most this many runs per job. Default: YAML `history:
    /// keep_runs`, else 10000.
    #[arg(long, value_name = "N")]
    pub keep_runs: Option<u32>,
    /// Serve read-only metrics (/metrics, Prometheus), health (/healthz),
    /// status (/status, JSON) and a status page (/) over HTTP on ADDR, such
    /// as 127.0.0.1:9746. Off by default. No authentication: an address
    /// other than loopback exposes job names, schedules, run history and
    /// errors to whoever reaches it (a warning says so).
    #[arg(long, value_name = "ADDR", env = "JOBRUN_HTTP", value_parser = parse_http_addr)]
    pub http: Option<std::net::SocketAddr>,
    /// Show each job's command on the status page (commands often carry
    /// secrets, so they are hidden by default).
    #[arg(long, requires = "http")]
    pub http_show_commands: bool,
}

/// `--http ADDR`: `HOST:PORT`, the host an IP address or a name.
fn parse_http_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let wrong = || {
        format!("{s:?} is not an address to listen on; expected HOST:PORT, such as 127.0.0.1:9746, [::1]:9746 or localhost:9746")
    };
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{}: {e}", wrong()))?
        .next()
        .ok_or_else(wrong)
}

pub fn run(global: &GlobalArgs, env: &Env, args: &DaemonArgs) -> Result<i32> {
    daemon::memory::tune_allocator();
    let (files, plan, diagnostics) = load_files(global, env)?;
    daemon::memory::release_free_memory();
    for d in &diagnostics {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
            Severity::Note => tracing::info!("{d}"),
        }
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if args.strict && errors > 0 {
        tracing::error!("--strict: {errors} error(s) in the sources (listed above); not starting");
        return Ok(EXIT_USAGE);
    }
    if plan.jobs().is_empty() && errors > 0 {
        tracing::error!("no job could be read from the sources ({errors} error(s)); not starting");
        return Ok(EXIT_USAGE);
    }
    let state_dir = state_dir(global, env)?;
    // /run is emptied at every boot and private to each container, so a marker
    // there means "this boot, this container" (see daemon::reboot).
    let reboot_marker_dir = match &args.reboot_marker_dir {
        Some(dir) => dir.clone(),
        None if env.running_as_root => "/run/jobrun".into(),
        None => match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => std::path::PathBuf::from(dir).join("jobrun"),
            None => state_dir.join("run"),
        },
    };
    let retention = super::prune::retention(args.keep_days, args.keep_runs, plan.history.as_ref());
    let sources = source_options(global, env);
    let (zone, _) = default_zone(env);
    let filter = sources.clone();
    let reload = ReloadOptions {
        watch: sources.watch_paths(),
        may_be_source: Box::new(move |path| filter.may_be_source(path)),
        zone,
        started_with: (files, diagnostics),
        read: Box::new(move || source::read_files(&sources)),
        strict: args.strict,
    };
    let options = DaemonOptions {
        plan,
        reload: Some(reload),
        retention,
        http: args
            .http
            .map(|addr| crate::http::HttpOptions::new(addr, args.http_show_commands)),
        max_catch_up: args.max_catch_up,
        reap: args.reap || std::process::id() == 1,
        reboot_marker_dir,
        location: super::location(global, env)?,
        host: super::host_id(global),
        state_dir,
        base_env: std::env::vars().collect(),
        shutdown_grace: args.shutdown_grace,
        tail_bytes: args.output_tail,
        json_output: global.log_format == LogFormat::Json,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        };
        // The loop runs as a task on a runtime thread, not on this one: the
        // thread that the timer (or a signal) wakes then runs the loop
        // itself, instead of waking this one for it (issue 6: an idle daemon
        // wakes once a minute).
        tokio::spawn(daemon::run(options, Arc::new(SystemClock), shutdown))
            .await
            .context("the scheduler loop panicked")?
    })?;
    Ok(EXIT_OK)
}
