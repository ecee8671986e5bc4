//! Reading real sources end to end: the Wallos incident and the corpus of
//! crontab files written by others (`tests/fixtures/corpus`, copied from the project's shared corpus).

use std::path::PathBuf;

use crate::harness::{names, Test};

/// The shared corpus beside the repository, when this checkout has it.
fn corpus() -> Option<PathBuf> {
    // The real-world crontabs are copied into the repository (with their
    // provenance in SOURCES.md), so this always runs and reads nothing
    // outside it.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    assert!(
        dir.join("index.json").is_file(),
        "{} is missing",
        dir.display()
    );
    Some(dir)
}

/// Wallos installed its crontab both in /etc/cron.d (dcron reads it in the
/// user format) and as root's crontab, so every reminder email went out twice
/// (ellite/Wallos#187). jobrun reads both and runs each job once.
#[test]
fn wallos_crontab_in_cron_d_and_root_spool_is_three_jobs() {
    let Some(corpus) = corpus() else { return };
    let cronjobs = std::fs::read(corpus.join("github/ellite__Wallos/cronjobs@7c2e7f0"))
        .expect("reading the Wallos crontab");
    let t = Test::new()
        .file("root/etc/cron.d/cronjobs", &cronjobs)
        .file("root/var/spool/cron/crontabs/root", &cronjobs);

    let list = t
        .run_args(["--system-crontabs={root}/root", "list", "--json"])
        .expect_code(0);
    let jobs = list.json();
    assert_eq!(
        names(&jobs),
        ["updatenextpayment", "updateexchange", "sendnotifications"]
    );
    let send = &jobs[2];
    assert_eq!(send["merged"], true);
    let root = t.root().display().to_string();
    assert_eq!(
        send["sources"],
        serde_json::json!([
            format!("{root}/root/etc/cron.d/cronjobs:4"),
            format!("{root}/root/var/spool/cron/crontabs/root:4"),
        ])
    );
    assert_eq!(send["schedules"].as_array().map(Vec::len), Some(1));
    assert_eq!(send["user"], "root");

    let check = t
        .run_args(["check", "--system-crontabs={root}/root"])
        .expect_code(0);
    let merge = check
        .stdout
        .lines()
        .find(|l| l.contains("warning:") && l.contains("sendnotifications"))
        .unwrap_or_else(|| panic!("no merge warning:\n{}", check.stdout));
    assert!(merge.contains("etc/cron.d/cronjobs:4"), "{merge}");
    assert!(merge.contains("var/spool/cron/crontabs/root:4"), "{merge}");
    // The dcron-format note and the CRLF note are there too.
    assert!(check.stdout.contains("note:"), "{}", check.stdout);

    // One tick at 09:00, not two.
    let next = t
        .run_args([
            "--system-crontabs={root}/root",
            "next",
            "sendnotifications",
            "--from",
            "2026-05-01T00:00:00Z",
            "--count",
            "2",
            "--json",
        ])
        .expect_code(0);
    assert_eq!(
        next.json()["times"],
        serde_json::json!(["2026-05-01T09:00:00Z", "2026-05-02T09:00:00Z"])
    );
}

