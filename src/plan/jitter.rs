//! Jitter (YAML `jitter`, crontab `RANDOM_DELAY`): each scheduled run of a
//! job starts a fixed offset in `[0, jitter)` after its tick, as systemd's
//! `RandomizedDelaySec` with `FixedRandomDelay` spreads timers, but per tick.
//!
//! The offset is a pure function of the job's name and the tick, through a
//! hash with fixed constants (FNV-1a, then a 64-bit finaliser so every bit
//! of the input moves the high bits the offset is taken from): every host
//! and every build of jobrun computes the same start for the same tick, so
//! several hosts still claim the same tick, at the same moment, and `next`
//! predicts what the daemon does. Never std's hasher, which is seeded at
//! random per process. Changing anything here moves every jittered run:
//! the unit tests pin known offsets.
//!
//! The tick stays the run's identity (its claim, `JOBRUN_TICK`); only when
//! it starts moves. Pure: the clock comes in as values.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Job;

/// One scheduled run of a job: its tick (what is claimed) and when it starts
/// (the tick plus the job's jitter offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub tick: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The most ticks one answer looks at beyond what it returns. Only a jitter
/// far longer than the interval between a job's ticks comes near it (a
/// per-second schedule with an hour's jitter has 3,600 ticks whose starts
/// overlap); past it, the earliest ticks of the overlap are not considered.
const MAX_TICKS: usize = 100_000;

/// The offset of `job`'s run for `tick` within `jitter`: in `[0, jitter)`,
/// whole milliseconds (zero for a jitter under a millisecond).
pub fn offset(job: &str, tick: DateTime<Utc>, jitter: Duration) -> Duration {
    let span = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    if span == 0 {
        return Duration::ZERO;
    }
    let mut hash = FNV_OFFSET;
    for chunk in [
        job.as_bytes(),
        // 0xff never occurs in UTF-8: the name cannot run into the tick.
        &[0xff],
        &tick.timestamp().to_be_bytes(),
        &tick.timestamp_subsec_nanos().to_be_bytes(),
    ] {
        hash = fnv1a(hash, chunk);
    }
    // The high bits of a multiply scale the hash to the span without the
    // bias of a remainder.
    let millis = (u128::from(finalise(hash)) * u128::from(span)) >> 64;
    Duration::from_millis(millis as u64)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over `bytes`, continuing from `hash`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// MurmurHash3's 64-bit finaliser: FNV-1a's last bytes reach its high bits
/// weakly, and the offset is taken from the high bits.
fn finalise(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Job {
    /// The job's jitter, when it has one longer than zero.
    pub fn jitter(&self) -> Option<Duration> {
        self.spec.jitter.filter(|j| !j.is_zero())
    }

    /// When the run for `tick` starts: the tick, plus the jitter offset.
    pub fn start_of(&self, tick: DateTime<Utc>) -> DateTime<Utc> {
        match self.jitter() {
            None => tick,
            Some(jitter) => add(tick, offset(&self.name, tick, jitter)),
        }
    }

    /// The first `count` runs that start strictly after `t`, in the order
    /// they start. Without jitter these are the next `count` ticks; with it,
    /// a tick before `t` may still start after it, and a long jitter may
    /// start a later tick before an earlier one.
    pub fn starts_after(&self, t: DateTime<Utc>, count: usize) -> Vec<Start> {
        let Some(jitter) = self.jitter() else {
            return self
                .iter_after(t)
                .take(count)
                .map(|tick| Start { tick, at: tick })
                .collect();
        };
        if count == 0 {
            return Vec::new();
        }
        // A start is in [tick, tick + jitter): ticks from `t - jitter` on.
        let from = sub(t, jitter);
        let mut found: Vec<Start> = Vec::new();
        for (seen, tick) in self.iter_after(from).enumerate() {
            // Once `count` starts are found, a tick after the last of them
            // starts after it too: nothing earlier is left.
            if found.len() == count && found.last().is_some_and(|last| tick > last.at) {
                break;
            }
            if seen >= count.saturating_add(MAX_TICKS) {
                break;
            }
            let at = self.start_of(tick);
            if at <= t {
                continue;
            }
            let start = Start { tick, at };
            let place = found.partition_point(|s| (s.at, s.tick) <= (at, tick));
            if place < count {
                found.insert(place, start);
                found.truncate(count);
            }
        }
        found
    }

    /// The earliest run that starts strictly after `t`.
    pub fn next_start_after(&self, t: DateTime<Utc>) -> Option<Start> {
        match self.jitter() {
            None => self.next_after(t).map(|tick| Start { tick, at: tick }),
            Some(_) => self.starts_after(t, 1).into_iter().next(),
        }
    }

    /// The latest tick whose run starts in the window `(after, upto]`: what
    /// the scheduler hands out when it wakes at `upto` (without jitter,
    /// [`Job::latest_tick`]). Each step back is one [`Job::latest_tick`], so
    /// the work does not grow with the window.
    pub fn due_tick(&self, after: DateTime<Utc>, upto: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(jitter) = self.jitter() else {
            return self.latest_tick(after, upto);
        };
        let from = sub(after, jitter);
        let mut latest = upto;
        for _ in 0..MAX_TICKS {
            let tick = self.latest_tick(from, latest)?;
            let at = self.start_of(tick);
            if at > after && at <= upto {
                return Some(tick);
            }
            // Ticks are whole seconds at the finest: a nanosecond before
            // this one is before it, and after every earlier one.
            latest = tick - chrono::Duration::nanoseconds(1);
        }
        None
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn sub(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests;
