//! jobrun's own logs on stderr: text for people, or one JSON object per line
//! with the same `ts` and `level` keys as the daemon's job output lines, so a
//! log collector parses both streams alike.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use super::LogFormat;
use crate::clock::{Clock, SystemClock};

/// Installs the subscriber for this process, filtered by `RUST_LOG` (default
/// `default_level`). Colour only on a terminal and never with NO_COLOR.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref(), default_level);
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is lost;
        // by default tracing-subscriber reports that with `eprintln!`, which
        // panics when stderr fails, and took the daemon down (issue 11).
        .log_internal_errors(false)
        // The builder's own cap is INFO: without this, `filter` could not
        // let a debug line through (RUST_LOG=debug showed none).
        .with_max_level(tracing::level_filters::LevelFilter::TRACE)
        .with_ansi(colour)
        .with_target(false);
    // A second initialisation (a test calling `run` twice) is harmless.
    let _ = match format {
        LogFormat::Text => builder.finish().with(filter).try_init(),
        LogFormat::Json => builder
            .event_format(JsonLine)
            .finish()
            .with(filter)
            .try_init(),
    };
}

/// The filter `RUST_LOG` asks for: a level (`debug`) and/or `target=level`
/// pairs (`info,jobrun::daemon=debug`). That is `EnvFilter`'s common subset;
/// its span and field filters are left out because they need a regex engine,
/// which costs the daemon about 250 KiB of code and its start-up allocations
/// (issue 6). A value it cannot read is reported and the default used.
fn filter_from(rust_log: Option<&str>, default_level: &str) -> Targets {
    let default = || {
        default_level
            .parse::<Targets>()
            .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
    };
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => default(),
        Some(spec) => spec.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!(
                "jobrun: RUST_LOG={spec:?} is ignored ({e}); it takes a level and/or \
                 target=level pairs, e.g. RUST_LOG=info,jobrun::daemon=debug"
            );
            default()
        }),
    }
}

/// `{"ts": "...Z", "level": "INFO", "message": "...", field: value...}`.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        fields.0.insert(
            "ts".into(),
            SystemClock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        fields
            .0
            .insert("level".into(), event.metadata().level().as_str().into());
        event.record(&mut fields);
        let line = serde_json::to_string(&fields.0).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_takes_a_level_and_target_pairs() {
        let f = filter_from(Some("warn,jobrun::daemon=debug"), "info");
        assert!(f.would_enable("jobrun::daemon", &Level::DEBUG));
        assert!(!f.would_enable("jobrun::store", &Level::INFO));
        assert!(f.would_enable("jobrun::store", &Level::WARN));
    }

    #[test]
    fn unset_empty_or_unreadable_rust_log_gives_the_default() {
        for value in [None, Some(""), Some("  "), Some("jobrun=loud")] {
            let f = filter_from(value, "info");
            assert!(f.would_enable("jobrun::fire", &Level::INFO), "{value:?}");
            assert!(!f.would_enable("jobrun::fire", &Level::DEBUG), "{value:?}");
        }
    }
}
