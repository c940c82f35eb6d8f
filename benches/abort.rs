//! A safeguard's abort latency, printed next to its goal (issue 12): a safeguard
//! probe checked every 0.5 s watches for a tripwire file; the method creates it, then
//! runs a long action (at most 20 s). Measured over 20 runs of the release binary:
//!
//! - condition → rollback: from the moment the tripwire exists (the method writes the
//!   time, then creates it) to the moment the rollback action runs (it writes the
//!   time first). This includes waiting for the next check (up to one frequency
//!   interval), the check itself, stopping the long action and its children, and
//!   starting the rollback's process. Goal: at most the frequency plus 100 ms.
//! - trip → rollbacks: the journal's `abort_latency_ms`, from the trip to the
//!   rollbacks starting, as faultline measures and records it.
//!
//! The time at which the tripwire appears is shifted a little on each run so the
//! checks meet it at different phases. Nothing is asserted: the program prints what
//! it measures and exits 0; it exits non-zero only when it cannot measure.
//!
//! Run with `cargo bench --bench abort`. Environment: `FAULTLINE_BENCH_BIN` (default:
//! the release binary next to this bench), `FAULTLINE_BENCH_RUNS` (default 20).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const FREQUENCY: f64 = 0.5;

fn binary() -> PathBuf {
    if let Some(b) = std::env::var_os("FAULTLINE_BENCH_BIN") {
        return b.into();
    }
    let me = std::env::current_exe().expect("own path");
    // target/release/deps/abort-… -> target/release/faultline
    me.parent()
        .and_then(Path::parent)
        .map(|d| d.join("faultline"))
        .expect("the release binary's folder")
}

fn sh(kind: &str, name: &str, script: &str) -> Value {
    json!({"type": kind, "name": name,
        "provider": {"type": "process", "path": "sh", "arguments": ["-c", script]}})
}

fn experiment(delay: f64) -> Value {
    let mut guard = sh("probe", "no-tripwire", "test ! -e tripwire");
    guard["tolerance"] = json!(0);
    guard["frequency"] = json!(FREQUENCY);
    json!({
        "title": "abort latency", "description": "benches/abort.rs",
        "controls": [{"name": "safeguards", "provider": {"type": "python",
            "module": "chaosaddons.controls.safeguards", "arguments": {"probes": [guard]}}}],
        "method": [
            sh("action", "break", &format!("sleep {delay}; date +%s.%N > tripped_at; touch tripwire")),
            sh("action", "wait", "for i in $(seq 200); do sleep 0.1; done")
        ],
        "rollbacks": [sh("action", "repair", "date +%s.%N > rollback_at; rm -f tripwire")]
    })
}

fn read_time(path: &Path) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One run: (condition → rollback ms, journal's abort latency ms).
fn once(bin: &Path, dir: &Path, delay: f64) -> Result<(f64, f64), String> {
    let exp = dir.join("experiment.json");
    std::fs::write(&exp, experiment(delay).to_string()).map_err(|e| e.to_string())?;
    let out = Command::new(bin)
        .current_dir(dir)
        .args(["run", "--no-validation", "--journal-path", "journal.json"])
        .arg(&exp)
        .env("FAULTLINE_KILL_SWITCH", dir.join("kill-switch"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let journal: Value = serde_json::from_slice(
        &std::fs::read(dir.join("journal.json")).map_err(|e| format!("no journal: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    if journal["status"] != "interrupted" {
        return Err(format!(
            "the run was not interrupted ({}): {}",
            journal["status"],
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tripped = read_time(&dir.join("tripped_at"))?;
    let rolled = read_time(&dir.join("rollback_at"))?;
    let recorded = journal["extensions"][0]["abort_latency_ms"]
        .as_f64()
        .ok_or("no abort_latency_ms in the journal")?;
    Ok(((rolled - tripped) * 1000.0, recorded))
}

fn median_max(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[n - 1])
}

fn main() {
    let bin = binary();
    if !bin.exists() {
        eprintln!(
            "{} is missing: cargo build --release first (or set FAULTLINE_BENCH_BIN)",
            bin.display()
        );
        std::process::exit(1);
    }
    let runs: usize = std::env::var("FAULTLINE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let root = std::env::temp_dir().join(format!("faultline-bench-abort-{}", std::process::id()));
    let (mut cond, mut recorded) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let dir = root.join(i.to_string());
        std::fs::create_dir_all(&dir).expect("temp dir");
        // 0.2 s, then shifted by 23 ms a run: the checks meet the tripwire at
        // different phases of their 0.5 s period.
        let delay = 0.2 + (i as f64 * 0.023) % FREQUENCY;
        match once(&bin, &dir, delay) {
            Ok((c, r)) => {
                cond.push(c);
                recorded.push(r);
            }
            Err(e) => {
                eprintln!("run {i}: {e}");
                let _ = std::fs::remove_dir_all(&root);
                std::process::exit(1);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let (cm, cx) = median_max(&mut cond);
    let (rm, rx) = median_max(&mut recorded);
    println!(
        "safeguard abort latency, frequency {FREQUENCY} s, {runs} runs ({})",
        bin.display()
    );
    println!(
        "  condition -> rollback running : median {cm:7.1} ms   max {cx:7.1} ms   (goal: max <= {:.0} ms)",
        FREQUENCY * 1000.0 + 100.0
    );
    println!("  trip -> rollbacks started     : median {rm:7.1} ms   max {rx:7.1} ms   (journal's abort_latency_ms)");
}
