//! `GET /`: the status page, rendered on the server: one HTML document with
//! its style inline and a small SVG timeline per job, no script, no
//! external asset, so it works with no network and shows what it shows
//! without JavaScript. Refreshed by reloading it.
//!
//! Every job of the schedule with its schedule, next run, last result and
//! its recent runs, oldest left: one mark per run, coloured by status, its
//! height by its duration (on a log scale, so a 2 s run and a 2 h run both
//! show); a running run is striped, a skipped tick a grey ring, a missed tick
//! an orange cross. Each mark's tooltip (`<title>`) says what it was.
//! Commands only with `--http-show-commands`; no output, no environment.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::health::{State, Verdict};
use crate::job::RunStatus;
use crate::plan::Plan;
use crate::store::{HistoryFilter, RunRecord, Store};

/// How many recent runs each timeline shows.
pub const RECENT: usize = 40;
const SLOT: f64 = 9.0;
const BAR: f64 = 7.0;
const HEIGHT: f64 = 28.0;

/// What the page is made of.
pub struct Input<'a> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub verdict: &'a Verdict,
    pub now: DateTime<Utc>,
    pub show_commands: bool,
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .3em}\
.verdict{display:inline-block;padding:.2em .7em;border-radius:1em;color:#fff;font-weight:600}\
.healthy{background:#2e7d32}.degraded{background:#ef6c00}.unhealthy{background:#c62828}\
table{border-collapse:collapse;margin-top:1em;background:#fff}\
th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #e0e0e0;vertical-align:middle}\
th{font-weight:600;background:#f0f0f0}\
code,time{white-space:nowrap}code{font-size:.9em;background:#f4f4f4;padding:0 .2em}\
.st{font-weight:600}.st.succeeded{color:#2e7d32}.st.running{color:#1565c0}\
.st.failed,.st.timed_out,.st.killed,.st.interrupted,.st.abandoned{color:#c62828}\
.st.skipped{color:#757575}.st.missed{color:#ef6c00}\
.muted{color:#757575}.legend svg{vertical-align:middle}\
";

/// The colour of a run's mark.
fn colour(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "#2e7d32",
        RunStatus::Running => "#1565c0",
        RunStatus::Skipped => "#9e9e9e",
        RunStatus::Missed => "#ef6c00",
        RunStatus::TimedOut => "#8e24aa",
        RunStatus::Failed | RunStatus::Killed | RunStatus::Interrupted | RunStatus::Abandoned => {
            "#c62828"
        }
    }
}

/// Renders the page, reading each job's recent runs from `input.store`.
pub fn render(input: &Input<'_>) -> Result<String> {
    let mut out = String::with_capacity(4096 + 2048 * input.plan.jobs().len());
    let state = match input.verdict.state {
        State::Healthy => "healthy",
        State::Degraded => "degraded",
        State::Unhealthy => "unhealthy",
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>jobrun: {state}</title><style>{STYLE}</style></head><body>\
         <h1>jobrun on {host}</h1>\
         <p><span class=\"verdict {state}\" id=\"verdict\">{state}</span> \
         <span class=\"muted\">at {now} (reload the page to refresh)</span></p>",
        host = esc(&crate::fire::this_host()),
        now = input.now.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    if !input.verdict.reasons.is_empty() {
        out.push_str("<ul id=\"reasons\">");
        for reason in &input.verdict.reasons {
            let _ = write!(out, "<li>{}</li>", esc(reason));
        }
        out.push_str("</ul>");
    }
    out.push_str(
        "<table id=\"jobs\"><thead><tr><th>Job</th><th>Schedule</th><th>Next run</th>\
         <th>Last result</th><th>Recent runs (oldest left)</th></tr></thead><tbody>",
    );
    for job in input.plan.jobs() {
        let runs = input.store.history(&HistoryFilter {
            job: Some(job.name.clone()),
            limit: Some(RECENT),
            ..Default::default()
        })?;
        // A skipped or missed tick does not hide the run that caused it.
        let last = runs
            .iter()
            .find(|r| !matches!(r.status, RunStatus::Skipped | RunStatus::Missed))
            .or(runs.first());
        let _ = write!(
            out,
            "<tr class=\"job\" data-job=\"{name}\" data-status=\"{status}\"><td class=\"name\"><b>{name}</b>",
            name = esc(&job.name),
            status = last.map_or("never", |r| r.status.as_str()),
        );
        if input.show_commands {
            let _ = write!(
                out,
                "<br><code>{}</code>",
                esc(&job.spec.command.to_string())
            );
        }
        let exprs: Vec<&str> = job.schedules.iter().map(|s| s.schedule.expr()).collect();
        let schedule = if exprs.is_empty() {
            "-".to_string()
        } else {
            exprs.join(", ")
        };
        let next = match job
            .spec
            .enabled
            .then(|| job.next_after(input.now))
            .flatten()
        {
            Some(t) => format!(
                "<time datetime=\"{iso}\">{iso}</time> <span class=\"muted\">({})</span>",
                relative(t, input.now),
                iso = t.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            None if !job.spec.enabled => "disabled".to_string(),
            None => "not scheduled".to_string(),
        };
        let _ = write!(
            out,
            "</td><td><code>{}</code></td><td class=\"next\">{next}</td><td class=\"last\">{}</td><td>",
            esc(&schedule),
            last.map_or_else(|| "<span class=\"muted\">never ran</span>".to_string(), |r| result(r, input.now)),
        );
        timeline(&mut out, &runs, input.now);
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table><p class=\"legend muted\">");
    for (status, what) in [
        (RunStatus::Succeeded, "succeeded"),
        (RunStatus::Failed, "failed, killed, interrupted"),
        (RunStatus::TimedOut, "timed out"),
        (RunStatus::Running, "running"),
        (RunStatus::Skipped, "skipped"),
        (RunStatus::Missed, "missed"),
    ] {
        let _ = write!(
            out,
            "<svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"{}\"/></svg> {what} &nbsp; ",
            colour(status)
        );
    }
    out.push_str("height: duration (log scale)</p></body></html>\n");
    Ok(out)
}

/// The last result: status, exit or signal, when.
fn result(run: &RunRecord, now: DateTime<Utc>) -> String {
    let mut text = format!("<span class=\"st {s}\">{s}</span>", s = run.status.as_str());
    if let Some(code) = run.exit_code {
        let _ = write!(text, " exit {code}");
    }
    if let Some(sig) = run.signal {
        let _ = write!(text, " signal {sig}");
    }
    let at = run.finished_at.or(run.started_at).unwrap_or(run.claimed_at);
    let _ = write!(text, " <span class=\"muted\">{}</span>", relative(at, now));
    if let Some(error) = &run.error {
        let _ = write!(text, "<br><span class=\"muted\">{}</span>", esc(error));
    }
    text
}

/// The SVG of `runs` (newest first, as the history gives them).
fn timeline(out: &mut String, runs: &[RunRecord], now: DateTime<Utc>) {
    let seconds = |r: &RunRecord| -> f64 {
        match (r.status, r.duration_ms, r.started_at) {
            (RunStatus::Running, _, Some(start)) => {
                (now - start).num_milliseconds() as f64 / 1000.0
            }
            (_, Some(ms), _) => ms as f64 / 1000.0,
            _ => 0.0,
        }
        .max(0.0)
    };
    let longest = runs.iter().map(seconds).fold(1.0_f64, f64::max);
    let width = SLOT * RECENT as f64;
    let _ = write!(
        out,
        "<svg class=\"timeline\" width=\"{width}\" height=\"{HEIGHT}\" viewBox=\"0 0 {width} {HEIGHT}\" role=\"img\" aria-label=\"{} recent runs\">\
         <defs><pattern id=\"stripes\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"2\" height=\"4\" fill=\"#1565c0\"/><rect x=\"2\" width=\"2\" height=\"4\" fill=\"#90caf9\"/></pattern></defs>\
         <line x1=\"0\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\" stroke=\"#e0e0e0\"/>",
        runs.len(),
        base = HEIGHT - 0.5,
    );
    // Oldest left, the newest in the last slot.
    let first_slot = RECENT - runs.len();
    for (i, run) in runs.iter().rev().enumerate() {
        let x = (first_slot + i) as f64 * SLOT + 1.0;
        let title = esc(&describe(run, seconds(run)));
        let status = run.status.as_str();
        match run.status {
            RunStatus::Skipped => {
                let _ = write!(
                    out,
                    "<circle class=\"run {status}\" cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"><title>{title}</title></circle>",
                    cx = x + BAR / 2.0,
                    cy = HEIGHT - 4.0,
                    c = colour(run.status),
                );
            }
            RunStatus::Missed => {
                let (l, r, t, b) = (x + 0.5, x + BAR - 0.5, HEIGHT - 7.5, HEIGHT - 1.5);
                let _ = write!(
                    out,
                    "<path class=\"run {status}\" d=\"M{l} {t}L{r} {b}M{r} {t}L{l} {b}\" stroke=\"{c}\" stroke-width=\"2\"><title>{title}</title></path>",
                    c = colour(run.status),
                );
            }
            _ => {
                let h = 5.0 + (HEIGHT - 6.0) * (1.0 + seconds(run)).ln() / (1.0 + longest).ln();
                let fill = if run.status == RunStatus::Running {
                    "url(#stripes)"
                } else {
                    colour(run.status)
                };
                let _ = write!(
                    out,
                    "<rect class=\"run {status}\" x=\"{x}\" y=\"{y:.1}\" width=\"{BAR}\" height=\"{h:.1}\" fill=\"{fill}\"><title>{title}</title></rect>",
                    y = HEIGHT - h,
                );
            }
        }
    }
    out.push_str("</svg>");
}

/// A run's tooltip.
fn describe(run: &RunRecord, seconds: f64) -> String {
    let at = run
        .started_at
        .or(run.tick)
        .unwrap_or(run.claimed_at)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut text = format!("run {} {} at {at}", run.id, run.status);
    if run.started_at.is_some() {
        let _ = write!(text, ", {}", span(seconds));
    }
    if let Some(code) = run.exit_code {
        let _ = write!(text, ", exit {code}");
    }
    if let Some(sig) = run.signal {
        let _ = write!(text, ", signal {sig}");
    }
    if let Some(error) = &run.error {
        let _ = write!(text, ": {error}");
    }
    text
}

fn span(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(seconds as u64)).to_string()
    }
}

/// `3m ago`, `in 5s`.
fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs == 0 {
        return "now".to_string();
    }
    let d = humantime::format_duration(std::time::Duration::from_secs(secs.unsigned_abs()));
    if secs >= 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

/// Text made safe for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn relative_times_read_both_ways() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        assert_eq!(relative(now + chrono::Duration::seconds(5), now), "in 5s");
        assert_eq!(
            relative(now - chrono::Duration::seconds(65), now),
            "1m 5s ago"
        );
    }
}
