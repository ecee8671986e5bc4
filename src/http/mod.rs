//! `jobrun daemon --http ADDR`: a read-only HTTP listener, off by default.
//!
//! - `GET /metrics`: Prometheus metrics (`metrics`), kept in memory from the
//!   run-event hook of `fire`; a scrape reads no SQL.
//! - `GET /healthz`: the verdict of `jobrun status` (`crate::status`, the rule
//!   in `crate::health`), 200 when healthy, else 503, with a JSON body saying
//!   why; also 503 when the scheduler loop is stuck ([`Liveness`]).
//! - `GET /status`: the JSON of `jobrun status --json`.
//! - `GET /`: a status page, HTML with inline SVG (`page`).
//!
//! It serves no job output and no environment; commands only with
//! `--http-show-commands`. Binding to an address other than loopback logs a
//! warning naming the exposure. hyper's HTTP/1 server on the daemon's tokio
//! runtime: an accept that waits costs no wake-up, so an idle daemon with the
//! listener open still wakes once a minute. Requests that read the state do
//! so on a connection of their own, on a blocking thread, never on the
//! firing path's connection.
//!
//! Knows the plan, the store, the run events and the status; the daemon
//! starts it ([`start`]) and tells it of reloads and of the loop's passes.

mod metrics;
mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::fire::FireContext;
use crate::plan::Plan;
use crate::status::Report;
use crate::store::{Location, Store};

pub use metrics::{missed_reason, Metrics};

/// How late the scheduler loop may be back from a sleep before `/healthz`
/// calls it stuck. A loop sleeps at most a minute; a loaded machine wakes it
/// a little late, never this late.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command line says about the listener.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Show each job's command on the status page.
    pub show_commands: bool,
    /// See [`STUCK_AFTER`] (tests make it short).
    pub stuck_after: Duration,
    /// The loop's sign of life, which the daemon's loop moves.
    pub liveness: Arc<Liveness>,
    /// Where the listener was bound (the port the system chose for `:0`),
    /// once it is.
    pub bound: Arc<std::sync::OnceLock<SocketAddr>>,
}

impl HttpOptions {
    pub fn new(addr: SocketAddr, show_commands: bool) -> HttpOptions {
        HttpOptions {
            addr,
            show_commands,
            stuck_after: STUCK_AFTER,
            liveness: Arc::default(),
            bound: Arc::default(),
        }
    }
}

/// The scheduler loop's sign of life: before each sleep it says when it
/// will be back; a handler that finds that time long past knows the loop is
/// stuck (a blocked thread, a deadlock), which the heartbeat, written by the
/// same loop, would show only minutes later.
#[derive(Debug)]
pub struct Liveness {
    /// Milliseconds since the epoch, by the daemon's clock.
    back_by: AtomicI64,
    #[cfg(test)]
    held: std::sync::atomic::AtomicBool,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            // Until the listener starts (see `starting`), never stuck.
            back_by: AtomicI64::new(i64::MAX),
            #[cfg(test)]
            held: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Liveness {
    /// The daemon starts at `now`: its loop is due at its first pass within
    /// a minute, the longest it ever sleeps (start-up work comes first).
    pub fn starting(&self, now: DateTime<Utc>) {
        self.sleeps_until(now + chrono::Duration::seconds(60));
    }

    /// The loop sleeps until `deadline` (or less).
    pub fn sleeps_until(&self, deadline: DateTime<Utc>) {
        self.back_by
            .store(deadline.timestamp_millis(), Ordering::Relaxed);
    }

    /// Why the loop is stuck at `now`, if it is: it was due back more than
    /// `grace` ago.
    pub fn stuck(&self, now: DateTime<Utc>, grace: Duration) -> Option<String> {
        let back_by = self.back_by.load(Ordering::Relaxed);
        let late_ms = now.timestamp_millis().saturating_sub(back_by);
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        (late_ms > grace_ms).then(|| {
            format!(
                "the scheduler loop is stuck: it was due back {} ago",
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(late_ms / 1000).unwrap_or(0)
                ))
            )
        })
    }

    /// A test-only hold: while it is on, the loop waits at the top of its
    /// pass, as a stuck loop would (SIGSTOP would stop the whole process,
    /// the listener with it).
    #[cfg(test)]
    pub fn hold(&self, on: bool) {
        self.held.store(on, Ordering::SeqCst);
    }

    /// Waits while [`Liveness::hold`] is on (tests only).
    #[cfg(test)]
    pub async fn wait_while_held(&self) {
        while self.held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What the handlers see, shared with the daemon.
pub struct View {
    pub metrics: Metrics,
    /// The firing path's store: only its in-memory claim counts are read.
    fire_store: Arc<Store>,
    pub liveness: Arc<Liveness>,
    plan: RwLock<Arc<Plan>>,
    /// A connection of the listener's own, for the requests that read the state.
    store: Store,
    clock: Arc<dyn Clock>,
    /// This daemon's owner id: its own heartbeat row is alive.
    owner: String,
    options: HttpOptions,
}

impl View {
    /// A reload gave `plan`; `ok` when no source had an error.
    pub fn reloaded(&self, plan: &Arc<Plan>, ok: bool) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(plan);
        self.metrics.reloaded(ok, self.clock.now());
    }

    fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The running listener; dropping it stops accepting.
pub struct Server {
    pub view: Arc<View>,
    /// Where it listens (the port the system chose for `:0`).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `options.addr`, starts the metrics from the history of the state at
/// `location` and subscribes them to `ctx`'s run events, then
/// serves. Called before the first firing, so no run is counted twice or
/// missed. `sources_ok`: the daemon started with no source error.
pub async fn start(
    options: HttpOptions,
    ctx: &FireContext,
    plan: &Arc<Plan>,
    sources_ok: bool,
    location: &Location,
) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("--http {}: cannot listen there", options.addr))?;
    let addr = listener
        .local_addr()
        .context("--http: reading the bound address")?;
    let _ = options.bound.set(addr);
    // A connection of its own: a scrape or a page never waits behind the
    // firing path's writes.
    let store = Store::open_existing_at(location)
        .context("--http: opening the state")?
        .context("--http: the state was not created")?;
    let metrics = Metrics::default();
    metrics.seed(
        &store
            .run_totals()
            .context("--http: reading the history the metrics start from")?,
    );
    metrics.started_with(sources_ok, ctx.clock.now());
    options.liveness.starting(ctx.clock.now());
    let view = Arc::new(View {
        metrics,
        fire_store: Arc::clone(&ctx.store),
        liveness: Arc::clone(&options.liveness),
        plan: RwLock::new(Arc::clone(plan)),
        store,
        clock: Arc::clone(&ctx.clock),
        owner: ctx.owner.clone(),
        options,
    });
    let hook = Arc::clone(&view);
    ctx.events
        .subscribe(Arc::new(move |event| hook.metrics.observe(event)));
    if addr.ip().is_loopback() {
        info!(%addr, "HTTP listener: /metrics, /healthz, /status and the status page /");
    } else {
        warn!(
            %addr,
            show_commands = view.options.show_commands,
            "HTTP listener on a non-loopback address: anyone who can reach it reads every job's name, schedule, run history and errors{} (no authentication, no TLS); bind to 127.0.0.1 or put an authenticating proxy in front",
            if view.options.show_commands { " and commands" } else { "" }
        );
    }
    let task = tokio::spawn(accept(listener, Arc::clone(&view)));
    Ok(Server { view, addr, task })
}

