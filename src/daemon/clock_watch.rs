//! Clock steps and suspends, as the scheduler loop sees them (SPEC 2), and
//! where its cursor goes after one.
//!
//! Owns: comparing the wall clock with monotonic time at every wake-up (they
//! advance together unless the wall clock is stepped or the machine sleeps:
//! monotonic time stands still during suspend), the cursor (the instant up to
//! which ticks were handed out), and the decision for each wake-up: which
//! window of ticks runs, as scheduled or as a catch-up, and what is logged.
//!
//! After a backward jump the cursor follows the clock back: the claims are the
//! truth (issue 11). A tick that was never claimed runs when its time comes
//! again; a tick that ran is refused by its (job, tick) claim and skipped
//! silently. Waiting for the old high-water mark instead ran nothing for as
//! long as the clock went back. Until the clock passes that mark again, each
//! pass says so (`handed_out`), so the loop can leave a tick that ran alone
//! before it takes the job's lock (a `replace` job would otherwise stop its
//! running run for a tick that its claim then refuses).
//!
//! Must not know: jobs, the plan, tokio or how the loop sleeps; of the store
//! it reads only whether a tick was claimed.

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

use crate::store::Store;

/// A difference between wall-clock and monotonic time larger than this at a
/// wake-up is a clock jump (or a suspend), not scheduling jitter.
const JUMP_THRESHOLD: chrono::Duration = chrono::Duration::seconds(2);

/// What the loop does with the ticks after a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Nothing is due.
    Idle,
    /// Each job's latest tick in `(after, upto]` runs, as scheduled.
    Scheduled {
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
        handed_out: Option<DateTime<Utc>>,
    },
    /// The clock jumped forward by `by` (within `--max-catch-up`): each job
    /// that missed ticks in `(after, upto]` runs once, for the latest.
    CatchUp {
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
        by: chrono::Duration,
        handed_out: Option<DateTime<Utc>>,
    },
}

impl Pass {
    /// After a backward jump: ticks up to this instant were handed out
    /// before the clock went back, and may have run (their claims say).
    /// `None` when every tick of the window is new.
    #[cfg(test)]
    fn handed_out(&self) -> Option<DateTime<Utc>> {
        match self {
            Pass::Idle => None,
            Pass::Scheduled { handed_out, .. } | Pass::CatchUp { handed_out, .. } => *handed_out,
        }
    }
}

/// What happened to the wall clock since the last wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Jump {
    None,
    Forward(chrono::Duration),
    Backward(chrono::Duration),
}

pub(super) struct ClockWatch {
    wall: DateTime<Utc>,
    mono: Instant,
    cursor: DateTime<Utc>,
    /// The latest the cursor has been: ticks up to it were handed out.
    high_water: DateTime<Utc>,
    /// The last pass saw the clock jump (or the machine resume).
    jumped: bool,
    max_catch_up: Duration,
}

impl ClockWatch {
    /// Starts at `now` (wall) and `mono` (monotonic): ticks after `now` are due.
    pub(super) fn new(now: DateTime<Utc>, mono: Instant, max_catch_up: Duration) -> Self {
        ClockWatch {
            wall: now,
            mono,
            cursor: now,
            high_water: now,
            jumped: false,
            max_catch_up,
        }
    }

    /// The instant up to which ticks were handed out; the next tick is after it.
    pub(super) fn cursor(&self) -> DateTime<Utc> {
        self.cursor
    }

    /// Decides what a wake-up at `now` (wall) and `mono` (monotonic) runs, and
    /// moves the cursor.
    pub(super) fn pass(&mut self, now: DateTime<Utc>, mono: Instant) -> Pass {
        let jump = self.observe(now, mono);
        self.jumped = jump != Jump::None;
        match jump {
            Jump::None => {}
            Jump::Backward(by) => {
                warn!(
                    by = %fmt_span(by),
                    "wall clock moved backwards; scheduling follows it, and ticks that already ran are not run again"
                );
                self.cursor = now;
                return Pass::Idle;
            }
            Jump::Forward(by) if now <= self.cursor => {
                // Still behind ticks handed out (after steps back too small to
                // count as jumps): those ticks were not missed.
                info!(by = %fmt_span(by), "wall clock moved forward; no missed ticks");
                return Pass::Idle;
            }
            Jump::Forward(by) if by.to_std().is_ok_and(|d| d <= self.max_catch_up) => {
                let (after, handed_out) = self.advance(now);
                return Pass::CatchUp {
                    after,
                    upto: now,
                    by,
                    handed_out,
                };
            }
            Jump::Forward(by) => {
                warn!(
                    by = %fmt_span(by),
                    max_catch_up = %humantime::format_duration(self.max_catch_up),
                    "wall clock jumped forward by more than --max-catch-up; missed ticks are not run"
                );
                self.advance(now);
                return Pass::Idle;
            }
        }
        if now <= self.cursor {
            // A step back smaller than a jump: the ticks up to the cursor ran.
            return Pass::Idle;
        }
        let (after, handed_out) = self.advance(now);
        Pass::Scheduled {
            after,
            upto: now,
            handed_out,
        }
    }

