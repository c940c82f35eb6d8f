//! The kill switch: a file (`faultline kill`, or `touch`) or a server's `POST
//! /v1/kill` stops a running experiment the way a signal or a safeguard does (the
//! running activity's process tree killed, rollbacks played, status `interrupted`, the
//! reason in the journal, on the console and in the trace), and refuses the next run
//! (exit 4, nothing run, no journal) until it is released.
//!
//! Every test names its own switch file inside its temporary directory (`--kill-switch`
//! or `FAULTLINE_KILL_SWITCH`): none reads or engages the machine's.

use crate::common::*;
use crate::server::{token, Served};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A shell activity that starts `sleep 300` in the background, records both pids,
/// touches `<tag>.ready` and waits: killing only the shell would leave the sleep.
fn long_sleeper(name: &str, tag: &str) -> Value {
    sh(
        "action",
        name,
        &format!("sleep 300 & echo $! > {tag}.sleep.pid; echo $$$$ > {tag}.sh.pid; touch {tag}.ready; wait"),
    )
}

/// first → long (stopped by the switch) → never; rollback: undo.
fn long_experiment() -> Value {
    json!({"title": "kill me", "description": "a long method",
        "method": [
            tracer("action", "first", "first"),
            long_sleeper("long", "long"),
            tracer("action", "never", "never")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]})
}

/// One quick action, to see whether a run starts at all.
fn quick_experiment() -> Value {
    json!({"title": "quick", "description": "d",
        "method": [tracer("action", "ran", "ran")],
        "rollbacks": [tracer("action", "undo", "undo")]})
}

/// Both processes of a [`long_sleeper`] are gone (polling, bounded).
fn assert_sleeper_gone(dir: &TempDir, tag: &str) {
    for which in ["sleep", "sh"] {
        let pid = read_pid(&dir.join(&format!("{tag}.{which}.pid")));
        assert!(
            wait_pid_gone(pid, Duration::from_secs(10)),
            "{tag}: the {which} process {pid} is still running"
        );
    }
}

/// `faultline kill ARGS` run to its end in `cwd`, with the telemetry-free environment
/// of a test; its own stdout/stderr (a run's output files in `cwd` stay untouched).
fn kill_cmd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("kill")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", cwd.join("xdg"))
        .env("XDG_DATA_HOME", cwd.join("xdg-data"))
        .env("XDG_STATE_HOME", cwd.join("xdg-state"))
        .env_remove("FAULTLINE_KILL_SWITCH")
        .env_remove("FAULTLINE_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let out = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        journal: None,
    };
    assert_no_panic(&out);
    out
}

/// Start `faultline run` on `e` in `dir` (spans to the trace file beside the journal).
fn start_run(dir: &TempDir, e: &Value, extra: &[&str], env: &[(&str, &str)]) -> ChildGuard {
    let p = dir.experiment(e);
    let journal = dir.join("journal.json");
    let _ = std::fs::remove_file(&journal);
    let _ = std::fs::remove_file(dir.join("journal.trace.json"));
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut env: Vec<(&str, &str)> = env.to_vec();
    // No collector: spans go to the trace file, whatever the test's environment says.
    env.extend(TELEMETRY_VARS.iter().map(|k| (*k, "")));
    ChildGuard(Some(spawn(dir, &args, &env)))
}

/// Wait for a run started by [`start_run`] to end.
fn finish(dir: &TempDir, mut guard: ChildGuard) -> Output {
    let code = wait_with_limit(guard.0.as_mut().unwrap(), LIMIT);
    let out = collect(dir, code, &dir.join("journal.json"));
    assert_no_panic(&out);
    out
}

/// Run `e` to its end.
fn run(dir: &TempDir, e: &Value, extra: &[&str], env: &[(&str, &str)]) -> Output {
    finish(dir, start_run(dir, e, extra, env))
}

