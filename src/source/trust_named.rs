//! Opening the source files a user names: YAML job files (`--config FILE`,
//! the files of a `--config DIR`, the defaults, `$JOBRUN_CONFIG`) and
//! `--crontab FILE` crontabs, whose jobs run as jobrun's own user. Like every
//! crontab ([`super::trust`], whose open this is), a file is opened once, its
//! checks are made on the open file (`fstat`, `fstatvfs`) and that same
//! descriptor is read, so a file swapped in by a rename between the check and
//! the read is never what gets loaded.
//!
//! Owns the rules for these files and their directories. Must not know what a
//! line of them means (that is [`super::yaml`] and [`super::crontab`]) and
//! names no clock, SQLite, tokio or process.
//!
//! Decisions (the rules hold whatever user jobrun runs as):
//! - Refused, with an error naming the fix (the file is left out like any
//!   broken source): set-uid or set-gid files, world-writable files, and files
//!   owned by anyone but root or jobrun's own user: any of them would let
//!   another user add commands that run as jobrun's user (root, often). A
//!   `--config DIR` that is world-writable without the sticky bit, or owned by
//!   an untrusted user, is refused as a whole: anyone could drop a file in it.
//! - A warning, the file still read: a group-writable file (or directory).
//!   Kubernetes ConfigMap and Secret volumes with an `fsGroup` make their
//!   files 0664 and group-owned, and refusing them would refuse the common
//!   case; the warning says which group can add jobs.
//! - A warning, the file still read: more than one hard link. Unlike a cron
//!   spool (where Debian refuses it), the name is one the user chose, and
//!   writing through another name needs write access to the same file, which
//!   the mode and owner rules above already limit; tools such as `rsync
//!   --link-dest`, ostree and Nix stores hard-link files on purpose.
//! - Links are followed (ConfigMap files are links through `..data`, owned by
//!   root), but the link named must itself be owned by a trusted user, as in
//!   `cron.d`; the checks are made on the file it leads to.
//! - Write permission is not judged on a read-only mount (`fstatvfs`): nobody
//!   can write such a file, whatever its mode (ConfigMap volumes are mounted
//!   read-only, their directory 0777).
//! - The checks on a directory are made on the directory opened; its entries
//!   are then listed by path and each file is opened and checked on its own.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::statvfs::{fstatvfs, FsFlags};

use super::trust::{open_once, refusal, trusted_owner, whose, Owner, Wait};
use crate::job::{Diagnostic, Origin};

/// The bytes of a checked file and the warnings about it.
#[derive(Debug)]
pub struct Checked {
    pub bytes: Vec<u8>,
    pub warnings: Vec<Diagnostic>,
}

/// How the file came to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Named by the user (`--config FILE`, `--crontab FILE`, a default,
    /// `$JOBRUN_CONFIG`): anything but a directory is read, a FIFO too (as
    /// `--config <(cmd)` gives), waiting for its writer as the user asked.
    Given,
    /// An entry of a `--config` directory: only a regular file is read, and
    /// opening it never waits (a FIFO put there is not a hang).
    Listed,
}

/// Opens, checks and reads the file at `path` for a jobrun running as
/// effective user `euid`; an error (with the fix) when it is refused or
/// cannot be read.
pub fn read_named(path: &Path, euid: u32, naming: Naming) -> Result<Checked, Diagnostic> {
    let wait = match naming {
        Naming::Given => Wait::AsNamed,
        Naming::Listed => Wait::Never,
    };
    let (file, meta) = open_once(path, Owner::Named, euid, wait)?;
    let what = if meta.is_dir() {
        Some("a directory")
    } else if naming == Naming::Listed && !meta.is_file() {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(Diagnostic::error(
            Some(Origin::new(path, 0)),
            format!("reading the file: {what}; name a regular file"),
        ));
    }
    let warnings = check(path, &Facts::of(&file, &meta), euid, Kind::File)?;
    match super::bounded::read_from(file) {
        Ok(bytes) => Ok(Checked { bytes, warnings }),
        Err(e) => Err(Diagnostic::error(
            Some(Origin::new(path, 0)),
            format!("reading the file: {e}"),
        )),
    }
}

/// Checks the `--config` directory at `path`: the warnings about it, or the
/// error that refuses it (none of its files is then read).
pub fn check_config_dir(path: &Path, euid: u32) -> Result<Vec<Diagnostic>, Diagnostic> {
    let (dir, meta) = open_once(path, Owner::Named, euid, Wait::Never)?;
    check(path, &Facts::of(&dir, &meta), euid, Kind::Directory)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
}

/// What the rules look at, all of the open file.
#[derive(Clone, Copy, Debug)]
struct Facts {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    /// On a read-only mount: nobody writes it, whatever its mode says.
    read_only: bool,
}

