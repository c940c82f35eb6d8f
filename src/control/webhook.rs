//! `faultline.webhook`: a notice when a run starts and when it ends, to chat (a
//! Slack-compatible incoming webhook) or to any service taking JSON.
//!
//! Each notice says the title, the status, whether the steady state deviated, the
//! duration, a link to the trace and where the journal is. Every body goes through
//! the run's redactor (and the webhook's own URL when it came from the
//! environment) before it leaves: no secret reaches a chat channel.
//!
//! Delivery follows [`super::deliver`]: the start in the background, the end after
//! it (waiting for the start within its budget, so the two arrive in order), each
//! with bounded retries; failures are warnings at the end of the run.
//!
//! Arguments: `url` or `url_env` (required; a Slack webhook URL is a credential:
//! prefer `url_env`, or `url` in the secret scopes the declaration lists), `format`
//! (`json`, the default, or `slack`), `trace_url` (a template: `{trace_id}` and
//! `{run_id}` are replaced, e.g. `http://jaeger:16686/trace/{trace_id}`), `headers`
//! (an object of strings).

use super::deliver::{self, Credential, Endpoint, Mask, Notice, Notifier, Pending, Retry};
use super::{Control, Decision, Hook, RunInfo};
use crate::run::Status;
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use url::Url;

/// The declared module.
pub const MODULE: &str = "faultline.webhook";

/// The `event` of the JSON notice at the start.
pub const STARTED: &str = "run.started";
/// The `event` of the JSON notice at the end.
pub const ENDED: &str = "run.ended";

/// How a notice is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Faultline's own JSON object (see [`json_body`]).
    Json,
    /// A Slack-compatible incoming webhook: `text` and `blocks`.
    Slack,
}

/// The end of a run, as notices tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Its status.
    pub status: Status,
    /// Whether the steady state deviated.
    pub deviated: bool,
}

/// Notices of the run's start and end.
pub struct Webhook {
    name: String,
    url: Credential,
    scopes: Vec<String>,
    format: Format,
    trace_url: Option<String>,
    endpoint: Endpoint,
    mask: Mask,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    url: Option<Url>,
    start: Option<Pending<Result<(), String>>>,
    end: Option<Pending<Vec<String>>>,
    errors: Vec<String>,
}

/// The trace link: the template with `{trace_id}` and `{run_id}` replaced; none
/// without a template or a trace id.
pub fn trace_link(template: Option<&str>, run: &RunInfo) -> Option<String> {
    let (template, trace) = (template?, run.trace_id.as_deref()?);
    Some(
        template
            .replace("{trace_id}", trace)
            .replace("{run_id}", &run.run_id),
    )
}

/// The generic JSON notice.
pub fn json_body(run: &RunInfo, end: Option<End>, trace_url: Option<&str>) -> Value {
    json!({
        "event": if end.is_some() { ENDED } else { STARTED },
        "run_id": run.run_id,
        "title": run.title,
        "status": end.map_or("running", |e| e.status.as_str()),
        "deviated": end.map(|e| e.deviated),
        "duration_s": end.and(run.duration),
        "trace_id": run.trace_id,
        "trace_url": trace_link(trace_url, run),
        "journal": run.journal.as_ref().map(|p| p.display().to_string()),
        "labels": run.labels,
        "experiment_ref": run.experiment_ref,
        "started": crate::timefmt::iso(run.started),
        "ended": end.and(run.ended).map(crate::timefmt::iso),
    })
}

