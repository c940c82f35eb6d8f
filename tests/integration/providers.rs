//! Providers against the real world: `http` against a recording server on 127.0.0.1,
//! `process` against real programs (process groups, timeouts, PATH), `python` through
//! the real interpreter (stdlib functions, a module in the working directory, scoped
//! secrets, exceptions, a missing interpreter).

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A minimal experiment around these method activities.
fn exp(method: Vec<Value>) -> Value {
    json!({"title": "providers", "description": "provider behaviour", "method": method})
}

fn http(name: &str, provider: Value) -> Value {
    let mut p = json!({"type": "http"});
    p.as_object_mut()
        .unwrap()
        .extend(provider.as_object().unwrap().clone());
    json!({"type": "probe", "name": name, "provider": p})
}

fn python(name: &str, module: &str, func: &str, arguments: Value) -> Value {
    json!({"type": "probe", "name": name,
           "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}})
}

/// Run and check the run itself went through (exit 0, completed, no panic).
fn run_ok(dir: &TempDir, e: &Value, extra: &[&str]) -> Output {
    let out = run_experiment(dir, e, extra);
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    out
}

fn cannot_run(activity: Value) -> Value {
    json!({"title": "cannot run", "description": "d",
        "method": [activity, process("action", "after", "true", &[])],
        "rollbacks": [process("action", "undo", "true", &[])]})
}

/// An experiment whose first method activity cannot run as written on this machine
/// (missing executable, module or interpreter): `faultline run` refuses it before
/// starting (exit 3, no journal) with a message saying what is missing.
fn refused_before_run(dir: &TempDir, activity: Value, env: &[(&str, &str)]) -> String {
    let out = run_experiment_env(dir, &cannot_run(activity), &[], env);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none(), "a journal was written");
    out.stderr
}

/// The same with `--no-validation` (or a problem only found at run time, such as
/// wrong arguments): like the Chaos Toolkit, the run is aborted (exit 2), the method
/// stops there, rollbacks still play; the entry says what is missing.
fn run_invalid(dir: &TempDir, activity: Value, env: &[(&str, &str)]) -> (Output, String) {
    let out = run_experiment_env(dir, &cannot_run(activity), &["--no-validation"], env);
    assert_no_panic(&out);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "aborted");
    assert_eq!(
        out.run_names().len(),
        1,
        "the method went on: {:?}",
        out.run_names()
    );
    assert_eq!(out.rollback_names(), ["undo"]);
    let first = &out.journal()["run"][0];
    assert_eq!(first["status"], "failed", "{first:#}");
    let text = exception_text(first);
    (out, text)
}

fn method_entry<'a>(out: &'a Output, name: &str) -> &'a Value {
    entry(&out.journal()["run"], name)
}

fn assert_succeeded(e: &Value) {
    assert_eq!(e["status"], "succeeded", "{e:#}");
}

/// The entry failed, and its exception says `needle`.
fn assert_failed_with(e: &Value, needle: &str) -> String {
    assert_eq!(e["status"], "failed", "{e:#}");
    let text = exception_text(e);
    assert!(text.contains(needle), "expected {needle:?} in {text:?}");
    text
}

// ---------------------------------------------------------------- http

#[test]
fn http_get_arguments_go_to_the_query_string() {
    let dir = TempDir::new("http-get");
    let srv = HttpServer::start(|_| Response::json(200, &json!({"ok": true})));
    let e = exp(vec![http(
        "get",
        json!({"url": srv.url("/items"), "arguments": {"a": 1, "b": "x y", "c": ["p", "q"], "d": true}}),
    )]);
    run_ok(&dir, &e, &[]);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/items");
    assert_eq!(r.query, "a=1&b=x+y&c=p&c=q&d=True");
    assert_eq!(r.text(), "");
}

