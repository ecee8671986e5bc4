//! How many runs may hold descriptors at once, and the warnings they share.
//!
//! Each run costs jobrun descriptors of its own from its lock to its record
//! (the lock file, the output pipes, a pidfd: [`PER_RUN`] at the most, while
//! it starts). Without a bound, a tick of 200 jobs under a 64-descriptor
//! limit failed most of them with EMFILE and recorded nothing (issue 11).
//! Here a run takes a slot before its lock; the slots are sized from the
//! descriptors left to jobrun after start, so under a low limit runs queue
//! for a slot instead of failing. When the runs going at once outgrow
//! jobrun's soft limit, it is raised to the hard one (see
//! `runner::descriptors` for why only then).
//!
//! Knows the runner's descriptor limits and a semaphore; nothing of jobs or
//! the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::log_limit::LogLimiter;
use crate::runner::descriptors;

/// Descriptors one run may hold at once in jobrun (the lock, three pipes of
/// two ends while it starts, the pidfd, std's exec-error pipe on the fork
/// path).
pub const PER_RUN: u64 = 10;
/// Descriptors kept for everything else (SQLite's journal, file watches,
/// signals, HTTP clients).
pub const RESERVE: u64 = 16;
/// The most slots, whatever the limit: a semaphore's own bound, and far
/// beyond the runs one machine can start.
const MAX_SLOTS: u64 = 1 << 20;

/// The run slots and the firing path's log limiter of one jobrun process.
pub struct Limits {
    slots: Arc<Semaphore>,
    capacity: usize,
    /// Runs at once that fit the soft limit jobrun was started with.
    fits_soft: usize,
    raised: AtomicBool,
    pub log: LogLimiter,
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
        Limits::sized(soft, hard, open)
    }

    /// Slots for `soft`/`hard` descriptor limits with `open` already used.
    pub fn sized(soft: u64, hard: u64, open: u64) -> Limits {
        let runs = |limit: u64| {
            (limit.saturating_sub(open).saturating_sub(RESERVE) / PER_RUN).clamp(1, MAX_SLOTS)
        };
        let capacity = usize::try_from(runs(hard.max(soft))).unwrap_or(usize::MAX);
        let fits_soft = usize::try_from(runs(soft)).unwrap_or(usize::MAX);
        Limits {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            fits_soft,
            raised: AtomicBool::new(fits_soft >= capacity),
            log: LogLimiter::default(),
        }
    }

    /// How many runs may hold descriptors at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits for a slot for one run; it is given back when dropped.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed, so this only waits.
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        let in_use = self.capacity - self.slots.available_permits();
        if in_use > self.fits_soft && !self.raised.swap(true, Ordering::Relaxed) {
            match descriptors::raise() {
                Ok(limit) => info!(
                    limit,
                    runs = in_use,
                    "raised jobrun's open-file limit for the runs going at once (jobs keep the original)"
                ),
                Err(e) => warn!(error = %e, "raising the open-file limit"),
            }
        }
        Some(permit)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_this_process()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_descriptors_left() {
        // 64 descriptors, 12 open: (64 - 12 - 16) / 10 = 3 runs at once.
        let l = Limits::sized(64, 64, 12);
        assert_eq!((l.capacity(), l.fits_soft), (3, 3));
        // Nothing left still lets one run through at a time.
        assert_eq!(Limits::sized(16, 16, 12).capacity(), 1);
        // systemd's 1024:524288: sized from the hard limit, raised past 99.
        let l = Limits::sized(1024, 524_288, 12);
        assert_eq!((l.capacity(), l.fits_soft), (52_426, 99));
        assert_eq!(
            Limits::sized(1024, u64::MAX, 12).capacity(),
            usize::try_from(MAX_SLOTS).unwrap()
        );
    }
}
