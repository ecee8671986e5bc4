//! The scheduler loop's sleep, made to cost one wake-up when it ends.
//!
//! tokio's timer wheel files a sleep of a minute in a slot four seconds wide
//! and moves it down a level at a time as it comes near: the runtime thread
//! that drives the timers wakes three times for one 60 s sleep (issue 6:
//! idle wake-ups). On Linux the loop sleeps on a timerfd that tokio's I/O
//! driver watches instead: the kernel wakes that thread once, when the timer
//! expires, to the nanosecond. Elsewhere, or if no timerfd can be made, it is
//! tokio's own sleep.
//!
//! Owns the timer only; must not know jobs, the store or the wall clock.

use std::time::Duration;

/// One re-armable sleep; each [`LoopTimer::sleep`] replaces the previous one.
pub struct LoopTimer {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: Option<tokio::io::unix::AsyncFd<linux::Fd>>,
}

impl LoopTimer {
    /// Must be called inside the runtime (the timerfd registers with its driver).
    pub fn new() -> LoopTimer {
        LoopTimer {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            fd: linux::new()
                .inspect_err(|e| {
                    tracing::debug!(error = %e, "no timerfd; the loop sleeps on tokio's timer");
                })
                .ok(),
        }
    }

    /// Sleeps for `duration`. Cancel-safe: dropping the future leaves nothing
    /// behind that the next call does not replace.
    pub async fn sleep(&mut self, duration: Duration) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(fd) = &self.fd {
            match linux::sleep(fd, duration).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "the loop's timerfd failed; sleeping on tokio's timer");
                    self.fd = None;
                }
            }
        }
        tokio::time::sleep(duration).await;
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// `AsyncFd` wants `AsRawFd`, which nix's `TimerFd` does not implement.
    pub(super) struct Fd(TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub(super) fn new() -> std::io::Result<AsyncFd<Fd>> {
        // Monotonic, like tokio's timer: the loop notices clock steps and
        // suspends itself, by comparing the wall clock after each wake-up.
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `Fd` owns the timerfd and always returns that same
        // descriptor; it stays open until the `AsyncFd` holding it is dropped.
        unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    }

    pub(super) async fn sleep(fd: &AsyncFd<Fd>, duration: Duration) -> std::io::Result<()> {
        if duration.is_zero() {
            // A zero one-shot would disarm the timer rather than fire it.
            tokio::task::yield_now().await;
            return Ok(());
        }
        // Replaces any earlier expiry and resets the expiry count, so an
        // expiry of a sleep that was cancelled is never read as this one's.
        fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(duration)),
            TimerSetTimeFlags::empty(),
        )?;
        loop {
            let mut ready = fd.readable().await?;
            // Readiness may be left over from a cancelled sleep: only a read
            // of the expiry count says this timer expired (EAGAIN: not yet).
            match ready.try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}
