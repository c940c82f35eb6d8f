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
    let out = faultline(&dir, &["schedule", "b.yaml", "--label", "bad"], &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let t = out.all_text();
    assert!(t.contains("$.experiments[0].cron"), "{t}");
    assert!(
        t.contains("$.experiments[0].experiment: a.json: no such file"),
        "{t}"
    );
    assert!(t.contains("$.experiments[1].experiment: required"), "{t}");
    assert!(t.contains("--label: label \"bad\""), "{t}");
    assert!(!dir.join("journals").exists(), "nothing ran");
}

/// The journals of the entry `name` (`<name>-<run id>.json`).
fn journals_of(dir: &TempDir, name: &str) -> usize {
    std::fs::read_dir(dir.join("journals"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with(&format!("{name}-"))
                        && n.ends_with(".json")
                        && !n.ends_with(".trace.json")
                })
                .count()
        })
        .unwrap_or(0)
}

/// The console's JSON lines (`--log-format json`) of event `event`.
fn events(dir: &TempDir, event: &str) -> Vec<serde_json::Value> {
    text(dir)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

#[test]
fn every_run_is_recorded_with_its_entry_labels_and_runs_of_one_entry_never_overlap() {
    let dir = TempDir::new("schedule-record");
    // Each run takes longer than the one-second cron: the next firing finds it running.
    let e = experiment(
        vec![],
        vec![process("action", "nap", "sleep", &["1.3"])],
        vec![],
    );
    dir.write("nap.json", &serde_json::to_string(&e).unwrap());
    dir.write(
        "s.yaml",
        "experiments:\n  - {name: checkout, experiment: nap.json, cron: \"*/1 * * * * *\", labels: {service: checkout}}\n  - {name: cart, experiment: nap.json, cron: \"*/1 * * * * *\", labels: {service: cart, tier: \"1\"}}\n",
    );
    let store = dir.join("history.db");
    let store = store.to_str().unwrap();
    let args = [
        "schedule",
        "s.yaml",
        "--store",
        store,
        "--label",
        "team=payments",
        "--log-format",
        "json",
    ];
    let mut guard = ChildGuard(Some(spawn(&dir, &args, &[])));
    wait_until(LIMIT, "two finished runs of each entry", || {
        let done = events(&dir, "schedule.done");
        ["checkout", "cart"].iter().all(|n| {
            done.iter()
                .filter(|d| {
                    d["message"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(&format!("{n}: run "))
                })
                .count()
                >= 2
        })
    });
    send_signal(guard.0.as_ref().unwrap().id(), "TERM");
    assert_eq!(
        wait_with_limit(guard.0.as_mut().unwrap(), LIMIT),
        0,
        "{}",
        text(&dir)
    );
    let skipped = events(&dir, "schedule.skipped");
    assert!(
        skipped.iter().any(|s| s["message"]
            .as_str()
            .unwrap()
            .contains("its previous run is still running")),
        "{}",
        text(&dir)
    );
    let (n_checkout, n_cart) = (journals_of(&dir, "checkout"), journals_of(&dir, "cart"));

    let list = faultline(
        &dir,
        &[
            "runs", "list", "--format", "json", "--store", store, "--limit", "0",
        ],
        &[],
    );
    assert_eq!(list.code, 0, "{}", list.all_text());
    let runs: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(
        runs.len(),
        n_checkout + n_cart,
        "every run recorded: {runs:#?}"
    );
    for (name, service, n) in [
        ("checkout", "checkout", n_checkout),
        ("cart", "cart", n_cart),
    ] {
        let mut mine: Vec<&serde_json::Value> = runs
            .iter()
            .filter(|r| {
                let j = r["journal"].as_str().unwrap();
                std::path::Path::new(j)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-"))
            })
            .collect();
        assert_eq!(mine.len(), n, "{name}: {runs:#?}");
        assert!(n >= 2, "{name}: {n} run(s)");
        for r in &mine {
            // The entry's `service` replaces `--label service=all`.
            assert_eq!(r["labels"]["service"], service, "{r:#}");
            assert_eq!(
                r["labels"]["team"], "payments",
                "the --label of every run: {r:#}"
            );
            let status = r["status"].as_str().unwrap();
            assert!(["completed", "interrupted"].contains(&status), "{r:#}");
        }
        assert_eq!(
            mine.iter().any(|r| r["labels"]["tier"] == "1"),
            name == "cart"
        );
        // Oldest first; each run started after the previous one ended.
        mine.sort_by_key(|r| r["started"].as_str().unwrap().to_string());
        let time = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
        };
        for w in mine.windows(2) {
            assert!(
                time(&w[1]["started"]) >= time(&w[0]["ended"]),
                "{name}: runs overlap: {:#} then {:#}",
                w[0],
                w[1]
            );
        }
        // Only the last run can have been interrupted by the SIGTERM.
        for r in &mine[..mine.len() - 1] {
            assert_eq!(r["status"], "completed", "{r:#}");
        }
    }
}

/// A shell activity that starts `sleep 300` in the background, records both pids,
/// then touches `<tag>.ready` and waits (`$$$$`: a literal `$$` after substitution).
fn long_sleeper(kind: &str, name: &str, tag: &str) -> serde_json::Value {
    sh(
        kind,
        name,
        &format!("sleep 300 & echo $! > {tag}.sleep.pid; echo $$$$ > {tag}.sh.pid; touch {tag}.ready; wait"),
    )
}

#[test]
fn a_second_signal_while_the_first_waits_for_running_runs_exits_at_once() {
    let dir = TempDir::new("schedule-twice");
    let _sleepers = SleepGuard(vec![
        dir.join("long.sleep.pid"),
        dir.join("rollback.sleep.pid"),
    ]);
    let e = experiment(
        vec![],
        vec![long_sleeper("action", "long", "long")],
        vec![long_sleeper("action", "slow-undo", "rollback")],
    );
    dir.write("slow.json", &serde_json::to_string(&e).unwrap());
    dir.write(
        "s.yaml",
        "experiments:\n  - {name: slow, experiment: slow.json, cron: \"*/1 * * * * *\"}\n",
    );
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "s.yaml"], &[])));
    let child = guard.0.as_mut().unwrap();
    wait_until(LIMIT, "the method to start", || {
        dir.join("long.ready").exists()
    });
    send_signal(child.id(), "TERM");
    // The first signal interrupted the run; its rollback starts and blocks, and the
    // scheduler waits for it.
    wait_until(LIMIT, "the rollback to start", || {
        dir.join("rollback.ready").exists()
    });
    assert!(child.try_wait().unwrap().is_none(), "{}", text(&dir));
    send_signal(child.id(), "TERM");
    // The rollback sleeps 300 s: ending within LIMIT is giving it up.
    let code = wait_with_limit(child, LIMIT);
    assert_eq!(code, 2, "{}", text(&dir));
    assert!(text(&dir).contains("again: exiting now"), "{}", text(&dir));
    // Given up: the activities' processes are gone, no journal, no temporary file.
    for tag in ["long", "rollback"] {
        for which in ["sleep", "sh"] {
            let pid = read_pid(&dir.join(&format!("{tag}.{which}.pid")));
            assert!(
                wait_pid_gone(pid, LIMIT),
                "{tag}: the {which} process {pid} is still running"
            );
        }
    }
    assert!(journals(&dir).is_empty(), "no journal: {}", text(&dir));
    assert_no_temporaries(&dir.join("journals"));
}

