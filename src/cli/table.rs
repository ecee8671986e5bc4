//! Rendering for humans: tables, local times and relative times ("in 3m",
//! "2h ago"). JSON output does not pass through here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::{presets, ContentArrangement, Table};

/// A borderless table with a header row, sized to the terminal when there is
/// one. No colour: output stays readable in logs and pipes.
pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    table
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
    fn json_times_are_utc_with_z() {
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert_eq!(rfc3339(t), "2026-03-29T01:00:00Z");
        assert_eq!(
            local_time(t, chrono_tz::Europe::Berlin),
            "2026-03-29 03:00:00 CEST"
        );
    }
}
