//! The file a `jsonl` sink appends to: opened when built, written once per batch,
//! flushed at shutdown.

use crate::sink::pipeline::{SendError, Sink};
use crate::sink::record::Batch;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// An open JSON-lines file.
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
        super::encoder::encode(batch)
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
