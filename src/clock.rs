//! The only reader of the wall clock. Everything else takes "now" as a value
//! or a [`Clock`], so tests move time by hand instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

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
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: Arc<tokio::sync::watch::Sender<()>>,
}

impl FakeClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        FakeClock {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::new(tokio::sync::watch::Sender::new(())),
        }
    }

    /// Jumps to `t` (forwards or backwards, like a stepped system clock).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.moved.send_replace(());
    }

    pub fn advance(&self, by: chrono::Duration) {
        {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            *now += by;
        }
        self.moved.send_replace(());
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
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
}
