//! Where job output lines go while the daemon runs: its own stdout, each line
//! prefixed with the job's name, or one JSON object per line. In a container
//! that is `docker logs`, the first place people look.

use std::io::Write;

use serde::Serialize;

use crate::clock::Clock;
use crate::fire::JobOutput;
use crate::runner::Stream;

/// Prints `[name] line` (text) or JSON events to stdout.
pub struct StdoutSink {
    pub json: bool,
    pub clock: std::sync::Arc<dyn Clock>,
}

#[derive(Serialize)]
struct LineEvent<'a> {
    ts: String,
    level: &'static str,
    job: &'a str,
    run_id: i64,
    stream: &'static str,
    line: std::borrow::Cow<'a, str>,
}

impl JobOutput for StdoutSink {
    fn line(&self, job: &str, run_id: i64, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        // A closed or full stdout must not take the daemon down: the line is
        // still counted and kept in the run's tail.
        let _ = if self.json {
            let event = LineEvent {
                ts: self
                    .clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                level: "INFO",
                job,
                run_id,
                stream: match stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                },
                line: text,
            };
            serde_json::to_writer(&mut out, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        } else {
            writeln!(out, "[{job}] {text}")
        };
    }
}
