//! The four incidents jobrun exists for, each reproduced with local stand-ins
//! and run through its recipe in `examples/` (paths pointed into the test
//! directory, nothing else changed unless a test says why):
//!
//! - Wallos: the same job in two crontabs sent every email twice;
//! - AzuraCast: a renewed certificate, but nginx never reloaded;
//! - Mailu: the watcher that should HUP dovecot through its pidfile crashed;
//! - Websoft9: a sync ran before its service was ready and was never rerun.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::backends::{on_both_backends, Backend};
use crate::harness::{wait_for, Daemon, Test};

const LIMIT: Duration = Duration::from_secs(30);

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `history NAME --json`, oldest first.
fn stop(daemon: Daemon) {
    daemon.signal(Signal::SIGTERM);
    let (code, log) = daemon.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{log}");
}

/// The daemon has set up its file watches (and so will see the next change).
fn watching(daemon: &Daemon) {
    wait_for(LIMIT, "the daemon's file watches", || {
        daemon.log().contains("watching files").then_some(())
    });
}

fn user_name() -> String {
    jobrun::users::user_by_uid(nix::unistd::getuid().as_raw())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the current user has a name")
}

/// Wallos's crontab, as its image installs it (CRLF line ends included).
const WALLOS_CRONTAB: &str = "# Run the scripts every day\r\n\
0 1 * * * /usr/local/bin/php /var/www/html/endpoints/cronjobs/updatenextpayment.php >> /var/log/cron/updatenextpayment.log 2>&1\r\n\
0 2 * * * /usr/local/bin/php /var/www/html/endpoints/cronjobs/updateexchange.php >> /var/log/cron/updateexchange.log 2>&1\r\n\
0 9 * * * /usr/local/bin/php /var/www/html/endpoints/cronjobs/sendnotifications.php >> /var/log/cron/sendnotifications.log 2>&1\r\n";

fn wallos_the_job_in_every_source_sends_once_per_tick(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "wallos_the_job_in_every_source_sends_once_per_tick",
    ) else {
        return;
    };
    let me = user_name();
    // The stand-in for php records which script ran for which tick.
    t.script(
        "bin/php",
        "#!/bin/sh\necho \"$(basename \"$1\") $JOBRUN_TICK\" >> {root}/sent.log\n",
    );
    std::fs::create_dir_all(t.path("log")).expect("mkdir log");
    let to_local = |text: &str| {
        text.replace("/usr/local/bin/php", "{root}/bin/php")
            .replace("/var/log/cron", "{root}/log")
    };
    // Every second second from YAML, every minute from both crontabs: the
    // ticks they share must fire once.
    let config = t.example(
        "wallos",
        &[
            ("/usr/local/bin/php", "{root}/bin/php"),
            ("/var/log/cron", "{root}/log"),
            ("\"0 9 * * *\"", "\"*/2 * * * * *\""),
            ("user: root", &format!("user: {me}")),
        ],
    );
    let crontab = to_local(WALLOS_CRONTAB).replace("0 9 * * *", "* * * * *");
    t.write(&format!("root/var/spool/cron/crontabs/{me}"), &crontab);
    if me == "root" {
        // A cron.d file without user fields is read as root's crontab (dcron).
        t.write("root/etc/cron.d/wallos", &crontab);
    }

    let list = t
        .run_args([
            "--config",
            &config.display().to_string(),
            "--system-crontabs={root}/root",
            "list",
            "--json",
        ])
        .expect_code(0);
    let jobs = list.json();
    let send = jobs
        .as_array()
        .expect("list is an array")
        .iter()
        .find(|j| j["name"] == "sendnotifications")
        .expect("sendnotifications is listed");
    let sources = if me == "root" { 3 } else { 2 };
    assert_eq!(
        send["sources"].as_array().map(Vec::len),
        Some(sources),
        "{send}"
    );
    assert_eq!(
        jobs.as_array().map(Vec::len),
        Some(3),
        "one job per command"
    );

    let daemon = t.spawn_daemon([
        "--config",
        &config.display().to_string(),
        "--system-crontabs={root}/root",
    ]);
    let sent = t.path("sent.log");
    wait_for(LIMIT, "four reminder ticks", || {
        (lines(&sent).len() >= 4).then_some(())
    });
    stop(daemon);

    let sent = lines(&sent);
    let mut ticks: Vec<&String> = sent.iter().collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), sent.len(), "a tick sent twice: {sent:#?}");
    assert!(sent.iter().all(|l| l.starts_with("sendnotifications.php ")));
    // The store agrees: at most one run per tick. The daemon is stopped
    // while ticks keep coming, so the last run may have been caught by the
    // shutdown (recorded `interrupted`, whether or not its line was written).
    let runs = t.history_oldest_first("sendnotifications");
    let tick_of = |s: &str| -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap_or_else(|e| panic!("tick {s:?}: {e}"))
    };
    let mut run_ticks: Vec<_> = runs
        .iter()
        .map(|r| tick_of(r["tick"].as_str().expect("a scheduled run has a tick")))
        .collect();
    run_ticks.sort();
    let recorded = run_ticks.len();
    run_ticks.dedup();
    assert_eq!(
        run_ticks.len(),
        recorded,
        "two runs for one tick: {runs:#?}"
    );
    for line in &sent {
        let tick = tick_of(line.split_once(' ').expect("script and tick").1);
        assert!(run_ticks.contains(&tick), "{line} has no run: {runs:#?}");
    }
    assert!(
        runs.iter().all(|r| r["trigger"] == "schedule"
            && (r["status"] == "succeeded" || r["status"] == "interrupted")),
        "{runs:#?}"
    );
    assert!(
        runs.iter().filter(|r| r["status"] == "succeeded").count() >= 3,
        "{runs:#?}"
    );
}