#[test]
fn http_post_with_json_content_type_sends_a_json_body() {
    let dir = TempDir::new("http-post-json");
    let srv = HttpServer::start(|_| Response::text(201, "created"));
    let args = json!({"name": "svc", "replicas": 3, "tags": ["a", "b"], "nested": {"on": true}});
    let e = exp(vec![http(
        "post",
        json!({"url": srv.url("/create"), "method": "POST",
               "headers": {"Content-Type": "application/json"}, "arguments": args}),
    )]);
    let out = run_ok(&dir, &e, &[]);
    assert_eq!(method_entry(&out, "post")["output"]["status"], 201);
    let r = &srv.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.query, "");
    assert!(r.headers["content-type"].starts_with("application/json"));
    let body: Value = serde_json::from_str(&r.text()).expect("the body is JSON");
    assert_eq!(body, args);
}

#[test]
fn http_post_without_content_type_sends_a_form() {
    let dir = TempDir::new("http-post-form");
    let srv = HttpServer::start(|_| Response::text(200, "ok"));
    let e = exp(vec![http(
        "post",
        json!({"url": srv.url("/form"), "method": "post", "arguments": {"a": "1 2", "b": "x&y"}}),
    )]);
    run_ok(&dir, &e, &[]);
    let r = &srv.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.text(), "a=1+2&b=x%26y");
}

#[test]
fn http_custom_headers_are_sent() {
    let dir = TempDir::new("http-headers");
    let srv = HttpServer::start(|_| Response::text(200, "ok"));
    let e = exp(vec![http(
        "headers",
        json!({"url": srv.url("/h"), "headers": {"X-Custom": "abc", "X-Number": 42, "Accept": "text/plain"}}),
    )]);
    run_ok(&dir, &e, &[]);
    let r = &srv.requests()[0];
    assert_eq!(r.headers["x-custom"], "abc");
    assert_eq!(r.headers["x-number"], "42");
    assert_eq!(r.headers["accept"], "text/plain");
}

