//! Who a job runs as: the passwd entry of the user it names (uid, gid,
//! home) and its supplementary groups, looked up before the fork so that the
//! forked child only makes async-signal-safe system calls.
//!
//! All user and group look-ups of the runner are here, so a change in how
//! they are made (another source than glibc's NSS) lands in this one file.
//! Must not know jobs' schedules, runs or the store.

use std::ffi::CString;

use nix::unistd::{Gid, Uid, User};

use super::RunError;

/// Who the child becomes when `user` is another user than jobrun's.
#[derive(Debug)]
pub(super) struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups as `initgroups` computes them (primary included).
    pub groups: Vec<Gid>,
    pub home: String,
}

/// Looks `user` up; `None` when it is the user jobrun runs as (`euid`), so
/// nothing needs to change.
pub(super) fn resolve_user(job: &str, user: &str, euid: Uid) -> Result<Option<Identity>, RunError> {
    let lookup_error = |source| RunError::UserLookup {
        job: job.to_string(),
        user: user.to_string(),
        source,
    };
    let unknown = || RunError::UnknownUser {
        job: job.to_string(),
        user: user.to_string(),
    };
    let entry = User::from_name(user)
        .map_err(lookup_error)?
        .ok_or_else(unknown)?;
    if entry.uid == euid {
        return Ok(None);
    }
    if !euid.is_root() {
        return Err(RunError::NotRoot {
            job: job.to_string(),
            user: user.to_string(),
        });
    }
    let c_name = CString::new(user).map_err(|_| unknown())?;
    // getgrouplist reads /etc/group (and NSS), which is not safe after fork
    // in a threaded process; setgroups with its result in the child is what
    // initgroups would do there.
    let groups = nix::unistd::getgrouplist(&c_name, entry.gid).map_err(lookup_error)?;
    Ok(Some(Identity {
        name: entry.name,
        uid: entry.uid,
        gid: entry.gid,
        groups,
        home: entry.dir.to_string_lossy().into_owned(),
    }))
}