/// The checks shared by every stopped run: interrupted, exit 2, the long action
/// stopped with its whole tree, the method cut there, the rollback played, the reason
/// (containing `why`) in the journal, on the console and in the trace.
fn check_stopped(dir: &TempDir, out: &Output, why: &[&str]) {
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(out.run_names(), ["first", "long"]);
    let long = entry(&out.journal()["run"], "long");
    assert_eq!(long["status"], "failed");
    assert!(
        exception_text(long).contains("kill switch engaged"),
        "{long:#}"
    );
    assert_sleeper_gone(dir, "long");
    let trace = lines(dir, "trace");
    assert_eq!(
        trace,
        ["first", "undo"],
        "the method stopped, the rollback played"
    );
    assert_eq!(out.rollback_names(), ["undo"]);
    assert_eq!(
        entry(&out.journal()["rollbacks"], "undo")["status"],
        "succeeded"
    );
    let by = out.journal()["extensions"][0]["interrupted_by"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(by.starts_with("kill switch engaged by "), "{by}");
    for w in why {
        assert!(by.contains(w), "{w:?} not in {by:?}");
    }
    // The console says who stopped the run, and that it was interrupted.
    assert!(
        out.stderr.contains("Kill switch engaged by "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("stopping the running activity, then rollbacks and the journal"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("Experiment interrupted: {by}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Method interrupted"), "{}", out.stderr);
    // The trace says it was the kill switch.
    let spans = crate::tracing::file_spans(&dir.join("journal.trace.json"));
    let exp = spans
        .iter()
        .find(|s| s.name == "chaos.experiment")
        .expect("an experiment span");
    assert_eq!(exp.attr_str("chaos.interrupt.source"), Some("kill_switch"));
    assert_eq!(exp.attr_str("chaos.experiment.status"), Some("interrupted"));
    let ev = exp.event("chaos.interrupt").expect("an interrupt event");
    assert_eq!(ev.attributes["chaos.interrupt.source"], "kill_switch");
    assert_eq!(ev.attributes["chaos.interrupt.reason"], by.as_str());
}

/// A refused run: exit 4, the reason and the way out on the console, nothing ran, no
/// journal.
fn check_refused(dir: &TempDir, out: &Output, why: &[&str]) {
    assert_eq!(out.code, 4, "{}", out.all_text());
    assert!(out.journal.is_none(), "a refused run writes no journal");
    assert!(!dir.join("journal.trace.json").exists());
    assert!(lines(dir, "trace").is_empty(), "{:?}", lines(dir, "trace"));
    assert!(
        out.stderr
            .contains("this run is refused, nothing ran and no journal is written"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("release it with: faultline kill --release"),
        "{}",
        out.stderr
    );
    for w in why {
        assert!(out.stderr.contains(w), "{w:?} not in:\n{}", out.stderr);
    }
    // Refused before the experiment was even read.
    assert!(!out.stderr.contains("Validating"), "{}", out.stderr);
}

#[test]
fn the_kill_switch_file_stops_a_running_experiment_and_refuses_the_next_until_released() {
    let dir = TempDir::new("kill-file");
    let _g = SleepGuard(vec![dir.join("long.sleep.pid")]);
    // In a directory that does not exist yet: `faultline kill` makes it.
    let switch = dir.join("switches/kill-switch");
    let switch = switch.to_str().unwrap();
    let off = kill_cmd(dir.path(), &["--status", "--kill-switch", switch], &[]);
    assert_eq!(off.code, 0, "{}", off.all_text());
    assert!(
        off.stdout.contains("the kill switch is off"),
        "{}",
        off.stdout
    );

    let guard = start_run(&dir, &long_experiment(), &["--kill-switch", switch], &[]);
    wait_until(LIMIT, "the long action to start", || {
        dir.join("long.ready").exists()
    });
    let engaged = kill_cmd(
        dir.path(),
        &["--kill-switch", switch, "--reason", "game day called off"],
        &[("USER", "alice")],
    );
    assert_eq!(engaged.code, 0, "{}", engaged.all_text());
    assert!(
        engaged.stdout.contains("the kill switch is engaged"),
        "{}",
        engaged.stdout
    );
    let out = finish(&dir, guard);
    check_stopped(&dir, &out, &["alice@", "game day called off", switch]);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("switches"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    // While it is on, the next run is refused, and `--status` says so.
    let _ = std::fs::remove_file(dir.join("trace"));
    let refused = run(&dir, &quick_experiment(), &["--kill-switch", switch], &[]);
    check_refused(
        &dir,
        &refused,
        &["game day called off", &format!("--kill-switch {switch}")],
    );
    let on = kill_cmd(dir.path(), &["--status", "--kill-switch", switch], &[]);
    assert_eq!(on.code, 4, "{}", on.all_text());
    assert!(on.stdout.contains("game day called off"), "{}", on.stdout);
    // `faultline validate` does not care.
    let p = dir.experiment(&quick_experiment());
    let valid = faultline(
        &dir,
        &["validate", p.to_str().unwrap()],
        &[("FAULTLINE_KILL_SWITCH", switch)],
    );
    assert_eq!(valid.code, 0, "{}", valid.all_text());

    // Released: runs start again.
    let released = kill_cmd(dir.path(), &["--release", "--kill-switch", switch], &[]);
    assert_eq!(released.code, 0, "{}", released.all_text());
    assert!(
        released.stdout.contains("the kill switch is released"),
        "{}",
        released.stdout
    );
    assert!(!Path::new(switch).exists());
    let again = run(&dir, &quick_experiment(), &["--kill-switch", switch], &[]);
    assert_eq!(again.code, 0, "{}", again.all_text());
    assert_eq!(lines(&dir, "trace"), ["ran", "undo"]);
}

#[test]
fn a_touched_file_from_the_environment_the_settings_or_the_default_refuses_a_run() {
    let dir = TempDir::new("kill-touch");
    // FAULTLINE_KILL_SWITCH, engaged by hand: an empty file is on.
    let touched = dir.write("touched", "");
    let out = run(
        &dir,
        &quick_experiment(),
        &[],
        &[("FAULTLINE_KILL_SWITCH", touched.to_str().unwrap())],
    );
    check_refused(
        &dir,
        &out,
        &[&format!("Kill switch engaged (file {})", touched.display())],
    );
    // The settings' kill_switch, when the flag and the environment say nothing.
    let garbage = dir.write("garbage", "{not json");
    let settings = dir.write(
        "settings.yaml",
        &format!("kill_switch: {}\n", garbage.display()),
    );
    let out = run(
        &dir,
        &quick_experiment(),
        &["--settings", settings.to_str().unwrap()],
        &[("FAULTLINE_KILL_SWITCH", "")],
    );
    check_refused(&dir, &out, &[garbage.to_str().unwrap()]);
    // The flag wins over both.
    let out = run(
        &dir,
        &quick_experiment(),
        &[
            "--settings",
            settings.to_str().unwrap(),
            "--kill-switch",
            dir.join("off").to_str().unwrap(),
        ],
        &[("FAULTLINE_KILL_SWITCH", touched.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    // The default under XDG_RUNTIME_DIR (only read here: no test engages a default).
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(runtime.join("faultline")).unwrap();
    std::fs::write(runtime.join("faultline/kill-switch"), "").unwrap();
    let _ = std::fs::remove_file(dir.join("trace"));
    let out = run(
        &dir,
        &quick_experiment(),
        &[],
        &[
            ("FAULTLINE_KILL_SWITCH", ""),
            ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
        ],
    );
    check_refused(
        &dir,
        &out,
        &[&format!(
            "(file {}/faultline/kill-switch)",
            runtime.display()
        )],
    );
    assert!(
        out.stderr
            .ends_with("release it with: faultline kill --release\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn post_v1_kill_stops_the_runs_attached_to_the_server_and_refuses_new_ones() {
    let dir = TempDir::new("kill-serve");
    let _g = SleepGuard(vec![dir.join("long.sleep.pid")]);
    let store = dir.join("store.db");
    let tok = token(&dir, "chaos", &store);
    let server_switch = dir.join("server-kill-switch");
    let served = Served::start(
        &dir,
        "a",
        &store,
        &["--kill-switch", server_switch.to_str().unwrap()],
    );
    let base = served.base.clone();
    faultline::tls::init();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{base}/v1/kill");
    let get = |http: &reqwest::blocking::Client| -> Value {
        let r = http.get(&url).bearer_auth(&tok).send().unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    assert_eq!(get(&http), json!({"engaged": false}));
    // The run's own switch file is another one: only the server can stop it here.
    let run_switch = dir.join("run-kill-switch");
    let attached = [
        "--store",
        base.as_str(),
        "--token",
        tok.as_str(),
        "--kill-switch",
        run_switch.to_str().unwrap(),
    ];
    let guard = start_run(&dir, &long_experiment(), &attached, &[]);
    wait_until(LIMIT, "the long action to start", || {
        dir.join("long.ready").exists()
    });
    // No token: refused.
    let r = http.post(&url).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth(&tok)
        .json(&json!({"reason": "incident 7 open", "by": "oncall@laptop"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["engaged"], true, "{v}");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["reason"], "incident 7 open", "{v}");
    assert_eq!(v["org"], "chaos", "{v}");
    let out = finish(&dir, guard);
    check_stopped(
        &dir,
        &out,
        &[
            "oncall@laptop",
            "(org chaos)",
            "incident 7 open",
            &format!("(server {base}/)"),
        ],
    );
    assert!(!run_switch.exists());
    // The server says it, keeps it in its store (not in its local switch file, which
    // only adds a way to engage it), and shows it to Prometheus.
    let v = get(&http);
    assert_eq!(
        (v["engaged"].clone(), v["reason"].clone()),
        (json!(true), json!("incident 7 open"))
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("faultline_kill_switch_engaged 1"),
        "{metrics}"
    );

    // A new attached run (through FAULTLINE_STORE this time) is refused.
    let _ = std::fs::remove_file(dir.join("trace"));
    let refused = run(
        &dir,
        &quick_experiment(),
        &["--token", tok.as_str()],
        &[("FAULTLINE_STORE", base.as_str())],
    );
    check_refused(
        &dir,
        &refused,
        &[
            "incident 7 open",
            &format!("release it with: faultline kill --release --server {base}/"),
        ],
    );

    // A restart keeps it on: the store holds it (no --kill-switch this time).
    drop(served);
    let served = Served::start(&dir, "b", &store, &[]);
    assert!(
        served.output().contains("kept in the store"),
        "{}",
        served.output()
    );
    let base = served.base.clone();
    let status = kill_cmd(
        dir.path(),
        &["--status", "--server", &base],
        &[("FAULTLINE_TOKEN", &tok)],
    );
    assert_eq!(status.code, 4, "{}", status.all_text());
    assert!(
        status.stdout.contains("incident 7 open"),
        "{}",
        status.stdout
    );
    // Released with `faultline kill --release --server`: attached runs start again.
    let released = kill_cmd(
        dir.path(),
        &["--release", "--server", &base, "--token", &tok],
        &[],
    );
    assert_eq!(released.code, 0, "{}", released.all_text());
    assert!(
        released.stdout.contains("the kill switch is released"),
        "{}",
        released.stdout
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("faultline_kill_switch_engaged 0"),
        "{metrics}"
    );
    let again = run(
        &dir,
        &quick_experiment(),
        &["--store", &base, "--token", &tok],
        &[],
    );
    assert_eq!(again.code, 0, "{}", again.all_text());
    assert!(!again.stderr.contains("kill_switch"), "{}", again.stderr);
    // `faultline kill --server` engages it too.
    let engaged = kill_cmd(
        dir.path(),
        &[
            "--server",
            &base,
            "--token",
            &tok,
            "--reason",
            "from the cli",
        ],
        &[],
    );
    assert_eq!(engaged.code, 0, "{}", engaged.all_text());
    let v: Value = http
        .get(format!("{base}/v1/kill"))
        .bearer_auth(&tok)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["reason"], "from the cli", "{v}");
    assert!(v["by"].as_str().is_some_and(|b| b.contains('@')), "{v}");
}

#[test]
fn the_servers_local_switch_file_engages_it_and_delete_removes_the_file() {
    let dir = TempDir::new("kill-serve-file");
    let store = dir.join("store.db");
    let tok = token(&dir, "chaos", &store);
    let file = dir.join("server-kill-switch");
    let served = Served::start(
        &dir,
        "a",
        &store,
        &["--kill-switch", file.to_str().unwrap()],
    );
    let status = |code: i32| {
        let out = kill_cmd(
            dir.path(),
            &["--status", "--server", &served.base],
            &[("FAULTLINE_TOKEN", &tok)],
        );
        assert_eq!(out.code, code, "{}", out.all_text());
        out
    };
    status(0);
    // `faultline kill --kill-switch FILE` on the server's machine engages it.
    let engaged = kill_cmd(
        dir.path(),
        &[
            "--kill-switch",
            file.to_str().unwrap(),
            "--reason",
            "by file",
        ],
        &[],
    );
    assert_eq!(engaged.code, 0, "{}", engaged.all_text());
    assert!(status(4).stdout.contains("by file"));
    // Released through the server: the file is gone, the switch off.
    let released = kill_cmd(
        dir.path(),
        &["--release", "--server", &served.base, "--token", &tok],
        &[],
    );
    assert_eq!(released.code, 0, "{}", released.all_text());
    assert!(!file.exists());
    status(0);
}

/// `GET /v1/kill` of `base`.
fn kill_status(http: &reqwest::blocking::Client, base: &str, tok: &str) -> Value {
    let r = http
        .get(format!("{base}/v1/kill"))
        .bearer_auth(tok)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

/// `POST /v1/kill` on `base` with `reason`: the status and the answer.
fn kill_post(
    http: &reqwest::blocking::Client,
    base: &str,
    tok: &str,
    reason: &str,
) -> (u16, Value) {
    let r = http
        .post(format!("{base}/v1/kill"))
        .bearer_auth(tok)
        .json(&json!({"reason": reason, "by": "oncall@laptop"}))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or_default())
}

#[test]
fn replicas_over_one_postgresql_share_one_kill_switch_fail_closed_without_it_and_recover() {
    let Some(pg) = crate::store::Postgres::start() else {
        return;
    };
    let url = pg.database(&crate::store::runtime());
    let db = Path::new(&url);
    let dir = TempDir::new("kill-replicas");
    let _g = SleepGuard(vec![dir.join("long.sleep.pid")]);
    let tok = token(&dir, "chaos", db);
    let a = Served::start(&dir, "a", db, &[]);
    let b = Served::start(&dir, "b", db, &[]);
    faultline::tls::init();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let engaged = |base: &str| kill_status(&http, base, &tok)["engaged"] == json!(true);
    assert!(!engaged(&a.base) && !engaged(&b.base));

    // A run attached to B, stopped by an engagement through A.
    let attached = [
        "--store",
        b.base.as_str(),
        "--token",
        tok.as_str(),
        "--kill-switch",
        dir.join("run-kill-switch").to_str().unwrap(),
    ]
    .map(str::to_string);
    let attached: Vec<&str> = attached.iter().map(String::as_str).collect();
    let guard = start_run(&dir, &long_experiment(), &attached, &[]);
    wait_until(LIMIT, "the long action to start", || {
        dir.join("long.ready").exists()
    });
    let (code, v) = kill_post(&http, &a.base, &tok, "engaged through a");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["changed"], true, "{v}");
    wait_until(LIMIT, "replica b to see the engagement", || {
        engaged(&b.base)
    });
    assert_eq!(
        kill_status(&http, &b.base, &tok)["reason"],
        "engaged through a"
    );
    let out = finish(&dir, guard);
    check_stopped(
        &dir,
        &out,
        &[
            "oncall@laptop",
            "engaged through a",
            &format!("(server {}/)", b.base),
        ],
    );

    // Released through B: A says so.
    let r = http
        .delete(format!("{}/v1/kill", b.base))
        .bearer_auth(&tok)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["released"], true, "{v}");
    assert_eq!(v["previous"]["reason"], "engaged through a", "{v}");
    wait_until(LIMIT, "replica a to see the release", || !engaged(&a.base));

    // Both engage at once: one engagement wins, both answer it (no lost update).
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| kill_post(&http, &a.base, &tok, "race a"));
        let tb = s.spawn(|| kill_post(&http, &b.base, &tok, "race b"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    assert_eq!(ra.1["reason"], rb.1["reason"], "{ra:?} {rb:?}");
    let changed = [&ra.1, &rb.1]
        .iter()
        .filter(|v| v["changed"] == json!(true))
        .count();
    assert_eq!(changed, 1, "{ra:?} {rb:?}");
    let winner = ra.1["reason"].clone();

    // A restarted replica finds it engaged at once.
    drop(a);
    let a = Served::start(&dir, "a2", db, &[]);
    let v = kill_status(&http, &a.base, &tok);
    assert_eq!(
        (&v["engaged"], &v["reason"]),
        (&json!(true), &winner),
        "{v}"
    );

    // Released, then the database goes away: the switch reads as engaged, saying
    // why, and an engagement that cannot be written is an error.
    let r = http
        .delete(format!("{}/v1/kill", a.base))
        .bearer_auth(&tok)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(LIMIT, "replica b to see the release", || !engaged(&b.base));
    pg.stop();
    for served in [&a, &b] {
        wait_until(LIMIT, "the switch to read as engaged", || {
            engaged(&served.base)
        });
        let v = kill_status(&http, &served.base, &tok);
        let reason = v["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("the store's switch cannot be checked"),
            "{v}"
        );
    }
    let (code, v) = kill_post(&http, &b.base, &tok, "no database");
    assert!((500..600).contains(&code), "{code} {v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be engaged")),
        "{v}"
    );
    // Meanwhile a request answers at once, 503 (within the client's 30 s: it does
    // not hang), and each replica says it is not ready while it stays alive.
    let ready = |base: &str| {
        http.get(format!("{base}/readyz"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for served in [&a, &b] {
        let r = http
            .get(format!("{}/api/v1/orgs/chaos/objectives", served.base))
            .bearer_auth(&tok)
            .send()
            .expect("an answer within the client's limit");
        assert_eq!(r.status(), 503, "{:?}", r.text());
        assert_eq!(ready(&served.base), 503);
        let r = http.get(format!("{}/healthz", served.base)).send().unwrap();
        assert_eq!(r.status(), 200);
    }

    // The database comes back (same port, same data): both replicas reconnect by
    // themselves, the switch reads as it is in the store (released), they are
    // ready again, and an engagement works again, seen by both.
    pg.start_again();
    for served in [&a, &b] {
        wait_until(LIMIT, "the replica to be ready again", || {
            ready(&served.base) == 200
        });
        wait_until(LIMIT, "the switch to read as released again", || {
            !engaged(&served.base)
        });
    }
    let (code, v) = kill_post(&http, &b.base, &tok, "after the restart");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["changed"], true, "{v}");
    wait_until(LIMIT, "replica a to see the engagement", || {
        engaged(&a.base)
    });
    assert_eq!(
        kill_status(&http, &a.base, &tok)["reason"],
        "after the restart"
    );
    drop((a, b));
}

#[test]
fn a_server_that_cannot_be_reached_never_stops_a_run_and_is_reported_once() {
    let dir = TempDir::new("kill-unreachable");
    let gone = format!("http://127.0.0.1:{}", closed_port());
    let e = json!({"title": "slow", "description": "d",
        // Long enough for a few polls of the server (every 500 ms).
        "method": [sh("action", "wait", "sleep 1.5; echo ran >> trace")]});
    let out = run(&dir, &e, &["--store", &gone], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["ran"]);
    let warnings = out
        .stderr
        .lines()
        .filter(|l| l.contains("the kill switch of http://127.0.0.1"))
        .count();
    assert_eq!(warnings, 1, "{}", out.stderr);
    assert!(out.stderr.contains("the run goes on"), "{}", out.stderr);
}