/// Every corpus file that Debian's own parser accepts is read without an error,
/// and each of its entries appears in `list`.
#[test]
fn every_debian_accepted_corpus_file_is_read_and_listed() {
    let Some(corpus) = corpus() else { return };
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(corpus.join("index.json")).expect("reading index.json"),
    )
    .expect("index.json is JSON");
    let mut checked = 0;
    for entry in index.as_array().expect("index is an array") {
        if entry["debian_accepts"] != true {
            continue;
        }
        let file = entry["file"].as_str().expect("file");
        let bytes = std::fs::read(corpus.join(file)).expect("reading a corpus file");
        let entries = entry["vixie_model"]["entries"].as_u64().expect("entries") as usize;
        // cron.d names may not contain dots, so install each file under a plain name.
        let (t, source) = match entry["format"].as_str() {
            Some("system") => (
                Test::new().file("root/etc/cron.d/corpusfile", &bytes),
                "--system-crontabs={root}/root".to_string(),
            ),
            Some("user") => (
                Test::new().file("crontab", &bytes),
                "--crontab={root}/crontab".to_string(),
            ),
            other => panic!("{file}: unexpected format {other:?}"),
        };
        let check = t.run_args(["check", &source]);
        // The packages' system users (amavis, munin, ...) do not exist on the
        // machine running the tests: such a line is a `check` error and is
        // left out, as cron skips it. Every other error is a failure.
        let errors: Vec<&str> = check
            .stdout
            .lines()
            .filter(|l| l.contains(": error:"))
            .collect();
        let unknown_user = errors
            .iter()
            .filter(|l| l.contains("there is no user"))
            .count();
        assert_eq!(
            unknown_user,
            errors.len(),
            "{file}:\n{}{}",
            check.stdout,
            check.stderr
        );
        assert_eq!(
            check.code,
            if errors.is_empty() { 0 } else { 1 },
            "{file}:\n{}{}",
            check.stdout,
            check.stderr
        );
        let list = t.run_args(["list", "--json", &source]).expect_code(0);
        let listed: usize = list
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|j| j["sources"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(
            listed + unknown_user,
            entries,
            "{file}: entries listed\n{}",
            list.stdout
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} corpus files checked");
}

/// A 7-field supercronic file is not classic cron: every entry line is an
/// error with its line, and nothing is scheduled from it.
#[test]
fn a_supercronic_file_is_rejected_line_by_line() {
    let Some(corpus) = corpus() else { return };
    let bytes = std::fs::read(
        corpus.join("github/AzuraCast__AzuraCast/util/docker/web/cron/azuracast@71ab777"),
    )
    .expect("reading the supercronic file");
    let t = Test::new().file("root/etc/cron.d/azuracast", &bytes);
    let check = t
        .run_args(["check", "--system-crontabs={root}/root"])
        .expect_code(1);
    assert!(
        check.stdout.contains("cron.d/azuracast:1: error:"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("cron.d/azuracast:2: error:"),
        "{}",
        check.stdout
    );
    let list = t
        .run_args(["list", "--json", "--system-crontabs={root}/root"])
        .expect_code(0);
    assert_eq!(list.json(), serde_json::json!([]));
}

#[test]
fn an_invalid_crontab_line_is_located_and_the_rest_still_read() {
    let t = Test::new().file(
        "crontab",
        "MAILTO=ops@example.com\n0 9 * * * /usr/bin/report\n61 * * * * /usr/bin/bad-minute\n0 0 30 2 * /usr/bin/never\n*/5 * * * * /usr/bin/poll\n",
    );
    let check = t
        .run_args(["check", "--crontab={root}/crontab"])
        .expect_code(1);
    assert!(
        check.stdout.contains("crontab:3: error:"),
        "{}",
        check.stdout
    );
    // Cron accepts a schedule that never fires (SPEC 2): a warning, and the job is kept.
    assert!(
        check.stdout.contains("crontab:4: warning:"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("MAILTO"), "{}", check.stdout);
    let list = t
        .run_args(["list", "--json", "--crontab={root}/crontab"])
        .expect_code(0);
    let listed = names(&list.json());
    assert!(listed.contains(&"report".to_string()), "{listed:?}");
    assert!(listed.contains(&"poll".to_string()), "{listed:?}");
    assert!(!listed.iter().any(|n| n.contains("bad")), "{listed:?}");
    assert!(listed.contains(&"never".to_string()), "{listed:?}");
}

#[test]
fn a_crontab_job_and_a_yaml_job_with_the_same_command_merge_under_the_yaml_name() {
    let t = Test::new()
        .file("crontab", "0 3 * * * /usr/local/bin/backup.sh --all\n")
        .file(
            "jobs.yaml",
            "jobs:\n  - name: nightly-backup\n    schedule: \"0 3 * * *\"\n    command: /usr/local/bin/backup.sh   --all\n",
        );
    let list = t
        .run_args([
            "list",
            "--json",
            "--config={root}/jobs.yaml",
            "--crontab={root}/crontab",
        ])
        .expect_code(0);
    let jobs = list.json();
    assert_eq!(names(&jobs), ["nightly-backup"]);
    assert_eq!(jobs[0]["merged"], true);
}
