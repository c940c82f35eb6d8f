//! `faultline.grafana`: the run as a region annotation on Grafana dashboards, so a
//! latency spike lines up with the experiment that caused it.
//!
//! When the experiment starts, `POST {url}/api/annotations` with the run's start
//! (epoch milliseconds, the journal's `start`) and the tags `faultline`,
//! `experiment:<title>`, `run:<id>`, `status:running`, the target labels as `k:v`
//! and the declaration's own `tags`; Grafana answers the annotation's `id`. When it
//! ends, `PATCH {url}/api/annotations/{id}` with `timeEnd` (the journal's `end`) and
//! the final tags (`status:<status>`, `deviated` when the steady state deviated). If
//! the start was not delivered, the end posts the whole region (`time` and
//! `timeEnd`) instead, so the dashboard still shows the run.
//!
//! The start is delivered in the background (the run does not wait for Grafana); the
//! end, in the background too, waits for it within its retry budget, then delivers
//! its own: at most [`Retry::DEFAULT`]'s budget each. The app waits for every
//! notifier at once ([`Notifier::finish`]); failures are warnings at the end of the
//! run.
//!
//! Arguments: `url` (Grafana's base URL, required), the token as `token` or
//! `token_env` (an environment variable), else `token` in the secret scopes the
//! declaration lists (default scope: `grafana`), sent as `Authorization: Bearer`;
//! `dashboard_uid`, `panel_id` (a dashboard's or a panel's annotation instead of an
//! organisation-wide one), `tags` (a list of strings).

use super::deliver::{self, Credential, Endpoint, Mask, Notice, Notifier, Pending, Retry};
use super::{Control, Decision, Hook, RunInfo};
use crate::run::Status;
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use url::Url;

/// The declared module.
pub const MODULE: &str = "faultline.grafana";

/// The secret scope read when the declaration lists none.
const DEFAULT_SCOPE: &str = "grafana";

/// What a start delivery ends with: the annotation's id, or why there is none.
type Started = Result<i64, String>;

/// Region annotations in Grafana for the run.
pub struct Grafana {
    name: String,
    base: Url,
    token: Credential,
    scopes: Vec<String>,
    scopes_declared: bool,
    dashboard_uid: Option<String>,
    panel_id: Option<i64>,
    tags: Vec<String>,
    endpoint: Endpoint,
    mask: Mask,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    headers: Vec<(String, String)>,
    start: Option<Pending<Started>>,
    end: Option<Pending<Vec<String>>>,
    errors: Vec<String>,
}

/// The annotation's fixed part, from the arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    /// A dashboard's UID.
    pub dashboard_uid: Option<String>,
    /// A panel's id.
    pub panel_id: Option<i64>,
    /// Tags of the declaration's own.
    pub tags: Vec<String>,
}

/// Milliseconds since the epoch.
fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// The tags of the annotation: fixed ones, the status (`running` until the end), the
/// target labels and the user's.
pub fn tags(run: &RunInfo, end: Option<(Status, bool)>, target: &Target) -> Vec<String> {
    let mut t = vec![
        "faultline".to_string(),
        format!("experiment:{}", run.title),
        format!("run:{}", run.run_id),
    ];
    match end {
        None => t.push("status:running".into()),
        Some((status, deviated)) => {
            t.push(format!("status:{}", status.as_str()));
            if deviated {
                t.push("deviated".into());
            }
        }
    }
    t.extend(run.labels.iter().map(|(k, v)| format!("{k}:{v}")));
    t.extend(target.tags.iter().cloned());
    t
}

/// The annotation's text: title, run id, trace id, and at the end the outcome.
pub fn text(run: &RunInfo, end: Option<(Status, bool)>) -> String {
    let mut s = format!("faultline: {}\nrun {}", run.title, run.run_id);
    if let Some(t) = &run.trace_id {
        s.push_str(&format!(", trace {t}"));
    }
    if let Some((status, deviated)) = end {
        s.push_str(&format!("\n{}", status.as_str()));
        if deviated {
            s.push_str(", the steady state deviated");
        }
    }
    s
}

