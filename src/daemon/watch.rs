//! `watch:` triggers: file changes that start a job.
//!
//! Two halves. [`JobWatches`] owns the inotify watches (through `notify`) of
//! every job with `watch:` and turns events into [`Change`]s on one channel.
//! [`WatchQueue`] is the pure bookkeeping the daemon's loop keeps per job:
//! changes gathered for the debounce, at most one run at a time, and exactly
//! one more run for changes that arrive while a run is going (never lost,
//! never a burst; systemd path units lose them, systemd #5770).
//!
//! A path that does not exist yet is watched from its nearest existing parent
//! and the watches are re-armed as the missing parts appear. A directory is
//! watched with everything below it; a file through its directory, so that an
//! atomic replace (write a temporary file, rename it over) is seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::file_watch::{FileWatch, Subscription};

use crate::plan::Plan;

/// One file-system event that concerns a job.
#[derive(Debug, Clone)]
pub struct Change {
    pub job: String,
    pub path: PathBuf,
    /// The event is at or below a watched path: the job should run.
    pub relevant: bool,
    /// A watched path or one of its parents appeared or went away: the
    /// watches must be set up again.
    pub rearm: bool,
}

struct JobWatch {
    paths: Vec<PathBuf>,
    /// Which of `paths` existed when the watches were last set up.
    existed: Vec<bool>,
    // Kept alive for its watches and its route.
    _watches: Option<Subscription>,
}

/// The inotify watches of every `watch:` job.
pub struct JobWatches {
    jobs: HashMap<String, JobWatch>,
    armer: Armer,
    pub changes: mpsc::UnboundedReceiver<Change>,
    /// How many jobs' watches were set up here (for tests).
    armed: u64,
}

/// Sets up a job's watches, sending its events to the daemon's channel.
/// Cloned onto a reload's thread, it sets up the watches of a plan about to
/// be swapped in: a recursive watch on a big tree takes seconds (1.4 s for
/// 15,000 directories), which the scheduler loop must not spend.
#[derive(Clone)]
pub struct Armer {
    tx: mpsc::UnboundedSender<Change>,
    files: FileWatch,
}

/// Watches set up ahead for a plan (see [`Armer::prepare`]).
#[derive(Default)]
pub struct Prepared(HashMap<String, JobWatch>);

impl JobWatches {
    /// No job watched yet; the watches go on `files`, the daemon's watcher.
    pub fn new(files: FileWatch) -> Self {
        let (tx, changes) = mpsc::unbounded_channel();
        JobWatches {
            jobs: HashMap::new(),
            armer: Armer { tx, files },
            changes,
            armed: 0,
        }
    }
}

/// The watched paths of every enabled job with `watch:`.
fn wanted(plan: &Plan) -> HashMap<&str, &Vec<PathBuf>> {
    plan.jobs()
        .iter()
        .filter(|j| j.spec.enabled)
        .filter_map(|j| j.spec.watch.as_ref().map(|w| (j.name.as_str(), &w.paths)))
        .collect()
}

impl JobWatches {
    /// Sets up the watches of every enabled job with `watch:`, keeping the
    /// ones that did not change (after a reload) and dropping the rest.
    pub fn update(&mut self, plan: &Plan) {
        self.update_prepared(plan, Prepared::default());
    }

    /// As [`Self::update`], taking the watches `prepared` set up ahead
    /// where they are still what the job wants.
    pub fn update_prepared(&mut self, plan: &Plan, mut prepared: Prepared) {
        let wanted = wanted(plan);
        self.jobs
            .retain(|name, w| wanted.get(name.as_str()).is_some_and(|p| **p == w.paths));
        for (name, paths) in wanted {
            if self.jobs.contains_key(name) {
                continue;
            }
            let watch = match prepared.0.remove(name).filter(|w| w.paths == *paths) {
                Some(watch) => watch,
                None => {
                    self.armed += 1;
                    let existed: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
                    self.armer.arm(name, paths.clone(), &existed)
                }
            };
            self.jobs.insert(name.to_string(), watch);
        }
    }

    /// Where a reload sets up the watches of its plan.
    pub fn armer(&self) -> Armer {
        self.armer.clone()
    }

