//! The YAML job file format, case by case: keys, errors with their lines,
//! bounds, and the single parse.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::job::{Command, Concurrency, IfNotRunning, Requirement, SignalSpec};

fn parse(text: &str) -> SourceSet {
    parse_yaml(Path::new("/etc/jobrun/jobs.yaml"), text)
}

fn errors(set: &SourceSet) -> Vec<String> {
    set.diagnostics.iter().map(|d| d.to_string()).collect()
}

#[test]
fn reads_a_full_job_with_defaults() {
    let set = parse(
            "defaults:\n  timezone: Europe/Berlin\n  timeout: 10m\n  env: {A: '1'}\njobs:\n  - name: send\n    schedule: \"0 9 * * *\"\n    command: php /app/send.php\n    user: www-data\n    workdir: /app\n    env: {APP_ENV: prod, PORT: 8080}\n    timeout: 5m\n    concurrency: allow\n",
        );
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    let job = &set.jobs[0];
    assert_eq!(job.name.as_deref(), Some("send"));
    assert_eq!(job.command, Command::Shell("php /app/send.php".into()));
    assert_eq!(job.user.as_deref(), Some("www-data"));
    assert_eq!(job.workdir.as_deref(), Some(Path::new("/app")));
    assert_eq!(job.env.get("A"), Some("1"));
    assert_eq!(job.env.get("PORT"), Some("8080"));
    assert_eq!(job.timeout, Some(Duration::from_secs(300)));
    assert_eq!(job.concurrency, Concurrency::Allow);
    assert_eq!(job.schedules.len(), 1);
    assert_eq!(job.schedules[0].timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(job.schedules[0].origin.line, 7);
    assert_eq!(job.origin.line, 6);
}

#[test]
fn a_bare_list_of_jobs_is_accepted() {
    let set = parse("- name: a\n  schedule: [\"@daily\", \"*/5 * * * * *\"]\n  argv: [echo, hi]\n");
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    assert_eq!(set.jobs[0].schedules.len(), 2);
    assert_eq!(
        set.jobs[0].command,
        Command::Argv(vec!["echo".into(), "hi".into()])
    );
}

#[test]
fn an_unknown_key_is_an_error_with_its_line() {
    let set = parse("jobs:\n  - name: a\n    schedule: \"@daily\"\n    comand: echo hi\n");
    let errs = errors(&set);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/jobrun/jobs.yaml:4: error: "),
        "{errs:?}"
    );
    assert!(errs[0].contains("unknown field `comand`"), "{errs:?}");
}

#[test]
fn one_bad_job_does_not_hide_the_others() {
    let set = parse(
            "jobs:\n  - name: good\n    command: echo 1\n  - name: bad\n    command: echo 2\n    timeout: [1]\n  - name: worse\n    bogus: 1\n    command: x\n  - name: fine\n    command: echo 3\n",
        );
    let names: Vec<_> = set.jobs.iter().filter_map(|j| j.name.clone()).collect();
    assert_eq!(names, ["good", "fine"]);
    let errs = errors(&set);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("jobs.yaml:4:")
            && e.contains("job bad: invalid type: sequence, expected a duration such as")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("jobs.yaml:8:") && e.contains("job worse: unknown field `bogus`")),
        "{errs:?}"
    );
    // The good jobs keep their own lines even though a job before them failed.
    assert_eq!(set.jobs[1].origin.line, 10);
}

