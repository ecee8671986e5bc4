//! The daemon's heartbeat (`jobrun status`), written off the scheduler loop.
//!
//! The loop decides when to beat (on a wake-up it has anyway, so an idle
//! daemon wakes once a minute) and hands the instant to [`Heartbeat::beat`],
//! which never waits: it tries the write once on a connection that does not
//! wait for a lock at all (uncontended, the usual case, this costs the loop a
//! fraction of a millisecond and wakes no other thread, so the idle daemon's
//! one wake-up a minute stays one), and when another process holds the write
//! lock it hands the beat to a thread of its own, which writes it on its own
//! connection with a short busy timeout ([`BUSY`]). A `jobrun prune` (or any other
//! process) holding SQLite's write lock therefore delays the beat, never a
//! tick; and the beat does not queue behind this daemon's claims and records,
//! which share the store's connection and wait up to 30 s for the lock. A beat
//! that cannot be written is logged, and the next one (a minute later, or at
//! once after a clock jump) writes the newer time.
//!
//! Knows the store's heartbeat writer and nothing of the plan or the loop.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::store::{BeatWriter, Operation, Store, StoreError};

/// How long a beat waits for another process's write lock.
pub const BUSY: Duration = Duration::from_secs(2);

/// Who beats: the daemon's row in the `daemons` table.
pub(super) struct Beater {
    pub(super) owner: String,
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) started: DateTime<Utc>,
}

#[derive(Default)]
struct Slot {
    /// The newest beat not written yet (a newer one replaces it).
    pending: Option<DateTime<Utc>>,
    /// The thread is writing a beat (a direct write now could be overwritten
    /// by that older one).
    writing: bool,
    closed: bool,
}

type Shared = Arc<(Mutex<Slot>, Condvar)>;

/// The handle the loop beats through; [`Heartbeat::stop`] ends its thread.
pub(super) struct Heartbeat {
    /// Tried first, on the loop's thread: never waits for a lock.
    direct: BeatWriter,
    who: Arc<Beater>,
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Opens the heartbeat's connection and starts its thread.
    pub(super) fn start(store: &Store, who: Beater) -> Result<Heartbeat, StoreError> {
        let writer = store.heartbeat_writer(BUSY)?;
        let direct = store.heartbeat_writer(Duration::ZERO)?;
        let who = Arc::new(who);
        let shared: Shared = Arc::default();
        let worker = Arc::clone(&shared);
        let beater = Arc::clone(&who);
        let thread = std::thread::Builder::new()
            .name("jobrun-beat".into())
            .spawn(move || serve(&writer, &beater, &worker))
            .map_err(|e| StoreError::Failed {
                operation: Operation::Heartbeat,
                doing: "starting the heartbeat's thread",
                source: Box::new(e),
            })?;
        Ok(Heartbeat {
            direct,
            who,
            shared,
            thread: Some(thread),
        })
    }

    /// Records that the daemon is alive at `now`: at once when nothing
    /// holds the write lock (and no earlier beat is still waiting, which it
    /// would overtake), else on the heartbeat's thread. Never waits.
    pub(super) fn beat(&self, now: DateTime<Utc>) {
        let (slot, ready) = &*self.shared;
        let mut guard = lock(slot);
        if guard.pending.is_none() && !guard.writing {
            let who = &self.who;
            if self
                .direct
                .beat(&who.owner, who.pid, &who.host, who.started, now)
                .is_ok()
            {
                return;
            }
        }
        guard.pending = Some(now);
        drop(guard);
        ready.notify_one();
    }

    /// Writes the beat still pending, if any, and ends the thread: after
    /// this no beat can overwrite the daemon's recorded stop.
    pub(super) fn stop(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let (slot, ready) = &*self.shared;
        lock(slot).closed = true;
        ready.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the heartbeat thread panicked");
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve(writer: &BeatWriter, who: &Beater, shared: &Shared) {
    let (slot, ready) = &**shared;
    loop {
        let now = {
            let mut guard = lock(slot);
            loop {
                if let Some(now) = guard.pending.take() {
                    guard.writing = true;
                    break now;
                }
                if guard.closed {
                    return;
                }
                guard = ready.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Err(e) = writer.beat(&who.owner, who.pid, &who.host, who.started, now) {
            warn!(error = %e, "recording the heartbeat (written again at the next beat)");
        }
        lock(slot).writing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_beat_is_written_off_the_callers_thread_and_a_held_lock_only_delays_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let who = Beater {
            owner: "h:1:x".into(),
            host: "h".into(),
            pid: 1,
            started: at("2026-05-01T12:00:00Z"),
        };
        let heartbeat = Heartbeat::start(&store, who).unwrap();
        // Another process holds the write lock, as `jobrun prune` does.
        let other = store.hold_write_lock().unwrap();
        let asked = std::time::Instant::now();
        heartbeat.beat(at("2026-05-01T12:01:00Z"));
        assert!(asked.elapsed() < Duration::from_millis(100), "beat waited");
        // Not written while the lock is held; a newer beat replaces it.
        std::thread::sleep(Duration::from_millis(100));
        heartbeat.beat(at("2026-05-01T12:02:00Z"));
        drop(other);
        heartbeat.stop();
        let seen = store.last_daemon_seen().unwrap();
        assert_eq!(seen, Some(at("2026-05-01T12:02:00Z")));
    }
}
