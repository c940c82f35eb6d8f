//! Two runs in one process, through the library's composition root
//! (`faultline::app::run`), as `serve` will run them: two tokio tasks at once.
//!
//! What is proved: each run keeps its own journal, its own trace (its own trace file,
//! trace id and spans) and its own processes. Interrupting one run kills that run's
//! activity tree and nothing of the other run's, which then finishes normally.

use crate::common::*;
use crate::tracing::file_spans;
use faultline::app::{self, RunRequest, Silent};
use faultline::exit::ExitCode;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A run whose only action starts a `sleep` (its pid written to `pid_file`) and waits
/// until `go` exists (or its own 60 s timeout), then stops its `sleep` itself.
fn waiting_experiment(title: &str, action: &str, pid_file: &Path, go: &Path) -> Value {
    let script = format!(
        "sleep 60 & echo $! > '{}'; while [ ! -e '{}' ]; do sleep 0.02; done; kill $!",
        pid_file.display(),
        go.display()
    );
    json!({
        "title": title,
        "description": "one of two concurrent runs",
        "method": [with_provider(sh("action", action, &script), "timeout", json!(60))],
    })
}

fn request(dir: &TempDir, exp: &Value) -> RunRequest {
    let path = dir.experiment(exp);
    let mut req = RunRequest::new(
        app::new_run_id(),
        path.display().to_string(),
        dir.join("journal.json"),
    );
    // No user settings file may leak in.
    req.settings = Some(dir.write("settings.yaml", "{}\n"));
    req
}

#[test]
fn two_runs_in_one_process_keep_their_journals_spans_and_processes_apart() {
    let (da, db) = (TempDir::new("conc-a"), TempDir::new("conc-b"));
    let (pid_a, pid_b) = (da.join("sleep.pid"), db.join("sleep.pid"));
    let _guard = SleepGuard(vec![pid_a.clone(), pid_b.clone()]);
    let (go_a, go_b) = (da.join("go"), db.join("go"));
    let ra = request(&da, &waiting_experiment("run A", "a-wait", &pid_a, &go_a));
    let rb = request(&db, &waiting_experiment("run B", "b-wait", &pid_b, &go_b));
    let (id_a, id_b) = (ra.run_id.clone(), rb.run_id.clone());
    let (stop_a, procs_a, procs_b) = (
        ra.interrupt.clone(),
        ra.processes.clone(),
        rb.processes.clone(),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let a = rt.spawn(app::run(ra, Arc::new(Silent)));
    let b = rt.spawn(app::run(rb, Arc::new(Silent)));

    // Both activities are running, each registered with its own run only.
    wait_until(Duration::from_secs(30), "both sleeps to start", || {
        pid_a.exists()
            && pid_b.exists()
            && std::fs::metadata(&pid_b).is_ok_and(|m| m.len() > 0)
            && std::fs::metadata(&pid_a).is_ok_and(|m| m.len() > 0)
    });
    let (sleep_a, sleep_b) = (read_pid(&pid_a), read_pid(&pid_b));
    wait_until(
        Duration::from_secs(10),
        "each run to register its child",
        || procs_a.running().len() == 1 && procs_b.running().len() == 1,
    );
    assert_ne!(procs_a.running(), procs_b.running());

    // Interrupting A stops A's tree, and only A's.
    stop_a.trigger("stopped by the test".to_string());
    let end_a = rt.block_on(a).unwrap();
    assert_eq!(end_a.code, ExitCode::Failed);
    assert!(
        wait_pid_gone(sleep_a, Duration::from_secs(10)),
        "run A's sleep survived its interrupt"
    );
    assert!(
        !pid_gone(sleep_b),
        "interrupting run A killed run B's sleep"
    );
    assert_eq!(procs_b.running().len(), 1);

    // B goes on to its normal end.
    std::fs::write(&go_b, "").unwrap();
    let end_b = rt.block_on(b).unwrap();
    assert_eq!(end_b.code, ExitCode::Success);
    assert!(wait_pid_gone(sleep_b, Duration::from_secs(10)));
    assert!(procs_a.running().is_empty() && procs_b.running().is_empty());

    // Separate journals, each its own run.
    let journal = |d: &TempDir| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("journal.json")).unwrap()).unwrap()
    };
    let (ja, jb) = (journal(&da), journal(&db));
    assert_eq!(ja["status"], "interrupted", "{ja:#}");
    assert_eq!(jb["status"], "completed", "{jb:#}");
    assert_eq!(ja["extensions"][0]["run_id"], id_a.as_str());
    assert_eq!(jb["extensions"][0]["run_id"], id_b.as_str());
    assert_eq!(names(&ja["run"]), ["a-wait"]);
    assert_eq!(names(&jb["run"]), ["b-wait"]);
    assert_eq!(
        end_a.journal.as_deref(),
        Some(da.join("journal.json").as_path())
    );

    // Separate traces: each file holds one trace, its own run's spans only.
    let spans_a = file_spans(&da.join("journal.trace.json"));
    let spans_b = file_spans(&db.join("journal.trace.json"));
    for (spans, id, mine, theirs) in [
        (&spans_a, &id_a, "a-wait", "b-wait"),
        (&spans_b, &id_b, "b-wait", "a-wait"),
    ] {
        let traces: std::collections::BTreeSet<_> = spans.iter().map(|s| &s.trace_id).collect();
        assert_eq!(traces.len(), 1, "one trace per run: {traces:?}");
        let root = spans
            .iter()
            .find(|s| s.name == "chaos.experiment")
            .expect("an experiment span");
        assert_eq!(root.attributes["chaos.run.id"], id.as_str());
        assert!(spans.iter().any(|s| s.name == format!("action {mine}")));
        assert!(spans.iter().all(|s| !s.name.contains(theirs)));
    }
    assert_ne!(spans_a[0].trace_id, spans_b[0].trace_id);
    rt.shutdown_timeout(Duration::from_secs(1));
}
