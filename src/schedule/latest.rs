//! The latest tick in a window, found with the forward search alone, in work
//! that does not grow with the window.
//!
//! Owns: the search (a gallop back from the window's end, then a bisection).
//! It asks only "the first tick strictly after t", so it keeps every DST and
//! Vixie rule of that search by construction: the tick it finds is the last
//! one a forward walk over the window would reach. Walking forward instead
//! cost a per-second schedule's catch-up 2.2 s per year of window (issue 11).
//!
//! Must not know: cron syntax, time zones, DST, or what a tick is for.

/// The latest tick in `(after, upto]` (Unix seconds), where `next(t)` is the
/// first tick strictly after `t` (`None`: there is none). `next` must be
/// consistent, as a fixed set of ticks is: the first tick after `t` is the
/// first tick of that set after `t`, whatever `t` is.
///
/// Work: at most two calls when the window holds one tick or none (the
/// scheduler's every wake-up), and otherwise about `2 * log2(d)` calls where
/// `d` is the distance from `upto` back to the latest tick, whatever the
/// window's length.
pub(super) fn latest_in(after: i64, upto: i64, next: impl Fn(i64) -> Option<i64>) -> Option<i64> {
    let ticks_by = |t: i64| next(t).is_some_and(|n| n <= upto);
    if upto <= after {
        return None;
    }
    let first = next(after).filter(|n| *n <= upto)?;
    if !ticks_by(first) {
        return Some(first);
    }
    // Invariant: a tick lies in (lo, upto], none in (hi, upto].
    let (mut lo, mut hi) = (first, upto);
    let mut step: i64 = 1;
    loop {
        let probe = upto.saturating_sub(step);
        if probe <= lo {
            break;
        }
        if ticks_by(probe) {
            lo = probe;
            break;
        }
        hi = probe;
        step = step.saturating_mul(2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if ticks_by(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // The first tick after lo is at most upto and none is after lo + 1: it is lo + 1.
    next(lo)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::latest_in;

    /// `next` over an explicit, sorted set of ticks.
    fn next_of(ticks: &[i64]) -> impl Fn(i64) -> Option<i64> + '_ {
        move |t| ticks.iter().copied().find(|x| *x > t)
    }

    #[test]
    fn finds_the_last_tick_of_every_window_of_a_small_set() {
        let ticks = [3, 4, 10, 11, 12, 40, 41, 100, 1000];
        let next = next_of(&ticks);
        for after in -5..1010 {
            for upto in (after - 2)..1010 {
                let want = ticks
                    .iter()
                    .copied()
                    .rev()
                    .find(|t| *t > after && *t <= upto);
                assert_eq!(latest_in(after, upto, &next), want, "({after}, {upto}]");
            }
        }
    }

    #[test]
    fn work_depends_on_the_distance_to_the_latest_tick_not_on_the_window() {
        let calls = Cell::new(0u64);
        // A tick every 7 seconds, from far in the past.
        let every_seventh = |t: i64| {
            calls.set(calls.get() + 1);
            Some(t.div_euclid(7) * 7 + 7)
        };
        let upto = 1_000_000_000_000;
        let mut counts = Vec::new();
        for window in [60, 86_400, 365 * 86_400, 3650 * 86_400, 900_000_000_000] {
            calls.set(0);
            let got = latest_in(upto - window, upto, every_seventh);
            assert_eq!(got, Some(upto.div_euclid(7) * 7));
            counts.push(calls.get());
        }
        assert!(counts.iter().all(|c| *c <= 10), "{counts:?}");
        assert!(counts[1..].iter().all(|c| *c == counts[1]), "{counts:?}");
    }

    #[test]
    fn extreme_instants_do_not_overflow() {
        let per_second = |t: i64| t.checked_add(1);
        assert_eq!(latest_in(i64::MIN, i64::MAX, per_second), Some(i64::MAX));
        assert_eq!(
            latest_in(i64::MAX - 1, i64::MAX, per_second),
            Some(i64::MAX)
        );
        let none = |_: i64| None;
        assert_eq!(latest_in(i64::MIN, i64::MAX, none), None);
    }
}
