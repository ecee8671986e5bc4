//! The daemon's one file watcher: a single `notify` watcher (on Linux one
//! inotify instance and one thread) serving every `watch:` job and the
//! sources' reload, with each event routed to the parties that asked.
//!
//! A party [`FileWatch::subscribe`]s with the directories to watch and a
//! handler; the handler sees every event of the watcher (it filters what
//! concerns it, and must only send on a channel) until its [`Subscription`]
//! is dropped. Watches are shared and counted: a path is watched while one
//! subscription wants it, recursively if one wants that.
//!
//! Re-arming: inotify watches an inode, so a watched directory removed and
//! created again is not watched any more, and a missing path is watched from
//! its nearest existing parent until it appears. A party re-arms by
//! subscribing again (new watches in place before the old subscription is
//! dropped): every subscribe asks the kernel again, so the path is watched
//! on the inode it names now, even when another subscription already
//! counted it.
//!
//! Knows `notify` and paths; nothing of jobs, plans or the loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use notify::{RecursiveMode, Watcher as _};
use tracing::debug;

/// What a subscriber does with an event (classify it, send on a channel).
pub type Handler = Box<dyn Fn(&notify::Event) + Send + Sync>;

/// The shared watcher; clones share it. Created on the first subscription,
/// so a daemon that watches nothing has no inotify instance.
#[derive(Clone, Default)]
pub struct FileWatch {
    hub: Arc<Hub>,
}

#[derive(Default)]
struct Hub {
    /// Who receives events. A lock of its own: the watcher's thread takes it
    /// for every event, and must never wait for a (un)watch in progress.
    routes: Arc<Mutex<HashMap<u64, Arc<Handler>>>>,
    watched: Mutex<Watched>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Watched {
    watcher: Option<notify::RecommendedWatcher>,
    /// For each watched path, the subscriptions that want it and how.
    paths: HashMap<PathBuf, Vec<(u64, RecursiveMode)>>,
    /// How many watchers were made (one, if any; for tests).
    made: u32,
}

/// A party's watches and route; dropping it stops both.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    targets: Vec<(PathBuf, RecursiveMode)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FileWatch {
    /// Watches `targets` and routes every event to `handler` until the
    /// returned subscription is dropped. Fails only when no watcher can be
    /// made at all; a target that cannot be watched is returned with its
    /// error beside the subscription (its siblings are watched).
    pub fn subscribe(
        &self,
        targets: &[(PathBuf, RecursiveMode)],
        handler: Handler,
    ) -> Result<(Subscription, Vec<(PathBuf, notify::Error)>), notify::Error> {
        let hub = &self.hub;
        let mut watched = lock(&hub.watched);
        if watched.watcher.is_none() {
            let routes = Arc::clone(&hub.routes);
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    if matches!(event.kind, notify::EventKind::Access(_)) {
                        return;
                    }
                    let handlers: Vec<Arc<Handler>> = lock(&routes).values().cloned().collect();
                    for handler in handlers {
                        handler(&event);
                    }
                })?;
            watched.watcher = Some(watcher);
            watched.made += 1;
        }
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        // Routed before the watches are in, so no event of them is lost.
        lock(&hub.routes).insert(id, Arc::new(handler));
        let mut failed = Vec::new();
        for (path, mode) in targets {
            let wants = watched.paths.entry(path.clone()).or_default();
            wants.push((id, *mode));
            let mode = effective(wants);
            if let Some(watcher) = watched.watcher.as_mut() {
                match watcher.watch(path, mode) {
                    Ok(()) => {
                        debug!(dir = %path.display(), recursive = mode == RecursiveMode::Recursive, "watching")
                    }
                    Err(e) => failed.push((path.clone(), e)),
                }
            }
        }
        Ok((
            Subscription {
                hub: Arc::clone(hub),
                id,
                targets: targets.to_vec(),
            },
            failed,
        ))
    }

    /// How many watchers (inotify instances) were made: one at most.
    #[cfg(test)]
    fn watchers_made(&self) -> u32 {
        lock(&self.hub.watched).made
    }
}

