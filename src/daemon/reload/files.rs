//! The last version of each source file that the daemon applied, and the
//! rule for what a reload applies, file by file (issue 11 #11):
//!
//! - a file whose new read is clean replaces its previous version;
//! - a file that is gone is gone (its jobs are removed), unless the directory
//!   it was in cannot be read: then it keeps its previous version;
//! - a new file with errors is taken as at start: its bad entries are left
//!   out (or the whole file, if it cannot be read), the errors logged;
//! - a file that was clean before and now has errors keeps its previous
//!   version until it is fixed, so a typo mid-edit never drops its jobs, and
//!   never holds back a change to another file;
//! - a file that was still changing when it was read keeps its previous
//!   version (a new one is left out) until a later reload reads it whole.
//!
//! With `--strict` (SPEC 8) a reload with any error applies nothing: the
//! whole previous schedule stays, as supercronic and yacron do. Knows
//! sources and plans; logs through `tracing`; no tokio, clock or store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use tracing::{error, warn};

use crate::job::{Diagnostic, Severity};
use crate::plan::Plan;
use crate::source::SourceFile;

/// One file as the daemon applies it.
#[derive(Debug, Clone)]
struct Loaded {
    file: SourceFile,
    /// No error in the file itself, nor in the plan about its entries.
    clean: bool,
}

/// Every file the running plan was built from, in reading order.
#[derive(Debug, Default)]
pub struct LoadedSources {
    files: Vec<Loaded>,
    /// `--strict`: a reload with any error keeps every file's previous version.
    strict: bool,
}

/// What a reload made of the files it read.
pub struct Applied {
    pub plan: Plan,
    /// Files that keep their previous version, each with why.
    pub kept: Vec<(PathBuf, &'static str)>,
    /// New files left out for now.
    pub left_out: Vec<PathBuf>,
    /// Errors logged (in files applied, and in new versions not applied).
    pub errors: usize,
    /// Those errors and the warnings, for `status` to name.
    pub problems: Vec<Diagnostic>,
}

/// Which version of a file a reload applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    New,
    KeepPrevious(&'static str),
    LeaveOut,
}

const HAS_ERRORS: &str = "it has errors";
const CHANGING: &str = "it was still changing while it was read";
const DIR_UNREADABLE: &str = "its directory cannot be read";
const STRICT: &str = "--strict refuses a reload with any error";

/// A file of the next plan: the version applied and, when that is the
/// previous one, why, and the errors of the new read that was not applied.
struct Entry {
    applied: Loaded,
    refused: Vec<Diagnostic>,
    why: Option<&'static str>,
}

impl LoadedSources {
    /// The files the daemon started with, and the findings of the plan built
    /// from them (which say which files were clean).
    pub fn new(files: Vec<SourceFile>, diagnostics: &[Diagnostic], strict: bool) -> Self {
        let dirty = error_paths(diagnostics);
        LoadedSources {
            strict,
            files: files
                .into_iter()
                .map(|file| Loaded {
                    clean: file.is_clean() && !dirty.contains(file.path.as_path()),
                    file,
                })
                .collect(),
        }
    }

