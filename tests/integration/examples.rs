//! The deployment examples in `examples/` (systemd unit, Dockerfile,
//! Kubernetes manifest): each is checked as far as this machine can without
//! a service manager, a Docker engine or a cluster. Knows only the files and
//! the built `jobrun` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// The `KEY=value` lines of a unit file (comments and sections left out).
fn unit_settings(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| l.split_once('=').expect("a unit line is KEY=value"))
        .collect()
}

fn setting<'a>(settings: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    settings.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Seconds of a `8s`/`15s`/`2min` duration (the forms these examples use).
fn seconds(text: &str) -> u64 {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {text:?}"));
    match unit {
        "" | "s" => n,
        "min" | "m" => n * 60,
        other => panic!("unexpected duration unit {other:?} in {text:?}"),
    }
}

/// jobrun's default `--shutdown-grace`, from its own help (one source of truth).
fn default_shutdown_grace_secs() -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .args(["daemon", "--help"])
        .output()
        .expect("running jobrun daemon --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let flag = &help[help
        .find("--shutdown-grace")
        .expect("the flag is documented")..];
    let default = &flag[flag.find("[default: ").expect("the flag has a default") + 10..];
    seconds(&default[..default.find(']').expect("a closing bracket")])
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "systemd units are Linux-only")]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let (_, text) = example("jobrun.service");
    let exec = "ExecStart=/usr/local/bin/jobrun ";
    assert!(text.contains(exec), "the unit starts {exec:?}");
    // verify needs the ExecStart binary to exist: point it at the test build.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let unit = dir.path().join("jobrun.service");
    let rewritten = text.replace(
        exec,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_jobrun")),
    );
    std::fs::write(&unit, rewritten).expect("writing the unit copy");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze must be installed (apt-get install systemd) to check examples/jobrun.service");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // An unknown or misspelt key is only a warning (exit 0): refuse those too.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

#[test]
fn the_systemd_unit_lets_jobrun_stop_its_jobs_and_keeps_setuid_jobs_working() {
    let (_, text) = example("jobrun.service");
    let settings = unit_settings(&text);
    // jobrun alone gets SIGTERM and stops the jobs itself, within its grace.
    assert_eq!(setting(&settings, "KillMode"), Some("mixed"));
    let stop = seconds(setting(&settings, "TimeoutStopSec").expect("TimeoutStopSec is set"));
    let grace = default_shutdown_grace_secs();
    assert!(
        stop > grace,
        "TimeoutStopSec {stop}s must exceed the {grace}s shutdown grace"
    );
    assert_eq!(
        setting(&settings, "ExecReload"),
        Some("/bin/kill -HUP $MAINPID")
    );
    assert_eq!(setting(&settings, "StateDirectory"), Some("jobrun"));
    assert_eq!(setting(&settings, "ProtectSystem"), Some("strict"));
    assert_eq!(setting(&settings, "Restart"), Some("on-failure"));
    // Jobs run as their crontab's users, through setuid helpers too.
    assert_eq!(setting(&settings, "User"), None, "jobrun must run as root");
    assert_ne!(setting(&settings, "NoNewPrivileges"), Some("yes"));
    assert_eq!(setting(&settings, "CapabilityBoundingSet"), None);
    assert_eq!(setting(&settings, "RestrictSUIDSGID"), None);
}

/// The README's "Production build" command: (RUSTFLAGS, the cargo command
/// line, the output path its comment names).
fn readme_production_build() -> (String, String, String) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("reading README.md");
    let section = &readme[readme
        .find("\n## Production build")
        .expect("the section exists")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    let (command, comment) = block.split_once('#').expect("the command names its output");
    let command = command.replace("\\\n", " ");
    let rest = command
        .trim()
        .strip_prefix("RUSTFLAGS=\"")
        .expect("RUSTFLAGS first");
    let (rustflags, cargo) = rest.split_once('"').expect("RUSTFLAGS is quoted");
    let output = comment
        .trim()
        .strip_prefix("-> ")
        .expect("`-> PATH` comment");
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    (
        rustflags.to_string(),
        squash(cargo),
        output.trim().to_string(),
    )
}

/// One stage of a Dockerfile: its base, name and instructions (continuation
/// lines joined, comments left out).
struct Stage {
    from: String,
    name: String,
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn all(&self, keyword: &str) -> Vec<&str> {
        let found = self.instructions.iter().filter(|(k, _)| k == keyword);
        found.map(|(_, v)| v.as_str()).collect()
    }

    fn one(&self, keyword: &str) -> &str {
        match self.all(keyword)[..] {
            [value] => value,
            ref other => panic!("stage {}: {} {keyword} lines", self.name, other.len()),
        }
    }
}

fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => lines.push(std::mem::take(&mut pending) + trimmed),
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines {
        let (keyword, rest) = line
            .split_once(char::is_whitespace)
            .expect("INSTRUCTION args");
        let rest = rest.trim().to_string();
        if keyword == "FROM" {
            let (from, name) = rest.split_once(" AS ").expect("every stage is named");
            stages.push(Stage {
                from: from.into(),
                name: name.into(),
                instructions: Vec::new(),
            });
        } else {
            let stage = stages.last_mut().expect("FROM comes first");
            stage.instructions.push((keyword.to_string(), rest));
        }
    }
    stages
}