impl Facts {
    fn of(file: &File, meta: &Metadata) -> Facts {
        Facts {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            // If the question cannot be answered, the mode is judged.
            read_only: fstatvfs(file).is_ok_and(|fs| fs.flags().contains(FsFlags::ST_RDONLY)),
        }
    }
}

/// The rules of the module doc: `Err` refuses the file.
fn check(path: &Path, facts: &Facts, euid: u32, kind: Kind) -> Result<Vec<Diagnostic>, Diagnostic> {
    let p = path.display();
    let Facts {
        mode,
        uid,
        gid,
        nlink,
        read_only,
    } = *facts;
    let refuse = |reason: String| Err(refusal(path, Owner::Named, reason));
    let mut warnings = Vec::new();
    if kind == Kind::File && mode & 0o6000 != 0 {
        return refuse(format!(
            "refused: the file is set-uid or set-gid (mode {mode:04o}), which a job file never is; \
             fix it with `chmod ug-s {p}`"
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if !read_only && mode & 0o002 != 0 && !(kind == Kind::Directory && sticky) {
        return refuse(match kind {
            Kind::File => format!(
                "refused: the file is world-writable (mode {mode:04o}), so any user could add \
                 commands that run as jobrun's user; fix it with `chmod o-w {p}`"
            ),
            Kind::Directory => format!(
                "refused: the directory is world-writable without the sticky bit \
                 (mode {mode:04o}), so any user could add a job file to it; \
                 fix it with `chmod o-w {p}`"
            ),
        });
    }
    if !trusted_owner(uid, euid) {
        let who = if euid == 0 {
            "root".to_owned()
        } else {
            euid.to_string()
        };
        let what = match kind {
            Kind::File => "file",
            Kind::Directory => "directory",
        };
        return refuse(format!(
            "refused: the {what} is owned by uid {uid}, and {}, so that no other user can add \
             jobs; fix it with `chown {who} {p}`",
            whose(Owner::Named, euid)
        ));
    }
    if !read_only && mode & 0o020 != 0 && !(kind == Kind::Directory && sticky) {
        warnings.push(Diagnostic::warning(
            Some(Origin::new(path, 0)),
            format!(
                "the {} is group-writable (mode {mode:04o}), so members of group {} can add \
                 commands that run as jobrun's user; read anyway, as Kubernetes ConfigMap and \
                 Secret volumes with an fsGroup are made so; if that group is not trusted, \
                 fix it with `chmod g-w {p}`",
                match kind {
                    Kind::File => "file",
                    Kind::Directory => "directory",
                },
                gid
            ),
        ));
    }
    if kind == Kind::File && nlink > 1 {
        warnings.push(Diagnostic::warning(
            Some(Origin::new(path, 0)),
            format!(
                "the file has {} hard links; read anyway, but whoever can write it under another \
                 name changes these jobs too; to give it one name, \
                 `cp -p {p} {p}.new && mv {p}.new {p}`",
                nlink
            ),
        ));
    }
    Ok(warnings)
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

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "jobs: []\n").expect("write");
        // Set after writing: the umask would clear some bits.
        chmod(&path, mode);
        path
    }

    #[track_caller]
    fn refused(result: Result<impl std::fmt::Debug, Diagnostic>, text: &str) {
        match result {
            Err(d) => {
                assert_eq!(d.severity, Severity::Error, "{d}");
                assert!(d.message.contains(text), "{d}");
            }
            Ok(other) => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_world_writable_or_set_uid_job_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writable = file(dir.path(), "w.yaml", 0o666);
        refused(
            read_named(&writable, me(), Naming::Given),
            &format!("chmod o-w {}", writable.display()),
        );
        for mode in [0o4644, 0o2644] {
            let path = file(dir.path(), "s.yaml", mode);
            refused(read_named(&path, me(), Naming::Given), "chmod ug-s");
        }
    }

    #[test]
    fn a_group_writable_or_hard_linked_job_file_is_read_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file(dir.path(), "g.yaml", 0o664);
        std::fs::hard_link(&path, dir.path().join("other")).expect("link");
        let checked = read_named(&path, me(), Naming::Given).expect("read");
        assert_eq!(checked.bytes, b"jobs: []\n");
        let text: Vec<String> = checked.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("group-writable (mode 0664)"), "{text:?}");
        assert!(text[0].contains("ConfigMap"), "{text:?}");
        assert!(text[1].contains("2 hard links"), "{text:?}");
        // The usual file: no finding.
        chmod(&path, 0o644);
        std::fs::remove_file(dir.path().join("other")).expect("unlink");
        assert!(read_named(&path, me(), Naming::Given)
            .expect("read")
            .warnings
            .is_empty());
    }

    #[test]
    fn a_world_writable_config_directory_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).expect("mkdir");
        assert!(check_config_dir(&conf, me()).expect("safe").is_empty());
        chmod(&conf, 0o777);
        refused(
            check_config_dir(&conf, me()),
            "world-writable without the sticky bit",
        );
        chmod(&conf, 0o1777);
        assert!(check_config_dir(&conf, me()).expect("sticky").is_empty());
        chmod(&conf, 0o775);
        let warnings = check_config_dir(&conf, me()).expect("group");
        assert!(
            warnings[0].message.contains("group-writable"),
            "{warnings:?}"
        );
    }

    /// A Kubernetes ConfigMap volume's directory is 0777 (an emptyDir), and
    /// with an fsGroup its files are 0664: on its read-only mount nobody can
    /// write them, so neither is refused nor warned about.
    #[test]
    fn write_permission_is_not_judged_on_a_read_only_mount() {
        let facts = |mode, read_only| Facts {
            mode,
            uid: 0,
            gid: 2000,
            nlink: 1,
            read_only,
        };
        let at = Path::new("/etc/jobrun/conf.d");
        refused(
            check(at, &facts(0o777, false), 0, Kind::Directory),
            "world-writable",
        );
        assert!(check(at, &facts(0o777, true), 0, Kind::Directory)
            .expect("read-only")
            .is_empty());
        let file = Path::new("/etc/jobrun/conf.d/a.yaml");
        refused(
            check(file, &facts(0o666, false), 0, Kind::File),
            "chmod o-w",
        );
        let warned = check(file, &facts(0o664, false), 0, Kind::File).expect("warned");
        assert!(warned[0].message.contains("group 2000"), "{warned:?}");
        assert!(check(file, &facts(0o664, true), 0, Kind::File)
            .expect("read-only")
            .is_empty());
        // The owner is still judged.
        let mut foreign = facts(0o644, true);
        foreign.uid = 1000;
        refused(check(file, &foreign, 0, Kind::File), "chown root");
    }

    #[test]
    fn a_fifo_in_a_config_directory_or_a_directory_named_as_a_job_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        refused(
            read_named(&fifo, me(), Naming::Listed),
            "not a regular file",
        );
        refused(read_named(dir.path(), me(), Naming::Given), "a directory");
    }

    /// A `--crontab` file flipped by atomic renames between a safe (0644) and
    /// a world-writable (0666) version while it is read: the check and the
    /// read are of one open file, so the unsafe content is never loaded.
    #[test]
    fn a_user_crontab_swapped_while_it_is_read_never_loads_the_unsafe_one() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crontab");
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(AtomicU64::new(0));
        let flipper = {
            let (stop, flips, dir, path) = (
                stop.clone(),
                flips.clone(),
                dir.path().to_path_buf(),
                path.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (text, mode) in [("@daily safe\n", 0o644), ("@daily unsafe\n", 0o666)] {
                        let tmp = dir.join(".tmp");
                        std::fs::write(&tmp, text).expect("write");
                        chmod(&tmp, mode);
                        std::fs::rename(&tmp, &path).expect("rename");
                        flips.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        // Until the file has been flipped a few hundred times while it was
        // being read (bounded, should the flipper be starved).
        let (mut safe, mut refused, mut loads) = (0, 0, 0);
        while (flips.load(Ordering::Relaxed) < 400 || loads < 400) && loads < 200_000 {
            loads += 1;
            let set = crate::source::system::read_user_crontab(&path, me());
            let loaded: Vec<&crate::job::Command> = set.jobs.iter().map(|j| &j.command).collect();
            let safe_command = crate::job::Command::Shell("safe".to_owned());
            assert!(
                loaded.iter().all(|c| **c == safe_command),
                "the unsafe file was loaded: {loaded:?}"
            );
            if loaded.is_empty() {
                refused += 1;
            } else {
                safe += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().expect("the flipper thread");
        let flips = flips.load(Ordering::Relaxed);
        assert!(safe > 0 && refused > 0, "{safe} safe, {refused} refused");
        eprintln!("{safe} safe loads, {refused} refused or missed, {flips} flips");
    }

    #[test]
    #[cfg_attr(
        not(jobrun_root),
        ignore = "files owned by another user need root to chown"
    )]
    fn a_job_file_owned_by_another_user_is_refused_whoever_jobrun_runs_as() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chown = |path: &Path, uid: u32| {
            std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
        };
        let path = file(dir.path(), "a.yaml", 0o644);
        chown(&path, 65534);
        refused(read_named(&path, 0, Naming::Given), "chown root");
        refused(read_named(&path, 4242, Naming::Given), "chown 4242");
        assert!(
            read_named(&path, 65534, Naming::Given).is_ok(),
            "jobrun's own file"
        );
        // A root-owned target through a link that another user owns.
        chown(&path, 0);
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(65534), None).expect("chown link");
        refused(
            read_named(&link, 0, Naming::Given),
            "symbolic link is owned by uid 65534",
        );
        // A directory another user owns.
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).expect("mkdir");
        chown(&conf, 65534);
        refused(check_config_dir(&conf, 0), "chown root");
    }
}
