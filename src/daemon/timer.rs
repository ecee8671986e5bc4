//! The scheduler loop's sleep until a wall-clock deadline, made to cost one
//! wake-up when it ends and to end at once when the wall clock is stepped or
//! the machine resumes from suspend.
//!
//! tokio's timer wheel files a sleep of a minute in a slot four seconds wide
//! and moves it down a level at a time as it comes near: the runtime thread
//! that drives the timers wakes three times for one 60 s sleep (issue 6:
//! idle wake-ups). On Linux the loop sleeps on a timerfd that tokio's I/O
//! driver watches instead: the kernel wakes that thread once, when the timer
//! expires, to the nanosecond.
//!
//! With the system clock, the timerfd runs on `CLOCK_REALTIME` with an
//! absolute deadline and `TFD_TIMER_CANCEL_ON_SET`: the kernel wakes it when
//! the deadline passes by the wall clock (so right after a resume from a
//! suspend that slept through it) and when the clock is stepped (the read
//! fails with `ECANCELED`). A monotonic sleep stands still during suspend and
//! ignores steps, so the loop noticed a 145 s suspend 30 s late (issue 11).
//! With a hand-moved clock (tests), the deadline is a duration slept on
//! monotonic time, and the clock's own `moved` channel wakes the loop.
//! Elsewhere, or if no timerfd can be made, it is tokio's own sleep.
//!
//! Owns the timer only; must not know jobs or the store, and never reads the
//! wall clock: deadlines and "now" come in as values.

use chrono::{DateTime, Utc};

/// Why a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The deadline came.
    Deadline,
    /// The kernel says the wall clock was stepped (or the machine resumed)
    /// while sleeping: re-read it at once.
    ClockStepped,
}

/// One re-armable sleep; each [`LoopTimer::sleep_until`] replaces the previous one.
pub struct LoopTimer {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: Option<tokio::io::unix::AsyncFd<linux::Fd>>,
    /// Deadlines are instants of the system's `CLOCK_REALTIME`.
    realtime: bool,
}

impl LoopTimer {
    /// `realtime`: the loop's clock is the system's wall clock (see
    /// `Clock::is_system_realtime`). Must be called inside the runtime (the
    /// timerfd registers with its driver).
    pub fn new(realtime: bool) -> LoopTimer {
        LoopTimer {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            fd: linux::new(realtime)
                .inspect_err(|e| {
                    tracing::debug!(error = %e, "no timerfd; the loop sleeps on tokio's timer");
                })
                .ok(),
            realtime,
        }
    }

    /// Sleeps until `deadline` by the loop's clock, which reads `now`. Cancel-safe:
    /// dropping the future leaves nothing behind that the next call does not replace.
    pub async fn sleep_until(&mut self, now: DateTime<Utc>, deadline: DateTime<Utc>) -> Wake {
        let duration = (deadline - now).to_std().unwrap_or_default();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(fd) = &self.fd {
            let armed = if self.realtime {
                linux::sleep_until(fd, deadline).await
            } else {
                linux::sleep(fd, duration).await
            };
            match armed {
                Ok(wake) => return wake,
                Err(e) if self.realtime => {
                    // A kernel or sandbox without cancel-on-set realtime timers:
                    // a monotonic timerfd still costs one wake-up.
                    tracing::warn!(error = %e, "no wall-clock timer; sleeping on monotonic time (a suspend or clock step is noticed within a minute)");
                    self.realtime = false;
                    self.fd = linux::new(false).ok();
                    // Back to the loop at once, which re-reads the clock and
                    // sleeps again on the new timer.
                    return Wake::ClockStepped;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the loop's timerfd failed; sleeping on tokio's timer");
                    self.fd = None;
                }
            }
        }
        tokio::time::sleep(duration).await;
        Wake::Deadline
    }

    /// The timerfd's descriptor, to read its settings from `/proc` in tests.
    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map(|fd| fd.get_ref().as_raw_fd())
    }
}

