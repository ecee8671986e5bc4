//! The safety rules of jobrun's own directories (the state directory, its
//! `locks/`, the `@reboot` marker directory): created 0700, and an existing
//! one that another user could change under jobrun is refused or warned
//! about, with the fix in the message.
//!
//! Owns only modes and owners of directories. Must not know SQLite, locks,
//! schedules or processes.
//!
//! Decisions:
//! - Trusted owners are jobrun's own user and root (a root-owned directory is
//!   only writable by a non-root jobrun through group or world bits, which
//!   the mode rules catch). Another owner is refused: it could replace the
//!   history, the locks or the markers.
//! - World-writable without the sticky bit is refused: anyone could delete or
//!   rename jobrun's files there (a lock file, the database's `-wal`).
//!   Group-writable, or world-writable with the sticky bit (`/tmp`-like), is
//!   a warning: others can still place files there, so jobrun refuses to
//!   follow links in it, but it is a deliberate setup more often than not.
//! - Where links are refused (`locks/`, marker directories inside the state
//!   directory), a link in place of the directory is refused; the state
//!   directory itself may be a link (`/var/lib/jobrun -> /srv/jobrun`), and its
//!   target is checked.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("creating {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("inspecting {path}: {source}")]
    Inspect { path: PathBuf, source: io::Error },
    #[error("{path} is {what}; {fix}")]
    Unsafe {
        path: PathBuf,
        what: String,
        fix: String,
    },
}

/// Whether the directory itself may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// The effective user id jobrun runs as.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Creates `dir` (and missing parents) with mode 0700 if it is missing, then
/// checks it for a jobrun running as `euid`. `Ok(Some(warning))` when it is
/// used but others may place files in it.
pub fn ensure(dir: &Path, links: Links, euid: u32) -> Result<Option<String>, DirError> {
    let inspect = |source| DirError::Inspect {
        path: dir.to_path_buf(),
        source,
    };
    let meta = match lookup(dir, links) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| DirError::Create {
                    path: dir.to_path_buf(),
                    source,
                })?;
            lookup(dir, links).map_err(inspect)?
        }
        Err(e) => return Err(inspect(e)),
    };
    check(dir, &meta, euid)
}

fn lookup(dir: &Path, links: Links) -> io::Result<std::fs::Metadata> {
    match links {
        Links::Follow => std::fs::metadata(dir),
        Links::Refuse => std::fs::symlink_metadata(dir),
    }
}

fn check(dir: &Path, meta: &std::fs::Metadata, euid: u32) -> Result<Option<String>, DirError> {
    let unsafe_dir = |what: String, fix: String| DirError::Unsafe {
        path: dir.to_path_buf(),
        what,
        fix,
    };
    let p = dir.display();
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(
            "a symbolic link, and jobrun does not follow links for its own directories".into(),
            format!("replace it with a directory: `rm {p} && mkdir -m 0700 {p}`"),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir(
            "not a directory".into(),
            "move it away so jobrun can create the directory, or choose another --state-dir".into(),
        ));
    }
    let uid = meta.uid();
    if uid != euid && uid != 0 {
        return Err(unsafe_dir(
            format!(
                "owned by uid {uid}, and jobrun runs as uid {euid}: its owner could change the run \
                 history, the locks or the markers jobrun keeps there"
            ),
            format!("fix it with `chown {euid} {p}`, or choose another --state-dir"),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(unsafe_dir(
            format!(
                "world-writable (mode {mode:04o}): anyone could delete or replace jobrun's files in it"
            ),
            format!("fix it with `chmod 0700 {p}`"),
        ));
    }
    if mode & 0o022 != 0 {
        return Ok(Some(format!(
            "{p} is writable by other users (mode {mode:04o}); jobrun keeps its state private \
             (0700); fix it with `chmod go-w {p}`"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        assert!(ensure(&dir, Links::Refuse, euid())
            .expect("ensure")
            .is_none());
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_world_writable_directory_is_refused_and_a_group_writable_one_warned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        chmod(&dir, 0o777);
        let err = ensure(&dir, Links::Follow, euid()).expect_err("refused");
        assert!(
            err.to_string().contains("world-writable (mode 0777)"),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 0700"), "{err}");
        chmod(&dir, 0o1777);
        let warning = ensure(&dir, Links::Follow, euid()).expect("used");
        assert!(warning.is_some_and(|w| w.contains("chmod go-w")));
        chmod(&dir, 0o770);
        let warning = ensure(&dir, Links::Follow, euid()).expect("used");
        assert!(warning.is_some_and(|w| w.contains("mode 0770")));
    }

    #[test]
    fn a_link_is_refused_where_links_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        chmod(&real, 0o700);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = ensure(&link, Links::Refuse, euid()).expect_err("refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(ensure(&link, Links::Follow, euid())
            .expect("followed")
            .is_none());
        // A dangling one is not followed to create its target either.
        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).expect("symlink");
        assert!(ensure(&dangling, Links::Refuse, euid()).is_err());
        assert!(!tmp.path().join("nowhere").exists());
    }

    #[test]
    #[cfg_attr(
        not(jobrun_root),
        ignore = "a directory of another user needs root to chown"
    )]
    fn a_directory_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::chown(tmp.path(), Some(4242), None).expect("chown");
        for jobrun in [0, 4243] {
            let err = ensure(tmp.path(), Links::Follow, jobrun)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("owned by uid 4242"), "{err}");
            assert!(err.contains(&format!("chown {jobrun}")), "{err}");
        }
        assert!(ensure(tmp.path(), Links::Follow, 4242).is_ok());
    }
}