/// Accepts connections until the server is dropped.
async fn accept(listener: tokio::net::TcpListener, view: Arc<View>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: a moment for runs to end.
                warn!(error = %e, "HTTP listener: accepting a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let view = Arc::clone(&view);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let view = Arc::clone(&view);
                async move { Ok::<_, Infallible>(handle(&view, &req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

async fn handle(view: &Arc<View>, req: &Request<Incoming>) -> Reply {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "read-only: GET or HEAD\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            {
                if let Some(counts) = view.fire_store.claim_counts() {
                    view.metrics.claims(counts);
                }
                view.metrics.render(&view.plan(), view.clock.now())
            },
        ),
        "/healthz" | "/status" | "/" => {
            let view = Arc::clone(view);
            match tokio::task::spawn_blocking(move || read_and_render(&view, &path)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    format!("reading the state: {e:#}\n"),
                ),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /, /metrics, /healthz or /status\n",
        ),
    }
}

/// The endpoints that read the state, on a blocking thread.
fn read_and_render(view: &View, path: &str) -> Result<Reply> {
    let now = view.clock.now();
    let report = Report::read(Some(&view.store), now, Some(&view.owner))?;
    let jobs = report.jobs();
    // This process is the daemon: alive unless its loop is stuck.
    let stuck = view.liveness.stuck(now, view.options.stuck_after);
    let mut verdict = report.verdict(&jobs, true);
    if let Some(why) = stuck {
        verdict.state = crate::health::State::Unhealthy;
        verdict.reasons.insert(0, format!("unhealthy: {why}"));
    }
    let code = if verdict.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(match path {
        "/healthz" => {
            let body = serde_json::json!({
                "healthy": verdict.healthy(),
                "state": verdict.state,
                "reasons": verdict.reasons,
            });
            reply(code, JSON, format!("{body}\n"))
        }
        "/status" => {
            let mut body = serde_json::to_string_pretty(&report.json(&verdict, &jobs))?;
            body.push('\n');
            reply(StatusCode::OK, JSON, body)
        }
        _ => {
            let plan = view.plan();
            let html = page::render(&page::Input {
                plan: &plan,
                store: &view.store,
                verdict: &verdict,
                now,
                show_commands: view.options.show_commands,
            })?;
            reply(StatusCode::OK, "text/html; charset=utf-8", html)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_is_stuck_only_when_long_past_its_deadline() {
        let t = |s: i64| DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap();
        let live = Liveness::default();
        assert_eq!(live.stuck(t(0), STUCK_AFTER), None, "not before the start");
        live.starting(t(0));
        assert_eq!(
            live.stuck(t(89), STUCK_AFTER),
            None,
            "start-up gets a minute"
        );
        assert!(
            live.stuck(t(91), STUCK_AFTER).is_some(),
            "a loop that never starts"
        );
        live.sleeps_until(t(60));
        assert_eq!(live.stuck(t(59), STUCK_AFTER), None);
        assert_eq!(
            live.stuck(t(90), STUCK_AFTER),
            None,
            "late within the grace"
        );
        let why = live.stuck(t(95), STUCK_AFTER).expect("stuck");
        assert_eq!(why, "the scheduler loop is stuck: it was due back 35s ago");
    }
}