#[test]
fn semantic_errors_name_the_key_line() {
    let cases = [
            (
                "jobs:\n  - name: a\n    command: x\n    timezone: Mars/Base\n",
                4,
                "unknown time zone",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    timeout: soon\n",
                4,
                "duration \"soon\"",
            ),
            (
                "jobs:\n  - name: Bad Name\n    command: x\n",
                2,
                "not valid",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    argv: [x]\n",
                4,
                "not both",
            ),
            (
                "jobs:\n  - name: a\n    schedule: \"@daily\"\n",
                2,
                "no `command`, `argv` or `signal`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    env: {\"1X\": y}\n",
                4,
                "environment variable name",
            ),
            (
                "defaults:\n  timezone: Nowhere\njobs: []\n",
                2,
                "unknown time zone",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    concurrency: sometimes\n",
                4,
                "unknown variant `sometimes`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    signal: {pidfile: /run/x.pid}\n",
                4,
                "instead of running a command",
            ),
            (
                "jobs:\n  - name: a\n    signal: {pidfile: /run/x.pid, signal: RELOAD}\n",
                3,
                "unknown signal \"RELOAD\"",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    requires:\n      - tcp: nohost\n",
                4,
                "needs a host and a port",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    requires:\n      - http: x\n",
                5,
                "unknown field `http`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    requires_timeout: 1m\n",
                4,
                "without `requires`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    retry: {attempts: 0}\n",
                4,
                "at least 1",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    retry: {attempts: 3, backoff: 1m, max_backoff: 10s}\n",
                4,
                "shorter than",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    catch_up: 6h\n",
                4,
                "needs a `schedule`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    jitter: 30s\n",
                4,
                "`jitter` needs a `schedule`",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    schedule: \"@daily\"\n    jitter: 2d\n",
                5,
                "jitter: 2d is too long; at most 1day",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    on_success: [Reload Nginx]\n",
                4,
                "is not a job name",
            ),
            (
                "jobs:\n  - name: a\n    command: x\n    watch: {paths: []}\n",
                4,
                "at least one path",
            ),
        ];
    for (text, line, needle) in cases {
        let set = parse(text);
        let errs = errors(&set);
        assert_eq!(errs.len(), 1, "{text}: {errs:?}");
        assert!(
            errs[0].starts_with(&format!("/etc/jobrun/jobs.yaml:{line}: error:")),
            "{text}: {errs:?}"
        );
        assert!(errs[0].contains(needle), "{text}: {errs:?}");
        assert!(set.jobs.is_empty());
    }
}

#[test]
fn every_duration_key_refuses_a_value_that_would_overflow_an_instant() {
    let keys = [
        ("timeout: V", "timeout"),
        ("kill_grace: V", "kill_grace"),
        ("requires_timeout: V", "requires_timeout"),
        ("retry: {attempts: 2, backoff: V}", "retry.backoff"),
        ("retry: {attempts: 2, max_backoff: V}", "retry.max_backoff"),
        ("catch_up: V", "catch_up"),
        ("jitter: V", "jitter"),
        ("watch: {paths: [d], debounce: V}", "watch.debounce"),
    ];
    for value in [
        "9223372036854775807",
        "18446744073709551615",
        "\"300000000000y\"",
    ] {
        for (line, key) in keys {
            let text = format!(
                "jobs:\n  - name: a\n    command: x\n    schedule: \"@daily\"\n    \
                     requires: [{{file: /x}}]\n    {}\n",
                line.replace('V', value)
            );
            let set = parse(&text);
            let errs = errors(&set);
            assert_eq!(errs.len(), 1, "{text}: {errs:?}");
            let written = value.trim_matches('"');
            assert_eq!(
                    errs[0],
                    format!(
                        "/etc/jobrun/jobs.yaml:6: error: job a: {key}: {written} is too long; at most {}",
                        humantime::format_duration(
                            limits::DURATIONS
                                .iter()
                                .find(|l| l.key == key)
                                .expect("a bound")
                                .max
                        )
                    )
                );
            assert!(set.jobs.is_empty());
        }
        for key in ["timeout", "kill_grace", "jitter"] {
            let set = parse(&format!("defaults:\n  {key}: {value}\njobs: []\n"));
            let errs = errors(&set);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].starts_with(&format!("/etc/jobrun/jobs.yaml:2: error: {key}: ")),
                "{errs:?}"
            );
            assert!(errs[0].contains("is too long; at most"), "{errs:?}");
        }
    }
    let set = parse("jobs: []\nhistory:\n  keep_days: 4294967295\n");
    assert!(set.history.is_none());
    assert!(
        errors(&set)[0].starts_with("/etc/jobrun/jobs.yaml:2: error: history.keep_days: "),
        "{:?}",
        errors(&set)
    );
    let set = parse("jobs:\n  - name: a\n    command: x\n    retry: {attempts: 4294967295}\n");
    assert!(
        errors(&set)[0].contains("retry.attempts: 4294967295 is too many; at most 100"),
        "{:?}",
        errors(&set)
    );
}