/// The AzuraCast recipe on stand-ins, its daemon watching: certbot writes
/// the new certificate the way it does (a new file in the live directory,
/// renamed over the old one), then does `after` (more work, or nothing);
/// nginx's `-t` checks the configuration, `-s reload` is what is counted.
fn azuracast(after: &str) -> (Test, std::path::PathBuf, Daemon) {
    let t = Test::new()
        .env("PATH", "{root}/bin:/usr/bin:/bin")
        .file("etc/letsencrypt/live/example.org/fullchain.pem", "old\n");
    t.script(
        "bin/certbot",
        &format!(
            "#!/bin/sh\nlive={{root}}/etc/letsencrypt/live/example.org\n\
             echo \"new $(date +%s%N)\" > $live/fullchain.pem.new\n\
             mv $live/fullchain.pem.new $live/fullchain.pem\n{after}"
        ),
    );
    t.script(
        "bin/nginx",
        "#!/bin/sh\n[ \"$1 $2\" = \"-s reload\" ] && echo \"reload $JOBRUN_TRIGGER\" >> {root}/reloads.log\nexit 0\n",
    );
    let config = t.example(
        "azuracast",
        &[("/etc/letsencrypt/live", "{root}/etc/letsencrypt/live")],
    );
    let daemon = t.spawn_daemon(["--config", &config.display().to_string()]);
    watching(&daemon);
    (t, config, daemon)
}

/// `jobrun run renew-certificates`: a renewal through jobrun.
fn renew(t: &Test, config: &std::path::Path) {
    t.run_args([
        "--config",
        &config.display().to_string(),
        "run",
        "renew-certificates",
    ])
    .expect_code(0);
}

#[test]
fn azuracast_a_renewal_reloads_nginx_exactly_once() {
    let (t, config, daemon) = azuracast("");

    // A renewal through jobrun: the chain reloads nginx; the watch sees the
    // same change and must not reload a second time.
    renew(&t, &config);
    let reloads = t.path("reloads.log");
    assert_eq!(lines(&reloads), ["reload chain"]);
    // The watch saw the change too and logs nothing when it finds it handled:
    // let its 2 s debounce pass (with margin) before asserting no second reload.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lines(&reloads), ["reload chain"], "{}", daemon.log());

    // A renewal outside jobrun: only the watch can see it.
    t.write(
        "etc/letsencrypt/live/example.org/fullchain.pem.new",
        "renewed by hand\n",
    );
    std::fs::rename(
        t.path("etc/letsencrypt/live/example.org/fullchain.pem.new"),
        t.path("etc/letsencrypt/live/example.org/fullchain.pem"),
    )
    .unwrap();
    wait_for(LIMIT, "the watch's reload", || {
        (lines(&reloads).len() == 2).then_some(())
    });
    // No event marks "no duplicate": a debounce window (2 s) and margin.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines(&reloads), ["reload chain", "reload watch"]);
    stop(daemon);

    let runs = t.history_oldest_first("reload-nginx");
    let triggers: Vec<&str> = runs
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["chain", "watch"], "{runs:#?}");
    let renew = t.history_oldest_first("renew-certificates");
    assert_eq!(
        runs[0]["parent_id"], renew[0]["id"],
        "the chain names its parent run"
    );
}

#[test]
fn azuracast_a_long_renewal_still_reloads_once() {
    // certbot goes on working (other domains, hooks) after it wrote the
    // certificate, past the watch's debounce: the watch waits for the chain.
    let (t, config, daemon) = azuracast("sleep 4\n");
    renew(&t, &config);
    // `renew` returns once the renewal and its chain are done; the watch
    // logs nothing when it finds the change handled: let its 2 s debounce
    // pass (with margin) before asserting it did not reload again.
    std::thread::sleep(Duration::from_secs(4));
    stop(daemon);
    assert_eq!(lines(&t.path("reloads.log")), ["reload chain"]);
}

