//! The child's pipes, from jobrun's side: its standard input written, and
//! each output stream read to its end, counted, kept in a bounded tail and
//! handed to the sink line by line (lines longer than [`LINE_CAP`] in
//! pieces). Memory stays bounded whatever the job prints.
//!
//! Must not know how the child is started, signalled or waited for.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tracing::warn;

use super::{OutputSink, Stream, LINE_CAP};

/// Bytes asked of a pipe per read: one default Linux pipe buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Writes `bytes` to the child's standard input, then closes it.
pub(super) fn feed_stdin(
    job: Arc<str>,
    mut pipe: Box<dyn AsyncWrite + Send + Unpin>,
    bytes: Vec<u8>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A job that exits without reading all of its input is not an
        // error: cron ignores that too.
        let result = match pipe.write_all(&bytes).await {
            Ok(()) => pipe.shutdown().await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                warn!(job = %job, error = %e, "writing the job's standard input");
            }
            _ => {}
        }
    })
}

/// Reads one output stream to its end: counts it, keeps its share of the
/// tail, and hands it to the sink line by line.
pub(super) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    job: Arc<str>,
    sink: Arc<dyn OutputSink>,
    capture: Arc<Mutex<Capture>>,
) {
    // Read into spare capacity, never zeroed: a job that prints one line
    // costs a page, not the whole chunk (1,000 jobs at once: 128 MiB of
    // zeroed buffers before).
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut lines = LineSplitter::new(LINE_CAP);
    let mut emit = |line: &[u8]| sink.line(&job, stream, line);
    loop {
        buf.clear();
        let n = match reader.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(job = %job, ?stream, error = %e, "reading the job's output");
                break;
            }
        };
        lock(&capture).record(&buf[..n]);
        lines.push(&buf[..n], &mut emit);
    }
    lines.finish(&mut emit);
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a byte count or a ring buffer in a state
    // worse than slightly stale, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The byte count and the ring buffer of the last bytes of combined output.
#[derive(Debug)]
pub(super) struct Capture {
    total: u64,
    tail: VecDeque<u8>,
    cap: usize,
}

impl Capture {
    pub(super) fn new(cap: usize) -> Self {
        Capture {
            total: 0,
            tail: VecDeque::new(),
            cap,
        }
    }

    pub(super) fn record(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if data.len() >= self.cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    pub(super) fn snapshot(&self) -> (u64, Vec<u8>) {
        (self.total, self.tail.iter().copied().collect())
    }
}

/// Splits a byte stream into lines of at most `cap` bytes, holding at most
/// one partial line.
#[derive(Debug)]
pub(super) struct LineSplitter {
    line: Vec<u8>,
    cap: usize,
}

impl LineSplitter {
    pub(super) fn new(cap: usize) -> Self {
        LineSplitter {
            line: Vec::new(),
            cap,
        }
    }

    pub(super) fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.append(&data[..end], emit);
                    emit(&self.line);
                    self.line.clear();
                    data = &data[end + 1..];
                }
                None => {
                    self.append(data, emit);
                    data = &[];
                }
            }
        }
    }

    /// Adds bytes with no newline among them. A full buffer is emitted only
    /// when more bytes follow, so a line of exactly `cap` bytes is one piece
    /// and not a piece plus an empty line.
    fn append(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            if self.line.len() == self.cap {
                emit(&self.line);
                self.line.clear();
            }
            let take = (self.cap - self.line.len()).min(data.len());
            self.line.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Emits a last line that had no newline.
    pub(super) fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            emit(&self.line);
            self.line.clear();
        }
    }
}
