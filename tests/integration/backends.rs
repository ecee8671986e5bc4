//! One test body, two state backends (issue 14, guarantee 12): the daemon
//! scenarios that concern claims, locks, abandonment and history are written
//! once, as `fn name(backend: Backend)`, and run on SQLite (the state
//! directory) and on PostgreSQL (a fresh database of the test's own) by
//! `on_both_backends!(name)`, which makes `name::on_sqlite` and
//! `name::on_postgres`.

use std::ops::Deref;

use crate::harness::Test;

use crate::postgres::testdb::TestDb;

/// Where a test's runs, claims and daemons live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The state directory's SQLite database (the default).
    Sqlite,
    /// A PostgreSQL database (`JOBRUN_DATABASE_URL`), created for the test
    /// and dropped after it.
    Postgres,
}

/// A test tree on a backend; derefs to the [`Test`], so every command it
/// runs (`run_args`, `history`, `spawn_daemon`...) uses the backend.
pub struct OnBackend {
    test: Test,
    backend: Backend,
    /// Dropped (the database with it) after the test's daemons, which the
    /// test drops first.
    _db: Option<TestDb>,
}

impl Backend {
    /// `test` on this backend, or `None` when there is no PostgreSQL server
    /// outside CI (the skip is printed with how to install one; under
    /// `CI=true` a missing server fails the test). `name` names the test in
    /// that message.
    pub fn on(self, test: Test, name: &str) -> Option<OnBackend> {
        match self {
            Backend::Sqlite => Some(OnBackend {
                test,
                backend: self,
                _db: None,
            }),
            Backend::Postgres => {
                let db = TestDb::create(name)?;
                Some(OnBackend {
                    test: test.env("JOBRUN_DATABASE_URL", &db.url),
                    backend: self,
                    _db: Some(db),
                })
            }
        }
    }
}

impl OnBackend {
    /// Daemon options for a test that waits on the fleet's lease: short
    /// leases on PostgreSQL (a peer's lease runs out in seconds, not the
    /// default 30 s), nothing on SQLite, which has no leases.
    pub fn short_lease(&self) -> &'static [&'static str] {
        match self.backend {
            Backend::Sqlite => &[],
            Backend::Postgres => &["--heartbeat", "1s", "--fence", "2s", "--lease", "7s"],
        }
    }
}

impl Deref for OnBackend {
    type Target = Test;

    fn deref(&self) -> &Test {
        &self.test
    }
}

impl Drop for OnBackend {
    /// A test on PostgreSQL that quietly ran on the state directory's SQLite
    /// (an option that bypassed the database) would prove nothing.
    fn drop(&mut self) {
        if self.backend == Backend::Postgres && !std::thread::panicking() {
            let sqlite = self.test.path("state/jobrun.db");
            assert!(
                !sqlite.exists(),
                "a test on PostgreSQL wrote {}",
                sqlite.display()
            );
        }
    }
}

/// `on_both_backends!(a, b)`: for each `fn a(backend: Backend)` of the
/// calling module, a module `a` with the tests `on_sqlite` and `on_postgres`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn on_sqlite() {
                    super::$name($crate::backends::Backend::Sqlite)
                }

                #[test]
                fn on_postgres() {
                    super::$name($crate::backends::Backend::Postgres)
                }
            }
        )+
    };
}

pub(crate) use on_both_backends;