/// Starts a stand-in daemon named `name` that writes its pidfile and counts
/// the SIGHUPs it gets in `<name>.hups`.
fn hup_counter(t: &Test, name: &str, pidfile: &str) -> std::process::Child {
    let script = t.script(
        &format!("bin/{name}"),
        &format!(
            "#!/bin/sh\nn=0\necho 0 > {{root}}/{name}.hups\n\
             trap 'n=$((n+1)); echo $n > {{root}}/{name}.hups' HUP\n\
             echo $$ > {{root}}/{pidfile}\n\
             while :; do sleep 0.1; done\n"
        ),
    );
    std::fs::create_dir_all(t.path(pidfile).parent().expect("a pidfile in a directory"))
        .expect("creating the pidfile's directory");
    let child = std::process::Command::new(script)
        .spawn()
        .expect("starting the stand-in");
    wait_for(LIMIT, "the stand-in's pidfile", || {
        t.path(pidfile).exists().then_some(())
    });
    child
}

fn hups(t: &Test, name: &str) -> u32 {
    std::fs::read_to_string(t.path(&format!("{name}.hups")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn mailu_a_certificate_change_hups_dovecot_once_and_a_missing_pidfile_is_skipped() {
    let t = Test::new().file("certs/cert.pem", "old\n");
    let mut dovecot = hup_counter(&t, "dovecot", "run/dovecot/master.pid");
    let mut nginx = hup_counter(&t, "nginx", "run/nginx.pid");
    let config = t.example(
        "mailu",
        &[
            ("/certs", "{root}/certs"),
            ("/run/nginx.pid", "{root}/run/nginx.pid"),
            ("/run/dovecot/master.pid", "{root}/run/dovecot/master.pid"),
        ],
    );
    let daemon = t.spawn_daemon(["--config", &config.display().to_string()]);
    watching(&daemon);

    t.write("certs/cert.pem", "new 1\n");
    wait_for(LIMIT, "dovecot's HUP", || {
        (hups(&t, "dovecot") == 1 && hups(&t, "nginx") == 1).then_some(())
    });

    // The pidfile is gone (dovecot restarting): skipped with the reason.
    let pid = std::fs::read_to_string(t.path("run/dovecot/master.pid")).unwrap();
    std::fs::remove_file(t.path("run/dovecot/master.pid")).unwrap();
    t.write("certs/cert.pem", "new 2\n");
    let skipped = wait_for(LIMIT, "the skipped run", || {
        t.history_oldest_first("reload-dovecot")
            .into_iter()
            .find(|r| r["status"] == "skipped")
    });
    let error = skipped["error"].as_str().unwrap();
    assert!(error.contains("master.pid does not exist"), "{error}");
    assert_eq!(skipped["trigger"], "watch");
    wait_for(LIMIT, "nginx's second HUP", || {
        (hups(&t, "nginx") == 2).then_some(())
    });

    // The next change works again.
    std::fs::write(t.path("run/dovecot/master.pid"), pid).unwrap();
    t.write("certs/cert.pem", "new 3\n");
    wait_for(LIMIT, "dovecot's second HUP", || {
        (hups(&t, "dovecot") == 2).then_some(())
    });
    // No event marks "no second HUP": a debounce window (2 s) and margin.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hups(&t, "dovecot"), 2, "exactly one HUP per change");
    assert_eq!(hups(&t, "nginx"), 3);
    stop(daemon);

    let statuses: Vec<String> = t
        .history_oldest_first("reload-dovecot")
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["succeeded", "skipped", "succeeded"]);
    for child in [&mut dovecot, &mut nginx] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A local port with nothing listening on it (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .expect("its address")
        .port()
}

fn websoft9(t: &Test, port: u16, more: &[(&str, &str)]) -> std::path::PathBuf {
    t.script(
        "websoft9/script/sync-port.sh",
        "#!/bin/sh\necho \"$JOBRUN_TRIGGER $JOBRUN_TICK\" >> {root}/sync.log\n",
    );
    let apphub = format!("127.0.0.1:{port}");
    let mut replace = vec![
        ("apphub:8080", apphub.as_str()),
        ("/websoft9", "{root}/websoft9"),
    ];
    replace.extend_from_slice(more);
    t.example("websoft9", &replace)
}

#[test]
fn websoft9_the_sync_waits_for_a_late_service_and_succeeds_once() {
    let t = Test::new();
    let port = free_port();
    let config = websoft9(&t, port, &[]);
    let started = Instant::now();
    let daemon = t.spawn_daemon(["--config", &config.display().to_string()]);
    // apphub comes up 5 s after the daemon started (run_on_start triggers the sync).
    // The scenario's clock, not a wait: the service is late by 5 s, then up
    // for 20 s.
    let listener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_secs(20));
        drop(listener);
    });
    let sync = t.path("sync.log");
    wait_for(LIMIT, "the sync", || {
        lines(&sync)
            .iter()
            .any(|l| l.starts_with("start "))
            .then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_millis(4500),
        "it waited for apphub"
    );
    wait_for(LIMIT, "the sync's run to succeed", || {
        t.history_oldest_first("sync-port")
            .into_iter()
            .find(|r| r["trigger"] == "start" && r["status"] == "succeeded")
    });
    // No event marks "no second start run": a moment for one to show.
    std::thread::sleep(Duration::from_secs(2));
    stop(daemon);
    let starts: Vec<String> = lines(&sync)
        .into_iter()
        .filter(|l| l.starts_with("start "))
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let runs: Vec<serde_json::Value> = t
        .history_oldest_first("sync-port")
        .into_iter()
        .filter(|r| r["trigger"] == "start")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded");
    drop(listener);
}

#[test]
fn websoft9_a_service_that_never_comes_fails_not_ready_and_the_sync_never_runs() {
    let t = Test::new();
    let port = free_port();
    // A short wait, so the test does not take the recipe's two minutes.
    let config = websoft9(
        &t,
        port,
        &[("requires_timeout: 2m", "requires_timeout: 2s")],
    );
    let daemon = t.spawn_daemon(["--config", &config.display().to_string()]);
    let failed = wait_for(LIMIT, "the failed run", || {
        t.history_oldest_first("sync-port")
            .into_iter()
            .find(|r| r["status"] == "failed")
    });
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("not ready: tcp 127.0.0.1:{port}: ")),
        "{error}"
    );
    assert!(failed["started_at"].is_null(), "the command never started");
    // The retry waits 30 s; a shutdown does not wait for it.
    let stopping = Instant::now();
    stop(daemon);
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert!(!t.path("sync.log").exists(), "the sync command never ran");
}

