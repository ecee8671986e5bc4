//! Opening one system or spool crontab the way cron trusts it: the file is
//! opened once, the open file is checked (`fstat`), and that same descriptor
//! is read, so a file swapped in between the check and the read (an atomic
//! rename, a new link) is never what gets loaded.
//!
//! The open itself (`open_once`) is shared with the files a user names
//! (YAML job files, `--crontab` files), whose rules are [`super::trust_named`]'s.
//!
//! Owns cron's safety rules on links, owners and modes. Must not know what a
//! crontab line means (that is [`super::crontab`]) and names no clock, SQLite,
//! tokio or process.
//!
//! Decisions (Debian's cron, `database.c` `process_crontab`, checked or
//! exceeded):
//! - A spool file (a user crontab) is opened without following a link, as
//!   Debian does (`O_NOFOLLOW`): a link there is refused. `/etc/crontab` and
//!   `cron.d` entries may be links, as in Debian, but the link itself must be
//!   owned by a trusted user, and the checks are made on the file it leads to.
//! - Refused everywhere: set-uid or set-gid files (Debian's spool wants exactly
//!   0600), more than one hard link (Debian: "NUMBER OF HARD LINKS > 1"; a link
//!   elsewhere would let whoever can write there change the crontab), write
//!   access for group or others, and an owner that is not trusted.
//! - Trusted owners: root, and the user jobrun runs as (a file it owns adds
//!   only jobs it could run anyway); for a user crontab also the user it is
//!   named after, but only when jobrun runs as root (only then do its jobs run
//!   as that user; otherwise that user could add jobs that run as jobrun's).
//!   The rules hold whatever user jobrun runs as.
//! - Still more lenient than Debian's spool: mode 0644 is accepted (images
//!   ship such crontabs; reading them exposes nothing a write could abuse).
//! - Opening never blocks (`O_NONBLOCK`: a FIFO put in `cron.d` is skipped,
//!   not waited on), and the open file is read within the limit of every
//!   source ([`super::bounded`]).
//!
//! See: <https://salsa.debian.org/debian/cron/-/blob/master/database.c>

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::job::{Diagnostic, Origin};

/// Who must own a file for cron to trust it.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// `/etc/crontab` and `/etc/cron.d`: root (or jobrun's own user).
    System,
    /// A spool file: the user it is named after (or root, or jobrun's own user).
    User(&'a str),
    /// A file named by the user: a YAML job file or a `--crontab` file, whose
    /// jobs run as jobrun's own user: root (or jobrun's own user). Its rules
    /// are [`super::trust_named`]'s.
    Named,
}

/// What opening a crontab came to.
#[derive(Debug)]
pub enum Opened {
    /// A directory (the spool holds some): not a crontab, and not a finding.
    Directory,
    /// Not read; the diagnostic says why and how to fix it.
    Refused(Diagnostic),
    /// The bytes of the checked file.
    Content(Vec<u8>),
}

/// Opens, checks and reads the crontab at `path` for a jobrun running as
/// effective user `euid`.
pub fn open_crontab(path: &Path, owner: Owner<'_>, euid: u32) -> Opened {
    let (file, meta) = match open_once(path, owner, euid, Wait::Never) {
        Ok(opened) => opened,
        Err(finding) => return Opened::Refused(finding),
    };
    if meta.is_dir() {
        return Opened::Directory;
    }
    if !meta.is_file() {
        return Opened::Refused(Diagnostic::note(
            Some(Origin::new(path, 0)),
            "skipped: not a regular file",
        ));
    }
    if let Err(reason) = check_safety(path, &meta, owner, euid) {
        return Opened::Refused(refusal(path, owner, reason));
    }
    match super::bounded::read_from(file) {
        Ok(bytes) => Opened::Content(bytes),
        Err(e) => Opened::Refused(read_error(path, owner, e)),
    }
}

/// Whether opening may wait (for a FIFO's writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// `O_NONBLOCK`: a FIFO found in a directory is judged, never waited on.
    Never,
    /// A file the user named may be a FIFO (`--config <(cmd)`): it is waited
    /// on, as the user asked for it.
    AsNamed,
}

