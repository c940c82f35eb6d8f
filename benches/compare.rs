//! Side-by-side comparison of faultline with the Chaos Toolkit, printed as figures.
//!
//! Why a program and not a test: timings depend on the machine, so the house rule is
//! that benchmarks print what they measure, next to each other in one run, and never
//! assert a threshold. The goals below are printed as PASS/MISS; the program exits 0
//! whatever the verdicts (non-zero only when it cannot measure, e.g. a missing binary
//! or a contender that does not run the experiment successfully).
//!
//! Run with `cargo bench --bench compare`: it measures the release build the README
//! installs (`cargo build --release`). Scenarios, each measured as a whole process
//! (wall time from spawn to exit, peak RSS from `wait4`'s `ru_maxrss`):
//!
//! - (a) `run` of a 3-activity experiment (hypothesis probe with tolerance 0, one
//!   action, one rollback; every activity runs `echo`): faultline vs `chaos run`;
//! - (b) `run` of a method of 100 process probes running `echo N`: faultline vs
//!   `chaos run` vs the floor, a bare loop in this very binary
//!   (`compare --spawn-floor 100`) that spawns the same 100 `echo` processes one after
//!   the other and captures their output, which is the least any runner must do;
//! - (c) `validate` of the 3-activity file: faultline vs `chaos validate`.
//!
//! Rounds are interleaved (every contender once per round) so that drift on the
//! machine affects all columns alike. Every child is killed after 60 s.
//!
//! Environment: `FAULTLINE_BENCH_RUNS` (measured rounds, default 15; 2 warm-up rounds
//! come first), `FAULTLINE_BENCH_BIN` (faultline binary, default the release binary
//! cargo built next to this bench), `FAULTLINE_BENCH_CHAOS` (the `chaos` executable;
//! default `chaos` on PATH, else `target/ctk-venv/bin/chaos`, else
//! `/tmp/ctk/bin/chaos`; the Chaos Toolkit columns are skipped when none exists).
//!
//! `compare --write-fixtures` rewrites `benches/fixtures/` from the generators below;
//! the bench itself always runs freshly generated copies from a temporary directory.

// Measuring a child's peak RSS needs `wait4`/`waitid`/`kill` from libc, which are
// unsafe FFI calls; the crate denies unsafe code by default, this program needs it.
#![allow(unsafe_code)]

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod common;
use common::{
    check_journal, fixtures_dir, hundred_echo_probes, median, render, tail, three_activities,
    Expect, Output, Sample, CHILD_TIMEOUT, ECHO_PROBES,
};
use common::{verdict, TempDir};

/// Rounds run and thrown away before measuring (page cache, Python bytecode cache).
const WARMUP_ROUNDS: usize = 2;
const DEFAULT_RUNS: usize = 15;
/// Processes scenario (a) spawns: the hypothesis probe twice (before and after the
/// method), the action, the rollback.
const RUN3_SPAWNS: usize = 4;

const THREE_FILE: &str = "three-activities.json";
const HUNDRED_FILE: &str = "hundred-echo-probes.json";

/// The goals the figures are judged against (printed, never asserted): the speed
/// floors of issue 10, which every redesign must keep.
const GOAL_RUN_SPEEDUP: f64 = 15.0;
/// (a) at most this many times the bare-spawn floor of its own processes.
const GOAL_RUN3_FLOOR_RATIO: f64 = 2.0;
const GOAL_FLOOR_RATIO: f64 = 1.3;
const GOAL_RSS_FRACTION: f64 = 1.0 / 3.0;
/// (a) with telemetry on (the default trace file) at most this many times (a) with
/// `OTEL_SDK_DISABLED=true`.
const GOAL_TELEMETRY_RATIO: f64 = 1.10;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    // `cargo bench` passes `--bench` (and possibly a filter); only our own flags count.
    if let Some(i) = args.iter().position(|a| a == "--spawn-floor") {
        let n = args
            .get(i + 1)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(ECHO_PROBES);
        return spawn_floor(n);
    }
    if args.iter().any(|a| a == "--write-fixtures") {
        return common::write_fixtures("compare", &fixtures());
    }
    match bench() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Experiments

