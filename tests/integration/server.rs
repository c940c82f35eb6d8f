//! `faultline serve` as a real process on 127.0.0.1: a token from `faultline token
//! create`, the guide's own python `requests.put` (host changed, nothing else),
//! `chaostoolkit-reliably`'s `slo_is_met` over http and https, a graceful SIGTERM
//! that finishes the request in flight, the refusals, and a crash test that
//! `kill -9`s the server under 32 concurrent writers and finds every acknowledged
//! indicator after a restart.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `faultline token create --org ORG --store STORE`: the token it printed.
pub(crate) fn token(dir: &TempDir, org: &str, store: &Path) -> String {
    let out = faultline(
        dir,
        &[
            "token",
            "create",
            "--org",
            org,
            "--store",
            store.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = out.stdout.trim().to_string();
    assert!(
        t.starts_with("flt_") && !t.contains(char::is_whitespace),
        "{t:?}"
    );
    t
}

/// A running `faultline serve`, killed on drop.
pub(crate) struct Served {
    child: ChildGuard,
    /// `http://127.0.0.1:PORT` (or https).
    pub(crate) base: String,
    out: PathBuf,
    err: PathBuf,
}

impl Served {
    pub(crate) fn start(dir: &TempDir, tag: &str, store: &Path, extra: &[&str]) -> Served {
        Served::start_on(dir, tag, store, "127.0.0.1:0", extra)
    }

    /// [`Served::start`] on a given address.
    pub(crate) fn start_on(
        dir: &TempDir,
        tag: &str,
        store: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Served {
        let out = dir.join(&format!("serve-{tag}.out"));
        let err = dir.join(&format!("serve-{tag}.err"));
        let child = Command::new(bin())
            .args([
                "serve",
                "--listen",
                listen,
                "--store",
                store.to_str().unwrap(),
            ])
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child: ChildGuard(Some(child)),
            base: String::new(),
            out,
            err,
        };
        wait_until(LIMIT, "faultline serve to listen", || {
            let text = std::fs::read_to_string(&served.out).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                served.base = rest.split_whitespace().next().unwrap().to_string();
                return true;
            }
            let exited = served.child.0.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none(),
                "serve exited: {}",
                std::fs::read_to_string(&served.err).unwrap_or_default()
            );
            false
        });
        served
    }

    fn pid(&self) -> u32 {
        self.child.0.as_ref().unwrap().id()
    }

    fn child(&mut self) -> &mut Child {
        self.child.0.as_mut().unwrap()
    }

    /// Everything it printed.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
            + &std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

fn client() -> reqwest::blocking::Client {
    faultline::tls::init();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn objective(labels: Value, selector: Value) -> Value {
    json!({"apiVersion": "reliably.com/v1", "kind": "Objective",
           "metadata": {"labels": labels},
           "spec": {"indicatorSelector": selector, "objectivePercent": 99.9, "window": "1h"}})
}

/// A python with `requests`: the system's, the Chaos Toolkit venv, or Reliably's.
fn python_with_requests() -> Option<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    [
        "python3".to_string(),
        format!("{root}/target/ctk-venv/bin/python"),
        "/work/venvs/reliably/bin/python".to_string(),
    ]
    .into_iter()
    .find(|p| {
        Command::new(p)
            .args(["-c", "import requests"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The guide's `reliability_utils.py`, verbatim but for the host and the values of
/// TOKEN and ORG (which the guide tells the reader to fill in).
fn guide_module(host: &str, token: &str, org: &str) -> String {
    format!(
        r#"from datetime import datetime
import json

import requests

__all__ = ["send_good_indicator"]

TOKEN = "{token}"
ORG = "{org}"


def send_good_indicator(
    configuration = None, secrets = None
) -> None:
    """
    For a given TOKEN and ORG, send a 100% availability Indicator
    for the selector that matches `category=Availability` and
    `indicator_name=exploring-reliability-guide-service-availability-indicator`
    """
    timenow = datetime.utcnow().isoformat() + 'Z'
    body = {{
        "metadata": {{
            "labels": {{
                "category": "Availability",
                "indicator_name": "exploring-reliability-guide-service-availability-indicator",
            }}
        }},
        "spec": {{"from": timenow, "to": timenow, "percent": 100.0}},
    }}

    requests.put(
        url=f"{host}/entities/{{ORG}}/reliably.com/v1/indicator",
        data=json.dumps(body),
        headers={{"Authorization": f"Bearer {{TOKEN}}"}},
    )
"#
    )
}

#[test]
fn the_guides_requests_put_reaches_a_real_faultline_serve() {
    let Some(python) = python_with_requests() else {
        eprintln!("skipped: no python with requests");
        return;
    };
    let dir = TempDir::new("serve-guide");
    let store = dir.join("store.db");
    let tok = token(&dir, "MyOrg", &store);
    let served = Served::start(&dir, "a", &store, &[]);
    let http = client();
    let selector = json!({"category": "Availability",
        "indicator_name": "exploring-reliability-guide-service-availability-indicator"});
    let r = http
        .put(format!("{}/api/v1/orgs/myorg/objectives", served.base))
        .bearer_auth(&tok)
        .json(&objective(
            json!({"name": "guide", "service": "exploring-reliability-guide-service"}),
            selector,
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    dir.write(
        "reliability_utils.py",
        &guide_module(&served.base, &tok, "MyOrg"),
    );
    let out = Command::new(&python)
        .args([
            "-c",
            "from reliability_utils import send_good_indicator; send_good_indicator()",
        ])
        .current_dir(dir.path())
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read back the Reliably way: the objective_result of the selector.
    let b64 = base64_selector(&[("category", "Availability")]);
    let results: Value = http
        .get(format!(
            "{}/api/entities/myorg/reliably.com/v1/objective_result?selector={b64}&limit=5",
            served.base
        ))
        .bearer_auth(&tok)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["spec"]["actualPercent"], 100.0);
    assert!(!served.output().contains(&tok), "the token was printed");
}

/// URL-safe base64 with padding of Python's `json.dumps(labels, indent=False)`.
fn base64_selector(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json!(k), json!(v)))
        .collect();
    base64::engine::general_purpose::URL_SAFE.encode(format!("{{\n{}\n}}", items.join(",\n")))
}

/// `slo_is_met` from the real `chaostoolkit-reliably==0.7.0`, when its venv is here.
fn slo_is_met(
    served: &Served,
    token: &str,
    extra_env: &[(&str, &str)],
    https: bool,
) -> Option<String> {
    let python = "/work/venvs/reliably/bin/python";
    if !Path::new(python).exists() {
        eprintln!("skipped slo_is_met: no chaostoolkit-reliably venv at {python}");
        return None;
    }
    let host = served.base.split("://").nth(1).unwrap();
    let code = format!(
        r#"
from chaosreliably.slo.probes import slo_is_met
ok = slo_is_met(labels={{"name": "api-availability", "service": "api"}}, limit=5,
                configuration={{"reliably_use_http": {use_http}, "reliably_config_path": "/nonexistent"}})
print("SLO_MET", ok)
"#,
        use_http = if https { "False" } else { "True" }
    );
    let mut cmd = Command::new(python);
    cmd.args(["-c", &code])
        .env("RELIABLY_HOST", host)
        .env("RELIABLY_TOKEN", token)
        .env("RELIABLY_ORG", "Acme")
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn put_slo_and_indicator(
    served: &Served,
    http: &reqwest::blocking::Client,
    token: &str,
    percent: f64,
) {
    let o = objective(
        json!({"name": "api-availability", "service": "api"}),
        json!({"category": "Availability", "service": "api"}),
    );
    let r = http
        .put(format!(
            "{}/api/entities/acme/reliably.com/v1/objective",
            served.base
        ))
        .bearer_auth(token)
        .body(o.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let now = chrono::Utc::now().to_rfc3339();
    let i = json!({"metadata": {"labels": {"category": "Availability", "service": "api"}},
                   "spec": {"from": now, "to": now, "percent": percent}});
    let r = http
        .put(format!(
            "{}/entities/acme/reliably.com/v1/indicator",
            served.base
        ))
        .bearer_auth(token)
        .body(i.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn chaostoolkit_reliablys_slo_is_met_reads_a_real_faultline_serve() {
    let dir = TempDir::new("serve-reliably");
    let store = dir.join("store.db");
    let tok = token(&dir, "acme", &store);
    let served = Served::start(&dir, "a", &store, &[]);
    put_slo_and_indicator(&served, &client(), &tok, 100.0);
    let Some(out) = slo_is_met(&served, &tok, &[], false) else {
        return;
    };
    assert!(out.contains("SLO_MET True"), "{out}");
    put_slo_and_indicator(&served, &client(), &tok, 90.0);
    let out = slo_is_met(&served, &tok, &[], false).unwrap();
    assert!(out.contains("SLO_MET False"), "{out}");
    assert!(
        out.contains("The following Objective Results were not OK"),
        "{out}"
    );
}

#[test]
fn serve_speaks_https_with_the_given_certificate() {
    let dir = TempDir::new("serve-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // A leaf, not a CA: webpki refuses a CA certificate as a server's.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let store = dir.join("store.db");
    let tok = token(&dir, "acme", &store);
    let served = Served::start(
        &dir,
        "a",
        &store,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        served.base.starts_with("https://127.0.0.1:"),
        "{}",
        served.base
    );
    faultline::tls::init();
    let pem = std::fs::read(&cert).unwrap();
    let https = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = https
        .get(format!("{}/healthz", served.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to it gets no answer; an untrusting client refuses it.
    let plain = served.base.replace("https://", "http://");
    assert!(client().get(format!("{plain}/healthz")).send().is_err());
    assert!(client()
        .get(format!("{}/healthz", served.base))
        .send()
        .is_err());
    put_slo_and_indicator(&served, &https, &tok, 100.0);
    if let Some(out) = slo_is_met(
        &served,
        &tok,
        &[("SSL_CERT_FILE", cert.to_str().unwrap())],
        true,
    ) {
        assert!(out.contains("SLO_MET True"), "{out}");
    }
    // A missing key file is named, exit 3.
    let bad = faultline(
        &dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            "missing.pem",
        ],
        &[],
    );
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(bad.stderr.contains("--tls-key"), "{}", bad.stderr);
}

#[test]
fn serve_refuses_no_auth_off_loopback_and_a_remote_store() {
    let dir = TempDir::new("serve-refusals");
    let out = faultline(
        &dir,
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-auth",
            "--store",
            "s.db",
        ],
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("--no-auth is refused"),
        "{}",
        out.stderr
    );
    let out = faultline(&dir, &["serve", "--store", "http://127.0.0.1:1"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("local store file"), "{}", out.stderr);
    let out = faultline(
        &dir,
        &["token", "create", "--org", "a/b", "--store", "s.db"],
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("--org"), "{}", out.stderr);
    // --no-auth on loopback: allowed, and nothing is checked.
    let served = Served::start(&dir, "a", &dir.join("s.db"), &["--no-auth"]);
    let r = client()
        .get(format!("{}/api/v1/orgs/anyone/objectives", served.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_closes_the_store() {
    let dir = TempDir::new("serve-term");
    let store = dir.join("store.db");
    let tok = token(&dir, "acme", &store);
    let mut served = Served::start(&dir, "a", &store, &[]);
    let addr = served.base.trim_start_matches("http://").to_string();
    let http = client();
    let r = http
        .put(format!("{}/api/v1/orgs/acme/objectives", served.base))
        .bearer_auth(&tok)
        .json(&objective(json!({"name": "o"}), json!({"k": "v"})))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A request whose body is half sent when SIGTERM comes.
    let body = json!({"metadata": {"labels": {"k": "v"}},
        "spec": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "percent": 42.5}})
    .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/v1/orgs/acme/indicators HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {tok}\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    conn.flush().unwrap();
    // Its handler is reading the body once the in-flight gauge counts it.
    let in_flight =
        "faultline_server_requests_in_flight{route=\"/api/v1/orgs/{org}/indicators\"} 1";
    wait_until(LIMIT, "the request to be in flight", || {
        http.get(format!("{}/metrics", served.base))
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.lines().any(|l| l == in_flight))
    });
    send_signal(served.pid(), "TERM");
    wait_until(LIMIT, "the listener to close", || {
        std::net::TcpStream::connect(&addr).is_err()
    });
    conn.write_all(tail.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let code = wait_with_limit(served.child(), LIMIT);
    assert_eq!(code, 0, "{}", served.output());
    assert!(
        served.output().contains("stopped; the store is closed"),
        "{}",
        served.output()
    );
    // The write is in the store.
    let again = Served::start(&dir, "b", &store, &[]);
    let v: Value = http
        .get(format!(
            "{}/api/v1/orgs/acme/results?indicatorSelector=k%3Dv",
            again.base
        ))
        .bearer_auth(&tok)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v[0]["actualPercent"], 42.5, "{v}");
}

#[test]
fn every_acknowledged_indicator_survives_kill_9_under_concurrent_writes() {
    const WRITERS: usize = 32;
    const WRITES: usize = 200;
    let dir = TempDir::new("serve-crash");
    let store = dir.join("store.db");
    let tok = token(&dir, "acme", &store);
    let mut served = Served::start(&dir, "a", &store, &[]);
    let http = client();
    let r = http
        .put(format!("{}/api/v1/orgs/acme/objectives", served.base))
        .bearer_auth(&tok)
        .json(&objective(
            json!({"name": "crash"}),
            json!({"crash": "yes"}),
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acked, failures, tok) = (acked.clone(), failures.clone(), tok.clone());
            let url = format!("{}/api/v1/orgs/acme/indicators", served.base);
            std::thread::spawn(move || {
                // One keep-alive client per writer.
                let http = client();
                for n in 0..WRITES {
                    let body = json!({"metadata": {"labels": {"crash": "yes", "writer": w.to_string(), "n": n.to_string()}},
                        "spec": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "percent": 99.0}});
                    match http.post(&url).bearer_auth(&tok).json(&body).send() {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = r.json().unwrap();
                            acked.lock().unwrap().push(v["id"].as_str().unwrap().to_string());
                        }
                        _ => {
                            *failures.lock().unwrap() += 1;
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    wait_until(
        Duration::from_secs(120),
        "1,000 acknowledged writes",
        || acked.lock().unwrap().len() >= 1000,
    );
    served.child().kill().unwrap(); // SIGKILL
    served.child().wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        *failures.lock().unwrap() > 0,
        "every write finished before the kill: the test did not kill mid-way"
    );
    let again = Served::start(&dir, "b", &store, &[]);
    let v: Value = http
        .get(format!(
            "{}/api/v1/orgs/acme/results?indicatorSelector=crash%3Dyes&limit=10000",
            again.base
        ))
        .bearer_auth(&tok)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let stored: std::collections::HashSet<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["indicatorId"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    eprintln!(
        "crash test: {} acknowledged, {} stored after kill -9 and restart",
        acked.len(),
        stored.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged indicators lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn two_serve_replicas_share_one_postgresql_database() {
    let Some(pg) = crate::store::Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = pg
        .database(&rt)
        .replacen("faultline@", "faultline:pw-not-shown@", 1);
    let dir = TempDir::new("serve-pg");
    let tok = token(&dir, "acme", Path::new(&db));
    let a = Served::start(&dir, "a", Path::new(&db), &[]);
    let b = Served::start(&dir, "b", Path::new(&db), &[]);
    // The password (ignored by the test server's trust auth) is never shown.
    assert!(a.output().contains("listening on"), "{}", a.output());
    assert!(!a.output().contains("pw-not-shown"), "{}", a.output());
    let http = client();
    let r = http
        .put(format!("{}/api/v1/orgs/acme/objectives", a.base))
        .bearer_auth(&tok)
        .json(&objective(json!({"name": "shared"}), json!({"k": "v"})))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A write through one replica is read through the other.
    let body = json!({"metadata": {"labels": {"k": "v"}},
        "spec": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "percent": 97.0}});
    let r = http
        .put(format!(
            "{}/api/entities/acme/reliably.com/v1/indicator",
            b.base
        ))
        .bearer_auth(&tok)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let sel = base64_selector(&[("k", "v")]);
    let v: Value = http
        .get(format!(
            "{}/api/entities/acme/reliably.com/v1/objective_result?selector={sel}&limit=5",
            a.base
        ))
        .bearer_auth(&tok)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v[0]["spec"]["actualPercent"], 97.0, "{v}");
}
