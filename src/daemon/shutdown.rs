//! One awaitable shutdown, shared by the daemon's components: `daemon::run`
//! raises it once the scheduler loop ended (SIGTERM, SIGINT) and the running
//! jobs are stopped and recorded, and every component that must end with the
//! daemon (the PID-1 reaper) awaits it instead of being aborted or asking
//! "am I stopping?" on a timer. Cloning [`Stopping`] is cheap; it costs no
//! wake-up until the shutdown is raised.
//!
//! Not used by `fire` yet: its own waits (a retry's backoff, a watch run
//! waiting for the job's lock, readiness) still look at
//! `ActiveRuns::is_stopping` every 100-200 ms.
//!
//! Knows tokio's `watch` channel and nothing else.

use tokio::sync::watch;

/// Raises the shutdown (`daemon::run` holds it).
pub(super) struct Stop(watch::Sender<bool>);

/// Waits for the shutdown, or asks whether it was raised.
#[derive(Clone)]
pub(super) struct Stopping(watch::Receiver<bool>);

/// A shutdown not raised yet, and the handle that raises it.
pub(super) fn channel() -> (Stop, Stopping) {
    let (tx, rx) = watch::channel(false);
    (Stop(tx), Stopping(rx))
}

impl Stop {
    /// Raises the shutdown: every [`Stopping::requested`] completes.
    pub(super) fn raise(&self) {
        self.0.send_replace(true);
    }
}

impl Stopping {
    /// Whether the shutdown was raised.
    #[cfg(test)]
    pub(super) fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the shutdown is raised (at once if it was), or when
    /// the [`Stop`] is dropped without raising it (the loop is gone).
    pub(super) async fn requested(&mut self) {
        let _ = self.0.wait_for(|raised| *raised).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_awaiting_the_shutdown_wakes_when_it_is_raised() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (stop, stopping) = channel();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let mut s = stopping.clone();
                    tokio::spawn(async move { s.requested().await })
                })
                .collect();
            tokio::task::yield_now().await;
            assert!(!stopping.is_raised());
            assert!(waiters.iter().all(|w| !w.is_finished()));
            stop.raise();
            for w in waiters {
                tokio::time::timeout(std::time::Duration::from_secs(1), w)
                    .await
                    .expect("woken")
                    .unwrap();
            }
            // Raised before anyone asks: completes at once.
            let mut late = stopping.clone();
            assert!(late.is_raised());
            late.requested().await;
        });
    }
}
