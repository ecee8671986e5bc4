//! `@reboot` once per boot: a marker file named after the kernel's boot id.
//!
//! A daemon restarted within the same boot finds the marker and does not run
//! `@reboot` jobs again. A new boot has a new boot id; a new container (same
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

/// Claims this boot's `@reboot` runs: true for exactly one caller per boot id
/// and marker directory (the marker is created with `O_EXCL`, so two daemons
/// starting at once cannot both win). The directory is created 0700, and one
/// that another user could write to is refused (they could plant the marker
/// and so cancel the `@reboot` jobs): see [`crate::private_dir`].
pub fn claim_boot(marker_dir: &Path, boot_id: &str) -> io::Result<bool> {
    let euid = crate::private_dir::euid();
    if let Some(warning) =
        crate::private_dir::ensure(marker_dir, Links::Follow, euid).map_err(io::Error::other)?
    {
        tracing::warn!("{warning}");
    }
    let marker = marker_dir.join(format!("reboot-{boot_id}"));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_is_claimed_once_per_marker_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(claim_boot(dir.path(), "b1").unwrap());
        assert!(
            !claim_boot(dir.path(), "b1").unwrap(),
            "same boot: no second run"
        );
        assert!(
            claim_boot(dir.path(), "b2").unwrap(),
            "a new boot id runs again"
        );
        let fresh = tempfile::tempdir().unwrap();
        assert!(
            claim_boot(fresh.path(), "b1").unwrap(),
            "a fresh container runs again"
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
        assert!(claim_boot(&dir, "b1").unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = claim_boot(&dir, "b2").unwrap_err().to_string();
        assert!(err.contains("world-writable"), "{err}");
    }
}