#[test]
fn a_file_with_bad_jobs_is_parsed_once() {
    let before = PARSES.with(std::cell::Cell::get);
    let set = parse(
            "jobs:\n  - name: a\n    command: x\n    colour: red\n  - name: b\n    command: y\nhistory: {keep: 1}\nextra: 1\n",
        );
    assert_eq!(PARSES.with(std::cell::Cell::get) - before, 1);
    assert_eq!(set.jobs.len(), 1);
    let errs = errors(&set);
    assert_eq!(
            errs,
            [
                "/etc/jobrun/jobs.yaml:8: error: unknown field `extra`, expected one of `defaults`, `jobs`, `history`",
                "/etc/jobrun/jobs.yaml:7: error: history: unknown field `keep`, expected `keep_days` or `keep_runs`",
                "/etc/jobrun/jobs.yaml:4: error: job a: unknown field `colour`, expected one of `name`, `schedule`, `command`, `argv`, `user`, `workdir`, `shell`, `env`, `timezone`, `timeout`, `kill_grace`, `concurrency`, `enabled`, `requires`, `requires_timeout`, `retry`, `catch_up`, `jitter`, `notify`, `run_on_start`, `on_success`, `on_failure`, `watch`, `signal`",
            ]
        );
}

#[test]
fn deep_nesting_is_refused_before_the_parser_with_its_line() {
    let before = PARSES.with(std::cell::Cell::get);
    let text = format!(
        "jobs: []\nx: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let errs = errors(&parse(&text));
    assert_eq!(PARSES.with(std::cell::Cell::get), before, "never parsed");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/jobrun/jobs.yaml:2: error: nesting: ")
            && errs[0].contains("at most 64"),
        "{errs:?}"
    );
}

#[test]
fn environment_values_of_any_scalar_type_are_text_and_others_are_named() {
    let set = parse(
        "jobs:\n  - name: a\n    command: x\n    env: {S: s, I: -3, U: 18446744073709551615, F: 1.5, B: true}\n",
    );
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    let env = set.jobs[0].env.to_map();
    let values: Vec<&str> = env.values().map(String::as_str).collect();
    assert_eq!(values, ["true", "1.5", "-3", "s", "18446744073709551615"]);
    let set = parse("jobs:\n  - name: a\n    command: x\n    env:\n      L: [1]\n");
    assert!(
        errors(&set)[0].contains("invalid type: sequence, expected a string, number or boolean"),
        "{:?}",
        errors(&set)
    );
}

#[test]
fn syntax_errors_carry_the_line() {
    let set = parse("jobs:\n  - name: a\n    command: \"unterminated\n");
    let errs = errors(&set);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("jobs.yaml:"), "{errs:?}");
}

#[test]
fn relative_workdir_is_resolved_against_the_file() {
    let set = parse("jobs:\n  - name: a\n    command: x\n    workdir: data\n");
    assert_eq!(
        set.jobs[0].workdir.as_deref(),
        Some(Path::new("/etc/jobrun/data"))
    );
}

