//! `faultline schedule FILE`: seconds-level cron, no overlap, windows, the kill
//! switch, a clean stop on SIGTERM.

use crate::common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn journals(dir: &TempDir) -> Vec<serde_json::Value> {
    let Ok(rd) = std::fs::read_dir(dir.join("journals")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.ends_with(".json") && !n.ends_with(".trace.json")
        })
        .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
        .collect()
}

fn text(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default()
}

/// A slow experiment: its action leaves `started` then waits for `release` (bounded).
fn slow(dir: &TempDir) {
    let e = experiment(
        vec![],
        vec![sh(
            "action",
            "slow",
            "echo x >> started; for i in $(seq 300); do test -e release && exit 0; sleep 0.1; done",
        )],
        vec![rollback()],
    );
    dir.write("slow.json", &serde_json::to_string(&e).unwrap());
}

#[test]
fn fires_every_second_never_overlaps_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("schedule");
    slow(&dir);
    dir.write("s.yaml", "experiments:\n  - name: slow\n    experiment: slow.json\n    cron: \"*/1 * * * * *\"\n    labels: {service: checkout}\n");
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "s.yaml"], &[])));
    let pid = guard.0.as_ref().unwrap().id();
    wait_until(LIMIT, "the first run to start", || {
        dir.join("started").exists()
    });
    wait_until(LIMIT, "a firing skipped while the run runs", || {
        text(&dir).contains("skipped: its previous run is still running")
    });
    assert_eq!(lines(&dir, "started").len(), 1, "{}", text(&dir));
    send_signal(pid, "TERM");
    let code = wait_with_limit(guard.0.as_mut().unwrap(), LIMIT);
    assert_eq!(code, 0, "{}", text(&dir));
    let j = journals(&dir);
    assert_eq!(j.len(), 1, "{}", text(&dir));
    assert_eq!(j[0]["status"], "interrupted");
    assert_eq!(lines(&dir, "trace"), ["rollback"], "the rollback played");
    assert_eq!(lines(&dir, "started").len(), 1, "no run after SIGTERM");
}

#[test]
fn a_window_excluding_now_runs_nothing_and_the_kill_switch_refuses() {
    let dir = TempDir::new("schedule-window");
    dir.write(
        "ok.json",
        &serde_json::to_string(&experiment(
            vec![],
            vec![tracer("action", "a", "ran")],
            vec![],
        ))
        .unwrap(),
    );
    // A window of one minute, twelve hours from now.
    let away = chrono::Utc::now() + chrono::Duration::hours(12);
    let from = away.format("%H:%M").to_string();
    let to = (away + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let (from, to) = if from < to {
        (from, to)
    } else {
        ("00:00".into(), "00:01".into())
    };
    dir.write("w.yaml", &format!(
        "windows: [{{days: daily, from: \"{from}\", to: \"{to}\", tz: UTC}}]\nexperiments:\n  - {{name: ok, experiment: ok.json, cron: \"*/1 * * * * *\"}}\n"));
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "w.yaml"], &[])));
    wait_until(LIMIT, "a firing outside the window", || {
        text(&dir).contains("outside its windows: not run")
    });
    send_signal(guard.0.as_ref().unwrap().id(), "TERM");
    assert_eq!(wait_with_limit(guard.0.as_mut().unwrap(), LIMIT), 0);
    assert!(lines(&dir, "trace").is_empty());
    assert!(journals(&dir).is_empty());

    // The kill switch engaged: the firing is refused, said, nothing runs.
    let engaged = faultline(&dir, &["kill", "--reason", "freeze"], &[]);
    assert_eq!(engaged.code, 0, "{}", engaged.all_text());
    dir.write(
        "k.yaml",
        "experiments:\n  - {name: ok, experiment: ok.json, cron: \"*/1 * * * * *\"}\n",
    );
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "k.yaml"], &[])));
    wait_until(LIMIT, "a refused firing", || {
        text(&dir).contains("ended with exit code 4")
    });
    send_signal(guard.0.as_ref().unwrap().id(), "TERM");
    assert_eq!(wait_with_limit(guard.0.as_mut().unwrap(), LIMIT), 0);
    assert!(lines(&dir, "trace").is_empty());
    assert!(
        text(&dir).to_lowercase().contains("kill switch"),
        "{}",
        text(&dir)
    );
}

#[test]
fn a_wrong_schedule_is_refused_with_every_problem() {
    let dir = TempDir::new("schedule-bad");
    dir.write("b.yaml", "experiments:\n  - {experiment: a.json, cron: \"* * * * *\"}\n  - {cron: \"*/1 * * * * *\"}\n");
    let out = faultline(&dir, &["schedule", "b.yaml"], &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let t = out.all_text();
    assert!(t.contains("$.experiments[0].cron"), "{t}");
    assert!(t.contains("$.experiments[1].experiment: required"), "{t}");
}
