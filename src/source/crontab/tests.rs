//! Unit tests of the crontab line grammar: environment lines, entries, the `%` rule,
//! file shapes and the real-world corpus.

use super::*;
use crate::job::Severity;
use std::path::PathBuf;

fn parse(text: &str, format: CrontabFormat, owner: Option<&str>) -> SourceSet {
    parse_crontab(Path::new("/etc/test"), text.as_bytes(), format, owner)
}

fn errors(set: &SourceSet) -> Vec<&Diagnostic> {
    set.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

fn shell(job: &JobSpec) -> &str {
    match &job.command {
        Command::Shell(s) => s,
        Command::Argv(_) | Command::Signal(_) => panic!("crontab jobs are shell commands"),
    }
}

#[test]
fn env_lines_follow_vixie_load_env() {
    // (line, expected name and value, or None when it is not an env line)
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("FOO=bar", Some(("FOO", "bar"))),
        ("FOO = bar", Some(("FOO", "bar"))),
        ("FOO\t=\tbar  ", Some(("FOO", "bar"))),
        ("FOO='bar baz'", Some(("FOO", "bar baz"))),
        ("FOO=\"bar baz\"", Some(("FOO", "bar baz"))),
        ("FOO = \" padded \"  ", Some(("FOO", " padded "))),
        ("FOO=\"bar\" extra", None),
        ("FOO=\"unterminated", None),
        ("FOO='mixed\"", None),
        (
            "FOO=bar baz  # not a comment",
            Some(("FOO", "bar baz  # not a comment")),
        ),
        (
            "GHLISTER_ROOT=$HOME/src",
            Some(("GHLISTER_ROOT", "$HOME/src")),
        ),
        (
            "PATH=\"$PATH:/usr/sbin\"",
            Some(("PATH", "$PATH:/usr/sbin")),
        ),
        ("MAILTO=", Some(("MAILTO", ""))),
        ("MAILTO=\"\"", Some(("MAILTO", ""))),
        ("\"QUOTED NAME\"=x", Some(("QUOTED NAME", "x"))),
        ("'A=B'=x", None),
        ("FOO=a=b", Some(("FOO", "a=b"))),
        ("=bar", None),
        ("0 1 * * * FOO=bar cmd", None),
        ("* * * * * cmd", None),
        ("@daily X=1 cmd", None),
        ("FOO bar=baz", None),
    ];
    for (line, expected) in cases {
        let got = parse_env(line);
        let expected = expected.map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(got, expected, "line {line:?}");
    }
}

#[test]
fn entries_split_into_schedule_user_and_command() {
    use CrontabFormat::{System, User};
    // (format, line, expr, user, command)
    let cases: &[(CrontabFormat, &str, &str, Option<&str>, &str)] = &[
        (User, "0 1 * * * /bin/true", "0 1 * * *", None, "/bin/true"),
        (
            User,
            "0\t1\t*\t*\t*\techo  a   b",
            "0 1 * * *",
            None,
            "echo  a   b",
        ),
        (
            User,
            "*/15    *   *  *  mon-fri    run-parts /x",
            "*/15 * * * mon-fri",
            None,
            "run-parts /x",
        ),
        (User, "0 8 * * * cmd   ", "0 8 * * *", None, "cmd   "),
        (
            System,
            "17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly",
            "17 * * * *",
            Some("root"),
            "cd / && run-parts --report /etc/cron.hourly",
        ),
        (
            System,
            "@reboot root /usr/sbin/logrotate",
            "@reboot",
            Some("root"),
            "/usr/sbin/logrotate",
        ),
        (
            System,
            "00 00   * * *   www-data    php x",
            "00 00 * * *",
            Some("www-data"),
            "php x",
        ),
        (
            System,
            "0 0 * * * machine$ cmd",
            "0 0 * * *",
            Some("machine$"),
            "cmd",
        ),
        (User, "@daily echo hi", "@daily", None, "echo hi"),
    ];
    for (format, line, expr, user, command) in cases {
        let entry = parse_entry(line, *format).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(entry.expr, *expr, "{line:?}");
        assert_eq!(entry.user, *user, "{line:?}");
        assert_eq!(entry.command, *command, "{line:?}");
    }
}

