//! `@reboot` once per boot: a marker file per job named after the kernel's
//! boot id, the daemon's state directory and the job (so a second jobrun,
//! with its own state directory, runs its own `@reboot` jobs too).
//!
//! A daemon restarted within the same boot finds the markers and does not
//! run its `@reboot` jobs again. A new boot has a new boot id; a new container (same
//! kernel, same boot id) counts as a boot when its marker directory is fresh,
//! which the default `/run/jobrun` is: `/run` is a tmpfs emptied at every boot
//! and private to every container.

use std::io;
use std::path::Path;

use crate::private_dir::Links;

/// The kernel's id for this boot, or `None` where there is no such file
/// (then every daemon start counts as a boot, as crond does).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Claims this boot's `@reboot` run of each of `jobs` for the daemon whose
/// state directory is `state_dir`, and returns those claimed: exactly one
/// caller per boot id, state directory, job and marker directory wins (each
/// marker is created with `O_EXCL`, so two daemons starting at once cannot
/// both win). The directory is created 0700, and one that another user could
/// write to is refused (they could plant markers and so cancel the `@reboot`
/// jobs): see [`crate::private_dir`]. A marker that cannot be written is
/// warned about and its job claimed: better to run again than never.
pub fn claim_boot<'a>(
    marker_dir: &Path,
    boot_id: &str,
    state_dir: &Path,
    jobs: impl IntoIterator<Item = &'a str>,
) -> io::Result<Vec<&'a str>> {
    let euid = crate::private_dir::euid();
    if let Some(warning) =
        crate::private_dir::ensure(marker_dir, Links::Follow, euid).map_err(io::Error::other)?
    {
        tracing::warn!("{warning}");
    }
    // The same directory spelled two ways is one state.
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let state = fnv1a(state.as_os_str().as_encoded_bytes());
    let mut claimed = Vec::new();
    for job in jobs {
        // Hashed: a job name may be longer than a file name may be.
        let marker = marker_dir.join(format!(
            "reboot-{boot_id}-{state:016x}-{:016x}",
            fnv1a(job.as_bytes())
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => claimed.push(job),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::warn!(job, marker = %marker.display(), error = %e, "cannot keep the @reboot marker; running the job");
                claimed.push(job);
            }
        }
    }
    Ok(claimed)
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (markers outlive
/// the binary that wrote them, an upgrade within a boot included), unlike
/// the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(dir: &Path, boot: &str) -> bool {
        let state = Path::new("/var/lib/jobrun");
        claim_boot(dir, boot, state, ["job"]).unwrap() == ["job"]
    }

    #[test]
    fn a_boot_is_claimed_once_per_marker_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(claim(dir.path(), "b1"));
        assert!(!claim(dir.path(), "b1"), "same boot: no second run");
        assert!(claim(dir.path(), "b2"), "a new boot id runs again");
        let fresh = tempfile::tempdir().unwrap();
        assert!(claim(fresh.path(), "b1"), "a fresh container runs again");
    }

    #[test]
    fn each_state_directory_and_job_claims_its_own_reboot_run() {
        let markers = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let claim = |state: &Path, jobs: &[&'static str]| {
            claim_boot(markers.path(), "b1", state, jobs.iter().copied()).unwrap()
        };
        assert_eq!(claim(a.path(), &["boot", "warm"]), ["boot", "warm"]);
        assert_eq!(
            claim(b.path(), &["boot"]),
            ["boot"],
            "another state runs its own"
        );
        assert!(
            claim(a.path(), &["boot", "warm"]).is_empty(),
            "a restart runs none again"
        );
        assert_eq!(
            claim(a.path(), &["boot", "new"]),
            ["new"],
            "a job added since runs once"
        );
    }

    #[test]
    fn this_machine_has_a_boot_id() {
        if Path::new("/proc/sys/kernel/random/boot_id").exists() {
            let id = boot_id().expect("a boot id");
            assert_eq!(id.len(), 36, "{id}");
        }
    }

    #[test]
    fn the_marker_directory_is_private_and_a_world_writable_one_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run/jobrun");
        assert!(claim(&dir, "b1"));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = claim_boot(&dir, "b2", Path::new("/s"), ["job"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("world-writable"), "{err}");
    }
}
