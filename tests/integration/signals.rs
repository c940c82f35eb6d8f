//! Safety: signals and timeouts. A first SIGINT/SIGTERM stops the running activity
//! (its whole process group), still plays the rollbacks (strategy `always`), writes the
//! journal with status `interrupted` and exits 2; a second one exits at once. A
//! run-wide `--activity-timeout` stops activities that declare no timeout.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a signalled faultline may take to exit (the activity sleeps 300 s).
const PROMPT: Duration = Duration::from_secs(10);

/// A shell activity that starts `sleep 300` in the background, records both pids,
/// then touches `<tag>.ready` and waits: killing only the shell would leave the sleep.
/// (`$$$$` because `$$` is a literal `$` in the Chaos Toolkit's substitution.)
fn long_sleeper(kind: &str, name: &str, tag: &str) -> Value {
    sh(
        kind,
        name,
        &format!("sleep 300 & echo $! > {tag}.sleep.pid; echo $$$$ > {tag}.sh.pid; touch {tag}.ready; wait"),
    )
}

fn guard_for(dir: &TempDir, tags: &[&str]) -> SleepGuard {
    SleepGuard(
        tags.iter()
            .map(|t| dir.join(&format!("{t}.sleep.pid")))
            .collect(),
    )
}

/// Both processes of a [`long_sleeper`] are gone (polling, bounded).
fn assert_sleeper_gone(dir: &TempDir, tag: &str) {
    for which in ["sleep", "sh"] {
        let pid = read_pid(&dir.join(&format!("{tag}.{which}.pid")));
        assert!(
            wait_pid_gone(pid, Duration::from_secs(5)),
            "{tag}: the {which} process {pid} is still running"
        );
    }
}