    /// Applies a new read of the sources: `files` as read, `changing` the
    /// paths that changed while they were read. Logs each file's errors and
    /// what was kept, and returns the plan to switch to. The files' state
    /// becomes what the plan was built from.
    pub fn apply(
        &mut self,
        files: Vec<SourceFile>,
        changing: &BTreeSet<PathBuf>,
        zone: Tz,
    ) -> Applied {
        let before = self.strict.then(|| self.files.clone());
        let previous: HashMap<PathBuf, Loaded> = self
            .files
            .drain(..)
            .map(|l| (l.file.path.clone(), l))
            .collect();
        // A source directory that cannot be read (or a configured one that
        // is gone) is an error about the directory, not a removal of its files.
        let unreadable: Vec<PathBuf> = files
            .iter()
            .filter(|f| !f.is_clean())
            .map(|f| f.path.clone())
            .collect();
        let mut read: HashSet<PathBuf> = HashSet::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut left_out = Vec::new();
        for file in files {
            read.insert(file.path.clone());
            let old = previous.get(&file.path);
            match Self::choose(&file, old, changing.contains(&file.path)) {
                Choice::New => entries.push(Entry {
                    applied: Loaded {
                        clean: file.is_clean(),
                        file,
                    },
                    refused: Vec::new(),
                    why: None,
                }),
                Choice::KeepPrevious(why) => entries.push(Entry {
                    applied: old.cloned().expect("only a file read before is kept"),
                    // A half-written file's errors are no news.
                    refused: if why == CHANGING {
                        Vec::new()
                    } else {
                        file.set.diagnostics
                    },
                    why: Some(why),
                }),
                Choice::LeaveOut => left_out.push(file.path),
            }
        }
        let mut behind_unreadable: Vec<&Loaded> = previous
            .values()
            .filter(|old| {
                let path = &old.file.path;
                !read.contains(path) && unreadable.iter().any(|d| path != d && path.starts_with(d))
            })
            .collect();
        behind_unreadable.sort_by(|a, b| a.file.path.cmp(&b.file.path));
        for old in behind_unreadable {
            entries.push(Entry {
                applied: old.clone(),
                refused: Vec::new(),
                why: Some(DIR_UNREADABLE),
            });
        }

        let (mut plan, mut diagnostics) = build(&entries, zone);
        // A changed file whose entries the plan refuses (a bad schedule, a
        // chain to a job that does not exist) has errors too: once more with
        // its previous version, if that was clean.
        let dirty = error_paths(&diagnostics);
        let mut again = false;
        for entry in entries.iter_mut().filter(|e| e.why.is_none()) {
            let path = entry.applied.file.path.clone();
            if !dirty.contains(path.as_path()) {
                continue;
            }
            entry.applied.clean = false;
            let Some(old) = previous.get(&path).filter(|o| o.clean) else {
                continue;
            };
            if old.file.set.jobs == entry.applied.file.set.jobs {
                continue; // unchanged: the errors come from another file
            }
            let refused: Vec<Diagnostic> = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .filter(|d| d.origin.as_ref().is_some_and(|o| *o.path == *path))
                .cloned()
                .collect();
            entry.applied = old.clone();
            entry.refused = refused;
            entry.why = Some(HAS_ERRORS);
            again = true;
        }
        if again {
            (plan, diagnostics) = build(&entries, zone);
        }

        if let Some(before) = before {
            let refused: Vec<Diagnostic> = entries
                .iter()
                .flat_map(|e| e.refused.iter())
                .chain(diagnostics.iter())
                .filter(|d| d.severity == Severity::Error)
                .cloned()
                .collect();
            if !refused.is_empty() {
                return self.refuse_all(before, refused, zone);
            }
        }
        let mut errors = 0;
        let mut problems = Vec::new();
        for d in &diagnostics {
            match d.severity {
                Severity::Error => {
                    errors += 1;
                    error!("{d}");
                    problems.push(d.clone());
                }
                Severity::Warning => {
                    warn!("{d}");
                    problems.push(d.clone());
                }
                Severity::Note => {}
            }
        }
        let mut kept = Vec::new();
        for entry in &entries {
            let Some(why) = entry.why else { continue };
            let path = &entry.applied.file.path;
            for d in &entry.refused {
                if d.severity == Severity::Error {
                    errors += 1;
                    error!("{d}");
                    problems.push(d.clone());
                }
            }
            if why == CHANGING {
                warn!(
                    file = %path.display(),
                    "{}: not reloaded because {why}; its previous version stays in force \
                     until it is read whole (at its next change or SIGHUP)",
                    path.display()
                );
            } else {
                error!(
                    file = %path.display(),
                    "{}: not reloaded because {why}; its previous version stays in force \
                     until it is fixed",
                    path.display()
                );
            }
            kept.push((path.clone(), why));
        }
        for path in &left_out {
            warn!(
                file = %path.display(),
                "{}: not loaded yet because {CHANGING}; it is read again at its next change",
                path.display()
            );
        }
        self.files = entries.into_iter().map(|e| e.applied).collect();
        Applied {
            plan,
            kept,
            left_out,
            errors,
            problems,
        }
    }

    /// `--strict` and the new read has errors: every file keeps the version
    /// it had, the errors are logged and named for `status`.
    fn refuse_all(&mut self, before: Vec<Loaded>, refused: Vec<Diagnostic>, zone: Tz) -> Applied {
        for d in &refused {
            error!("{d}");
        }
        error!("{STRICT}: the previous schedule stays in force until the errors are fixed");
        let entries: Vec<Entry> = before
            .into_iter()
            .map(|applied| Entry {
                applied,
                refused: Vec::new(),
                why: Some(STRICT),
            })
            .collect();
        let (plan, _) = build(&entries, zone);
        let kept = entries
            .iter()
            .map(|e| (e.applied.file.path.clone(), STRICT))
            .collect();
        self.files = entries.into_iter().map(|e| e.applied).collect();
        Applied {
            plan,
            kept,
            left_out: Vec::new(),
            errors: refused.len(),
            problems: refused,
        }
    }