    /// How many jobs are watched.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Sets one job's watches up again after a watched path or a parent of
    /// it appeared or went away. The new watches are in place before the old
    /// ones go, so nothing changes unseen in between.
    pub fn rearm(&mut self, job: &str) {
        let Some(old) = self.jobs.remove(job) else {
            return;
        };
        let watch = self.armer.arm(job, old.paths.clone(), &old.existed);
        drop(old);
        self.jobs.insert(job.to_string(), watch);
    }
}

impl Armer {
    /// Sets up the watches of the jobs of `next` whose watched paths are
    /// not those of the same job in `current` (new or changed jobs).
    pub fn prepare(&self, current: &Plan, next: &Plan) -> Prepared {
        let now = wanted(current);
        let mut out = HashMap::new();
        for (name, paths) in wanted(next) {
            if now.get(name) != Some(&paths) {
                let existed: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
                out.insert(name.to_string(), self.arm(name, paths.clone(), &existed));
            }
        }
        Prepared(out)
    }

    /// Watches `paths` for `job`. `before` says which of them existed when
    /// the caller last looked: one that exists now and did not then counts
    /// as a change, since what was written into it may have come before
    /// the watch could see it.
    ///
    /// Arming races the file system: a missing directory can appear after
    /// its nearest parent was chosen and before the watch on that parent is
    /// in place, and its creation is then never seen. So the targets are
    /// computed again once the watches are in; while they differ, the watches
    /// are set up again. Existence is read after the watches are in and
    /// before that second look: a path that appears later is either seen by
    /// the watch on its parent (which re-arms with this `existed` as the
    /// baseline) or changes the targets.
    fn arm(&self, job: &str, paths: Vec<PathBuf>, before: &[bool]) -> JobWatch {
        let mut attempt = 0;
        let (watcher, existed) = loop {
            attempt += 1;
            let wanted = targets(&paths);
            let watcher = self.install(job, &paths, &wanted);
            let existed: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
            // A watcher that could not be made has nothing to re-arm; after
            // a few rounds the file system is changing too fast to chase,
            // and the events of the last watches will re-arm again.
            if watcher.is_none() || targets(&paths) == wanted || attempt == ARM_ATTEMPTS {
                break (watcher, existed);
            }
            debug!(
                job,
                attempt, "a watched path moved while it was being watched; watching again"
            );
        };
        for ((path, was), is) in paths.iter().zip(before).zip(&existed) {
            if !was && *is {
                let _ = self.tx.send(Change {
                    job: job.to_string(),
                    path: path.clone(),
                    relevant: true,
                    rearm: false,
                });
            }
        }
        JobWatch {
            paths,
            existed,
            _watches: watcher,
        }
    }

    /// A watch on each of `targets` (on the daemon's one watcher), its
    /// events classified against `paths` and sent to the daemon's channel.
    fn install(
        &self,
        job: &str,
        paths: &[PathBuf],
        targets: &[(PathBuf, notify::RecursiveMode)],
    ) -> Option<Subscription> {
        let tx = self.tx.clone();
        let name = job.to_string();
        let watched = paths.to_vec();
        let handler = move |event: &notify::Event| {
            for path in &event.paths {
                let (relevant, rearm) = classify(path, &watched);
                if relevant || rearm {
                    let _ = tx.send(Change {
                        job: name.clone(),
                        path: path.clone(),
                        relevant,
                        rearm,
                    });
                }
            }
        };
        match self.files.subscribe(targets, Box::new(handler)) {
            Ok((subscription, failed)) => {
                for (dir, e) in failed {
                    warn!(job, dir = %dir.display(), error = %e, "cannot watch for changes");
                }
                Some(subscription)
            }
            Err(e) => {
                warn!(job, error = %e, "cannot watch files; the job's watch trigger is off");
                None
            }
        }
    }
}

/// How many times [`Armer::arm`] sets the watches up while the watched
/// paths keep moving under it.
const ARM_ATTEMPTS: u32 = 5;

