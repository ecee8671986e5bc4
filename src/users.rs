//! Users and groups: a user by name or uid (name, uid, primary gid, home,
//! shell), a group by gid or name, and a user's supplementary groups as
//! `initgroups` computes them. Every look-up jobrun makes goes through here
//! (`clippy.toml` bans nix's look-ups everywhere else).
//!
//! Where the answers come from depends on the build, decided at compile time:
//!
//! - **Static build** (`target_feature = "crt-static"`, the README's
//!   "Production build"): this module reads `/etc/passwd` and `/etc/group`
//!   itself and never calls glibc's NSS (`getpwnam`, `getgrouplist`, ...).
//!   glibc answers those calls with the modules `/etc/nsswitch.conf` names,
//!   and a module other than `files` (`systemd`, `sss`, `ldap`) is a shared
//!   library that `dlopen` loads into the static executable together with a
//!   second, dynamic libc. On Debian 12 (`passwd: files systemd`) that
//!   segfaulted the first look-up that reached the module: `check` on a spool
//!   file of a user that does not exist, a job run as another user (issue
//!   12). No configuration makes that safe, so the static build, made to be
//!   copied into images where the files are the user database, reads the
//!   files.
//! - **Dynamic build** (plain `cargo build --release`): glibc's NSS through
//!   nix, as cron does, so users from LDAP, sssd or systemd's dynamic users
//!   keep working on hosts that have them. Reading the files in both builds
//!   was weighed and refused: the two builds would agree, but a host whose
//!   users live in a directory would lose them, and such a host has no reason
//!   to run the static build.
//!
//! The files are read as glibc's `files` module reads them (passwd(5),
//! group(5)): the first entry that matches wins; blank lines and `#` comments
//! are skipped; NIS lines (`+`, `-`, `+@netgroup`: the `compat` module's
//! syntax) are ignored, since the static build has no NIS; a line without a
//! name, a number uid and gid is skipped (malformed), and trailing fields a
//! line lacks are empty, as glibc takes them. A uid or gid of 4294967295 is
//! malformed too: it is `(uid_t) -1`, which `setuid` takes as "leave
//! unchanged", so a job "run as" such a user would keep root's rights.
//!
//! Must not know jobs, schedules, processes, the clock or the store.

use std::io;
use std::path::{Path, PathBuf};

/// A user's passwd entry: what jobrun needs to run a job as the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// A group entry: its name, gid and the users it lists as members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Why the user database could not answer (not "no such user": that is
/// `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Nss(nix::errno::Errno),
}

/// In the static glibc build, points every glibc name-service database at
/// the modules built into libc (`files`, and `dns` for host and network
/// names) whatever `/etc/nsswitch.conf` says, so that nothing jobrun or a
/// dependency still asks glibc (`getaddrinfo` for a `requires: tcp:` check)
/// can load a module. The cost: a host name from mDNS, `myhostname` or a
/// directory does not resolve in the static build; `/etc/hosts` and DNS do
/// (systemd-resolved answers through its DNS stub). Call it first in `main`,
/// before any thread exists (glibc's rule for changing the configuration).
/// Nothing to do in other builds.
pub fn builtin_name_services_only() {
    #[cfg(all(target_feature = "crt-static", target_env = "gnu"))]
    {
        use std::ffi::{c_char, c_int, CStr};
        extern "C" {
            // glibc's <nss.h>: "to be used in statically linked programs".
            fn __nss_configure_lookup(dbname: *const c_char, service_line: *const c_char) -> c_int;
        }
        const BUILT_IN: [(&CStr, &CStr); 14] = [
            (c"aliases", c"files"),
            (c"ethers", c"files"),
            (c"group", c"files"),
            (c"gshadow", c"files"),
            (c"hosts", c"files dns"),
            (c"initgroups", c"files"),
            (c"netgroup", c"files"),
            (c"networks", c"files dns"),
            (c"passwd", c"files"),
            (c"protocols", c"files"),
            (c"publickey", c"files"),
            (c"rpc", c"files"),
            (c"services", c"files"),
            (c"shadow", c"files"),
        ];
        for (database, services) in BUILT_IN {
            // SAFETY: both are NUL-terminated strings that live for the
            // whole program, and the caller runs this before any other
            // thread exists. A database this glibc does not know is refused
            // with -1 and stays as it was, which harms nothing.
            unsafe {
                __nss_configure_lookup(database.as_ptr(), services.as_ptr());
            }
        }
    }
}

