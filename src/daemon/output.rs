//! Where job output lines go while the daemon runs: its own stdout, each line
//! prefixed with the time, the job's name and the stream, or one JSON object
//! per line. In a container
//! that is `docker logs`, the first place people look.
//!
//! Lines are handed to a writer thread through a queue bounded in bytes, so a
//! stdout that is slow or not read at all never blocks the scheduler or the
//! jobs. When the queue is full, lines are dropped and counted, and the count
//! is printed once stdout keeps up again; every run's tail and byte count are
//! still recorded in the history.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;

use serde::Serialize;

use crate::clock::Clock;
use crate::fire::JobOutput;
use crate::job::RunId;
use crate::runner::Stream;

/// Formatted output waiting for stdout, at most this many bytes.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// What formatting adds to a line, at most for text (time, stream,
/// brackets) and roughly for JSON: how close to full the queue may be before
/// a line is dropped unformatted.
const FORMAT_ROOM: usize = 128;

/// Prints `TIME [name] stream: line` (text) or JSON events to stdout.
pub struct StdoutSink {
    json: bool,
    clock: Arc<dyn Clock>,
    queue: Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

struct Shared {
    queued: AtomicUsize,
    dropped: AtomicU64,
}

impl StdoutSink {
    /// Starts the writer thread.
    pub fn new(json: bool, clock: Arc<dyn Clock>) -> Self {
        let (queue, lines) = mpsc::channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("jobrun-stdout".into())
            .spawn(move || write_lines(&lines, &writer, json));
        if let Err(e) = spawned {
            // Without the thread the queue fills and every line is dropped:
            // the history still has them.
            tracing::error!(error = %e, "cannot start the output writer; job output is only recorded");
        }
        StdoutSink {
            json,
            clock,
            queue,
            shared,
        }
    }
}

fn write_lines(lines: &mpsc::Receiver<Vec<u8>>, shared: &Shared, json: bool) {
    let stdout = std::io::stdout();
    for line in lines {
        shared.queued.fetch_sub(line.len(), Ordering::Relaxed);
        let mut out = stdout.lock();
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        // A closed stdout must not take the daemon down.
        if dropped > 0 {
            let _ = if json {
                writeln!(
                    out,
                    "{{\"level\":\"WARN\",\"message\":\"stdout was not keeping up; job output lines dropped (run tails are kept in the history)\",\"dropped\":{dropped}}}"
                )
            } else {
                writeln!(
                    out,
                    "[jobrun] stdout was not keeping up: {dropped} job output line(s) dropped (run tails are kept in the history)"
                )
            };
        }
        let _ = out.write_all(&line);
    }
}

#[derive(Serialize)]
struct LineEvent<'a> {
    ts: String,
    level: &'static str,
    job: &'a str,
    run_id: RunId,
    stream: &'static str,
    line: std::borrow::Cow<'a, str>,
}

impl JobOutput for StdoutSink {
    fn line(&self, job: &str, run_id: RunId, stream: Stream, line: &[u8]) {
        // A full queue drops the line: said before formatting it, so a flood
        // into an unread stdout costs a counter, not a timestamp per line.
        // (The line, its job's name and room for the rest: a line that would
        // just have fit in the last few bytes is dropped too.)
        let at_least = line.len() + job.len() + FORMAT_ROOM;
        if self.shared.queued.load(Ordering::Relaxed) + at_least > QUEUE_BYTES {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let text = String::from_utf8_lossy(line);
        let ts = self
            .clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let mut bytes = Vec::with_capacity(line.len() + job.len() + ts.len() + 12);
        if self.json {
            let event = LineEvent {
                ts,
                level: "INFO",
                job,
                run_id,
                stream,
                line: text,
            };
            if serde_json::to_writer(&mut bytes, &event).is_err() {
                return;
            }
            bytes.push(b'\n');
        } else {
            // `TIME [job] stream: line`: when, which job and which stream, as
            // supercronic's lines say (issue 12).
            bytes.extend_from_slice(ts.as_bytes());
            bytes.extend_from_slice(b" [");
            bytes.extend_from_slice(job.as_bytes());
            bytes.extend_from_slice(b"] ");
            bytes.extend_from_slice(stream.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(text.as_bytes());
            bytes.push(b'\n');
        }
        let len = bytes.len();
        if self.shared.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.queue.send(bytes).is_err() {
            self.shared.queued.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