#[test]
fn every_macro_is_passed_through() {
    for m in [
        "@reboot",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ] {
        let set = parse(&format!("{m} /bin/job\n"), CrontabFormat::User, None);
        assert!(errors(&set).is_empty(), "{m}: {:?}", set.diagnostics);
        assert_eq!(set.jobs.len(), 1);
        assert_eq!(set.jobs[0].schedules[0].expr, m);
        assert_eq!(set.jobs[0].schedules[0].dialect, Dialect::Crontab);
        assert_eq!(shell(&set.jobs[0]), "/bin/job");
    }
}

#[test]
fn invalid_lines_are_errors_with_their_line_and_the_rest_is_read() {
    use CrontabFormat::{System, User};
    // (format, line, text expected in the message)
    let cases: &[(CrontabFormat, &str, &str)] = &[
        (User, "0 1 * *", "too few fields: found 4"),
        (User, "0 1 * * *", "missing command"),
        (
            User,
            "0 1 * * /bin/foo arg",
            "`/bin/foo` is not a time field (the day-of-week field)",
        ),
        (User, "@daily", "missing command"),
        (
            User,
            "0 * * * * * * azuracast_cli sync",
            "more than five time fields",
        ),
        (
            User,
            "0 30 */6 * * * * temp_cleanup",
            "more than five time fields",
        ),
        (
            System,
            "0 1 * * * root",
            "missing command after the user `root`",
        ),
        (System, "0 1 * * *", "missing user and command"),
        (
            System,
            "0 1 * * * /usr/bin/php x",
            "`/usr/bin/php` is not a user name",
        ),
        (
            System,
            "0 * * * * * * azuracast_cli sync",
            "more than five time fields",
        ),
        (
            User,
            "FOO=\"bar\" extra",
            "neither an environment line nor an entry",
        ),
        (
            User,
            "FOO = 'unclosed",
            "neither an environment line nor an entry",
        ),
    ];
    for (format, line, expected) in cases {
        let text = format!("# header\nA=1\n{line}\n0 2 * * * good\n");
        let text = if *format == System {
            text.replace("good", "root good")
        } else {
            text
        };
        let set = parse(&text, *format, None);
        let errs = errors(&set);
        assert_eq!(errs.len(), 1, "{line:?}: {:?}", set.diagnostics);
        assert_eq!(
            errs[0].origin,
            Some(Origin::new("/etc/test", 3)),
            "{line:?}"
        );
        assert!(
            errs[0].message.contains(expected),
            "{line:?}: {}",
            errs[0].message
        );
        assert_eq!(set.jobs.len(), 1, "{line:?}");
        assert_eq!(set.jobs[0].origin.line, 4);
        assert_eq!(shell(&set.jobs[0]), "good");
    }
}

#[test]
fn comments_blanks_and_leading_blanks() {
    let text =
        "# comment\n\n   \n\t# indented comment\n  \t 0 8  *   *   *     cmd one\n  FOO=bar\n";
    let set = parse(text, CrontabFormat::User, Some("alice"));
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 1);
    let job = &set.jobs[0];
    assert_eq!(job.schedules[0].expr, "0 8 * * *");
    assert_eq!(shell(job), "cmd one");
    assert_eq!(job.origin, Origin::new("/etc/test", 5));
    assert_eq!(job.schedules[0].origin, job.origin);
    assert_eq!(job.user.as_deref(), Some("alice"));
    assert_eq!(job.kind, SourceKind::Crontab);
    assert!(job.enabled);
    assert!(job.name.is_none());
    assert!(job.env.is_empty(), "variables apply only to later entries");
}

