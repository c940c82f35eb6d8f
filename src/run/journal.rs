//! The journal: the Chaos Toolkit's `journal.json`, key for key, written atomically,
//! with secrets masked and a `faultline` extension carrying the run id.

use crate::redact::{mask_secret_block, Redactor};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// One executed activity, as the journal records it.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    /// The activity (a ref replaced by its target).
    pub activity: Value,
    /// Its output (null when none).
    pub output: Value,
    /// Start, ISO 8601 UTC.
    pub start: String,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    /// Why it failed, as chaoslib formats exceptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<String>>,
    /// End, ISO 8601 UTC.
    pub end: String,
    /// Seconds, pauses excluded.
    pub duration: f64,
    /// Hypothesis probes: whether the tolerance was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_met: Option<bool>,
}

impl RunEntry {
    /// True when the activity failed.
    pub fn failed(&self) -> bool {
        self.status == "failed"
    }

    /// The activity's name.
    pub fn name(&self) -> &str {
        self.activity
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The exception list for a failure message, as chaoslib writes it.
pub fn exception(message: &str, details: &[String]) -> Vec<String> {
    let mut out: Vec<String> = details.to_vec();
    out.push(format!("chaoslib.exceptions.ActivityFailed: {message}\n"));
    out
}

/// One hypothesis check.
#[derive(Debug, Clone, Serialize)]
pub struct HypothesisState {
    /// Whether every probe met its tolerance.
    pub steady_state_met: bool,
    /// The probes that ran, in order.
    pub probes: Vec<RunEntry>,
}

/// Everything the journal needs beyond the entries.
pub struct JournalParts<'a> {
    /// The experiment as loaded (its title substituted).
    pub experiment: Value,
    /// Start time.
    pub start: String,
    /// End time.
    pub end: String,
    /// Seconds.
    pub duration: f64,
    /// Final status.
    pub status: &'static str,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// Hypothesis before the method.
    pub before: Option<&'a HypothesisState>,
    /// Hypothesis after the method.
    pub after: Option<&'a HypothesisState>,
    /// Continuous checks.
    pub during: &'a [HypothesisState],
    /// Method entries.
    pub run: &'a [RunEntry],
    /// Rollback entries.
    pub rollbacks: &'a [RunEntry],
    /// faultline's extension (run id, strategies...).
    pub extension: Value,
}

/// `platform.platform()`-like text: `Linux-6.1.0-x86_64`.
pub fn platform() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        other => other,
    };
    format!("{os}-{}-{}", release.trim(), std::env::consts::ARCH)
}

/// The host name.
pub fn node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Build the journal value, secrets masked.
pub fn build(p: JournalParts<'_>, redactor: &Redactor) -> Value {
    let mut experiment = p.experiment;
    mask_secret_block(&mut experiment);
    let j = json!({
        "chaoslib-version": env!("CARGO_PKG_VERSION"),
        "platform": platform(),
        "node": node(),
        "experiment": experiment,
        "start": p.start,
        "status": p.status,
        "deviated": p.deviated,
        "steady_states": {
            "before": p.before,
            "after": p.after,
            "during": p.during,
        },
        "run": p.run,
        "rollbacks": p.rollbacks,
        "end": p.end,
        "duration": p.duration,
        "extensions": [p.extension],
    });
    redactor.value(&j)
}

/// Write `value` to `path` atomically: a temporary file in the same directory,
/// flushed to disk, then renamed over the target. Readers never see a partial file.
pub fn write_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    write_atomic_with(path, value, true)
}

/// [`write_atomic`], with the flush to disk optional: derived files (the trace file)
/// skip it, since the journal is the durable record and an `fsync` costs most of a
/// millisecond. Without it the file is still never seen half-written (rename).
pub fn write_atomic_with(path: &Path, value: &Value, durable: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        let f = f
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        if durable {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_keys_are_in_the_chaos_toolkit_order() {
        let j = build(
            JournalParts {
                experiment: json!({"title": "t", "secrets": {"s": {"k": "v4lue"}}}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: "completed",
                deviated: false,
                before: None,
                after: None,
                during: &[],
                run: &[],
                rollbacks: &[],
                extension: json!({"name": "faultline"}),
            },
            &Redactor::new(["v4lue".to_string()]),
        );
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration",
                "extensions"
            ]
        );
        assert_eq!(j["experiment"]["secrets"]["s"]["k"], "***");
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("fl-journal-{}", std::process::id()));
        let path = dir.join("j.json");
        write_atomic(&path, &json!({"a": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