fn websoft9_a_tick_missed_while_the_daemon_was_down_runs_once_on_start(backend: Backend) {
    let Some(t) = backend.on(
        Test::new(),
        "websoft9_a_tick_missed_while_the_daemon_was_down_runs_once_on_start",
    ) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("its address").port();
    // Every 3 seconds instead of every 10 minutes, so a downtime of a few
    // seconds misses a tick.
    let config = websoft9(&t, port, &[("\"*/10 * * * *\"", "\"*/3 * * * * *\"")]);
    let args = ["--config".to_string(), config.display().to_string()];
    let sync = t.path("sync.log");

    let first = t.spawn_daemon(&args);
    wait_for(LIMIT, "a scheduled sync", || {
        lines(&sync)
            .iter()
            .any(|l| l.starts_with("schedule "))
            .then_some(())
    });
    stop(first);
    #[allow(clippy::disallowed_methods)] // the downtime is on the real clock
    let down = chrono::Utc::now();
    // The downtime itself (longer than the 3 s period), not a wait.
    std::thread::sleep(Duration::from_secs(4));
    let second = t.spawn_daemon(&args);
    let catch_up = wait_for(LIMIT, "the catch-up sync", || {
        lines(&sync)
            .into_iter()
            .find(|l| l.starts_with("catch-up "))
    });
    wait_for(LIMIT, "the catch-up run to succeed", || {
        t.history_oldest_first("sync-port")
            .into_iter()
            .find(|r| r["trigger"] == "catch-up" && r["status"] == "succeeded")
    });
    // Catch-up is decided once at start; a moment for a second one to show.
    std::thread::sleep(Duration::from_secs(1));
    stop(second);

    let catch_ups: Vec<serde_json::Value> = t
        .history_oldest_first("sync-port")
        .into_iter()
        .filter(|r| r["trigger"] == "catch-up")
        .collect();
    assert_eq!(catch_ups.len(), 1, "{catch_ups:#?}");
    assert_eq!(catch_ups[0]["status"], "succeeded");
    let tick: chrono::DateTime<chrono::Utc> = catch_ups[0]["tick"]
        .as_str()
        .expect("a tick")
        .parse()
        .expect("an RFC 3339 tick");
    assert!(
        tick > down - chrono::Duration::seconds(1),
        "a tick of the downtime: {tick} vs {down}"
    );
    assert!(catch_up.ends_with(&tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    assert_eq!(
        lines(&sync)
            .iter()
            .filter(|l| l.starts_with("catch-up "))
            .count(),
        1
    );
    drop(listener);
}

on_both_backends!(
    wallos_the_job_in_every_source_sends_once_per_tick,
    websoft9_a_tick_missed_while_the_daemon_was_down_runs_once_on_start,
);