#[test]
fn variables_apply_to_the_entries_that_follow() {
    let text = "\
SHELL=/bin/bash
0 1 * * * first
CRON_TZ=Europe/Berlin
MAILTO=ops@example.com
HOME = '/srv/$USER'
0 2 * * * second
SHELL=
CRON_TZ=
MAILTO=\"\"
0 3 * * * third
";
    let set = parse(text, CrontabFormat::User, None);
    assert_eq!(set.jobs.len(), 3);
    let (first, second, third) = (&set.jobs[0], &set.jobs[1], &set.jobs[2]);

    assert_eq!(first.shell.as_deref(), Some("/bin/bash"));
    assert_eq!(first.schedules[0].timezone, None);
    assert_eq!(first.env.len(), 1);
    assert_eq!(first.env.get("SHELL"), Some("/bin/bash"));

    assert_eq!(second.shell.as_deref(), Some("/bin/bash"));
    assert_eq!(
        second.schedules[0].timezone.as_deref(),
        Some("Europe/Berlin")
    );
    assert_eq!(second.env.get("HOME"), Some("/srv/$USER"));
    assert_eq!(second.env.get("MAILTO"), Some("ops@example.com"));
    assert_eq!(second.env.get("CRON_TZ"), Some("Europe/Berlin"));

    assert_eq!(third.shell, None);
    assert_eq!(third.schedules[0].timezone, None);
    assert_eq!(third.env.get("MAILTO"), Some(""));

    let notes: Vec<_> = set.diagnostics.iter().collect();
    assert_eq!(notes.len(), 1, "one MAILTO note per file: {notes:?}");
    assert_eq!(notes[0].severity, Severity::Note);
    assert_eq!(notes[0].message, MAILTO_NOTE);
    assert_eq!(notes[0].origin, Some(Origin::new("/etc/test", 4)));
}

#[test]
fn percent_rule_table() {
    // (command text, command, stdin)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("echo hi", "echo hi", None),
        ("date +\\%Y\\%m\\%d", "date +%Y%m%d", None),
        (
            "mail -s hi root%line one%line two",
            "mail -s hi root",
            Some("line one\nline two\n"),
        ),
        ("cat%", "cat", Some("")),
        ("cat%a%", "cat", Some("a\n")),
        ("cat%100\\% sure", "cat", Some("100% sure\n")),
        ("cat%back\\slash", "cat", Some("back\\slash\n")),
        ("printf '\\n' %x", "printf '\\n' ", Some("x\n")),
        ("a\\\\%b", "a\\\\", Some("b\n")),
        ("cat%\\\\%", "cat", Some("\\%\n")),
        ("cat%ends\\", "cat", Some("ends\\\n")),
        (
            "sleep $((60 + $RANDOM % 230))",
            "sleep $((60 + $RANDOM ",
            Some(" 230))\n"),
        ),
    ];
    for (raw, command, stdin) in cases {
        let (c, s) = split_percent(raw);
        assert_eq!(c, *command, "{raw:?}");
        assert_eq!(s.as_deref(), *stdin, "{raw:?}");
    }
}

#[test]
fn unescaped_percent_is_a_warning_and_escaped_is_not() {
    let set = parse(
        "0 1 * * * date +\\%F\n0 2 * * * mail root%hello\n",
        CrontabFormat::User,
        None,
    );
    assert_eq!(set.jobs.len(), 2);
    assert_eq!(shell(&set.jobs[0]), "date +%F");
    assert_eq!(set.jobs[0].stdin, None);
    assert_eq!(shell(&set.jobs[1]), "mail root");
    assert_eq!(set.jobs[1].stdin.as_deref(), Some("hello\n"));
    assert_eq!(set.diagnostics.len(), 1, "{:?}", set.diagnostics);
    let warning = &set.diagnostics[0];
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.origin, Some(Origin::new("/etc/test", 2)));
    assert!(warning.message.contains("standard input"));
    assert!(warning.message.contains("\\%"));
}

