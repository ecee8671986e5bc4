//! How a fleet member names itself in the runs it claims: `HOST#EPOCH`, its
//! host id and its fencing token (unique per start, and per re-registration
//! after it was fenced). SQLite's owners are `host:pid:start`
//! ([`crate::store::owner::owner_id`]); a `#` tells them apart.

/// `HOST#EPOCH`.
pub fn owner(host: &str, epoch: i64) -> String {
    format!("{host}#{epoch}")
}

/// The epoch of a `HOST#EPOCH` owner; `None` for another kind of owner.
pub fn epoch(owner: &str) -> Option<i64> {
    owner.rsplit_once('#')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_names_its_host_and_epoch_and_reads_back() {
        assert_eq!(owner("replica-1", 42), "replica-1#42");
        assert_eq!(epoch("replica-1#42"), Some(42));
        // A host id may itself contain '#'; the epoch is after the last one.
        assert_eq!(epoch("a#b#7"), Some(7));
        assert_eq!(epoch("host:12:2026-01-01T00:00:00.000Z"), None);
        assert_eq!(epoch("x#notanumber"), None);
    }
}
