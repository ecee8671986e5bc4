//! How many descriptors the runs going at once may hold, and the warnings
//! they share.
//!
//! Each run costs jobrun descriptors of its own from its lock to its record:
//! up to [`STARTING`] while it starts (the lock file, three pipes of two ends,
//! the pidfd, std's exec-error pipe on the fork path) and [`RUNNING`] once it
//! runs (the lock, the parent's ends of the pipes, the pidfd). Without a
//! bound, a tick of 200 jobs under a 64-descriptor limit failed most of them
//! with EMFILE and recorded nothing (issue 11). Here a run takes a [`Slot`]
//! of descriptors before its lock and gives back the difference once its
//! command runs; the pool is what is left to jobrun after start, so under a
//! low limit runs queue for a slot instead of failing. When the runs going
//! at once outgrow jobrun's soft limit, it is raised to the hard one (see
//! `runner::descriptors` for why only then). At most [`MAX_WAITING`] runs
//! wait: beyond that (jobs that outlast their ticks under a low limit) a
//! tick is recorded missed at once rather than queued without bound.
//!
//! Knows the runner's descriptor limits and a semaphore; nothing of jobs or
//! the store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::log_limit::LogLimiter;
use crate::runner::descriptors;

/// Descriptors a run may hold in jobrun while it starts.
pub const STARTING: u32 = 10;
/// Descriptors a run holds in jobrun once its command runs.
pub const RUNNING: u32 = 5;
/// Descriptors kept for everything else (SQLite's journal, file watches,
/// signals, HTTP clients).
pub const RESERVE: u64 = 16;
/// Runs waiting for descriptors at most; more are recorded missed.
pub const MAX_WAITING: usize = 4096;
/// The largest pool, whatever the limit: a semaphore's own bound is higher,
/// and no machine runs 100,000 jobs at once.
const MAX_POOL: u64 = 1 << 20;

/// The descriptor pool and the firing path's log limiter of one process.
pub struct Limits {
    pool: Arc<Semaphore>,
    size: usize,
    /// Descriptors of the pool that fit the soft limit jobrun started with.
    fits_soft: usize,
    raised: AtomicBool,
    waiting: AtomicUsize,
    max_waiting: usize,
    pub log: LogLimiter,
}

/// One run's share of the pool, given back when dropped.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// The command runs: the descriptors only needed to start it go back.
    pub(super) fn started(&mut self) {
        if let Some(permit) = &mut self.permit {
            let spare = permit.num_permits().saturating_sub(RUNNING as usize);
            drop(permit.split(spare));
        }
    }
}

impl Limits {
    /// Sized from this process's descriptor limits and what it has open now
    /// (call it once the store and the runtime are up).
    pub fn for_this_process() -> Limits {
        let (soft, hard) = match descriptors::limits() {
            Ok(limits) => limits,
            Err(e) => {
                warn!(error = %e, "reading the open-file limit; assuming 1024");
                (1024, 1024)
            }
        };
        let open = descriptors::open_count().unwrap_or(RESERVE);
        let limits = Limits::sized(soft, hard, open);
        let left = hard.saturating_sub(open);
        if left < u64::from(STARTING) + RESERVE {
            warn!(
                limit = hard,
                open,
                "the open-file limit leaves too few descriptors to start jobs reliably; ticks that cannot start are recorded missed"
            );
        }
        tracing::debug!(soft, hard, open, pool = limits.size, "descriptors for runs");
        limits
    }

    /// A pool for `soft`/`hard` descriptor limits with `open` already used.
    pub fn sized(soft: u64, hard: u64, open: u64) -> Limits {
        let left = |limit: u64| {
            let left = limit
                .min(MAX_POOL)
                .saturating_sub(open)
                .saturating_sub(RESERVE)
                .max(u64::from(STARTING));
            usize::try_from(left).unwrap_or(usize::MAX)
        };
        let size = left(hard.max(soft));
        let fits_soft = left(soft);
        Limits {
            pool: Arc::new(Semaphore::new(size)),
            size,
            fits_soft,
            raised: AtomicBool::new(fits_soft >= size),
            waiting: AtomicUsize::new(0),
            max_waiting: MAX_WAITING,
            log: LogLimiter::default(),
        }
    }

