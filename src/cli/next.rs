//! `jobrun next`: upcoming fire instants of one job, every job, or an ad-hoc
//! expression (`--expr`, which needs no configuration).

use std::io::Write;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::table::{new_table, relative, rfc3339, start_local_time, start_rfc3339};
use super::{default_zone, load_plan, report_problems, Env, GlobalArgs, EXIT_OK};
use crate::job::Dialect;
use crate::plan::Job;
use crate::schedule::{Schedule, ScheduleError};

#[derive(Debug, clap::Args)]
pub struct NextArgs {
    /// The job to show (default: every job).
    pub name: Option<String>,
    /// How many fire times to show (at most 100000).
    #[arg(long, short = 'n', default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=crate::limits::NEXT_COUNT_MAX as u64))]
    pub count: usize,
    /// Start strictly after this time: RFC 3339 (2026-03-29T01:00:00Z), or a
    /// local time "2026-03-29 02:30" in --tz or the default zone. Default: now.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// An ad-hoc cron expression (5 fields, 6 with leading seconds, or a macro).
    #[arg(long, value_name = "EXPR", conflicts_with = "name")]
    pub expr: Option<String>,
    /// Zone for --expr and for local --from times (IANA name). Default: TZ, else
    /// the system zone.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// SPEC 5's shape for one job or expression.
#[derive(Serialize)]
struct NextJson {
    job: Option<String>,
    expr: String,
    timezone: String,
    /// When the runs start: the ticks, or with `jitter` each tick plus its
    /// offset (to the millisecond).
    times: Vec<String>,
    /// The job's `jitter`, when it has one: `times` are then delayed ticks.
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter: Option<String>,
    /// With `jitter`, the tick each start belongs to (`JOBRUN_TICK`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ticks: Option<Vec<String>>,
    /// Why there are no times: the schedule can never fire (SPEC 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    never_fires: Option<String>,
}

pub fn run(
    global: &GlobalArgs,
    env: &Env,
    now: DateTime<Utc>,
    args: &NextArgs,
    out: &mut dyn Write,
) -> Result<i32> {
    let zone = match &args.tz {
        Some(name) => name.parse::<Tz>().map_err(|_| {
            anyhow::anyhow!(
                "--tz {name:?}: unknown time zone; use an IANA name such as Europe/Berlin"
            )
        })?,
        None => default_zone(env).0,
    };
    let from = match &args.from {
        Some(text) => parse_time(text, zone).with_context(|| format!("--from {text:?}"))?,
        None => now,
    };

    if let Some(expr) = &args.expr {
        // SPEC 2: a schedule that never fires gets no times and the reason, as
        // a crontab line that cron accepts would.
        let (times, never_fires) = match Schedule::parse(expr, Dialect::Yaml, zone) {
            // Not `with_capacity(count)`: the count is the user's, and
            // `@reboot` has no time at all.
            Ok(schedule) => (schedule.iter_after(from).take(args.count).collect(), None),
            Err(ScheduleError::NeverFires(reason)) => (Vec::new(), Some(reason)),
            Err(e) => bail!("--expr {expr:?}: {e}"),
        };
        let entry = NextJson {
            job: None,
            expr: expr.trim().to_string(),
            timezone: zone.name().to_string(),
            times: times.iter().copied().map(rfc3339).collect(),
            jitter: None,
            ticks: None,
            never_fires,
        };
        return print(
            out,
            args.json,
            vec![entry],
            vec![times],
            now,
            false,
            global.table_width(),
        );
    }

    let (plan, diagnostics, _) = load_plan(global, env)?;
    report_problems(&diagnostics);
    let jobs: Vec<&Job> = match &args.name {
        Some(name) => match plan.get(name) {
            Some(job) => vec![job],
            None => {
                let names: Vec<&str> = plan.jobs().iter().map(|j| j.name.as_str()).collect();
                bail!("no job named {name:?}; the jobs are: {}", names.join(", "))
            }
        },
        None => plan.jobs().iter().collect(),
    };
    let mut entries = Vec::new();
    let mut all_times = Vec::new();
    for job in jobs {
        let starts = job.starts_after(from, args.count);
        let times: Vec<DateTime<Utc>> = starts.iter().map(|s| s.at).collect();
        let jitter = job.jitter();
        let exprs: Vec<&str> = job.schedules.iter().map(|s| s.schedule.expr()).collect();
        let mut zones: Vec<&str> = job
            .schedules
            .iter()
            .map(|s| s.schedule.timezone().name())
            .collect();
        zones.dedup();
        entries.push(NextJson {
            job: Some(job.name.clone()),
            expr: exprs.join(" | "),
            timezone: if zones.is_empty() {
                zone.name().to_string()
            } else {
                zones.join(" | ")
            },
            never_fires: never_fires(job, &times),
            times: times
                .iter()
                .map(|t| start_rfc3339(*t, jitter.is_some()))
                .collect(),
            jitter: jitter.map(|j| humantime::format_duration(j).to_string()),
            ticks: jitter.map(|_| starts.iter().map(|s| rfc3339(s.tick)).collect()),
        });
        all_times.push(times);
    }
    let as_array = args.name.is_none();
    print(
        out,
        args.json,
        entries,
        all_times,
        now,
        as_array,
        global.table_width(),
    )
}

/// Why a job shows no times, when every schedule it has can never fire.
fn never_fires(job: &Job, times: &[DateTime<Utc>]) -> Option<String> {
    if !times.is_empty() || job.schedules.is_empty() {
        return None;
    }
    let reasons: Option<Vec<String>> = job
        .schedules
        .iter()
        .map(|s| {
            s.schedule
                .never_fires()
                .map(|r| format!("`{}`: {r}", s.schedule.expr()))
        })
        .collect();
    reasons.map(|r| r.join("; "))
}

fn print(
    out: &mut dyn Write,
    json: bool,
    entries: Vec<NextJson>,
    times: Vec<Vec<DateTime<Utc>>>,
    now: DateTime<Utc>,
    as_array: bool,
    width: Option<u16>,
) -> Result<i32> {
    if json {
        if as_array {
            serde_json::to_writer_pretty(&mut *out, &entries)?;
        } else if let Some(entry) = entries.first() {
            serde_json::to_writer_pretty(&mut *out, entry)?;
        }
        writeln!(out)?;
        return Ok(EXIT_OK);
    }
    let mut table = new_table(&["JOB", "EXPR", "LOCAL TIME", "UTC", "WHEN"], width);
    for (entry, times) in entries.iter().zip(&times) {
        let zone: Tz = entry
            .timezone
            .split(" | ")
            .next()
            .and_then(|z| z.parse().ok())
            .unwrap_or(Tz::UTC);
        let job = entry.job.clone().unwrap_or_else(|| "-".to_string());
        let jittered = entry.jitter.is_some();
        // Said where the times are read: they are not the ticks.
        let expr = match &entry.jitter {
            Some(j) => format!("{} +jitter {j}", entry.expr),
            None => entry.expr.clone(),
        };
        if times.is_empty() {
            let why = match &entry.never_fires {
                Some(reason) => format!("never fires: {reason}"),
                None => "no scheduled time".into(),
            };
            table.add_row(vec![
                job.clone(),
                expr.clone(),
                why,
                String::new(),
                String::new(),
            ]);
        }
        for t in times {
            table.add_row(vec![
                job.clone(),
                expr.clone(),
                start_local_time(*t, zone, jittered),
                start_rfc3339(*t, jittered),
                relative(*t, now),
            ]);
        }
    }
    writeln!(out, "{table}")?;
    Ok(EXIT_OK)
}

/// RFC 3339, or a local date and time in `zone` (the earlier instant when the
/// wall time repeats; an error when it falls in a daylight-saving gap).
fn parse_time(text: &str, zone: Tz) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let formats = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let naive = formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .with_context(|| "expected RFC 3339 such as 2026-03-29T01:00:00Z, or a local time such as \"2026-03-29 02:30\"")?;
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => bail!("{naive} does not exist in {zone} (a daylight-saving gap)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_rfc3339_and_local_times() {
        let berlin = chrono_tz::Europe::Berlin;
        let want = Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
        assert_eq!(parse_time("2026-03-29T00:30:00Z", berlin).unwrap(), want);
        assert_eq!(parse_time("2026-03-29 01:30", berlin).unwrap(), want);
        assert!(
            parse_time("2026-03-29 02:30", berlin).is_err(),
            "in the gap"
        );
        // Fall back: 02:30 happens twice; the first one is meant.
        assert_eq!(
            parse_time("2026-10-25 02:30", berlin).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()
        );
        assert!(parse_time("tomorrow", berlin).is_err());
    }
}
