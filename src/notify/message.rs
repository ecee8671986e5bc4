//! What one run event means for a job's `notify:`: which webhook calls and
//! pings it gives ([`deliveries`]), and their bodies. No I/O: whether the
//! job's previous run failed (for `recovery`) is asked through a closure,
//! and only for a success that could be one.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::fire::RunEvent;
use crate::job::{NotifyOn, NotifySpec, RunId, RunStatus};

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Delivery {
    pub(super) job: String,
    /// What it tells (`failure`, `start`; `ping` for the ping URL's kinds:
    /// `ping`, `ping/start`, `ping/fail`), for logs.
    pub(super) what: String,
    pub(super) request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    /// POST of a JSON body.
    Webhook { url: String, body: String },
    /// GET.
    Ping { url: String },
}

impl Request {
    pub(super) fn url(&self) -> &str {
        match self {
            Request::Webhook { url, .. } | Request::Ping { url } => url,
        }
    }
}

/// The JSON a webhook is POSTed (README, `notify:`).
#[derive(Debug, Serialize)]
struct Body<'a> {
    event: &'static str,
    job: &'a str,
    run_id: Option<i64>,
    status: &'static str,
    exit_code: Option<i32>,
    signal: Option<i32>,
    duration_ms: Option<u64>,
    host: &'a str,
    tick: Option<String>,
    error: Option<&'a str>,
    trigger: &'static str,
    attempt: Option<u32>,
}

/// What a ping URL is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ping {
    Start,
    Success,
    Fail,
}

/// The deliveries `event` gives for a job with `spec`, whose runs are tried
/// `attempts` times in all (`retry.attempts`, 1 without `retry:`): a failure
/// that will be retried tells nothing yet, its last attempt does.
/// `previous_failed` says whether the job's previous run before `run_id`
/// failed; it is called only for a success the webhook could call a
/// `recovery`.
pub(super) fn deliveries(
    event: &RunEvent,
    spec: &NotifySpec,
    attempts: u32,
    host: &str,
    previous_failed: impl FnOnce(RunId) -> bool,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    let (on, ping) = match event {
        RunEvent::Started { .. } => (Some(NotifyOn::Start), Some(Ping::Start)),
        RunEvent::Finished {
            run_id,
            status,
            attempt,
            replaced,
            ..
        } => match status {
            RunStatus::Succeeded => {
                let recovered = spec.wants(NotifyOn::Recovery) && previous_failed(*run_id);
                let on = if recovered {
                    Some(NotifyOn::Recovery)
                } else {
                    Some(NotifyOn::Success)
                };
                (on, Some(Ping::Success))
            }
            RunStatus::Failed | RunStatus::TimedOut | RunStatus::Killed
                if !*replaced && *attempt >= attempts =>
            {
                (Some(NotifyOn::Failure), Some(Ping::Fail))
            }
            RunStatus::Skipped | RunStatus::Missed => (Some(NotifyOn::Missed), None),
            // A failure that will be retried, a run that `replace` stopped or
            // a shutdown interrupted: nothing the job did wrong (yet).
            _ => (None, None),
        },
        RunEvent::Skipped { .. } | RunEvent::Missed { .. } => (Some(NotifyOn::Missed), None),
    };
    if let (Some(on), Some(url)) = (on.filter(|on| spec.wants(*on)), &spec.webhook) {
        out.push(Delivery {
            job: event.job().to_string(),
            what: on.as_str().to_string(),
            request: Request::Webhook {
                url: url.clone(),
                body: body(event, on, host),
            },
        });
    }
    if let (Some(ping), Some(url)) = (ping, &spec.ping) {
        let (suffix, what) = match ping {
            Ping::Start => ("/start", "ping/start"),
            Ping::Success => ("", "ping"),
            Ping::Fail => ("/fail", "ping/fail"),
        };
        out.push(Delivery {
            job: event.job().to_string(),
            what: what.to_string(),
            request: Request::Ping {
                url: ping_url(url, suffix),
            },
        });
    }
    out
}

/// `URL` with `suffix` added to its path (before a query string), as
/// healthchecks.io's `/start` and `/fail` are.
fn ping_url(url: &str, suffix: &str) -> String {
    let (path, query) = match url.find(['?', '#']) {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    if suffix.is_empty() {
        return url.to_string();
    }
    format!("{}{suffix}{query}", path.trim_end_matches('/'))
}

fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The webhook's JSON body for `event`, told as `on`.
fn body(event: &RunEvent, on: NotifyOn, host: &str) -> String {
    let body = match event {
        RunEvent::Started {
            job,
            run_id,
            trigger,
            tick,
            ..
        } => Body {
            event: on.as_str(),
            job,
            run_id: Some(run_id.0),
            status: RunStatus::Running.as_str(),
            exit_code: None,
            signal: None,
            duration_ms: None,
            host,
            tick: time(*tick),
            error: None,
            trigger: trigger.as_str(),
            attempt: None,
        },
        RunEvent::Finished {
            job,
            run_id,
            trigger,
            tick,
            attempt,
            status,
            exit_code,
            signal,
            duration,
            error,
            ..
        } => Body {
            event: on.as_str(),
            job,
            run_id: Some(run_id.0),
            status: status.as_str(),
            exit_code: *exit_code,
            signal: *signal,
            duration_ms: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            host,
            tick: time(*tick),
            error: error.as_deref(),
            trigger: trigger.as_str(),
            attempt: Some(*attempt),
        },
        RunEvent::Skipped {
            job,
            run_id,
            trigger,
            tick,
            reason,
            ..
        } => Body {
            event: on.as_str(),
            job,
            run_id: Some(run_id.0),
            status: RunStatus::Skipped.as_str(),
            exit_code: None,
            signal: None,
            duration_ms: None,
            host,
            tick: time(*tick),
            error: Some(reason),
            trigger: trigger.as_str(),
            attempt: None,
        },
        RunEvent::Missed {
            job,
            trigger,
            tick,
            reason,
            ..
        } => Body {
            event: on.as_str(),
            job,
            run_id: None,
            status: RunStatus::Missed.as_str(),
            exit_code: None,
            signal: None,
            duration_ms: None,
            host,
            tick: time(*tick),
            error: Some(reason),
            trigger: trigger.as_str(),
            attempt: None,
        },
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests;