#[test]
fn crlf_and_missing_final_newline_are_accepted_with_one_note_each() {
    let set = parse(
        "A=1\r\n0 1 * * * one\r\n0 2 * * * two\r\n0 3 * * * three",
        CrontabFormat::User,
        None,
    );
    assert!(errors(&set).is_empty());
    let commands: Vec<_> = set.jobs.iter().map(|j| shell(j)).collect();
    assert_eq!(commands, ["one", "two", "three"]);
    assert_eq!(set.jobs[0].env.get("A"), Some("1"));
    let notes: Vec<_> = set.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("CRLF line endings: accepted, but Debian cron would ignore this file")
    );
    assert!(notes[1].starts_with("no newline at the end of the file"));
    for d in &set.diagnostics {
        assert_eq!(d.severity, Severity::Note);
        assert_eq!(d.origin, Some(Origin::new("/etc/test", 0)));
    }
}

#[test]
fn byte_order_mark_and_empty_file() {
    let set = parse("\u{feff}0 1 * * * one\n", CrontabFormat::User, None);
    assert_eq!(set.jobs.len(), 1);
    assert_eq!(set.jobs[0].schedules[0].expr, "0 1 * * *");
    assert_eq!(set.diagnostics.len(), 1);
    assert!(set.diagnostics[0].message.contains("byte order mark"));

    let set = parse("", CrontabFormat::User, None);
    assert!(set.jobs.is_empty() && set.diagnostics.is_empty());
}

#[test]
fn invalid_utf8_is_an_error_except_in_comments() {
    let bytes = b"# caf\xe9\n0 1 * * * echo caf\xe9\n0 2 * * * ok\n";
    let set = parse_crontab(Path::new("/x"), bytes, CrontabFormat::User, None);
    assert_eq!(set.jobs.len(), 1);
    let errs = errors(&set);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].origin, Some(Origin::new("/x", 2)));
}

#[test]
fn system_format_user_and_root_warning_in_user_format() {
    let set = parse(
        "0 1 * * * root /bin/x\n0 2 * * * root /bin/y\n",
        CrontabFormat::User,
        None,
    );
    assert_eq!(set.jobs.len(), 2);
    assert_eq!(shell(&set.jobs[0]), "root /bin/x");
    assert_eq!(set.diagnostics.len(), 1);
    assert_eq!(set.diagnostics[0].severity, Severity::Warning);

    let set = parse(
        "0 1 * * * www-data /bin/x\n",
        CrontabFormat::System,
        Some("ignored"),
    );
    assert_eq!(set.jobs[0].user.as_deref(), Some("www-data"));
    assert_eq!(shell(&set.jobs[0]), "/bin/x");
}

#[test]
fn dcron_detection_is_per_file() {
    let dcron = "# jobs\n0 1 * * * /usr/local/bin/php a.php\n@daily /usr/bin/b\n";
    let set = parse(dcron, CrontabFormat::SystemOrDcron, None);
    assert!(errors(&set).is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 2);
    assert!(set.jobs.iter().all(|j| j.user.as_deref() == Some("root")));
    assert_eq!(shell(&set.jobs[0]), "/usr/local/bin/php a.php");
    let note = &set.diagnostics[0];
    assert_eq!(note.severity, Severity::Note);
    assert!(note
        .message
        .contains("`/usr/local/bin/php` after the schedule on line 2"));

    // One entry with a user: the file is in the system format, and the other
    // entry is an error.
    let mixed = "0 1 * * * /usr/local/bin/php a.php\n0 2 * * * root /bin/b\n";
    let set = parse(mixed, CrontabFormat::SystemOrDcron, None);
    assert_eq!(set.jobs.len(), 1);
    assert_eq!(set.jobs[0].user.as_deref(), Some("root"));
    assert_eq!(shell(&set.jobs[0]), "/bin/b");
    assert_eq!(errors(&set).len(), 1);

    // A normal cron.d file stays in the system format, without a note.
    let system = "PATH=/bin\n0 1 * * * nobody /bin/a\n";
    let set = parse(system, CrontabFormat::SystemOrDcron, None);
    assert!(set.diagnostics.is_empty());
    assert_eq!(set.jobs[0].user.as_deref(), Some("nobody"));

    // /etc/crontab never switches.
    let set = parse(dcron, CrontabFormat::System, None);
    assert!(set.jobs.is_empty());
    assert_eq!(errors(&set).len(), 2);
}

