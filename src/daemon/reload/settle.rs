//! Waiting for the sources to stop changing before they are read (issue 11
//! #10): a file written a few bytes at a time, or saved by an editor in
//! several steps, must never be applied half-written.
//!
//! A [`Snapshot`] is the metadata (device, inode, size, modification and
//! change times) of every watched path and of each entry of a watched
//! directory; the sources are read once a snapshot has stayed the same for
//! the settle time, and a file whose metadata changed while it was read is
//! read again. Owns only `stat`s and the waiting between them; knows nothing
//! of what a source says, nor of tokio (it runs on the reload's own thread).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the sources must stay unchanged before a reload reads them.
/// Editors and `kubectl cp` finish a file well within it; a file replaced by
/// an atomic rename is complete the moment it appears, so it is never seen
/// half-written (it still waits the settle time).
pub const SETTLE: Duration = Duration::from_secs(1);
/// The longest a reload waits for the sources to settle: a file that keeps
/// changing for longer keeps its previous version (and its next change
/// reloads again), so one busy file cannot hold back the others.
pub const MAX_SETTLE_WAIT: Duration = Duration::from_secs(30);
/// How often the sources are read when files change while they are read.
pub const READ_ATTEMPTS: usize = 3;

/// What `stat` says about a path, following symbolic links (a ConfigMap's
/// `..data` swap changes the inode behind the link), or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    Meta {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
    Unreadable(io::ErrorKind),
}

impl Stamp {
    fn of(path: &Path) -> Stamp {
        match fs::metadata(path) {
            Ok(m) => Stamp::Meta {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            },
            Err(e) => Stamp::Unreadable(e.kind()),
        }
    }
}

/// The stamps of the watched paths and of their directories' entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Stamp>);

impl Snapshot {
    /// Stats every path in `watched`, and each entry of those that are
    /// directories (not deeper: sources are never read deeper either) that
    /// `may_be_source` keeps.
    pub fn take(watched: &[PathBuf], may_be_source: &dyn Fn(&Path) -> bool) -> Snapshot {
        let mut stamps = BTreeMap::new();
        for path in watched {
            let stamp = Stamp::of(path);
            let is_dir = matches!(stamp, Stamp::Meta { .. }) && path.is_dir();
            stamps.insert(path.clone(), stamp);
            if !is_dir {
                continue;
            }
            let Ok(entries) = fs::read_dir(path) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let entry = entry.path();
                if may_be_source(&entry) {
                    stamps.insert(entry.clone(), Stamp::of(&entry));
                }
            }
        }
        Snapshot(stamps)
    }

    /// The paths whose stamp differs between the two snapshots (added,
    /// removed or changed).
    pub fn changed(&self, other: &Snapshot) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for (path, stamp) in &self.0 {
            if other.0.get(path) != Some(stamp) {
                out.insert(path.clone());
            }
        }
        for path in other.0.keys() {
            if !self.0.contains_key(path) {
                out.insert(path.clone());
            }
        }
        out
    }
}

/// How long to wait and how to look: real `stat`s and sleeps in the daemon,
/// scripted snapshots in tests.
pub struct Settler<'a> {
    pub settle: Duration,
    pub max_wait: Duration,
    pub look: &'a mut dyn FnMut() -> Snapshot,
    pub sleep: &'a mut dyn FnMut(Duration),
}

impl Settler<'_> {
    /// Waits until a snapshot stays the same for the settle time, at most
    /// `max_wait`. A first snapshot equal to `known` (what the previous read
    /// saw) is settled at once: nothing changed since. Returns the settled
    /// snapshot and the paths still changing when the wait gave up.
    pub fn wait(&mut self, known: Option<&Snapshot>) -> (Snapshot, BTreeSet<PathBuf>) {
        let mut last = (self.look)();
        if known == Some(&last) {
            return (last, BTreeSet::new());
        }
        let mut waited = Duration::ZERO;
        loop {
            (self.sleep)(self.settle);
            waited += self.settle;
            let now = (self.look)();
            let changed = last.changed(&now);
            if changed.is_empty() {
                return (now, changed);
            }
            if waited >= self.max_wait {
                return (now, changed);
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_written_in_pieces_is_read_once_it_stops_changing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.yaml");
        let watched = vec![dir.path().to_path_buf()];
        let mut f = fs::File::create(&file).unwrap();
        let pieces = ["jobs:\n", "  - name: a\n", "    command: x\n"];
        let mut written = 0;
        let mut sleeps = 0;
        let mut look = || Snapshot::take(&watched, &|_| true);
        // Each "sleep" lets the writer add one piece, until it is done.
        let mut sleep = |_: Duration| {
            sleeps += 1;
            if let Some(piece) = pieces.get(written) {
                f.write_all(piece.as_bytes()).unwrap();
                f.sync_all().unwrap();
                written += 1;
            }
        };
        let mut settler = Settler {
            settle: SETTLE,
            max_wait: MAX_SETTLE_WAIT,
            look: &mut look,
            sleep: &mut sleep,
        };
        let (snapshot, still_changing) = settler.wait(None);
        assert!(still_changing.is_empty());
        assert_eq!(sleeps, pieces.len() + 1, "settled after the last piece");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            pieces.concat(),
            "read only once complete"
        );
        // Nothing changed since: the next reload does not wait.
        let mut look = || Snapshot::take(&watched, &|_| true);
        let mut no_sleep = |_: Duration| panic!("waited although nothing changed");
        let mut settler = Settler {
            settle: SETTLE,
            max_wait: MAX_SETTLE_WAIT,
            look: &mut look,
            sleep: &mut no_sleep,
        };
        assert!(settler.wait(Some(&snapshot)).1.is_empty());
    }

    #[test]
    fn a_file_that_never_stops_changing_is_given_up_on_alone() {
        let dir = tempfile::tempdir().unwrap();
        let busy = dir.path().join("busy.yaml");
        let calm = dir.path().join("calm.yaml");
        fs::write(&calm, "jobs: []\n").unwrap();
        let watched = vec![dir.path().to_path_buf()];
        let mut f = fs::File::create(&busy).unwrap();
        let mut look = || Snapshot::take(&watched, &|_| true);
        let mut sleep = |_: Duration| {
            f.write_all(b"#\n").unwrap();
            f.sync_all().unwrap();
        };
        let mut settler = Settler {
            settle: SETTLE,
            max_wait: Duration::from_secs(5),
            look: &mut look,
            sleep: &mut sleep,
        };
        let (_, still_changing) = settler.wait(None);
        assert_eq!(still_changing.into_iter().collect::<Vec<_>>(), [busy]);
    }

    #[test]
    fn a_swapped_symlink_target_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "same").unwrap();
        fs::write(&b, "same").unwrap();
        let link = dir.path().join("jobs.yaml");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let before = Snapshot::take(std::slice::from_ref(&link), &|_| true);
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        let after = Snapshot::take(std::slice::from_ref(&link), &|_| true);
        assert!(before.changed(&after).contains(&link));
    }
}
