//! A run's environment and request: jobrun's own environment, then the
//! job's layers (file defaults, then its own), then `JOBRUN_*`, which a job
//! cannot override.

use super::*;

use super::super::env::build_request;
use crate::job_env::JobEnv;
use crate::runner::{Program, RunRequest, DEFAULT_KILL_GRACE, DEFAULT_SHELL};

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A job with its file's `defaults.env` below its own `env`.
fn layered_job() -> Job {
    let mut job = job("envy", "true");
    std::sync::Arc::make_mut(&mut job.spec).env = JobEnv::new()
        .with(vars(&[("SHARED", "file"), ("FROM_FILE", "1")]))
        .with(vars(&[
            ("SHARED", "job"),
            ("PATH", "/opt/bin"),
            ("JOBRUN_JOB", "spoofed"),
        ]));
    job
}

fn env_of(request: &RunRequest) -> Vec<(&str, &str)> {
    request
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn the_job_layers_over_jobrun_and_jobrun_variables_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = Arc::into_inner(context(dir.path())).unwrap();
    ctx.base_env = vars(&[
        ("PATH", "/usr/bin:/bin"),
        ("SHARED", "jobrun"),
        ("LANG", "C"),
    ]);
    let job = layered_job();
    let request = build_request(&ctx, &job, &scheduled(&job, 0), RunId(42));
    assert_eq!(
        env_of(&request),
        [
            ("FROM_FILE", "1"),
            ("JOBRUN_ATTEMPT", "1"),
            ("JOBRUN_JOB", "envy"),
            ("JOBRUN_RUN_ID", "42"),
            (
                "JOBRUN_TICK",
                tick(0)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .as_str()
            ),
            ("JOBRUN_TRIGGER", "schedule"),
            ("LANG", "C"),
            ("PATH", "/opt/bin"),
            ("SHARED", "job"),
        ]
    );
    // The variables the job itself set, which the runner keeps over what
    // it sets for a `user:` (HOME, LOGNAME, ...).
    let explicit: Vec<&str> = request.explicit_env.iter().map(String::as_str).collect();
    assert_eq!(explicit, ["FROM_FILE", "JOBRUN_JOB", "PATH", "SHARED"]);
    assert_eq!(
        request.program,
        Program::Shell {
            shell: DEFAULT_SHELL.into(),
            command: "true".into()
        }
    );
    assert_eq!(request.job, "envy");
    assert_eq!(request.kill_grace, DEFAULT_KILL_GRACE);
    assert_eq!(request.tail_bytes, 1024);
    assert!(
        !request.home_workdir,
        "a YAML job stays in jobrun's directory"
    );
}

#[tokio::test]
async fn a_retry_of_a_watch_run_carries_its_parent_and_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("watcher", "true");
    let firing = Firing {
        parent: Some(RunId(7)),
        attempt: 2,
        changed: ["/a", "/b", "/a"].map(PathBuf::from).to_vec(),
        ..Firing::new("watcher", None, Trigger::Retry)
    };
    let request = build_request(&ctx, &job, &firing, RunId(9));
    let get = |name: &str| request.env.get(name).map(String::as_str);
    assert_eq!(get("JOBRUN_PARENT_RUN_ID"), Some("7"));
    assert_eq!(get("JOBRUN_ATTEMPT"), Some("2"));
    assert_eq!(get("JOBRUN_TRIGGER"), Some("retry"));
    assert_eq!(get("JOBRUN_TICK"), Some(""), "no tick: set, empty");
    assert_eq!(get("JOBRUN_CHANGED"), Some("/a\n/b"), "each path once");
    assert_eq!(get("JOBRUN_CHANGED_TRUNCATED"), None);

    let truncated = Firing {
        changed_truncated: true,
        ..firing
    };
    let request = build_request(&ctx, &job, &truncated, RunId(9));
    assert_eq!(
        request
            .env
            .get("JOBRUN_CHANGED_TRUNCATED")
            .map(String::as_str),
        Some("1")
    );
    // A first attempt of a schedule has no parent and no changes.
    let plain = build_request(&ctx, &job, &scheduled(&job, 0), RunId(1));
    assert!(!plain.env.contains_key("JOBRUN_PARENT_RUN_ID"));
    assert!(!plain.env.contains_key("JOBRUN_CHANGED"));
}

#[tokio::test]
async fn changed_paths_past_the_cap_are_cut_at_a_whole_path_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let job = job("watcher", "true");
    // 1,000 paths of 100 bytes: 100 KB, over the 64 KiB cap.
    let changed: Vec<PathBuf> = (0..1000)
        .map(|i| PathBuf::from(format!("/{i:099}")))
        .collect();
    let firing = Firing {
        changed,
        ..Firing::new("watcher", None, Trigger::Watch)
    };
    let request = build_request(&ctx, &job, &firing, RunId(1));
    let paths = &request.env["JOBRUN_CHANGED"];
    assert!(paths.len() <= 64 * 1024, "{}", paths.len());
    assert!(
        paths.len() > 60 * 1024,
        "cut far below the cap: {}",
        paths.len()
    );
    assert!(paths.lines().all(|p| p.len() == 100), "a path was cut");
    assert_eq!(
        request
            .env
            .get("JOBRUN_CHANGED_TRUNCATED")
            .map(String::as_str),
        Some("1")
    );
}

#[tokio::test]
async fn the_program_and_directory_follow_the_jobs_kind() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut cron = job("cron", "date");
    std::sync::Arc::make_mut(&mut cron.spec).kind = SourceKind::Crontab;
    std::sync::Arc::make_mut(&mut cron.spec).shell = Some("/bin/bash".into());
    std::sync::Arc::make_mut(&mut cron.spec).kill_grace = Some(Duration::from_secs(3));
    let request = build_request(&ctx, &cron, &scheduled(&cron, 0), RunId(1));
    assert!(
        request.home_workdir,
        "crontab jobs run in HOME, as cron runs them"
    );
    assert_eq!(
        request.program,
        Program::Shell {
            shell: "/bin/bash".into(),
            command: "date".into()
        }
    );
    assert_eq!(request.kill_grace, Duration::from_secs(3));

    let mut argv = job("argv", "");
    std::sync::Arc::make_mut(&mut argv.spec).command =
        Command::Argv(vec!["echo".into(), "a b".into()]);
    let request = build_request(&ctx, &argv, &scheduled(&argv, 0), RunId(1));
    assert_eq!(
        request.program,
        Program::Argv(vec!["echo".into(), "a b".into()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_sees_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let out = dir.path().join("env");
    let mut job = layered_job();
    std::sync::Arc::make_mut(&mut job.spec).command = Command::Shell(format!(
        "printf '%s|%s|%s|%s|%s' \"$JOBRUN_JOB\" \"$JOBRUN_RUN_ID\" \"$SHARED\" \"$FROM_FILE\" \"$JOBRUN_TRIGGER\" > '{}'",
        out.display()
    ));
    // The job's PATH is used to find programs: keep a working one.
    std::sync::Arc::make_mut(&mut job.spec).env =
        job.spec.env.with(vars(&[("PATH", "/usr/bin:/bin")]));
    let result = fire(&ctx, &job, &scheduled(&job, 0)).await.unwrap();
    assert_eq!(status_of(&result), RunStatus::Succeeded, "{result:?}");
    let run_id = result.run_id().unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("envy|{run_id}|job|1|schedule")
    );
}