fn with_target(mut body: Map<String, Value>, target: &Target) -> Value {
    if let Some(uid) = &target.dashboard_uid {
        body.insert("dashboardUID".into(), json!(uid));
    }
    if let Some(id) = target.panel_id {
        body.insert("panelId".into(), json!(id));
    }
    Value::Object(body)
}

/// `POST /api/annotations` at the start: the region's start, status `running`.
pub fn start_body(run: &RunInfo, target: &Target) -> Value {
    let mut b = Map::new();
    b.insert("time".into(), json!(millis(run.started)));
    b.insert("tags".into(), json!(tags(run, None, target)));
    b.insert("text".into(), json!(text(run, None)));
    with_target(b, target)
}

/// `PATCH /api/annotations/{id}` at the end: the region's end and the final tags.
pub fn end_body(run: &RunInfo, status: Status, deviated: bool, target: &Target) -> Value {
    let end = Some((status, deviated));
    json!({
        "time": millis(run.started),
        "timeEnd": millis(run.ended.unwrap_or_else(chrono::Utc::now)),
        "tags": tags(run, end, target),
        "text": text(run, end),
    })
}

/// `POST /api/annotations` at the end when the start was not delivered: the whole
/// region at once.
pub fn region_body(run: &RunInfo, status: Status, deviated: bool, target: &Target) -> Value {
    let end = Some((status, deviated));
    let mut b = Map::new();
    b.insert("time".into(), json!(millis(run.started)));
    b.insert(
        "timeEnd".into(),
        json!(millis(run.ended.unwrap_or_else(chrono::Utc::now))),
    );
    b.insert("tags".into(), json!(tags(run, end, target)));
    b.insert("text".into(), json!(text(run, end)));
    with_target(b, target)
}

/// The annotation id in Grafana's answer (`{"message": "Annotation added", "id": 1}`).
fn answered_id(body: &str) -> Option<i64> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("id")?
        .as_i64()
}

/// `{base}/api/annotations[/{id}]`, as path segments (a base with a sub-path, such as
/// Grafana behind `/grafana/`, keeps it).
fn api_url(base: &Url, id: Option<i64>) -> Url {
    let mut u = base.clone();
    u.set_query(None);
    u.set_fragment(None);
    if let Ok(mut p) = u.path_segments_mut() {
        p.pop_if_empty().extend(["api", "annotations"]);
        if let Some(id) = id {
            p.push(&id.to_string());
        }
    }
    u
}

