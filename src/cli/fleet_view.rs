//! How `status` prints the fleet sharing a PostgreSQL state: every daemon
//! with its host, state, last beat and clock offset, a warning for a clock
//! more than a second off the server's, and the jobs whose definitions differ
//! between live hosts (configuration drift).

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::table::{local_time, new_table, relative};
use crate::store::Fleet;

/// A host clock further than this from the server's is pointed out.
const OFFSET_WARNING_MS: i64 = 1_000;

pub fn write_fleet(
    out: &mut dyn Write,
    fleet: &Fleet,
    now: DateTime<Utc>,
    zone: Tz,
    width: Option<u16>,
) -> Result<()> {
    let alive = fleet.members.iter().filter(|m| m.state == "alive").count();
    writeln!(out, "fleet: {alive} daemon(s) alive")?;
    let mut table = new_table(
        &[
            "HOST",
            "EPOCH",
            "PID",
            "STATE",
            "STARTED",
            "LAST BEAT",
            "CLOCK OFFSET",
        ],
        width,
    );
    for m in &fleet.members {
        let state = match &m.reason {
            Some(reason) => format!("{} ({reason})", m.state),
            None => m.state.clone(),
        };
        let offset = m.clock_offset_ms.map_or_else(
            || "-".to_string(),
            |ms| format!("{:+.3} s", ms as f64 / 1000.0),
        );
        table.add_row(vec![
            m.host.clone(),
            m.epoch.to_string(),
            m.pid.to_string(),
            state,
            local_time(m.started_at, zone),
            relative(m.last_beat, now),
            offset,
        ]);
    }
    writeln!(out, "{table}")?;
    for m in fleet.members.iter().filter(|m| m.state == "alive") {
        if let Some(ms) = m.clock_offset_ms.filter(|ms| ms.abs() > OFFSET_WARNING_MS) {
            writeln!(
                out,
                "warning: the clock of {} is {:.1} s {} the database server's (check NTP)",
                m.host,
                ms.abs() as f64 / 1000.0,
                if ms > 0 { "ahead of" } else { "behind" }
            )?;
        }
    }
    for d in &fleet.drift {
        writeln!(
            out,
            "drift: job {} on {} has definition {}, the fleet claims it with {} (from {}); its \
             claims there are refused",
            d.job, d.host, d.fingerprint, d.fleet_fingerprint, d.fleet_host
        )?;
    }
    Ok(())
}
