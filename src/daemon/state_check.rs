//! What a starting daemon proves about its state directory before it
//! schedules anything: the database takes writes and `locks/` is private and
//! writable. A read-only state directory (a read-only mount, or files and
//! directories without write permission) is refused at once, with exit 2 and
//! the fix, instead of failing every tick; read-only commands (`list`,
//! `history`, `status`) still read it.
//!
//! Must not know schedules or job processes.

use anyhow::{Context, Result};
use tracing::warn;

use crate::store::{LeaseMode, Store};

/// The lock file a start creates and opens for writing, to prove `locks/`
/// takes new files (job names cannot start with a dot).
const PROBE: &str = ".write-check";

pub fn check_state(store: &Store) -> Result<()> {
    store
        .check_writable()
        .context("the state directory is read-only; not starting")?;
    if let Some(warning) = store
        .prepare_leases()
        .context("checking the locks directory; not starting")?
    {
        warn!("{warning}");
    }
    let probe = store.lease(PROBE, LeaseMode::Exclusive).with_context(|| {
        format!(
            "{} cannot be written, and every run takes its lock there; make it writable by \
             jobrun's user (check the mount, the owner and the mode), or choose another \
             --state-dir; not starting",
            store.lease_location()
        )
    })?;
    drop(probe);
    Ok(())
}
