//! The fleet's hosts under faults (issue 14): three hosts and every tick
//! once, status and history of the fleet, a killed host, a paused host,
//! `forbid` and `replace` across hosts, two definitions of one job, and
//! catch-up after the whole fleet was down. The database is the test
//! server's (a database per test).

use super::*;

#[test]
fn three_hosts_run_every_tick_exactly_once_in_the_database_and_the_jobs_record() {
    let Some(db) = TestDb::create("fleet: three hosts, every tick once") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    let hosts = ["host-a", "host-b", "host-c"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    let first = wait_for(
        Duration::from_secs(30),
        "a tick after all three are up",
        || f.lines("ticks.txt").last().map(|(tick, _)| *tick),
    );
    // 20 s of ticks, counted by the jobs themselves.
    let end = first + chrono::Duration::seconds(20);
    wait_for(Duration::from_secs(60), "20 s of ticks", || {
        f.lines("ticks.txt")
            .iter()
            .any(|(tick, _)| *tick >= end)
            .then_some(())
    });
    stop_all(daemons);

    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    // Up to `end`: the daemons stop one after another, and a run stopped
    // between its claim and its command leaves a gap that is no loss.
    let mut ticks: Vec<DateTime<Utc>> = lines
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= end)
        .collect();
    ticks.sort();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a tick was missed while the daemons ran: {lines:?}"
        );
    }
    let rows = f.history("tick");
    one_row_per_tick(&rows);
    let by_tick: BTreeMap<DateTime<Utc>, &Value> = rows.iter().map(|r| (tick(r), r)).collect();
    for (t, host) in &lines {
        let row = by_tick
            .get(t)
            .unwrap_or_else(|| panic!("tick {t} ran on {host} without a row: {rows:?}"));
        assert_eq!(row["host"], host.as_str(), "the row names its host: {row}");
        assert!(
            row["status"] == "succeeded" || row["status"] == "interrupted",
            "{row}"
        );
    }
    for r in &rows {
        let t = tick(r);
        assert!(hosts.contains(&r["host"].as_str().unwrap_or("")), "{r}");
        if r["status"] == "succeeded" {
            assert!(
                lines.iter().any(|(l, _)| *l == t),
                "a succeeded run the job never made: {r}"
            );
        }
        assert_ne!(r["status"], "running", "left running: {r}");
    }
}

#[test]
fn status_and_history_show_every_host_its_state_and_last_beat() {
    let Some(db) = TestDb::create("fleet: status and history") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    let hosts = ["replica-one", "replica-two", "replica-three"];
    let mut daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    let members = f.members();
    for h in hosts {
        let m = &members[h];
        assert!(m["pid"].is_number(), "{m}");
        assert!(m["epoch"].is_number(), "{m}");
        assert!(time(m, "started_at").is_some(), "{m}");
    }
    // The last beat moves with the heartbeat (1 s).
    let beat = time(&members["replica-one"], "last_beat").expect("a last beat");
    wait_for(Duration::from_secs(10), "a newer beat", || {
        let m = f.members();
        (time(&m["replica-one"], "last_beat").expect("a last beat") > beat).then_some(())
    });
    let text = f.status_text();
    for h in hosts {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(h))
            .unwrap_or_else(|| panic!("status does not show {h}:\n{text}"));
        assert!(line.contains("alive"), "{h} is alive:\n{text}");
    }

    wait_for(Duration::from_secs(30), "three runs", || {
        (f.history("tick").len() >= 3).then_some(())
    });
    let text = f.jobrun(&["history", "tick"]).expect_code(0).stdout;
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.to_lowercase().contains("host"),
        "history has a host column:\n{text}"
    );
    for r in f.history("tick") {
        let host = r["host"].as_str().expect("each run names its host");
        assert!(hosts.contains(&host), "{r}");
    }
    let newest = f.history("tick").pop().expect("runs");
    assert!(
        text.contains(newest["host"].as_str().unwrap_or("?")),
        "{text}"
    );

    // A clean stop shows as stopped; the others stay alive.
    let three = daemons.pop().expect("three daemons");
    three.signal(Signal::SIGTERM);
    let (code, log) = three.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{log}");
    let members = f.members();
    assert_eq!(members["replica-three"]["state"], "stopped", "{members:?}");
    assert_eq!(members["replica-one"]["state"], "alive", "{members:?}");
    let text = f.status_text();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("replica-three"))
        .unwrap_or_else(|| panic!("status forgets a stopped host:\n{text}"));
    assert!(line.contains("stopped"), "{text}");
    stop_all(daemons);
}