#[test]
fn history_retention_is_read_with_its_line() {
    let set = parse("jobs: []\nhistory:\n  keep_days: 30\n  keep_runs: 500\n");
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    let h = set.history.expect("history");
    assert_eq!((h.keep_days, h.keep_runs), (Some(30), Some(500)));
    assert_eq!(h.origin.line, 2);
    let bad = parse("history:\n  keep: 3\n");
    assert!(
        errors(&bad)[0].contains("unknown field `keep`"),
        "{:?}",
        errors(&bad)
    );
    let mut both = parse("history: {keep_days: 1}\n");
    both.extend(parse_yaml(
        Path::new("/etc/jobrun/jobs.d/b.yaml"),
        "history: {keep_runs: 2}\n",
    ));
    let errs = errors(&both);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("/etc/jobrun/jobs.d/b.yaml:1: error:"),
        "{errs:?}"
    );
    assert!(errs[0].contains("/etc/jobrun/jobs.yaml:1"), "{errs:?}");
}

#[test]
fn reads_the_incident_keys() {
    let set = parse(
        r#"
jobs:
  - name: sync-port
    schedule: "*/10 * * * *"
    command: sync-port
    requires:
      - tcp: apphub:8080
      - file: data/config.json
      - command: "test -s /data/port"
    requires_timeout: 2m
    retry: {attempts: 5, backoff: 2s, max_backoff: 1m}
    catch_up: 6h
    run_on_start: true
    on_success: [reload-nginx]
    on_failure: alert-admin
  - name: reload-dovecot
    watch: {paths: [/certs, certs2], debounce: 3s}
    signal: {pidfile: /run/dovecot/master.pid, signal: sighup, process: dovecot, if_not_running: fail}
"#,
    );
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    let sync = &set.jobs[0];
    assert_eq!(
        sync.requires,
        [
            Requirement::Tcp("apphub:8080".into()),
            Requirement::File("/etc/jobrun/data/config.json".into()),
            Requirement::Command("test -s /data/port".into()),
        ]
    );
    assert_eq!(sync.requires_timeout, Some(Duration::from_secs(120)));
    let retry = sync.retry.as_deref().copied().expect("retry");
    assert_eq!(retry.attempts, 5);
    assert_eq!(retry.delay_before(2), Duration::from_secs(2));
    assert_eq!(retry.delay_before(3), Duration::from_secs(4));
    assert_eq!(retry.delay_before(6), Duration::from_secs(32));
    assert_eq!(retry.delay_before(7), Duration::from_secs(60), "capped");
    assert_eq!(sync.catch_up, Some(Duration::from_secs(6 * 3600)));
    assert!(sync.run_on_start);
    assert_eq!(sync.on_success[0].job, "reload-nginx");
    assert_eq!(sync.on_success[0].origin.line, 14);
    assert_eq!(sync.on_failure[0].job, "alert-admin");

    let dovecot = &set.jobs[1];
    let watch = dovecot.watch.as_ref().expect("watch");
    assert_eq!(
        watch.paths,
        [PathBuf::from("/certs"), PathBuf::from("/etc/jobrun/certs2")]
    );
    assert_eq!(watch.debounce, Duration::from_secs(3));
    assert_eq!(
        dovecot.command,
        Command::Signal(Box::new(SignalSpec {
            pidfile: "/run/dovecot/master.pid".into(),
            signal: "HUP".into(),
            process: Some("dovecot".into()),
            if_not_running: IfNotRunning::Fail,
        }))
    );
    assert!(
        dovecot.schedules.is_empty(),
        "a watch-only job needs no schedule"
    );
}

#[test]
fn empty_file_has_no_jobs_and_no_errors() {
    let set = parse("# nothing yet\n");
    assert!(set.jobs.is_empty() && set.diagnostics.is_empty());
}

#[test]
fn a_file_that_is_neither_mapping_nor_list_says_what_is_expected() {
    let set = parse("just some words\n");
    assert!(set.jobs.is_empty());
    let errors = errors(&set);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("expected a mapping with `jobs:`"),
        "{errors:?}"
    );
}

