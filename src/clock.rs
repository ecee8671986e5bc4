//! The only reader of the wall clock. Everything else takes "now" as a value
//! or a [`Clock`], so tests move time by hand instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time: it advances with time passing, stands still while the
    /// machine is suspended, and is never stepped. The scheduler compares it
    /// with [`Clock::now`] to tell a clock step or a suspend from time passing.
    fn monotonic(&self) -> Instant {
        Instant::now()
    }

    /// Whether [`Clock::now`] is the system's `CLOCK_REALTIME`, so that a
    /// kernel timer can wait for one of its instants (and be woken when the
    /// clock is stepped or the machine resumes). A hand-moved clock is not:
    /// the scheduler sleeps for durations and wakes on [`Clock::moved`].
    fn is_system_realtime(&self) -> bool {
        false
    }

    /// A channel that ticks when this clock is moved by hand, so a sleeping
    /// scheduler re-reads it at once. The real clock has none: the scheduler
    /// re-reads it at least once a minute instead.
    fn moved(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        None
    }
}

/// The longest wait any deadline stands for: 30 years is "never" for a
/// timer, and far enough from the monotonic clock's limits that every
/// deadline built from it can be compared and slept on.
pub const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The monotonic instant `after` past `from`, saturated at [`FOREVER`]: a
/// duration as long as a user can write (`timeout: 300000000000y`) must
/// never overflow an instant and panic a firing (issue 11).
pub fn deadline(from: Instant, after: Duration) -> Instant {
    // 30 years past any monotonic instant fits its range: the fallback is
    // only there so that no arithmetic here can panic.
    from.checked_add(after.min(FOREVER)).unwrap_or(from)
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
        Utc::now()
    }

    fn is_system_realtime(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to, for tests: its wall clock and its
/// monotonic clock both stand still until moved by hand.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    /// How far its monotonic clock has advanced from `mono_start`.
    mono: Arc<Mutex<Duration>>,
    mono_start: Instant,
    moved: Arc<tokio::sync::watch::Sender<()>>,
}

impl FakeClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        FakeClock {
            now: Arc::new(Mutex::new(start)),
            mono: Arc::new(Mutex::new(Duration::ZERO)),
            mono_start: Instant::now(),
            moved: Arc::new(tokio::sync::watch::Sender::new(())),
        }
    }

    /// Steps the wall clock to `t` (forwards or backwards, like a stepped
    /// system clock); monotonic time does not move.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.moved.send_replace(());
    }

    /// Steps the wall clock by `by` while monotonic time stands still: a
    /// clock step, or (forwards) a suspend of the machine.
    pub fn advance(&self, by: chrono::Duration) {
        {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            *now += by;
        }
        self.moved.send_replace(());
    }

    /// Lets `by` of time pass: the wall clock and monotonic time advance
    /// together, as they do while the machine runs (no jump). A negative
    /// `by` only steps the wall clock back.
    pub fn pass(&self, by: chrono::Duration) {
        {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            let mut mono = self.mono.lock().unwrap_or_else(|p| p.into_inner());
            *now += by;
            *mono += by.to_std().unwrap_or_default();
        }
        self.moved.send_replace(());
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn monotonic(&self) -> Instant {
        self.mono_start + *self.mono.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn moved(&self) -> Option<tokio::sync::watch::Receiver<()>> {
        Some(self.moved.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_deadline_saturates_instead_of_overflowing() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline(now, Duration::MAX), now + FOREVER);
        assert_eq!(
            deadline(now, Duration::from_secs(i64::MAX as u64)),
            now + FOREVER
        );
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let clock = FakeClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(chrono::Duration::minutes(10));
        assert_eq!(clock.now(), t0 + chrono::Duration::minutes(10));
        clock.set(t0 - chrono::Duration::hours(1));
        assert_eq!(clock.now(), t0 - chrono::Duration::hours(1));
    }

    #[test]
    fn fake_monotonic_time_moves_only_when_time_passes() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let clock = FakeClock::new(t0);
        let m0 = clock.monotonic();
        // A suspend or a step: the wall clock moves, monotonic time does not.
        clock.advance(chrono::Duration::seconds(145));
        clock.set(t0 - chrono::Duration::hours(5));
        assert_eq!(clock.monotonic(), m0);
        clock.pass(chrono::Duration::seconds(3));
        assert_eq!(clock.monotonic() - m0, Duration::from_secs(3));
        assert_eq!(
            clock.now(),
            t0 - chrono::Duration::hours(5) + chrono::Duration::seconds(3)
        );
        assert!(!clock.is_system_realtime());
        assert!(SystemClock.is_system_realtime());
    }
}