    /// Whether the last pass saw the wall clock jump: the daemon's heartbeat
    /// (by the wall clock) is then overdue, and is written at once rather than
    /// up to a minute later, when a peer could take it for a dead daemon's.
    pub(super) fn jumped(&self) -> bool {
        self.jumped
    }

    /// Moves the cursor forward to `now`; returns where it was, and the
    /// high-water mark if the window reaches below it.
    fn advance(&mut self, now: DateTime<Utc>) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        let after = std::mem::replace(&mut self.cursor, now);
        let handed_out = (after < self.high_water).then_some(self.high_water);
        self.high_water = self.high_water.max(now);
        (after, handed_out)
    }

    fn observe(&mut self, now: DateTime<Utc>, mono: Instant) -> Jump {
        let mono_elapsed = chrono::Duration::from_std(mono.saturating_duration_since(self.mono))
            .unwrap_or(chrono::Duration::MAX);
        let drift = (now - self.wall)
            .checked_sub(&mono_elapsed)
            .unwrap_or(chrono::Duration::MIN);
        self.wall = now;
        self.mono = mono;
        if drift > JUMP_THRESHOLD {
            Jump::Forward(drift)
        } else if drift < -JUMP_THRESHOLD {
            Jump::Backward(-drift)
        } else {
            Jump::None
        }
    }
}

/// Whether `job`'s `tick`, handed out again after a backward jump, already
/// ran (or is running): its claim is on record. Only ticks up to the
/// `handed_out` mark are looked up, so normal passes cost no read. A failed
/// read says no, and the claim taken before the run decides.
pub(super) fn ran_before(
    store: &Store,
    handed_out: Option<DateTime<Utc>>,
    job: &str,
    tick: DateTime<Utc>,
) -> bool {
    if handed_out.is_none_or(|mark| tick > mark) {
        return false;
    }
    match store.tick_claimed(job, tick) {
        Ok(claimed) => {
            if claimed {
                debug!(job, tick = %tick.to_rfc3339(), "ran before the clock went back; not run again");
            }
            claimed
        }
        Err(e) => {
            warn!(job, error = %e, "reading a tick's claim after the clock went back");
            false
        }
    }
}

