//! Tests' PostgreSQL: a fresh database per test (random name), dropped when
//! the [`TestDb`] is dropped. The server is `JOBRUN_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, trust auth), which
//! `.ci/run` makes sure is running. Without a server, a test prints how to
//! install one and returns, except under `CI=true`, where it panics: a CI run
//! never passes a PostgreSQL test it did not run.
//!
//! Shared by the lib's tests and `tests/integration` (included there with
//! `#[path]`), so it names nothing of the crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server the tests use when `JOBRUN_TEST_DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How to get a server on a Debian machine (what `.ci/run` does).
pub const INSTALL: &str = "bash .ci/run (it runs apt-get install -y postgresql and starts a \
                           cluster with trust auth on 127.0.0.1:5432)";

/// One test's database on the test server.
#[derive(Debug)]
pub struct TestDb {
    /// A URL of this database, for `tokio_postgres::Config` or `--database`.
    pub url: String,
    name: String,
    admin: tokio_postgres::Config,
}

fn server_url() -> String {
    std::env::var("JOBRUN_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// Runs a future to completion on a runtime of its own, on a thread of its
/// own (callers may be inside a runtime already).
fn block_on<F, T>(future: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test database")
            .block_on(future)
    })
    .join()
    .expect("the test database thread")
}

async fn admin_client(
    config: tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl TestDb {
    /// A new, empty database; `None` (after saying why) when no server
    /// answers outside CI. `test` names the test in the skip message.
    pub fn create(test: &str) -> Option<TestDb> {
        let url = server_url();
        let admin: tokio_postgres::Config = url
            .parse()
            .unwrap_or_else(|e| panic!("JOBRUN_TEST_DATABASE_URL={url}: {e}"));
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Random per process (std seeds it from the OS): no clock read.
        let random = RandomState::new().build_hasher().finish() & 0xffff_ffff;
        let name = format!(
            "jobrun_test_{}_{}_{random:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let config = admin.clone();
        let create = format!("CREATE DATABASE {name}");
        let made = block_on(async move {
            let client = admin_client(config).await?;
            client.batch_execute(&create).await
        });
        if let Err(e) = made {
            let message =
                format!("no PostgreSQL test server at {url} ({e}); install one: {INSTALL}");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true: {message}");
            }
            // Straight to the process's stderr: the test harness captures
            // eprintln! of passing tests, and a skip must be seen.
            let _ = writeln!(std::io::stderr(), "skipped {test}: {message}");
            return None;
        }
        let url = database_url(&url, &name);
        Some(TestDb { url, name, admin })
    }

    /// The server's own database, where test databases are made.
    pub fn admin_config(&self) -> tokio_postgres::Config {
        self.admin.clone()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The one integer `query` reads from this database.
    pub fn read_count(&self, query: &str) -> i64 {
        let config: tokio_postgres::Config = self.url.parse().expect("the test database's URL");
        let query = query.to_string();
        block_on(async move {
            let client = admin_client(config).await.expect("connecting");
            client.query_one(&query, &[]).await.expect(&query).get(0)
        })
    }
}

/// `url` with its database replaced by `name` (URL or key=value form).
pub(crate) fn database_url(url: &str, name: &str) -> String {
    let Some(scheme) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let rest = &url[scheme + 3..];
    let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    format!("{}{authority}/{name}{query}", &url[..scheme + 3])
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let config = self.admin.clone();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = block_on(async move {
            let client = admin_client(config).await?;
            client.batch_execute(&drop).await
        });
        if let Err(e) = dropped {
            eprintln!("test database {} was not dropped: {e}", self.name);
        }
    }
}

/// A throwaway PostgreSQL cluster of one test's own, in a temporary
/// directory on a free port, for tests that restart or crash the server.
/// Made with `initdb`/`pg_ctl` as the `postgres` user (the server refuses
/// root), so it needs root; stopped (immediately) and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl Cluster {
    /// A running cluster; `None` (after saying why) when PostgreSQL's
    /// binaries are missing outside CI.
    pub fn start(test: &str) -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|dirs| {
                dirs.filter_map(|d| d.ok().map(|d| d.path().join("bin")))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            });
        let Some(bin) = bin else {
            let message = format!("PostgreSQL's initdb is not installed; install it: {INSTALL}");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true: {message}");
            }
            let _ = writeln!(std::io::stderr(), "skipped {test}: {message}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let random = RandomState::new().build_hasher().finish() & 0xffff_ffff;
        let dir =
            std::env::temp_dir().join(format!("jobrun-pg-{}-{random:08x}", std::process::id()));
        std::fs::create_dir(&dir).expect("the cluster's directory");
        let cluster = Cluster { dir, bin, port };
        let status = std::process::Command::new("chown")
            .args(["postgres:postgres", &cluster.dir.to_string_lossy()])
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the cluster directory");
        let data = cluster.data();
        let initdb = cluster.bin.join("initdb");
        cluster.as_postgres(&[
            &initdb.to_string_lossy(),
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn as_postgres(&self, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl ACTION` (start, stop, restart), immediate shutdown, waiting.
    pub fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.to_string_lossy()
        );
        let log = self.dir.join("server.log");
        self.as_postgres(&[
            &self.bin.join("pg_ctl").to_string_lossy(),
            "-D",
            &self.data(),
            "-l",
            &log.to_string_lossy(),
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            action,
        ]);
    }

    /// A URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
