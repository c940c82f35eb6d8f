//! Measuring one child process, shared by the benchmark programs: wall time from
//! spawn to exit, peak RSS and CPU from `wait4`, every child killed (with its process
//! group) after a deadline. Not a benchmark itself (cargo only runs `benches/*.rs`).

#![allow(dead_code)]

use std::env;
use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Every measured child is killed (with its process group) after this long.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run cost, as seen from its parent.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub wall_ms: f64,
    /// `ru_maxrss` from `wait4`: the larger of the child's own peak and that of the
    /// descendants it waited for (an `echo` is far smaller than any runner).
    pub maxrss_kib: i64,
    /// User + system CPU of the child and the descendants it waited for.
    pub cpu_ms: f64,
    /// Exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    pub timed_out: bool,
}

/// Where the child's output goes.
pub enum Output<'a> {
    Null,
    /// Capture stdout/stderr into these files (sanity runs, to show the console).
    Files(&'a Path, &'a Path),
}

/// Spawns `argv` in its own process group (after `prepare` adjusted the command, e.g.
/// its environment), waits for it with `waitid(WNOWAIT)` so the pid stays reserved
/// while the watchdog is cancelled, then reaps it with `wait4` to read its resource
/// usage. The watchdog kills the whole group after [`CHILD_TIMEOUT`].
pub fn measure_with(
    argv: &[OsString],
    cwd: &Path,
    output: Output<'_>,
    prepare: impl FnOnce(&mut Command),
) -> std::io::Result<Sample> {
    measure_watched(argv, cwd, output, prepare, |_| (), |()| ()).map(|(s, ())| s)
}

/// [`measure_with`], with an observer of the running child: `start` gets its pid right
/// after the spawn, `finish` gets what `start` returned once the child has exited but
/// before it is reaped (so its pid cannot name another process in between). If
/// measuring fails in between, what `start` returned is dropped instead.
pub fn measure_watched<W, T>(
    argv: &[OsString],
    cwd: &Path,
    output: Output<'_>,
    prepare: impl FnOnce(&mut Command),
    start: impl FnOnce(libc::pid_t) -> W,
    finish: impl FnOnce(W) -> T,
) -> std::io::Result<(Sample, T)> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .process_group(0);
    prepare(&mut cmd);
    match output {
        Output::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Output::Files(out, err) => {
            cmd.stdout(fs::File::create(out)?)
                .stderr(fs::File::create(err)?);
        }
    }

    let started = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    // The child is reaped below with wait4; std's handle must not wait for it too.
    drop(child);
    let watch = start(pid);

    let (cancel, cancelled) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if cancelled.recv_timeout(CHILD_TIMEOUT).is_err() {
            // SAFETY: plain syscall; the leader is not reaped yet, so `-pid` is still
            // its process group and cannot name an unrelated one.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            true
        } else {
            false
        }
    });

    // Wait for the exit without reaping.
    loop {
        // SAFETY: `info` is a plain C struct the kernel fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let wall = started.elapsed();
    let watched = finish(watch);
    let _ = cancel.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    // Anything the child left behind in its group goes too (its leader is still a
    // zombie, so the group id is still ours).
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };

    let mut status: libc::c_int = 0;
    // SAFETY: `usage` is a plain C struct the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let tv_ms = |tv: libc::timeval| tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3;
    let sample = Sample {
        wall_ms: wall.as_secs_f64() * 1e3,
        maxrss_kib: usage.ru_maxrss,
        cpu_ms: tv_ms(usage.ru_utime) + tv_ms(usage.ru_stime),
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        timed_out,
    };
    Ok((sample, watched))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return "(empty)".to_string();
    }
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// The experiments both programs run (each under its own title and file names)

/// Number of `echo` probes of the 100-probe experiment.
pub const ECHO_PROBES: usize = 100;

/// One hypothesis probe (tolerance 0), one action, one rollback, all `echo`: 4
/// processes, since the probe runs before and after the method. `bench` titles it,
/// `source` is the program that generated it.
pub fn three_activities(bench: &str, source: &str) -> Value {
    json!({
        "version": "1.0.0",
        "title": format!("{bench}: three process activities"),
        "description": format!("One hypothesis probe (tolerance 0), one action, one rollback; every activity runs echo. Generated by {source}."),
        "steady-state-hypothesis": {
            "title": "echo exits 0",
            "probes": [{
                "type": "probe",
                "name": "echo-probe",
                "tolerance": 0,
                "provider": {"type": "process", "path": "echo", "arguments": ["probe"]}
            }]
        },
        "method": [{
            "type": "action",
            "name": "echo-action",
            "provider": {"type": "process", "path": "echo", "arguments": ["action"]}
        }],
        "rollbacks": [{
            "type": "action",
            "name": "echo-rollback",
            "provider": {"type": "process", "path": "echo", "arguments": ["rollback"]}
        }]
    })
}

/// A method of [`ECHO_PROBES`] process probes running `echo N`.
pub fn hundred_echo_probes(bench: &str, source: &str) -> Value {
    let method: Vec<Value> = (1..=ECHO_PROBES)
        .map(|i| {
            json!({
                "type": "probe",
                "name": format!("echo-{i}"),
                "provider": {"type": "process", "path": "echo", "arguments": [i.to_string()]}
            })
        })
        .collect();
    json!({
        "version": "1.0.0",
        "title": format!("{bench}: 100 echo probes"),
        "description": format!("A method of 100 process probes running echo N, no hypothesis, no rollbacks. Generated by {source}."),
        "method": method
    })
}

/// An experiment as its fixture file holds it.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a json! value always serialises");
    s.push('\n');
    s
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join("fixtures")
}

