//! Finding and reading crontab files: the crond-replacement mode
//! `--system-crontabs[=ROOT]` ([`read_system_crontabs`]) and `--crontab PATH`
//! ([`read_user_crontab`]).
//!
//! Owns where cron keeps its files (`/etc/crontab`, `/etc/cron.d`, the Debian,
//! RHEL and Alpine spool directories), which of them cron would read (cron.d name
//! rules), and whose each file must be; opening and checking a file is
//! [`super::trust`]'s, its lines are [`super::crontab`]'s. It must not know what a schedule means and names no
//! clock, SQLite, tokio or process.
//!
//! Decisions:
//! - Files are read in byte order of their names; a missing directory or
//!   `/etc/crontab` is not a finding (most systems have only some of them).
//! - cron's safety rules (links, owners, modes, hard links) are in [`super::trust`],
//!   which also reads each file: they apply whatever user jobrun runs as.
//! - A user crontab owned by root is accepted as well as one owned by its user:
//!   root can already run anything as anyone, and images such as linuxserver.io's
//!   copy `/etc/crontabs/abc` in as root, which busybox crond runs.
//! - User names are looked up in the running system's user database, also with a
//!   ROOT other than `/`: the jobs run on this system.
//! - Names that are never crontabs are skipped with a note: dot files in every
//!   directory (Vixie skips them; `crontab -e` leaves temporary files), names
//!   ending in `~`, and busybox's `cron.update` control file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::crontab::{parse_crontab, CrontabFormat};
use super::known_users::{self, KnownUsers};
use super::trust::{open_crontab, Opened, Owner};
use crate::job::{Diagnostic, Origin, SourceSet};

/// Where crontabs live under ROOT (files and directories), for watching.
pub const WATCHED: &[&str] = &[
    "etc/crontab",
    "etc/cron.d",
    "var/spool/cron/crontabs",
    "var/spool/cron",
    "etc/crontabs",
];

/// Reads every crontab that cron would read under `root` (`/` for the real system).
///
/// `euid` is the user jobrun runs as. cron's safety rules apply (see
/// [`super::trust`]): a file that is a link where links are refused, set-uid,
/// hard-linked, group- or world-writable, or not owned by a trusted user is
/// refused with a warning saying how to fix it.
pub fn read_system_crontabs(root: &Path, euid: u32) -> SourceSet {
    let mut out = SourceSet::default();
    // One reader for every file: each user a line names is looked up once.
    let mut reader = Reader {
        euid,
        users: KnownUsers::new(known_users::system_lookup),
    };

    let etc_crontab = root.join("etc/crontab");
    // `symlink_metadata`, so that a dangling link is reported rather than ignored.
    match fs::symlink_metadata(&etc_crontab) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        _ => reader.read(&mut out, &etc_crontab, Owner::System, CrontabFormat::System),
    }

    for path in list_dir(&mut out, &root.join("etc/cron.d")) {
        let name = file_name(&path);
        // Debian's cron reads only run-parts' LSB names, so package-manager
        // leftovers (`foo.dpkg-old`, `foo.rpmsave`) and editor backups never run.
        // See: https://manpages.debian.org/bookworm/cron/cron.8.en.html
        if !is_cron_d_name(&name) {
            out.diagnostics.push(Diagnostic::note(
                Some(Origin::new(&path, 0)),
                "skipped: cron.d file names may contain only letters, digits, `_` and `-` \
                 (Debian cron ignores others, such as `*.dpkg-old` leftovers); rename the file to have it read",
            ));
            continue;
        }
        reader.read(&mut out, &path, Owner::System, CrontabFormat::SystemOrDcron);
    }

    // Debian, then RHEL/cronie (whose directory also holds Debian's `crontabs` and
    // `atjobs` directories, skipped as directories), then Alpine/busybox.
    for dir in ["var/spool/cron/crontabs", "var/spool/cron", "etc/crontabs"] {
        for path in list_dir(&mut out, &root.join(dir)) {
            let name = file_name(&path);
            if name.starts_with('.') || name.ends_with('~') || name == "cron.update" {
                out.diagnostics.push(Diagnostic::note(
                    Some(Origin::new(&path, 0)),
                    "skipped: a hidden file, backup or cron.update is not a user crontab \
                     (a user crontab is named after its user)",
                ));
                continue;
            }
            reader.read(&mut out, &path, Owner::User(&name), CrontabFormat::User);
        }
    }
    out
}