#[test]
fn entry_options_reach_their_runs_and_paths_are_the_files() {
    let dir = TempDir::new("schedule-options");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::create_dir_all(dir.join("exp")).unwrap();
    let mut e = experiment(
        vec![],
        vec![sh("action", "greet", "echo ${greeting} ${who} >> out")],
        vec![rollback()],
    );
    e["configuration"] = serde_json::json!({"greeting": "bye", "who": "nobody"});
    dir.write("exp/e.json", &serde_json::to_string(&e).unwrap());
    dir.write("conf/vars.json", r#"{"configuration": {"who": "world"}}"#);
    // Paths are the schedule file's: `../exp/e.json`, `vars.json`.
    dir.write(
        "conf/s.yaml",
        "experiments:\n  - name: greet\n    experiment: ../exp/e.json\n    cron: \"*/1 * * * * *\"\n    vars: {greeting: hello}\n    var_files: [vars.json]\n    rollback_strategy: never\n",
    );
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "conf/s.yaml"], &[])));
    wait_until(LIMIT, "a finished run", || {
        text(&dir).contains("greet: run ") && text(&dir).contains("ended with exit code")
    });
    send_signal(guard.0.as_ref().unwrap().id(), "TERM");
    assert_eq!(
        wait_with_limit(guard.0.as_mut().unwrap(), LIMIT),
        0,
        "{}",
        text(&dir)
    );
    let out = lines(&dir, "out");
    assert!(!out.is_empty(), "{}", text(&dir));
    assert!(out.iter().all(|l| l == "hello world"), "{out:?}");
    assert!(
        text(&dir).contains("ended with exit code 0"),
        "{}",
        text(&dir)
    );
    assert!(lines(&dir, "trace").is_empty(), "rollback_strategy: never");
}

