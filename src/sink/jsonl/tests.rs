//! The JSON-lines sink against real files.

use super::JsonlConfig;
use crate::sink::testkit;
use crate::sink::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
use serde_json::{json, Value};

#[tokio::test]
async fn appends_one_record_per_line_creating_directories() {
    let dir = testkit::temp_dir("jsonl");
    let path = dir.join("a/b/run.jsonl");
    let cfg = [SinkConfig::Jsonl(JsonlConfig { path: path.clone() })];

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
    let cfg = [SinkConfig::Jsonl(JsonlConfig {
        path: blocker.join("x.jsonl"),
    })];
    let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
    assert!(e.starts_with("sink 1 (jsonl): cannot create"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
