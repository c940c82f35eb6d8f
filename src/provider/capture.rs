//! Keeping at most so many bytes of a stream (a child's stdout/stderr, an HTTP body)
//! while still reading all of it.
//!
//! A child that prints gigabytes must neither exhaust faultline's memory nor block on
//! a full pipe: past the limit, bytes are read and dropped, only counted. The kept part
//! is cut on a UTF-8 character boundary, so the text an activity's tolerance sees is
//! never a broken character, and the output records what was cut
//! (`"truncated": {"stdout": {"kept": N, "total": M}}`).

use serde_json::{json, Map, Value};

/// The default limit on what is kept of each stream and body: 4 MiB.
///
/// Large enough for any output a tolerance reasonably inspects (a Prometheus page, a
/// JSON listing), small enough that a run stays in tens of MiB whatever children print.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 4 * 1024 * 1024;

/// Reading size: large enough that a fast writer costs few reads.
const CHUNK: usize = 64 * 1024;

/// A stream read up to its end, of which at most `limit` bytes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capped {
    /// The kept bytes (at most the limit, cut back to a character boundary once
    /// [`Capped::finish`]ed).
    pub bytes: Vec<u8>,
    /// Every byte read, kept or not.
    pub total: u64,
    limit: u64,
}

impl Capped {
    /// An empty capture keeping at most `limit` bytes.
    pub fn new(limit: u64) -> Capped {
        Capped {
            bytes: Vec::new(),
            total: 0,
            limit,
        }
    }

    /// Take in the next piece of the stream.
    pub fn push(&mut self, data: &[u8]) {
        // `usize` is at least 64 bits where faultline runs; saturate anyway.
        let room = usize::try_from(self.limit.saturating_sub(self.bytes.len() as u64))
            .unwrap_or(usize::MAX);
        let keep = room.min(data.len());
        self.bytes.extend_from_slice(&data[..keep]);
        self.total = self.total.saturating_add(data.len() as u64);
    }

    /// Whether bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }

    /// The stream is over: when something was cut, drop a character split by the cut.
    pub fn finish(mut self) -> Capped {
        if self.truncated() {
            let end = utf8_end(&self.bytes);
            self.bytes.truncate(end);
        }
        self
    }

    /// The kept bytes as text (invalid UTF-8 replaced, as before any limit existed).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// `{"kept": N, "total": M}`, for the output's `truncated` key.
    pub fn record(&self) -> Value {
        json!({"kept": self.bytes.len(), "total": self.total})
    }

    /// "stdout cut to its first 1048576 of 20971520 bytes", for warnings and messages.
    pub fn describe(&self, what: &str) -> String {
        format!(
            "{what} cut to its first {} of {} bytes",
            self.bytes.len(),
            self.total
        )
    }
}

/// The length of `b` without a trailing multi-byte character that the cut split.
/// Bytes that were not UTF-8 in the first place are left alone.
pub fn utf8_end(b: &[u8]) -> usize {
    // A character is at most 4 bytes: its lead byte is within the last 4.
    for back in 1..=b.len().min(4) {
        let i = b.len() - back;
        let lead = b[i];
        if lead & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        let width = match lead {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1, // not a lead byte: not UTF-8, nothing to protect
        };
        return if back < width { i } else { b.len() };
    }
    b.len()
}

/// Read `r` to its end, keeping at most `limit` bytes. Reading never stops early, so a
/// child writing to the other end never blocks on a full pipe.
pub async fn read_capped<R>(r: Option<R>, limit: u64) -> std::io::Result<Capped>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut out = Capped::new(limit);
    let Some(mut r) = r else {
        return Ok(out);
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return Ok(out.finish()),
            Ok(n) => out.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `truncated` object for an output, from `(key, capture)` pairs; `None` when
/// nothing was cut (the output then keeps exactly the Chaos Toolkit's shape).
pub fn truncation(parts: &[(&str, &Capped)]) -> Option<Value> {
    let cut: Map<String, Value> = parts
        .iter()
        .filter(|(_, c)| c.truncated())
        .map(|(k, c)| ((*k).to_string(), c.record()))
        .collect();
    (!cut.is_empty()).then_some(Value::Object(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_them_all() {
        let mut c = Capped::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ij");
        let c = c.finish();
        assert_eq!(c.bytes, b"abcde");
        assert_eq!(c.total, 10);
        assert!(c.truncated());
        assert_eq!(c.record(), json!({"kept": 5, "total": 10}));
    }

    #[test]
    fn under_the_limit_nothing_is_recorded() {
        let mut c = Capped::new(5);
        c.push(b"abcde");
        let c = c.finish();
        assert!(!c.truncated());
        assert_eq!(c.text(), "abcde");
        assert_eq!(truncation(&[("stdout", &c)]), None);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is 2 bytes, "€" 3, "😀" 4: cut inside each, and right after each.
        for (text, limit, kept) in [
            ("aé", 2, "a"),
            ("aé", 3, "aé"),
            ("a€", 2, "a"),
            ("a€", 3, "a"),
            ("a€", 4, "a€"),
            ("a😀", 4, "a"),
            ("a😀", 5, "a😀"),
        ] {
            let mut c = Capped::new(limit);
            c.push(text.as_bytes());
            c.push(b"more");
            let c = c.finish();
            assert_eq!(c.text(), kept, "{text:?} at {limit}");
            assert_eq!(c.total, text.len() as u64 + 4);
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_as_they_are() {
        assert_eq!(utf8_end(&[0xFF, 0xFE]), 2);
        assert_eq!(utf8_end(&[0x80, 0x80, 0x80, 0x80, 0x80]), 5);
        assert_eq!(utf8_end(&[]), 0);
    }

    #[test]
    fn a_zero_limit_keeps_nothing_but_counts() {
        let mut c = Capped::new(0);
        c.push(b"xyz");
        let c = c.finish();
        assert!(c.bytes.is_empty());
        assert_eq!(c.total, 3);
    }

    #[tokio::test]
    async fn reading_goes_to_the_end() {
        let data = vec![b'a'; 200_000];
        let c = read_capped(Some(&data[..]), 1000).await.unwrap();
        assert_eq!(c.bytes.len(), 1000);
        assert_eq!(c.total, 200_000);
        let none = read_capped(None::<&[u8]>, 10).await.unwrap();
        assert_eq!(none.total, 0);
    }
}