impl Grafana {
    /// From the declaration: its name, `arguments` and the secret scopes it lists.
    /// Every problem in the arguments, each naming its argument.
    pub fn from_arguments(
        name: &str,
        args: &Value,
        scopes: &[String],
    ) -> Result<Grafana, Vec<String>> {
        let mut problems = Vec::new();
        let base = match args.get("url") {
            Some(Value::String(u)) => deliver::http_url("url", u)
                .map_err(|e| problems.push(e))
                .ok(),
            Some(_) => {
                problems.push("'url' must be a string: Grafana's base URL".into());
                None
            }
            None => {
                problems.push("'url' is required: Grafana's base URL".into());
                None
            }
        };
        let token = Credential::from_arguments(args, "token").unwrap_or_else(|e| {
            problems.push(e);
            Credential::Unset
        });
        let text = |k: &str, problems: &mut Vec<String>| match args.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push(format!("'{k}' must be a string"));
                None
            }
        };
        let dashboard_uid = text("dashboard_uid", &mut problems);
        let panel_id = match args.get("panel_id") {
            None | Some(Value::Null) => None,
            Some(v) => v.as_i64().or_else(|| {
                problems.push("'panel_id' must be an integer".into());
                None
            }),
        };
        let tags = match args.get("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => {
                problems.push("'tags' must be a list of strings".into());
                Vec::new()
            }
        };
        let shown = base.as_ref().map_or_else(String::new, |b| {
            deliver::shown(api_url(b, None).as_str(), false)
        });
        let endpoint = Endpoint::new(Vec::new(), Retry::DEFAULT, shown)
            .map_err(|e| problems.push(e))
            .ok();
        match (base, endpoint) {
            (Some(base), Some(endpoint)) if problems.is_empty() => Ok(Grafana {
                name: name.to_string(),
                base,
                token,
                scopes_declared: !scopes.is_empty(),
                scopes: if scopes.is_empty() {
                    vec![DEFAULT_SCOPE.to_string()]
                } else {
                    scopes.to_vec()
                },
                dashboard_uid,
                panel_id,
                tags,
                endpoint,
                mask: Mask::default(),
                state: Mutex::default(),
            }),
            _ => Err(problems),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn target(&self) -> Target {
        Target {
            dashboard_uid: self.dashboard_uid.clone(),
            panel_id: self.panel_id,
            tags: self.tags.clone(),
        }
    }

    /// The endpoint with the credentials `prepare` resolved.
    fn endpoint(&self) -> Endpoint {
        let mut e = self.endpoint.clone();
        e.headers = self.state().headers.clone();
        e
    }

    fn failed(&self, e: String) {
        let e = self.mask.text(&e);
        self.state().errors.push(e);
    }
}

impl Control for Grafana {
    fn name(&self) -> &str {
        &self.name
    }

    fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
        let notice = Notice {
            method: reqwest::Method::POST,
            url: api_url(&self.base, None),
            body: self.mask.value(start_body(run, &self.target())),
        };
        let endpoint = self.endpoint();
        // The run goes on at once: the end waits for this delivery.
        let pending = Pending::spawn(async move {
            let a = endpoint.deliver("start annotation", &notice).await?;
            answered_id(&a.body).ok_or_else(|| {
                format!(
                    "start annotation (POST {}): the answer has no annotation id",
                    endpoint.shown
                )
            })
        });
        self.state().start = Some(pending);
        Box::pin(async { Decision::Continue })
    }

    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        let start = self.state().start.take();
        let target = self.target();
        // Both possible ends, masked now: which one goes depends on the start.
        let patch = self.mask.value(end_body(run, status, deviated, &target));
        let region = self.mask.value(region_body(run, status, deviated, &target));
        let base = self.base.clone();
        let endpoint = self.endpoint();
        // The end waits for the start (within the start's budget) then delivers its
        // own, in the background: the app waits for every notifier at once.
        let end = Pending::spawn(async move {
            let mut errors = Vec::new();
            let limit = endpoint.retry.budget + std::time::Duration::from_millis(500);
            let id = match start.map(|p| p.wait(limit)) {
                Some(Some(Ok(id))) => Some(id),
                Some(Some(Err(e))) => {
                    errors.push(e);
                    None
                }
                Some(None) => {
                    errors.push(format!("start annotation: not delivered within {limit:?}"));
                    None
                }
                None => None,
            };
            let (what, notice) = match id {
                Some(id) => (
                    "end of the annotation",
                    Notice {
                        method: reqwest::Method::PATCH,
                        url: api_url(&base, Some(id)),
                        body: patch,
                    },
                ),
                // The start is not there: the whole region at once.
                None => (
                    "whole-run annotation",
                    Notice {
                        method: reqwest::Method::POST,
                        url: api_url(&base, None),
                        body: region,
                    },
                ),
            };
            if let Err(e) = endpoint.deliver(what, &notice).await {
                errors.push(e);
            }
            errors
        });
        self.state().end = Some(end);
    }
}

impl Notifier for Grafana {
    fn describe(&self) -> String {
        format!("control '{}' ({MODULE})", self.name)
    }

