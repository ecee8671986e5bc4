//! Parity: leases, the daemons' records and when a daemon was last seen, on
//! both backends, with the differences each backend has by design.

use super::{both, new_run, t, HOST};
use crate::store::{LeaseMode, Loaded, Store};

#[test]
fn leases_exclude_within_a_process_as_a_flock_does() {
    both("leases", |b| {
        let s = &*b.store;
        let one = s.lease("j", LeaseMode::Shared).unwrap().expect("free");
        let two = s
            .lease("j", LeaseMode::Shared)
            .unwrap()
            .expect("shared twice");
        assert!(s.lease("j", LeaseMode::Exclusive).unwrap().is_none());
        drop(one);
        assert!(s.lease("j", LeaseMode::Exclusive).unwrap().is_none());
        drop(two);
        let ex = s.lease("j", LeaseMode::Exclusive).unwrap().expect("let go");
        assert!(s.lease("j", LeaseMode::Exclusive).unwrap().is_none());
        assert!(s.lease("j", LeaseMode::Shared).unwrap().is_none());
        assert!(s.lease("other", LeaseMode::Exclusive).unwrap().is_some());
        drop(ex);
        assert!(s.lease("j", LeaseMode::Exclusive).unwrap().is_some());
    });
}

#[test]
fn an_exclusive_lease_while_a_run_of_the_job_is_recorded_running() {
    both("lease and running run", |b| {
        let s = &*b.store;
        s.claim(&new_run("j", Some(t(9, 0, 0)))).unwrap().unwrap();
        let ex = s.lease("j", LeaseMode::Exclusive).unwrap();
        // A difference by design: SQLite's lease is the flock alone (a
        // `running` row whose lock nobody holds is a dead owner's, which
        // start-up recovery then judges); PostgreSQL's exclusive lease is
        // also refused while a run of the job is `running` on any live host
        // of the fleet (a `forbid` job skips, `replace` stops it first), and
        // a dead host's runs are resolved by its peers' lease expiry.
        assert_eq!(ex.is_none(), b.is_postgres());
        assert!(s.lease("j", LeaseMode::Shared).unwrap().is_some() || ex.is_some());
    });
}

fn loaded(jobs: &[&str]) -> Loaded {
    Loaded {
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        errors: vec!["jobs.yaml:3: an error".into()],
        warnings: Vec::new(),
    }
}

/// The daemon `host` as `store` lists it.
fn listed(store: &Store, host: &str) -> Option<crate::store::DaemonRecord> {
    store
        .daemons()
        .unwrap()
        .into_iter()
        .find(|d| d.host == host)
}

#[test]
fn a_daemon_is_listed_with_what_it_loaded_until_it_stops() {
    both("daemons", |b| {
        let s = &*b.store;
        assert!(s.daemons().unwrap().is_empty());
        assert_eq!(s.last_daemon_seen().unwrap(), None, "no daemon ran here");
        let peer = b.another("host-b");
        let owner = "host-b:2:y";
        let (started, now) = (t(9, 0, 0), t(9, 0, 5));
        peer.record_loaded(owner, 2, "host-b", started, now, &loaded(&["a", "b"]))
            .unwrap();
        let d = listed(s, "host-b").expect("listed once it recorded what it loaded");
        assert_eq!(d.loaded, Some(loaded(&["a", "b"])));
        assert_eq!(d.stopped_at, None);
        // The owner is the backend's name for the daemon: SQLite's as the
        // daemon gives it; PostgreSQL's HOST#EPOCH (its fencing token).
        assert_eq!(d.owner == owner, !b.is_postgres(), "{}", d.owner);
        assert_eq!(s.daemon(&d.owner).unwrap(), Some(d.clone()));
        // A reload records the new set.
        peer.record_loaded(owner, 2, "host-b", started, now, &loaded(&["a"]))
            .unwrap();
        assert_eq!(listed(s, "host-b").unwrap().loaded, Some(loaded(&["a"])));
        // Live: SQLite gives its last beat; PostgreSQL counts no live peer as
        // a downtime (see the test below).
        assert_eq!(s.last_daemon_seen().unwrap().is_some(), !b.is_postgres());
        peer.daemon_stopped(owner, t(9, 10, 0)).unwrap();
        assert!(
            listed(s, "host-b").is_none(),
            "a stopped daemon is not listed"
        );
        let stopped = s.daemon(&d.owner).unwrap().expect("still on record");
        let at = stopped.stopped_at.expect("stopped");
        // A stopped daemon was last seen at its stop.
        assert_eq!(s.last_daemon_seen().unwrap(), Some(at));
        if !b.is_postgres() {
            assert_eq!(at, t(9, 10, 0), "the daemon's clock");
        }
        assert_eq!(s.daemon("nobody").unwrap(), None);
    });
}