    /// How many runs may start at once, and how many may run at once.
    pub fn capacity(&self) -> (usize, usize) {
        (self.size / STARTING as usize, self.size / RUNNING as usize)
    }

    /// Waits for the descriptors of one starting run; `Err` with how many
    /// wait already when that is [`MAX_WAITING`].
    pub(super) async fn slot(&self) -> Result<Slot, usize> {
        let permit = match Arc::clone(&self.pool).try_acquire_many_owned(STARTING) {
            Ok(permit) => Some(permit),
            Err(_) => {
                let waiting = Waiting::enter(&self.waiting);
                if waiting.count > self.max_waiting {
                    return Err(self.max_waiting);
                }
                // The semaphore is never closed, so this only waits.
                Arc::clone(&self.pool)
                    .acquire_many_owned(STARTING)
                    .await
                    .ok()
            }
        };
        let in_use = self.size - self.pool.available_permits();
        if in_use > self.fits_soft && !self.raised.swap(true, Ordering::Relaxed) {
            match descriptors::raise() {
                Ok(limit) => info!(
                    limit,
                    "raised jobrun's open-file limit for the runs going at once (jobs keep the original)"
                ),
                Err(e) => warn!(error = %e, "raising the open-file limit"),
            }
        }
        Ok(Slot { permit })
    }
}

/// One run counted as waiting while it lives (a cancelled wait included).
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    /// The waiting runs with this one.
    count: usize,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        Waiting { counter, count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_descriptors_left() {
        // 64 descriptors, 12 open: 36 left, 3 runs starting or 7 running.
        let l = Limits::sized(64, 64, 12);
        assert_eq!(l.capacity(), (3, 7));
        assert!(l.raised.load(Ordering::Relaxed), "nothing to raise");
        // Nothing left still lets one run through at a time.
        assert_eq!(Limits::sized(16, 16, 12).capacity(), (1, 2));
        // systemd's 1024:524288: the pool is the hard limit's, and jobrun
        // raises its own once the runs need more than 1024.
        let l = Limits::sized(1024, 524_288, 12);
        assert_eq!(l.fits_soft, 1024 - 12 - 16);
        assert_eq!(l.size, 524_288 - 12 - 16);
        assert_eq!(Limits::sized(1024, u64::MAX, 12).size as u64, MAX_POOL - 28);
    }

    #[tokio::test]
    async fn a_running_run_gives_back_what_only_its_start_needed() {
        let l = Limits::sized(64, 64, 12);
        let mut slots = Vec::new();
        for _ in 0..3 {
            slots.push(l.slot().await.unwrap());
        }
        assert_eq!(l.pool.available_permits(), 6, "a fourth start waits");
        for slot in &mut slots {
            slot.started();
        }
        assert_eq!(l.pool.available_permits(), 21);
        drop(slots);
        assert_eq!(l.pool.available_permits(), 36);
    }

    #[tokio::test]
    async fn runs_beyond_the_waiting_bound_are_refused_at_once() {
        let mut l = Limits::sized(64, 64, 12);
        l.max_waiting = 2;
        let l = Arc::new(l);
        let held: Vec<Slot> = vec![
            l.slot().await.unwrap(),
            l.slot().await.unwrap(),
            l.slot().await.unwrap(),
        ];
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let l = Arc::clone(&l);
                tokio::spawn(async move { l.slot().await.is_ok() })
            })
            .collect();
        while l.waiting.load(Ordering::Relaxed) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(l.slot().await.err(), Some(2), "a third waiter is refused");
        drop(held);
        for waiter in waiters {
            assert!(waiter.await.unwrap());
        }
        assert_eq!(l.waiting.load(Ordering::Relaxed), 0);
    }
}