/// Text as Slack's mrkdwn reads it literally (`&`, `<`, `>` are its markup).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack-compatible notice: `text` (notifications, clients without blocks) and
/// `blocks` (a section with the outcome, a context with the run's references).
pub fn slack_body(run: &RunInfo, end: Option<End>, trace_url: Option<&str>) -> Value {
    let title = escape(&run.title);
    let (icon, what) = match end {
        None => (":test_tube:", "started".to_string()),
        Some(e) => {
            let icon = match (e.status, e.deviated) {
                (Status::Completed, false) => ":white_check_mark:",
                (Status::Completed, true) => ":warning:",
                _ => ":x:",
            };
            let mut what = e.status.as_str().to_string();
            if e.deviated {
                what.push_str(", the steady state deviated");
            }
            if let Some(d) = run.duration {
                what.push_str(&format!(", in {d:.1} s"));
            }
            (icon, what)
        }
    };
    let text = format!(
        "faultline: experiment \"{}\" {what} (run {})",
        run.title, run.run_id
    );
    let mut refs = vec![format!("run `{}`", escape(&run.run_id))];
    match (trace_link(trace_url, run), &run.trace_id) {
        (Some(link), Some(t)) => refs.push(format!("<{}|trace {}>", escape(&link), escape(t))),
        (None, Some(t)) => refs.push(format!("trace `{}`", escape(t))),
        _ => {}
    }
    if let Some(j) = &run.journal {
        refs.push(format!("journal `{}`", escape(&j.display().to_string())));
    }
    refs.extend(
        run.labels
            .iter()
            .map(|(k, v)| format!("{}: {}", escape(k), escape(v))),
    );
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} *{title}* {what}")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": refs.join(" · ")}]},
        ],
    })
}

/// The notice in `format`.
pub fn body(format: Format, run: &RunInfo, end: Option<End>, trace_url: Option<&str>) -> Value {
    match format {
        Format::Json => json_body(run, end, trace_url),
        Format::Slack => slack_body(run, end, trace_url),
    }
}

impl Webhook {
    /// From the declaration: its name, `arguments` and the secret scopes it lists
    /// (where `url` may be). Every problem in the arguments, each naming its argument.
    pub fn from_arguments(
        name: &str,
        args: &Value,
        scopes: &[String],
    ) -> Result<Webhook, Vec<String>> {
        let mut problems = Vec::new();
        let url = Credential::from_arguments(args, "url").unwrap_or_else(|e| {
            problems.push(e);
            Credential::Unset
        });
        match &url {
            Credential::Given(u) => {
                if let Err(e) = deliver::http_url("url", u) {
                    problems.push(e);
                }
            }
            Credential::Unset if scopes.is_empty() => problems
                .push("'url' (or 'url_env') is required: where the notices are posted".into()),
            _ => {}
        }
        let format = match args.get("format") {
            None | Some(Value::Null) => Format::Json,
            Some(Value::String(s)) if s == "json" => Format::Json,
            Some(Value::String(s)) if s == "slack" => Format::Slack,
            Some(other) => {
                problems.push(format!(
                    "'format' must be \"json\" or \"slack\", found {other}"
                ));
                Format::Json
            }
        };
        let trace_url = match args.get("trace_url") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push("'trace_url' must be a string (a template with {trace_id})".into());
                None
            }
        };
        let mut headers = Vec::new();
        match args.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    match v.as_str() {
                        Some(v)
                            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
                                && reqwest::header::HeaderValue::from_str(v).is_ok() =>
                        {
                            headers.push((k.clone(), v.to_string()))
                        }
                        _ => problems.push(format!(
                            "'headers.{k}' must be a valid header name with a string value"
                        )),
                    }
                }
            }
            Some(_) => problems.push("'headers' must be an object of strings".into()),
        }
        let endpoint = Endpoint::new(headers, Retry::DEFAULT, String::new())
            .map_err(|e| problems.push(e))
            .ok();
        match endpoint {
            Some(endpoint) if problems.is_empty() => Ok(Webhook {
                name: name.to_string(),
                url,
                scopes: scopes.to_vec(),
                format,
                trace_url,
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

    fn failed(&self, e: String) {
        let e = self.mask.text(&e);
        self.state().errors.push(e);
    }

    /// The notice, masked, and the endpoint showing its URL's origin; `None` before
    /// `prepare` found the URL.
    fn notice(&self, run: &RunInfo, end: Option<End>) -> Option<(Endpoint, Notice)> {
        let url = self.state().url.clone()?;
        let mut endpoint = self.endpoint.clone();
        endpoint.shown = deliver::shown(url.as_str(), true);
        let body = self
            .mask
            .value(body(self.format, run, end, self.trace_url.as_deref()));
        Some((
            endpoint,
            Notice {
                method: reqwest::Method::POST,
                url,
                body,
            },
        ))
    }
}

impl Control for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn before_experiment<'a>(&'a self, run: &'a RunInfo) -> Hook<'a> {
        if let Some((endpoint, notice)) = self.notice(run, None) {
            let pending = Pending::spawn(async move {
                endpoint.deliver("start notice", &notice).await.map(|_| ())
            });
            self.state().start = Some(pending);
        }
        Box::pin(async { Decision::Continue })
    }

    fn after_experiment(&self, run: &RunInfo, status: Status, deviated: bool) {
        let start = self.state().start.take();
        let end = self.notice(run, Some(End { status, deviated }));
        // After the start (so the two arrive in order), in the background: the app
        // waits for every notifier at once.
        let pending = Pending::spawn(async move {
            let mut errors = Vec::new();
            if let Some(p) = start {
                let limit = Retry::DEFAULT.budget + std::time::Duration::from_millis(500);
                match p.wait(limit) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => errors.push(e),
                    None => errors.push(format!("start notice: not delivered within {limit:?}")),
                }
            }
            if let Some((endpoint, notice)) = end {
                if let Err(e) = endpoint.deliver("end notice", &notice).await {
                    errors.push(e);
                }
            }
            errors
        });
        self.state().end = Some(pending);
    }
}