#[test]
fn a_heartbeat_is_beat_on_sqlite_and_the_lease_task_on_postgresql() {
    both("heartbeats", |b| {
        let s = &*b.store;
        let owner = format!("{HOST}:1:x");
        s.beat(&owner, 1, HOST, t(9, 0, 0), t(9, 1, 0)).unwrap();
        let writer = s
            .heartbeat_writer(std::time::Duration::from_secs(1))
            .unwrap();
        writer
            .beat(&owner, 1, HOST, t(9, 0, 0), t(9, 2, 0))
            .unwrap();
        if b.is_postgres() {
            // A difference by design: PostgreSQL's lease is renewed by the
            // store's own task every `--heartbeat` from the first write on;
            // the daemon's minute beat writes nothing, and this process is
            // not a member until it writes something.
            assert!(s.daemons().unwrap().is_empty());
            assert_eq!(s.last_daemon_seen().unwrap(), None);
            assert!(s.heartbeat_interval() > std::time::Duration::ZERO);
        } else {
            let d = listed(s, HOST).expect("a beat writes the daemon's row");
            assert_eq!(
                (d.owner.as_str(), d.last_beat),
                (owner.as_str(), t(9, 2, 0))
            );
            assert_eq!(d.loaded, None);
            assert_eq!(s.last_daemon_seen().unwrap(), Some(t(9, 2, 0)));
            assert_eq!(s.heartbeat_interval(), std::time::Duration::ZERO);
        }
    });
}

#[test]
fn a_live_peer_is_not_a_downtime_on_postgresql_and_is_its_last_beat_on_sqlite() {
    both("last seen", |b| {
        let s = &*b.store;
        let peer = b.another("host-b");
        let owner = "host-b:2:y";
        peer.beat(owner, 2, "host-b", t(9, 0, 0), t(9, 1, 0))
            .unwrap();
        peer.record_loaded(owner, 2, "host-b", t(9, 0, 0), t(9, 1, 0), &loaded(&[]))
            .unwrap();
        let seen = s.last_daemon_seen().unwrap();
        if b.is_postgres() {
            // A peer holding its lease has been scheduling since it started
            // (catch-up takes its start from `daemons`): no daemon that
            // stopped or died was seen.
            assert_eq!(seen, None);
            let beat = listed(s, "host-b").expect("the peer is listed").last_beat;
            peer.daemon_stopped(owner, t(9, 2, 0)).unwrap();
            let stopped = s.last_daemon_seen().unwrap().expect("a stopped peer");
            assert!(stopped >= beat, "{stopped} {beat}");
        } else {
            // SQLite cannot tell a live owner in SQL: its last beat; the
            // catch-up compares it with the live peer's start.
            assert_eq!(seen, Some(t(9, 1, 0)));
        }
    });
}

#[test]
fn a_read_only_open_finds_a_state_and_never_makes_one() {
    use super::super::postgres::testdb::TestDb;
    use crate::store::Location;
    both("open existing", |b| {
        let existing = Store::open_existing_at(&b.location).unwrap();
        let existing = existing.expect("the state the test made");
        existing.check_writable().unwrap();
        b.store.claim(&new_run("a", None)).unwrap().unwrap();
        let runs = existing.history(&Default::default()).unwrap();
        assert_eq!(runs.len(), 1, "the same state");
    });
    let dir = tempfile::tempdir().unwrap();
    let empty = Location::StateDir(dir.path().join("state"));
    assert!(Store::open_existing_at(&empty).unwrap().is_none());
    assert!(!dir.path().join("state").join("jobrun.db").exists());
    if let Some(db) = TestDb::create("open existing (on PostgreSQL)") {
        let empty = Location::Database(super::membership(&db.url, HOST));
        assert!(Store::open_existing_at(&empty).unwrap().is_none());
        // Still empty: a second look finds nothing either.
        assert!(Store::open_existing_at(&empty).unwrap().is_none());
    }
}

#[test]
fn the_owner_of_a_peers_run_is_alive_until_the_peer_stops() {
    use crate::store::owner::{owner_id, Evidence};
    both("owner liveness", |b| {
        let s = &*b.store;
        let peer = b.another("host-b");
        let start = t(9, 0, 0);
        let owner = owner_id("host-b", 2, start);
        peer.beat(&owner, 2, "host-b", start, t(9, 1, 0)).unwrap();
        let mut run = new_run("a", Some(t(9, 1, 0)));
        (run.host, run.owner) = ("host-b".into(), owner.clone());
        let id = peer.claim(&run).unwrap().unwrap();
        // The run's owner as the history names it (PostgreSQL: HOST#EPOCH).
        let held_by = s.get(id).unwrap().unwrap().owner;
        let judge = || {
            let heartbeat = s.daemon(&held_by).unwrap();
            let evidence = Evidence {
                this_host: HOST,
                me: None,
                own_pid: std::process::id(),
                now: t(9, 2, 0),
                heartbeat: heartbeat.as_ref(),
                process_started: &|_| None,
            };
            s.owner_liveness(&held_by, &evidence).unwrap()
        };
        // SQLite: by the peer's heartbeat (recent at `now`); PostgreSQL: by
        // its lease, on the server's clock.
        assert!(judge().is_alive(), "{:?}", judge());
        peer.daemon_stopped(&owner, t(9, 3, 0)).unwrap();
        assert!(!judge().is_alive(), "{:?}", judge());
    });
}
