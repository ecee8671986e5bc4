//! The fingerprint of a job's definition that each claim carries (issue 14,
//! guarantee 9): what makes two hosts' runs of a job the same run. The
//! schedules with their effective zones, the command, its input, shell,
//! user, working directory, environment, timeout and concurrency, and the
//! jitter and notifications when set. Not the
//! file or line it came from (a replica may keep its files elsewhere).
//!
//! Stable across builds and hosts: a length-prefixed canonical text hashed
//! with FNV-1a (64 bits, fixed constants), never `Debug` output or std's
//! randomly seeded hasher. It detects drift; it is not a security boundary.

use crate::job::{Command, Dialect, JobSpec};

/// The fingerprint's format, first in its text: a change of what it covers
/// changes the version, so mixed jobrun versions are reported as drift.
const FORMAT: &str = "jf1";

/// A job's fingerprint; `default_zone` is the zone its schedules use when
/// they name none (hosts in different zones run a job at different times).
pub fn fingerprint(spec: &JobSpec, default_zone: &str) -> String {
    let mut text = Canonical::default();
    for s in &spec.schedules {
        text.field("schedule", &s.expr);
        let dialect = match s.dialect {
            Dialect::Crontab => "crontab",
            Dialect::Yaml => "yaml",
            Dialect::Supercronic => "supercronic",
        };
        text.field("dialect", dialect);
        text.field("zone", s.timezone.as_deref().unwrap_or(default_zone));
    }
    match &spec.command {
        Command::Shell(cmd) => text.field("shell-command", cmd),
        Command::Argv(argv) => {
            text.field("argv", &argv.len().to_string());
            for arg in argv {
                text.field("arg", arg);
            }
        }
        Command::Signal(sig) => {
            text.field("signal-pidfile", &sig.pidfile.to_string_lossy());
            text.field("signal", &sig.signal);
            text.field("signal-process", sig.process.as_deref().unwrap_or(""));
        }
    }
    text.opt("stdin", spec.stdin.as_deref());
    text.opt("shell", spec.shell.as_deref());
    text.opt("user", spec.user.as_deref());
    text.opt(
        "workdir",
        spec.workdir
            .as_ref()
            .map(|w| w.to_string_lossy())
            .as_deref(),
    );
    for (name, value) in spec.env.vars() {
        text.field("env", name);
        text.field("value", value);
    }
    text.opt(
        "timeout-ms",
        spec.timeout.map(|t| t.as_millis().to_string()).as_deref(),
    );
    text.field("concurrency", spec.concurrency.as_str());
    // Added only when set, so jobs without them keep the fingerprints that
    // jobrun versions before `jitter:` and `notify:` gave them.
    if let Some(jitter) = spec.jitter.filter(|j| !j.is_zero()) {
        text.field("jitter-ms", &jitter.as_millis().to_string());
    }
    if let Some(notify) = &spec.notify {
        for on in &notify.on {
            text.field("notify-on", on.as_str());
        }
        text.opt("notify-webhook", notify.webhook.as_deref());
        text.opt("notify-ping", notify.ping.as_deref());
    }
    format!("{FORMAT}:{:016x}", fnv1a(text.0.as_bytes()))
}

/// `name=LEN:value;` fields, so no value can imitate another's boundary.
#[derive(Default)]
struct Canonical(String);

impl Canonical {
    fn field(&mut self, name: &str, value: &str) {
        self.0.push_str(&format!("{name}={}:{value};", value.len()));
    }
    fn opt(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.field(name, v),
            None => self.0.push_str(&format!("{name}=-;")),
        }
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Origin, ScheduleSpec, SourceKind};

    fn spec(cmd: &str, line: usize) -> JobSpec {
        let origin = Origin::new(format!("/etc/jobrun/jobs-{line}.yaml"), line);
        let mut s = JobSpec::new(Command::Shell(cmd.into()), SourceKind::Yaml, origin.clone());
        s.schedules.push(ScheduleSpec {
            expr: "*/5 * * * *".into(),
            dialect: Dialect::Yaml,
            timezone: None,
            origin,
        });
        s
    }

    #[test]
    fn the_same_definition_from_another_file_has_the_same_fingerprint() {
        let a = fingerprint(&spec("backup.sh", 3), "UTC");
        assert_eq!(a, fingerprint(&spec("backup.sh", 40), "UTC"));
        assert!(a.starts_with("jf1:") && a.len() == 4 + 16, "{a}");
        // Fixed constants: the same on every host and every build.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn what_changes_a_run_changes_the_fingerprint() {
        let base = fingerprint(&spec("backup.sh", 3), "UTC");
        assert_ne!(base, fingerprint(&spec("backup.sh --full", 3), "UTC"));
        assert_ne!(base, fingerprint(&spec("backup.sh", 3), "Europe/Paris"));
        let mut user = spec("backup.sh", 3);
        user.user = Some("postgres".into());
        assert_ne!(base, fingerprint(&user, "UTC"));
        let mut env = spec("backup.sh", 3);
        env.env = [("MODE".to_string(), "full".to_string())]
            .into_iter()
            .collect();
        assert_ne!(base, fingerprint(&env, "UTC"));
        let mut sched = spec("backup.sh", 3);
        sched.schedules[0].expr = "*/10 * * * *".into();
        assert_ne!(base, fingerprint(&sched, "UTC"));
        // Field boundaries cannot be imitated by values.
        let mut argv = spec("x", 3);
        argv.command = Command::Argv(vec!["a;b".into()]);
        let mut argv2 = spec("x", 3);
        argv2.command = Command::Argv(vec!["a".into(), "b".into()]);
        assert_ne!(fingerprint(&argv, "UTC"), fingerprint(&argv2, "UTC"));
    }
}