/// Recursive when any subscription wants the path so.
fn effective(wants: &[(u64, RecursiveMode)]) -> RecursiveMode {
    if wants.iter().any(|(_, m)| *m == RecursiveMode::Recursive) {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.hub.routes).remove(&self.id);
        let mut guard = lock(&self.hub.watched);
        let watched = &mut *guard;
        let mut released: Vec<PathBuf> = Vec::new();
        for (path, _) in &self.targets {
            if let Some(wants) = watched.paths.get_mut(path) {
                wants.retain(|(id, _)| *id != self.id);
                if wants.is_empty() {
                    watched.paths.remove(path);
                    released.push(path.clone());
                }
            }
        }
        let Some(watcher) = watched.watcher.as_mut() else {
            return;
        };
        for path in &released {
            // Gone already (the directory was removed) is fine.
            let _ = watcher.unwatch(path);
        }
        // Unwatching a directory drops the watches below it (when watched
        // recursively) and its own, which a recursive watch of a parent
        // shares: watch again what other subscriptions still want there.
        for (path, wants) in &watched.paths {
            let recursive = effective(wants) == RecursiveMode::Recursive;
            if released
                .iter()
                .any(|r| path.starts_with(r) || (recursive && r.starts_with(path)))
            {
                let _ = watcher.watch(path, effective(wants));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Whether `path` is one of `targets` or below a recursive one.
    fn covers(targets: &[(PathBuf, RecursiveMode)], path: &Path) -> bool {
        targets.iter().any(|(t, m)| {
            path == t
                || path.parent() == Some(t.as_path())
                || (*m == RecursiveMode::Recursive && path.starts_with(t))
        })
    }

    fn route(tx: mpsc::Sender<PathBuf>, targets: Vec<(PathBuf, RecursiveMode)>) -> Handler {
        Box::new(move |event: &notify::Event| {
            for p in &event.paths {
                if covers(&targets, p) {
                    let _ = tx.send(p.clone());
                }
            }
        })
    }

    fn seen(rx: &mpsc::Receiver<PathBuf>, want: &Path) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(p) if p == want => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    fn inotify_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy() == "anon_inode:inotify")
            .count()
    }

    #[test]
    fn every_subscription_shares_one_watcher_and_gets_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileWatch::default();
        let (tx, rx) = mpsc::channel();
        let mut subs = Vec::new();
        for i in 0..50 {
            let d = dir.path().join(format!("d{i}"));
            std::fs::create_dir(&d).unwrap();
            let targets = vec![(d, RecursiveMode::Recursive)];
            let (sub, failed) = files
                .subscribe(&targets, route(tx.clone(), targets.clone()))
                .unwrap();
            assert!(failed.is_empty());
            subs.push(sub);
        }
        assert_eq!(files.watchers_made(), 1);
        let last = dir.path().join("d49/x");
        std::fs::write(&last, "x").unwrap();
        assert!(seen(&rx, &last));
        // Dropped: no more events routed to it, and its watch goes.
        drop(subs.pop());
        let first = dir.path().join("d0/x");
        std::fs::write(&first, "x").unwrap();
        assert!(seen(&rx, &first));
        assert!(inotify_fds() >= 1);
    }

    #[test]
    fn dropping_a_watch_inside_a_recursive_one_keeps_the_recursive_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let files = FileWatch::default();
        let (tx, rx) = mpsc::channel();
        let all = vec![(dir.path().to_path_buf(), RecursiveMode::Recursive)];
        let (_all, _) = files
            .subscribe(&all, route(tx.clone(), all.clone()))
            .unwrap();
        let inner = vec![(sub.clone(), RecursiveMode::NonRecursive)];
        let (inner_sub, _) = files
            .subscribe(&inner, route(tx.clone(), inner.clone()))
            .unwrap();
        drop(inner_sub);
        while rx.try_recv().is_ok() {}
        let file = sub.join("x");
        std::fs::write(&file, "x").unwrap();
        assert!(seen(&rx, &file), "the recursive watch still covers sub/");
    }

    #[test]
    fn a_directory_removed_and_created_again_is_watched_again_by_subscribing_again() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let files = FileWatch::default();
        let (tx, rx) = mpsc::channel();
        let targets = vec![(inbox.clone(), RecursiveMode::Recursive)];
        // Another party keeps the path counted throughout.
        let (_other, _) = files
            .subscribe(&targets, route(tx.clone(), targets.clone()))
            .unwrap();
        let (old, _) = files
            .subscribe(&targets, route(tx.clone(), targets.clone()))
            .unwrap();
        std::fs::remove_dir(&inbox).unwrap();
        std::fs::create_dir(&inbox).unwrap();
        // Re-armed: new watches first, then the old subscription goes.
        let (_new, failed) = files
            .subscribe(&targets, route(tx.clone(), targets.clone()))
            .unwrap();
        assert!(failed.is_empty());
        drop(old);
        while rx.try_recv().is_ok() {}
        let file = inbox.join("a");
        std::fs::write(&file, "x").unwrap();
        assert!(seen(&rx, &file), "the new directory is watched");
    }
}