#[test]
fn next_lists_the_firings_inside_the_windows_and_runs_nothing() {
    let dir = TempDir::new("schedule-next");
    dir.write("a.json", "{}");
    dir.write(
        "s.yaml",
        "windows: [{days: mon-fri, from: \"09:00\", to: \"17:00\", tz: UTC}]\nexperiments:\n  - {name: noon, experiment: a.json, cron: \"0 0 12 * * *\"}\n  - {name: night, experiment: a.json, cron: \"0 0 3 * * *\"}\n",
    );
    let out = faultline(&dir, &["schedule", "s.yaml", "--next", "5"], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let noon: Vec<chrono::DateTime<chrono::Utc>> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("noon\t"))
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(noon.len(), 5, "{}", out.stdout);
    use chrono::{Datelike, Timelike};
    for t in &noon {
        assert_eq!((t.hour(), t.minute(), t.second()), (12, 0, 0), "{t}");
        assert!(
            t.weekday().number_from_monday() <= 5,
            "{t} is a weekend day"
        );
    }
    assert!(noon.windows(2).all(|w| w[0] < w[1]));
    assert!(
        out.stdout.contains("night\t(only 0 firing(s)"),
        "{}",
        out.stdout
    );
    assert!(!dir.join("journals").exists(), "nothing ran");
    // A wrong file: every problem, exit 3.
    dir.write(
        "b.yaml",
        "experiments:\n  - {experiment: gone.json, cron: \"0 0 12 * * *\"}\n",
    );
    let out = faultline(&dir, &["schedule", "b.yaml", "--next", "5"], &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let zero = faultline(&dir, &["schedule", "s.yaml", "--next", "0"], &[]);
    assert_eq!(zero.code, 3, "{}", zero.all_text());
    assert!(
        out.all_text().contains("$.experiments[0].experiment"),
        "{}",
        out.all_text()
    );
}

/// The next `n` hours (on the hour, strictly after `now`) that are Monday to Friday
/// 09:00–17:00 in Paris, and the next `n` 09:00s in Paris: computed hour by hour and
/// day by day from chrono-tz, not with the scheduler's own code.
fn paris_expected(now: chrono::DateTime<chrono::Utc>, n: usize) -> (Vec<String>, Vec<String>) {
    use chrono::{Datelike, Duration, TimeZone, Timelike};
    let paris = chrono_tz::Europe::Paris;
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let start = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let hourly = (1..)
        .map(|h| start + Duration::hours(h))
        .filter(|t| {
            let local = t.with_timezone(&paris);
            local.weekday().number_from_monday() <= 5 && (9..17).contains(&local.hour())
        })
        .take(n)
        .map(fmt)
        .collect();
    let today = now.with_timezone(&paris).date_naive();
    let nine = (0..)
        .filter_map(|d| {
            let day = today + Duration::days(d);
            paris
                .with_ymd_and_hms(day.year(), day.month(), day.day(), 9, 0, 0)
                .single()
        })
        .map(|t| t.to_utc())
        .filter(|t| *t > now)
        .take(n)
        .map(fmt)
        .collect();
    (hourly, nine)
}

#[test]
fn next_follows_named_time_zones_and_an_unknown_one_is_refused() {
    let dir = TempDir::new("schedule-next-tz");
    dir.write("a.json", "{}");
    dir.write(
        "s.yaml",
        "windows: [{days: mon-fri, from: \"09:00\", to: \"17:00\", tz: Europe/Paris}]\nexperiments:\n  - {name: hourly, experiment: a.json, cron: \"0 0 * * * *\"}\n  - {name: nine, experiment: a.json, cron: \"0 0 9 * * *\", timezone: Europe/Paris, windows: [{days: daily, from: \"09:00\", to: \"09:01\"}]}\n",
    );
    // 1300 hourly firings inside the window span more than 32 weeks, so wherever in
    // the year this runs, both lists cross at least one daylight-saving change.
    let n = 1300;
    let before = chrono::Utc::now();
    let out = faultline(&dir, &["schedule", "s.yaml", "--next", "1300"], &[]);
    let after = chrono::Utc::now();
    assert_eq!(out.code, 0, "{}", out.all_text());
    let listed = |name: &str| -> Vec<String> {
        out.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}\t")))
            .map(str::to_string)
            .collect()
    };
    let (hourly, nine) = (listed("hourly"), listed("nine"));
    // The binary's "now" is between `before` and `after`: either's expectation.
    let expected = [paris_expected(before, n), paris_expected(after, n)];
    let first_difference = |got: &[String], want: &[String]| {
        let i = (0..got.len().max(want.len()))
            .find(|&i| got.get(i) != want.get(i))
            .unwrap_or(0);
        format!(
            "{} listed, {} expected; first difference at {i}: {:?} listed, {:?} expected",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        )
    };
    assert!(
        expected.iter().any(|(h, _)| *h == hourly),
        "hourly: {}",
        first_difference(&hourly, &expected[0].0)
    );
    assert!(
        expected.iter().any(|(_, d)| *d == nine),
        "nine: {}",
        first_difference(&nine, &expected[0].1)
    );
    // Both offsets are there: 09:00 in Paris is 07:00 UTC in summer, 08:00 in winter.
    for hour in ["T07:00:00Z", "T08:00:00Z"] {
        assert!(
            nine.iter().any(|t| t.ends_with(hour)),
            "no {hour} in {nine:?}"
        );
        assert!(hourly.iter().any(|t| t.ends_with(hour)), "no {hour}");
    }
    assert!(
        hourly.iter().any(|t| t.ends_with("T15:00:00Z")),
        "CET's last hour"
    );
    assert!(
        !hourly
            .iter()
            .any(|t| t.ends_with("T06:00:00Z") || t.ends_with("T16:00:00Z")),
        "never outside 07:00–16:00 UTC"
    );
    assert!(!dir.join("journals").exists(), "nothing ran");

    // An unknown zone: every problem with its path, exit 3, nothing run.
    dir.write(
        "bad.yaml",
        "experiments:\n  - experiment: a.json\n    cron: \"0 0 9 * * *\"\n    timezone: Moon/Tranquility\n    windows:\n      - {days: mon-fri, from: \"09:00\", to: \"17:00\", tz: Europe/Paris}\n      - {days: sat, from: \"09:00\", to: \"12:00\", tz: Europe/Pariss}\n",
    );
    let expected = [
        "bad.yaml: $.experiments[0].timezone: \"Moon/Tranquility\" is not a time zone (an IANA name like Europe/Paris, UTC, or an offset like +02:00)",
        "bad.yaml: $.experiments[0].windows[1].tz: \"Europe/Pariss\" is not a time zone (an IANA name like Europe/Paris, UTC, or an offset like +02:00)",
    ];
    for args in [
        &["schedule", "bad.yaml", "--next", "3"][..],
        &["schedule", "bad.yaml"],
    ] {
        let out = faultline(&dir, args, &[]);
        assert_eq!(out.code, 3, "{args:?}: {}", out.all_text());
        for e in expected {
            assert!(
                out.all_text().contains(e),
                "{args:?}: {e} not in {}",
                out.all_text()
            );
        }
        assert!(!out.stdout.contains("a.json\t"), "{}", out.stdout);
    }
    assert!(!dir.join("journals").exists(), "nothing ran");
}

