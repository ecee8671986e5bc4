//! Issue 11: every value a user can type is bounded, and refused where it is
//! written (`path:line`, or a usage error on the command line), never a panic
//! later. Memory is measured as the child's peak RSS, never as time.

use crate::harness::Test;

#[test]
fn run_of_a_job_with_an_overlong_duration_exits_2_with_the_message_not_a_panic() {
    for value in [
        "9223372036854775807",
        "18446744073709551615",
        "\"300000000000y\"",
    ] {
        for key in [
            "timeout: V",
            "kill_grace: V",
            "requires_timeout: V",
            "retry: {attempts: 2, backoff: V}",
            "retry: {attempts: 2, max_backoff: V}",
            "watch: {paths: [d], debounce: V}",
        ] {
            let t = Test::new().file(
                "jobs.yaml",
                format!(
                    "jobs:\n  - name: a\n    command: \"true\"\n    requires: [{{file: /}}]\n    {}\n",
                    key.replace('V', value)
                ),
            );
            let out = t
                .run_args(["--config", "{root}/jobs.yaml", "run", "a"])
                .expect_code(2);
            assert!(
                out.stderr.contains("jobs.yaml:5: error: job a: ")
                    && out.stderr.contains("is too long; at most"),
                "{key} {value}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn numeric_and_duration_options_are_bounded_with_a_usage_error() {
    let cases: &[&[&str]] = &[
        &[
            "next",
            "--expr",
            "@reboot",
            "--count",
            "18446744073709551615",
        ],
        &["next", "--expr", "* * * * *", "--count", "1000000000000"],
        &["history", "--limit", "18446744073709551615"],
        &["history", "--since", "1000000y"],
        &["history", "--since", "300000000000y"],
        &["prune", "--keep-days", "4294967295"],
        &["daemon", "--keep-days", "4294967295"],
        &["daemon", "--shutdown-grace", "9223372036854775807"],
        &["daemon", "--shutdown-grace", "300000000000y"],
        &["daemon", "--max-catch-up", "300000000000y"],
        &["daemon", "--output-tail", "18446744073709551615"],
    ];
    for args in cases {
        let out = Test::new().args(args.iter()).run();
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("is too long; at most") || out.stderr.contains("is not in 0..="),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Within the bounds, nothing changes.
    let out = Test::new()
        .args(["next", "--expr", "* * * * *", "--count", "3", "--json"])
        .run()
        .expect_code(0);
    assert_eq!(out.json()["times"].as_array().map(Vec::len), Some(3));
}