#[test]
fn the_dockerfile_builds_the_readmes_production_binary_and_ships_it_alone() {
    let (_, text) = example("Dockerfile");
    let stages = dockerfile_stages(&text);
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "debian", "alpine"]);
    let (rustflags, cargo, output) = readme_production_build();

    // The builder runs exactly the README's command (one source of truth).
    let build = &stages[0];
    assert_eq!(build.one("ENV"), format!("RUSTFLAGS=\"{rustflags}\""));
    assert_eq!(build.one("RUN"), cargo);
    let triple = cargo.split("--target ").nth(1).expect("a --target triple");
    assert_eq!(
        output,
        format!("target/{triple}/release/jobrun"),
        "README output path"
    );
    let built = format!("{}/{output}", build.one("WORKDIR"));

    for (stage, base) in [(&stages[1], "debian:"), (&stages[2], "alpine:")] {
        assert!(
            stage.from.starts_with(base),
            "stage {} is based on {base}",
            stage.name
        );
        // The binary alone: one COPY, from the builder, of what it built.
        assert_eq!(stage.all("RUN"), Vec::<&str>::new(), "stage {}", stage.name);
        assert_eq!(
            stage.one("COPY"),
            format!("--from=build {built} /usr/local/bin/jobrun")
        );
        assert!(stage
            .one("HEALTHCHECK")
            .ends_with(r#"CMD ["jobrun", "status"]"#));
        assert_eq!(stage.one("ENTRYPOINT"), r#"["jobrun"]"#);
        assert_eq!(stage.one("STOPSIGNAL"), "SIGTERM");
        // The default command is one jobrun accepts.
        let cmd: Vec<String> = serde_json::from_str(stage.one("CMD")).expect("CMD is exec form");
        assert!(
            cmd.iter().any(|a| a == "daemon"),
            "the image runs the daemon"
        );
        let help = Command::new(env!("CARGO_BIN_EXE_jobrun"))
            .args(&cmd)
            .arg("--help")
            .output()
            .expect("running jobrun");
        assert!(help.status.success(), "jobrun rejects CMD {cmd:?}");
    }
    // `docker stop` waits 10 s before SIGKILL: the grace must fit inside.
    assert!(default_shutdown_grace_secs() < 10);
}

fn get<'a>(value: &'a serde_yaml::Value, path: &str) -> &'a serde_yaml::Value {
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn strings(value: &serde_yaml::Value) -> Vec<String> {
    let seq = value.as_sequence().expect("a list of strings");
    seq.iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn the_kubernetes_manifest_parses_and_its_jobs_pass_check() {
    use serde::Deserialize;
    let (_, text) = example("kubernetes.yaml");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("each document is YAML"))
        .collect();
    let of_kind = |kind: &str| {
        let mut found = docs.iter().filter(|d| d["kind"].as_str() == Some(kind));
        let doc = found.next().unwrap_or_else(|| panic!("a {kind}"));
        assert!(found.next().is_none(), "one {kind}");
        doc
    };

    // The ConfigMap's jobs pass `jobrun check` without an error or warning.
    let jobs = &get(of_kind("ConfigMap"), "data")["jobs.yaml"];
    let jobs = jobs.as_str().expect("jobs.yaml is a string");
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("jobs.yaml"), jobs).expect("writing jobs.yaml");
    let check = Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .arg("--config")
        .arg(dir.path())
        .arg("check")
        .output()
        .expect("running jobrun check");
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "jobrun check failed:\n{said}");
    assert!(said.contains("0 error(s), 0 warning(s)"), "{said}");

    of_kind("PersistentVolumeClaim");
    let deployment = of_kind("Deployment");
    assert_eq!(get(deployment, "spec.replicas").as_u64(), Some(1));
    assert_eq!(
        get(deployment, "spec.strategy.type").as_str(),
        Some("Recreate")
    );
    let pod = get(deployment, "spec.template.spec");
    let grace = get(pod, "terminationGracePeriodSeconds")
        .as_u64()
        .expect("a grace period");
    assert!(
        grace > default_shutdown_grace_secs(),
        "terminationGracePeriodSeconds {grace}"
    );
    let container = get(pod, "containers.0");
    assert!(get(container, "securityContext").is_mapping());

    // The ConfigMap is what the daemon reads.
    let mounts = get(container, "volumeMounts")
        .as_sequence()
        .expect("mounts");
    let jobs_mount = mounts
        .iter()
        .find(|m| m["name"] == "jobs")
        .expect("jobs mounted");
    assert_eq!(jobs_mount["mountPath"].as_str(), Some("/etc/jobrun/jobs.d"));
    let args = strings(get(container, "args"));
    assert!(
        args.windows(2)
            .any(|w| w == ["--config", "/etc/jobrun/jobs.d"]),
        "{args:?}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_jobrun"))
        .args(&args)
        .arg("--help")
        .output()
        .expect("running jobrun");
    assert!(help.status.success(), "jobrun rejects args {args:?}");

    // Readiness is the full verdict; liveness fails when no daemon is alive.
    let ready = strings(get(container, "readinessProbe.exec.command"));
    assert_eq!(ready, ["jobrun", "status"]);
    let live = strings(get(container, "livenessProbe.exec.command"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_jobrun"))
        .parent()
        .expect("a directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let probe = Command::new(&live[0])
        .args(&live[1..])
        .env("PATH", path)
        .env("JOBRUN_STATE_DIR", dir.path().join("no-daemon-ever-ran"))
        .output()
        .expect("running the liveness probe");
    assert!(
        !probe.status.success(),
        "the liveness probe passes without a daemon"
    );
}
