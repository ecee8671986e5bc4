//! `/metrics`: the daemon's Prometheus metrics, kept in memory and written
//! in the text exposition format (version 0.0.4) by hand.
//!
//! The counters and each job's last run and last success start from the
//! store's history summed up at start-up ([`Metrics::seed`]: one grouped
//! query), so a restart or a reload does not reset them, and are then moved
//! by the run-event hook of `fire` ([`Metrics::observe`]). A scrape reads
//! only memory and the plan: no SQL, nothing on the firing path waits for
//! it but one short lock. The histograms (duration, start lateness) start
//! empty at each start: the history keeps no lateness, and Prometheus reads
//! a histogram that restarts as a counter reset.
//!
//! Naming follows Prometheus' rules: one `jobrun_` prefix, base units
//! (seconds), `_total` on counters, and the label `job` is jobrun's job
//! name, never a command or a run id, so the number of series is bounded by
//! the number of jobs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::fire::RunEvent;
use crate::job::{RunStatus, SourceKind, Trigger};
use crate::notify::NotifyCounters;
use crate::plan::Plan;
use crate::store::RunTotals;

/// Run durations: 0.1 s to 1 h.
const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// From the scheduled tick to the command's start: a millisecond to a minute.
const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0];

/// Why a tick did not run as scheduled: the `reason` of
/// `jobrun_job_missed_ticks_total`, from a run's status and the start of its
/// error, the same way for the history at start-up and for live events.
pub fn missed_reason(status: RunStatus, error: &str) -> Option<&'static str> {
    match status {
        RunStatus::Skipped if error.starts_with("already running") => Some("overlap"),
        RunStatus::Failed if error.starts_with("not ready") => Some("not_ready"),
        // The lease or the claim failed: the store did not answer.
        RunStatus::Missed if error.starts_with("not claimed") => Some("database_unreachable"),
        // jobrun's own failure: out of descriptors or processes, a panic.
        RunStatus::Missed => Some("not_started"),
        _ => None,
    }
}

