//! `@reboot` once per boot: a marker file named after the kernel's boot id.
//!
//! A daemon restarted within the same boot finds the marker and does not run
//! `@reboot` jobs again. A new boot has a new boot id; a new container (same
//! kernel, same boot id) counts as a boot when its marker directory is fresh,
//! which the default `/run/jobrun` is: `/run` is a tmpfs emptied at every boot
//! and private to every container.

use std::io;
use std::path::Path;

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
/// starting at once cannot both win).
pub fn claim_boot(marker_dir: &Path, boot_id: &str) -> io::Result<bool> {
    std::fs::create_dir_all(marker_dir)?;
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
}