fn fixtures() -> [(&'static str, String); 2] {
    let source = "benches/compare.rs";
    [
        (
            THREE_FILE,
            render(&three_activities("faultline bench", source)),
        ),
        (
            HUNDRED_FILE,
            render(&hundred_echo_probes("faultline bench", source)),
        ),
    ]
}

// ---------------------------------------------------------------------------
// The floor

/// The least a runner must do for scenario (b): spawn each `echo N` in turn, resolved
/// on PATH like a process provider, and wait for it while capturing its output.
fn spawn_floor(n: usize) -> ExitCode {
    for i in 1..=n {
        match Command::new("echo").arg(i.to_string()).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!("compare --spawn-floor: echo {i} exited with {}", out.status);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("compare --spawn-floor: cannot spawn echo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// Measuring one child process

fn measure(argv: &[OsString], cwd: &Path, output: Output<'_>) -> std::io::Result<Sample> {
    common::measure_with(argv, cwd, output, |_| {})
}

// ---------------------------------------------------------------------------
// Contenders

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Run3,
    Run100,
    Validate3,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::Run3 => "(a) run, 3 activities",
            Scenario::Run100 => "(b) run, 100 echo probes",
            Scenario::Validate3 => "(c) validate, 3 activities",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Faultline,
    Chaos,
    Floor,
    /// faultline started through `env OTEL_SDK_DISABLED=false` (telemetry on), and
    /// through `env OTEL_SDK_DISABLED=true`: both pay the same `env` exec, so their
    /// ratio is telemetry's cost alone.
    TelemetryOn,
    TelemetryOff,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Faultline => "faultline",
            Tool::Chaos => "chaos",
            Tool::Floor => "floor (bare spawns)",
            Tool::TelemetryOn => "faultline, env OTEL_SDK_DISABLED=false",
            Tool::TelemetryOff => "faultline, env OTEL_SDK_DISABLED=true",
        }
    }
}

/// What a successful run's journal must show, so that a fast but wrong run is caught.
/// Where a contender's journal is, and what it must show.
struct Check {
    journal: PathBuf,
    expect: Expect,
}

struct Contender {
    scenario: Scenario,
    tool: Tool,
    argv: Vec<OsString>,
    expect: Option<Check>,
    samples: Vec<Sample>,
    /// Why this contender's figures cannot be trusted, if they cannot.
    broken: Option<String>,
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn contenders(faultline: &Path, chaos: Option<&Path>, dir: &Path) -> Vec<Contender> {
    let three = dir.join(THREE_FILE);
    let hundred = dir.join(HUNDRED_FILE);
    let mut list = Vec::new();
    let mut add = |scenario, tool, argv: Vec<OsString>, expect| {
        list.push(Contender {
            scenario,
            tool,
            argv,
            expect,
            samples: Vec::new(),
            broken: None,
        })
    };
    let expect3 = |j: &str| {
        Some(Check {
            journal: dir.join(j),
            expect: Expect {
                method_entries: 1,
                rollback_entries: 1,
                hypothesis_probes: 1,
            },
        })
    };
    let expect100 = |j: &str| {
        Some(Check {
            journal: dir.join(j),
            expect: Expect {
                method_entries: ECHO_PROBES,
                rollback_entries: 0,
                hypothesis_probes: 0,
            },
        })
    };
    let fl_run = |j: &str, file: &Path| {
        vec![
            os(faultline),
            os("run"),
            os("--journal-path"),
            os(dir.join(j)),
            os(file),
        ]
    };
    let me = env::current_exe().unwrap_or_else(|_| PathBuf::from("compare"));
    let floor = |n: usize| vec![os(&me), os("--spawn-floor"), os(n.to_string())];
    let ctk = |c: &Path, rest: Vec<OsString>| {
        let mut v = vec![os(c), os("--no-version-check"), os("--no-log-file")];
        v.extend(rest);
        v
    };

    add(
        Scenario::Run3,
        Tool::Faultline,
        fl_run("faultline-3.json", &three),
        expect3("faultline-3.json"),
    );
    if let Some(c) = chaos {
        add(
            Scenario::Run3,
            Tool::Chaos,
            ctk(
                c,
                vec![
                    os("run"),
                    os("--journal-path"),
                    os(dir.join("chaos-3.json")),
                    os(&three),
                ],
            ),
            expect3("chaos-3.json"),
        );
    }
    // Not a goal, a reference: the same 4 spawns as (a) with no runner around them, the
    // least any runner could take for (a) on this machine.
    add(Scenario::Run3, Tool::Floor, floor(RUN3_SPAWNS), None);
    for (tool, disabled, j) in [
        (Tool::TelemetryOn, "false", "faultline-3-on.json"),
        (Tool::TelemetryOff, "true", "faultline-3-off.json"),
    ] {
        let mut argv = vec![os("env"), os(format!("OTEL_SDK_DISABLED={disabled}"))];
        argv.extend(fl_run(j, &three));
        add(Scenario::Run3, tool, argv, expect3(j));
    }
    add(
        Scenario::Run100,
        Tool::Faultline,
        fl_run("faultline-100.json", &hundred),
        expect100("faultline-100.json"),
    );
    if let Some(c) = chaos {
        add(
            Scenario::Run100,
            Tool::Chaos,
            ctk(
                c,
                vec![
                    os("run"),
                    os("--journal-path"),
                    os(dir.join("chaos-100.json")),
                    os(&hundred),
                ],
            ),
            expect100("chaos-100.json"),
        );
    }
    add(Scenario::Run100, Tool::Floor, floor(ECHO_PROBES), None);
    add(
        Scenario::Validate3,
        Tool::Faultline,
        vec![os(faultline), os("validate"), os(&three)],
        None,
    );
    if let Some(c) = chaos {
        add(
            Scenario::Validate3,
            Tool::Chaos,
            ctk(c, vec![os("validate"), os(&three)]),
            None,
        );
    }
    list
}

/// One run with its output kept, before any timing: a contender that does not run the
/// experiment successfully is reported as broken rather than timed.
fn sanity_run(c: &mut Contender, dir: &Path, idx: usize) {
    let out = dir.join(format!("sanity-{idx}.out"));
    let err = dir.join(format!("sanity-{idx}.err"));
    if let Some(e) = &c.expect {
        let _ = fs::remove_file(&e.journal);
    }
    match measure(&c.argv, dir, Output::Files(&out, &err)) {
        Err(e) => c.broken = Some(format!("cannot spawn: {e}")),
        Ok(s) if s.timed_out => {
            c.broken = Some(format!("killed after {} s", CHILD_TIMEOUT.as_secs()))
        }
        Ok(s) if s.code != Some(0) => {
            c.broken = Some(format!(
                "exited with {}; stderr tail:\n    {}\n    stdout tail:\n    {}",
                s.code
                    .map_or("a signal".to_string(), |c| format!("code {c}")),
                tail(&err, 8),
                tail(&out, 8)
            ))
        }
        Ok(_) => {
            if let Some(e) = &c.expect {
                if let Err(why) = check_journal(&e.journal, &e.expect) {
                    // Fast but wrong is not a result: no timing, and the bench fails.
                    c.broken = Some(format!("journal check: {why}"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Statistics and printing

#[derive(Clone, Copy)]
struct Summary {
    median_ms: f64,
    min_ms: f64,
    rss_mib: f64,
    cpu_ms: f64,
    failures: usize,
}

fn summarise(c: &Contender) -> Option<Summary> {
    if c.broken.is_some() || c.samples.is_empty() {
        return None;
    }
    let wall: Vec<f64> = c.samples.iter().map(|s| s.wall_ms).collect();
    Some(Summary {
        median_ms: median(wall.clone()),
        min_ms: wall.iter().copied().fold(f64::INFINITY, f64::min),
        rss_mib: median(
            c.samples
                .iter()
                .map(|s| s.maxrss_kib as f64 / 1024.0)
                .collect(),
        ),
        cpu_ms: median(c.samples.iter().map(|s| s.cpu_ms).collect()),
        failures: c
            .samples
            .iter()
            .filter(|s| s.timed_out || s.code != Some(0))
            .count(),
    })
}

fn find(list: &[Contender], scenario: Scenario, tool: Tool) -> Option<Summary> {
    list.iter()
        .find(|c| c.scenario == scenario && c.tool == tool)
        .and_then(summarise)
}

fn bench() -> Result<ExitCode, String> {
    let runs = match env::var("FAULTLINE_BENCH_RUNS") {
        Ok(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("FAULTLINE_BENCH_RUNS={s} is not a positive integer"))?,
        Err(_) => DEFAULT_RUNS,
    };
    let faultline = common::faultline_bin()?;
    let chaos = common::chaos_bin();

    let tmp = TempDir(env::temp_dir().join(format!("faultline-bench-{}", std::process::id())));
    fs::create_dir_all(&tmp.0).map_err(|e| format!("cannot create {}: {e}", tmp.0.display()))?;
    let fixture_dir = fixtures_dir();
    let mut stale = Vec::new();
    for (name, text) in fixtures() {
        fs::write(tmp.0.join(name), &text)
            .map_err(|e| format!("cannot write {}: {e}", tmp.0.join(name).display()))?;
        if fs::read_to_string(fixture_dir.join(name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }

    println!("faultline vs Chaos Toolkit: {runs} measured rounds after {WARMUP_ROUNDS} warm-up rounds, interleaved");
    println!(
        "  faultline: {} ({})",
        faultline.display(),
        common::version_of(&faultline, &[], &tmp.0)
    );
    match &chaos {
        Ok(c) => println!(
            "  chaos:     {} ({})",
            c.display(),
            common::version_of(c, &["--no-version-check"], &tmp.0)
        ),
        Err(note) => println!("  chaos:     none: {note}"),
    }
    println!("  experiments generated into {}", tmp.0.display());
    if !stale.is_empty() {
        println!(
            "  note: benches/fixtures/{} differ from what this bench runs; refresh them with \
             `cargo bench --bench compare -- --write-fixtures`",
            stale.join(", benches/fixtures/")
        );
    }
    println!();

    let mut list = contenders(
        &faultline,
        chaos.as_ref().ok().map(PathBuf::as_path),
        &tmp.0,
    );
    for (i, c) in list.iter_mut().enumerate() {
        sanity_run(c, &tmp.0, i);
    }
    for _ in 0..WARMUP_ROUNDS {
        for c in list.iter().filter(|c| c.broken.is_none()) {
            let _ = measure(&c.argv, &tmp.0, Output::Null);
        }
    }
    for round in 0..runs {
        eprint!("\rround {}/{runs}", round + 1);
        let _ = std::io::stderr().flush();
        for c in list.iter_mut().filter(|c| c.broken.is_none()) {
            match measure(&c.argv, &tmp.0, Output::Null) {
                Ok(s) => c.samples.push(s),
                Err(e) => c.broken = Some(format!("cannot spawn: {e}")),
            }
        }
    }
    eprintln!();

    print_table(&list, runs);
    print_goals(&list, chaos.is_ok());

    let broken: Vec<&Contender> = list.iter().filter(|c| c.broken.is_some()).collect();
    if broken.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!();
        for c in &broken {
            println!(
                "ERROR {} / {}: {}",
                c.scenario.label(),
                c.tool.label(),
                c.broken.as_deref().unwrap_or("")
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

fn print_table(list: &[Contender], runs: usize) {
    println!(
        "{:<28} {:<20} {:>10} {:>10} {:>13} {:>10}",
        "scenario", "tool", "median ms", "min ms", "peak RSS MiB", "CPU ms"
    );
    println!("{}", "-".repeat(96));
    let mut last = None;
    for c in list {
        let scen = if last == Some(c.scenario) {
            ""
        } else {
            c.scenario.label()
        };
        last = Some(c.scenario);
        match summarise(c) {
            Some(s) => {
                println!(
                    "{:<28} {:<20} {:>10.1} {:>10.1} {:>13.1} {:>10.1}{}",
                    scen,
                    c.tool.label(),
                    s.median_ms,
                    s.min_ms,
                    s.rss_mib,
                    s.cpu_ms,
                    if s.failures > 0 {
                        format!("  ({} of {runs} runs failed)", s.failures)
                    } else {
                        String::new()
                    }
                );
            }
            None => println!(
                "{:<28} {:<20} {:>10}",
                scen,
                c.tool.label(),
                "FAILED (see below)"
            ),
        }
    }
    println!(
        "wall time and peak RSS of the whole measured process, stdout/stderr to /dev/null; \
         medians of {runs} runs;\nCPU = user + system incl. waited-for children; floor = this \
         bench spawning the same `echo` processes one by one, no runner ({RUN3_SPAWNS} for (a), \
         {ECHO_PROBES} for (b))"
    );
}

fn print_goals(list: &[Contender], have_chaos: bool) {
    use Scenario::*;
    use Tool::*;
    println!();
    // Derived figures. Scenario (a) spawns 4 processes (the hypothesis probe runs before
    // and after the method), (b) spawns 100: their difference is the marginal cost of
    // an activity once the runner is up, start-up excluded.
    let floor = find(list, Run100, Floor);
    if let Some(fl) = floor {
        println!(
            "floor: {:.3} ms per bare `echo` spawn ({:.1} ms / {ECHO_PROBES})",
            fl.median_ms / ECHO_PROBES as f64,
            fl.median_ms
        );
    }
    for tool in [Faultline, Chaos] {
        if let (Some(a), Some(b)) = (find(list, Run3, tool), find(list, Run100, tool)) {
            let per = (b.median_ms - a.median_ms) / (ECHO_PROBES - RUN3_SPAWNS) as f64;
            print!(
                "{:<9} marginal cost per activity, ((b) - (a)) / {}: {per:.3} ms",
                tool.label(),
                ECHO_PROBES - RUN3_SPAWNS
            );
            match floor {
                Some(fl) => println!(
                    " ({:+.3} ms over a bare spawn); (b) above the floor in all: {:.1} ms",
                    per - fl.median_ms / ECHO_PROBES as f64,
                    b.median_ms - fl.median_ms
                ),
                None => println!(),
            }
        }
    }
    if let (Some(fl), Some(c)) = (find(list, Run3, Floor), find(list, Run3, Chaos)) {
        println!(
            "(a) chaos / bare-spawn floor of (a) = {:.1}x: the most any runner could reach on (a) here",
            c.median_ms / fl.median_ms
        );
    }
    for scen in [Run100, Validate3] {
        if let (Some(f), Some(c)) = (find(list, scen, Faultline), find(list, scen, Chaos)) {
            println!(
                "{}: chaos / faultline median wall time = {:.1}x (no goal, for information)",
                scen.label(),
                c.median_ms / f.median_ms
            );
        }
    }

    println!();
    println!("goals (printed figures, not assertions):");
    match (find(list, Run3, Faultline), find(list, Run3, Chaos)) {
        (Some(f), Some(c)) => {
            let x = c.median_ms / f.median_ms;
            println!(
                "  {}  (a) faultline at least {GOAL_RUN_SPEEDUP}x faster than chaos: {x:.1}x ({:.1} ms vs {:.1} ms median)",
                verdict(x >= GOAL_RUN_SPEEDUP),
                f.median_ms,
                c.median_ms
            );
        }
        _ if !have_chaos => println!("  n/a   (a) faultline at least {GOAL_RUN_SPEEDUP}x faster than chaos: no Chaos Toolkit"),
        _ => println!("  n/a   (a) faultline at least {GOAL_RUN_SPEEDUP}x faster than chaos: a contender failed"),
    }
    match (find(list, Run3, Faultline), find(list, Run3, Floor)) {
        (Some(f), Some(fl)) => {
            let x = f.median_ms / fl.median_ms;
            println!(
                "  {}  (a) faultline within {GOAL_RUN3_FLOOR_RATIO}x the bare-spawn floor of its processes: {x:.2}x ({:.1} ms vs {:.1} ms median)",
                verdict(x <= GOAL_RUN3_FLOOR_RATIO),
                f.median_ms,
                fl.median_ms
            );
        }
        _ => println!("  n/a   (a) faultline within {GOAL_RUN3_FLOOR_RATIO}x the bare-spawn floor: a contender failed"),
    }
    match (
        find(list, Run3, TelemetryOn),
        find(list, Run3, TelemetryOff),
    ) {
        (Some(on), Some(off)) => {
            let x = on.median_ms / off.median_ms;
            println!(
                "  {}  (a) telemetry on at most {:+.0}% over OTEL_SDK_DISABLED=true: {x:.3}x ({:.1} ms vs {:.1} ms median)",
                verdict(x <= GOAL_TELEMETRY_RATIO),
                (GOAL_TELEMETRY_RATIO - 1.0) * 100.0,
                on.median_ms,
                off.median_ms
            );
        }
        _ => println!("  n/a   (a) telemetry on vs OTEL_SDK_DISABLED=true: a contender failed"),
    }
    match (find(list, Run100, Faultline), find(list, Run100, Floor)) {
        (Some(f), Some(fl)) => {
            let x = f.median_ms / fl.median_ms;
            println!(
                "  {}  (b) faultline within {GOAL_FLOOR_RATIO}x the bare-spawn floor: {x:.2}x ({:.1} ms vs {:.1} ms median)",
                verdict(x <= GOAL_FLOOR_RATIO),
                f.median_ms,
                fl.median_ms
            );
        }
        _ => println!("  n/a   (b) faultline within {GOAL_FLOOR_RATIO}x the bare-spawn floor: a contender failed"),
    }
    for scen in [Run3, Run100, Validate3] {
        match (find(list, scen, Faultline), find(list, scen, Chaos)) {
            (Some(f), Some(c)) => {
                let x = f.rss_mib / c.rss_mib;
                println!(
                    "  {}  peak RSS at most a third of chaos's, {}: {x:.2} of chaos ({:.1} MiB vs {:.1} MiB)",
                    verdict(x <= GOAL_RSS_FRACTION),
                    scen.label(),
                    f.rss_mib,
                    c.rss_mib
                );
            }
            _ if !have_chaos => println!(
                "  n/a   peak RSS at most a third of chaos's, {}: no Chaos Toolkit",
                scen.label()
            ),
            _ => println!(
                "  n/a   peak RSS at most a third of chaos's, {}: a contender failed",
                scen.label()
            ),
        }
    }
}
