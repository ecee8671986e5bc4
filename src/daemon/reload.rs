//! Re-reading the sources while the daemon runs: on SIGHUP and when a source
//! file or directory changes (inotify through `notify`, debounced).
//!
//! A new configuration replaces the old one only when it has no errors; else
//! the errors are logged with `path:line` and the old schedule keeps running.
//! Runs in progress are never disturbed: they keep the job definition they
//! started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;

/// How long after a change the sources are read: editors and ConfigMap
/// updates write several files and renames in a burst. Later changes within
/// the window do not postpone the reload, so a busy directory cannot starve it.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Reads every source again and builds a plan from them.
pub type Loader = Box<dyn Fn() -> (Plan, Vec<Diagnostic>) + Send + Sync>;

/// How the daemon re-reads its configuration.
pub struct ReloadOptions {
    pub load: Loader,
    /// Files and directories to watch for changes.
    pub watch: Vec<PathBuf>,
}

/// Watches the source paths; every change sends one unit on the channel
/// (further changes before it is received are merged).
pub struct SourceWatcher {
    // Kept alive for its inotify watches.
    _watcher: Option<notify::RecommendedWatcher>,
    pub changes: mpsc::Receiver<()>,
}

/// Starts watching `paths`. A directory is watched for entries added,
/// removed, renamed or written (so an atomic ConfigMap swap of a `..data`
/// symlink is seen); a file is watched through its directory, since editors
/// and ConfigMaps replace files rather than write them in place. Paths that do
/// not exist are watched from their nearest existing parent.
pub fn watch(paths: &[PathBuf]) -> SourceWatcher {
    use notify::Watcher as _;
    let sources: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut dirs: Vec<PathBuf> = sources
        .iter()
        .filter_map(|p| {
            let mut dir = if p.is_dir() {
                p.clone()
            } else {
                p.parent()?.to_path_buf()
            };
            while !dir.is_dir() {
                dir = dir.parent()?.to_path_buf();
            }
            Some(dir)
        })
        .collect();
    dirs.sort();
    dirs.dedup();

    let (tx, changes) = mpsc::channel(1);
    let relevant = sources.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| affects_sources(p, &relevant)) {
            // A full channel already holds a pending change.
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot watch the sources for changes; reload with SIGHUP");
            return SourceWatcher {
                _watcher: None,
                changes,
            };
        }
    };
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch for changes");
        }
    }
    SourceWatcher {
        _watcher: Some(watcher),
        changes,
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

/// Loads the sources again. `Some(plan)` to switch to; `None` keeps the old
/// schedule (the errors are logged).
pub fn reload(options: &ReloadOptions, current: &Plan, why: &str) -> Option<Arc<Plan>> {
    let (plan, diagnostics) = (options.load)();
    super::memory::release_free_memory();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in &diagnostics {
        match d.severity {
            Severity::Error => error!("{d}"),
            Severity::Warning => warn!("{d}"),
            Severity::Note => {}
        }
    }
    if errors > 0 {
        error!(
            errors,
            trigger = why,
            "configuration not reloaded: the previous schedule keeps running"
        );
        return None;
    }
    let names = |p: &Plan| -> std::collections::BTreeSet<String> {
        p.jobs().iter().map(|j| j.name.clone()).collect()
    };
    let (old, new) = (names(current), names(&plan));
    let added: Vec<&String> = new.difference(&old).collect();
    let removed: Vec<&String> = old.difference(&new).collect();
    info!(
        trigger = why,
        jobs = plan.jobs().len(),
        added = ?added,
        removed = ?removed,
        "configuration reloaded"
    );
    Some(Arc::new(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
