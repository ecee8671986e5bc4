//! Job sources: YAML job files ([`yaml`]), crontab files ([`crontab`]) and the
//! crond-replacement discovery of system and user crontabs ([`system`]), read
//! into [`crate::job::SourceSet`]s with `path:line` provenance.
//!
//! Schedule expressions are passed through as text for `schedule` to parse;
//! merging belongs to `plan`. Sources name no SQLite, tokio, process or clock.

pub mod bounded;
pub mod crontab;
mod known_users;
pub mod supercronic;
pub mod system;
pub mod trust;
pub mod trust_named;
pub mod yaml;
mod yaml_locate;
mod yaml_scan;
mod yaml_slot;

use std::path::{Path, PathBuf};

use crate::job::{Diagnostic, Origin, SourceSet};

/// Which sources to read. The command line resolves defaults and environment
/// variables before building this, so reading sources is a pure function of it.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// YAML files or directories (`--config`).
    pub configs: Vec<PathBuf>,
    /// User-format crontabs (`--crontab`).
    pub crontabs: Vec<PathBuf>,
    /// supercronic crontabs (`--supercronic`).
    pub supercronics: Vec<PathBuf>,
    /// Root of the system crontabs (`--system-crontabs[=ROOT]`).
    pub system_root: Option<PathBuf>,
    /// The effective user id jobrun runs as: cron's ownership and permission
    /// rules trust root and this user (they apply whatever user it is).
    pub euid: u32,
}

impl SourceOptions {
    /// The files and directories whose changes may change the jobs: what a
    /// daemon watches to reload.
    pub fn watch_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .configs
            .iter()
            .chain(&self.crontabs)
            .chain(&self.supercronics)
            .cloned()
            .collect();
        if let Some(root) = &self.system_root {
            for rel in system::WATCHED {
                paths.push(root.join(rel));
            }
        }
        paths
    }

    /// Whether `path`, an entry of a watched directory, may be read as a
    /// source (as [`read_all`] chooses them): a `*.yaml`/`*.yml` file of a
    /// `--config` directory; any entry of a crontab directory. Hidden names
    /// never are. What else a job writes into those directories (a log, a
    /// lock) is no source, and must not hold a reload back while it changes.
    pub fn may_be_source(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            return false;
        }
        let in_config_dir = path
            .parent()
            .is_some_and(|dir| self.configs.iter().any(|c| c == dir));
        !in_config_dir || name.ends_with(".yaml") || name.ends_with(".yml")
    }

    /// True when no source of any kind is configured.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
            && self.crontabs.is_empty()
            && self.supercronics.is_empty()
            && self.system_root.is_none()
    }
}

/// Reads every source. Never fails as a whole: unreadable files and bad lines
/// become diagnostics, and everything that could be read is returned.
pub fn read_all(opts: &SourceOptions) -> SourceSet {
    let mut set = SourceSet::default();
    for path in &opts.configs {
        set.extend(read_config_path(path, opts.euid));
    }
    for path in &opts.crontabs {
        set.extend(system::read_user_crontab(path, opts.euid));
    }
    for path in &opts.supercronics {
        set.extend(supercronic::read_supercronic_file(path, opts.euid));
    }
    if let Some(root) = &opts.system_root {
        set.extend(system::read_system_crontabs(root, opts.euid));
    }
    set.own_user = Some(own_user());
    set
}

/// What one file of the sources says: its jobs and its findings (a finding
/// about a directory, such as one that cannot be listed, is the directory's).
/// A reload decides file by file what to apply (see `daemon::reload`).
#[derive(Debug, Clone, Default)]
pub struct SourceFile {
    pub path: PathBuf,
    pub set: SourceSet,
}

impl SourceFile {
    /// True when nothing in the file is an error.
    pub fn is_clean(&self) -> bool {
        !self
            .set
            .diagnostics
            .iter()
            .any(|d| d.severity == crate::job::Severity::Error)
    }
}

/// Reads every source as [`read_all`] does, file by file (what `check` and
/// the listings show keeps [`read_all`]'s order of findings). A file that
/// gave neither a job nor a finding (an empty file) is absent.
pub fn read_files(opts: &SourceOptions) -> Vec<SourceFile> {
    let mut files = Vec::new();
    for path in &opts.configs {
        files.extend(by_file(read_config_path(path, opts.euid)));
    }
    for path in &opts.crontabs {
        files.extend(by_file(system::read_user_crontab(path, opts.euid)));
    }
    for path in &opts.supercronics {
        files.extend(by_file(supercronic::read_supercronic_file(path, opts.euid)));
    }
    if let Some(root) = &opts.system_root {
        files.extend(by_file(system::read_system_crontabs(root, opts.euid)));
    }
    files
}

/// Everything the files say, as one set, in their order.
pub fn merge(files: impl IntoIterator<Item = SourceFile>) -> SourceSet {
    let mut set = SourceSet::default();
    for file in files {
        set.extend(file.set);
    }
    set.own_user = Some(own_user());
    set
}

