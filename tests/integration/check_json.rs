//! `check --json`: every finding with path, line, severity and message, for CI
//! pipelines to gate on, with the same exit codes as the text output.

use crate::harness::Test;

#[test]
fn check_json_lists_errors_and_warnings_with_path_and_line_and_exits_1() {
    let t = Test::new().file(
        "crontab",
        "# a comment\n0 0 30 2 * echo never\n*/5 * * * * echo fine\n61 * * * * echo bad\n",
    );
    let out = t
        .run_args(["--crontab", "{root}/crontab", "check", "--json"])
        .expect_code(1);
    let report = out.json();
    let path = t.path("crontab").display().to_string();
    let findings = report["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnostics array: {report}"));
    assert_eq!(findings.len(), 2, "{report}");
    let warning = findings
        .iter()
        .find(|f| f["severity"] == "warning")
        .unwrap_or_else(|| panic!("no warning: {report}"));
    assert_eq!(warning["path"], path.as_str(), "{report}");
    assert_eq!(warning["line"], 2, "{report}");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("never fires")),
        "{report}"
    );
    let error = findings
        .iter()
        .find(|f| f["severity"] == "error")
        .unwrap_or_else(|| panic!("no error: {report}"));
    assert_eq!(error["path"], path.as_str(), "{report}");
    assert_eq!(error["line"], 4, "{report}");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("61")),
        "{report}"
    );
    assert_eq!(report["errors"], 1, "{report}");
    assert_eq!(report["warnings"], 1, "{report}");
    assert_eq!(report["jobs"], 2, "{report}");
    // Nothing but the JSON on stdout.
    assert!(!out.stdout.contains("job(s)"), "{}", out.stdout);
}

#[test]
fn check_json_exit_codes_match_the_text_output() {
    let t = Test::new()
        .file("clean", "*/5 * * * * echo fine\n")
        .file("warned", "0 0 30 2 * echo never\n");
    let clean = t
        .run_args(["--crontab", "{root}/clean", "check", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(clean["diagnostics"], serde_json::json!([]), "{clean}");
    assert_eq!(clean["errors"], 0, "{clean}");
    let warned = t
        .run_args(["--crontab", "{root}/warned", "check", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(warned["warnings"], 1, "{warned}");
    // Nothing to check is still a usage error, reported on stderr.
    t.run_args(["--crontab", "{root}/missing", "check", "--json"])
        .expect_code(2);
}