#[test]
fn a_jittered_run_waits_busy_and_a_shutdown_during_the_wait_starts_nothing() {
    let dir = TempDir::new("schedule-jitter");
    dir.write(
        "ok.json",
        &serde_json::to_string(&experiment(
            vec![],
            vec![tracer("action", "a", "ran")],
            vec![],
        ))
        .unwrap(),
    );
    // A jitter of a year: the run waits (a delay under the few seconds this test
    // takes is a chance of about 1e-7), its entry busy meanwhile.
    dir.write(
        "j.yaml",
        "experiments:\n  - {name: ok, experiment: ok.json, cron: \"*/1 * * * * *\", jitter: 31536000}\n",
    );
    let mut guard = ChildGuard(Some(spawn(&dir, &["schedule", "j.yaml"], &[])));
    wait_until(
        LIMIT,
        "a jittered firing, then one skipped meanwhile",
        || {
            let t = text(&dir);
            t.contains("(jitter)") && t.contains("skipped: its previous run is still running")
        },
    );
    send_signal(guard.0.as_ref().unwrap().id(), "TERM");
    assert_eq!(
        wait_with_limit(guard.0.as_mut().unwrap(), LIMIT),
        0,
        "{}",
        text(&dir)
    );
    assert!(
        text(&dir).contains("not started: stopped during its jitter"),
        "{}",
        text(&dir)
    );
    assert!(lines(&dir, "trace").is_empty(), "nothing ran");
    assert!(journals(&dir).is_empty());
}