/// Reads a user-format crontab given with `--crontab PATH`: its jobs run as
/// jobrun's own user. A missing or unreadable file is an error naming the path.
pub fn read_user_crontab(path: &Path, euid: u32) -> SourceSet {
    let mut out = SourceSet::default();
    match super::trust_named::read_named(path, euid, super::trust_named::Naming::Given) {
        Ok(checked) => {
            out.diagnostics.extend(checked.warnings);
            out.extend(parse_crontab(
                path,
                &checked.bytes,
                CrontabFormat::User,
                None,
            ));
        }
        Err(refused) => out.diagnostics.push(refused),
    }
    out
}

struct Reader {
    /// The user jobrun runs as: cron's rules trust files it owns.
    euid: u32,
    /// Whether the users that system crontab lines name exist.
    users: KnownUsers,
}

impl Reader {
    /// Checks and parses one file, adding its jobs and findings to `out`.
    fn read(&mut self, out: &mut SourceSet, path: &Path, owner: Owner<'_>, format: CrontabFormat) {
        match open_crontab(path, owner, self.euid) {
            Opened::Directory => {}
            Opened::Refused(finding) => out.diagnostics.push(finding),
            Opened::Content(bytes) => {
                let user = match owner {
                    Owner::System | Owner::Named => None,
                    Owner::User(name) => Some(name),
                };
                let mut set = parse_crontab(path, &bytes, format, user);
                // A spool file's user was checked when it was opened; the user
                // fields of /etc/crontab and cron.d are checked here.
                if matches!(owner, Owner::System) {
                    self.users.check(&mut set);
                }
                out.extend(set);
            }
        }
    }
}