/// Where to put the watches for `paths`: an existing directory with
/// everything below it; an existing file through its directory; a missing
/// path through its nearest existing parent.
fn targets(paths: &[PathBuf]) -> Vec<(PathBuf, notify::RecursiveMode)> {
    let mut out: Vec<(PathBuf, notify::RecursiveMode)> = Vec::new();
    for path in paths {
        let target = if path.is_dir() {
            Some((path.clone(), notify::RecursiveMode::Recursive))
        } else {
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
                dir = d.parent().map(Path::to_path_buf);
            }
            dir.map(|d| (d, notify::RecursiveMode::NonRecursive))
        };
        if let Some(t) = target {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    // A directory watched with everything below it needs no second watch.
    let recursive: Vec<PathBuf> = out
        .iter()
        .filter(|(_, m)| *m == notify::RecursiveMode::Recursive)
        .map(|(d, _)| d.clone())
        .collect();
    out.retain(|(d, m)| *m == notify::RecursiveMode::Recursive || !recursive.contains(d));
    out
}

/// Whether an event at `path` should run the job (it is a watched path or
/// below one, or Kubernetes' `..data` symlink swap beside a watched file,
/// which changes the file without an event naming it), and whether the
/// watches need re-arming (it is a watched path or a parent of one:
/// created, removed or renamed).
fn classify(path: &Path, watched: &[PathBuf]) -> (bool, bool) {
    let swap = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    let relevant = watched
        .iter()
        .any(|w| path.starts_with(w) || (swap && path.parent() == w.parent()));
    let rearm = watched.iter().any(|w| w.starts_with(path));
    (relevant, rearm)
}

/// The most distinct changed paths kept for one job between two runs; more
/// are counted as an overflow (the job still runs, told the list is cut).
const MAX_PENDING: usize = 10_000;

/// The daemon's bookkeeping for one `watch:` job. Memory is bounded: a path
/// that changes again is one entry, and at most `MAX_PENDING` are kept.
#[derive(Debug, Default)]
pub struct WatchQueue {
    /// Changes not yet handed to a run: each path once, with the order it
    /// first changed in and when it last changed.
    pending: HashMap<PathBuf, (u64, Instant)>,
    next_order: u64,
    /// When the last change that did not fit in `pending` was seen.
    overflow: Option<Instant>,
    /// When the gathered changes start a run.
    due: Option<Instant>,
    /// A watch run of this job is under way.
    running: bool,
}

/// The changes one watch run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// In the order they first changed.
    pub paths: Vec<PathBuf>,
    /// Some changed paths are not in `paths` (too many).
    pub truncated: bool,
    /// When the earliest of them was seen.
    pub first_seen: Instant,
}

