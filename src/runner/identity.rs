//! Who a job runs as: the passwd entry of the user it names (uid, gid,
//! home) and its supplementary groups, looked up before the fork so that the
//! forked child only makes async-signal-safe system calls.
//!
//! The look-ups themselves are `crate::users`' (the static build reads
//! /etc/passwd and /etc/group itself, never NSS). Must not know jobs'
//! schedules, runs or the store.

use nix::unistd::{Gid, Uid};

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
    let entry = crate::users::user_by_name(user)
        .map_err(lookup_error)?
        .ok_or_else(unknown)?;
    if entry.uid == euid.as_raw() {
        return Ok(None);
    }
    if !euid.is_root() {
        return Err(RunError::NotRoot {
            job: job.to_string(),
            user: user.to_string(),
        });
    }
    // Computing the groups reads /etc/group (or NSS), which is not safe after
    // fork in a threaded process; setgroups with the result in the child is
    // what initgroups would do there.
    let groups = crate::users::supplementary_groups(&entry).map_err(lookup_error)?;
    Ok(Some(Identity {
        uid: Uid::from_raw(entry.uid),
        gid: Gid::from_raw(entry.gid),
        groups: groups.into_iter().map(Gid::from_raw).collect(),
        name: entry.name,
        home: entry.home,
    }))
}
