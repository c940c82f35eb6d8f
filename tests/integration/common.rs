//! Shared test plumbing: temp dirs, running the real `faultline` binary with a hard
//! timeout, and (from `tests/support/`) a real HTTP server on 127.0.0.1 that records
//! what it receives.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_faultline")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("faultline-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Write a file and return its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
    /// Write an experiment as JSON and return its path.
    pub fn experiment(&self, v: &Value) -> PathBuf {
        self.write("experiment.json", &serde_json::to_string_pretty(v).unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub journal: Option<Value>,
}

impl Output {
    pub fn journal(&self) -> &Value {
        self.journal
            .as_ref()
            .unwrap_or_else(|| panic!("no journal; stderr:\n{}", self.stderr))
    }
    pub fn status(&self) -> &str {
        self.journal()["status"].as_str().unwrap()
    }
    pub fn deviated(&self) -> bool {
        self.journal()["deviated"].as_bool().unwrap()
    }
    /// Names of method entries, in journal order.
    pub fn run_names(&self) -> Vec<String> {
        names(&self.journal()["run"])
    }
    /// Names of rollback entries.
    pub fn rollback_names(&self) -> Vec<String> {
        names(&self.journal()["rollbacks"])
    }
    /// Names of probes in steady_states.<phase> ("before" / "after").
    pub fn hypothesis_names(&self, phase: &str) -> Vec<String> {
        names(&self.journal()["steady_states"][phase]["probes"])
    }
    /// Everything printed.
    pub fn all_text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The temporary files (`.<name>.<pid>.<n>.tmp`) a run writes its journal and trace
/// file through, left in `dir`: none once the run is over, whatever happened.
pub fn assert_no_temporaries(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

pub fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    e["activity"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Kill-on-drop wrapper for children started by tests.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait for a child with a hard limit; kill it when the limit passes.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("faultline did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start `faultline` with these args in `dir` (stdout/stderr to files there). Its kill
/// switch is `<dir>/kill-switch` unless `env` says otherwise: no test obeys, nor
/// engages, the machine's own.
pub fn spawn(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Child {
    let out = std::fs::File::create(dir.join("stdout.txt")).unwrap();
    let err = std::fs::File::create(dir.join("stderr.txt")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        // The run history (embedded store) and its spool: the test's own.
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env("FAULTLINE_KILL_SWITCH", dir.join("kill-switch"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Collect the output of a finished child started by [`spawn`].
pub fn collect(dir: &TempDir, code: i32, journal: &Path) -> Output {
    Output {
        code,
        stdout: std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default(),
        stderr: std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default(),
        journal: std::fs::read_to_string(journal)
            .ok()
            .map(|t| serde_json::from_str(&t).expect("journal is valid JSON")),
    }
}

/// Run `faultline` to completion (120 s limit) in `dir`.
pub fn faultline(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Output {
    let journal = dir.join("journal.json");
    let _ = std::fs::remove_file(&journal);
    let mut child = spawn(dir, args, env);
    let code = wait_with_limit(&mut child, Duration::from_secs(120));
    collect(dir, code, &journal)
}

/// `faultline run <experiment> --journal-path <dir>/journal.json <extra...>`.
pub fn run_experiment(dir: &TempDir, exp: &Value, extra: &[&str]) -> Output {
    let path = dir.experiment(exp);
    let journal = dir.join("journal.json");
    let mut args = vec![
        "run",
        path.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(dir, &args, &[])
}

/// A process activity.
pub fn process(kind: &str, name: &str, path: &str, args: &[&str]) -> Value {
    serde_json::json!({"type": kind, "name": name, "provider": {"type": "process", "path": path, "arguments": args}})
}

/// A shell activity (`sh -c script`).
pub fn sh(kind: &str, name: &str, script: &str) -> Value {
    process(kind, name, "sh", &["-c", script])
}

/// The shared HTTP test server (`tests/support/http_server.rs`) under the name the
/// integration tests use.
pub use crate::http_server::{Response, Server as HttpServer};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `cond` holds (polling), or panic after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- Helpers for the providers / validate / secrets / signals modules ----

/// True when process `pid` is gone: no `/proc` entry, or a zombie nobody reaped yet
/// (a container's PID 1 may never reap orphans; a zombie runs nothing).
pub fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

/// Poll until process `pid` is gone; false if it is still there after `limit`.
pub fn wait_pid_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while !pid_gone(pid) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A pid that a test process wrote to `path` (`echo $! > path`).
pub fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read pid file {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid file {} holds {text:?}", path.display()))
}

/// Kills, on drop, the test's own `sleep` processes whose pids were written to these
/// files, if they are still alive (so a failed assertion leaves nothing running).
/// Only a live process whose command line starts with `sleep` is touched.
pub struct SleepGuard(pub Vec<PathBuf>);

impl Drop for SleepGuard {
    fn drop(&mut self) {
        for f in &self.0 {
            let Some(pid) = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !pid_gone(pid) && cmdline.starts_with(b"sleep") {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Send a signal (`TERM`, `INT`, ...) to a process with `kill`.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// The journal entry named `name` in a list of entries (`run`, `rollbacks`, probes).
pub fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|e| e["activity"]["name"] == name))
        .unwrap_or_else(|| panic!("no entry named {name} in {list:#}"))
}

/// An entry's failure message (its `exception` lines joined), empty when none.
pub fn exception_text(entry: &Value) -> String {
    entry["exception"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// Bad input must be an error, never a Rust panic.
pub fn assert_no_panic(out: &Output) {
    let all = out.all_text();
    assert!(
        !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
        "faultline panicked:\n{all}"
    );
    assert!(out.code != 101, "exit code 101 (a panic):\n{all}");
}

// ---------------------------------------------------------------------------
// Run-semantics helpers (outcomes, strategies, tolerances, method).
// ---------------------------------------------------------------------------

/// [`run_experiment`] with extra environment variables for the `faultline` process.
pub fn run_experiment_env(
    dir: &TempDir,
    exp: &Value,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let journal = dir.join("journal.json");
    run_experiment_at(dir, exp, &journal, extra, env)
}

/// [`run_experiment_env`] with the journal at `journal` (the returned output's
/// `journal` is read from `<dir>/journal.json` only).
pub fn run_experiment_at(
    dir: &TempDir,
    exp: &Value,
    journal: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let path = dir.experiment(exp);
    let mut args = vec![
        "run",
        path.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    faultline(dir, &args, env)
}

/// An experiment: a hypothesis made of `probes` (none: no hypothesis), a method and
/// rollbacks.
pub fn experiment(probes: Vec<Value>, method: Vec<Value>, rollbacks: Vec<Value>) -> Value {
    let mut e = serde_json::json!({
        "title": "run semantics",
        "description": "integration test",
        "method": method,
        "rollbacks": rollbacks,
    });
    if !probes.is_empty() {
        e["steady-state-hypothesis"] = serde_json::json!({"title": "steady", "probes": probes});
    }
    e
}

/// A shell activity that appends `tag` to the file `trace` in the run's directory,
/// proving it ran and in which order.
pub fn tracer(kind: &str, name: &str, tag: &str) -> Value {
    sh(kind, name, &format!("echo {tag} >> trace"))
}

/// A python activity (`module.func(**arguments)`).
pub fn python(kind: &str, name: &str, module: &str, func: &str, arguments: Value) -> Value {
    serde_json::json!({"type": kind, "name": name,
        "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}})
}

/// The activity with `key` set to `value` (a tolerance, pauses, background...).
pub fn with(mut activity: Value, key: &str, value: Value) -> Value {
    activity[key] = value;
    activity
}

/// The activity with `provider.<key>` set to `value` (a timeout...).
pub fn with_provider(mut activity: Value, key: &str, value: Value) -> Value {
    activity["provider"][key] = value;
    activity
}

/// Lines of a file in `dir` (none when it does not exist).
pub fn lines(dir: &TempDir, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A port on 127.0.0.1 where nothing listens (bound then released).
pub fn closed_port() -> u16 {
    crate::http_server::refused_addr().port()
}

/// A hypothesis probe met while the file `broken` does not exist (traced).
pub fn healthy_probe() -> Value {
    with(
        sh("probe", "healthy", "echo probe >> trace; test ! -e broken"),
        "tolerance",
        serde_json::json!(0),
    )
}

/// A rollback that leaves `rollback` in the trace.
pub fn rollback() -> Value {
    tracer("action", "repair", "rollback")
}

/// Variables of the test's own environment that would change where spans go.
pub const TELEMETRY_VARS: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "TRACEPARENT",
    "TRACESTATE",
    "BAGGAGE",
];
