//! The fleet's database under faults (issue 14), on a throwaway cluster of
//! each test's own (`pg_cluster`, root only): cut connections and an
//! immediate restart mid-run, the server down for 20 s, outcomes kept while
//! it is down (across a daemon restart too), an outage longer than the lease.

use super::*;

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn cut_connections_and_a_server_restart_mid_run_lose_no_outcome_and_run_nothing_twice() {
    let Some(pg) = PgCluster::start("fleet: server restart") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let slow = format!("{}; sleep 5", record_to("slow.txt"));
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[
            ("slow", "*/10 * * * * *", &slow, ""),
            ("tick", "* * * * * *", &ticker, "concurrency: allow"),
        ],
    );
    let hosts = ["db-a", "db-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    let run = wait_for(Duration::from_secs(60), "a run of slow", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    let holder = run["host"].as_str().expect("host").to_string();
    assert!(pg.cut(&holder) >= 1, "{holder} had no connection to cut");
    pg.restart();
    let restarted = Instant::now();
    let back_at = wall_now();
    let resumed = wait_for(Duration::from_secs(60), "runs to resume", || {
        f.history("tick")
            .into_iter()
            .find(|r| tick(r) > back_at && r["status"] == "succeeded")
    });
    let took = restarted.elapsed();
    eprintln!("runs resumed {took:?} after the restart");
    assert!(
        took < Duration::from_secs(15),
        "runs resumed {took:?} after the restart: {resumed}"
    );
    let finished = wait_for(Duration::from_secs(60), "the run's outcome", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["exit_code"], 0, "{finished}");
    stop_all(daemons);

    for job in ["slow", "tick"] {
        one_row_per_tick(&f.history(job));
    }
    no_tick_twice(&f.lines("slow.txt"));
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    every_run_claimed(&lines, &f.history("tick"));
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn while_the_server_is_down_nothing_starts_and_its_ticks_are_recorded_missed() {
    let Some(pg) = PgCluster::start("fleet: server down") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &ticker, "concurrency: allow")],
    );
    let hosts = ["down-a", "down-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    wait_for(Duration::from_secs(60), "three ticks", || {
        (f.lines("ticks.txt").len() >= 3).then_some(())
    });
    pg.stop();
    let down_at = wall_now();
    // The scenario: the server stays down for 20 s.
    std::thread::sleep(Duration::from_secs(20));
    pg.start_again();
    let up_at = wall_now();
    let resumed = wait_for(Duration::from_secs(60), "runs to resume", || {
        f.history("tick")
            .into_iter()
            .find(|r| tick(r) > up_at && r["status"] == "succeeded")
    });
    let resumed_tick = tick(&resumed);
    // Every tick of the outage gets its row (the daemons record the ticks
    // they could not claim once the server is back).
    let complete = wait_until(Duration::from_secs(60), || {
        gaps(&f.history("tick"), resumed_tick).is_empty()
    });
    stop_all(daemons);
    let rows = f.history("tick");
    one_row_per_tick(&rows);
    let missed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "missed").collect();
    let in_outage = missed
        .iter()
        .filter(|r| tick(r) > down_at && tick(r) < up_at)
        .count();
    assert!(
        in_outage >= 10,
        "{in_outage} ticks of a 20 s outage recorded missed: {rows:#?}"
    );
    for m in &missed {
        let error = m["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "a missed row says why: {m}");
    }
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    every_run_claimed(&lines, &rows);
    let gaps = gaps(&rows, resumed_tick);
    assert!(
        complete && gaps.is_empty(),
        "ticks without a row (the server was down {down_at}..{up_at}): {gaps:?}"
    );
}

