//! The notifier's thread: turns queued run events into HTTP requests and
//! makes them, each with a timeout, retried with a doubling backoff a bounded
//! number of times; a delivery that still fails is logged once and counted.
//!
//! One thread, blocked on its queue while there is nothing to do (no
//! wake-ups while idle); while a delivery waits for its retry, the others go
//! on. Nothing here is on the firing path: the firings only put events on
//! the queue (`Notifier::subscriber`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::message::{deliveries, Delivery, Request};
use super::{history, NotifyCounters};
use crate::fire::RunEvent;
use crate::job::NotifySpec;
use crate::store::Store;

/// What the firings and the daemon send the thread.
pub(super) enum Message {
    /// A run event of a job with `notify:`, with the job's `notify:` and how
    /// many attempts its runs get (`retry.attempts`, else 1).
    Event {
        event: RunEvent,
        spec: Arc<NotifySpec>,
        attempts: u32,
    },
    /// Deliver what is queued (each pending retry once more, at once), then
    /// say so on the sender and end.
    Stop(Sender<()>),
}

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// For one request, from connecting to the end of the response's headers.
    pub(super) timeout: Duration,
    /// Tries in all, the first included.
    pub(super) attempts: u32,
    /// The wait before the second try; it doubles for each further one.
    pub(super) backoff: Duration,
}

/// 3 tries over about 3 s (1 s, then 2 s between them), 10 s each at most.
pub(super) const POLICY: Policy = Policy {
    timeout: Duration::from_secs(10),
    attempts: 3,
    backoff: Duration::from_secs(1),
};

/// A delivery waiting for its (next) try.
struct Pending {
    due: Instant,
    /// Ties broken by arrival: deliveries due together go in order.
    seq: u64,
    attempt: u32,
    delivery: Delivery,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

pub(super) struct Worker {
    pub(super) store: Arc<Store>,
    pub(super) host: String,
    pub(super) counters: Arc<NotifyCounters>,
    pub(super) policy: Policy,
    /// Made at the first delivery: a daemon that notifies nobody never
    /// builds a TLS configuration.
    agent: Option<ureq::Agent>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl Worker {
    pub(super) fn new(
        store: Arc<Store>,
        host: String,
        counters: Arc<NotifyCounters>,
        policy: Policy,
    ) -> Worker {
        Worker {
            store,
            host,
            counters,
            policy,
            agent: None,
            pending: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Runs until [`Message::Stop`] (or every sender is gone).
    pub(super) fn run(mut self, queue: Receiver<Message>) {
        let mut stopping: Option<Sender<()>> = None;
        loop {
            let message = if stopping.is_some() {
                queue.try_recv().ok()
            } else {
                match self.pending.peek() {
                    // Nothing to retry: sleep until something comes.
                    None => match queue.recv() {
                        Ok(m) => Some(m),
                        Err(_) => return,
                    },
                    Some(Reverse(next)) => {
                        let wait = next.due.saturating_duration_since(Instant::now());
                        match queue.recv_timeout(wait) {
                            Ok(m) => Some(m),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                }
            };
            let idle = message.is_none();
            match message {
                Some(Message::Event {
                    event,
                    spec,
                    attempts,
                }) => self.queue(&event, &spec, attempts),
                Some(Message::Stop(done)) => stopping = Some(done),
                None => {}
            }
            self.deliver_due(stopping.is_some());
            if let Some(done) = &stopping {
                if idle && self.pending.is_empty() {
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Queues the deliveries `event` gives, due now.
    fn queue(&mut self, event: &RunEvent, spec: &NotifySpec, attempts: u32) {
        let store = &self.store;
        let job = event.job();
        let found = deliveries(event, spec, attempts, &self.host, |run_id| {
            history::previous_failed(store, job, run_id)
        });
        let now = Instant::now();
        for delivery in found {
            self.push(now, 1, delivery);
        }
    }

    fn push(&mut self, due: Instant, attempt: u32, delivery: Delivery) {
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            due,
            seq: self.seq,
            attempt,
            delivery,
        }));
    }

    /// Makes every delivery that is due (all of them, for the last time,
    /// when `last` is set: jobrun is stopping).
    fn deliver_due(&mut self, last: bool) {
        while let Some(Reverse(next)) = self.pending.peek() {
            if !last && next.due > Instant::now() {
                return;
            }
            let Some(Reverse(p)) = self.pending.pop() else {
                return;
            };
            match self.send(&p.delivery.request) {
                Ok(()) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    debug!(job = %p.delivery.job, what = %p.delivery.what, attempt = p.attempt, "notification delivered");
                }
                Err(error) if !last && p.attempt < self.policy.attempts => {
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(self.policy.backoff, p.attempt);
                    debug!(
                        job = %p.delivery.job, what = %p.delivery.what, attempt = p.attempt,
                        %error, retry_in = %humantime::format_duration(wait),
                        "notification not delivered; trying again"
                    );
                    self.push(Instant::now() + wait, p.attempt + 1, p.delivery);
                }
                Err(error) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    // The URL's scheme and host only: its path or query
                    // often holds a token.
                    warn!(
                        job = %p.delivery.job, what = %p.delivery.what,
                        to = %origin(p.delivery.request.url()), attempts = p.attempt,
                        %error, "notification not delivered; giving up"
                    );
                }
            }
        }
    }

    /// One try of `request`: `Err` for no answer in time or an answer
    /// other than 2xx.
    fn send(&mut self, request: &Request) -> Result<(), String> {
        let timeout = self.policy.timeout;
        let agent = self.agent.get_or_insert_with(|| agent(timeout));
        let answer = match request {
            Request::Webhook { url, body } => agent
                .post(url)
                .content_type("application/json")
                .send(body.as_str()),
            Request::Ping { url } => agent.get(url).call(),
        };
        match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("answered {}", response.status())),
            Err(ureq::Error::StatusCode(code)) => Err(format!("answered {code}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The wait after try `attempt` (1 for the first): `first`, doubled for
/// each try after it.
fn backoff(first: Duration, attempt: u32) -> Duration {
    first.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .user_agent(concat!("jobrun/", env!("CARGO_PKG_VERSION")))
        // A redirect is an answer, not a delivery: it is not followed (a
        // POST would be replayed as a GET elsewhere).
        .max_redirects(0)
        .build()
        .into()
}

/// `https://host:port` of a URL, for logs.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let start_host = url[after_scheme..end].rfind('@').map_or(0, |i| i + 1);
    if start_host == 0 {
        &url[..end]
    } else {
        // Credentials are left out too: the host alone after them.
        &url[after_scheme + start_host..end]
    }
}

#[cfg(test)]
mod tests;