#[test]
fn names_follow_the_spec_pattern() {
    for ok in ["a", "0", "backup-db", "a.b_c-d"] {
        assert!(valid_name(ok), "{ok}");
    }
    for bad in ["", "-a", "A", "a b", "_a", "é"] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn an_unclosed_quote_or_bracket_is_reported_where_it_opened() {
    // Each opened on line 3; the parser gave up at line 6, 4 and the end of file.
    let cases = [
        (
            "jobs:\n  - name: a\n    schedule: \"0 1 * * *\n    command: echo a\n  - name: b\n    schedule: \"@daily\"\n    command: echo b\n",
            "double-quoted value opened here is not closed by `\"` (column 15)",
        ),
        (
            "jobs:\n  - name: a\n    schedule: [\"0 1 * * *\", \"@daily\"\n    command: echo a\n",
            "list `[` opened here is not closed by `]` (column 15)",
        ),
        (
            "jobs:\n  - name: a\n    schedule: '0 1 * * *\n    command: echo a\n  - name: b\n    command: echo b\n",
            "single-quoted value opened here is not closed by `'` (column 15)",
        ),
        (
            "jobs:\n  - name: a\n    env: {A: '1', B: '2'\n    command: echo a\n",
            "mapping `{` opened here is not closed by `}` (column 10)",
        ),
    ];
    for (text, what) in cases {
        let set = parse(text);
        assert_eq!(set.diagnostics.len(), 1, "{:?}", errors(&set));
        let d = &set.diagnostics[0];
        assert_eq!(d.origin.as_ref().map(|o| o.line), Some(3), "{d}");
        assert!(d.message.contains(what), "{d}");
    }
    // Other syntax errors keep the parser's own line.
    let set = parse("jobs:\n  - name: a\n   bad: [\n");
    assert!(!errors(&set).is_empty());
}

#[test]
fn a_schedule_that_is_not_text_says_what_a_schedule_is() {
    for (text, line) in [
        (
            "jobs:\n  - name: a\n    schedule: 5\n    command: echo a\n",
            3,
        ),
        (
            "jobs:\n  - name: a\n    schedule: [\"@daily\", 5]\n    command: echo a\n",
            3,
        ),
        (
            "jobs:\n  - name: a\n    schedule: true\n    command: echo a\n",
            3,
        ),
    ] {
        let set = parse(text);
        let all = errors(&set);
        assert_eq!(all.len(), 1, "{all:?}");
        let d = &set.diagnostics[0];
        assert_eq!(d.origin.as_ref().map(|o| o.line), Some(line), "{d}");
        assert!(
            d.message
                .contains("`schedule:` to be a cron expression in quotes"),
            "{d}"
        );
        assert!(!d.message.contains("OneOrMany"), "{d}");
    }
    // The other lists of strings say so too, without the enum's name.
    let set = parse(
        "jobs:\n  - name: a\n    schedule: \"@daily\"\n    command: echo a\n    on_success: 5\n",
    );
    let all = errors(&set);
    assert!(
        all.iter()
            .any(|e| e.contains("a string or a list of strings")),
        "{all:?}"
    );
}

#[test]
fn jitter_is_read_from_the_job_or_the_defaults() {
    let set = parse(
        "defaults:\n  jitter: 30s\njobs:\n\
         \x20 - {name: a, schedule: \"@hourly\", command: x}\n\
         \x20 - {name: b, schedule: \"@hourly\", command: y, jitter: 800ms}\n\
         \x20 - {name: c, schedule: \"@hourly\", command: z, jitter: 0}\n\
         \x20 - {name: d, command: w, on_success: a}\n",
    );
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    let jitter: Vec<Option<Duration>> = set.jobs.iter().map(|j| j.jitter).collect();
    assert_eq!(
        jitter,
        [
            Some(Duration::from_secs(30)),
            Some(Duration::from_millis(800)),
            // `jitter: 0` turns the default off.
            None,
            // The default does not apply to a job with no schedule.
            None,
        ]
    );
}

#[test]
fn notify_is_read_from_the_job_or_the_defaults() {
    use crate::job::NotifyOn;
    let set = parse(
        "defaults:\n  notify:\n    ping: https://hc.example/uuid\njobs:\n\
         \x20 - name: a\n    command: x\n\
         \x20 - name: b\n    command: y\n    notify:\n      on: [start, failure, failure, missed]\n      \
         webhook: http://127.0.0.1:9/hook\n\
         \x20 - name: c\n    command: z\n    notify: {webhook: \"https://hooks.example/x\", on: success}\n",
    );
    assert!(set.diagnostics.is_empty(), "{:?}", errors(&set));
    let a = set.jobs[0].notify.as_deref().expect("the default");
    assert_eq!(a.ping.as_deref(), Some("https://hc.example/uuid"));
    assert_eq!(a.on, NotifyOn::DEFAULT);
    assert_eq!(a.webhook, None);
    // A job's own replaces the default: b has no ping.
    let b = set.jobs[1].notify.as_deref().expect("its own");
    assert_eq!(b.on, [NotifyOn::Failure, NotifyOn::Start, NotifyOn::Missed]);
    assert_eq!(b.webhook.as_deref(), Some("http://127.0.0.1:9/hook"));
    assert_eq!(b.ping, None);
    assert!(b.wants(NotifyOn::Start) && !b.wants(NotifyOn::Recovery));
    let c = set.jobs[2].notify.as_deref().expect("its own");
    assert_eq!(c.on, [NotifyOn::Success]);
    // Every job with the default shares one copy.
    let set = parse(
        "defaults:\n  notify: {ping: \"https://hc.example/u\"}\njobs:\n\
         \x20 - {name: a, command: x}\n  - {name: b, command: y}\n",
    );
    let (a, b) = (&set.jobs[0].notify, &set.jobs[1].notify);
    assert!(std::sync::Arc::ptr_eq(
        a.as_ref().unwrap(),
        b.as_ref().unwrap()
    ));
}

#[test]
fn notify_errors_name_the_key_and_the_line() {
    for (text, line, needle) in [
        (
            "jobs:\n  - name: a\n    command: x\n    notify:\n      webhook: ftp://h/x\n",
            4,
            "job a: notify.webhook: \"ftp://h/x\" is not an http or https URL",
        ),
        (
            "jobs:\n  - name: a\n    command: x\n    notify: {ping: \"https:///x\"}\n",
            4,
            "job a: notify.ping: \"https:///x\" has no host",
        ),
        (
            "jobs:\n  - name: a\n    command: x\n    notify: {on: [failure, sometimes], webhook: \"https://h/\"}\n",
            4,
            "notify.on: unknown event \"sometimes\"; the events are failure, recovery, success, start, missed",
        ),
        (
            "jobs:\n  - name: a\n    command: x\n    notify: {on: [failure]}\n",
            4,
            "`notify` needs a `webhook`",
        ),
        (
            "jobs:\n  - name: a\n    command: x\n    notify: {webhook: \"https://h/\", email: me}\n",
            4,
            "unknown field `email`, expected one of `on`, `webhook`, `ping`",
        ),
        (
            "defaults:\n  timeout: 1m\n  notify:\n    webhook: hooks.example\njobs: []\n",
            3,
            "notify.webhook: \"hooks.example\" is not an http or https URL",
        ),
    ] {
        let set = parse(text);
        let errs = errors(&set);
        assert_eq!(errs.len(), 1, "{text}: {errs:?}");
        assert!(
            errs[0].starts_with(&format!("/etc/jobrun/jobs.yaml:{line}: error:")),
            "{text}: {errs:?}"
        );
        assert!(errs[0].contains(needle), "{text}: {errs:?}");
        assert!(set.jobs.is_empty());
    }
}