impl Notifier for Webhook {
    fn describe(&self) -> String {
        format!("control '{}' ({MODULE})", self.name)
    }

    fn prepare(
        &self,
        secrets: &Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        let Some(raw) = self
            .url
            .resolve("url", "url", &self.scopes, true, secrets, env)?
        else {
            return Err("'url' (or 'url_env') is required".into());
        };
        let url = deliver::http_url("url", &raw)?;
        self.state().url = Some(url);
        // A URL from the environment or the secrets is a credential (Slack's path is
        // its key): masked wherever the run writes.
        if matches!(self.url, Credential::Given(_)) {
            Ok(Vec::new())
        } else {
            self.mask.own(vec![raw.clone()]);
            Ok(vec![raw])
        }
    }

    fn learn(&self, redactor: &crate::redact::Redactor) {
        self.mask.learn(redactor);
    }

    fn finish(&self, deadline: std::time::Instant) -> Vec<String> {
        let end = self.state().end.take();
        if let Some(end) = end {
            match end.wait(deadline.saturating_duration_since(std::time::Instant::now())) {
                Some(errors) => errors.into_iter().for_each(|e| self.failed(e)),
                None => self.failed("end notice: still not delivered when the run ended".into()),
            }
        }
        self.state().errors.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run() -> RunInfo {
        RunInfo {
            run_id: "r-1".into(),
            title: "kill <a> pod & co".into(),
            experiment: json!({}),
            trace_id: Some("abc123".into()),
            labels: [("service".to_string(), "checkout".to_string())].into(),
            experiment_ref: "ref".into(),
            started: chrono::Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            ended: Some(chrono::Utc.timestamp_millis_opt(1_700_000_004_567).unwrap()),
            duration: Some(4.444),
            journal: Some("/tmp/j.json".into()),
        }
    }

    const JAEGER: Option<&str> = Some("http://jaeger:16686/trace/{trace_id}?run={run_id}");

    #[test]
    fn the_json_notices_carry_every_field() {
        let start = json_body(&run(), None, JAEGER);
        assert_eq!(
            start,
            json!({
                "event": "run.started", "run_id": "r-1", "title": "kill <a> pod & co",
                "status": "running", "deviated": null, "duration_s": null,
                "trace_id": "abc123", "trace_url": "http://jaeger:16686/trace/abc123?run=r-1",
                "journal": "/tmp/j.json", "labels": {"service": "checkout"},
                "experiment_ref": "ref", "started": "2023-11-14T22:13:20.123000+00:00",
                "ended": null,
            })
        );
        let end = End {
            status: Status::Failed,
            deviated: true,
        };
        let b = json_body(&run(), Some(end), None);
        assert_eq!(b["event"], "run.ended");
        assert_eq!(b["status"], "failed");
        assert_eq!(b["deviated"], true);
        assert_eq!(b["duration_s"], 4.444);
        assert_eq!(b["trace_url"], Value::Null);
        assert_eq!(b["ended"], "2023-11-14T22:13:24.567000+00:00");
    }

    #[test]
    fn the_slack_notices_escape_the_title_and_link_the_trace() {
        let b = slack_body(&run(), None, JAEGER);
        assert_eq!(
            b["text"],
            "faultline: experiment \"kill <a> pod & co\" started (run r-1)"
        );
        assert_eq!(
            b["blocks"][0]["text"]["text"],
            ":test_tube: *kill &lt;a&gt; pod &amp; co* started"
        );
        let refs = b["blocks"][1]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(
            refs,
            "run `r-1` · <http://jaeger:16686/trace/abc123?run=r-1|trace abc123> · journal `/tmp/j.json` · service: checkout"
        );
        let end = End {
            status: Status::Completed,
            deviated: true,
        };
        let b = slack_body(&run(), Some(end), None);
        assert_eq!(
            b["blocks"][0]["text"]["text"],
            ":warning: *kill &lt;a&gt; pod &amp; co* completed, the steady state deviated, in 4.4 s"
        );
        assert!(b["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("trace `abc123`"));
    }

    #[test]
    fn every_bad_argument_is_named() {
        let e = Webhook::from_arguments(
            "w",
            &json!({"format": "teams", "trace_url": 3, "headers": {"x": 1}}),
            &[],
        )
        .err()
        .unwrap()
        .join("\n");
        for word in [
            "'url' (or 'url_env') is required",
            "'format'",
            "'trace_url'",
            "'headers.x'",
        ] {
            assert!(e.contains(word), "{word}: {e}");
        }
        let e = Webhook::from_arguments("w", &json!({"url": "mailto:x@y"}), &[])
            .err()
            .unwrap()
            .join("\n");
        assert!(e.contains("http(s)"), "{e}");
    }

    #[test]
    fn a_secret_url_is_masked_and_never_shown() {
        let w = Webhook::from_arguments("w", &json!({"url_env": "HOOK"}), &[])
            .ok()
            .unwrap();
        let hook = "http://127.0.0.1:9/services/T0/B0/s3cretpath";
        let masked = w
            .prepare(&Map::new(), &|k| (k == "HOOK").then(|| hook.to_string()))
            .unwrap();
        assert_eq!(masked, vec![hook.to_string()]);
        let (endpoint, _) = w.notice(&run(), None).unwrap();
        assert_eq!(endpoint.shown, "http://127.0.0.1:9");
    }

    #[test]
    fn a_secret_in_the_title_or_labels_is_masked_in_the_body() {
        let w = Webhook::from_arguments(
            "w",
            &json!({"url": "http://127.0.0.1:9/h", "format": "slack", "trace_url": "http://j/{trace_id}"}),
            &[],
        )
        .ok()
        .unwrap();
        w.prepare(&Map::new(), &|_| None).unwrap();
        w.learn(&crate::redact::Redactor::new(["hunter2".to_string()]));
        let mut r = run();
        r.title = "deploy with hunter2".into();
        r.labels.insert("team".into(), "hunter2".into());
        let (_, n) = w.notice(&r, None).unwrap();
        let text = n.body.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("deploy with ***"), "{text}");
    }
}