/// The user jobrun runs as (its effective uid), for the merge rule.
fn own_user() -> crate::job::OwnUser {
    let uid = nix::unistd::geteuid();
    crate::job::OwnUser {
        name: crate::users::user_by_uid(uid.as_raw())
            .ok()
            .flatten()
            .map(|u| u.name),
        uid: uid.as_raw(),
    }
}

/// Splits what a reader gave by the file each job and finding comes from
/// (its origin's path), keeping the order of first appearance. Readers keep
/// their shape: the split is by provenance, which every job and finding has.
fn by_file(set: SourceSet) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = Vec::new();
    let mut at: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    let mut slot = |files: &mut Vec<SourceFile>, path: &Path| -> usize {
        *at.entry(path.to_path_buf()).or_insert_with(|| {
            files.push(SourceFile {
                path: path.to_path_buf(),
                set: SourceSet::default(),
            });
            files.len() - 1
        })
    };
    for job in set.jobs {
        let i = slot(&mut files, &job.origin.path);
        files[i].set.jobs.push(job);
    }
    for d in set.diagnostics {
        let path = d
            .origin
            .as_ref()
            .map(|o| o.path.to_path_buf())
            .unwrap_or_default();
        let i = slot(&mut files, &path);
        files[i].set.diagnostics.push(d);
    }
    if let Some(history) = set.history {
        let i = slot(&mut files, &history.origin.path);
        files[i].set.history = Some(history);
    }
    files
}

/// A YAML job file, or a directory whose `*.yaml`/`*.yml` files are read in
/// name order (hidden files skipped, as editors leave them behind). Each file,
/// and the directory, is checked first ([`trust_named`]) for a jobrun running
/// as `euid`.
fn read_config_path(path: &Path, euid: u32) -> SourceSet {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return SourceSet {
                jobs: Vec::new(),
                diagnostics: vec![Diagnostic::error(
                    Some(Origin::new(path, 0)),
                    format!("reading job file: {e}"),
                )],
                history: None,
                own_user: None,
            }
        }
    };
    if !meta.is_dir() {
        return yaml::read_yaml_file(path, euid, trust_named::Naming::Given);
    }
    let mut set = SourceSet::default();
    match trust_named::check_config_dir(path, euid) {
        Ok(warnings) => set.diagnostics.extend(warnings),
        // Refused as a whole: its files keep their last good version in a
        // daemon (a directory with an error is not a removal of its files).
        Err(refused) => {
            set.diagnostics.push(refused);
            return set;
        }
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            set.diagnostics.push(Diagnostic::error(
                Some(Origin::new(path, 0)),
                format!("reading job directory: {e}"),
            ));
            return set;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // One that cannot be looked at (a dangling or looping symlink)
            // is read, so that its error names it rather than it vanishing;
            // a directory or FIFO so named is no job file.
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && std::fs::metadata(p).map_or(true, |m| m.is_file())
        })
        .collect();
    files.sort();
    for file in files {
        set.extend(yaml::read_yaml_file(
            &file,
            euid,
            trust_named::Naming::Listed,
        ));
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dangling_link_in_a_config_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.yaml"),
            "jobs:\n  - {name: a, schedule: \"@daily\", command: a}\n",
        )
        .expect("write");
        std::os::unix::fs::symlink("nowhere.yaml", dir.path().join("gone.yaml")).expect("link");
        std::os::unix::fs::symlink("loop.yaml", dir.path().join("loop.yaml")).expect("link");
        std::fs::create_dir(dir.path().join("sub.yaml")).expect("mkdir");
        let set = read_all(&SourceOptions {
            configs: vec![dir.path().to_path_buf()],
            ..Default::default()
        });
        assert_eq!(set.jobs.len(), 1);
        let errors: Vec<String> = set.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("gone.yaml"), "{errors:?}");
        assert!(errors[1].contains("loop.yaml"), "{errors:?}");
    }

    #[test]
    fn only_what_may_be_read_counts_as_a_source_entry() {
        let opts = SourceOptions {
            configs: vec!["/etc/jobrun/jobs.d".into(), "/etc/jobrun/jobs.yaml".into()],
            system_root: Some("/".into()),
            ..Default::default()
        };
        for yes in [
            "/etc/jobrun/jobs.d/backup.yaml",
            "/etc/jobrun/jobs.d/a.yml",
            "/etc/cron.d/certbot",
            "/var/spool/cron/crontabs/www-data",
        ] {
            assert!(opts.may_be_source(Path::new(yes)), "{yes}");
        }
        for no in [
            "/etc/jobrun/jobs.d/output.log",
            "/etc/jobrun/jobs.d/.backup.yaml.swp",
            "/etc/jobrun/jobs.d/..data",
            "/etc/cron.d/.placeholder",
        ] {
            assert!(!opts.may_be_source(Path::new(no)), "{no}");
        }
    }
}