/// Start `faultline run` on `e`; wait for every `<ready>.ready`; send `sig`; return
/// the output and the time from the signal to the exit.
fn run_and_signal(
    dir: &TempDir,
    e: &Value,
    extra: &[&str],
    ready: &[&str],
    sig: &str,
) -> (Output, Duration) {
    let p = dir.experiment(e);
    let journal = dir.join("journal.json");
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut guard = ChildGuard(Some(spawn(dir, &args, &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "the activities to start", || {
        ready
            .iter()
            .all(|r| dir.join(&format!("{r}.ready")).exists())
    });
    let signalled = Instant::now();
    send_signal(child.id(), sig);
    let code = wait_with_limit(child, Duration::from_secs(60));
    let took = signalled.elapsed();
    let out = collect(dir, code, &journal);
    assert_no_panic(&out);
    (out, took)
}

fn interrupted_experiment() -> Value {
    json!({"title": "interrupt me", "description": "a long method",
        "method": [
            tracer("action", "first", "first"),
            long_sleeper("action", "long", "long"),
            tracer("action", "never", "never")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]})
}

/// The common checks of an interrupted run with rollbacks played.
fn check_interrupted(dir: &TempDir, out: &Output, took: Duration, sig: &str) {
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "exit took {took:?} after {sig}");
    assert_eq!(out.status(), "interrupted");
    assert!(!out.deviated());
    assert_eq!(out.run_names(), ["first", "long"]);
    let long = entry(&out.journal()["run"], "long");
    assert_eq!(long["status"], "failed");
    let exc = exception_text(long);
    assert!(exc.contains(sig), "{exc}");
    assert_sleeper_gone(dir, "long");
    // The method stopped: the activity after the interrupted one never ran.
    let trace = lines(dir, "trace");
    assert!(!trace.contains(&"never".to_string()), "{trace:?}");
    assert!(out.stderr.contains(sig), "{}", out.stderr);
    // The console does not contradict itself: the method was not completed.
    assert!(out.stderr.contains("Method interrupted"), "{}", out.stderr);
    assert!(!out.stderr.contains("Method completed"), "{}", out.stderr);
}

#[test]
fn sigterm_stops_the_activity_rolls_back_and_exits_2() {
    let dir = TempDir::new("sig-term");
    let _g = guard_for(&dir, &["long"]);
    let (out, took) = run_and_signal(&dir, &interrupted_experiment(), &[], &["long"], "TERM");
    check_interrupted(&dir, &out, took, "SIGTERM");
    assert_eq!(out.rollback_names(), ["undo"]);
    assert_eq!(
        entry(&out.journal()["rollbacks"], "undo")["status"],
        "succeeded"
    );
}

#[test]
fn sigint_stops_the_activity_rolls_back_and_exits_2() {
    let dir = TempDir::new("sig-int");
    let _g = guard_for(&dir, &["long"]);
    let (out, took) = run_and_signal(&dir, &interrupted_experiment(), &[], &["long"], "INT");
    check_interrupted(&dir, &out, took, "SIGINT");
    assert_eq!(out.rollback_names(), ["undo"]);
}

#[test]
fn interrupted_run_with_the_default_rollback_strategy_skips_rollbacks() {
    let dir = TempDir::new("sig-default");
    let _g = guard_for(&dir, &["long"]);
    let (out, took) = run_and_signal(
        &dir,
        &interrupted_experiment(),
        &["--rollback-strategy", "default"],
        &["long"],
        "TERM",
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    assert!(out.rollback_names().is_empty());
    assert_eq!(lines(&dir, "trace"), ["first"]);
    assert_sleeper_gone(&dir, "long");
}

#[test]
fn a_second_signal_during_a_slow_rollback_exits_at_once() {
    let dir = TempDir::new("sig-twice");
    let _g = guard_for(&dir, &["long", "rollback"]);
    let e = json!({"title": "twice", "description": "slow rollback",
        "method": [long_sleeper("action", "long", "long")],
        "rollbacks": [long_sleeper("action", "slow-undo", "rollback")]});
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(Some(spawn(&dir, &args, &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "the method to start", || {
        dir.join("long.ready").exists()
    });
    send_signal(child.id(), "TERM");
    // The first signal interrupted the method; the rollback starts and blocks.
    wait_until(Duration::from_secs(30), "the rollback to start", || {
        dir.join("rollback.ready").exists()
    });
    let second = Instant::now();
    send_signal(child.id(), "INT");
    let code = wait_with_limit(child, Duration::from_secs(60));
    let took = second.elapsed();
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert_eq!(code, 2, "{}", out.all_text());
    assert!(
        took < Duration::from_secs(5),
        "second signal: exit took {took:?}"
    );
    // Exiting at once still leaves nothing running behind, nor a temporary file (the
    // journal's and the trace file's were created when the run started).
    assert_sleeper_gone(&dir, "long");
    assert_sleeper_gone(&dir, "rollback");
    assert_no_temporaries(dir.path());
}

/// Regression: the handlers were installed when their task first ran, at the run's
/// first wait, after the first child had started: a signal sent as soon as that child
/// ran (by the child itself here) killed faultline outright, without rollbacks or
/// journal.
#[test]
fn a_signal_sent_by_the_first_activity_at_once_is_an_interrupt() {
    let dir = TempDir::new("sig-early");
    let e = json!({"title": "early", "description": "the first activity signals at once",
        "method": [
            sh("action", "signal", "kill -TERM $PPID; sleep 5"),
            tracer("action", "never", "never")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let out = run_experiment(&dir, &e, &["--rollback-strategy", "always"]);
    assert_no_panic(&out);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn sigterm_during_a_pause_interrupts_it() {
    let dir = TempDir::new("sig-pause");
    let e = json!({"title": "pause", "description": "a long pause",
        "method": [
            with(sh("action", "mark", "touch pause.ready"), "pauses", json!({"after": 300})),
            tracer("action", "never", "never")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["pause"], "TERM");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    assert_eq!(lines(&dir, "trace"), ["undo"]);
    assert!(dir.join("journal.trace.json").exists());
    assert_no_temporaries(dir.path());
}

#[test]
fn sigterm_stops_background_activities_too() {
    let dir = TempDir::new("sig-background");
    let _g = guard_for(&dir, &["bg", "fg"]);
    let e = json!({"title": "background", "description": "two sleepers",
        "method": [
            with(long_sleeper("action", "bg", "bg"), "background", json!(true)),
            long_sleeper("action", "fg", "fg")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(Some(spawn(&dir, &args, &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "both sleepers to start", || {
        dir.join("bg.ready").exists() && dir.join("fg.ready").exists()
    });
    let signalled = Instant::now();
    send_signal(child.id(), "TERM");
    let code = wait_with_limit(child, Duration::from_secs(60));
    let took = signalled.elapsed();
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert_eq!(code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    for name in ["bg", "fg"] {
        assert_eq!(entry(&out.journal()["run"], name)["status"], "failed");
        assert_sleeper_gone(&dir, name);
    }
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn run_wide_activity_timeout_stops_an_activity_without_its_own() {
    let dir = TempDir::new("sig-activity-timeout");
    let _g = guard_for(&dir, &["long"]);
    let e = json!({"title": "timeout", "description": "run-wide activity timeout",
        "method": [long_sleeper("action", "long", "long"), tracer("action", "next", "next")],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let started = Instant::now();
    let out = run_experiment(&dir, &e, &["--activity-timeout", "1"]);
    assert_no_panic(&out);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // A timed-out method activity is a failed entry; the run goes on (as the CTK).
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    let long = entry(&out.journal()["run"], "long");
    assert_eq!(long["status"], "failed");
    let exc = exception_text(long);
    assert!(exc.contains("timeout"), "{exc}");
    assert!(exc.contains('1'), "{exc}");
    let d = long["duration"].as_f64().unwrap();
    assert!((0.9..10.0).contains(&d), "duration {d}");
    assert_sleeper_gone(&dir, "long");
    assert_eq!(lines(&dir, "trace"), ["next", "undo"]);
}

#[test]
fn activity_timeout_flag_must_be_positive() {
    let dir = TempDir::new("sig-timeout-flag");
    let e = json!({"title": "t", "description": "d", "method": []});
    for bad in ["0", "-1", "soon", "NaN"] {
        let flag = format!("--activity-timeout={bad}");
        let out = run_experiment(&dir, &e, &[&flag]);
        assert_no_panic(&out);
        assert_eq!(out.code, 3, "--activity-timeout {bad}: {}", out.all_text());
        assert!(
            out.journal.is_none(),
            "--activity-timeout {bad} wrote a journal"
        );
        assert!(
            out.stderr.contains("activity-timeout"),
            "{bad}: {}",
            out.stderr
        );
    }
}

#[test]
fn sigterm_during_the_hypothesis_skips_the_method_and_still_rolls_back() {
    let dir = TempDir::new("sig-hypothesis");
    let _g = guard_for(&dir, &["probe"]);
    let e = json!({"title": "hypothesis", "description": "a slow probe",
        "steady-state-hypothesis": {"title": "slow", "probes": [
            with(long_sleeper("probe", "slow-probe", "probe"), "tolerance", json!(0))]},
        "method": [tracer("action", "never", "never")],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["probe"], "TERM");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    assert!(out.run_names().is_empty());
    assert_eq!(out.hypothesis_names("before"), ["slow-probe"]);
    assert_eq!(lines(&dir, "trace"), ["undo"]);
    assert_sleeper_gone(&dir, "probe");
}

#[test]
fn sigterm_during_a_python_activity_kills_the_interpreter() {
    let dir = TempDir::new("sig-python");
    dir.write(
        "sleeper.py",
        "import os, time\ndef nap(marker):\n    open(marker + '.pid', 'w').write(str(os.getpid()))\n    open(marker + '.ready', 'w').close()\n    time.sleep(300)\n",
    );
    let e = json!({"title": "python", "description": "a sleeping function",
        "method": [python("action", "nap", "sleeper", "nap", json!({"marker": "py"}))],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["py"], "TERM");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    let pid = read_pid(&dir.join("py.pid"));
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)),
        "python {pid} still running"
    );
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn sigint_during_a_slow_http_request_interrupts_it() {
    let dir = TempDir::new("sig-http");
    let ready = dir.join("http.ready");
    let marker = ready.clone();
    let srv = HttpServer::start(move |_| {
        let _ = std::fs::write(&marker, "");
        Response::text(200, "late").delay(Duration::from_secs(60))
    });
    let e = json!({"title": "http", "description": "a slow server",
        "method": [{"type": "probe", "name": "slow-call",
                    "provider": {"type": "http", "url": srv.url("/slow")}}],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["http"], "INT");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    let call = entry(&out.journal()["run"], "slow-call");
    assert_eq!(call["status"], "failed");
    assert!(exception_text(call).contains("SIGINT"), "{call:#}");
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn a_first_signal_during_rollbacks_lets_them_finish() {
    let dir = TempDir::new("sig-in-rollback");
    let e = json!({"title": "rollback", "description": "signal while rolling back",
        "method": [tracer("action", "quick", "quick")],
        "rollbacks": [sh("action", "undo", "touch undo.ready; sleep 1; echo undone >> trace")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["undo"], "TERM");
    assert!(took < PROMPT, "{took:?}");
    assert!(matches!(out.code, 0 | 2), "{}", out.all_text());
    // Rollbacks are what repairs the system: the first signal does not cut them short.
    assert_eq!(lines(&dir, "trace"), ["quick", "undone"]);
    assert_eq!(
        entry(&out.journal()["rollbacks"], "undo")["status"],
        "succeeded"
    );
}

#[test]
fn sigterm_during_dynamic_configuration_interrupts_the_run() {
    let dir = TempDir::new("sig-config");
    let _g = guard_for(&dir, &["config"]);
    let e = json!({"title": "config", "description": "a slow configuration probe",
        "configuration": {"value": long_sleeper("probe", "slow-config", "config")},
        "method": [tracer("action", "never", "never")],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, took) = run_and_signal(&dir, &e, &[], &["config"], "TERM");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(took < PROMPT, "{took:?}");
    assert_eq!(out.status(), "interrupted");
    assert!(!lines(&dir, "trace").contains(&"never".to_string()));
    assert_sleeper_gone(&dir, "config");
}

/// A shell activity whose grandchild daemonises (a subshell that exits at once, then
/// `setsid`: a new session and process group, reparented away from the activity),
/// records the daemon's `sleep` pid in `<tag>.sleep.pid`, touches `<tag>.ready`, and
/// then the activity itself waits.
fn daemonising(kind: &str, name: &str, tag: &str) -> Value {
    sh(
        kind,
        name,
        &format!(
            "(setsid sh -c 'sleep 300 & echo $$! > {tag}.sleep.pid; touch {tag}.ready; wait' > /dev/null 2>&1 < /dev/null &); \
             while [ ! -f {tag}.ready ]; do sleep 0.01; done; sleep 300"
        ),
    )
}

/// The daemon of a [`daemonising`] activity is gone (polling, bounded).
fn assert_daemon_gone(dir: &TempDir, tag: &str) {
    let pid = read_pid(&dir.join(&format!("{tag}.sleep.pid")));
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)),
        "{tag}: the daemonised grandchild {pid} survived"
    );
}

#[test]
fn a_timeout_kills_a_daemonised_grandchild_too() {
    let dir = TempDir::new("orphan-timeout");
    let _g = guard_for(&dir, &["d"]);
    let e = experiment(
        vec![],
        vec![with(
            daemonising("action", "daemon", "d"),
            "timeout",
            json!(5),
        )],
        vec![tracer("action", "undo", "undo")],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_no_panic(&out);
    let daemon = entry(&out.journal()["run"], "daemon");
    assert!(exception_text(daemon).contains("timeout"), "{daemon}");
    assert_daemon_gone(&dir, "d");
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn sigint_kills_a_daemonised_grandchild_too() {
    let dir = TempDir::new("orphan-sigint");
    let _g = guard_for(&dir, &["d"]);
    let e = experiment(
        vec![],
        vec![daemonising("action", "daemon", "d")],
        vec![tracer("action", "undo", "undo")],
    );
    let (out, _) = run_and_signal(&dir, &e, &[], &["d"], "INT");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_daemon_gone(&dir, "d");
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn a_second_signal_kills_a_daemonised_grandchild_of_a_rollback() {
    let dir = TempDir::new("orphan-twice");
    let _g = guard_for(&dir, &["long", "d"]);
    let e = experiment(
        vec![],
        vec![long_sleeper("action", "long", "long")],
        vec![daemonising("action", "slow-undo", "d")],
    );
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(Some(spawn(&dir, &args, &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "the method to start", || {
        dir.join("long.ready").exists()
    });
    send_signal(child.id(), "TERM");
    wait_until(
        Duration::from_secs(30),
        "the rollback's daemon to start",
        || dir.join("d.ready").exists(),
    );
    send_signal(child.id(), "TERM");
    let code = wait_with_limit(child, Duration::from_secs(60));
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert_eq!(code, 2, "{}", out.all_text());
    assert_sleeper_gone(&dir, "long");
    assert_daemon_gone(&dir, "d");
    assert_no_temporaries(dir.path());
}

#[test]
fn an_activity_that_ends_normally_keeps_its_daemon_as_the_chaos_toolkit_does() {
    let dir = TempDir::new("orphan-kept");
    let _g = guard_for(&dir, &["d"]);
    let e = experiment(
        vec![],
        vec![sh(
            "action",
            "start-daemon",
            "(setsid sh -c 'sleep 300 & echo $$! > d.sleep.pid; touch d.ready; wait' > /dev/null 2>&1 < /dev/null &); \
             while [ ! -f d.ready ]; do sleep 0.01; done",
        )],
        vec![],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let pid = read_pid(&dir.join("d.sleep.pid"));
    assert!(!pid_gone(pid), "the daemon started on purpose was killed");
    // (The guard kills it when the test ends.)
}

#[test]
fn sighup_is_a_stop_like_sigterm_rollbacks_journal_and_no_orphan() {
    let dir = TempDir::new("sig-hup");
    let _g = guard_for(&dir, &["long", "d"]);
    let e = json!({"title": "hang up", "description": "the SSH session drops",
        "method": [
            tracer("action", "first", "first"),
            with(daemonising("action", "daemon", "d"), "background", json!(true)),
            long_sleeper("action", "long", "long"),
            tracer("action", "never", "never")
        ],
        "rollbacks": [tracer("action", "undo", "undo")]});
    let (out, _) = run_and_signal(&dir, &e, &[], &["long", "d"], "HUP");
    let code = out.code;
    assert_eq!(code, 2, "exit as for SIGTERM, not 129: {}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(exception_text(entry(&out.journal()["run"], "long")).contains("SIGHUP"));
    assert_sleeper_gone(&dir, "long");
    assert_daemon_gone(&dir, "d");
    assert_eq!(lines(&dir, "trace"), ["first", "undo"]);
    assert_no_temporaries(dir.path());
}

#[test]
fn a_closed_terminal_does_not_stop_the_run_from_rolling_back_and_writing_its_journal() {
    let dir = TempDir::new("closed-tty");
    let e = experiment(
        vec![with(
            tracer("probe", "check", "check"),
            "tolerance",
            json!(0),
        )],
        vec![sh("action", "chatty", "seq 1 20000")],
        vec![tracer("action", "undo", "undo")],
    );
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let mut child = std::process::Command::new(bin())
        .args([
            "run",
            p.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--verbose",
        ])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads what it prints any more: writes fail with EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let code = wait_with_limit(&mut child, Duration::from_secs(60));
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(j["status"], "completed");
    assert_eq!(lines(&dir, "trace"), ["check", "check", "undo"]);
}

#[test]
fn a_stopped_activity_kills_a_descendant_that_cleared_its_environment_and_left_the_group() {
    // `setsid env -i`: a new session and process group, and no tag; only the parent
    // chain leads to it.
    let dir = TempDir::new("orphan-env-i");
    let _g = guard_for(&dir, &["bare"]);
    let e = experiment(
        vec![],
        vec![sh(
            "action",
            "bare",
            "setsid env -i sleep 300 > /dev/null 2>&1 < /dev/null & echo $$! > bare.sleep.pid; touch bare.ready; wait",
        )],
        vec![tracer("action", "undo", "undo")],
    );
    let pid = {
        let (out, _) = run_and_signal(&dir, &e, &[], &["bare"], "INT");
        assert_eq!(out.code, 2, "{}", out.all_text());
        read_pid(&dir.join("bare.sleep.pid"))
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&environ).contains("FAULTLINE_ACTIVITY_TAG"),
        "the test's process should carry no tag"
    );
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)),
        "the untagged descendant {pid} in its own session survived"
    );
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn stopping_an_activity_of_a_faultline_run_inside_an_activity_kills_the_inner_run_s_daemon() {
    // The inner faultline tags its own children; they keep the outer tag too, so the
    // outer run stopping its activity (which kills the inner faultline outright, before
    // it can clean up) still finds the inner activity's daemon.
    let dir = TempDir::new("orphan-nested");
    let _g = guard_for(&dir, &["d", "inner"]);
    // As `daemonising`, but the activity's own shell records its pid and becomes the
    // `sleep` it waits with, so every process is known and cleaned up.
    let inner_activity = sh(
        "action",
        "daemon",
        "echo $$$$ > inner.sleep.pid; \
         (setsid sh -c 'sleep 300 & echo $$! > d.sleep.pid; touch d.ready; wait' > /dev/null 2>&1 < /dev/null &); \
         while [ ! -f d.ready ]; do sleep 0.01; done; exec sleep 300",
    );
    let inner = dir.write(
        "inner.json",
        &experiment(vec![], vec![inner_activity], vec![]).to_string(),
    );
    let inner_journal = dir.join("inner-journal.json");
    let e = experiment(
        vec![],
        vec![process(
            "action",
            "inner-run",
            bin(),
            &[
                "run",
                inner.to_str().unwrap(),
                "--journal-path",
                inner_journal.to_str().unwrap(),
            ],
        )],
        vec![tracer("action", "undo", "undo")],
    );
    let (out, _) = run_and_signal(&dir, &e, &[], &["d"], "INT");
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_daemon_gone(&dir, "d");
    let inner = read_pid(&dir.join("inner.sleep.pid"));
    assert!(
        wait_pid_gone(inner, Duration::from_secs(5)),
        "the inner run's activity {inner} survived"
    );
    assert_eq!(lines(&dir, "trace"), ["undo"]);
}

#[test]
fn stopping_a_background_activity_leaves_a_concurrent_activity_s_processes_alone() {
    // The background activity times out and its tree is killed while the other one is
    // running: only the timed-out activity's processes may go.
    let dir = TempDir::new("orphan-sibling");
    let _g = guard_for(&dir, &["d", "fg"]);
    let e = experiment(
        vec![],
        vec![
            with(
                with(daemonising("action", "bg", "d"), "timeout", json!(5)),
                "background",
                json!(true),
            ),
            sh(
                "action",
                "fg",
                "sleep 300 & echo $$! > fg.sleep.pid; touch fg.ready; \
                 while [ ! -e release ]; do sleep 0.01; done; kill $$!",
            ),
        ],
        vec![],
    );
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(Some(spawn(&dir, &args, &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "both activities to start", || {
        dir.join("d.ready").exists() && dir.join("fg.ready").exists()
    });
    // The background activity's timeout kills its daemon...
    let daemon = read_pid(&dir.join("d.sleep.pid"));
    assert!(
        wait_pid_gone(daemon, Duration::from_secs(30)),
        "the timed-out activity's daemon {daemon} survived"
    );
    // ... and nothing of the other activity.
    let fg = read_pid(&dir.join("fg.sleep.pid"));
    assert!(
        !pid_gone(fg),
        "the concurrent activity's process {fg} was killed"
    );
    std::fs::write(dir.join("release"), "").unwrap();
    let code = wait_with_limit(child, Duration::from_secs(60));
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert_eq!(entry(&out.journal()["run"], "fg")["status"], "succeeded");
    assert!(exception_text(entry(&out.journal()["run"], "bg")).contains("timeout"));
}
