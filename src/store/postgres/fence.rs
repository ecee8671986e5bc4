//! A daemon's own side of the lease (issue 14, guarantees 2 and 4), pure:
//! instants come in as values. Self-fencing: a daemon stops claiming once
//! its last acknowledged heartbeat is older than the fence deadline, which
//! [`LeaseConfig::validate`] keeps safely below the lease, so no peer ever
//! takes over a job it still thinks it owns. The deadline counts from when
//! the acknowledged beat was *sent*: the server renewed the lease from its
//! own now, which is no earlier than that.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::LeaseConfig;

/// A host clock further than this from the server's is warned about.
pub const CLOCK_WARNING: Duration = Duration::from_secs(1);

/// Whether this daemon may claim, by its monotonic clock.
#[derive(Debug, Clone)]
pub struct Fence {
    config: LeaseConfig,
    /// When the last acknowledged heartbeat (or the registration) was sent.
    acknowledged: Option<Instant>,
}

impl Fence {
    pub fn new(config: LeaseConfig) -> Self {
        Fence {
            config,
            acknowledged: None,
        }
    }

    /// A beat (or the registration) sent at `sent` was acknowledged.
    pub fn acknowledged(&mut self, sent: Instant) {
        if self.acknowledged.is_none_or(|last| sent > last) {
            self.acknowledged = Some(sent);
        }
    }

    /// The daemon was fenced by a peer: nothing may be claimed until it
    /// registers again.
    pub fn fenced(&mut self) {
        self.acknowledged = None;
    }

    /// When claiming must stop, if no further beat is acknowledged.
    pub fn deadline(&self) -> Option<Instant> {
        self.acknowledged.map(|sent| sent + self.config.fence)
    }

    /// Whether a claim may be made at `now`.
    pub fn may_claim(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now < deadline)
    }
}

/// This host's clock minus the server's, from a round trip: the server's
/// time is taken to be read halfway between sending and receiving.
pub fn clock_offset(
    sent: DateTime<Utc>,
    received: DateTime<Utc>,
    server: DateTime<Utc>,
) -> chrono::Duration {
    let midpoint = sent + (received - sent) / 2;
    midpoint - server
}

/// A warning for the log and `status` when the offset is above
/// [`CLOCK_WARNING`].
pub fn clock_warning(host: &str, offset: chrono::Duration) -> Option<String> {
    let abs = offset.abs().to_std().unwrap_or(Duration::MAX);
    (abs > CLOCK_WARNING).then(|| {
        let direction = if offset > chrono::Duration::zero() {
            "ahead of"
        } else {
            "behind"
        };
        format!(
            "the clock of {host} is {:.1} s {direction} the database server's; ticks come \
             from the schedule and leases from the server, but this host's log times will \
             not match its peers' (check NTP)",
            abs.as_secs_f64()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn claiming_stops_at_the_fence_deadline_from_the_beats_sending() {
        let config = LeaseConfig::default();
        let mut fence = Fence::new(config);
        let t0 = Instant::now();
        assert!(!fence.may_claim(t0), "nothing before registration");
        fence.acknowledged(t0);
        assert!(fence.may_claim(t0 + config.fence - Duration::from_millis(1)));
        assert!(!fence.may_claim(t0 + config.fence));
        // A late acknowledgement of an older beat does not move it back.
        fence.acknowledged(t0 + Duration::from_secs(5));
        fence.acknowledged(t0 + Duration::from_secs(1));
        assert_eq!(
            fence.deadline(),
            Some(t0 + Duration::from_secs(5) + config.fence)
        );
        // Always before a peer may declare the daemon dead.
        assert!(config.fence + super::super::FENCE_MARGIN <= config.lease);
        fence.fenced();
        assert!(!fence.may_claim(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn the_clock_offset_is_measured_against_the_round_trips_midpoint() {
        let at = |ms: i64| Utc.timestamp_millis_opt(1_800_000_000_000 + ms).unwrap();
        // Sent at 0, received at 100; the server read 50 at the midpoint.
        assert_eq!(
            clock_offset(at(0), at(100), at(50)),
            chrono::Duration::zero()
        );
        let ahead = clock_offset(at(2_000), at(2_100), at(50));
        assert_eq!(ahead, chrono::Duration::milliseconds(2_000));
        let w = clock_warning("replica-2", ahead).unwrap();
        assert!(w.contains("replica-2") && w.contains("2.0 s ahead"), "{w}");
        assert!(clock_warning("r", chrono::Duration::milliseconds(-900)).is_none());
        let behind = clock_warning("r", chrono::Duration::milliseconds(-1_500)).unwrap();
        assert!(behind.contains("behind"), "{behind}");
    }
}
