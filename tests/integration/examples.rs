//! The shipped examples keep working: each is run as its README says, against the real
//! services it needs (the exchange-file tutorial's Python service on a free port).

use crate::common::*;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn hello_runs_with_embedded_defaults_and_cleans_up() {
    let dir = TempDir::new("ex-hello");
    let marker = dir.join("hello.marker");
    let exp = example("hello/experiment.json");
    let journal = dir.join("journal.json");
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[
            ("HELLO_TMP_DIR", dir.path().to_str().unwrap()),
            ("HELLO_MARKER_FILE", marker.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.run_names().is_empty());
    assert!(!out.rollback_names().is_empty());
    assert!(!marker.exists(), "the rollback removes the marker");
}

/// Start the tutorial's service and wait until it accepts connections.
fn start_service(dir: &TempDir, fixed: bool, port: u16, file: &std::path::Path) -> ChildGuard {
    let mut cmd = Command::new("python3");
    cmd.arg(example("exchange-file/service.py"))
        .args([
            "--port",
            &port.to_string(),
            "--file",
            file.to_str().unwrap(),
            "--interval",
            "3600",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("service.log")).unwrap());
    if fixed {
        cmd.arg("--fixed");
    }
    let guard = ChildGuard(Some(cmd.spawn().expect("python3 runs the example service")));
    wait_until(
        Duration::from_secs(30),
        "the example service to listen",
        || TcpStream::connect(("127.0.0.1", port)).is_ok() && file.exists(),
    );
    guard
}

fn exchange_file(fixed: bool) -> Output {
    let dir = TempDir::new(if fixed {
        "ex-xfile-fixed"
    } else {
        "ex-xfile-broken"
    });
    let port = free_port();
    let file = dir.join("exchange.dat");
    let _service = start_service(&dir, fixed, port, &file);
    let exp = example("exchange-file/experiment.json");
    let journal = dir.join("journal.json");
    let url = format!("http://127.0.0.1:{port}/");
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[
            ("EXCHANGE_FILE", file.to_str().unwrap()),
            ("SERVICE_URL", &url),
        ],
    );
    assert!(file.exists(), "the rollback renames the exchange file back");
    out
}

#[test]
fn exchange_file_deviates_against_the_broken_service() {
    let out = exchange_file(false);
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
    let probe = out.journal()["run"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["activity"]["name"] == "service-is-unavailable")
        .unwrap();
    assert_eq!(probe["status"], "failed", "500 is not the expected 503");
}

#[test]
fn exchange_file_completes_against_the_fixed_service() {
    let out = exchange_file(true);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.deviated());
}

#[test]
fn book_controls_example_pauses_before_each_activity_and_completes() {
    let dir = TempDir::new("ex-book");
    let exp = example("book-controls/experiment.json");
    let journal = dir.join("journal.json");
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    // chaoshci.simplehci is served natively: one pause per activity (standard input
    // is closed here, so each pause goes on by itself).
    assert_eq!(
        out.stderr.matches("Press Enter to continue").count(),
        4,
        "{}",
        out.stderr
    );
    assert_eq!(out.run_names(), ["method-activity"]);
    assert_eq!(out.rollback_names(), ["rollback-activity"]);
}

#[test]
fn reliably_guide_sequence_healthy_then_unhealthy() {
    let dir = TempDir::new("ex-reliably");
    // The python provider imports reliability_utils from the working directory.
    std::fs::copy(
        example("reliably/reliability_utils.py"),
        dir.join("reliability_utils.py"),
    )
    .unwrap();
    let run = |file: &str, extra: &[&str]| {
        let exp = example(&format!("reliably/{file}"));
        let journal = dir.join("journal.json");
        let mut args = vec![
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        faultline(&dir, &args, &[])
    };
    let first = run(
        "experiment-healthy.json",
        &["--hypothesis-strategy", "after-method-only"],
    );
    assert_eq!(first.code, 0, "{}", first.all_text());
    let healthy = run("experiment-healthy.json", &[]);
    assert_eq!(healthy.code, 0, "{}", healthy.all_text());
    let unhealthy = run("experiment-unhealthy.json", &[]);
    assert_eq!(unhealthy.code, 1, "{}", unhealthy.all_text());
    assert!(unhealthy.deviated());
    let indicators = std::fs::read_to_string(dir.join("reliably-indicators.jsonl")).unwrap();
    assert_eq!(indicators.lines().count(), 3, "{indicators}");
}