/// What one read of the timerfd means: its expiry count (the deadline came),
/// `ECANCELED` (the realtime clock was stepped since it was armed: a wake-up
/// like the deadline's, which the loop takes as a clock change), `EAGAIN`
/// (not yet: the readiness was stale), or a failure.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn wake_of(read: nix::Result<usize>) -> std::io::Result<Wake> {
    match read {
        Ok(_) => Ok(Wake::Deadline),
        Err(nix::errno::Errno::ECANCELED) => Ok(Wake::ClockStepped),
        Err(nix::errno::Errno::EAGAIN) => Err(std::io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    use super::{wake_of, Wake};

    /// `AsyncFd` wants `AsRawFd`, which nix's `TimerFd` does not implement.
    pub(super) struct Fd(TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub(super) fn new(realtime: bool) -> std::io::Result<AsyncFd<Fd>> {
        let clock = if realtime {
            ClockId::CLOCK_REALTIME
        } else {
            ClockId::CLOCK_MONOTONIC
        };
        let fd = TimerFd::new(clock, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
        // SAFETY: `Fd` owns the timerfd and always returns that same
        // descriptor; it stays open until the `AsyncFd` holding it is dropped.
        unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    }

    /// Sleeps until the wall-clock instant `deadline` on a realtime timerfd.
    pub(super) async fn sleep_until(
        fd: &AsyncFd<Fd>,
        deadline: DateTime<Utc>,
    ) -> std::io::Result<Wake> {
        // An absolute expiry of zero would disarm the timer; nothing the loop
        // asks for is that early, but never let it sleep forever.
        let nanos = deadline.timestamp_nanos_opt().unwrap_or(i64::MAX).max(1);
        let at = TimeSpec::from_duration(Duration::from_nanos(nanos.unsigned_abs()));
        fd.get_ref().0.set(
            Expiration::OneShot(at),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
        )?;
        wait(fd).await
    }

    /// Sleeps for `duration` on a monotonic timerfd.
    pub(super) async fn sleep(fd: &AsyncFd<Fd>, duration: Duration) -> std::io::Result<Wake> {
        if duration.is_zero() {
            // A zero one-shot would disarm the timer rather than fire it.
            tokio::task::yield_now().await;
            return Ok(Wake::Deadline);
        }
        fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(duration)),
            TimerSetTimeFlags::empty(),
        )?;
        wait(fd).await
    }

    /// Waits for the armed timer. Arming replaced any earlier expiry and reset
    /// the expiry count, so an expiry of a sleep that was cancelled is never
    /// read as this one's.
    async fn wait(fd: &AsyncFd<Fd>) -> std::io::Result<Wake> {
        loop {
            let mut ready = fd.readable().await?;
            // Readiness may be left over from a cancelled sleep: only a read
            // says whether this timer expired (EAGAIN: not yet).
            let read = ready.try_io(|fd| {
                let mut count = [0u8; 8];
                loop {
                    match nix::unistd::read(fd.get_ref().0.as_fd(), &mut count) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => return wake_of(other),
                    }
                }
            });
            match read {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    #[test]
    fn a_cancelled_read_is_a_clock_step_and_a_stale_readiness_waits_on() {
        use nix::errno::Errno;
        assert_eq!(wake_of(Ok(8)).unwrap(), Wake::Deadline);
        assert_eq!(wake_of(Err(Errno::ECANCELED)).unwrap(), Wake::ClockStepped);
        assert_eq!(
            wake_of(Err(Errno::EAGAIN)).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        assert!(wake_of(Err(Errno::EBADF)).is_err());
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    }

    /// The timer's settings as the kernel reports them.
    fn fdinfo(timer: &LoopTimer) -> String {
        let fd = timer.raw_fd().expect("a timerfd");
        std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("the timer's fdinfo")
    }

    #[test]
    fn the_loop_sleeps_until_a_wall_clock_deadline_that_clock_steps_cancel() {
        runtime().block_on(async {
            let mut timer = LoopTimer::new(true);
            let now = SystemClock.now();
            // Armed for an hour ahead; the kernel's view of it, while it waits.
            let deadline = now + chrono::Duration::hours(1);
            tokio::select! {
                _ = timer.sleep_until(now, deadline) => panic!("woke an hour early"),
                () = tokio::task::yield_now() => {}
            }
            let info = fdinfo(&timer);
            // CLOCK_REALTIME is clock 0; flags 3 are TFD_TIMER_ABSTIME (1) and
            // TFD_TIMER_CANCEL_ON_SET (2): woken on steps and after resume.
            assert!(info.contains("clockid: 0\n"), "{info}");
            assert!(info.contains("settime flags: 03\n"), "{info}");

            // A near deadline wakes it, not before the wall clock reaches it.
            let now = SystemClock.now();
            let deadline = now + chrono::Duration::milliseconds(30);
            assert_eq!(timer.sleep_until(now, deadline).await, Wake::Deadline);
            assert!(SystemClock.now() >= deadline);
            // A deadline already past wakes it at once.
            let now = SystemClock.now();
            let past = now - chrono::Duration::seconds(5);
            assert_eq!(timer.sleep_until(now, past).await, Wake::Deadline);
        });
    }

    #[test]
    fn a_hand_moved_clock_sleeps_on_monotonic_time() {
        runtime().block_on(async {
            let mut timer = LoopTimer::new(false);
            let now: DateTime<Utc> = "2026-05-01T12:00:00Z".parse().unwrap();
            tokio::select! {
                _ = timer.sleep_until(now, now + chrono::Duration::hours(1)) => panic!("woke early"),
                () = tokio::task::yield_now() => {}
            }
            let info = fdinfo(&timer);
            // CLOCK_MONOTONIC is clock 1; a relative expiry.
            assert!(info.contains("clockid: 1\n"), "{info}");
            assert!(info.contains("settime flags: 00\n"), "{info}");
            let wake = timer
                .sleep_until(now, now + chrono::Duration::milliseconds(20))
                .await;
            assert_eq!(wake, Wake::Deadline);
        });
    }
}
