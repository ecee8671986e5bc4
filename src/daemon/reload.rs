//! Re-reading the sources while the daemon runs: on SIGHUP and when a source
//! file or directory changes (inotify through `notify`, debounced).
//!
//! A reload never runs on the scheduler loop: it waits for the files to
//! settle ([`settle`]), reads them and builds the plan on a thread of its
//! own, while the loop keeps firing ticks, and the loop swaps the new plan in
//! when it is ready. A reload asked for while one runs is not run beside it:
//! one more runs after it. What is applied is decided file by file
//! (`files`): a file with errors never holds back the others, and a file
//! that loaded before keeps its previous version until it is fixed. Runs in
//! progress are never disturbed: they keep the job definition they started
//! with.

mod files;
pub mod settle;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::file_watch::{FileWatch, Subscription};
use super::watch::{Armer, Prepared};
use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;
use crate::source::SourceFile;
use files::LoadedSources;
use settle::{Settler, Snapshot};

/// How long after a change the sources are read: editors and ConfigMap
/// updates write several files and renames in a burst. Later changes within
/// the window do not postpone the reload, so a busy directory cannot starve it.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// The reload thread's stack: the main thread's, which reads the sources at
/// start, so a configuration that starts also reloads. (No walk over user
/// input recurses with its depth; this is the margin, not the fix.)
const RELOAD_STACK: usize = 8 << 20;

/// A reload running longer than this (settling included: up to three reads
/// of 30 s each) is reported when another is asked for.
const SLOW_RELOAD: Duration = Duration::from_secs(120);

/// Reads every source, file by file.
pub type Reader = Box<dyn Fn() -> Vec<SourceFile> + Send + Sync>;

/// Whether a path in a watched directory may be read as a source.
pub type SourceFilter = Box<dyn Fn(&std::path::Path) -> bool + Send + Sync>;

/// How the daemon re-reads its configuration.
pub struct ReloadOptions {
    pub read: Reader,
    /// The zone of schedules that name none.
    pub zone: Tz,
    /// Files and directories to watch for changes.
    pub watch: Vec<PathBuf>,
    /// Whether an entry of a watched directory may be a source: only those
    /// must settle before a reload reads.
    pub may_be_source: SourceFilter,
    /// The files the starting plan was built from, and that build's findings.
    pub started_with: (Vec<SourceFile>, Vec<Diagnostic>),
    /// `--strict`: a reload with any error keeps the whole previous schedule.
    pub strict: bool,
}

/// Watches the source paths; every change sends one unit on the channel
/// (further changes before it is received are merged).
pub struct SourceWatcher {
    // Kept alive for its watches and its route.
    _watches: Option<Subscription>,
    files: FileWatch,
    pub changes: mpsc::Receiver<()>,
    tx: mpsc::Sender<()>,
    sources: Vec<PathBuf>,
    /// The directories watched, each with the inode it had: inotify watches
    /// an inode, so a directory replaced (`mv new conf`, a missing one
    /// created) must be watched again.
    dirs: WatchedDirs,
}

/// Directories watched, each with its (device, inode) when it was watched.
type WatchedDirs = Vec<(PathBuf, Option<(u64, u64)>)>;

impl SourceWatcher {
    /// Watches again when a watched directory was replaced, or the
    /// directories to watch changed (a missing source directory appeared).
    /// Called after each reload.
    pub fn refresh(&mut self) {
        if watch_dirs(&self.sources) == self.dirs {
            return;
        }
        debug!("a watched directory was replaced; watching the sources again");
        let (watches, dirs) = arm(&self.files, &self.sources, self.tx.clone());
        self._watches = watches;
        self.dirs = dirs;
        // What changed in the new directory before it was watched is read
        // by one more reload.
        let _ = self.tx.try_send(());
    }
}

