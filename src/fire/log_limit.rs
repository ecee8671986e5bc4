//! Rate limiting of repeated identical warnings on the firing path.
//!
//! When jobrun runs short of a resource, every firing meets the same error:
//! 200 jobs under a 64-descriptor limit logged 599 WARN/ERROR lines a tick,
//! burying everything else (issue 11). The first occurrence of an error is
//! logged as it happens; later identical ones within [`INTERVAL`] are only
//! counted, and the count is logged as one summary line when the interval is
//! over (at the next occurrence, or at [`LogLimiter::flush`], which the
//! daemon calls on its heartbeat).
//!
//! Knows log lines and monotonic time; nothing of jobs, runs or the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long identical errors are counted instead of logged.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Entries kept at most: a flood of distinct errors cannot grow the map.
const MAX_KEYS: usize = 1024;

#[derive(Default)]
pub struct LogLimiter {
    seen: Mutex<HashMap<String, Window>>,
}

struct Window {
    since: Instant,
    /// Occurrences not logged since `since`.
    quiet: u64,
}

impl LogLimiter {
    /// Whether to log this occurrence of the error `key` at `now`. When an
    /// earlier interval of it ended with occurrences not logged, `summary`
    /// is called first with their count.
    pub fn admit(&self, key: &str, now: Instant, summary: impl FnOnce(u64)) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(window) = seen.get_mut(key) {
            if now.saturating_duration_since(window.since) < INTERVAL {
                window.quiet += 1;
                return false;
            }
            let quiet = std::mem::take(&mut window.quiet);
            window.since = now;
            drop(seen);
            if quiet > 0 {
                summary(quiet);
            }
            return true;
        }
        if seen.len() >= MAX_KEYS {
            seen.retain(|_, w| now.saturating_duration_since(w.since) < INTERVAL);
        }
        if seen.len() < MAX_KEYS {
            seen.insert(
                key.to_string(),
                Window {
                    since: now,
                    quiet: 0,
                },
            );
        }
        true
    }

    /// The errors whose interval is over with occurrences not logged: each
    /// with its count, once. Their windows are forgotten, so the next
    /// occurrence is logged again.
    pub fn flush(&self, now: Instant) -> Vec<(String, u64)> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        seen.retain(|key, w| {
            if now.saturating_duration_since(w.since) < INTERVAL {
                return true;
            }
            if w.quiet > 0 {
                out.push((key.clone(), w.quiet));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_errors_are_logged_once_then_summed_up_per_interval() {
        let limiter = LogLimiter::default();
        let t0 = Instant::now();
        let mut summaries = Vec::new();
        let mut logged = 0;
        // 1,000 identical errors within one interval, and one of another kind.
        for i in 0..1000u64 {
            let at = t0 + Duration::from_millis(i * 10);
            if limiter.admit("EMFILE", at, |n| summaries.push(n)) {
                logged += 1;
            }
        }
        assert!(limiter.admit("disk full", t0, |_| unreachable!()));
        assert_eq!(logged, 1);
        assert!(summaries.is_empty());
        // The next interval: the count of the last one, then the occurrence.
        assert!(limiter.admit("EMFILE", t0 + INTERVAL, |n| summaries.push(n)));
        assert_eq!(summaries, [999]);
        // A flush after an interval with suppressed ones reports them once.
        assert!(!limiter.admit("EMFILE", t0 + INTERVAL + Duration::from_secs(1), |_| {}));
        let flushed = limiter.flush(t0 + INTERVAL * 2);
        assert_eq!(flushed, [("EMFILE".to_string(), 1)]);
        assert!(limiter.flush(t0 + INTERVAL * 3).is_empty());
    }
}