/// `<program> --write-fixtures`: rewrite `benches/fixtures/` from the generators.
pub fn write_fixtures(program: &str, fixtures: &[(&str, String)]) -> ExitCode {
    let dir = fixtures_dir();
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("{program}: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, text) in fixtures {
        let path = dir.join(name);
        if let Err(e) = fs::write(&path, text) {
            eprintln!("{program}: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// What a run's journal must show, so that a fast but wrong run is caught.
pub struct Expect {
    pub method_entries: usize,
    pub rollback_entries: usize,
    pub hypothesis_probes: usize,
}

/// Checks a journal: the run completed, did not deviate, and has as many entries as
/// the experiment has activities. Returns the journal on success.
pub fn check_journal(path: &Path, e: &Expect) -> Result<Value, String> {
    let text = fs::read_to_string(path)
        .map_err(|err| format!("no journal at {}: {err}", path.display()))?;
    let j: Value =
        serde_json::from_str(&text).map_err(|err| format!("journal is not JSON: {err}"))?;
    let mut problems = Vec::new();
    if j.get("status").and_then(Value::as_str) != Some("completed") {
        problems.push(format!(
            "status is {}, not \"completed\"",
            j.get("status").unwrap_or(&Value::Null)
        ));
    }
    if j.get("deviated").and_then(Value::as_bool) != Some(false) {
        problems.push(format!(
            "deviated is {}, not false",
            j.get("deviated").unwrap_or(&Value::Null)
        ));
    }
    let len = |v: Option<&Value>| v.and_then(Value::as_array).map(Vec::len);
    let run = len(j.get("run"));
    if run != Some(e.method_entries) {
        problems.push(format!(
            "run has {run:?} entries, expected {}",
            e.method_entries
        ));
    }
    let rb = len(j.get("rollbacks"));
    if rb != Some(e.rollback_entries) {
        problems.push(format!(
            "rollbacks has {rb:?} entries, expected {}",
            e.rollback_entries
        ));
    }
    if e.hypothesis_probes > 0 {
        for phase in ["before", "after"] {
            let ss = j.pointer(&format!("/steady_states/{phase}"));
            let probes = len(ss.and_then(|s| s.get("probes")));
            let met = ss
                .and_then(|s| s.get("steady_state_met"))
                .and_then(Value::as_bool);
            if probes != Some(e.hypothesis_probes) || met != Some(true) {
                problems.push(format!(
                    "steady_states.{phase}: {probes:?} probes, met {met:?}; expected {} probe(s), met true",
                    e.hypothesis_probes
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(j)
    } else {
        Err(problems.join("; "))
    }
}

/// faultline: `FAULTLINE_BENCH_BIN`, else the release binary cargo built for this
/// bench, else `target/release/faultline` under the manifest directory.
pub fn faultline_bin() -> Result<PathBuf, String> {
    if let Some(p) = env::var_os("FAULTLINE_BENCH_BIN") {
        let p = PathBuf::from(p);
        // Runs start in a temporary directory: a relative path must not follow them.
        return if is_executable(&p) {
            Ok(p.canonicalize().unwrap_or(p))
        } else {
            Err(format!(
                "FAULTLINE_BENCH_BIN={} is not an executable file",
                p.display()
            ))
        };
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = option_env!("CARGO_BIN_EXE_faultline") {
        candidates.push(PathBuf::from(p));
    }
    let manifest = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    candidates.push(manifest.join("target").join("release").join("faultline"));
    candidates
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!(
                "no faultline release binary at {}; run `cargo build --release` first \
             (or set FAULTLINE_BENCH_BIN)",
                manifest.join("target/release/faultline").display()
            )
        })
}

// ---------------------------------------------------------------------------
// Locating the binaries

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// The Chaos Toolkit: `FAULTLINE_BENCH_CHAOS`, else `chaos` on PATH, else the venv the
/// CI creates, else `/tmp/ctk`. `Err` carries the note printed instead of its columns.
pub fn chaos_bin() -> Result<PathBuf, String> {
    if let Some(p) = env::var_os("FAULTLINE_BENCH_CHAOS") {
        let p = PathBuf::from(p);
        let resolved = if p.components().count() == 1 {
            find_on_path(&p.to_string_lossy())
        } else {
            Some(p.clone()).filter(|p| is_executable(p))
        };
        return resolved.ok_or_else(|| {
            format!(
                "FAULTLINE_BENCH_CHAOS={} is not an executable; Chaos Toolkit columns skipped",
                p.display()
            )
        });
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ctk-venv/bin/chaos");
    find_on_path("chaos")
        .or_else(|| Some(venv.clone()).filter(|p| is_executable(p)))
        .or_else(|| Some(PathBuf::from("/tmp/ctk/bin/chaos")).filter(|p| is_executable(p)))
        .ok_or_else(|| {
            format!(
                "no Chaos Toolkit found (FAULTLINE_BENCH_CHAOS, `chaos` on PATH, {}, \
                 /tmp/ctk/bin/chaos); Chaos Toolkit columns skipped",
                venv.display()
            )
        })
}

/// First line of `<bin> --version`, for the header (best effort, unmeasured, and
/// bounded like every other child).
pub fn version_of(bin: &Path, pre: &[&str], dir: &Path) -> String {
    let mut argv: Vec<OsString> = vec![bin.into()];
    argv.extend(pre.iter().map(OsString::from));
    argv.push("--version".into());
    let (out, err) = (dir.join("version.out"), dir.join("version.err"));
    match measure_with(&argv, dir, Output::Files(&out, &err), |_| {}) {
        Ok(s) if s.code == Some(0) => fs::read_to_string(&out)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "version unknown".to_string()),
        _ => "version unknown".to_string(),
    }
}

/// `PASS` or `MISS`, for a goal's line.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