/// The user named `name`, if there is one.
pub fn user_by_name(name: &str) -> Result<Option<UserEntry>, UsersError> {
    #[cfg(target_feature = "crt-static")]
    return Files::system().user_by_name(name);
    #[cfg(not(target_feature = "crt-static"))]
    return nss::user_by_name(name);
}

/// The user whose uid is `uid`, if there is one.
pub fn user_by_uid(uid: u32) -> Result<Option<UserEntry>, UsersError> {
    #[cfg(target_feature = "crt-static")]
    return Files::system().user_by_uid(uid);
    #[cfg(not(target_feature = "crt-static"))]
    return nss::user_by_uid(uid);
}

/// The group whose gid is `gid`, if there is one.
pub fn group_by_gid(gid: u32) -> Result<Option<GroupEntry>, UsersError> {
    #[cfg(target_feature = "crt-static")]
    return Files::system().group_by_gid(gid);
    #[cfg(not(target_feature = "crt-static"))]
    return nss::group_by_gid(gid);
}

/// The group named `name`, if there is one.
pub fn group_by_name(name: &str) -> Result<Option<GroupEntry>, UsersError> {
    #[cfg(target_feature = "crt-static")]
    return Files::system().group_by_name(name);
    #[cfg(not(target_feature = "crt-static"))]
    return nss::group_by_name(name);
}

/// The groups `user` gets as `initgroups(user.name, user.gid)` gives them:
/// the primary gid first, then every group listing the user, once each.
pub fn supplementary_groups(user: &UserEntry) -> Result<Vec<u32>, UsersError> {
    #[cfg(target_feature = "crt-static")]
    return Files::system().supplementary_groups(&user.name, user.gid);
    #[cfg(not(target_feature = "crt-static"))]
    return nss::supplementary_groups(&user.name, user.gid);
}

/// A passwd and a group file, read on every look-up (as glibc's `files`
/// module does; an edit is seen at once, and jobrun looks users up at
/// start-up, at reload and once per run as another user).
#[derive(Debug, Clone)]
pub struct Files {
    pub passwd: PathBuf,
    pub group: PathBuf,
}