    /// The rule for one file: `new` as read now, `old` as applied before.
    fn choose(new: &SourceFile, old: Option<&Loaded>, changing: bool) -> Choice {
        match old {
            Some(_) if changing => Choice::KeepPrevious(CHANGING),
            None if changing => Choice::LeaveOut,
            Some(old) if old.clean && !new.is_clean() => Choice::KeepPrevious(HAS_ERRORS),
            _ => Choice::New,
        }
    }
}

fn build(entries: &[Entry], zone: Tz) -> (Plan, Vec<Diagnostic>) {
    let set = crate::source::merge(entries.iter().map(|e| e.applied.file.clone()));
    Plan::build(set, zone)
}

/// The files that some error is about.
fn error_paths(diagnostics: &[Diagnostic]) -> HashSet<&Path> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter_map(|d| d.origin.as_ref())
        .map(|o| &*o.path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{read_files, SourceOptions};
    use std::fs;

    fn job(name: &str, command: &str) -> String {
        format!("  - name: {name}\n    schedule: \"@daily\"\n    command: {command}\n")
    }

    struct Sources {
        _dir: tempfile::TempDir,
        root: PathBuf,
        opts: SourceOptions,
        loaded: LoadedSources,
    }

    impl Sources {
        /// A `--config` directory and `--system-crontabs` root, read once as
        /// at start.
        fn start(files: &[(&str, &str)]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            fs::create_dir_all(root.join("conf")).unwrap();
            fs::create_dir_all(root.join("etc/cron.d")).unwrap();
            let opts = SourceOptions {
                configs: vec![root.join("conf")],
                system_root: Some(root.clone()),
                ..Default::default()
            };
            let mut s = Sources {
                _dir: dir,
                root,
                opts,
                loaded: LoadedSources::default(),
            };
            for (rel, text) in files {
                s.write(rel, text);
            }
            let files = read_files(&s.opts);
            let (_, diagnostics) = Plan::build(crate::source::merge(files.clone()), Tz::UTC);
            s.loaded = LoadedSources::new(files, &diagnostics, false);
            s
        }

        fn write(&self, rel: &str, text: &str) {
            fs::write(self.root.join(rel), text).unwrap();
        }

        fn reload(&mut self) -> (Vec<(String, String)>, Applied) {
            let files = read_files(&self.opts);
            let applied = self.loaded.apply(files, &BTreeSet::new(), Tz::UTC);
            let mut jobs: Vec<(String, String)> = applied
                .plan
                .jobs()
                .iter()
                .map(|j| (j.name.clone(), j.spec.command.to_string()))
                .collect();
            jobs.sort();
            (jobs, applied)
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_plan_and_the_kept_files_hold_each_job_once() {
        // Issue 12: 100,000 jobs were held twice, in the plan and in the
        // files kept for the next reload. Both must point at one definition,
        // at start as after a reload; a job whose links the plan drops (an
        // error) gets a copy of its own, and the file keeps what it says.
        let mut s = Sources::start(&[
            (
                "conf/a.yaml",
                &format!(
                    "jobs:\n{}{}    on_success: [ghost]\n",
                    job("a", "run-a"),
                    job("b", "run-b")
                ),
            ),
            ("etc/cron.d/c", "0 1 * * * root /usr/bin/c\n"),
        ]);
        let files = read_files(&s.opts);
        let (plan, _) = Plan::build(crate::source::merge(files.clone()), Tz::UTC);
        let specs = |files: &[SourceFile]| -> Vec<std::sync::Arc<crate::job::JobSpec>> {
            files
                .iter()
                .flat_map(|f| f.set.jobs.iter().cloned())
                .collect()
        };
        let shared = |plan: &Plan, kept: &[std::sync::Arc<crate::job::JobSpec>], name: &str| {
            let planned = &plan.get(name).expect("in the plan").spec;
            kept.iter().any(|k| std::sync::Arc::ptr_eq(k, planned))
        };
        let kept = specs(&files);
        assert_eq!(kept.len(), 3);
        assert!(shared(&plan, &kept, "a"), "a YAML job is shared");
        assert!(shared(&plan, &kept, "c"), "a crontab job is shared");
        assert!(
            !shared(&plan, &kept, "b"),
            "b lost its link to ghost: a copy"
        );
        assert!(plan.get("b").expect("b").spec.on_success.is_empty());
        let b = kept
            .iter()
            .find(|k| k.name.as_deref() == Some("b"))
            .expect("b");
        assert_eq!(b.on_success.len(), 1, "the file's copy keeps the link");

        s.write("conf/a.yaml", &format!("jobs:\n{}", job("a", "run-a2")));
        let (_, applied) = s.reload();
        let kept: Vec<std::sync::Arc<crate::job::JobSpec>> = s
            .loaded
            .files
            .iter()
            .flat_map(|l| l.file.set.jobs.iter().cloned())
            .collect();
        assert_eq!(kept.len(), 2);
        assert!(shared(&applied.plan, &kept, "a"), "a changed job is shared");
        assert!(shared(&applied.plan, &kept, "c"), "an unchanged one too");
    }

    #[test]
    fn a_dangling_symlink_in_cron_d_does_not_hold_back_a_changed_neighbour() {
        let mut s =
            Sources::start(&[("etc/cron.d/backup", "0 1 * * * root /usr/bin/backup-old\n")]);
        std::os::unix::fs::symlink(s.root.join("nowhere"), s.root.join("etc/cron.d/broken"))
            .unwrap();
        s.write("etc/cron.d/backup", "0 1 * * * root /usr/bin/backup-new\n");
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("backup-new", "/usr/bin/backup-new")]));
        assert_eq!(applied.errors, 1, "the dangling link is reported");
        assert!(applied.kept.is_empty());
    }

