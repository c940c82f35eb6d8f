//! How much memory faultline needs when an activity prints a lot: peak RSS of a whole
//! `faultline run` whose process probe prints N bytes, next to the same run printing
//! nothing.
//!
//! Why a program and not a test: memory depends on the machine and the build, so the
//! figures are printed (house rule), never asserted. The goal of the hardening issue,
//! "peak memory stays bounded whatever the children print" (under 100 MB for a probe
//! printing 500 MB), is printed as PASS/MISS; the program exits 0 whatever the
//! verdict, and non-zero only when it cannot measure (no binary, a run that fails or
//! times out, a journal without the expected truncation record).
//!
//! Run with `cargo bench --bench output`. Each run is a whole `faultline run` process
//! (peak RSS and CPU from `wait4`, which also covers the `sh`/`head`/`tr` children
//! faultline waits for; they are far smaller). The probe is
//! `head -c N /dev/zero | tr '\0' a` under the default output limit (4 MiB).
//!
//! Environment: `FAULTLINE_BENCH_BIN` (the faultline binary, default the release
//! binary cargo built for this bench), `FAULTLINE_BENCH_BYTES` (comma-separated sizes
//! in bytes, default `0,100000000,500000000`), `FAULTLINE_BENCH_RUNS` (runs per size,
//! default 3; the maximum is printed, as the goal is a ceiling). An older binary
//! (without output limits) can be measured the same way: its journal then holds the
//! whole output, and the check of the truncation record is skipped for it with
//! `FAULTLINE_BENCH_NO_CHECK=1`.

// Measuring a child's peak RSS needs `wait4`/`waitid`/`kill` from libc (in
// `common`), which are unsafe FFI calls; the crate denies unsafe code by default.
#![allow(unsafe_code)]

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

mod common;
use common::{tail, Output, Sample};

use serde_json::{json, Value};

/// The goal of the hardening issue for a probe printing 500 MB (printed, not asserted).
const GOAL_PEAK_MB: f64 = 100.0;
const DEFAULT_SIZES: &[u64] = &[0, 100_000_000, 500_000_000];
const DEFAULT_RUNS: usize = 3;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("output bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let bin = common::faultline_bin()?;
    let sizes: Vec<u64> = match env::var("FAULTLINE_BENCH_BYTES") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("FAULTLINE_BENCH_BYTES={v}: {e}"))?,
        Err(_) => DEFAULT_SIZES.to_vec(),
    };
    let runs: usize = match env::var("FAULTLINE_BENCH_RUNS") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("FAULTLINE_BENCH_RUNS={v}: expected a positive integer"))?,
        Err(_) => DEFAULT_RUNS,
    };
    let check = env::var_os("FAULTLINE_BENCH_NO_CHECK").is_none();
    let dir = env::temp_dir().join(format!("faultline-bench-output-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure_all(&bin, &dir, &sizes, runs, check);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn measure_all(
    bin: &Path,
    dir: &Path,
    sizes: &[u64],
    runs: usize,
    check: bool,
) -> Result<(), String> {
    println!("faultline: {}", bin.display());
    println!(
        "probe: head -c N /dev/zero | tr '\\0' a (default output limit), {runs} run(s) per size"
    );
    println!();
    println!(
        "{:>14}  {:>14}  {:>14}  {:>10}  {:>10}",
        "printed bytes", "peak RSS MB", "(min)", "wall s", "CPU s"
    );
    for &size in sizes {
        let exp = experiment(size);
        let path = dir.join(format!("print-{size}.json"));
        fs::write(
            &path,
            serde_json::to_string_pretty(&exp).unwrap_or_default(),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut samples: Vec<Sample> = Vec::new();
        for i in 0..runs {
            let journal = dir.join(format!("journal-{size}-{i}.json"));
            let argv: Vec<OsString> = vec![
                bin.into(),
                "run".into(),
                path.clone().into(),
                "--journal-path".into(),
                journal.clone().into(),
            ];
            let (out, err) = (dir.join("out.txt"), dir.join("err.txt"));
            let s = common::measure_with(&argv, dir, Output::Files(&out, &err), |cmd| {
                // No user settings (an output_limit there would change the figure),
                // no spans sent anywhere.
                cmd.env("XDG_CONFIG_HOME", dir.join("xdg"))
                    .env_remove("FAULTLINE_SETTINGS")
                    .env("OTEL_SDK_DISABLED", "true");
            })
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            if s.timed_out || s.code != Some(0) {
                return Err(format!(
                    "the run printing {size} bytes ended with {:?}{}:\n    {}",
                    s.code,
                    if s.timed_out {
                        " (killed at the deadline)"
                    } else {
                        ""
                    },
                    tail(&err, 10)
                ));
            }
            if check {
                check_journal(&journal, size)?;
            }
            let _ = fs::remove_file(&journal);
            samples.push(s);
        }
        let mb = |s: &Sample| s.maxrss_kib as f64 * 1024.0 / 1e6;
        let peak = samples.iter().map(mb).fold(f64::MIN, f64::max);
        let low = samples.iter().map(mb).fold(f64::MAX, f64::min);
        let wall = common::median(samples.iter().map(|s| s.wall_ms / 1e3).collect());
        let cpu = common::median(samples.iter().map(|s| s.cpu_ms / 1e3).collect());
        println!("{size:>14}  {peak:>14.1}  {low:>14.1}  {wall:>10.2}  {cpu:>10.2}");
        if size == 500_000_000 {
            let verdict = if peak < GOAL_PEAK_MB { "PASS" } else { "MISS" };
            println!("{verdict}: peak RSS {peak:.1} MB for a probe printing 500 MB (goal: under {GOAL_PEAK_MB} MB)");
        }
    }
    Ok(())
}

/// One process probe printing `size` bytes of `a`.
fn experiment(size: u64) -> Value {
    json!({
        "title": format!("output bench: a probe printing {size} bytes"),
        "description": "Generated by benches/output.rs.",
        "method": [{
            "type": "probe",
            "name": "print",
            "provider": {"type": "process", "path": "sh",
                         "arguments": ["-c", format!("head -c {size} /dev/zero | tr '\\0' a")]}
        }]
    })
}

/// The run completed, and its one entry records the whole size and kept at most the
/// default limit: a fast run that dropped the output would not count.
fn check_journal(path: &Path, size: u64) -> Result<(), String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("no journal at {}: {e}", path.display()))?;
    let j: Value = serde_json::from_str(&text).map_err(|e| format!("journal is not JSON: {e}"))?;
    let out = &j["run"][0]["output"];
    let kept = out["stdout"].as_str().map_or(0, str::len) as u64;
    let limit = 4 * 1024 * 1024;
    let ok = j["status"] == "completed"
        && out["status"] == 0
        && kept == size.min(limit)
        && if size > limit {
            out["truncated"]["stdout"] == json!({"kept": limit, "total": size})
        } else {
            out.get("truncated").is_none()
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the journal of the run printing {size} bytes is not as expected: status {}, kept {kept}, truncated {}",
            j["status"], out["truncated"]
        ))
    }
}