/// A cumulative histogram over fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: &[f64]) -> Histogram {
        Histogram {
            counts: vec![0; buckets.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, buckets: &[f64], value: f64) {
        for (bound, count) in buckets.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

/// What is known of one job.
#[derive(Debug, Clone)]
struct JobState {
    last_run: Option<DateTime<Utc>>,
    last_success: Option<DateTime<Utc>>,
    last_exit: Option<i64>,
    /// Its runs that started and have not finished.
    running: Vec<crate::job::RunId>,
    missed: BTreeMap<&'static str, u64>,
    duration: Histogram,
    lateness: Histogram,
}

impl Default for JobState {
    fn default() -> Self {
        JobState {
            last_run: None,
            last_success: None,
            last_exit: None,
            running: Vec::new(),
            missed: BTreeMap::new(),
            duration: Histogram::new(&DURATION_BUCKETS),
            lateness: Histogram::new(&LATENESS_BUCKETS),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (job, status, trigger) -> runs.
    runs: BTreeMap<(String, &'static str, String), u64>,
    jobs: BTreeMap<String, JobState>,
    reloads: BTreeMap<&'static str, u64>,
    last_reload_success: Option<DateTime<Utc>>,
    claims: BTreeMap<&'static str, u64>,
}

/// The daemon's metrics. Shared by the run-event hook and the handler.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// The daemon's notifier's counters (`jobrun_notifications_total`).
    notifications: OnceLock<Arc<NotifyCounters>>,
}

/// A run's last exit code: its exit status, 128 + the signal that killed
/// it (as a shell reports it), or -1 for a run that never had one.
fn exit_value(exit_code: Option<i32>, signal: Option<i32>) -> i64 {
    match (exit_code, signal) {
        (Some(code), _) => i64::from(code),
        (None, Some(sig)) => 128 + i64::from(sig),
        (None, None) => -1,
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Exports `counters` as `jobrun_notifications_total{result}`.
    pub fn count_notifications(&self, counters: Arc<NotifyCounters>) {
        let _ = self.notifications.set(counters);
    }

    /// Counts the ticks that fell while no daemon ran, before this start
    /// (`reason="downtime"`): per job, how many (see
    /// `daemon::start_up::Downtime`). Not in the history, so counted from
    /// this start on; a restart is a counter reset to Prometheus.
    pub fn downtime(&self, missed: &[(String, u64)]) {
        let mut inner = self.lock();
        for (job, n) in missed.iter().filter(|(_, n)| *n > 0) {
            let state = inner.jobs.entry(job.clone()).or_default();
            *state.missed.entry("downtime").or_default() += n;
        }
    }

    /// Starts the counters and last runs from the history summed up.
    pub fn seed(&self, totals: &RunTotals) {
        let mut inner = self.lock();
        for t in &totals.counts {
            *inner
                .runs
                .entry((t.job.clone(), t.status.as_str(), t.trigger.clone()))
                .or_default() += t.count;
            if let Some(reason) = missed_reason(t.status, &t.error_start) {
                let job = inner.jobs.entry(t.job.clone()).or_default();
                *job.missed.entry(reason).or_default() += t.count;
            }
        }
        for last in &totals.last {
            let job = inner.jobs.entry(last.job.clone()).or_default();
            job.last_run = Some(last.finished_at);
            job.last_exit = Some(exit_value(last.exit_code, last.signal));
            job.last_success = last.last_success;
        }
    }

    /// A configuration was loaded (at start, or by a reload): `ok` when no
    /// source had an error.
    pub fn reloaded(&self, ok: bool, at: DateTime<Utc>) {
        let mut inner = self.lock();
        *inner
            .reloads
            .entry(if ok { "success" } else { "error" })
            .or_default() += 1;
        if ok {
            inner.last_reload_success = Some(at);
        }
    }

    /// The configuration the daemon started with: not a reload, but the
    /// last successful load when it had no error.
    pub fn started_with(&self, ok: bool, at: DateTime<Utc>) {
        if ok {
            self.lock().last_reload_success = Some(at);
        }
    }

    /// The claims with several hosts on one database so far, as the store
    /// counts them (read at each scrape: an atomic read per result).
    pub fn claims(&self, counts: crate::store::ClaimCounts) {
        let mut inner = self.lock();
        for (result, n) in [
            ("won", counts.won),
            ("lost", counts.lost),
            ("fenced", counts.fenced),
            ("refused", counts.refused),
        ] {
            inner.claims.insert(result, n);
        }
    }

    /// Moves the metrics by one run event.
    pub fn observe(&self, event: &RunEvent) {
        let mut inner = self.lock();
        match event {
            RunEvent::Started {
                job,
                run_id,
                trigger,
                lateness,
                ..
            } => {
                let state = inner.jobs.entry(job.clone()).or_default();
                state.running.push(*run_id);
                // Lateness is the scheduler's: a catch-up or a retry starts
                // long after its tick on purpose.
                if let (Trigger::Schedule, Some(late)) = (trigger, lateness) {
                    state
                        .lateness
                        .observe(&LATENESS_BUCKETS, late.as_secs_f64());
                }
            }
            RunEvent::Finished {
                job,
                run_id,
                trigger,
                status,
                exit_code,
                signal,
                duration,
                error,
                started_at,
                finished_at,
                ..
            } => {
                count(&mut inner, job, *status, *trigger);
                let state = inner.jobs.entry(job.clone()).or_default();
                state.running.retain(|id| id != run_id);
                if !matches!(status, RunStatus::Skipped | RunStatus::Missed) {
                    state.last_run = Some(*finished_at);
                    state.last_exit = Some(exit_value(*exit_code, *signal));
                }
                if *status == RunStatus::Succeeded {
                    state.last_success = Some(*finished_at);
                }
                if let (Some(_), Some(d)) = (started_at, duration) {
                    state.duration.observe(&DURATION_BUCKETS, d.as_secs_f64());
                }
                if let Some(reason) = missed_reason(*status, error.as_deref().unwrap_or("")) {
                    *state.missed.entry(reason).or_default() += 1;
                }
            }
            RunEvent::Skipped {
                job,
                trigger,
                reason,
                ..
            } => {
                count(&mut inner, job, RunStatus::Skipped, *trigger);
                if let Some(why) = missed_reason(RunStatus::Skipped, reason) {
                    let state = inner.jobs.entry(job.clone()).or_default();
                    *state.missed.entry(why).or_default() += 1;
                }
            }
            RunEvent::Missed {
                job,
                trigger,
                reason,
                ..
            } => {
                count(&mut inner, job, RunStatus::Missed, *trigger);
                if let Some(why) = missed_reason(RunStatus::Missed, reason) {
                    let state = inner.jobs.entry(job.clone()).or_default();
                    *state.missed.entry(why).or_default() += 1;
                }
            }
        }
    }

    /// The text exposition of every metric at `now`, for `plan`.
    pub fn render(&self, plan: &Plan, now: DateTime<Utc>) -> String {
        let inner = self.lock();
        let mut out = String::with_capacity(256 * (inner.jobs.len() + plan.jobs().len() + 8));
        let w = &mut out;

        family(w, "jobrun_job_runs_total", "counter", "Finished runs (and skipped and missed ticks) by job, status and trigger, as the history records them.");
        for ((job, status, trigger), n) in &inner.runs {
            sample(
                w,
                "jobrun_job_runs_total",
                &[("job", job), ("status", status), ("trigger", trigger)],
                *n as f64,
            );
        }

        histogram_family(
            w,
            "jobrun_job_run_duration_seconds",
            "How long runs took, from the command's start to its end (since this daemon started).",
            &DURATION_BUCKETS,
            inner.jobs.iter().map(|(job, s)| (job, &s.duration)),
        );

        family(w, "jobrun_job_last_run_timestamp_seconds", "gauge", "When the job's latest run (not a skipped or missed tick) ended, in seconds since the epoch.");
        for (job, s) in &inner.jobs {
            if let Some(t) = s.last_run {
                sample(
                    w,
                    "jobrun_job_last_run_timestamp_seconds",
                    &[("job", job)],
                    epoch(t),
                );
            }
        }
        family(
            w,
            "jobrun_job_last_success_timestamp_seconds",
            "gauge",
            "When the job's latest successful run ended, in seconds since the epoch.",
        );
        for (job, s) in &inner.jobs {
            if let Some(t) = s.last_success {
                sample(
                    w,
                    "jobrun_job_last_success_timestamp_seconds",
                    &[("job", job)],
                    epoch(t),
                );
            }
        }
        family(w, "jobrun_job_last_exit_code", "gauge", "The exit code of the job's latest run: 128+N when signal N killed it, -1 when it had none.");
        for (job, s) in &inner.jobs {
            if let Some(code) = s.last_exit {
                sample(w, "jobrun_job_last_exit_code", &[("job", job)], code as f64);
            }
        }
        family(
            w,
            "jobrun_job_next_run_timestamp_seconds",
            "gauge",
            "When the job's next scheduled run starts (its tick, plus its jitter), in seconds since the epoch.",
        );
        for job in plan.jobs() {
            // With `jitter`, when the run starts (as `next` and `list` say).
            if let Some(t) = job
                .spec
                .enabled
                .then(|| job.next_start_after(now).map(|s| s.at))
                .flatten()
            {
                sample(
                    w,
                    "jobrun_job_next_run_timestamp_seconds",
                    &[("job", &job.name)],
                    epoch(t),
                );
            }
        }
        family(
            w,
            "jobrun_job_running",
            "gauge",
            "Runs of the job this daemon supervises now.",
        );
        for job in plan.jobs() {
            let n = inner.jobs.get(&job.name).map_or(0, |s| s.running.len());
            sample(w, "jobrun_job_running", &[("job", &job.name)], n as f64);
        }

        histogram_family(
            w,
            "jobrun_job_start_lateness_seconds",
            "From a scheduled tick to its command's start (since this daemon started).",
            &LATENESS_BUCKETS,
            inner.jobs.iter().map(|(job, s)| (job, &s.lateness)),
        );

        family(w, "jobrun_job_missed_ticks_total", "counter", "Ticks that did not run as scheduled: overlap (the previous run still ran), not_ready (requires: failed), database_unreachable (the claim failed), not_started (jobrun out of resources), downtime (no daemon ran; counted at start).");
        for (job, s) in &inner.jobs {
            for (reason, n) in &s.missed {
                sample(
                    w,
                    "jobrun_job_missed_ticks_total",
                    &[("job", job), ("reason", reason)],
                    *n as f64,
                );
            }
        }

        family(w, "jobrun_config_reloads_total", "counter", "Reloads of the sources since this daemon started: success, or error (some entry or file left out or kept at its previous version).");
        for (result, n) in &inner.reloads {
            sample(
                w,
                "jobrun_config_reloads_total",
                &[("result", result)],
                *n as f64,
            );
        }
        family(
            w,
            "jobrun_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the sources were last loaded without an error, in seconds since the epoch.",
        );
        if let Some(t) = inner.last_reload_success {
            sample(
                w,
                "jobrun_config_last_reload_success_timestamp_seconds",
                &[],
                epoch(t),
            );
        }

        family(
            w,
            "jobrun_jobs",
            "gauge",
            "Jobs in the schedule, by the kind of source that defines them.",
        );
        let mut by_source: BTreeMap<&str, u64> = [
            SourceKind::Yaml,
            SourceKind::Crontab,
            SourceKind::Supercronic,
        ]
        .into_iter()
        .map(|k| (k.as_str(), 0))
        .collect();
        for job in plan.jobs() {
            *by_source.entry(job.spec.kind.as_str()).or_default() += 1;
        }
        for (source, n) in &by_source {
            sample(w, "jobrun_jobs", &[("source", source)], *n as f64);
        }

        family(
            w,
            "jobrun_claims_total",
            "counter",
            "Claims of ticks with several hosts on one database: won, lost, fenced, refused.",
        );
        for (result, n) in &inner.claims {
            sample(w, "jobrun_claims_total", &[("result", result)], *n as f64);
        }

        if let Some(counters) = self.notifications.get() {
            family(w, "jobrun_notifications_total", "counter", "Notifications (notify: webhooks and pings) since this daemon started: sent (answered 2xx), failed (every try failed), dropped (the queue was full).");
            for (result, n) in counters.results() {
                sample(
                    w,
                    "jobrun_notifications_total",
                    &[("result", result)],
                    n as f64,
                );
            }
        }

        family(
            w,
            "jobrun_build_info",
            "gauge",
            "The running jobrun's version; always 1.",
        );
        sample(
            w,
            "jobrun_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        out
    }
}

fn count(inner: &mut Inner, job: &str, status: RunStatus, trigger: Trigger) {
    *inner
        .runs
        .entry((
            job.to_string(),
            status.as_str(),
            trigger.as_str().to_string(),
        ))
        .or_default() += 1;
}

fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// `# HELP` and `# TYPE` of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line; label values escaped as the format says.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A sample value: integers without a fraction, `+Inf` spelled as the format wants.
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn histogram_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[f64],
    series: impl Iterator<Item = (&'a String, &'a Histogram)>,
) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (job, h) in series.filter(|(_, h)| h.count > 0) {
        for (bound, n) in buckets.iter().zip(&h.counts) {
            sample(
                out,
                &bucket,
                &[("job", job), ("le", &number(*bound))],
                *n as f64,
            );
        }
        sample(
            out,
            &bucket,
            &[("job", job), ("le", "+Inf")],
            h.count as f64,
        );
        sample(out, &format!("{name}_sum"), &[("job", job)], h.sum);
        sample(
            out,
            &format!("{name}_count"),
            &[("job", job)],
            h.count as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::RunId;
    use std::time::Duration;

    #[test]
    fn notification_counters_are_exported_by_result() {
        let m = Metrics::default();
        assert!(!m
            .render(&Plan::default(), at(0))
            .contains("jobrun_notifications_total"));
        let counters = Arc::new(NotifyCounters::default());
        m.count_notifications(Arc::clone(&counters));
        counters
            .sent
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        counters
            .failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = m.render(&Plan::default(), at(0));
        for line in [
            "# TYPE jobrun_notifications_total counter",
            "jobrun_notifications_total{result=\"sent\"} 3",
            "jobrun_notifications_total{result=\"failed\"} 1",
            "jobrun_notifications_total{result=\"dropped\"} 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    fn finished(
        job: &str,
        id: i64,
        status: RunStatus,
        exit: Option<i32>,
        error: Option<&str>,
    ) -> RunEvent {
        RunEvent::Finished {
            job: job.into(),
            run_id: RunId(id),
            trigger: Trigger::Schedule,
            tick: Some(at(0)),
            attempt: 1,
            status,
            exit_code: exit,
            signal: None,
            duration: Some(Duration::from_millis(1500)),
            error: error.map(str::to_string),
            started_at: Some(at(id)),
            finished_at: at(id + 1),
            replaced: false,
        }
    }

    #[test]
    fn events_move_counters_last_runs_and_histograms() {
        let m = Metrics::default();
        m.observe(&RunEvent::Started {
            job: "a\"b".into(),
            run_id: RunId(1),
            trigger: Trigger::Schedule,
            tick: Some(at(0)),
            started_at: at(0),
            lateness: Some(Duration::from_millis(3)),
        });
        let text = m.render(&Plan::default(), at(0));
        assert!(
            text.contains(
                "jobrun_job_start_lateness_seconds_bucket{job=\"a\\\"b\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        m.observe(&finished("a\"b", 1, RunStatus::Failed, Some(3), None));
        m.observe(&finished("a\"b", 2, RunStatus::Succeeded, Some(0), None));
        m.observe(&finished(
            "c",
            3,
            RunStatus::Failed,
            None,
            Some("not ready: db"),
        ));
        let text = m.render(&Plan::default(), at(0));
        for line in [
            "jobrun_job_runs_total{job=\"a\\\"b\",status=\"failed\",trigger=\"schedule\"} 1",
            "jobrun_job_runs_total{job=\"a\\\"b\",status=\"succeeded\",trigger=\"schedule\"} 1",
            "jobrun_job_last_success_timestamp_seconds{job=\"a\\\"b\"} 1780000003",
            "jobrun_job_last_exit_code{job=\"a\\\"b\"} 0",
            "jobrun_job_last_exit_code{job=\"c\"} -1",
            "jobrun_job_missed_ticks_total{job=\"c\",reason=\"not_ready\"} 1",
            "jobrun_job_run_duration_seconds_bucket{job=\"a\\\"b\",le=\"2.5\"} 2",
            "jobrun_job_run_duration_seconds_bucket{job=\"a\\\"b\",le=\"1\"} 0",
            "jobrun_job_run_duration_seconds_sum{job=\"a\\\"b\"} 3",
            "jobrun_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("last_success_timestamp_seconds{job=\"c\"}"),
            "{text}"
        );
    }

    #[test]
    fn seeding_from_the_history_adds_to_what_follows() {
        let m = Metrics::default();
        m.seed(&RunTotals {
            counts: vec![crate::store::RunTotal {
                job: "a".into(),
                status: RunStatus::Skipped,
                trigger: "schedule".into(),
                error_start: "already running (run 4".into(),
                count: 5,
            }],
            last: vec![crate::store::LastRuns {
                job: "a".into(),
                finished_at: at(10),
                exit_code: None,
                signal: Some(9),
                last_success: Some(at(5)),
            }],
        });
        m.observe(&RunEvent::Skipped {
            job: "a".into(),
            run_id: RunId(9),
            trigger: Trigger::Schedule,
            tick: Some(at(20)),
            reason: "already running (its lock is held)".into(),
            at: at(20),
        });
        let text = m.render(&Plan::default(), at(30));
        for line in [
            "jobrun_job_runs_total{job=\"a\",status=\"skipped\",trigger=\"schedule\"} 6",
            "jobrun_job_missed_ticks_total{job=\"a\",reason=\"overlap\"} 6",
            "jobrun_job_last_exit_code{job=\"a\"} 137",
            "jobrun_job_last_success_timestamp_seconds{job=\"a\"} 1780000005",
            "jobrun_job_last_run_timestamp_seconds{job=\"a\"} 1780000010",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn numbers_are_written_as_the_format_wants() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
    }
}
