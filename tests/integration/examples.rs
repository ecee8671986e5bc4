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