pub(super) fn fmt_span(d: chrono::Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.num_seconds().unsigned_abs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn scheduled(after: DateTime<Utc>, upto: DateTime<Utc>) -> Pass {
        Pass::Scheduled {
            after,
            upto,
            handed_out: None,
        }
    }

    const HOURS_3: Duration = Duration::from_secs(3 * 3600);

    #[test]
    fn time_passing_hands_out_each_window_once() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let m = |n: u64| m0 + Duration::from_secs(n);
        assert_eq!(watch.pass(t0 + secs(1), m(1)), scheduled(t0, t0 + secs(1)));
        // Woken again at the same instant: nothing new.
        assert_eq!(watch.pass(t0 + secs(1), m(1)), Pass::Idle);
        // Late by a second (jitter, not a jump): the window covers it.
        assert_eq!(
            watch.pass(t0 + secs(3), m(2)),
            scheduled(t0 + secs(1), t0 + secs(3))
        );
    }

    #[test]
    fn a_suspend_catches_up_at_once_and_the_next_tick_follows_on_time() {
        // 145 s of suspend: the wall clock moved, monotonic time did not.
        let (t0, m0) = (at("2026-05-01T12:00:01Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let resumed = t0 + secs(145);
        assert_eq!(
            watch.pass(resumed, m0),
            Pass::CatchUp {
                after: t0,
                upto: resumed,
                by: secs(145),
                handed_out: None,
            }
        );
        // The next tick is looked for from the resume, not from before it.
        assert_eq!(watch.cursor(), resumed);
        assert!(watch.jumped());
        assert_eq!(
            watch.pass(resumed + secs(4), m0 + Duration::from_secs(4)),
            scheduled(resumed, resumed + secs(4))
        );
        assert!(!watch.jumped());
    }

    #[test]
    fn a_forward_step_within_max_catch_up_is_caught_up_once() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let m = |n: u64| m0 + Duration::from_secs(n);
        // The clock is stepped ten minutes ahead while one second passes.
        let stepped = t0 + secs(601);
        assert_eq!(
            watch.pass(stepped, m(1)),
            Pass::CatchUp {
                after: t0,
                upto: stepped,
                by: secs(600),
                handed_out: None,
            }
        );
        assert!(watch.jumped());
        assert_eq!(watch.cursor(), stepped);
        // Woken again at once: nothing more to catch up.
        assert_eq!(watch.pass(stepped, m(1)), Pass::Idle);
        assert!(!watch.jumped());
    }

    #[test]
    fn a_drift_up_to_the_threshold_is_no_jump_either_way() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let m = |n: u64| m0 + Duration::from_secs(n);
        // 10 s passed, the wall clock says 12: late by the threshold, no jump.
        assert_eq!(
            watch.pass(t0 + secs(12), m(10)),
            scheduled(t0, t0 + secs(12))
        );
        assert!(!watch.jumped());
        // 10 s more passed, the wall clock says 8: two seconds slow, no jump,
        // and nothing before the cursor is handed out again.
        assert_eq!(
            watch.pass(t0 + secs(20), m(20)),
            scheduled(t0 + secs(12), t0 + secs(20))
        );
        assert_eq!(
            watch.pass(t0 + secs(28), m(30)),
            scheduled(t0 + secs(20), t0 + secs(28))
        );
        assert!(!watch.jumped());
        // A millisecond past the threshold is a jump.
        let over = t0 + secs(41) + chrono::Duration::milliseconds(1);
        assert_eq!(
            watch.pass(over, m(40)),
            Pass::CatchUp {
                after: t0 + secs(28),
                upto: over,
                by: secs(3) + chrono::Duration::milliseconds(1),
                handed_out: None,
            }
        );
        assert!(watch.jumped());
    }

    #[test]
    fn a_forward_jump_beyond_max_catch_up_runs_nothing_and_moves_on() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let later = t0 + chrono::Duration::hours(5);
        assert_eq!(watch.pass(later, m0), Pass::Idle);
        assert_eq!(watch.cursor(), later);
        assert_eq!(
            watch.pass(later + secs(1), m0 + Duration::from_secs(1)),
            scheduled(later, later + secs(1))
        );
    }

    #[test]
    fn after_a_backward_jump_the_cursor_follows_the_clock() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let m = |n: u64| m0 + Duration::from_secs(n);
        watch.pass(t0 + secs(10), m(10));
        let high = t0 + secs(10);
        // An hour back: ticks from there on are handed out again as their
        // time comes, marked as below what was handed out before (their
        // claims decide).
        let back = t0 + secs(11) - chrono::Duration::hours(1);
        assert_eq!(watch.pass(back, m(11)), Pass::Idle);
        assert_eq!(watch.cursor(), back);
        let again = watch.pass(back + secs(1), m(12));
        assert_eq!(
            again,
            Pass::Scheduled {
                after: back,
                upto: back + secs(1),
                handed_out: Some(high),
            }
        );
        // Forward again over ticks that ran before the jump: a catch-up of
        // that window, which the claims decide.
        let returned = t0 + secs(12);
        let caught_up = watch.pass(returned, m(12));
        assert_eq!(
            caught_up,
            Pass::CatchUp {
                after: back + secs(1),
                upto: returned,
                by: chrono::Duration::hours(1),
                handed_out: Some(high),
            }
        );
        // Past the old high-water mark, every tick is new again.
        let next = watch.pass(returned + secs(1), m(13));
        assert_eq!(next, scheduled(returned, returned + secs(1)));
        assert_eq!(next.handed_out(), None);
    }

    #[test]
    fn a_small_step_back_waits_for_the_ticks_that_ran() {
        let (t0, m0) = (at("2026-05-01T12:00:00Z"), Instant::now());
        let mut watch = ClockWatch::new(t0, m0, HOURS_3);
        let m = |n: u64| m0 + Duration::from_secs(n);
        watch.pass(t0 + secs(10), m(10));
        // One second back is within the threshold: no jump, nothing re-handed.
        assert_eq!(watch.pass(t0 + secs(10), m(11)), Pass::Idle);
        assert_eq!(watch.cursor(), t0 + secs(10));
        assert_eq!(
            watch.pass(t0 + secs(11), m(12)),
            scheduled(t0 + secs(10), t0 + secs(11))
        );
    }
}