/// Starts the one host of a spool scenario on `pg`, waits for a run of
/// `slow` (a 6 s job), stops the server and waits for the job to end while
/// it is down; the daemon and the run.
fn run_ends_while_the_server_is_down(f: &Fleet, pg: &PgCluster) -> (Daemon, Value) {
    let slow = format!("{}; sleep 6", record_to("slow.txt"));
    f.jobs("jobs.yaml", &[("slow", "*/10 * * * * *", &slow, "")]);
    let daemon = f.host_on("spool-host", "jobs.yaml", &pg.url_for("spool-host"));
    let run = wait_for(Duration::from_secs(60), "a run of slow", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    pg.stop();
    let pid = run["pid"].as_i64().expect("pid");
    assert!(
        pid_alive(pid),
        "the job ended before the server was down (a loaded machine?): the scenario did not happen"
    );
    wait_for(Duration::from_secs(30), "the job to end", || {
        (!pid_alive(pid)).then_some(())
    });
    (daemon, run)
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn a_run_that_ends_while_the_server_is_down_has_its_outcome_written_when_it_is_back() {
    let Some(pg) = PgCluster::start("fleet: outcome spooled") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let (daemon, run) = run_ends_while_the_server_is_down(&f, &pg);
    pg.start_again();
    let done = wait_for(Duration::from_secs(60), "the outcome", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    stop_all(vec![daemon]);
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn a_run_that_ends_while_the_server_is_down_keeps_its_outcome_across_a_daemon_restart() {
    let Some(pg) = PgCluster::start("fleet: outcome spooled across a restart") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let (daemon, run) = run_ends_while_the_server_is_down(&f, &pg);
    // The daemon restarts before the server is back (a deploy, say): the
    // outcome it holds must outlive it (issue 14, guarantee 8).
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(60));
    pg.start_again();
    let again = f.host_on("spool-host", "jobs.yaml", &pg.url_for("spool-host"));
    let done = wait_for(
        LEASE + Duration::from_secs(60),
        "the run to be resolved",
        || {
            f.history("slow")
                .into_iter()
                .find(|r| r["id"] == run["id"] && r["status"] != "running")
        },
    );
    assert_eq!(
        done["status"],
        "succeeded",
        "the outcome of a run that ended while the server was down did not survive a daemon \
         restart: {done}\nthe first daemon (exit {code}):\n{log}\nthe second:\n{}",
        again.log()
    );
    stop_all(vec![again]);
}

#[test]
#[cfg_attr(
    not(jobrun_root),
    ignore = "starts a cluster as the postgres user: needs root"
)]
fn an_outage_longer_than_the_lease_does_not_resolve_a_live_hosts_run() {
    let Some(pg) = PgCluster::start("fleet: outage longer than the lease") else {
        return;
    };
    let f = Fleet::new(&pg.url());
    let long = format!("{}; sleep 25", record_to("long.txt"));
    f.jobs("jobs.yaml", &[("long", "*/5 * * * * *", &long, "")]);
    let hosts = ["live-a", "live-b"];
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| f.host_on(h, "jobs.yaml", &pg.url_for(h)))
        .collect();
    let run = wait_for(Duration::from_secs(60), "a run of long", || {
        f.history("long")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    pg.stop();
    // The scenario: the server is down for longer than the lease, so every
    // lease has run out when it is back, while both hosts live.
    std::thread::sleep(LEASE + Duration::from_secs(4));
    pg.start_again();
    let pid = run["pid"].as_i64().expect("pid");
    assert!(
        pid_alive(pid),
        "the job ended during the outage (a loaded machine?): the scenario did not happen"
    );
    let done = wait_for(Duration::from_secs(60), "the run's outcome", || {
        f.history("long")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(
        done["status"], "succeeded",
        "a live host's run was resolved after an outage: {done}"
    );
    for d in &daemons {
        assert!(
            !d.log().contains("declared dead"),
            "a live peer was declared dead after the outage:\n{}",
            d.log()
        );
    }
    stop_all(daemons);
    let rows = f.history("long");
    one_row_per_tick(&rows);
    no_tick_twice(&f.lines("long.txt"));
}
