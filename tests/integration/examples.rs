//! The shipped examples keep working: each is run as its README says, against the real
//! services it needs (the exchange-file tutorial's Python service on a free port). The
//! READMEs' shell steps and the settings example are taken from the READMEs themselves
//! and run as written (only the binary, the port and the folders are swapped in), and
//! whatever they leave behind must be ignored by git.

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
fn python_example_keeps_extension_state_and_runs_its_control() {
    let dir = TempDir::new("ex-python");
    let journal = dir.join("journal.json");
    let mut child = Command::new(bin())
        .args(["run", "experiment.json", "--journal-path"])
        .arg(&journal)
        .current_dir(example("python"))
        .env("NO_COLOR", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let code = wait_with_limit(&mut child, Duration::from_secs(120));
    let out = collect(&dir, code, &journal);
    // The method's change is seen by the hypothesis after it: one interpreter.
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert!(out.deviated());
    assert_eq!(
        out.journal()["steady_states"]["after"]["probes"][0]["output"],
        1
    );
    assert_eq!(out.rollback_names(), ["scale-web-back"]);
    let owner = &out.journal()["run"][1]["output"]["stdout"];
    assert_eq!(owner, "game day run by platform-team\n");
    assert!(
        out.stderr
            .contains("[control gameday] game day: 5 activities"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.journal()["extensions"][0]["python_worker"]["started"],
        1
    );
}

#[test]
fn reliably_guide_sequence_healthy_then_unhealthy() {
    let dir = TempDir::new("ex-reliably");
    // The guide's objective, from the example's own reliably.yaml, in a store of
    // the test's own.
    let store = dir.join("store.db");
    let yaml = std::fs::read_to_string(example("reliably/reliably.yaml")).unwrap();
    let objectives = faultline::slo::documents::parse_objectives(&yaml).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let spec = faultline::store::StoreSpec::Sqlite(store.clone());
            let s = faultline::store::Store::open(&spec).await.unwrap();
            s.put_objective("default", &objectives[0]).await.unwrap();
            s.close().await;
        });
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
        faultline(&dir, &args, &[("FAULTLINE_STORE", store.to_str().unwrap())])
    };
    let first = run(
        "experiment-healthy.json",
        &["--hypothesis-strategy", "after-method-only"],
    );
    assert_eq!(first.code, 0, "{}", first.all_text());
    assert_eq!(first.journal()["run"][0]["output"]["percent"], 100.0);
    let healthy = run("experiment-healthy.json", &[]);
    assert_eq!(healthy.code, 0, "{}", healthy.all_text());
    let unhealthy = run("experiment-unhealthy.json", &[]);
    assert_eq!(unhealthy.code, 1, "{}", unhealthy.all_text());
    assert!(unhealthy.deviated());
    assert!(
        unhealthy
            .all_text()
            .contains("|          99.9 |         90 |          -9.9 |"),
        "{}",
        unhealthy.all_text()
    );
}

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first fenced block of `lang` after `heading` in a Markdown file.
fn fenced_block(markdown: &str, heading: &str, lang: &str) -> String {
    let text = std::fs::read_to_string(root().join(markdown)).unwrap();
    let from = text
        .find(heading)
        .unwrap_or_else(|| panic!("{markdown} has no {heading:?}"));
    let open = format!("```{lang}\n");
    let start = text[from..]
        .find(&open)
        .unwrap_or_else(|| panic!("{markdown}: no ```{lang} block after {heading:?}"))
        + from
        + open.len();
    let end = text[start..].find("```").unwrap() + start;
    text[start..end].to_string()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Paths (relative to the repository's root) that git would show as untracked: those
/// neither tracked nor ignored. Empty when this is not a git checkout (a crate
/// tarball), where there is nothing to leave untracked.
fn untracked_in_git(paths: &[PathBuf]) -> Vec<PathBuf> {
    let is_checkout = Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(root())
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_checkout {
        eprintln!("not a git checkout: untracked files not checked");
        return Vec::new();
    }
    paths
        .iter()
        .filter(|p| {
            let tracked = Command::new("git")
                .args(["ls-files", "--error-unmatch", "--"])
                .arg(p)
                .current_dir(root())
                .output()
                .unwrap()
                .status
                .success();
            // check-ignore matches paths that need not exist: the patterns decide.
            let ignored = Command::new("git")
                .args(["check-ignore", "-q", "--no-index", "--"])
                .arg(p)
                .current_dir(root())
                .status()
                .unwrap()
                .success();
            !tracked && !ignored
        })
        .cloned()
        .collect()
}

/// Run a bash script in `cwd` with a hard limit; (exit code, stdout, stderr).
fn bash(cwd: &std::path::Path, script: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let out_path = cwd.join("bash.stdout");
    let err_path = cwd.join("bash.stderr");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = ChildGuard(Some(cmd.spawn().unwrap()));
    let code = wait_with_limit(child.0.as_mut().unwrap(), Duration::from_secs(120));
    let out = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    std::fs::remove_file(out_path).unwrap();
    std::fs::remove_file(err_path).unwrap();
    (code, out, err)
}

#[test]
fn exchange_file_by_hand_steps_exit_1_then_0_and_stop_their_services() {
    let block = fenced_block("examples/exchange-file/README.md", "## By hand", "sh");
    // As written, except: the binary under test instead of building one, and the
    // examples by absolute path (the steps run in a scratch folder standing for the
    // repository's root, so what they write can be checked against .gitignore).
    assert!(block.contains("cargo build --release\n"), "{block}");
    let script = block
        .replace("cargo build --release\n", "")
        .replace("./target/release/faultline", bin())
        .replace(
            "examples/exchange-file/",
            &format!("{}/", example("exchange-file").display()),
        );
    let dir = TempDir::new("ex-xfile-by-hand");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let exchange = dir.join("exchange.dat");
    let (code, stdout, stderr) = bash(
        dir.path(),
        &script,
        &[
            ("SERVICE_URL", &url),
            ("EXCHANGE_FILE", exchange.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The `echo $?` lines: the documented exit codes, in order.
    let codes: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["1", "0"], "{stdout}\n{stderr}");
    // Both services stopped by their own PID: the port is free, no pid file is left.
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "a service still holds port {port}"
    );
    assert!(!dir.join("target/exchange-file/service.pid").exists());
    assert!(exchange.exists(), "the rollback put the exchange file back");
    // What the steps wrote (journal, trace file, the pid folder) would not show in
    // `git status` at the repository's root.
    std::fs::remove_file(&exchange).unwrap();
    let written = files_under(dir.path());
    assert!(
        written.contains(&PathBuf::from("journal.json")),
        "{written:?}"
    );
    assert_eq!(untracked_in_git(&written), Vec::<PathBuf>::new());
}

#[test]
fn exchange_file_demo_script_checks_both_variants() {
    let dir = TempDir::new("ex-xfile-demo");
    let script = example("exchange-file/demo.sh");
    let (code, stdout, stderr) = bash(
        dir.path(),
        &format!("bash {}", script.display()),
        &[("FAULTLINE", bin())],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("demo: OK"), "{stdout}");
}

#[test]
fn reliably_demo_script_succeeds_and_leaves_nothing_behind() {
    let dir = TempDir::new("ex-reliably-demo");
    let before = files_under(&example("reliably"));
    let script = example("reliably/demo.sh");
    let demo = crate::otlp::demo::demo_binary();
    let (code, stdout, stderr) = bash(
        dir.path(),
        &format!("bash {}", script.display()),
        &[
            ("FAULTLINE", bin()),
            ("DEMO_SERVICE", demo.to_str().unwrap()),
        ],
    );
    // The first run a newcomer makes reads as a success, and so does the whole.
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for part in ["A", "B", "C"] {
        for (n, exit) in [(1, 0), (2, 0), (3, 0), (4, 1), (5, 0)] {
            let line = format!("=== step {part}.{n}: exit {exit}, as expected");
            assert!(stdout.contains(&line), "{line}\n{stdout}");
        }
    }
    assert!(stdout.contains("demo: OK"), "{stdout}");
    // Part D, with a real Prometheus: the same objective judged from the service's own
    // metrics, met without faults and not met with 10 % errors.
    if !stdout.contains("=== D: skipped") {
        for (n, exit) in [(1, 0), (2, 0), (3, 1), (4, 0)] {
            let line = format!("=== step D.{n}: exit {exit}, as expected");
            assert!(stdout.contains(&line), "{line}\n{stdout}");
        }
        assert!(
            stdout.contains("=== D.2: Prometheus verdict: met"),
            "{stdout}"
        );
        assert!(
            stdout.contains("=== D.3: Prometheus verdict: not_met"),
            "{stdout}"
        );
    }
    // Each part's reports: 100 % after the healthy run, 90 % with the trend after
    // the unhealthy one; each unhealthy run printed the table.
    let report = |mark: &str, current: &str, trend: &str| {
        stdout
            .lines()
            .filter(|l| {
                l.trim_start().starts_with(mark)
                    && l.contains(current)
                    && l.trim_end().ends_with(trend)
            })
            .count()
    };
    assert_eq!(report("✅", "100.00%", "Availability     ✓"), 3, "{stdout}");
    // Part D's report (the store's verdict after its unhealthy run) is the fourth.
    let with_d = if stdout.contains("=== D: skipped") {
        3
    } else {
        4
    };
    assert_eq!(
        report("❌", "90.00%", "Availability     ✓ ✕"),
        with_d,
        "{stdout}"
    );
    assert_eq!(
        stderr
            .matches("The following Objective Results were not OK:")
            .count(),
        3,
        "{stderr}"
    );
    let new: Vec<PathBuf> = files_under(&example("reliably"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| PathBuf::from("examples/reliably").join(p))
        .collect();
    assert_eq!(untracked_in_git(&new), Vec::<PathBuf>::new());
}

#[test]
fn reliably_by_hand_steps_write_only_ignored_files() {
    let block = fenced_block(
        "examples/reliably/README.md",
        "## The guide's sequence, by hand",
        "sh",
    );
    // A copy of the example at the same place under a scratch root, so the steps'
    // files land where they would in the repository.
    let dir = TempDir::new("ex-reliably-by-hand");
    let copy = dir.join("examples/reliably");
    std::fs::create_dir_all(&copy).unwrap();
    for f in files_under(&example("reliably")) {
        if f.components().any(|c| c.as_os_str() == "__pycache__") {
            continue;
        }
        std::fs::create_dir_all(copy.join(&f).parent().unwrap()).unwrap();
        std::fs::copy(example("reliably").join(&f), copy.join(&f)).unwrap();
    }
    let before = files_under(&copy);
    let script = format!(
        "set -e\n{}",
        block.replace("../../target/release/faultline", bin())
    )
    // `set -e` stops at an unexpected exit; the unhealthy run's 1 is the expected one.
    .replace(
        "experiment-unhealthy.json   #",
        "experiment-unhealthy.json || [ $? -eq 1 ]  #",
    );
    let (code, stdout, stderr) = bash(dir.path(), &script, &[("FAULTLINE_STORE", "")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The three reports: empty, then 100 % ✓, then 90 % ✓ ✕.
    assert!(stdout.contains("100.00%"), "{stdout}");
    assert!(
        stdout.contains("90.00%") && stdout.contains("✓ ✕"),
        "{stdout}"
    );
    assert!(copy.join("store.db").exists());
    let new: Vec<PathBuf> = files_under(&copy)
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| PathBuf::from("examples/reliably").join(p))
        .collect();
    assert!(
        new.contains(&PathBuf::from("examples/reliably/journal.json")),
        "{new:?}"
    );
    assert_eq!(untracked_in_git(&new), Vec::<PathBuf>::new());
}

#[test]
fn readme_settings_example_works_as_copied_without_a_terminal() {
    let yaml = fenced_block("README.md", "## Settings file", "yaml");
    // The collector it names (docker-compose.yml's Jaeger) is not running here: the
    // endpoint goes to a free port nothing listens on, as when Jaeger is down.
    let dead = format!("http://127.0.0.1:{}", free_port());
    assert!(yaml.contains("http://localhost:4318"), "{yaml}");
    let dir = TempDir::new("ex-settings");
    let settings = dir.write(
        "settings.yaml",
        &yaml.replace("http://localhost:4318", &dead),
    );
    let exp = example("hello/experiment.json");
    let journal = dir.join("journal.json");
    // Standard input is closed (`faultline` spawns with it null): a control that asks
    // a person would interrupt the run.
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--settings",
            settings.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[
            ("HELLO_TMP_DIR", dir.path().to_str().unwrap()),
            (
                "HELLO_MARKER_FILE",
                dir.join("hello.marker").to_str().unwrap(),
            ),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    // The jsonl sink wrote the run's records where the example says.
    let records = std::fs::read_to_string(dir.join("logs/faultline.jsonl")).unwrap();
    assert!(records.lines().count() > 1, "{records}");
    // Every sink or exporter it names is one docker-compose.yml starts, or a file.
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    for url in yaml
        .split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
    {
        let port = url
            .trim_end_matches(['}', ','])
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        assert!(
            compose.contains(&format!("\"{port}:{port}\"")),
            "{url} is not served by docker-compose.yml"
        );
    }
    assert_eq!(
        untracked_in_git(&[PathBuf::from("logs/faultline.jsonl")]),
        Vec::<PathBuf>::new()
    );
}