/// The real-world crontabs, copied into the repository with their provenance
/// (tests/fixtures/corpus/SOURCES.md), so these tests always run.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

fn corpus_file(name: &str) -> (PathBuf, Vec<u8>) {
    let path = corpus_dir().join(name);
    let bytes = std::fs::read(&path).expect("corpus file listed in SOURCES.md");
    (path, bytes)
}

#[test]
fn wallos_in_cron_d_is_read_as_roots_dcron_crontab() {
    let (path, bytes) = corpus_file("github/ellite__Wallos/cronjobs@7c2e7f0");
    let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
    assert!(errors(&set).is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 3);
    for job in &set.jobs {
        assert_eq!(job.user.as_deref(), Some("root"));
        assert!(shell(job).starts_with("/usr/local/bin/php "), "{job:?}");
        assert!(!shell(job).ends_with('\r'));
    }
    assert_eq!(set.jobs[2].schedules[0].expr, "0 9 * * *");
    let notes: Vec<_> = set.diagnostics.iter().map(|d| &d.message).collect();
    assert_eq!(notes.len(), 2, "CRLF and dcron: {notes:?}");
}

#[test]
fn mdadm_escaped_percent() {
    let (path, bytes) = corpus_file("debian/mdadm/etc/cron.d/mdadm");
    let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 1);
    let job = &set.jobs[0];
    assert_eq!(job.user.as_deref(), Some("root"));
    assert_eq!(job.stdin, None);
    assert_eq!(job.schedules[0].expr, "57 0 * * 0");
    assert_eq!(
        shell(job),
        "if [ -x /usr/share/mdadm/checkarray ] && [ $(date +%d) -le 7 ]; then /usr/share/mdadm/checkarray --cron --all --idle --quiet; fi"
    );
    assert_eq!(job.origin.line, 12);
}

#[test]
fn swh_lister_leading_blanks_and_literal_home() {
    let (path, bytes) = corpus_file("github/SoftwareHeritage__swh-lister/etc/crontab@28aa210");
    let set = parse_crontab(&path, &bytes, CrontabFormat::User, Some("zack"));
    assert!(set.diagnostics.is_empty(), "{:?}", set.diagnostics);
    assert_eq!(set.jobs.len(), 1);
    let job = &set.jobs[0];
    assert_eq!(
        job.env.get("GHLISTER_ROOT"),
        Some("$HOME/src/swh-lister-github")
    );
    assert_eq!(job.schedules[0].expr, "0 8 * * *");
    assert!(shell(job).starts_with("PATH=$GHLISTER_ROOT/bin:$PATH PYTHONPATH="));
    assert_eq!(job.user.as_deref(), Some("zack"));
}

