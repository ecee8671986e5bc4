//! The health rule of `jobrun status` (and of a future `/healthz`), pure:
//! whether a daemon is alive, the source errors it recorded, and each job's
//! latest run in; a verdict with its reasons out. Knows no store, clock or
//! process: the caller reads the state and judges liveness.

use crate::job::RunStatus;

/// How things stand, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Healthy,
    /// The daemon runs, but some source has an error: a job of it never runs
    /// (cron's leniency keeps the rest running).
    Degraded,
    /// No daemon, or a job's latest run failed.
    Unhealthy,
}

/// The verdict and why, one line per reason (`degraded: SOURCE:LINE: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn healthy(&self) -> bool {
        self.state == State::Healthy
    }
}

/// Judges: `daemon_alive` (a daemon beat recently and its process exists),
/// the source errors it recorded at start or its last reload, and each job's
/// latest run (job, status).
pub fn judge<'a>(
    daemon_alive: bool,
    source_errors: &[String],
    latest: impl IntoIterator<Item = (&'a str, RunStatus)>,
) -> Verdict {
    let mut state = State::Healthy;
    let mut reasons = Vec::new();
    if !daemon_alive {
        state = State::Unhealthy;
        reasons.push("unhealthy: no daemon is running".to_string());
    }
    let failing: Vec<&str> = latest
        .into_iter()
        .filter(|(_, status)| status.is_failure())
        .map(|(job, _)| job)
        .collect();
    if !failing.is_empty() {
        state = State::Unhealthy;
        reasons.push(format!(
            "unhealthy: {} job(s) whose latest run failed: {}",
            failing.len(),
            failing.join(", ")
        ));
    }
    // Only a running daemon's record says what its sources are now.
    if daemon_alive && !source_errors.is_empty() {
        state = state.max(State::Degraded);
        reasons.extend(source_errors.iter().map(|e| format!("degraded: {e}")));
    }
    Verdict { state, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_error_makes_a_live_daemon_degraded_naming_it() {
        let errors = vec!["/etc/cron.d/x:3: error: bad minute".to_string()];
        let v = judge(true, &errors, [("a", RunStatus::Succeeded)]);
        assert_eq!(v.state, State::Degraded);
        assert_eq!(v.reasons, ["degraded: /etc/cron.d/x:3: error: bad minute"]);
        assert!(!v.healthy());
    }

    #[test]
    fn healthy_needs_a_daemon_clean_sources_and_no_failed_latest_run() {
        assert!(judge(true, &[], [("a", RunStatus::Succeeded)]).healthy());
        let v = judge(false, &[], []);
        assert_eq!(v.state, State::Unhealthy);
        let v = judge(true, &["e".into()], [("a", RunStatus::Failed)]);
        assert_eq!(v.state, State::Unhealthy, "the worse state wins");
        assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
        assert!(v.reasons[0].contains("latest run failed: a"));
    }
}
