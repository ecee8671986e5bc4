//! Rendering for humans: tables, local times and relative times ("in 3m",
//! "2h ago"). JSON output does not pass through here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::{presets, ContentArrangement, Table};

/// A borderless table with a header row. With a `width`, long cells wrap so
/// that every line fits it; without, each row is one line however long. No
/// colour: output stays readable in logs and pipes.
pub fn new_table(header: &[&str], width: Option<u16>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.iter().map(|h| h.to_string()));
    match width {
        Some(width) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table
}

/// The width tables are fitted to: the terminal's, when standard output is
/// one and `--wide` was not given; none (full width) otherwise, so that a
/// pipe or a file gets whole lines to `grep`.
pub fn table_width(wide: bool) -> Option<u16> {
    use std::io::IsTerminal;
    if wide || !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_columns()
}

/// The columns of the terminal on standard output, as the kernel reports
/// them; `COLUMNS` when the kernel does not say.
fn terminal_columns() -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
    // points at a live, properly aligned local of that type; fd 1 is only
    // read from, and an invalid fd is an error return, not undefined.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 {
        return Some(size.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|&c| c > 0)
}

/// `2026-03-29 03:00:00 CEST` in the given zone.
pub fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// "in 3m", "in 2h 5m", "4d ago", "now".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let span = humanize(secs.unsigned_abs());
    match secs {
        0 => "now".to_string(),
        s if s > 0 => format!("in {span}"),
        _ => format!("{span} ago"),
    }
}

fn humanize(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// RFC 3339 in UTC with a `Z`, as every `--json` output prints times (SPEC 5).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A run's start: to the millisecond when `jitter` moved it off its tick
/// (a jittered start is rarely a whole second), else as [`rfc3339`].
pub fn start_rfc3339(t: DateTime<Utc>, jitter: bool) -> String {
    if jitter {
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    } else {
        rfc3339(t)
    }
}

/// [`local_time`], to the millisecond for a jittered start.
pub fn start_local_time(t: DateTime<Utc>, zone: Tz, jitter: bool) -> String {
    if jitter {
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S%.3f %Z")
            .to_string()
    } else {
        local_time(t, zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let cases = [
            (0, "now"),
            (45, "in 45s"),
            (180, "in 3m"),
            (190, "in 3m 10s"),
            (7_200, "in 2h"),
            (7_500, "in 2h 5m"),
            (-7_200, "2h ago"),
            (4 * 86_400, "in 4d"),
            (-(86_400 + 3_600), "1d 1h ago"),
        ];
        for (offset, want) in cases {
            assert_eq!(relative(now + chrono::Duration::seconds(offset), now), want);
        }
    }

    #[test]
    fn a_table_with_a_width_wraps_every_line_to_it() {
        let mut table = new_table(&["NAME", "SCHEDULE", "SOURCES"], Some(60));
        let long = "/etc/cron.d/a-rather-long-file-name-for-a-cron-job:12, /var/spool/cron/crontabs/root:3";
        table.add_row(vec!["backup-database-nightly", "30 2 * * *", long]);
        let text = table.to_string();
        assert!(text.lines().count() > 2, "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 60, "{} > 60: {line:?}", line.len());
        }
        // Every word of the long cell is still there, wrapped.
        let joined: String = text.split_whitespace().collect();
        assert!(joined.contains("/var/spool/cron/crontabs/root:3"), "{text}");
        // Full width: one line a row.
        let mut table = new_table(&["NAME", "SCHEDULE", "SOURCES"], None);
        table.add_row(vec!["backup-database-nightly", "30 2 * * *", long]);
        let text = table.to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().nth(1).is_some_and(|l| l.contains(long)));
    }

    #[test]
    fn json_times_are_utc_with_z() {
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert_eq!(rfc3339(t), "2026-03-29T01:00:00Z");
        assert_eq!(
            local_time(t, chrono_tz::Europe::Berlin),
            "2026-03-29 03:00:00 CEST"
        );
    }
}
