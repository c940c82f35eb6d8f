//! The JSON-lines file sink: one [`Record`](super::Record) per line, appended.
//!
//! The file is opened when the sinks are built (so an unwritable path is a settings
//! error before the run, not a silent loss), written once per batch with async I/O,
//! and flushed at shutdown. Write errors are not retried: a full disk stays full.

use super::{Batch, SendError, Sink};
use std::path::Path;
use tokio::io::AsyncWriteExt;

pub(crate) struct JsonlSink {
    name: String,
    file: tokio::fs::File,
}

impl JsonlSink {
    /// Create the parent directories and open the file for appending.
    pub(crate) fn open(path: &Path) -> Result<JsonlSink, String> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(JsonlSink {
            name: format!("jsonl {}", path.display()),
            file: tokio::fs::File::from_std(file),
        })
    }
}

impl Sink for JsonlSink {
    type Payload = Vec<u8>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(batch.len() * 300);
        for r in batch {
            serde_json::to_writer(&mut out, &**r).map_err(|e| e.to_string())?;
            out.push(b'\n');
        }
        Ok(out)
    }

    async fn send(&mut self, lines: &Vec<u8>) -> Result<(), SendError> {
        self.file
            .write_all(lines)
            .await
            .map_err(|e| SendError::Fatal(format!("cannot write: {e}")))?;
        // tokio's File hands writes to a blocking thread: flush waits for it, so a
        // batch counts as delivered only once it reached the file.
        self.file
            .flush()
            .await
            .map_err(|e| SendError::Fatal(format!("cannot write: {e}")))
    }

    async fn finish(&mut self) -> Result<(), String> {
        self.file
            .flush()
            .await
            .map_err(|e| format!("cannot flush: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit;
    use super::super::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use serde_json::{json, Value};

    #[tokio::test]
    async fn appends_one_record_per_line_creating_directories() {
        let dir = testkit::temp_dir("jsonl");
        let path = dir.join("a/b/run.jsonl");
        let cfg = [SinkConfig::Jsonl { path: path.clone() }];

        for round in 0..2 {
            let sinks = Sinks::from_config_with_env(&cfg, &|_| None).unwrap();
            for i in 0..3 {
                sinks.emit(&testkit::record(round * 3 + i));
            }
            let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
            assert_eq!(reports[0].delivered, 3, "{}", reports[0]);
            assert!(reports[0].is_clean());
            assert_eq!(reports[0].name, format!("jsonl {}", path.display()));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(*l, json!(testkit::record(i)));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_unwritable_path_is_a_settings_error() {
        let dir = testkit::temp_dir("jsonl-bad");
        let blocker = dir.join("file");
        std::fs::write(&blocker, "").unwrap();
        let cfg = [SinkConfig::Jsonl {
            path: blocker.join("x.jsonl"),
        }];
        let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
        assert!(e.starts_with("sink 1 (jsonl): cannot create"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
