//! Tests of the merge rule's spelling cases (issue 12): the user jobrun runs
//! as is the same user whether named or not, copies whose schedules drifted
//! are named in a warning, and two explicit YAML names for one command stay
//! two jobs, with a warning, so no setting is dropped.

use super::Plan;
use crate::job::{
    Command, Diagnostic, Dialect, JobSpec, Origin, OwnUser, ScheduleSpec, Severity, SourceKind,
    SourceSet,
};

fn spec(kind: SourceKind, path: &str, line: usize, expr: &str, command: &str) -> JobSpec {
    let origin = Origin::new(path, line);
    let mut spec = JobSpec::new(Command::Shell(command.into()), kind, origin.clone());
    spec.schedules.push(ScheduleSpec {
        expr: expr.into(),
        dialect: match kind {
            SourceKind::Yaml => Dialect::Yaml,
            SourceKind::Crontab => Dialect::Crontab,
            SourceKind::Supercronic => Dialect::Supercronic,
        },
        timezone: None,
        origin,
    });
    spec
}

fn yaml(name: &str, line: usize, expr: &str, command: &str) -> JobSpec {
    let mut s = spec(
        SourceKind::Yaml,
        "/etc/jobrun/jobs.yaml",
        line,
        expr,
        command,
    );
    s.name = Some(name.into());
    s
}

fn crontab(path: &str, line: usize, expr: &str, user: &str, command: &str) -> JobSpec {
    let mut s = spec(SourceKind::Crontab, path, line, expr, command);
    s.user = Some(user.into());
    s
}

fn build_as(own: Option<OwnUser>, jobs: Vec<JobSpec>) -> (Plan, Vec<Diagnostic>) {
    Plan::build(
        SourceSet {
            jobs: jobs.into_iter().map(std::sync::Arc::new).collect(),
            own_user: own,
            ..Default::default()
        },
        chrono_tz::UTC,
    )
}

fn root() -> Option<OwnUser> {
    Some(OwnUser {
        name: Some("root".into()),
        uid: 0,
    })
}

fn warnings(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect()
}

const PHP: &str = "/usr/local/bin/php /var/www/html/endpoints/cronjobs/sendnotifications.php";

#[test]
fn a_yaml_job_without_user_and_roots_crontab_are_one_job_when_jobrun_is_root() {
    for user in ["root", "0"] {
        let (plan, _) = build_as(
            root(),
            vec![
                yaml("sendnotifications", 3, "0 9 * * *", PHP),
                crontab("/var/spool/cron/crontabs/root", 4, "0 9 * * *", user, PHP),
            ],
        );
        assert_eq!(plan.jobs().len(), 1, "user {user}");
        let job = &plan.jobs()[0];
        assert_eq!(job.name, "sendnotifications");
        assert_eq!(job.spec.user, None, "runs as jobrun's own user");
        assert_eq!(job.origins.len(), 2);
    }
    // Another user than jobrun's is another job.
    let (plan, _) = build_as(
        root(),
        vec![
            yaml("sendnotifications", 3, "0 9 * * *", PHP),
            crontab("/etc/cron.d/app", 4, "0 9 * * *", "www-data", PHP),
        ],
    );
    assert_eq!(plan.jobs().len(), 2);
}

#[test]
fn copies_of_one_job_scheduled_differently_in_two_files_are_named_in_a_warning() {
    let (plan, diags) = build_as(
        root(),
        vec![
            crontab("/etc/cron.d/cronjobs", 4, "0 8 * * *", "root", PHP),
            crontab("/var/spool/cron/crontabs/root", 7, "0 9 * * *", "root", PHP),
        ],
    );
    assert_eq!(plan.jobs().len(), 1, "still one job, on both schedules");
    let drift: Vec<_> = warnings(&diags)
        .into_iter()
        .filter(|w| w.contains("scheduled differently"))
        .collect();
    assert_eq!(drift.len(), 1, "{diags:?}");
    let w = &drift[0];
    assert!(w.contains("job sendnotifications"), "{w}");
    assert!(w.contains("/etc/cron.d/cronjobs:4"), "{w}");
    assert!(w.contains("/var/spool/cron/crontabs/root:7"), "{w}");
    assert!(
        w.contains("\"0 8 * * *\"") && w.contains("\"0 9 * * *\""),
        "{w}"
    );

    // Identical copies, and several times in one file, say nothing of drift.
    for jobs in [
        vec![
            crontab("/a", 1, "0 8 * * *", "root", PHP),
            crontab("/b", 1, "0 8 * * *", "root", PHP),
        ],
        vec![
            crontab("/a", 1, "0 8 * * *", "root", PHP),
            crontab("/a", 2, "0 17 * * *", "root", PHP),
        ],
        vec![
            crontab("/a", 1, "0 8 * * *", "root", PHP),
            crontab("/a", 2, "0 17 * * *", "root", PHP),
            crontab("/b", 1, "0 17 * * *", "root", PHP),
            crontab("/b", 2, "0 8 * * *", "root", PHP),
        ],
    ] {
        let (_, diags) = build_as(root(), jobs);
        assert!(
            !warnings(&diags)
                .iter()
                .any(|w| w.contains("scheduled differently")),
            "{diags:?}"
        );
    }
}

#[test]
fn two_yaml_jobs_with_different_names_and_one_command_keep_both_settings() {
    let mut first = yaml("nightly", 2, "0 2 * * *", "/usr/bin/backup");
    first.timeout = Some(std::time::Duration::from_secs(60));
    let mut second = yaml("weekly", 9, "0 3 * * 0", "/usr/bin/backup");
    second.timeout = Some(std::time::Duration::from_secs(3600));
    let copy = crontab("/etc/crontab", 5, "0 2 * * *", "root", "/usr/bin/backup");
    let (plan, diags) = build_as(root(), vec![first, second, copy]);
    assert_eq!(plan.jobs().len(), 2, "{diags:?}");
    let nightly = plan.get("nightly").expect("kept");
    let weekly = plan.get("weekly").expect("kept, not merged away");
    assert_eq!(
        weekly.spec.timeout,
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(
        nightly.spec.timeout,
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(
        nightly.origins.len(),
        2,
        "the crontab copy merges into the first"
    );
    let w = warnings(&diags);
    let two = w
        .iter()
        .find(|w| w.contains("\"weekly\"") && w.contains("\"nightly\""))
        .unwrap_or_else(|| panic!("{w:?}"));
    assert!(
        two.contains("jobs.yaml:9") && two.contains("jobs.yaml:2"),
        "{two}"
    );
    assert!(
        !diags.iter().any(|d| d.severity == Severity::Error),
        "{diags:?}"
    );
}