#[test]
fn a_killed_hosts_run_is_abandoned_by_a_peer_within_the_lease_and_never_run_again() {
    let Some(db) = TestDb::create("fleet: a killed host") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = format!("{}; sleep 30", record_to("runs.txt"));
    // forbid (the default): the run holds the job until it is resolved.
    f.jobs("jobs.yaml", &[("slow", "*/4 * * * * *", &command, "")]);
    let hosts = ["node-1", "node-2", "node-3"];
    let mut daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    let mut orphans = Orphans::default();
    let run = wait_for(Duration::from_secs(60), "a run to start", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["pid"].is_number())
    });
    let victim = run["host"].as_str().expect("the run's host").to_string();
    let at = hosts
        .iter()
        .position(|h| *h == victim)
        .expect("one of ours");
    let killed = daemons.remove(at);
    killed.signal(Signal::SIGKILL);
    let killed_at = wall_now();
    killed.wait(Duration::from_secs(10));
    // The job outlives its daemon, as on a host whose jobrun crashed.
    orphans.0.push(run["pid"].as_i64().expect("pid") as i32);

    let abandoned = wait_for(Duration::from_secs(60), "the run to be abandoned", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["id"] == run["id"] && r["status"] != "running")
    });
    assert_eq!(abandoned["status"], "abandoned", "{abandoned}");
    let resolved = time(&abandoned, "finished_at").expect("an abandoned run has an end");
    let limit = LEASE + Duration::from_secs(5);
    assert!(
        resolved - killed_at <= chrono::Duration::from_std(limit).expect("small"),
        "abandoned {} after the kill, more than lease + 5 s: {abandoned}",
        resolved - killed_at
    );
    eprintln!("abandoned {} after the kill", resolved - killed_at);
    let error = abandoned["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&victim),
        "the error names the dead host: {abandoned}"
    );
    assert!(
        daemons.iter().any(|d| d.log().contains("declared dead")),
        "a peer logs that it declared {victim} dead"
    );

    // The job is free again: a later tick runs on a live host; the
    // abandoned tick does not.
    let t0 = tick(&run);
    let next = wait_for(Duration::from_secs(30), "a later run", || {
        f.history("slow")
            .into_iter()
            .find(|r| tick(r) > t0 && r["status"] != "skipped" && r["pid"].is_number())
    });
    assert_ne!(next["host"], victim.as_str(), "{next}");
    stop_all(daemons);
    let rows = f.history("slow");
    one_row_per_tick(&rows);
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    assert_eq!(
        lines.iter().filter(|(t, _)| *t == t0).count(),
        1,
        "the abandoned tick ran again: {lines:?}"
    );
    let row = rows.iter().find(|r| r["id"] == run["id"]).expect("the row");
    assert_eq!(row["status"], "abandoned", "{row}");
}