    #[test]
    fn a_strict_reload_with_any_error_keeps_the_whole_previous_schedule() {
        let mut s = Sources::start(&[
            ("conf/a.yaml", &format!("jobs:\n{}", job("a", "old-a"))),
            ("conf/b.yaml", &format!("jobs:\n{}", job("b", "old-b"))),
        ]);
        s.loaded.strict = true;
        // a.yaml broken, b.yaml changed cleanly: leniency would apply b.
        s.write("conf/a.yaml", "jobs:\n  - name: a\n    command: [new-a\n");
        s.write("conf/b.yaml", &format!("jobs:\n{}", job("b", "new-b")));
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "old-a"), ("b", "old-b")]));
        assert_eq!(applied.kept.len(), 2);
        assert!(applied.errors >= 1);
        assert!(applied
            .problems
            .iter()
            .any(|d| d.severity == Severity::Error));
        // Fixed: every change applies.
        s.write("conf/a.yaml", &format!("jobs:\n{}", job("a", "new-a")));
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "new-a"), ("b", "new-b")]));
        assert!(applied.problems.is_empty());
    }

    #[test]
    fn a_good_file_that_becomes_broken_keeps_its_jobs_until_fixed() {
        let mut s = Sources::start(&[
            ("conf/a.yaml", &format!("jobs:\n{}", job("a", "old-a"))),
            ("conf/b.yaml", &format!("jobs:\n{}", job("b", "old-b"))),
        ]);
        // a.yaml mid-edit (a YAML syntax error), b.yaml changed.
        s.write("conf/a.yaml", "jobs:\n  - name: a\n    command: [new-a\n");
        s.write("conf/b.yaml", &format!("jobs:\n{}", job("b", "new-b")));
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "old-a"), ("b", "new-b")]));
        assert_eq!(applied.kept.len(), 1);
        assert!(applied.kept[0].0.ends_with("conf/a.yaml"));
        assert!(applied.errors >= 1);
        // Still broken at the next reload: still the old version.
        let (jobs, _) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "old-a"), ("b", "new-b")]));
        // Fixed: the new version.
        s.write("conf/a.yaml", &format!("jobs:\n{}", job("a", "new-a")));
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "new-a"), ("b", "new-b")]));
        assert!(applied.kept.is_empty());
        assert_eq!(applied.errors, 0);
    }

    #[test]
    fn a_change_the_plan_refuses_keeps_the_previous_version() {
        let mut s = Sources::start(&[("conf/a.yaml", &format!("jobs:\n{}", job("a", "old-a")))]);
        s.write(
            "conf/a.yaml",
            "jobs:\n  - name: a\n    schedule: \"61 * * * *\"\n    command: new-a\n",
        );
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "old-a")]));
        assert_eq!(applied.kept.len(), 1);
        assert_eq!(applied.errors, 1, "the bad schedule, once");
    }

    #[test]
    fn a_new_broken_file_is_left_out_as_at_start_and_its_good_lines_kept() {
        let mut s = Sources::start(&[("conf/a.yaml", &format!("jobs:\n{}", job("a", "a")))]);
        s.write("conf/new.yaml", "jobs: [\n");
        s.write(
            "etc/cron.d/mixed",
            "0 1 * * * root /usr/bin/good\n61 1 * * * root /usr/bin/bad\n",
        );
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "a"), ("good", "/usr/bin/good")]));
        assert_eq!(applied.errors, 2);
        assert!(applied.kept.is_empty(), "nothing to keep of a new file");
        // Its bad line fixed, the whole file applies.
        s.write(
            "etc/cron.d/mixed",
            "0 1 * * * root /usr/bin/good\n0 2 * * * root /usr/bin/bad\n",
        );
        s.write("conf/new.yaml", &format!("jobs:\n{}", job("n", "n")));
        let (jobs, _) = s.reload();
        assert_eq!(
            jobs,
            pairs(&[
                ("a", "a"),
                ("bad", "/usr/bin/bad"),
                ("good", "/usr/bin/good"),
                ("n", "n")
            ])
        );
    }

    #[test]
    fn a_removed_file_is_removed_but_a_vanished_config_directory_is_an_error() {
        let mut s = Sources::start(&[
            ("conf/a.yaml", &format!("jobs:\n{}", job("a", "a"))),
            ("conf/b.yaml", &format!("jobs:\n{}", job("b", "b"))),
            ("etc/cron.d/c", "0 1 * * * root /usr/bin/c\n"),
        ]);
        fs::remove_file(s.root.join("conf/b.yaml")).unwrap();
        fs::remove_file(s.root.join("etc/cron.d/c")).unwrap();
        let (jobs, _) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "a")]));
        fs::remove_dir_all(s.root.join("conf")).unwrap();
        let (jobs, applied) = s.reload();
        assert_eq!(
            jobs,
            pairs(&[("a", "a")]),
            "a configured directory that is gone"
        );
        assert_eq!(applied.kept.len(), 1);
        assert_eq!(applied.errors, 1);
    }

    #[test]
    fn symlink_loops_among_the_sources_are_reported_not_followed_forever() {
        let mut s = Sources::start(&[("conf/a.yaml", &format!("jobs:\n{}", job("a", "a")))]);
        std::os::unix::fs::symlink("loop.yaml", s.root.join("conf/loop.yaml")).unwrap();
        std::os::unix::fs::symlink(".", s.root.join("conf/self")).unwrap();
        std::os::unix::fs::symlink("loop", s.root.join("etc/cron.d/loop")).unwrap();
        s.write("conf/a.yaml", &format!("jobs:\n{}", job("a", "new-a")));
        let watched = s.opts.watch_paths();
        let snapshot = super::super::settle::Snapshot::take(&watched, &|p| s.opts.may_be_source(p));
        assert!(!snapshot.changed(&Default::default()).is_empty());
        let (jobs, applied) = s.reload();
        assert_eq!(jobs, pairs(&[("a", "new-a")]));
        assert_eq!(applied.errors, 2, "each loop is an unreadable file");
    }

    #[test]
    fn a_file_still_changing_keeps_its_previous_version_and_a_new_one_waits() {
        let mut s = Sources::start(&[("conf/a.yaml", &format!("jobs:\n{}", job("a", "old-a")))]);
        s.write("conf/a.yaml", &format!("jobs:\n{}", job("a", "new-a")));
        s.write("conf/n.yaml", &format!("jobs:\n{}", job("n", "n")));
        let changing: BTreeSet<PathBuf> = [s.root.join("conf/a.yaml"), s.root.join("conf/n.yaml")]
            .into_iter()
            .collect();
        let applied = s.loaded.apply(read_files(&s.opts), &changing, Tz::UTC);
        let names: Vec<&str> = applied
            .plan
            .jobs()
            .iter()
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
        assert_eq!(applied.plan.jobs()[0].spec.command.to_string(), "old-a");
        assert_eq!(applied.left_out.len(), 1);
        assert_eq!(
            applied.errors, 0,
            "a half-written file's errors are no news"
        );
    }
}