#[test]
fn http_output_has_status_headers_and_a_body_parsed_by_media_type() {
    let dir = TempDir::new("http-output");
    let srv = HttpServer::start(|r| {
        let doc = json!({"items": [1, 2], "ok": true});
        match r.path.as_str() {
            "/json" => Response::json(200, &doc),
            "/charset" => Response::json(200, &doc).content_type("application/json; charset=utf-8"),
            "/problem" => Response::json(200, &doc).content_type("application/problem+json"),
            "/broken" => Response::text(200, "{not json").content_type("application/json"),
            _ => Response::text(200, "{\"looks\": \"like json\"}"),
        }
    });
    let e = exp(vec![
        http("json", json!({"url": srv.url("/json")})),
        http("charset", json!({"url": srv.url("/charset")})),
        http("problem", json!({"url": srv.url("/problem")})),
        http("broken", json!({"url": srv.url("/broken")})),
        http("text", json!({"url": srv.url("/text")})),
    ]);
    let out = run_ok(&dir, &e, &[]);
    for name in ["json", "charset", "problem"] {
        let o = &method_entry(&out, name)["output"];
        assert_eq!(o["status"], 200, "{name}: {o:#}");
        assert_eq!(o["body"], json!({"items": [1, 2], "ok": true}), "{name}");
        assert!(o["headers"]["content-type"].is_string(), "{name}: {o:#}");
        assert!(o["headers"]["content-length"].is_string(), "{name}: {o:#}");
    }
    assert_eq!(
        method_entry(&out, "charset")["output"]["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    // JSON that does not parse stays text rather than failing the activity.
    let broken = method_entry(&out, "broken");
    assert_succeeded(broken);
    assert_eq!(broken["output"]["body"], "{not json");
    let text = &method_entry(&out, "text")["output"];
    assert_eq!(text["body"], "{\"looks\": \"like json\"}");
    assert_eq!(text["headers"]["content-type"], "text/plain");
}

#[test]
fn http_4xx_and_5xx_are_not_failures() {
    let dir = TempDir::new("http-errors");
    let srv = HttpServer::start(|r| match r.path.as_str() {
        "/missing" => Response::text(404, "nope"),
        _ => Response::json(500, &json!({"error": "boom"})),
    });
    let e = exp(vec![
        http("not-found", json!({"url": srv.url("/missing")})),
        http("server-error", json!({"url": srv.url("/error")})),
    ]);
    let out = run_ok(&dir, &e, &[]);
    let nf = method_entry(&out, "not-found");
    assert_succeeded(nf);
    assert_eq!(nf["output"]["status"], 404);
    assert_eq!(nf["output"]["body"], "nope");
    let se = method_entry(&out, "server-error");
    assert_succeeded(se);
    assert_eq!(se["output"]["status"], 500);
    assert_eq!(se["output"]["body"], json!({"error": "boom"}));
}

#[test]
fn http_expected_status_mismatch_fails_the_activity_naming_the_code() {
    let dir = TempDir::new("http-expected");
    let srv = HttpServer::start(|r| match r.path.as_str() {
        "/ok" => Response::text(200, "fine"),
        _ => Response::text(503, "unavailable"),
    });
    let e = exp(vec![
        http(
            "mismatch",
            json!({"url": srv.url("/down"), "expected_status": 200}),
        ),
        http(
            "listed",
            json!({"url": srv.url("/down"), "expected_status": [200, 503]}),
        ),
        http(
            "match",
            json!({"url": srv.url("/ok"), "expected_status": 200}),
        ),
    ]);
    let out = run_ok(&dir, &e, &[]);
    let m = method_entry(&out, "mismatch");
    assert_failed_with(m, "503");
    // The response is still recorded, for the reader of the journal.
    assert_eq!(m["output"]["status"], 503);
    assert_succeeded(method_entry(&out, "listed"));
    assert_succeeded(method_entry(&out, "match"));
}

#[test]
fn http_timeout_against_a_slow_server_fails_in_bounded_time() {
    let dir = TempDir::new("http-timeout");
    let srv = HttpServer::start(|_| Response::text(200, "late").delay(Duration::from_secs(30)));
    let e = exp(vec![
        http("number", json!({"url": srv.url("/slow"), "timeout": 0.5})),
        http(
            "pair",
            json!({"url": srv.url("/slow"), "timeout": [1, 0.5]}),
        ),
        http(
            "template",
            json!({"url": srv.url("/slow"), "timeout": "0.5"}),
        ),
    ]);
    let started = Instant::now();
    let out = run_ok(&dir, &e, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    for name in ["number", "pair", "template"] {
        let en = method_entry(&out, name);
        assert_eq!(en["status"], "failed", "{name}: {en:#}");
        let text = exception_text(en).to_lowercase();
        assert!(
            text.contains("too long") || text.contains("timeout") || text.contains("timed out"),
            "{name}: {text}"
        );
        assert!(en["duration"].as_f64().unwrap() < 5.0, "{name}: {en:#}");
    }
    assert_eq!(srv.requests().len(), 3);
}

#[test]
fn http_connection_refused_fails_with_failed_to_connect() {
    let dir = TempDir::new("http-refused");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let e = exp(vec![http("refused", json!({"url": url}))]);
    let out = run_ok(&dir, &e, &[]);
    let text = assert_failed_with(method_entry(&out, "refused"), "failed to connect");
    assert!(text.contains(&url), "{text}");
}

#[test]
fn http_max_retries_against_a_closed_port_still_fails_cleanly() {
    let dir = TempDir::new("http-retries");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let e = exp(vec![http("retried", json!({"url": url, "max_retries": 2}))]);
    let started = Instant::now();
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "retried");
    assert_failed_with(en, "failed to connect");
    // Two retries means two back-off pauses: the attempt could not be instantaneous.
    assert!(en["duration"].as_f64().unwrap() >= 0.5, "{en:#}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn http_verify_tls_false_is_accepted() {
    let dir = TempDir::new("http-tls");
    let srv = HttpServer::start(|_| Response::text(200, "ok"));
    let e = exp(vec![http(
        "insecure",
        json!({"url": srv.url("/"), "verify_tls": false}),
    )]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "insecure");
    assert_succeeded(en);
    assert_eq!(en["output"]["status"], 200);
    assert_eq!(srv.requests().len(), 1);
}

/// An HTTPS server on 127.0.0.1 with a freshly made self-signed certificate
/// (`openssl req`, Python's `ssl`), answering every GET with `{"tls": true}`.
struct TlsServer {
    port: u16,
    _child: ChildGuard,
}

impl TlsServer {
    fn start(dir: &TempDir) -> TlsServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("the openssl command line tool (Debian package openssl) is needed");
        assert!(
            made.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let script = dir.write(
            "tls_server.py",
            r#"import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"tls": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#,
        );
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&cert)
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let guard = ChildGuard(Some(child));
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the TLS server: {line:?}"));
        TlsServer {
            port,
            _child: guard,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }
}

#[test]
fn https_with_verify_tls_false_reaches_a_self_signed_server_and_verification_refuses_it() {
    let dir = TempDir::new("https");
    let srv = TlsServer::start(&dir);
    let e = exp(vec![
        http("insecure", json!({"url": srv.url(), "verify_tls": false})),
        http("verified", json!({"url": srv.url()})),
    ]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "insecure");
    assert_succeeded(en);
    assert_eq!(en["output"]["status"], 200);
    assert_eq!(en["output"]["body"], json!({"tls": true}));
    // Certificates are checked by default: a self-signed one is refused, plainly.
    let text = assert_failed_with(method_entry(&out, "verified"), "certificate");
    assert!(!text.contains("panicked"), "{text}");
}

// ---------------------------------------------------------------- process

#[test]
fn process_list_arguments_are_passed_as_argv() {
    let dir = TempDir::new("proc-list");
    let e = exp(vec![process(
        "probe",
        "printf",
        "printf",
        &["[%s]", "a", "b c", "$HOME", "*"],
    )]);
    let out = run_ok(&dir, &e, &[]);
    let o = &method_entry(&out, "printf")["output"];
    // No shell: spaces, `$` and globs reach the program untouched.
    assert_eq!(o["stdout"], "[a][b c][$HOME][*]");
    assert_eq!(o["status"], 0);
    assert_eq!(o["stderr"], "");
}

#[test]
fn process_string_arguments_go_through_a_shell() {
    let dir = TempDir::new("proc-shell");
    let e = exp(vec![json!({"type": "probe", "name": "piped",
        "provider": {"type": "process", "path": "echo", "arguments": "hello | tr a-z A-Z"}})]);
    let out = run_ok(&dir, &e, &[]);
    assert_eq!(method_entry(&out, "piped")["output"]["stdout"], "HELLO\n");
}

#[test]
fn process_path_is_looked_up_on_path() {
    let dir = TempDir::new("proc-path");
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let tool = bin_dir.join("faultline-it-tool");
    std::fs::write(&tool, "#!/bin/sh\necho \"tool says $1\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let e = exp(vec![process("probe", "tool", "faultline-it-tool", &["hi"])]);
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let out = faultline(
        &dir,
        &[
            "run",
            p.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[("PATH", &path)],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let en = method_entry(&out, "tool");
    assert_succeeded(en);
    assert_eq!(en["output"]["stdout"], "tool says hi\n");
}

#[test]
fn process_missing_executable_fails_the_activity_with_a_clear_message() {
    let dir = TempDir::new("proc-missing");
    let missing = || process("action", "missing", "faultline-no-such-program", &["x"]);
    let err = refused_before_run(&dir, missing(), &[]);
    assert!(err.contains("$.method[0].provider.path"), "{err}");
    assert!(
        err.contains("executable 'faultline-no-such-program' is not found"),
        "{err}"
    );
    let (_, t) = run_invalid(&dir, missing(), &[]);
    assert!(
        t.contains("executable 'faultline-no-such-program' not found on PATH"),
        "{t}"
    );
    let with_slash = || process("action", "missing-path", "/nonexistent/dir/prog", &[]);
    let err = refused_before_run(&dir, with_slash(), &[]);
    assert!(err.contains("'/nonexistent/dir/prog'"), "{err}");
    let (_, t) = run_invalid(&dir, with_slash(), &[]);
    assert!(t.contains("'/nonexistent/dir/prog' not found"), "{t}");
}

#[test]
fn every_activity_running_a_missing_executable_is_named_once_each() {
    // The preflight looks each executable up once; every activity using it is reported.
    let dir = TempDir::new("proc-missing-twice");
    let e = json!({
        "title": "t", "description": "d",
        "method": [
            process("action", "first", "faultline-no-such-program", &[]),
            process("probe", "fine", "true", &[]),
            process("action", "second", "faultline-no-such-program", &["again"]),
        ],
    });
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    for (at, name) in [("$.method[0]", "first"), ("$.method[2]", "second")] {
        let wanted =
            format!("activity '{name}': executable 'faultline-no-such-program' is not found");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&format!("{at}.provider.path")) && l.contains(&wanted)),
            "{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("activity 'fine'"), "{}", out.stderr);
}

#[test]
fn process_non_zero_exit_is_not_a_failure() {
    let dir = TempDir::new("proc-exit");
    let e = exp(vec![sh("probe", "exit3", "echo out; echo err >&2; exit 3")]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "exit3");
    assert_succeeded(en);
    assert_eq!(
        en["output"],
        json!({"status": 3, "stdout": "out\n", "stderr": "err\n"})
    );
}

#[test]
fn process_timeout_kills_the_whole_process_group() {
    let dir = TempDir::new("proc-timeout");
    let pidfile = dir.join("grandchild.pid");
    let _guard = SleepGuard(vec![pidfile.clone()]);
    // sh starts a grandchild and waits for it: killing only sh would leave it running.
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let e = exp(vec![json!({"type": "action", "name": "slow",
        "provider": {"type": "process", "path": "sh", "arguments": ["-c", script], "timeout": 1}})]);
    let started = Instant::now();
    let out = run_ok(&dir, &e, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let en = method_entry(&out, "slow");
    let text = exception_text(en).to_lowercase();
    assert_eq!(en["status"], "failed", "{en:#}");
    assert!(
        text.contains("too long") || text.contains("timeout"),
        "{text}"
    );
    let pid = read_pid(&pidfile);
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)),
        "grandchild sleep {pid} survived the activity's timeout"
    );
}

#[test]
fn process_env_and_cwd_are_applied() {
    let dir = TempDir::new("proc-env-cwd");
    let work = dir.join("work dir");
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let e = exp(vec![json!({"type": "probe", "name": "env-cwd",
        "provider": {"type": "process", "path": "sh",
                     "arguments": ["-c", "echo \"$FL_IT_VAR|$FL_IT_NUM\"; pwd -P"],
                     "env": {"FL_IT_VAR": "from env", "FL_IT_NUM": 7},
                     "cwd": work.to_str().unwrap()}})]);
    let out = run_ok(&dir, &e, &[]);
    let stdout = method_entry(&out, "env-cwd")["output"]["stdout"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stdout, format!("from env|7\n{}\n", work.display()));
}

#[test]
fn process_bad_cwd_fails_the_activity_not_the_runner() {
    let dir = TempDir::new("proc-bad-cwd");
    let e = exp(vec![json!({"type": "probe", "name": "bad-cwd",
        "provider": {"type": "process", "path": "true", "cwd": "/nonexistent/faultline/cwd"}})]);
    let out = run_ok(&dir, &e, &[]);
    assert_eq!(method_entry(&out, "bad-cwd")["status"], "failed");
}

// ---------------------------------------------------------------- python

#[test]
fn python_stdlib_function() {
    let dir = TempDir::new("py-stdlib");
    let present = dir.write("present.txt", "x");
    let e = exp(vec![
        python(
            "exists",
            "os.path",
            "exists",
            json!({"path": present.to_str().unwrap()}),
        ),
        python(
            "absent",
            "os.path",
            "exists",
            json!({"path": dir.join("absent.txt").to_str().unwrap()}),
        ),
    ]);
    let out = run_ok(&dir, &e, &[]);
    let ex = method_entry(&out, "exists");
    assert_succeeded(ex);
    assert_eq!(ex["output"], true);
    assert_eq!(method_entry(&out, "absent")["output"], false);
}

#[test]
fn python_os_rename_as_an_action() {
    let dir = TempDir::new("py-rename");
    let src = dir.write("before.txt", "content");
    let dst = dir.join("after.txt");
    let e = exp(vec![json!({"type": "action", "name": "rename",
        "provider": {"type": "python", "module": "os", "func": "rename",
                     "arguments": {"src": src.to_str().unwrap(), "dst": dst.to_str().unwrap()}}})]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "rename");
    assert_succeeded(en);
    assert_eq!(en["output"], Value::Null);
    assert!(!src.exists());
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "content");
}

#[test]
fn python_module_in_the_working_directory_gets_configuration_and_scoped_secrets() {
    let dir = TempDir::new("py-module");
    dir.write(
        "reliability_utils.py",
        r#"
def check(threshold, configuration=None, secrets=None):
    return {
        "threshold": threshold,
        "service": configuration.get("service"),
        "keys": sorted(secrets.keys()),
        "db_password_ok": secrets.get("password") == "pw-db-4c1e9",
    }

def no_context(value):
    return value * 2
"#,
    );
    let e = json!({"title": "module", "description": "d",
    "configuration": {"service": "web"},
    "secrets": {"db": {"password": "pw-db-4c1e9"}, "other": {"token": "tok-other-8d2b7"}},
    "method": [
        {"type": "probe", "name": "check",
         "provider": {"type": "python", "module": "reliability_utils", "func": "check",
                      "arguments": {"threshold": 0.5}, "secrets": ["db"]}},
        python("no-context", "reliability_utils", "no_context", json!({"value": 21}))
    ]});
    let out = run_ok(&dir, &e, &[]);
    let o = &method_entry(&out, "check")["output"];
    assert_eq!(o["threshold"], 0.5);
    assert_eq!(o["service"], "web");
    // As chaoslib passes them: the listed scope's keys, flattened; nothing of the other.
    assert_eq!(
        o["keys"],
        json!(["password"]),
        "only the listed scope: {o:#}"
    );
    assert_eq!(o["db_password_ok"], true, "{o:#}");
    // A function that declares neither parameter still works.
    assert_eq!(method_entry(&out, "no-context")["output"], 42);
}

#[test]
fn python_exception_fails_the_activity_with_its_text() {
    let dir = TempDir::new("py-raise");
    dir.write(
        "raiser.py",
        "def boom(what):\n    raise ValueError('kaboom: ' + what)\n",
    );
    let e = exp(vec![python(
        "boom",
        "raiser",
        "boom",
        json!({"what": "disk full"}),
    )]);
    let out = run_ok(&dir, &e, &[]);
    let t = assert_failed_with(method_entry(&out, "boom"), "ValueError");
    assert!(t.contains("kaboom: disk full"), "{t}");
}

#[test]
fn python_missing_module_fails_with_a_message_naming_it() {
    let dir = TempDir::new("py-missing-module");
    let module = || python("missing", "faultline_no_such_module", "f", json!({}));
    let err = refused_before_run(&dir, module(), &[]);
    assert!(err.contains("$.method[0].provider.module"), "{err}");
    assert!(err.contains("faultline_no_such_module"), "{err}");
    let (_, t) = run_invalid(&dir, module(), &[]);
    assert!(t.contains("faultline_no_such_module"), "{t}");
    assert!(!t.contains("Traceback"), "{t}");
    let func = || python("missing-func", "os.path", "no_such_function", json!({}));
    let err = refused_before_run(&dir, func(), &[]);
    assert!(err.contains("no_such_function"), "{err}");
    let (_, t) = run_invalid(&dir, func(), &[]);
    assert!(t.contains("no_such_function"), "{t}");
}

#[test]
fn python_interpreter_missing_is_a_plain_message() {
    let dir = TempDir::new("py-no-python");
    let probe = || python("exists", "os.path", "exists", json!({"path": "/"}));
    // An explicit interpreter that does not exist.
    let env = [("FAULTLINE_PYTHON", "/nonexistent/python3")];
    let err = refused_before_run(&dir, probe(), &env);
    assert!(err.contains("'/nonexistent/python3'"), "{err}");
    let (_, t) = run_invalid(&dir, probe(), &env);
    assert!(t.contains("/nonexistent/python3"), "{t}");
    assert!(t.contains("FAULTLINE_PYTHON"), "{t}");
    // No python3 on PATH at all (faultline itself is started by its full path).
    let empty = dir.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let env = [("PATH", empty.to_str().unwrap())];
    let err = refused_before_run(&dir, probe(), &env);
    assert!(err.contains("'python3'"), "{err}");
    let (_, t) = run_invalid(&dir, probe(), &env);
    assert!(t.contains("python3"), "{t}");
    assert!(t.contains("not found"), "{t}");
}

#[test]
fn python_activity_timeout_stops_a_sleeping_function() {
    let dir = TempDir::new("py-timeout");
    let pidfile = dir.join("python.pid");
    dir.write(
        "sleeper.py",
        "import os, time\ndef nap(pidfile):\n    open(pidfile, 'w').write(str(os.getpid()))\n    time.sleep(300)\n",
    );
    let e = exp(vec![json!({"type": "action", "name": "nap", "timeout": 2,
        "provider": {"type": "python", "module": "sleeper", "func": "nap",
                     "arguments": {"pidfile": pidfile.to_str().unwrap()}}})]);
    let started = Instant::now();
    let out = run_ok(&dir, &e, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let en = method_entry(&out, "nap");
    assert_eq!(en["status"], "failed", "{en:#}");
    let t = exception_text(en).to_lowercase();
    assert!(t.contains("too long") || t.contains("timeout"), "{t}");
    assert!(en["duration"].as_f64().unwrap() < 10.0, "{en:#}");
    // On a very loaded machine the interpreter may not have reached the function
    // before the timeout; then there is no pid to check (and nothing left running).
    if pidfile.exists() {
        let pid = read_pid(&pidfile);
        assert!(
            wait_pid_gone(pid, Duration::from_secs(5)),
            "the python process {pid} survived the timeout"
        );
    }
}

#[test]
fn python_function_printing_to_stdout_still_returns_its_value() {
    let dir = TempDir::new("py-print");
    dir.write(
        "chatty.py",
        "def talk():\n    print('hello from the function')\n    return {'answer': 42}\n",
    );
    let e = exp(vec![python("talk", "chatty", "talk", json!({}))]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "talk");
    assert_succeeded(en);
    assert_eq!(en["output"], json!({"answer": 42}));
}

#[test]
fn python_function_whose_subprocess_writes_to_stdout_still_returns_its_value() {
    let dir = TempDir::new("py-subprocess");
    dir.write(
        "shelly.py",
        "import os, subprocess\ndef child():\n    subprocess.run(['echo', 'from a child'])\n    return 42\ndef system():\n    os.system('echo from system')\n    return 43\n",
    );
    let e = exp(vec![
        python("child", "shelly", "child", json!({})),
        python("system", "shelly", "system", json!({})),
    ]);
    let out = run_ok(&dir, &e, &[]);
    let en = method_entry(&out, "child");
    assert_succeeded(en);
    assert_eq!(en["output"], 42);
    assert_eq!(method_entry(&out, "system")["output"], 43);
}

#[test]
fn python_sys_exit_and_bad_arguments_fail_the_activity_with_a_message() {
    let dir = TempDir::new("py-exit");
    dir.write(
        "quitter.py",
        "import sys\ndef leave():\n    sys.exit(3)\ndef needs(a, b):\n    return a + b\n",
    );
    let e = exp(vec![
        python("leave", "quitter", "leave", json!({})),
        python("good-args", "quitter", "needs", json!({"a": 1, "b": 2})),
    ]);
    let out = run_ok(&dir, &e, &[]);
    assert_failed_with(method_entry(&out, "leave"), "SystemExit");
    assert_eq!(method_entry(&out, "good-args")["output"], 3);
    // Arguments that do not fit the signature are refused by the validation, with
    // the activity's path, as `chaos run` refuses them...
    let bad = python(
        "bad-args",
        "quitter",
        "needs",
        json!({"a": 1, "b": 2, "c": 3}),
    );
    let err = refused_before_run(&dir, bad.clone(), &[]);
    assert!(
        err.contains("$.method[0].provider.arguments")
            && err.contains(
                "argument 'c' is not part of the function signature in activity 'bad-args'"
            )
            && err.contains("needs(a, b)"),
        "{err}"
    );
    let missing = python("missing-arg", "quitter", "needs", json!({"a": 1}));
    let err = refused_before_run(&dir, missing.clone(), &[]);
    assert!(
        err.contains("required argument 'b' is missing from activity 'missing-arg'"),
        "{err}"
    );
    // ... and with --no-validation the activity fails and the run goes on, as chaos.
    let out = run_experiment_env(&dir, &cannot_run(bad), &["--no-validation"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert_eq!(out.run_names(), ["bad-args", "after"]);
    assert_failed_with(
        &out.journal()["run"][0],
        "argument 'c' is not part of the function signature",
    );
}

#[test]
fn python_module_printing_at_import_time_still_runs() {
    let dir = TempDir::new("py-loud-import");
    dir.write(
        "loud.py",
        "print('loading the loud module')\ndef f():\n    return 1\n",
    );
    let e = exp(vec![python("loud", "loud", "f", json!({}))]);
    let out = run_ok(&dir, &e, &[]);
    assert_eq!(method_entry(&out, "loud")["output"], 1);
}

#[test]
fn http_header_injection_is_refused() {
    let dir = TempDir::new("http-inject");
    let srv = HttpServer::start(|_| Response::text(200, "ok"));
    let e = exp(vec![http(
        "inject",
        json!({"url": srv.url("/"), "headers": {"X-Bad": "a\r\nInjected: 1"}}),
    )]);
    let out = run_experiment(&dir, &e, &[]);
    assert_no_panic(&out);
    assert!(
        srv.requests()
            .iter()
            .all(|r| !r.headers.contains_key("injected")),
        "a header was injected: {:?}",
        srv.requests()
    );
}

#[test]
fn http_invalid_header_is_named_not_reported_as_a_connection_failure() {
    let dir = TempDir::new("http-bad-header");
    let srv = HttpServer::start(|_| Response::text(200, "ok"));
    for (name, value) in [("X-Bad", "a\r\nInjected: 1"), ("Bad Name", "x")] {
        let e = exp(vec![http(
            "bad-header",
            json!({"url": srv.url("/"), "headers": {name: value}}),
        )]);
        let out = run_experiment(&dir, &e, &[]);
        assert_no_panic(&out);
        if out.code == 3 {
            // Refused by validation: the header is named.
            assert!(out.stderr.contains(name), "{}", out.stderr);
        } else {
            let en = method_entry(&out, "bad-header");
            assert_eq!(en["status"], "failed");
            let t = exception_text(en);
            assert!(!t.contains("failed to connect"), "{t}");
            assert!(t.contains(name), "{t}");
        }
    }
}