/// Every corpus file: what Debian accepts gives no error and as many jobs as
/// the model of Debian's parser counted; the supercronic file gives errors for
/// each entry line and no job, in either format.
#[test]
fn corpus_matches_the_vixie_model() {
    let dir = corpus_dir();
    let index = std::fs::read(dir.join("index.json")).expect("readable index.json");
    let index: serde_json::Value = serde_json::from_slice(&index).expect("valid index.json");
    let entries = index.as_array().expect("index.json is a list");
    assert!(entries.len() >= 50, "{} corpus entries", entries.len());
    // Every copied file is in the index (and so in SOURCES.md), and only those.
    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable corpus directory") {
            let path = e.expect("a directory entry").path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut on_disk = Vec::new();
    files_under(&dir, &mut on_disk);
    let mut on_disk: Vec<PathBuf> = on_disk
        .into_iter()
        .filter(|p| p.parent() != Some(dir.as_path()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<PathBuf> = entries
        .iter()
        .map(|e| dir.join(e["file"].as_str().expect("file")))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for entry in entries {
        let file = entry["file"].as_str().expect("file");
        let path = dir.join(file);
        let bytes = std::fs::read(&path).expect("corpus file");
        let expected = entry["vixie_model"]["entries"].as_u64().expect("entries");
        // What the index records about the bytes is noted, once per file.
        for (fact, note) in [
            ("has_crlf", "CRLF line endings"),
            ("missing_final_newline", "no newline at the end of the file"),
        ] {
            let set = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
            let noted = set
                .diagnostics
                .iter()
                .filter(|d| d.message.starts_with(note))
                .count();
            let want = entry["vixie_model"][fact]
                .as_bool()
                .expect("a recorded fact");
            assert_eq!(noted, usize::from(want), "{file}: {fact}");
        }
        match entry["format"].as_str().expect("format") {
            "supercronic" => {
                for format in [
                    CrontabFormat::User,
                    CrontabFormat::System,
                    CrontabFormat::SystemOrDcron,
                ] {
                    let set = parse_crontab(&path, &bytes, format, None);
                    assert!(set.jobs.is_empty(), "{file} {format:?}");
                    let lines: Vec<_> = errors(&set)
                        .iter()
                        .filter_map(|d| d.origin.as_ref().map(|o| o.line))
                        .collect();
                    assert_eq!(lines, [1, 2], "{file} {format:?}: {:?}", set.diagnostics);
                }
            }
            format => {
                let format = if format == "system" {
                    CrontabFormat::System
                } else {
                    CrontabFormat::User
                };
                let set = parse_crontab(&path, &bytes, format, Some("owner"));
                assert!(errors(&set).is_empty(), "{file}: {:?}", set.diagnostics);
                assert_eq!(set.jobs.len() as u64, expected, "{file}");
                let reboots = set
                    .jobs
                    .iter()
                    .filter(|j| j.schedules[0].expr == "@reboot")
                    .count() as u64;
                assert_eq!(
                    Some(reboots),
                    entry["vixie_model"]["reboot_entries"].as_u64(),
                    "{file}"
                );
                let percent = set
                    .diagnostics
                    .iter()
                    .any(|d| d.message.starts_with("unescaped `%`"));
                assert_eq!(
                    Some(percent),
                    entry["vixie_model"]["unescaped_percent_in_command"].as_bool(),
                    "{file}"
                );
                if format == CrontabFormat::System {
                    // cron.d files that Debian reads stay in the system format.
                    let dcron = parse_crontab(&path, &bytes, CrontabFormat::SystemOrDcron, None);
                    assert_eq!(dcron.jobs, set.jobs, "{file}");
                }
            }
        }
    }
}

#[test]
fn random_delay_gives_the_entries_after_it_a_jitter_in_minutes() {
    let set = parse(
        "0 1 * * * before\n\
         RANDOM_DELAY=10\n\
         0 2 * * * ten\n\
         RANDOM_DELAY=soon\n\
         0 3 * * * still-ten\n\
         RANDOM_DELAY=1441\n\
         RANDOM_DELAY=0\n\
         0 4 * * * none\n",
        CrontabFormat::User,
        Some("alice"),
    );
    let jitter: Vec<Option<u64>> = set
        .jobs
        .iter()
        .map(|j| j.jitter.map(|d| d.as_secs()))
        .collect();
    assert_eq!(jitter, [None, Some(600), Some(600), None]);
    let errors = errors(&set);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].origin.as_ref().map(|o| o.line), Some(4));
    assert!(
        errors[0].message.contains("not a number of minutes"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].origin.as_ref().map(|o| o.line), Some(6));
    assert!(
        errors[1].message.contains("too long; at most 1440"),
        "{}",
        errors[1]
    );
    // Still passed to the job, as cron passes every variable.
    assert_eq!(set.jobs[1].env.get("RANDOM_DELAY"), Some("10"));
}