/// The directories to watch for `sources` (absolute), with their inodes:
/// each source directory, and the directory holding each source (so a
/// source replaced as a whole is seen); a missing one is watched through its
/// nearest existing parent.
fn watch_dirs(sources: &[PathBuf]) -> WatchedDirs {
    use std::os::unix::fs::MetadataExt;
    let existing = |p: &std::path::Path| -> Option<PathBuf> {
        let mut dir = p.to_path_buf();
        while !dir.is_dir() {
            dir = dir.parent()?.to_path_buf();
        }
        Some(dir)
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for source in sources {
        if source.is_dir() {
            dirs.push(source.clone());
        }
        if let Some(dir) = source.parent().and_then(existing) {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .map(|d| {
            let id = std::fs::metadata(&d).ok().map(|m| (m.dev(), m.ino()));
            (d, id)
        })
        .collect()
}

/// Starts watching `paths`. A directory is watched for entries added,
/// removed, renamed or written (so an atomic ConfigMap swap of a `..data`
/// symlink is seen); a file is watched through its directory, since editors
/// and ConfigMaps replace files rather than write them in place. Paths that do
/// not exist are watched from their nearest existing parent.
pub fn watch(files: &FileWatch, paths: &[PathBuf]) -> SourceWatcher {
    let sources: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let (tx, changes) = mpsc::channel(1);
    let (watches, dirs) = arm(files, &sources, tx.clone());
    SourceWatcher {
        _watches: watches,
        files: files.clone(),
        changes,
        tx,
        sources,
        dirs,
    }
}

/// Sets up the watches for `sources` on the daemon's watcher, sending on
/// `tx` for every relevant change.
fn arm(
    files: &FileWatch,
    sources: &[PathBuf],
    tx: mpsc::Sender<()>,
) -> (Option<Subscription>, WatchedDirs) {
    let dirs = watch_dirs(sources);
    let relevant = sources.to_vec();
    let handler = move |event: &notify::Event| {
        if event.paths.iter().any(|p| affects_sources(p, &relevant)) {
            // A full channel already holds a pending change.
            let _ = tx.try_send(());
        }
    };
    let targets: Vec<(PathBuf, notify::RecursiveMode)> = dirs
        .iter()
        .map(|(dir, _)| (dir.clone(), notify::RecursiveMode::NonRecursive))
        .collect();
    match files.subscribe(&targets, Box::new(handler)) {
        Ok((subscription, failed)) => {
            for (dir, e) in failed {
                warn!(dir = %dir.display(), error = %e, "cannot watch for changes");
            }
            (Some(subscription), dirs)
        }
        Err(e) => {
            warn!(error = %e, "cannot watch the sources for changes; reload with SIGHUP");
            (None, dirs)
        }
    }
}

/// Whether a change at `path` can change what the sources say: the source
/// itself, anything inside a source directory, a parent directory that was
/// missing, or Kubernetes' `..data` swap next to a source file. Other files
/// in a source file's directory (a job's own output, the state directory) do
/// not reload anything.
fn affects_sources(path: &std::path::Path, sources: &[PathBuf]) -> bool {
    let hidden_swap = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    sources.iter().any(|source| {
        path == source
            || path.parent() == Some(source.as_path())
            || source.starts_with(path)
            || (hidden_swap && path.parent() == source.parent())
    })
}

/// What a reload thread needs, shared with the loop's [`Reloads`].
struct Shared {
    read: Reader,
    zone: Tz,
    watch: Vec<PathBuf>,
    may_be_source: SourceFilter,
    /// Sets up the `watch:` jobs' watches of a new plan, off the loop.
    armer: Armer,
    /// Only one reload runs at a time ([`Reloads`] sees to it); the lock
    /// moves the state between reload threads.
    state: Mutex<State>,
    /// The source errors and warnings of the last reload (or the start), for
    /// `status`: in a lock of its own, held only to swap it, so the loop
    /// never waits for a reload that is reading.
    problems: Mutex<Vec<Diagnostic>>,
}

struct State {
    loaded: LoadedSources,
    /// What the files looked like when they were last read whole.
    seen: Option<Snapshot>,
}

/// The loop's handle on reloads: starts them, coalesces requests that come
/// while one runs, and hands back each new plan.
pub struct Reloads {
    shared: Arc<Shared>,
    running: Option<oneshot::Receiver<(Arc<Plan>, Prepared)>>,
    /// When the running reload started, and whether it was said to be slow.
    started: Option<(std::time::Instant, bool)>,
    /// A request that came while a reload ran: one more runs after it.
    again: Option<&'static str>,
    /// The plan the loop runs, which the next reload compares with.
    current: Arc<Plan>,
}

impl Reloads {
    pub fn new(options: ReloadOptions, current: &Arc<Plan>, armer: Armer) -> Self {
        let (files, diagnostics) = options.started_with;
        Reloads {
            shared: Arc::new(Shared {
                read: options.read,
                zone: options.zone,
                watch: options.watch,
                may_be_source: options.may_be_source,
                armer,
                problems: Mutex::new(
                    diagnostics
                        .iter()
                        .filter(|d| d.severity != Severity::Note)
                        .cloned()
                        .collect(),
                ),
                state: Mutex::new(State {
                    loaded: LoadedSources::new(files, &diagnostics, options.strict),
                    seen: None,
                }),
            }),
            running: None,
            started: None,
            again: None,
            current: Arc::clone(current),
        }
    }

    /// Starts a reload, or, while one runs, has one more run after it.
    pub fn request(&mut self, why: &'static str) {
        if self.running.is_some() {
            debug!(trigger = why, "a reload is running; another follows it");
            self.again = Some(why);
            // A source that never finishes reading (a FIFO, a hung network
            // file system) holds every later reload back: said once.
            if let Some((at, said)) = &mut self.started {
                if !*said && at.elapsed() > SLOW_RELOAD {
                    *said = true;
                    warn!(
                        trigger = why,
                        running_for = %humantime::format_duration(Duration::from_secs(at.elapsed().as_secs())),
                        "a reload is still reading the sources; later reloads wait for it (the current schedule keeps running)"
                    );
                }
            }
            return;
        }
        let (tx, rx) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let current = Arc::clone(&self.current);
        let spawned = std::thread::Builder::new()
            .name("jobrun-reload".into())
            .stack_size(RELOAD_STACK)
            .spawn(move || {
                let plan = reload(&shared, &current, why);
                let prepared = shared.armer.prepare(&current, &plan);
                // The loop may be gone (shutting down): nothing to hand over.
                let _ = tx.send((Arc::new(plan), prepared));
            });
        match spawned {
            Ok(_) => {
                self.running = Some(rx);
                self.started = Some((std::time::Instant::now(), false));
            }
            Err(e) => {
                error!(trigger = why, error = %e, "cannot start a reload; the previous schedule keeps running")
            }
        }
    }

    /// The next plan, when the running reload ends (never, while none runs),
    /// with the watches of its new `watch:` jobs set up. A reload that failed
    /// leaves the schedule as it was.
    pub async fn finished(&mut self) -> (Arc<Plan>, Prepared) {
        loop {
            let Some(running) = self.running.as_mut() else {
                return std::future::pending().await;
            };
            let result = running.await;
            self.running = None;
            if let Some(why) = self.again.take() {
                if let Ok((plan, _)) = &result {
                    self.current = Arc::clone(plan);
                }
                self.request(why);
            }
            match result {
                Ok((plan, prepared)) => {
                    self.current = Arc::clone(&plan);
                    return (plan, prepared);
                }
                Err(_) => {
                    error!("the reload failed; the previous schedule keeps running");
                }
            }
        }
    }
}

/// Asks for a reload, if the daemon reloads at all.
pub fn request(reloads: &mut Option<Reloads>, why: &'static str) {
    if let Some(reloads) = reloads {
        reloads.request(why);
    }
}

/// The source errors and warnings of the plan the last reload (or the start)
/// gave; none for a daemon that does not reload.
pub fn problems(reloads: &Option<Reloads>) -> Vec<Diagnostic> {
    reloads.as_ref().map_or_else(Vec::new, |r| {
        r.shared
            .problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    })
}

/// The next plan a reload gives (never, for a daemon that does not reload).
pub async fn next_plan(reloads: &mut Option<Reloads>) -> (Arc<Plan>, Prepared) {
    match reloads {
        Some(reloads) => reloads.finished().await,
        None => std::future::pending().await,
    }
}

/// One reload, on its own thread: waits for the files to settle, reads
/// them (again, if one changed while it was read), and builds the plan.
fn reload(shared: &Shared, current: &Plan, why: &str) -> Plan {
    let mut state = shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut look = || Snapshot::take(&shared.watch, &shared.may_be_source);
    let mut sleep = std::thread::sleep;
    let mut settler = Settler {
        settle: settle::SETTLE,
        max_wait: settle::MAX_SETTLE_WAIT,
        look: &mut look,
        sleep: &mut sleep,
    };
    let mut known = state.seen.clone();
    let mut attempt = 1;
    let (files, changing, seen) = loop {
        let (before, mut changing) = settler.wait(known.as_ref());
        let files = (shared.read)();
        let after = (settler.look)();
        let changed = before.changed(&after);
        if changed.is_empty() || attempt == settle::READ_ATTEMPTS {
            changing.extend(changed);
            break (files, changing, after);
        }
        info!(
            trigger = why,
            changed = changed.len(),
            "a source changed while it was read; reading it again once it settles"
        );
        known = None;
        attempt += 1;
    };
    let applied = state.loaded.apply(files, &changing, shared.zone);
    state.seen = changing.is_empty().then_some(seen);
    drop(state);
    *shared
        .problems
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = applied.problems.clone();
    super::memory::release_free_memory();
    let names =
        |p: &Plan| -> BTreeSet<String> { p.jobs().iter().map(|j| j.name.clone()).collect() };
    let (old, new) = (names(current), names(&applied.plan));
    let added: Vec<&String> = new.difference(&old).collect();
    let removed: Vec<&String> = old.difference(&new).collect();
    let line = format!(
        "configuration reloaded{}",
        if applied.kept.is_empty() && applied.left_out.is_empty() {
            ""
        } else {
            "; some files keep their previous version (see above)"
        }
    );
    if applied.errors > 0 || !applied.kept.is_empty() {
        warn!(
            trigger = why,
            jobs = applied.plan.jobs().len(),
            added = ?added,
            removed = ?removed,
            errors = applied.errors,
            kept_previous = applied.kept.len(),
            "{line}"
        );
    } else {
        info!(
            trigger = why,
            jobs = applied.plan.jobs().len(),
            added = ?added,
            removed = ?removed,
            "{line}"
        );
    }
    applied.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Reloads of an empty plan, reading sources with `read` (no files to
    /// watch or settle).
    fn reloads_reading(read: Reader) -> Reloads {
        Reloads::new(
            ReloadOptions {
                read,
                zone: Tz::UTC,
                watch: Vec::new(),
                may_be_source: Box::new(|_| true),
                started_with: (Vec::new(), Vec::new()),
                strict: false,
            },
            &Arc::new(Plan::default()),
            super::super::watch::JobWatches::new(FileWatch::default()).armer(),
        )
    }

    /// A reload that panics (a bug in a reader) leaves the running schedule
    /// alone, and the next reload works.
    #[test]
    fn a_reload_that_panics_keeps_the_schedule_and_the_next_one_works() {
        let calls = Arc::new(AtomicUsize::new(0));
        let read: Reader = {
            let calls = calls.clone();
            Box::new(move || {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a reader bug");
                }
                Vec::new()
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reloads = Some(reloads_reading(read));
            request(&mut reloads, "SIGHUP");
            let failed = tokio::time::timeout(Duration::from_secs(5), next_plan(&mut reloads));
            assert!(failed.await.is_err(), "no plan from a failed reload");
            request(&mut reloads, "SIGHUP");
            let plan = tokio::time::timeout(Duration::from_secs(5), next_plan(&mut reloads));
            assert!(plan.await.is_ok(), "the next reload gives a plan");
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Requests that come while a reload runs are not run beside it, and
    /// however many they are, one more reload follows.
    #[test]
    fn reloads_asked_for_during_a_reload_are_coalesced_into_one_more() {
        let reads = Arc::new(AtomicUsize::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let most_inside = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let read: Reader = {
            let (reads, inside, most_inside) = (reads.clone(), inside.clone(), most_inside.clone());
            Box::new(move || {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most_inside.fetch_max(now, Ordering::SeqCst);
                if reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = entered_tx.send(());
                    let _ = released.lock().unwrap().recv();
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                Vec::new()
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reloads = Some(reloads_reading(read));
            request(&mut reloads, "SIGHUP");
            entered.recv().unwrap();
            for _ in 0..5 {
                request(&mut reloads, "SIGHUP");
                request(&mut reloads, "file change");
            }
            release.send(()).unwrap();
            next_plan(&mut reloads).await;
            next_plan(&mut reloads).await;
            let third = tokio::time::timeout(Duration::from_millis(100), next_plan(&mut reloads));
            assert!(third.await.is_err(), "no third reload");
        });
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(most_inside.load(Ordering::SeqCst), 1, "never two at once");
    }

    #[test]
    fn only_changes_to_sources_reload() {
        let sources = vec![
            PathBuf::from("/etc/jobrun/jobs.yaml"),
            PathBuf::from("/etc/jobrun/jobs.d"),
            PathBuf::from("/root/etc/cron.d"),
        ];
        let yes = [
            "/etc/jobrun/jobs.yaml",
            "/etc/jobrun/jobs.d/backup.yaml",
            "/etc/jobrun/jobs.d",
            "/etc/jobrun/..data",
            "/root/etc/cron.d/certbot",
            "/root/etc",
        ];
        let no = [
            "/etc/jobrun/state/jobrun.db",
            "/etc/jobrun/ticks.txt",
            "/etc/other.yaml",
        ];
        for p in yes {
            assert!(affects_sources(Path::new(p), &sources), "{p}");
        }
        for p in no {
            assert!(!affects_sources(Path::new(p), &sources), "{p}");
        }
    }
}