#[test]
fn a_paused_host_is_fenced_its_late_finish_is_refused_and_it_claims_again() {
    let Some(db) = TestDb::create("fleet: a paused host") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let slow = format!("{}; sleep 3", record_to("slow.txt"));
    let ticker = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[
            ("slow", "*/5 * * * * *", &slow, ""),
            ("tick", "* * * * * *", &ticker, "concurrency: allow"),
        ],
    );
    let hosts = ["paused", "peer"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    f.wait_alive(&hosts);
    // The run to pause is the paused host's: wait for one it started.
    let run = wait_for(Duration::from_secs(60), "a run of the paused host", || {
        f.history("slow")
            .into_iter()
            .find(|r| r["status"] == "running" && r["host"] == "paused" && r["pid"].is_number())
    });
    let paused = &daemons[0];
    paused.signal(Signal::SIGSTOP);
    let abandoned = wait_for(
        Duration::from_secs(60),
        "the peer to abandon the paused host's run",
        || {
            f.history("slow")
                .into_iter()
                .find(|r| r["id"] == run["id"] && r["status"] != "running")
        },
    );
    assert_eq!(abandoned["status"], "abandoned", "{abandoned}");
    assert!(
        daemons[1].log().contains("declared dead"),
        "the peer logs the expiry:\n{}",
        daemons[1].log()
    );
    // The job (not stopped: only the daemon is) ends while its daemon sleeps.
    let pid = run["pid"].as_i64().expect("pid");
    wait_for(Duration::from_secs(30), "the job to end", || {
        (!pid_alive(pid)).then_some(())
    });
    paused.signal(Signal::SIGCONT);
    let resumed_at = wall_now();
    wait_for(
        Duration::from_secs(30),
        "the paused host to log `fenced`",
        || paused.log().contains("fenced").then_some(()),
    );
    let again = wait_for(
        Duration::from_secs(60),
        "the paused host to claim again",
        || {
            let mut rows = f.history("tick");
            rows.extend(f.history("slow"));
            rows.into_iter().find(|r| {
                r["host"] == "paused"
                    && r["status"] != "skipped"
                    && time(r, "started_at").is_some_and(|s| s > resumed_at)
            })
        },
    );
    let members = f.members();
    assert_eq!(
        members["paused"]["state"], "alive",
        "re-registered: {members:?}"
    );
    assert!(
        members["paused"]["epoch"].as_i64() > Some(0),
        "{members:?} {again}"
    );
    stop_all(daemons);

    let rows = f.history("slow");
    one_row_per_tick(&rows);
    let row = rows.iter().find(|r| r["id"] == run["id"]).expect("the row");
    assert_eq!(
        row["status"], "abandoned",
        "the fenced host's late finish overwrote the peer's verdict: {row}"
    );
    no_tick_twice(&f.lines("slow.txt"));
    let ticks = f.history("tick");
    one_row_per_tick(&ticks);
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    every_run_claimed(&lines, &ticks);
}