impl WatchQueue {
    /// Notes a change seen at `now`. The first change of a quiet spell starts
    /// the debounce; later ones join it without postponing it.
    pub fn changed(&mut self, path: PathBuf, now: Instant, debounce: Duration) {
        if self.is_empty() && !self.running {
            self.due = Some(crate::clock::deadline(now, debounce));
        }
        if let Some(entry) = self.pending.get_mut(&path) {
            entry.1 = now;
        } else if self.pending.len() < MAX_PENDING {
            self.pending.insert(path, (self.next_order, now));
            self.next_order += 1;
        } else {
            self.overflow = Some(now);
        }
    }

    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.overflow.is_none()
    }

    /// When this job's gathered changes are due to run.
    pub fn due(&self) -> Option<Instant> {
        if self.running {
            None
        } else {
            self.due
        }
    }

    /// Looks again at `until` (a job that chains to this one is running).
    pub fn postpone(&mut self, until: Instant) {
        if self.due.is_some() {
            self.due = Some(until);
        }
    }

    /// At the due time: the changes to run the job for, or `None` when
    /// nothing is left to do. Changes last seen before `handled_from` (the
    /// start of a run of the job that succeeded) are already handled.
    pub fn take(&mut self, now: Instant, handled_from: Option<Instant>) -> Option<Batch> {
        if self.running || self.due.is_none_or(|d| d > now) {
            return None;
        }
        self.due = None;
        if let Some(start) = handled_from {
            self.pending.retain(|_, (_, seen)| *seen >= start);
            self.overflow = self.overflow.filter(|seen| *seen >= start);
        }
        let first_seen = self
            .pending
            .values()
            .map(|(_, seen)| *seen)
            .chain(self.overflow)
            .min()?;
        self.running = true;
        let mut entries: Vec<(PathBuf, u64)> = self
            .pending
            .drain()
            .map(|(p, (order, _))| (p, order))
            .collect();
        entries.sort_by_key(|(_, order)| *order);
        Some(Batch {
            paths: entries.into_iter().map(|(p, _)| p).collect(),
            truncated: self.overflow.take().is_some(),
            first_seen,
        })
    }

    /// The watch run ended: changes that came meanwhile give exactly one more
    /// run, once their debounce is over.
    pub fn finished(&mut self, now: Instant, debounce: Duration) {
        self.running = false;
        let first = self
            .pending
            .values()
            .map(|(_, seen)| *seen)
            .chain(self.overflow)
            .min();
        if let Some(first) = first {
            self.due = Some(crate::clock::deadline(first, debounce).max(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(2);

    fn plan(yaml: &str) -> Plan {
        let set = crate::source::yaml::parse_yaml(Path::new("/jobs.yaml"), yaml);
        let (plan, diagnostics) = Plan::build(set, chrono_tz::UTC);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        plan
    }

    /// A reload sets up its new jobs' watches on its own thread; the loop
    /// only takes them (a recursive watch on a big tree takes seconds).
    #[test]
    fn watches_prepared_by_a_reload_are_taken_without_arming_on_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let job = |name: &str, path: &Path| {
            format!(
                "  - {{name: {name}, command: {name}, watch: {{paths: [{}]}}}}\n",
                path.display()
            )
        };
        let before = plan(&format!("jobs:\n{}", job("a", &a)));
        let after = plan(&format!("jobs:\n{}{}", job("a", &a), job("b", &b)));
        let mut watches = JobWatches::new(FileWatch::default());
        watches.update(&before);
        assert_eq!(watches.armed, 1);
        let prepared = watches.armer().prepare(&before, &after);
        assert_eq!(prepared.0.len(), 1, "only the new job's watches");
        watches.update_prepared(&after, prepared);
        assert_eq!(watches.armed, 1, "nothing set up on the loop");
        assert_eq!(watches.len(), 2);
        std::fs::write(b.join("cert.pem"), "x").unwrap();
        let start = Instant::now();
        loop {
            match watches.changes.try_recv() {
                Ok(change) if change.job == "b" && change.relevant => break,
                Ok(_) => {}
                Err(_) => {
                    assert!(start.elapsed() < Duration::from_secs(10), "no event for b");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    #[test]
    fn changes_in_the_debounce_give_one_run_with_every_path() {
        let t0 = Instant::now();
        let mut q = WatchQueue::default();
        q.changed("/c/a".into(), t0, D);
        q.changed("/c/b".into(), t0 + Duration::from_secs(1), D);
        assert_eq!(q.due(), Some(t0 + D), "a later change does not postpone");
        assert_eq!(q.take(t0 + Duration::from_secs(1), None), None, "not yet");
        let batch = q.take(t0 + D, None).expect("due");
        assert_eq!(batch.paths, [PathBuf::from("/c/a"), PathBuf::from("/c/b")]);
        assert_eq!(batch.first_seen, t0);
        assert_eq!(q.due(), None);
    }

    #[test]
    fn changes_during_a_run_give_exactly_one_more_run_after_it() {
        let t0 = Instant::now();
        let mut q = WatchQueue::default();
        q.changed("/c/a".into(), t0, D);
        assert!(q.take(t0 + D, None).is_some());
        // Three changes while the run goes: no run now, one after.
        for s in 3..6 {
            q.changed(format!("/c/{s}").into(), t0 + Duration::from_secs(s), D);
            assert_eq!(q.due(), None, "no second run while one is going");
        }
        let end = t0 + Duration::from_secs(10);
        q.finished(end, D);
        assert_eq!(
            q.due(),
            Some(end),
            "the changes already waited their debounce"
        );
        assert_eq!(q.take(end, None).map(|b| b.paths.len()), Some(3));
        q.finished(end + Duration::from_secs(1), D);
        assert_eq!(q.due(), None, "nothing more: no burst");
    }

    #[test]
    fn a_run_that_started_after_the_changes_already_handled_them() {
        let t0 = Instant::now();
        let mut q = WatchQueue::default();
        q.changed("/certs/cert.pem".into(), t0, D);
        // A chained run of the job started after the change was seen.
        let started = t0 + Duration::from_millis(100);
        assert_eq!(q.take(t0 + D, Some(started)), None);
        // A change after that run's start still runs the job.
        q.changed("/certs/key.pem".into(), t0 + D, D);
        assert!(q.take(t0 + D + D, Some(started)).is_some());
    }

    #[test]
    fn memory_is_bounded_however_many_changes_come() {
        let t0 = Instant::now();
        let mut q = WatchQueue::default();
        for i in 0..(MAX_PENDING + 500) {
            q.changed(format!("/spool/{}", i % (MAX_PENDING + 100)).into(), t0, D);
        }
        assert_eq!(q.pending.len(), MAX_PENDING);
        let batch = q.take(t0 + D, None).expect("due");
        assert_eq!(batch.paths.len(), MAX_PENDING);
        assert!(batch.truncated, "the run is told the list is cut");
        // A path changing again and again is one entry.
        q.finished(t0 + D, D);
        for _ in 0..1000 {
            q.changed("/spool/busy.log".into(), t0 + D, D);
        }
        assert_eq!(q.pending.len(), 1);
    }

    #[test]
    fn events_at_or_below_a_watched_path_are_relevant() {
        let watched = [
            PathBuf::from("/etc/letsencrypt/live"),
            PathBuf::from("/run/x.pid"),
        ];
        let cases = [
            ("/etc/letsencrypt/live/a.org/cert.pem", true, false),
            ("/etc/letsencrypt/live", true, true),
            ("/etc/letsencrypt", false, true),
            ("/etc/letsencrypt/archive/a.org/cert1.pem", false, false),
            ("/run/x.pid", true, true),
            ("/run/other.pid", false, false),
            // A Kubernetes secret or ConfigMap update renames `..data`.
            ("/run/..data", true, false),
            ("/run/..2026_11_21_20_00_00.123", true, false),
        ];
        for (path, relevant, rearm) in cases {
            assert_eq!(
                classify(Path::new(path), &watched),
                (relevant, rearm),
                "{path}"
            );
        }
    }

    /// What the daemon's loop does with the changes: re-arm when told to,
    /// and report the first relevant one, if any comes within `limit`.
    fn first_relevant(watches: &mut JobWatches, limit: Duration) -> Option<Change> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match watches.changes.try_recv() {
                Ok(change) => {
                    if change.rearm {
                        watches.rearm(&change.job);
                    }
                    if change.relevant {
                        return Some(change);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        None
    }

    #[test]
    fn a_missing_directory_created_with_a_file_at_once_is_always_seen() {
        // `mkdir -p` then a write, racing the re-arming on every level:
        // the creation of a level can land between choosing the nearest
        // parent and the watch on it being in place.
        for round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let inbox = dir.path().join("a/b/c/inbox");
            let mut watches = JobWatches::new(FileWatch::default());
            let watch = watches.armer.arm("sync", vec![inbox.clone()], &[false]);
            watches.jobs.insert("sync".into(), watch);
            let writer = {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    std::fs::create_dir_all(&inbox).unwrap();
                    std::fs::write(inbox.join("x.json"), "{}").unwrap();
                })
            };
            let change = first_relevant(&mut watches, Duration::from_secs(10));
            writer.join().unwrap();
            let change = change.unwrap_or_else(|| panic!("round {round}: no change seen"));
            assert!(change.path.starts_with(&inbox), "{change:?}");
        }
    }

    #[test]
    fn a_path_that_exists_at_the_start_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut watches = JobWatches::new(FileWatch::default());
        let watch = watches
            .armer
            .arm("sync", vec![dir.path().to_path_buf()], &[true]);
        watches.jobs.insert("sync".into(), watch);
        assert!(first_relevant(&mut watches, Duration::from_millis(200)).is_none());
        std::fs::write(dir.path().join("x"), "1").unwrap();
        let change = first_relevant(&mut watches, Duration::from_secs(10)).expect("seen");
        assert_eq!(change.path, dir.path().join("x"));
    }

    #[test]
    fn missing_paths_are_watched_from_their_nearest_existing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/cert.pem");
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let got = targets(&[missing, file, dir.path().to_path_buf()]);
        assert_eq!(
            got,
            [(dir.path().to_path_buf(), notify::RecursiveMode::Recursive)]
        );
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            targets(&[sub.join("missing/cert.pem")]),
            [(sub, notify::RecursiveMode::NonRecursive)]
        );
    }
}
