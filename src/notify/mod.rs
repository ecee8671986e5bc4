//! Notifications (YAML `notify:`): a job's run events told to a webhook
//! (POSTed JSON) and to a healthchecks-style ping URL, by the daemon.
//!
//! [`Notifier`] subscribes to the firings' run events (`fire::RunEvents`)
//! and puts each event of a job with `notify:` on a bounded queue, and
//! nothing more: a firing never waits for a notification, and a full queue
//! drops the event (counted) rather than hold a run up. Its thread
//! (`deliver`; started at the first event to tell, so a daemon that
//! notifies nobody has none) decides what each event means (`message`; a `recovery` is
//! read from the store's history, `history`) and makes the requests, with a
//! timeout and bounded retries. [`NotifyCounters`] count the outcomes, for
//! the daemon's metrics.
//!
//! Knows the plan only to find a job's `notify:` and `retry:` by name; must
//! not know the scheduler, the loop or how runs are executed.

mod deliver;
mod history;
mod message;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tracing::warn;

use crate::fire::events::Subscriber;
use crate::fire::RunEvent;
use crate::plan::Plan;
use crate::store::Store;
use deliver::{Message, Policy, Worker};

/// How many events may wait for the notifier's thread; past it, events are
/// dropped and counted (a receiver that hangs for its whole timeout on
/// every try must not make memory grow with the runs).
const QUEUE: usize = 1024;

/// What became of notifications, since the daemon started: the values of
/// `jobrun_notifications_total{result}`.
#[derive(Debug, Default)]
pub struct NotifyCounters {
    /// Requests answered 2xx.
    pub sent: AtomicU64,
    /// Requests that failed every try (logged once each).
    pub failed: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Tries that failed and were tried again (not an outcome: a retried
    /// delivery is later `sent` or `failed`).
    pub retried: AtomicU64,
}

impl NotifyCounters {
    /// `(result, count)` for each final result: `sent`, `failed`, `dropped`.
    pub fn results(&self) -> [(&'static str, u64); 3] {
        [
            ("sent", self.sent.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
            ("dropped", self.dropped.load(Ordering::Relaxed)),
        ]
    }
}

/// The daemon's notifier: the queue to its thread, and the plan its
/// subscriber looks jobs up in.
pub struct Notifier {
    /// Made with the thread, at the first event to tell: a daemon whose
    /// jobs notify nobody has no notifier thread (nor its memory).
    queue: OnceLock<SyncSender<Message>>,
    /// The thread's work, until it is started.
    worker: Mutex<Option<Worker>>,
    plan: RwLock<Arc<Plan>>,
    counters: Arc<NotifyCounters>,
}

impl Notifier {
    /// The notifier for `plan`'s jobs; its thread starts with the first
    /// event to tell. `host` is this machine's name, sent in every webhook
    /// body; `store` answers whether a success is a recovery.
    pub fn new(store: Arc<Store>, host: String, plan: &Arc<Plan>) -> Arc<Notifier> {
        Notifier::with_policy(store, host, plan, deliver::POLICY)
    }

    fn with_policy(
        store: Arc<Store>,
        host: String,
        plan: &Arc<Plan>,
        policy: Policy,
    ) -> Arc<Notifier> {
        let counters = Arc::new(NotifyCounters::default());
        let worker = Worker::new(store, host, Arc::clone(&counters), policy);
        Arc::new(Notifier {
            queue: OnceLock::new(),
            worker: Mutex::new(Some(worker)),
            plan: RwLock::new(Arc::clone(plan)),
            counters,
        })
    }

    /// The queue to the thread, starting the thread the first time. `None`
    /// when the thread could not be started (said once).
    fn queue(&self) -> Option<&SyncSender<Message>> {
        if let Some(queue) = self.queue.get() {
            return Some(queue);
        }
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = self.queue.get() {
            return Some(queue);
        }
        let worker = worker.take()?;
        let (queue, events) = mpsc::sync_channel(QUEUE);
        match std::thread::Builder::new()
            .name("jobrun-notify".into())
            .spawn(move || worker.run(events))
        {
            Ok(_) => Some(self.queue.get_or_init(|| queue)),
            Err(e) => {
                warn!(error = %e, "cannot start the notifier thread; no notification is sent");
                None
            }
        }
    }

    /// The plan whose jobs' `notify:` apply from now on (after a reload).
    pub fn set_plan(&self, plan: &Arc<Plan>) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(plan);
    }

    /// The counters of what became of notifications.
    pub fn counters(&self) -> Arc<NotifyCounters> {
        Arc::clone(&self.counters)
    }

    /// The run-event subscriber that feeds this notifier: quick and never
    /// blocking (a look-up by name, then a `try_send`).
    pub fn subscriber(self: &Arc<Self>) -> Subscriber {
        let notifier = Arc::clone(self);
        Arc::new(move |event: &RunEvent| notifier.offer(event))
    }

    fn offer(&self, event: &RunEvent) {
        let found = {
            let plan = self.plan.read().unwrap_or_else(|p| p.into_inner());
            plan.get(event.job()).and_then(|job| {
                let attempts = job.spec.retry.as_ref().map_or(1, |r| r.attempts);
                job.spec.notify.clone().map(|spec| (spec, attempts))
            })
        };
        let Some((spec, attempts)) = found else {
            return;
        };
        let message = Message::Event {
            event: event.clone(),
            spec,
            attempts,
        };
        let Some(queue) = self.queue() else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // The first, then every 1,000th: one line, not one per run.
                if dropped % 1000 == 1 {
                    warn!(
                        job = event.job(),
                        dropped, "notifications are not keeping up; events dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivers what is queued and pending (each pending retry once more,
    /// at once) and stops the thread; blocks until it has. The daemon calls
    /// it at shutdown, bounded by a timeout of its own.
    pub fn drain(&self) {
        let Some(queue) = self.queue.get() else {
            return;
        };
        let (done, finished) = mpsc::channel();
        if queue.send(Message::Stop(done)).is_ok() {
            let _ = finished.recv();
        }
    }
}

#[cfg(test)]
mod tests;