#[test]
fn forbid_across_three_hosts_never_runs_two_at_once() {
    let Some(db) = TestDb::create("fleet: forbid") else {
        return;
    };
    let f = Fleet::new(&db.url);
    // The job checks for itself too: a marker file while it runs.
    let command = format!(
        "if [ -e {{root}}/busy ]; then {}; fi; touch {{root}}/busy; {}; sleep 10; rm {{root}}/busy",
        record_to("overlaps.txt"),
        record_to("runs.txt")
    );
    f.jobs(
        "jobs.yaml",
        &[("long", "*/2 * * * * *", &command, "concurrency: forbid")],
    );
    let hosts = ["fa", "fb", "fc"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    wait_for(Duration::from_secs(90), "two runs done and skips", || {
        let rows = f.history("long");
        let done = rows.iter().filter(|r| r["status"] == "succeeded").count();
        let skipped = rows.iter().filter(|r| r["status"] == "skipped").count();
        (done >= 2 && skipped >= 3).then_some(())
    });
    stop_all(daemons);

    let rows = f.history("long");
    one_row_per_tick(&rows);
    never_two_at_once(&rows);
    let skipped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(!skipped.is_empty());
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    for s in &skipped {
        assert!(
            !lines.iter().any(|(t, _)| *t == tick(s)),
            "a skipped tick ran: {s}"
        );
    }
    assert!(
        f.lines("overlaps.txt").is_empty(),
        "the job saw itself running: {:?}",
        f.lines("overlaps.txt")
    );
}

#[test]
fn a_host_with_another_definition_of_a_job_is_refused_and_reported() {
    let Some(db) = TestDb::create("fleet: drift") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let first = format!("echo first >> {{root}}/which.txt; {}", record_to("out.txt"));
    let second = format!(
        "echo second >> {{root}}/which.txt; {}",
        record_to("out.txt")
    );
    let extra = "concurrency: allow";
    f.jobs("first.yaml", &[("drifty", "* * * * * *", &first, extra)]);
    f.jobs("second.yaml", &[("drifty", "* * * * * *", &second, extra)]);
    let one = f.host("first-host", "first.yaml");
    wait_for(Duration::from_secs(60), "the first host's run", || {
        (!f.history("drifty").is_empty()).then_some(())
    });
    let two = f.host("second-host", "second.yaml");
    wait_for(Duration::from_secs(30), "the refusal in the log", || {
        two.log()
            .lines()
            .any(|l| l.contains("definition") && l.contains("drifty"))
            .then_some(())
    });
    let drift = wait_for(Duration::from_secs(30), "fleet.drift", || {
        let status = f.status();
        status["fleet"]["drift"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["job"] == "drifty").cloned())
    });
    assert_eq!(drift["host"], "second-host", "{drift}");
    assert_eq!(drift["fleet_host"], "first-host", "{drift}");
    assert_ne!(drift["fingerprint"], drift["fleet_fingerprint"], "{drift}");
    let text = f.status_text();
    assert!(
        text.lines()
            .any(|l| l.contains("drifty") && l.contains("second-host")),
        "status shows the drift:\n{text}"
    );
    // `check` against the fleet says the same before a deploy.
    let refused = f.jobrun(&["check", "--config", "{root}/second.yaml"]);
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert_ne!(
        refused.code, 0,
        "check passes a drifting definition:\n{said}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("drifty") && l.contains("definition") && l.contains("first-host")),
        "check names the job, its definition and the fleet's host:\n{said}"
    );
    let same = f.jobrun(&["check", "--config", "{root}/first.yaml"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    // Both hosts evaluate the next ticks; only the first definition runs.
    let from = wall_now() + chrono::Duration::seconds(3);
    wait_for(Duration::from_secs(30), "three more ticks", || {
        f.lines("out.txt")
            .iter()
            .any(|(t, _)| *t >= from)
            .then_some(())
    });
    stop_all(vec![one, two]);
    let which = std::fs::read_to_string(f.t.path("which.txt")).unwrap_or_default();
    assert!(
        !which.contains("second"),
        "the second definition ran:\n{which}"
    );
    let rows = f.history("drifty");
    one_row_per_tick(&rows);
    for r in rows.iter().filter(|r| r["status"] != "missed") {
        assert_eq!(r["host"], "first-host", "{r}");
    }
}

#[test]
fn replace_stops_the_run_on_whichever_host_holds_it() {
    let Some(db) = TestDb::create("fleet: replace across hosts") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = format!("{}; sleep 30", record_to("runs.txt"));
    f.jobs(
        "jobs.yaml",
        &[(
            "newest",
            "*/3 * * * * *",
            &command,
            "concurrency: replace\nkill_grace: 1s",
        )],
    );
    let hosts = ["rep-a", "rep-b"];
    let daemons: Vec<Daemon> = hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect();
    // A run replaced by one that started on the other host: the request
    // went through the database.
    let (old, new) = wait_for(
        Duration::from_secs(120),
        "a run replaced from the other host",
        || {
            let rows = f.history("newest");
            let started: Vec<&Value> = rows.iter().filter(|r| r["pid"].is_number()).collect();
            started.windows(2).find_map(|pair| {
                (pair[0]["status"] == "killed" && pair[0]["host"] != pair[1]["host"])
                    .then(|| (pair[0].clone(), pair[1].clone()))
            })
        },
    );
    let error = old["error"].as_str().unwrap_or_default();
    assert!(error.contains("replaced"), "{old}");
    stop_all(daemons);

    let rows = f.history("newest");
    one_row_per_tick(&rows);
    never_two_at_once(&rows);
    eprintln!(
        "replaced {} on {} by {} on {}",
        old["id"], old["host"], new["id"], new["host"]
    );
    no_tick_twice(&f.lines("runs.txt"));
}

#[test]
fn catch_up_after_a_whole_fleet_outage_runs_the_missed_tick_once() {
    let Some(db) = TestDb::create("fleet: catch-up after an outage") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("runs.txt");
    f.jobs(
        "jobs.yaml",
        &[("every10", "*/10 * * * * *", &command, "catch_up: 1h")],
    );
    let hosts = ["cu-a", "cu-b"];
    let start = || -> Vec<Daemon> { hosts.iter().map(|h| f.host(h, "jobs.yaml")).collect() };
    let daemons = start();
    f.wait_alive(&hosts);
    stop_all(daemons);
    // The scenario: the whole fleet is down over a tick.
    let stopped = wall_now();
    let next = f
        .history("every10")
        .iter()
        .map(tick)
        .max()
        .map_or(stopped, |t| t.max(stopped));
    let secs = 10 - next.timestamp().rem_euclid(10);
    let missed = next + chrono::Duration::seconds(secs);
    let missed = missed - chrono::Duration::nanoseconds(missed.timestamp_subsec_nanos().into());
    let wait = (missed - wall_now() + chrono::Duration::milliseconds(500))
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    let daemons = start();
    let caught = wait_for(Duration::from_secs(60), "the catch-up run", || {
        f.history("every10")
            .into_iter()
            .find(|r| r["trigger"] == "catch-up" && tick(r) >= missed)
    });
    assert_eq!(tick(&caught), missed, "{caught}");
    // The next scheduled tick after the catch-up: both hosts were up for it.
    wait_for(Duration::from_secs(30), "a scheduled run after", || {
        f.history("every10")
            .into_iter()
            .find(|r| tick(r) > missed && r["status"] == "succeeded")
    });
    stop_all(daemons);
    let rows = f.history("every10");
    one_row_per_tick(&rows);
    // (The fleet's first start may catch up a tick from before it existed:
    // a_fleets_first_start_catches_up_nothing.)
    let catch_ups: Vec<&Value> = rows
        .iter()
        .filter(|r| r["trigger"] == "catch-up" && tick(r) >= missed)
        .collect();
    assert_eq!(catch_ups.len(), 1, "{catch_ups:#?}");
    let lines = f.lines("runs.txt");
    no_tick_twice(&lines);
    assert!(
        lines.iter().any(|(t, _)| *t == missed),
        "the missed tick did not run: {lines:?}"
    );
}

#[test]
fn a_fleets_first_start_catches_up_nothing() {
    let Some(db) = TestDb::create("fleet: first start") else {
        return;
    };
    let f = Fleet::new(&db.url);
    // A daily job whose tick was a few seconds before the fleet existed.
    let before = wall_now() - chrono::Duration::seconds(3);
    let schedule = format!(
        "{} {} {} * * *",
        before.second(),
        before.minute(),
        before.hour()
    );
    let command = record_to("runs.txt");
    f.jobs(
        "jobs.yaml",
        &[("daily", &schedule, &command, "catch_up: 1h")],
    );
    // The first host has no earlier daemon: nothing to catch up. The second
    // joins a live fleet: no downtime either.
    let first = f.host("first-a", "jobs.yaml");
    f.wait_alive(&["first-a"]);
    let second = f.host("first-b", "jobs.yaml");
    f.wait_alive(&["first-a", "first-b"]);
    let caught = wait_until(Duration::from_secs(10), || !f.history("daily").is_empty());
    let logs = format!("{}\n{}", first.log(), second.log());
    stop_all(vec![first, second]);
    assert!(
        !caught,
        "the fleet's first start ran a tick from before it existed: {:?}\n{logs}",
        f.history("daily")
    );
}

#[test]
#[cfg_attr(
    not(jobrun_faketime),
    ignore = "needs libfaketime (apt-get install faketime, then touch build.rs)"
)]
fn a_host_whose_clock_is_off_is_warned_and_runs_each_tick_once() {
    let Some(db) = TestDb::create("fleet: a host's clock off") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    let on_time = f.host("on-time", "jobs.yaml");
    // Its wall clock 5 s ahead (monotonic time left alone, as NTP's is).
    let ahead = f.host_with(
        "ahead",
        "jobs.yaml",
        &f.url,
        &[
            (
                "LD_PRELOAD",
                option_env!("JOBRUN_LIBFAKETIME").unwrap_or_default(),
            ),
            ("FAKETIME", "+5s"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    f.wait_alive(&["on-time", "ahead"]);
    let offset = wait_for(Duration::from_secs(30), "the clock offset", || {
        f.members()["ahead"]["clock_offset_ms"].as_i64()
    });
    assert!((4000..6000).contains(&offset), "offset {offset} ms");
    let own = f.members()["on-time"]["clock_offset_ms"].as_i64();
    assert!(own.is_some_and(|ms| ms.abs() < 1000), "{own:?}");
    wait_for(Duration::from_secs(30), "the warning in its log", || {
        ahead
            .log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("clock of ahead"))
            .then_some(())
    });
    let text = f.status_text();
    assert!(
        text.lines()
            .any(|l| l.starts_with("warning") && l.contains("clock of ahead")),
        "status warns of the clock:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.contains("clock of on-time")),
        "{text}"
    );
    // Ticks come from the schedule: the fast host fires each tick 5 s early
    // by the real clock, and still every tick runs once.
    let first = wait_for(Duration::from_secs(30), "a tick", || {
        f.lines("ticks.txt").iter().map(|(t, _)| *t).max()
    });
    let end = first + chrono::Duration::seconds(10);
    wait_for(Duration::from_secs(60), "10 s of ticks", || {
        f.lines("ticks.txt")
            .iter()
            .any(|(t, _)| *t >= end)
            .then_some(())
    });
    stop_all(vec![on_time, ahead]);
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    let rows = f.history("tick");
    one_row_per_tick(&rows);
    every_run_claimed(&lines, &rows);
    assert!(
        gaps(&rows, end).is_empty(),
        "ticks without a row: {:?}",
        gaps(&rows, end)
    );
}

#[test]
#[cfg_attr(
    not(jobrun_faketime),
    ignore = "needs libfaketime (apt-get install faketime, then touch build.rs)"
)]
fn pruned_history_keeps_the_claims_so_a_clock_stepped_back_reruns_nothing() {
    let Some(db) = TestDb::create("fleet: claims outlive pruning") else {
        return;
    };
    let f = Fleet::new(&db.url);
    let command = record_to("ticks.txt");
    f.jobs(
        "jobs.yaml",
        &[("tick", "* * * * * *", &command, "concurrency: allow")],
    );
    // Written whole and renamed, so libfaketime never reads half a file.
    let offset = |text: &str| {
        f.t.write("offset.tmp", text);
        std::fs::rename(f.t.path("offset.tmp"), f.t.path("offset")).expect("rename");
    };
    offset("+0\n");
    let offset_file = f.t.path("offset").display().to_string();
    let steady = f.host("steady", "jobs.yaml");
    let stepper = f.host_with(
        "stepper",
        "jobs.yaml",
        &f.url,
        &[
            (
                "LD_PRELOAD",
                option_env!("JOBRUN_LIBFAKETIME").unwrap_or_default(),
            ),
            ("FAKETIME_TIMESTAMP_FILE", &offset_file),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
            // A tick met again after the step and found claimed is a debug
            // line.
            ("RUST_LOG", "info,jobrun::daemon=debug"),
        ],
    );
    f.wait_alive(&["steady", "stepper"]);
    wait_for(Duration::from_secs(60), "12 ticks", || {
        (f.lines("ticks.txt").len() >= 12).then_some(())
    });
    let pruned = f.jobrun(&["prune", "--keep-runs", "1"]).expect_code(0);
    assert!(
        f.history("tick").len() <= 3,
        "prune kept: {:?}\n{}",
        f.history("tick"),
        pruned.stdout
    );
    let before = f
        .lines("ticks.txt")
        .iter()
        .map(|(t, _)| *t)
        .max()
        .expect("ticks");
    // The stepper's clock goes 10 s back: it meets again the ticks it and
    // its peer ran, whose runs are pruned but whose claims are not. (With
    // the claims deleted instead, the stepper runs them again: checked by
    // hand once.)
    offset("-10\n");
    wait_for(Duration::from_secs(30), "the step back to be seen", || {
        stepper
            .log()
            .contains("wall clock moved backwards")
            .then_some(())
    });
    // Its clock is 10 s behind its peer's: past `before` when the peer is
    // 10 s further.
    wait_for(
        Duration::from_secs(60),
        "the stepper to be past its step",
        || {
            f.lines("ticks.txt")
                .iter()
                .any(|(t, _)| *t > before + chrono::Duration::seconds(12))
                .then_some(())
        },
    );
    let log = stepper.log();
    let after_step = log
        .split_once("wall clock moved backwards")
        .map_or("", |(_, rest)| rest);
    let met_again: BTreeSet<DateTime<Utc>> = after_step
        .lines()
        .filter(|l| l.contains("ran before the clock went back"))
        .filter_map(|l| l.split_once("tick=")?.1.split_whitespace().next())
        .filter_map(|t| t.parse().ok())
        .filter(|t| *t <= before)
        .collect();
    assert!(
        met_again.len() >= 5,
        "the stepper met {} of the pruned ticks again:\n{log}",
        met_again.len()
    );
    stop_all(vec![steady, stepper]);
    let lines = f.lines("ticks.txt");
    no_tick_twice(&lines);
    one_row_per_tick(&f.history("tick"));
}