/// The entries of a directory in name order; a missing directory has none.
fn list_dir(out: &mut SourceSet, dir: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            out.diagnostics.push(Diagnostic::error(
                Some(Origin::new(dir, 0)),
                format!("reading crontab directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => out.diagnostics.push(Diagnostic::error(
                Some(Origin::new(dir, 0)),
                format!("reading crontab directory: {e}"),
            )),
        }
    }
    paths.sort();
    paths
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// run-parts' LSB names, which Debian's cron requires in cron.d.
fn is_cron_d_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Command, Severity};
    use std::os::unix::fs::PermissionsExt;

    /// Writes `text` at `root/rel` with `mode`, creating directories.
    fn write(root: &Path, rel: &str, text: &str, mode: u32) -> PathBuf {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// The user the tests run as, as jobrun would be.
    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn commands(set: &SourceSet) -> Vec<(Option<String>, String)> {
        set.jobs
            .iter()
            .map(|j| {
                let Command::Shell(c) = &j.command else {
                    panic!("shell command")
                };
                (j.user.clone(), c.clone())
            })
            .collect()
    }

    fn has(set: &SourceSet, severity: Severity, path: &Path, text: &str) -> bool {
        set.diagnostics.iter().any(|d| {
            d.severity == severity
                && d.origin.as_ref().is_some_and(|o| *o.path == *path)
                && d.message.contains(text)
        })
    }

    #[test]
    fn empty_root_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = read_system_crontabs(dir.path(), me());
        assert!(set.jobs.is_empty());
        assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    }

    #[test]
    fn reads_every_location_in_order_with_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(
            root,
            "etc/crontab",
            "SHELL=/bin/sh\n17 * * * * root etc-crontab\n",
            0o644,
        );
        write(
            root,
            "etc/cron.d/b-pkg",
            "0 1 * * * nobody cron-d-b\n",
            0o644,
        );
        write(root, "etc/cron.d/a_pkg", "0 1 * * * root cron-d-a\n", 0o644);
        write(
            root,
            "etc/cron.d/dcron",
            "0 1 * * * /usr/local/bin/php x.php\n",
            0o644,
        );
        write(
            root,
            "var/spool/cron/crontabs/root",
            "0 2 * * * debian-spool\n",
            0o600,
        );
        write(root, "var/spool/cron/root", "0 3 * * * rhel-spool\n", 0o600);
        fs::create_dir_all(root.join("var/spool/cron/atjobs")).expect("mkdir");
        write(root, "etc/crontabs/root", "0 4 * * * alpine\n", 0o600);
        let set = read_system_crontabs(root, me());
        let expected: Vec<(Option<String>, String)> = [
            ("root", "etc-crontab"),
            ("root", "cron-d-a"),
            ("nobody", "cron-d-b"),
            ("root", "/usr/local/bin/php x.php"),
            ("root", "debian-spool"),
            ("root", "rhel-spool"),
            ("root", "alpine"),
        ]
        .iter()
        .map(|(u, c)| (Some(u.to_string()), c.to_string()))
        .collect();
        assert_eq!(commands(&set), expected);
        assert!(
            set.diagnostics.iter().all(|d| d.severity == Severity::Note),
            "{:?}",
            set.diagnostics
        );
        assert!(has(
            &set,
            Severity::Note,
            &root.join("etc/cron.d/dcron"),
            "user format"
        ));
        assert_eq!(set.jobs[0].shell.as_deref(), Some("/bin/sh"));
        assert_eq!(set.jobs[0].origin, Origin::new(root.join("etc/crontab"), 2));
    }

    #[test]
    fn cron_d_name_rules() {
        let cases = [
            ("php", true),
            ("e2scrub_all", true),
            ("ntpsec-ntpviz", true),
            ("Foo9", true),
            ("foo.dpkg-old", false),
            (".placeholder", false),
            ("foo~", false),
            ("foo bar", false),
            ("café", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_cron_d_name(name), ok, "{name}");
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "etc/cron.d/job", "0 1 * * * root kept\n", 0o644);
        write(
            root,
            "etc/cron.d/job.dpkg-old",
            "0 1 * * * root old\n",
            0o644,
        );
        write(root, "etc/cron.d/.placeholder", "", 0o644);
        let set = read_system_crontabs(root, me());
        assert_eq!(
            commands(&set),
            [(Some("root".to_owned()), "kept".to_owned())]
        );
        for skipped in ["etc/cron.d/job.dpkg-old", "etc/cron.d/.placeholder"] {
            assert!(
                has(
                    &set,
                    Severity::Note,
                    &root.join(skipped),
                    "skipped: cron.d file names"
                ),
                "{skipped}: {:?}",
                set.diagnostics
            );
        }
    }

    #[test]
    fn spool_skips_hidden_and_control_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "etc/crontabs/cron.update", "root\n", 0o600);
        write(
            root,
            "var/spool/cron/crontabs/.tmp.1",
            "0 1 * * * x\n",
            0o600,
        );
        write(
            root,
            "var/spool/cron/crontabs/root~",
            "0 1 * * * x\n",
            0o600,
        );
        let set = read_system_crontabs(root, me());
        assert!(set.jobs.is_empty());
        assert_eq!(set.diagnostics.len(), 3, "{:?}", set.diagnostics);
    }

    #[test]
    fn parse_errors_keep_their_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let path = write(
            root,
            "etc/crontab",
            "# x\n0 1 * * * root\n0 2 * * * root ok\n",
            0o644,
        );
        let set = read_system_crontabs(root, me());
        assert_eq!(set.jobs.len(), 1);
        let err = &set.diagnostics[0];
        assert_eq!(err.severity, Severity::Error);
        assert_eq!(err.origin, Some(Origin::new(&path, 2)));
    }

    #[test]
    fn user_crontab_missing_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let set = read_user_crontab(&missing, me());
        assert!(set.jobs.is_empty());
        assert_eq!(set.diagnostics.len(), 1);
        assert_eq!(set.diagnostics[0].severity, Severity::Error);
        assert_eq!(set.diagnostics[0].origin, Some(Origin::new(&missing, 0)));
        assert!(set.diagnostics[0].to_string().contains("nope"));

        let path = write(dir.path(), "mine", "@hourly echo hi\n", 0o644);
        let set = read_user_crontab(&path, me());
        assert_eq!(commands(&set), [(None, "echo hi".to_owned())]);
        assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    }

    /// Issue 11 #14: a `--crontab` file's jobs run as jobrun's user, so one
    /// that anybody can write is refused like a YAML job file, with the fix.
    #[test]
    fn a_world_writable_user_crontab_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "mine", "@hourly echo hi\n", 0o666);
        let set = read_user_crontab(&path, me());
        assert!(set.jobs.is_empty());
        assert_eq!(set.diagnostics.len(), 1, "{:?}", set.diagnostics);
        assert_eq!(set.diagnostics[0].severity, Severity::Error);
        assert_eq!(set.diagnostics[0].origin, Some(Origin::new(&path, 0)));
        assert!(
            set.diagnostics[0]
                .message
                .contains(&format!("chmod o-w {}", path.display())),
            "{:?}",
            set.diagnostics
        );
    }

    #[test]
    fn unreadable_directory_entry_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc/cron.d")).expect("mkdir");
        std::os::unix::fs::symlink(
            root.join("missing-target"),
            root.join("etc/cron.d/dangling"),
        )
        .expect("symlink");
        let set = read_system_crontabs(root, me());
        assert!(has(
            &set,
            Severity::Error,
            &root.join("etc/cron.d/dangling"),
            "reading crontab"
        ));
    }

    #[test]
    #[cfg_attr(
        not(jobrun_root),
        ignore = "permission rules need root to chown test files"
    )]
    fn safety_rules_when_running_as_root() {
        let chown = |path: &Path, uid: u32| {
            std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "etc/crontab", "0 1 * * * root good-system\n", 0o644);
        let writable = write(root, "etc/cron.d/writable", "0 1 * * * root bad\n", 0o644);
        // Set after writing: the umask would clear group and world write bits.
        fs::set_permissions(&writable, fs::Permissions::from_mode(0o666)).expect("chmod");
        let foreign = write(root, "etc/cron.d/foreign", "0 1 * * * root bad\n", 0o644);
        chown(&foreign, 65534);
        let link = root.join("etc/cron.d/link");
        let target = write(root, "elsewhere/job", "0 1 * * * root via-link\n", 0o644);
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let good_user = write(
            root,
            "var/spool/cron/crontabs/root",
            "0 2 * * * good-user\n",
            0o600,
        );
        let other_owner = write(root, "etc/crontabs/root", "0 2 * * * bad\n", 0o600);
        chown(&other_owner, 65534);
        let unknown = write(
            root,
            "var/spool/cron/no-such-user-jobrun",
            "0 2 * * * bad\n",
            0o600,
        );

        let set = read_system_crontabs(root, 0);
        assert_eq!(
            commands(&set),
            [
                (Some("root".to_owned()), "good-system".to_owned()),
                (Some("root".to_owned()), "via-link".to_owned()),
                (Some("root".to_owned()), "good-user".to_owned()),
            ],
            "{:?}",
            set.diagnostics
        );
        assert!(has(&set, Severity::Warning, &writable, "chmod go-w"));
        assert!(has(&set, Severity::Warning, &writable, "mode 0666"));
        assert!(has(&set, Severity::Warning, &foreign, "owned by uid 65534"));
        assert!(has(&set, Severity::Warning, &foreign, "chown root"));
        assert!(has(
            &set,
            Severity::Warning,
            &other_owner,
            "owned by uid 65534"
        ));
        assert!(has(
            &set,
            Severity::Warning,
            &unknown,
            "no user `no-such-user-jobrun`"
        ));
        assert!(!has(&set, Severity::Warning, &good_user, ""));
        assert_eq!(set.diagnostics.len(), 4, "{:?}", set.diagnostics);

        // A link not owned by root is refused even though its target is.
        std::os::unix::fs::lchown(&link, Some(65534), None).expect("chown link");
        let set = read_system_crontabs(root, 0);
        assert!(has(
            &set,
            Severity::Warning,
            &link,
            "symbolic link is owned by uid 65534"
        ));

        // jobrun running as uid 65534 trusts root's files and its own, and
        // still refuses a world-writable one and an unknown user's.
        let set = read_system_crontabs(root, 65534);
        assert!(has(&set, Severity::Warning, &writable, "chmod go-w"));
        assert!(has(&set, Severity::Warning, &unknown, "no user"));
        assert_eq!(set.jobs.len(), 5, "{:?}", set.diagnostics);
    }

    /// A spool file flipped by atomic renames between a safe (0600) and an
    /// unsafe (0666) file: the check and the read are of one open file, so
    /// the unsafe content is never loaded (before, it was in 97 of 200 loads).
    #[test]
    fn a_crontab_swapped_while_it_is_read_never_loads_the_unsafe_one() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        // Root's crontab, owned by the test's user: trusted as jobrun's own.
        let spool = root.join("var/spool/cron/crontabs");
        let path = spool.join("root");
        write(&root, "var/spool/cron/crontabs/.seed", "", 0o600);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flips = std::sync::Arc::new(AtomicU64::new(0));
        let flipper = {
            let (stop, flips, spool, path) =
                (stop.clone(), flips.clone(), spool.clone(), path.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (text, mode) in [("0 1 * * * safe\n", 0o600), ("0 1 * * * unsafe\n", 0o666)]
                    {
                        let tmp = spool.join(".tmp");
                        fs::write(&tmp, text).expect("write");
                        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod");
                        fs::rename(&tmp, &path).expect("rename");
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
            let set = read_system_crontabs(&root, me());
            let loaded: Vec<String> = commands(&set).into_iter().map(|(_, c)| c).collect();
            assert!(
                loaded.iter().all(|c| c == "safe"),
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
        eprintln!("{safe} safe loads, {refused} refused or missed, {flips} flips");
    }
}
