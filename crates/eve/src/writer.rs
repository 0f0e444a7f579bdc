//! The EVE output shared by every worker thread: a file opened for append
//! (created if missing) or stdout, written in whole lines under a mutex, so
//! lines of different threads never interleave.
//!
//! Workers build their lines in a buffer of their own and hand it over in
//! one [`EveWriter::write_lines`] call (at about 64 KiB, and at each tick
//! and at the end), so the lock is taken once per many records. A failed
//! write does not panic or stop the capture: it is counted, the first error
//! is remembered and logged, and [`EveWriter::finish`] reports it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::json::Object;
use crate::timestamp::format_timestamp;

/// How much a worker buffers before handing its lines over.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Keys written first, in this order, when an event is written from a
/// `serde_json::Value` (whose own order is alphabetical), as Suricata
/// orders them.
const LEADING_KEYS: [&str; 4] = ["timestamp", "flow_id", "in_iface", "event_type"];

/// The EVE output: one complete JSON object per line.
pub struct EveWriter {
    target: String,
    out: Mutex<Box<dyn Write + Send>>,
    lines: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<(io::ErrorKind, String)>>,
}

impl std::fmt::Debug for EveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EveWriter")
            .field("target", &self.target)
            .field("lines", &self.lines_written())
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}

impl EveWriter {
    /// Opens `path` for append, creating it if missing; `-` is stdout.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        if path == Path::new("-") {
            return Ok(Self::stdout());
        }
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Self::from_writer(path.display().to_string(), file))
    }

    /// Writes to stdout.
    pub fn stdout() -> Self {
        Self::from_writer("-", io::stdout())
    }

    /// Writes to `out` (named `target` in errors): for tests and embedders.
    pub fn from_writer(target: impl Into<String>, out: impl Write + Send + 'static) -> Self {
        Self {
            target: target.into(),
            out: Mutex::new(Box::new(out)),
            lines: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// Where it writes: the path, or `-`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Writes `lines`, complete lines each ending in `\n`, at once: no other
    /// thread's line comes between them. A failure is counted and
    /// remembered as well as returned; text not ending in a newline is
    /// refused unwritten.
    pub fn write_lines(&self, lines: &[u8]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if lines.last() != Some(&b'\n') {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "EVE output must be whole lines");
            self.record(&error);
            return Err(error);
        }
        let result = self.out.lock().unwrap_or_else(PoisonError::into_inner).write_all(lines);
        match result {
            Ok(()) => {
                let count = memchr::memchr_iter(b'\n', lines).count() as u64;
                self.lines.fetch_add(count, Ordering::Relaxed);
                self.bytes.fetch_add(lines.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                self.record(&error);
                Err(error)
            }
        }
    }

    /// Writes one event as a line (`timestamp`, `flow_id`, `in_iface`,
    /// `event_type` first when present). A failure is counted and
    /// remembered, and reported by [`EveWriter::finish`].
    pub fn write_event(&self, event: &Value) {
        let mut line = Vec::with_capacity(512);
        render_event(&mut line, event);
        let _ = self.write_lines(&line);
    }

    /// Flushes what the output buffers.
    pub fn flush(&self) -> io::Result<()> {
        let result = self.out.lock().unwrap_or_else(PoisonError::into_inner).flush();
        if let Err(error) = &result {
            self.record(error);
        }
        result
    }

    /// The final flush: an error if it fails or if any write failed before
    /// (the first failure, with how many there were).
    pub fn finish(&self) -> io::Result<()> {
        self.flush()?;
        let errors = self.errors();
        match self.first_error.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            Some((kind, message)) if errors > 0 => Err(io::Error::new(
                *kind,
                format!(
                    "{errors} write(s) to the EVE output {} failed, the first: {message}",
                    self.target
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Lines written.
    pub fn lines_written(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Writes and flushes that failed.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The first failure, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, message)| message.clone())
    }

    fn record(&self, error: &io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            tracing::warn!(target_file = %self.target, %error, "writing the EVE output failed");
            *first = Some((error.kind(), error.to_string()));
        }
    }
}

/// Appends `event` and a newline to `out`, Suricata's leading keys first.
fn render_event(out: &mut Vec<u8>, event: &Value) {
    match event {
        Value::Object(map) => {
            let mut object = Object::begin(out);
            for key in LEADING_KEYS {
                if let Some(value) = map.get(key) {
                    object.value(key, value);
                }
            }
            for (key, value) in map {
                if !LEADING_KEYS.contains(&key.as_str()) {
                    object.escaped_key_value(key, value);
                }
            }
            object.end();
        }
        // Serializing a Value into a Vec cannot fail.
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
    out.push(b'\n');
}

/// A Suricata `stats` event at `timestamp_ns` whose `stats` object is
/// `stats`.
pub fn stats_event(timestamp_ns: u64, stats: Value) -> Value {
    serde_json::json!({
        "timestamp": format_timestamp(timestamp_ns),
        "event_type": "stats",
        "stats": stats,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn lines_from_many_threads_never_interleave_and_the_file_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        std::fs::write(&path, "{\"before\":true}\n").unwrap();
        let writer = Arc::new(EveWriter::open(&path).unwrap());
        const THREADS: usize = 8;
        const LINES: usize = 3_000;
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let writer = Arc::clone(&writer);
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    for n in 0..LINES {
                        // Lines of very different lengths, some longer than
                        // a pipe buffer, so a torn write would show.
                        let pad = "x".repeat((n * 37 + thread * 101) % 5_000);
                        let event = serde_json::json!({"event_type": "test", "thread": thread, "n": n, "pad": pad});
                        render_event(&mut buffer, &event);
                        if buffer.len() >= FLUSH_BYTES {
                            writer.write_lines(&buffer).unwrap();
                            buffer.clear();
                        }
                    }
                    writer.write_lines(&buffer).unwrap();
                });
            }
        });
        writer.finish().unwrap();
        assert_eq!(writer.lines_written(), (THREADS * LINES) as u64);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = BTreeSet::new();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("{\"before\":true}"));
        for line in lines {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:.80}"));
            assert!(line.starts_with("{\"event_type\":\"test\","), "{line:.80}");
            let key = (value["thread"].as_u64().unwrap(), value["n"].as_u64().unwrap());
            assert!(seen.insert(key), "{key:?} twice");
        }
        assert_eq!(seen.len(), THREADS * LINES);
        assert_eq!(writer.bytes_written() + 16, text.len() as u64);
    }

    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failures_are_counted_remembered_and_reported_at_the_end() {
        let writer = EveWriter::from_writer("/full/eve.json", Failing);
        assert_eq!(
            writer.write_lines(b"{}\n").unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        writer.write_event(&serde_json::json!({"event_type": "stats"}));
        assert_eq!(writer.errors(), 2);
        assert_eq!(writer.lines_written(), 0);
        assert_eq!(writer.first_error().as_deref(), Some("disk full"));
        let error = writer.finish().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        let message = error.to_string();
        assert!(
            message.contains("2 write(s)") && message.contains("/full/eve.json"),
            "{message}"
        );
    }

    #[test]
    fn partial_lines_are_refused_and_events_lead_with_suricatas_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let writer = EveWriter::open(&path).unwrap();
        assert_eq!(
            writer.write_lines(b"{\"a\":1}").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        writer.write_event(&stats_event(
            1_795_761_154_000_000_000,
            serde_json::json!({"uptime": 5, "a\"b": 1}),
        ));
        writer.finish().unwrap_err();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"timestamp\":\"2026-11-27T06:32:34.000000+0000\",\"event_type\":\"stats\",\
             \"stats\":{\"a\\\"b\":1,\"uptime\":5}}\n"
        );
    }
}
