//! A throwaway PostgreSQL server of one fleet test's own, for the scenarios
//! of issue 14 that cut, restart or stop the server. The cluster itself
//! (`initdb`/`pg_ctl` as the `postgres` user, a temporary directory, a free
//! port, stopped immediately and removed on drop) is the lib tests'
//! [`Cluster`]; this adds what the daemon scenarios do to it from outside:
//! a URL per host (its application name tells that host's connections
//! apart), cutting one host's connections, stopping and starting, and SQL.
//! Needs root (the server refuses to run as root, so the test becomes
//! `postgres`): its tests are `#[cfg_attr(not(jobrun_root), ignore)]`.

use crate::postgres::testdb::Cluster;

/// A running cluster of one test; stopped and removed when dropped.
pub struct PgCluster {
    cluster: Cluster,
    /// Drives the test's own connections (one worker, so a connection's
    /// task runs between the test's calls and notices a cut).
    rt: tokio::runtime::Runtime,
}

impl PgCluster {
    /// A running cluster; `None` (after saying why) where PostgreSQL is not
    /// installed outside CI.
    pub fn start(test: &str) -> Option<PgCluster> {
        let cluster = Cluster::start(test)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the cluster's connections");
        Some(PgCluster { cluster, rt })
    }

    /// The cluster's `postgres` database.
    pub fn url(&self) -> String {
        self.cluster.url()
    }

    /// The database URL for host `host`: its connections carry the
    /// application name [`app`]`(host)`, so they can be cut alone.
    pub fn url_for(&self, host: &str) -> String {
        format!("{}?application_name={}", self.cluster.url(), app(host))
    }

    /// Stops the server (immediate: as a crash looks to its clients).
    pub fn stop(&self) {
        self.cluster.pg_ctl("stop");
    }

    /// Starts the stopped server again, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.cluster.pg_ctl("start");
    }

    /// An immediate restart: every connection is dropped, the server comes
    /// back with what was committed.
    pub fn restart(&self) {
        self.cluster.pg_ctl("restart");
    }

    /// Terminates every connection of host `host` (`pg_terminate_backend`);
    /// how many there were.
    pub fn cut(&self, host: &str) -> i64 {
        self.count(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &app(host),
        )
    }

    /// How many connections host `host` has open.
    pub fn connections(&self, host: &str) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &app(host),
        )
    }

    /// Connects with application name `app`; `Err` (the message) when the
    /// server does not answer.
    pub fn connect(&self, app: &str) -> Result<tokio_postgres::Client, String> {
        let url = format!("{}?application_name={app}", self.cluster.url());
        self.rt.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Ok(client)
        })
    }

    /// Runs `sql` on `client`; `Err` (the message) when it fails.
    pub fn execute(&self, client: &tokio_postgres::Client, sql: &str) -> Result<(), String> {
        self.rt
            .block_on(client.batch_execute(sql))
            .map_err(|e| e.to_string())
    }

    fn count(&self, sql: &str, param: &str) -> i64 {
        let client = self
            .connect("jobrun-test")
            .expect("connecting to the cluster");
        self.rt
            .block_on(client.query_one(sql, &[&param]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

/// The application name of host `host`'s connections.
pub fn app(host: &str) -> String {
    format!("jobrun-{host}")
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn a_throwaway_cluster_answers_is_cut_restarts_stops_and_is_gone_when_dropped() {
    let Some(pg) = PgCluster::start("pg_cluster self-test") else {
        return;
    };
    let held = pg.connect(&app("probe")).expect("the new cluster answers");
    pg.execute(&held, "SELECT 1").expect("a query");
    assert_eq!(pg.connections("probe"), 1);
    assert_eq!(pg.cut("probe"), 1, "the probe's one connection is cut");
    assert!(
        pg.execute(&held, "SELECT 1").is_err(),
        "a cut connection fails"
    );
    assert_eq!(pg.connections("probe"), 0);

    pg.restart();
    let client = pg
        .connect("after-restart")
        .expect("answers after a restart");
    pg.execute(
        &client,
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)",
    )
    .expect("writes after a restart");
    pg.stop();
    assert!(
        pg.connect("while-down").is_err(),
        "a stopped server refuses connections"
    );
    pg.start_again();
    let client = pg.connect("after-start").expect("answers after a start");
    pg.execute(&client, "SELECT x FROM kept")
        .expect("committed data outlives a stop");

    let url = pg.url();
    drop(pg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gone = rt.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls));
    assert!(gone.is_err(), "the dropped cluster's server still answers");
}
