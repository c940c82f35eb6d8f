//! Bounded outputs and bounded fetches: what faultline keeps of a child's stdout and
//! stderr, an HTTP body and a python function's output (`output_limit`, per provider
//! or in the settings file), and how it fetches an experiment URL (`fetch_limit`,
//! `fetch_timeout` / `--fetch-timeout`). Real processes, real servers on 127.0.0.1.

use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

const MIB: u64 = 1024 * 1024;

fn settings(dir: &TempDir, text: &str) -> PathBuf {
    dir.write("settings.yaml", text)
}

/// `faultline run` with this settings file.
fn run_with_settings(dir: &TempDir, exp: &Value, settings_text: &str) -> Output {
    let s = settings(dir, settings_text);
    let out = run_experiment(dir, exp, &["--settings", s.to_str().unwrap()]);
    assert_no_panic(&out);
    out
}

/// A process probe whose provider is `sh -c script`, with extra provider keys.
fn sh_probe(name: &str, script: &str, extra: Value) -> Value {
    let mut p = json!({"type": "process", "path": "sh", "arguments": ["-c", script]});
    p.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"type": "probe", "name": name, "provider": p})
}

// ------------------------------------------------------------------ process

#[test]
fn a_process_printing_20_mib_keeps_the_limit_records_the_total_and_the_tolerance_sees_the_kept_part(
) {
    let dir = TempDir::new("lim-proc");
    // 4 bytes of HEAD, 20 MiB of 'a', then TAIL: the kept MiB ends inside the 'a's.
    let script =
        "printf HEAD; head -c 20971520 /dev/zero | tr '\\0' a; printf TAIL; printf oops >&2";
    let mut probe = sh_probe("loud", script, json!({}));
    // Met only if the tolerance sees the cut text: the whole output ends with TAIL.
    probe["tolerance"] = json!({"type": "regex", "target": "stdout", "pattern": "^HEADa+$"});
    let exp = json!({"title": "loud", "description": "d",
        "steady-state-hypothesis": {"title": "h", "probes": [probe]},
        "method": []});
    let out = run_with_settings(&dir, &exp, "output_limit: 1048576\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!out.deviated());
    let e = entry(&out.journal()["steady_states"]["before"]["probes"], "loud");
    assert_eq!(e["tolerance_met"], true, "{}", e["tolerance_met"]);
    let o = &e["output"];
    assert_eq!(o["status"], 0);
    assert_eq!(o["stdout"].as_str().unwrap().len() as u64, MIB);
    assert_eq!(o["stderr"], "oops");
    assert_eq!(
        o["truncated"],
        json!({"stdout": {"kept": MIB, "total": 20 * MIB + 8}}),
        "the journal records what was cut"
    );
    // The console says what was cut, with the activity's name.
    let text = out.all_text();
    assert!(
        text.contains(&format!(
            "activity 'loud': stdout cut to its first {MIB} of {} bytes",
            20 * MIB + 8
        )),
        "{text}"
    );
}

#[test]
fn the_provider_output_limit_overrides_the_settings_and_small_outputs_keep_their_shape() {
    let dir = TempDir::new("lim-override");
    // 10,000 bytes on stdout and 3,000 on stderr, each.
    let script = "head -c 10000 /dev/zero | tr '\\0' b; head -c 3000 /dev/zero | tr '\\0' c >&2";
    let exp = json!({"title": "override", "description": "d", "method": [
        sh_probe("own-limit", script, json!({"output_limit": 5000})),
        sh_probe("settings-limit", script, json!({})),
        sh_probe("as-a-string", script, json!({"output_limit": "${limit}"})),
        sh_probe("small", "echo hi", json!({}))
    ], "configuration": {"limit": "0"}});
    let out = run_with_settings(&dir, &exp, "output_limit: 1000\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    let cut = |name: &str| entry(run, name)["output"]["truncated"].clone();
    assert_eq!(
        cut("own-limit"),
        json!({"stdout": {"kept": 5000, "total": 10000}})
    );
    assert_eq!(
        entry(run, "own-limit")["output"]["stderr"]
            .as_str()
            .unwrap()
            .len(),
        3000
    );
    assert_eq!(
        cut("settings-limit"),
        json!({"stdout": {"kept": 1000, "total": 10000}, "stderr": {"kept": 1000, "total": 3000}})
    );
    assert_eq!(
        cut("as-a-string"),
        json!({"stdout": {"kept": 0, "total": 10000}, "stderr": {"kept": 0, "total": 3000}})
    );
    let small = &entry(run, "small")["output"];
    assert_eq!(small, &json!({"status": 0, "stdout": "hi\n", "stderr": ""}));
}

#[test]
fn a_cut_stops_before_a_split_character() {
    let dir = TempDir::new("lim-utf8");
    // "é" is 2 bytes: a limit of 3 falls inside the second one.
    let exp = json!({"title": "utf8", "description": "d", "method": [
        sh_probe("accents", "printf 'ééé'", json!({"output_limit": 3}))
    ]});
    let out = run_with_settings(&dir, &exp, "{}\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    let o = &entry(&out.journal()["run"], "accents")["output"];
    assert_eq!(o["stdout"], "é");
    assert_eq!(o["truncated"], json!({"stdout": {"kept": 2, "total": 6}}));
}

#[test]
fn an_invalid_output_limit_is_refused_with_its_path_and_a_hint() {
    let dir = TempDir::new("lim-invalid");
    let exp = json!({"title": "bad", "description": "d", "method": [
        sh_probe("neg", "true", json!({"output_limit": -5}))
    ]});
    let out = run_with_settings(&dir, &exp, "{}\n");
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    assert!(text.contains("$.method[0].provider.output_limit"), "{text}");
    assert!(
        text.contains("non-negative whole number of bytes"),
        "{text}"
    );
    let out = run_with_settings(
        &dir,
        &json!({"title": "t", "description": "d", "method": []}),
        "output_limit: lots\n",
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text().contains("$.output_limit"),
        "{}",
        out.all_text()
    );
}

// ------------------------------------------------------------------ http

#[test]
fn an_http_body_over_the_limit_is_cut_and_the_provider_limit_wins() {
    let dir = TempDir::new("lim-http");
    let body = format!("{}END", "x".repeat(2 * MIB as usize));
    let srv = HttpServer::start(move |_| Response::text(200, &body));
    let url = srv.url("/big");
    let mut probe =
        json!({"type": "probe", "name": "big", "provider": {"type": "http", "url": url}});
    // Met only on the kept part (the whole body ends with END).
    probe["tolerance"] = json!({"type": "regex", "target": "body", "pattern": "^x+$"});
    let exp = json!({"title": "http", "description": "d",
        "steady-state-hypothesis": {"title": "h", "probes": [probe]},
        "method": [{"type": "probe", "name": "own", "provider": {"type": "http", "url": url, "output_limit": 100000}}]});
    let out = run_with_settings(&dir, &exp, "output_limit: 65536\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    let total = 2 * MIB + 3;
    let e = entry(&out.journal()["steady_states"]["before"]["probes"], "big");
    assert_eq!(e["tolerance_met"], true);
    assert_eq!(e["output"]["status"], 200);
    assert_eq!(e["output"]["body"].as_str().unwrap().len(), 65536);
    assert_eq!(
        e["output"]["truncated"],
        json!({"body": {"kept": 65536, "total": total}})
    );
    let own = &entry(&out.journal()["run"], "own")["output"];
    assert_eq!(
        own["truncated"],
        json!({"body": {"kept": 100000, "total": total}})
    );
    let text = out.all_text();
    assert!(
        text.contains(&format!(
            "activity 'own': the response body cut to its first 100000 of {total} bytes"
        )),
        "{text}"
    );
}

// ------------------------------------------------------------------ python

#[test]
fn a_python_function_printing_or_returning_too_much_is_bounded_and_said_plainly() {
    let dir = TempDir::new("lim-py");
    dir.write(
        "loudmod.py",
        "import sys\n\ndef loud():\n    sys.stderr.write('p' * 3000000 + '\\n')\n    return 7\n\ndef huge():\n    return 'y' * 3000000\n",
    );
    let py = |name: &str, func: &str| {
        json!({"type": "probe", "name": name,
               "provider": {"type": "python", "module": "loudmod", "func": func}})
    };
    let exp = json!({"title": "py", "description": "d", "method": [py("loud", "loud"), py("huge", "huge")]});
    let out = run_with_settings(&dir, &exp, "output_limit: 1048576\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    // The printed output was cut; the result still came through.
    let loud = entry(run, "loud");
    assert_eq!(loud["status"], "succeeded", "{loud:#}");
    assert_eq!(loud["output"], 7);
    let text = out.all_text();
    assert!(
        text.contains("activity 'loud': the printed output cut to its first 1048576 of 3000001 bytes of loudmod.loud"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    // A result over the limit cannot be cut (it is one JSON document): it fails.
    let huge = entry(run, "huge");
    let msg = exception_text(huge);
    assert_eq!(huge["status"], "failed");
    assert!(
        msg.contains("the result of loudmod.huge is 3000002 bytes as JSON, over the output_limit of 1048576 bytes"),
        "{msg}"
    );
}

// ------------------------------------------------------------------ experiment URLs

/// A minimal valid experiment document of at least `size` bytes.
fn padded_experiment(size: usize) -> String {
    let doc = json!({"title": "big", "description": "x".repeat(size), "method": []});
    doc.to_string()
}

#[test]
fn an_experiment_url_over_the_fetch_limit_is_refused_naming_the_url_and_the_limit() {
    let dir = TempDir::new("lim-fetch");
    let small = padded_experiment(100);
    let big = padded_experiment(20_000);
    let huge = padded_experiment(5 * MIB as usize);
    let srv = HttpServer::start(move |r| match r.path.as_str() {
        "/small.json" => Response::text(200, &small),
        "/big.json" => Response::text(200, &big),
        _ => Response::text(200, &huge),
    });
    let s = settings(&dir, "fetch_limit: 10000\n");
    let journal = dir.join("journal.json");
    let run = |url: &str, extra: &[&str]| {
        let mut args = vec!["run", url, "--journal-path", journal.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = faultline(&dir, &args, &[]);
        assert_no_panic(&out);
        out
    };
    let with = ["--settings", s.to_str().unwrap()];
    // Under the limit: fetched and run.
    let out = run(&srv.url("/small.json"), &with);
    assert_eq!(out.code, 0, "{}", out.all_text());
    // Over the limit the settings set (the server announces its length).
    let url = srv.url("/big.json");
    let out = run(&url, &with);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none());
    let text = out.all_text();
    assert!(text.contains(&format!("cannot fetch {url}")), "{text}");
    assert!(
        text.contains("larger than the fetch limit of 10000 bytes"),
        "{text}"
    );
    assert!(text.contains("fetch_limit"), "{text}");
    // Over the default limit (4 MiB), without settings.
    let url = srv.url("/huge.json");
    let out = run(&url, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text()
            .contains(&format!("fetch limit of {} bytes", 4 * MIB)),
        "{}",
        out.all_text()
    );
    // A chunked answer (no length announced) is cut off while reading: 64 chunks of
    // 64 KiB, 4 MiB in all, against a limit of 10,000 bytes.
    let chunked = HttpServer::start(|_| {
        Response::text(200, &" ".repeat(64 * 65536))
            .content_type("application/json")
            .chunked(65536)
    });
    let url = chunked.url("/stream.json");
    let out = run(&url, &with);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    assert!(text.contains(&format!("cannot fetch {url}")), "{text}");
    assert!(
        text.contains("larger than the fetch limit of 10000 bytes"),
        "{text}"
    );
    // Found while reading, not from an announced length.
    assert!(text.contains("received"), "{text}");
}

#[test]
fn an_experiment_url_that_never_answers_fails_after_the_fetch_timeout_saying_what_it_waited_for() {
    let dir = TempDir::new("lim-silent");
    // Accepts the connection, reads the request, never answers.
    let silent = HttpServer::blackhole();
    let url = format!("http://127.0.0.1:{}/experiment.json", silent.port);
    let journal = dir.join("journal.json");
    // The flag, on run.
    let out = faultline(
        &dir,
        &[
            "run",
            &url,
            "--fetch-timeout",
            "0.5",
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none());
    let text = out.all_text();
    for needle in [
        format!("cannot fetch {url}"),
        "waiting for the server's answer (it accepted the connection)".into(),
        "fetch timeout of 0.5 s".into(),
        "--fetch-timeout SECONDS or fetch_timeout in the settings file".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in {text}");
    }
    // The settings key, on validate.
    let s = settings(&dir, "fetch_timeout: 0.5\n");
    let out = faultline(
        &dir,
        &["validate", &url, "--settings", s.to_str().unwrap()],
        &[],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text().contains("fetch timeout of 0.5 s"),
        "{}",
        out.all_text()
    );
    // The flag wins over the settings (a value that cannot be a duration is refused,
    // which shows the flag was read).
    let out = faultline(
        &dir,
        &[
            "validate",
            &url,
            "--settings",
            s.to_str().unwrap(),
            "--fetch-timeout",
            "1e300",
        ],
        &[],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text()
            .contains("--fetch-timeout: the fetch timeout: 1000000"),
        "{}",
        out.all_text()
    );
    let out = faultline(&dir, &["run", &url, "--fetch-timeout=-1"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text()
            .contains("positive number of seconds, got -1"),
        "{}",
        out.all_text()
    );
}