    fn prepare(
        &self,
        secrets: &Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        let token = self.token.resolve(
            "token",
            "token",
            &self.scopes,
            self.scopes_declared,
            secrets,
            env,
        )?;
        let Some(token) = token else {
            return Ok(Vec::new());
        };
        if token.trim().is_empty() || token.contains(['\r', '\n']) {
            return Err("the token is empty or spans lines".into());
        }
        self.mask.own(vec![token.clone()]);
        self.state().headers = vec![("authorization".into(), format!("Bearer {token}"))];
        Ok(vec![token])
    }

    fn learn(&self, redactor: &crate::redact::Redactor) {
        self.mask.learn(redactor);
    }

    fn finish(&self, deadline: std::time::Instant) -> Vec<String> {
        let end = self.state().end.take();
        if let Some(end) = end {
            match end.wait(deadline.saturating_duration_since(std::time::Instant::now())) {
                Some(errors) => errors.into_iter().for_each(|e| self.failed(e)),
                None => self
                    .failed("end of the annotation: still not delivered when the run ended".into()),
            }
        }
        self.state().errors.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn run() -> RunInfo {
        RunInfo {
            run_id: "r-1".into(),
            title: "kill a pod".into(),
            experiment: json!({"title": "kill a pod"}),
            trace_id: Some("abc123".into()),
            labels: [("service".to_string(), "checkout".to_string())].into(),
            experiment_ref: "ref".into(),
            started: chrono::Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            ended: Some(chrono::Utc.timestamp_millis_opt(1_700_000_004_567).unwrap()),
            duration: Some(4.444),
            journal: None,
        }
    }

    #[test]
    fn the_start_is_a_running_region_start() {
        let target = Target {
            dashboard_uid: Some("d1".into()),
            panel_id: Some(4),
            tags: vec!["team:sre".into()],
        };
        assert_eq!(
            start_body(&run(), &target),
            json!({
                "time": 1_700_000_000_123_i64,
                "tags": ["faultline", "experiment:kill a pod", "run:r-1", "status:running",
                         "service:checkout", "team:sre"],
                "text": "faultline: kill a pod\nrun r-1, trace abc123",
                "dashboardUID": "d1",
                "panelId": 4,
            })
        );
    }

    #[test]
    fn the_end_closes_the_region_with_the_final_status() {
        let t = Target::default();
        let b = end_body(&run(), Status::Completed, true, &t);
        assert_eq!(b["time"], json!(1_700_000_000_123_i64));
        assert_eq!(b["timeEnd"], json!(1_700_000_004_567_i64));
        assert_eq!(
            b["tags"],
            json!([
                "faultline",
                "experiment:kill a pod",
                "run:r-1",
                "status:completed",
                "deviated",
                "service:checkout"
            ])
        );
        assert!(b["text"]
            .as_str()
            .unwrap()
            .ends_with("completed, the steady state deviated"));
        let r = region_body(&run(), Status::Interrupted, false, &t);
        assert_eq!(r["time"], json!(1_700_000_000_123_i64));
        assert_eq!(r["timeEnd"], json!(1_700_000_004_567_i64));
        assert!(r["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("status:interrupted")));
    }

    #[test]
    fn the_api_keeps_a_sub_path() {
        let base = Url::parse("http://h:3000/grafana/").unwrap();
        assert_eq!(
            api_url(&base, None).as_str(),
            "http://h:3000/grafana/api/annotations"
        );
        assert_eq!(
            api_url(&Url::parse("http://h").unwrap(), Some(12)).as_str(),
            "http://h/api/annotations/12"
        );
        assert_eq!(
            answered_id(r#"{"message":"Annotation added","id":12}"#),
            Some(12)
        );
        assert_eq!(answered_id("{}"), None);
    }

    #[test]
    fn every_bad_argument_is_named() {
        let e = Grafana::from_arguments(
            "g",
            &json!({"panel_id": "x", "tags": [1], "token": "a", "token_env": "B"}),
            &[],
        )
        .err()
        .unwrap();
        let all = e.join("\n");
        for word in ["'url' is required", "'panel_id'", "'tags'", "not both"] {
            assert!(all.contains(word), "{word}: {all}");
        }
        assert!(Grafana::from_arguments("g", &json!({"url": "http://g:3000"}), &[]).is_ok());
    }

    #[test]
    fn a_token_in_the_answer_or_the_body_is_masked() {
        let g = Grafana::from_arguments(
            "g",
            &json!({"url": "http://127.0.0.1:9", "token_env": "T", "tags": ["tok-9"]}),
            &[],
        )
        .ok()
        .unwrap();
        let masked = g
            .prepare(&Map::new(), &|k| (k == "T").then(|| "tok-9".to_string()))
            .unwrap();
        assert_eq!(masked, vec!["tok-9".to_string()]);
        let body = g.mask.value(start_body(&run(), &g.target()));
        assert!(!body.to_string().contains("tok-9"), "{body}");
        g.failed("it answered 401: bad token tok-9".into());
        assert_eq!(
            g.finish(std::time::Instant::now()),
            vec!["it answered 401: bad token ***".to_string()]
        );
    }

    /// A run's hooks against a test server: the requests it got and the failures.
    async fn one_run(
        srv: &crate::test_http::Server,
    ) -> (Vec<crate::test_http::Request>, Vec<String>) {
        let g = Grafana::from_arguments("g", &json!({"url": srv.url("/gf")}), &[])
            .ok()
            .unwrap();
        let secrets = json!({"grafana": {"token": "tok-1"}});
        g.prepare(secrets.as_object().unwrap(), &|_| None).unwrap();
        let r = run();
        g.before_experiment(&r).await;
        g.after_experiment(&r, Status::Failed, false);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let errors = g.finish(deadline);
        (srv.requests(), errors)
    }

    fn check_region(reqs: &[crate::test_http::Request]) {
        let seen: Vec<_> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            seen,
            ["POST /gf/api/annotations", "PATCH /gf/api/annotations/9"]
        );
        for r in reqs {
            assert_eq!(r.header("authorization"), Some("Bearer tok-1"));
        }
        let end: Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(end["timeEnd"], json!(1_700_000_004_567_i64));
        assert!(end["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("status:failed")));
    }

    #[tokio::test]
    async fn a_region_on_a_current_thread_runtime() {
        let srv = crate::test_http::Server::start(|_| {
            crate::test_http::Response::json(200, &json!({"id": 9}))
        });
        let (reqs, errors) = one_run(&srv).await;
        assert!(errors.is_empty(), "{errors:?}");
        check_region(&reqs);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_region_on_a_multi_threaded_runtime() {
        let srv = crate::test_http::Server::start(|_| {
            crate::test_http::Response::json(200, &json!({"id": 9}))
        });
        let (reqs, errors) = one_run(&srv).await;
        assert!(errors.is_empty(), "{errors:?}");
        check_region(&reqs);
    }

    #[tokio::test]
    async fn a_refused_start_becomes_a_whole_region_at_the_end() {
        let srv = crate::test_http::Server::scripted(
            vec![crate::test_http::Response::text(400, "bad tok-1 request")],
            crate::test_http::Response::json(200, &json!({"id": 3})),
        );
        let (reqs, errors) = one_run(&srv).await;
        let seen: Vec<_> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            seen,
            ["POST /gf/api/annotations", "POST /gf/api/annotations"]
        );
        let region: Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(region["time"], json!(1_700_000_000_123_i64));
        assert_eq!(region["timeEnd"], json!(1_700_000_004_567_i64));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("start annotation (POST http://127.0.0.1:")
                && errors[0].contains("/gf/api/annotations) not delivered after 1 attempt(s): it answered 400: bad *** request"),
            "{errors:?}"
        );
    }
}