impl Files {
    /// `/etc/passwd` and `/etc/group`.
    pub fn system() -> Self {
        Files {
            passwd: PathBuf::from("/etc/passwd"),
            group: PathBuf::from("/etc/group"),
        }
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<UserEntry>, UsersError> {
        let text = read(&self.passwd)?;
        let found = users(&text).find(|u| u.name == name);
        Ok(found)
    }

    pub fn user_by_uid(&self, uid: u32) -> Result<Option<UserEntry>, UsersError> {
        let text = read(&self.passwd)?;
        let found = users(&text).find(|u| u.uid == uid);
        Ok(found)
    }

    pub fn group_by_gid(&self, gid: u32) -> Result<Option<GroupEntry>, UsersError> {
        let text = read(&self.group)?;
        let found = groups(&text).find(|g| g.gid == gid);
        Ok(found)
    }

    pub fn group_by_name(&self, name: &str) -> Result<Option<GroupEntry>, UsersError> {
        let text = read(&self.group)?;
        let found = groups(&text).find(|g| g.name == name);
        Ok(found)
    }

    pub fn supplementary_groups(&self, user: &str, primary: u32) -> Result<Vec<u32>, UsersError> {
        let text = read(&self.group)?;
        Ok(groups_of(&text, user, primary))
    }
}

/// A file's text; bytes that are not UTF-8 (a GECOS field in Latin-1) become
/// U+FFFD, which no name jobrun looks up contains.
fn read(path: &Path) -> Result<String, UsersError> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Why a line of a passwd or group file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// One line of a passwd file: `None` for a line that holds no entry (blank,
/// comment, NIS), else the entry or why it is malformed.
pub fn parse_passwd_line(line: &str) -> Option<Result<UserEntry, Malformed>> {
    let line = entry_text(line)?;
    let mut fields = line.splitn(7, ':');
    let mut next = || fields.next().unwrap_or("");
    let (name, _password, uid, gid) = (next(), next(), next(), next());
    let (_gecos, home, shell) = (next(), next(), next());
    Some((|| {
        if name.is_empty() {
            return Err(Malformed("no user name"));
        }
        Ok(UserEntry {
            name: name.to_owned(),
            uid: id(uid).ok_or(Malformed("the uid is not a number below 4294967295"))?,
            gid: id(gid).ok_or(Malformed("the gid is not a number below 4294967295"))?,
            home: home.to_owned(),
            shell: shell.to_owned(),
        })
    })())
}

/// One line of a group file, as [`parse_passwd_line`].
pub fn parse_group_line(line: &str) -> Option<Result<GroupEntry, Malformed>> {
    let line = entry_text(line)?;
    let mut fields = line.splitn(4, ':');
    let mut next = || fields.next().unwrap_or("");
    let (name, _password, gid, members) = (next(), next(), next(), next());
    Some((|| {
        if name.is_empty() {
            return Err(Malformed("no group name"));
        }
        Ok(GroupEntry {
            name: name.to_owned(),
            gid: id(gid).ok_or(Malformed("the gid is not a number below 4294967295"))?,
            members: members
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    })())
}

/// The line without leading blanks, or `None` when it holds no entry.
fn entry_text(line: &str) -> Option<&str> {
    let line = line.trim_start();
    match line.chars().next() {
        None | Some('#') | Some('+') | Some('-') => None,
        Some(_) => Some(line),
    }
}

/// A uid or gid field: decimal, and not `(uid_t) -1` (see the module doc).
fn id(field: &str) -> Option<u32> {
    field.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Every well-formed entry of a passwd file's text, in order.
pub fn users(text: &str) -> impl Iterator<Item = UserEntry> + '_ {
    text.lines()
        .filter_map(parse_passwd_line)
        .filter_map(Result::ok)
}

/// Every well-formed entry of a group file's text, in order.
pub fn groups(text: &str) -> impl Iterator<Item = GroupEntry> + '_ {
    text.lines()
        .filter_map(parse_group_line)
        .filter_map(Result::ok)
}

/// `initgroups` on a group file's text: `primary` first, then the gid of
/// every group that lists `user`, each gid once, in the file's order.
pub fn groups_of(text: &str, user: &str, primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for group in groups(text) {
        if !out.contains(&group.gid) && group.members.iter().any(|m| m == user) {
            out.push(group.gid);
        }
    }
    out
}

/// glibc's name service, through nix (the dynamic build only).
#[cfg(not(target_feature = "crt-static"))]
#[allow(clippy::disallowed_methods)] // the one place that may call NSS
mod nss {
    use std::ffi::CString;

    use nix::errno::Errno;
    use nix::unistd::{Gid, Group, Uid, User};

    use super::{GroupEntry, UserEntry, UsersError};

    fn user(u: User) -> UserEntry {
        UserEntry {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir.to_string_lossy().into_owned(),
            shell: u.shell.to_string_lossy().into_owned(),
        }
    }

    fn group(g: Group) -> GroupEntry {
        GroupEntry {
            name: g.name,
            gid: g.gid.as_raw(),
            members: g.mem,
        }
    }

    pub fn user_by_name(name: &str) -> Result<Option<UserEntry>, UsersError> {
        Ok(User::from_name(name).map_err(UsersError::Nss)?.map(user))
    }

    pub fn user_by_uid(uid: u32) -> Result<Option<UserEntry>, UsersError> {
        Ok(User::from_uid(Uid::from_raw(uid))
            .map_err(UsersError::Nss)?
            .map(user))
    }

    pub fn group_by_gid(gid: u32) -> Result<Option<GroupEntry>, UsersError> {
        Ok(Group::from_gid(Gid::from_raw(gid))
            .map_err(UsersError::Nss)?
            .map(group))
    }

    pub fn group_by_name(name: &str) -> Result<Option<GroupEntry>, UsersError> {
        Ok(Group::from_name(name).map_err(UsersError::Nss)?.map(group))
    }

    pub fn supplementary_groups(name: &str, primary: u32) -> Result<Vec<u32>, UsersError> {
        let name = CString::new(name).map_err(|_| UsersError::Nss(Errno::EINVAL))?;
        let groups =
            nix::unistd::getgrouplist(&name, Gid::from_raw(primary)).map_err(UsersError::Nss)?;
        Ok(groups.into_iter().map(Gid::as_raw).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# /etc/passwd of a test image
root:x:0:0:root:/root:/bin/bash

   # an indented comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
+nisuser::::::
-blocked::::::
+@netgroup::::::
+
broken-no-uid:x::100:gecos:/home/b:/bin/sh
broken-uid:x:abc:100::/home/b:/bin/sh
broken-max:x:4294967295:100::/home/b:/bin/sh
:x:7:7::/nowhere:/bin/sh
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
short:x:1001:1001
alice:x:2000:2000:second alice:/elsewhere:/bin/sh
";

    const GROUP: &str = "\
# /etc/group
root:x:0:
adm:x:4:alice, bob
staff:x:50:bob
alice:x:1000:alice
+:::
-staff:::
broken:x:notanumber:alice
:x:77:alice
audio:x:29:alice,,
video:x:44
audio-again:x:29:alice
";

    #[test]
    fn entries_skip_comments_blanks_nis_and_malformed_lines() {
        let names: Vec<String> = users(PASSWD).map(|u| u.name).collect();
        assert_eq!(names, ["root", "daemon", "alice", "short", "alice"]);
        let alice = users(PASSWD).find(|u| u.name == "alice").unwrap();
        assert_eq!(
            alice,
            UserEntry {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into(),
                shell: "/bin/bash".into(),
            }
        );
        // Trailing fields a line lacks are empty, as glibc reads them.
        let short = users(PASSWD).find(|u| u.name == "short").unwrap();
        assert_eq!(
            (short.uid, short.home.as_str(), short.shell.as_str()),
            (1001, "", "")
        );
    }

    #[test]
    fn malformed_lines_say_why() {
        let cases = [
            ("x:x::1:g:/h:/s", "the uid is not a number below 4294967295"),
            (
                "x:x:-1:1:g:/h:/s",
                "the uid is not a number below 4294967295",
            ),
            (
                "x:x:1:two:g:/h:/s",
                "the gid is not a number below 4294967295",
            ),
            (
                "x:x:4294967295:1::/h:/s",
                "the uid is not a number below 4294967295",
            ),
            (
                "x:x:1:4294967295::/h:/s",
                "the gid is not a number below 4294967295",
            ),
            (":x:1:1::/h:/s", "no user name"),
            ("nocolons", "the uid is not a number below 4294967295"),
        ];
        for (line, why) in cases {
            assert_eq!(parse_passwd_line(line), Some(Err(Malformed(why))), "{line}");
        }
        for line in [
            "",
            "   ",
            "# root:x:0:0::/root:/bin/sh",
            "+",
            "-bob",
            "+@ng::::::",
        ] {
            assert_eq!(parse_passwd_line(line), None, "{line:?}");
        }
        assert_eq!(
            parse_group_line("g:x:no:alice"),
            Some(Err(Malformed("the gid is not a number below 4294967295")))
        );
        assert_eq!(
            parse_group_line(":x:1:alice"),
            Some(Err(Malformed("no group name")))
        );
        assert_eq!(parse_group_line("+:::"), None);
    }

    #[test]
    fn the_first_matching_entry_wins() {
        let files = users(PASSWD).filter(|u| u.name == "alice").count();
        assert_eq!(files, 2);
        assert_eq!(users(PASSWD).find(|u| u.name == "alice").unwrap().uid, 1000);
        assert_eq!(
            users(PASSWD).find(|u| u.uid == 2000).unwrap().home,
            "/elsewhere"
        );
    }

    #[test]
    fn groups_parse_members_and_gids() {
        let adm = groups(GROUP).find(|g| g.name == "adm").unwrap();
        assert_eq!(adm.gid, 4);
        assert_eq!(adm.members, ["alice", "bob"]);
        let video = groups(GROUP).find(|g| g.gid == 44).unwrap();
        assert!(video.members.is_empty());
        let names: Vec<String> = groups(GROUP).map(|g| g.name).collect();
        assert_eq!(
            names,
            [
                "root",
                "adm",
                "staff",
                "alice",
                "audio",
                "video",
                "audio-again"
            ]
        );
    }

    #[test]
    fn supplementary_groups_are_computed_as_initgroups_does() {
        // alice: primary 1000 first; the group `alice` lists her but is her
        // primary group (once); adm and audio list her; audio's gid appears
        // twice in the file (once); `broken` and the nameless line are skipped.
        assert_eq!(groups_of(GROUP, "alice", 1000), [1000, 4, 29]);
        // bob is in two groups, listed with a blank after the comma in one.
        assert_eq!(groups_of(GROUP, "bob", 100), [100, 4, 50]);
        // A user in no group keeps only the primary one.
        assert_eq!(groups_of(GROUP, "nobody", 65534), [65534]);
        // A prefix of a member's name is not the member.
        assert_eq!(groups_of(GROUP, "ali", 5), [5]);
    }

    #[test]
    fn long_lines_are_read_whole() {
        let members: Vec<String> = (0..20_000).map(|i| format!("user{i}")).collect();
        let text = format!("big:x:500:{}\nlast:x:501:user19999\n", members.join(","));
        assert!(text.len() > 128 * 1024);
        assert_eq!(groups_of(&text, "user19999", 1), [1, 500, 501]);
        let home = "/home/".to_owned() + &"d".repeat(100_000);
        let passwd = format!("long:x:5:5:{}:{home}:/bin/sh\n", "g".repeat(100_000));
        let long = users(&passwd).next().unwrap();
        assert_eq!((long.home, long.shell.as_str()), (home, "/bin/sh"));
    }

    #[test]
    fn files_are_read_from_their_paths() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            passwd: dir.path().join("passwd"),
            group: dir.path().join("group"),
        };
        let err = files.user_by_name("root").unwrap_err();
        assert!(err.to_string().starts_with(&format!(
            "reading {}: ",
            dir.path().join("passwd").display()
        )));
        std::fs::write(&files.passwd, PASSWD).unwrap();
        std::fs::write(&files.group, GROUP).unwrap();
        assert_eq!(files.user_by_name("daemon").unwrap().unwrap().uid, 1);
        assert_eq!(files.user_by_uid(0).unwrap().unwrap().name, "root");
        assert!(files.user_by_name("ghost").unwrap().is_none());
        assert!(files.user_by_name("+nisuser").unwrap().is_none());
        assert_eq!(files.group_by_gid(50).unwrap().unwrap().name, "staff");
        assert_eq!(files.group_by_name("audio").unwrap().unwrap().gid, 29);
        assert!(files.group_by_gid(12345).unwrap().is_none());
        assert_eq!(
            files.supplementary_groups("bob", 100).unwrap(),
            [100, 4, 50]
        );
        // Bytes that are not UTF-8 (a Latin-1 GECOS) do not hide the entry.
        let mut latin1 = b"jos\xe9:x:3:3:Jos\xe9 Garc\xeda:/home/jose:/bin/sh\n".to_vec();
        latin1.extend_from_slice(b"eve:x:4:4::/home/eve:/bin/sh\n");
        std::fs::write(&files.passwd, latin1).unwrap();
        assert_eq!(files.user_by_name("eve").unwrap().unwrap().uid, 4);
        assert_eq!(files.user_by_uid(3).unwrap().unwrap().home, "/home/jose");
    }

    #[test]
    fn this_build_answers_for_root() {
        let root = user_by_uid(0)
            .unwrap()
            .expect("every Linux system has uid 0");
        assert_eq!(user_by_name(&root.name).unwrap().unwrap().uid, 0);
        assert_eq!(supplementary_groups(&root).unwrap()[0], root.gid);
        assert!(user_by_name("jobrun-no-such-user").unwrap().is_none());
        assert!(user_by_name("nul\0inside").unwrap().is_none());
        let group = group_by_gid(root.gid)
            .unwrap()
            .expect("root's group exists");
        assert_eq!(group_by_name(&group.name).unwrap().unwrap().gid, root.gid);
    }
}
