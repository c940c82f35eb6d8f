//! The `type: jsonl` settings: where the file is. Validation is pure.

use crate::sink::pipeline::Policy;
use serde::Deserialize;
use std::path::PathBuf;

/// Append JSON lines to a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// The file; parent directories are created.
    pub path: PathBuf,
}

impl JsonlConfig {
    /// Every problem in these settings, without touching the file system.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.path.as_os_str().is_empty() {
            p.push("path is empty".into());
        }
        p
    }

    /// No retries: a full disk stays full.
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            retries: 0,
            ..Policy::default()
        }
    }
}