/// Opens `path` once and `fstat`s the open file: the one open of a source
/// file whose checks and read follow. A link is followed only for
/// [`Owner::System`] and [`Owner::Named`], and then only when the link itself
/// is owned by a trusted user. Whatever the file is (a directory, a FIFO), it
/// is the caller's to judge.
pub(super) fn open_once(
    path: &Path,
    owner: Owner<'_>,
    euid: u32,
    wait: Wait,
) -> Result<(File, Metadata), Diagnostic> {
    let follow = !matches!(owner, Owner::User(_));
    if follow {
        // The link itself: otherwise whoever may create links in the directory
        // could point cron at any file a trusted user owns.
        match std::fs::symlink_metadata(path) {
            Ok(link) if link.file_type().is_symlink() && !trusted_owner(link.uid(), euid) => {
                return Err(refusal(
                    path,
                    owner,
                    format!(
                        "refused: the symbolic link is owned by uid {}, and {}, link included; \
                         fix it with `chown -h {} {}`",
                        link.uid(),
                        whose(owner, euid),
                        if euid == 0 {
                            "root".to_owned()
                        } else {
                            euid.to_string()
                        },
                        path.display()
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(read_error(path, owner, e)),
        }
    }
    let mut flags = libc::O_CLOEXEC;
    if wait == Wait::Never {
        flags |= libc::O_NONBLOCK;
    }
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        // O_NOFOLLOW's answer for a link.
        Err(e) if !follow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refusal(
                path,
                owner,
                format!(
                "refused: a user crontab may not be a symbolic link (cron does not follow links \
                 in its spool, so that nobody can point it at another file); replace the link \
                 with the file itself, e.g. `cp --remove-destination \"$(readlink -f {p})\" {p}`",
                p = path.display()
            ),
            ));
        }
        Err(e) => return Err(read_error(path, owner, e)),
    };
    match file.metadata() {
        Ok(meta) => Ok((file, meta)),
        Err(e) => Err(read_error(path, owner, e)),
    }
}

/// A refusal: a warning for a crontab cron would skip (as cron logs it), an
/// error for a file named by the user (it was asked for, and is left out).
pub(super) fn refusal(path: &Path, owner: Owner<'_>, reason: String) -> Diagnostic {
    let origin = Some(Origin::new(path, 0));
    match owner {
        Owner::Named => Diagnostic::error(origin, reason),
        Owner::System | Owner::User(_) => Diagnostic::warning(origin, reason),
    }
}

fn read_error(path: &Path, owner: Owner<'_>, e: io::Error) -> Diagnostic {
    let what = match owner {
        Owner::Named => "reading the file",
        Owner::System | Owner::User(_) => "reading crontab",
    };
    Diagnostic::error(Some(Origin::new(path, 0)), format!("{what}: {e}"))
}

/// Root and jobrun's own user are trusted for every file.
pub(super) fn trusted_owner(uid: u32, euid: u32) -> bool {
    uid == 0 || uid == euid
}

pub(super) fn whose(owner: Owner<'_>, euid: u32) -> String {
    let me = if euid == 0 {
        String::new()
    } else {
        format!(" or by jobrun's own user (uid {euid})")
    };
    match owner {
        Owner::System => format!("a system crontab must be owned by root{me}"),
        Owner::User(_) if euid != 0 => format!(
            "a user crontab must be owned by root{me}: jobrun does not run as root, \
             so another user's file could add jobs that run as jobrun's user"
        ),
        Owner::User(_) => "a user crontab must be owned by its user (or root)".to_owned(),
        Owner::Named => format!("a job file must be owned by root{me}"),
    }
}

/// cron's rules for files whose jobs run as someone else: nobody but the owner
/// may write the file, it has one name only, carries no set-uid or set-gid
/// bit, and its owner is trusted. Otherwise a user who can write it (or a link
/// to it) could run commands as root, as another user or as jobrun's user.
/// `meta` is the open file's.
fn check_safety(path: &Path, meta: &Metadata, owner: Owner<'_>, euid: u32) -> Result<(), String> {
    let mode = meta.mode() & 0o7777;
    let p = path.display();
    if mode & 0o6000 != 0 {
        return Err(format!(
            "refused: the file is set-uid or set-gid (mode {mode:04o}), which a crontab never is, \
             and cron does not read such a file; fix it with `chmod ug-s {p}`"
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "refused: the file is group- or world-writable (mode {mode:04o}), so other users could add jobs to it, \
             and cron does not read such a file; fix it with `chmod go-w {p}`"
        ));
    }
    if meta.nlink() == 0 {
        return Err(
            "refused for now: the file was removed or replaced while it was read; \
             its replacement is read at the next reload"
                .to_owned(),
        );
    }
    if meta.nlink() != 1 {
        return Err(format!(
            "refused: the file has {} hard links, and cron reads only a file with one name \
             (whoever can write another name could change it); make it a file of its own, \
             e.g. `cp -p {p} {p}.new && mv {p}.new {p}`",
            meta.nlink()
        ));
    }
    let named = match owner {
        Owner::System | Owner::Named => None,
        Owner::User(name) => match crate::users::user_by_name(name) {
            Ok(Some(user)) => Some(user.uid),
            Ok(None) => {
                return Err(format!(
                    "refused: there is no user `{name}`, and a user crontab's jobs run as the user it is named after; \
                     rename the file to an existing user's name or create the user"
                ));
            }
            Err(e) => return Err(format!("refused: looking up user `{name}`: {e}")),
        },
    };
    let uid = meta.uid();
    // The named user is trusted only when jobrun can run jobs as that user.
    let allowed = trusted_owner(uid, euid) || (euid == 0 && named == Some(uid));
    if !allowed {
        let who = match owner {
            Owner::User(name) if euid == 0 => name.to_owned(),
            _ if euid == 0 => "root".to_owned(),
            // A non-root jobrun's own files are the ones it can be given.
            _ => euid.to_string(),
        };
        return Err(format!(
            "refused: the file is owned by uid {uid}, and {}, so that no other user can add jobs to it; \
             fix it with `chown {who} {p}`",
            whose(owner, euid)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Severity;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// A jobrun that does not run as root: the test's own user, or nobody
    /// when the tests run as root.
    fn non_root_jobrun() -> u32 {
        if me() == 0 {
            65534
        } else {
            me()
        }
    }

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "0 1 * * * root x\n").expect("write");
        // Set after writing: the umask would clear some bits.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[track_caller]
    fn refused(opened: Opened, severity: Severity, text: &str) {
        match opened {
            Opened::Refused(d) => {
                assert_eq!(d.severity, severity, "{d}");
                assert!(d.message.contains(text), "{d}");
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_set_uid_or_set_gid_crontab_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, mode) in [("suid", 0o4644), ("sgid", 0o2600)] {
            let path = file(dir.path(), name, mode);
            for owner in [Owner::System, Owner::User("root")] {
                refused(
                    open_crontab(&path, owner, me()),
                    Severity::Warning,
                    "chmod ug-s",
                );
            }
        }
    }

    #[test]
    fn a_hard_linked_crontab_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(dir.path(), "job", 0o644);
        std::fs::hard_link(&path, dir.path().join("elsewhere")).expect("link");
        refused(
            open_crontab(&path, Owner::System, me()),
            Severity::Warning,
            "2 hard links",
        );
        std::fs::remove_file(dir.path().join("elsewhere")).expect("unlink");
        assert!(matches!(
            open_crontab(&path, Owner::System, me()),
            Opened::Content(_)
        ));
    }

    #[test]
    fn a_world_writable_crontab_is_refused_by_a_jobrun_not_running_as_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(dir.path(), "job", 0o666);
        for owner in [Owner::System, Owner::User("root")] {
            refused(
                open_crontab(&path, owner, non_root_jobrun()),
                Severity::Warning,
                "chmod go-w",
            );
        }
    }

    #[test]
    fn a_symlink_in_the_spool_is_refused_and_a_cron_d_link_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = file(dir.path(), "target", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        refused(
            open_crontab(&link, Owner::User("root"), me()),
            Severity::Warning,
            "may not be a symbolic link",
        );
        match open_crontab(&link, Owner::System, me()) {
            Opened::Content(bytes) => assert_eq!(bytes, b"0 1 * * * root x\n"),
            other => panic!("{other:?}"),
        }
        // The target's rules still apply through the link.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        refused(
            open_crontab(&link, Owner::System, me()),
            Severity::Warning,
            "chmod go-w",
        );
    }

    #[test]
    fn a_fifo_is_skipped_without_blocking_and_a_directory_is_no_finding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        refused(
            open_crontab(&fifo, Owner::System, me()),
            Severity::Note,
            "not a regular file",
        );
        assert!(matches!(
            open_crontab(dir.path(), Owner::User("root"), me()),
            Opened::Directory
        ));
    }

    #[test]
    fn a_crontab_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(dir.path(), "big", 0o600);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_len(crate::limits::FILE_BYTES_MAX as u64 + 1)
            .expect("grow");
        refused(
            open_crontab(&path, Owner::System, me()),
            Severity::Error,
            "larger than",
        );
    }

    #[test]
    #[cfg_attr(
        not(jobrun_root),
        ignore = "files owned by another user need root to chown"
    )]
    fn a_file_owned_by_another_user_is_refused_whoever_jobrun_runs_as() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chown = |path: &Path, uid: u32| {
            std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
        };
        let other = file(dir.path(), "other", 0o600);
        chown(&other, 65533);
        let nobodys = file(dir.path(), "nobody", 0o600);
        chown(&nobodys, 65534);
        // jobrun as root: a system file must be root's; a user crontab may
        // be its user's.
        refused(
            open_crontab(&other, Owner::System, 0),
            Severity::Warning,
            "owned by uid 65533",
        );
        refused(
            open_crontab(&other, Owner::User("nobody"), 0),
            Severity::Warning,
            "chown nobody",
        );
        assert!(matches!(
            open_crontab(&nobodys, Owner::User("nobody"), 0),
            Opened::Content(_)
        ));
        // jobrun as uid 4242: only root's files and its own are trusted;
        // nobody's own crontab would add jobs running as uid 4242.
        for owner in [Owner::System, Owner::User("nobody")] {
            refused(
                open_crontab(&nobodys, owner, 4242),
                Severity::Warning,
                "jobrun's own user (uid 4242)",
            );
            refused(
                open_crontab(&nobodys, owner, 4242),
                Severity::Warning,
                "chown 4242",
            );
        }
        chown(&nobodys, 4242);
        assert!(matches!(
            open_crontab(&nobodys, Owner::System, 4242),
            Opened::Content(_)
        ));
    }
}
