//! The kill switch of a `faultline serve`, over HTTP: `GET /v1/kill` (is it on?),
//! `POST /v1/kill` (engage, body `{reason, by}`), `DELETE /v1/kill` (release), with
//! the bearer token the server's other routes take. Runs attached to the server poll
//! it; `faultline kill --server` operates it.

use super::{Engaged, Engagement, KillError};
use serde_json::{json, Value};
use std::time::Duration;

/// The route, under the server's base URL.
pub const PATH: [&str; 2] = ["v1", "kill"];

/// A client of one server's switch.
#[derive(Clone, Debug)]
pub struct RemoteSwitch {
    base: url::Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl RemoteSwitch {
    /// A client of the server at `base`, each request bounded by `timeout`.
    pub fn new(
        base: url::Url,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<RemoteSwitch, KillError> {
        crate::tls::init();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| KillError::Unreachable {
                server: shown(&base),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(RemoteSwitch {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            client,
        })
    }

    /// The server, as messages name it (no user or password).
    pub fn server(&self) -> String {
        shown(&self.base)
    }

    fn url(&self) -> Result<url::Url, KillError> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|_| KillError::Invalid(format!("{} cannot be a server's URL", self.server())))?
            .pop_if_empty()
            .extend(PATH);
        Ok(u)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, KillError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let unreachable = |message: String| KillError::Unreachable {
            server: self.server(),
            message,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(format!("cannot be reached: {}", without_url(&e))))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(format!("stopped answering: {}", without_url(&e))))?;
        let v: Option<Value> = serde_json::from_slice(&body).ok();
        if status.is_success() {
            return v.ok_or_else(|| unreachable("answered something that is not JSON".into()));
        }
        let message = v
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        Err(KillError::Refused {
            server: self.server(),
            status: status.as_u16(),
            message,
        })
    }

    /// The engagement, when the server's switch is on.
    pub async fn status(&self) -> Result<Option<Engagement>, KillError> {
        let v = self.send(self.client.get(self.url()?)).await?;
        Ok(engagement(&v))
    }

    /// Engage the server's switch (the first reason stays when it is on already).
    pub async fn engage(&self, reason: Option<&str>) -> Result<Engaged, KillError> {
        let mut body = json!({"by": super::whoami()});
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        let v = self.send(self.client.post(self.url()?).json(&body)).await?;
        let e = engagement(&v).ok_or_else(|| KillError::Unreachable {
            server: self.server(),
            message: "answered that its switch is off after engaging it".into(),
        })?;
        Ok(
            if v.get("changed").and_then(Value::as_bool) == Some(false) {
                Engaged::Already(e)
            } else {
                Engaged::Now(e)
            },
        )
    }

    /// Release the server's switch: the engagement that was in force, if any.
    pub async fn release(&self) -> Result<Option<Engagement>, KillError> {
        let v = self.send(self.client.delete(self.url()?)).await?;
        Ok(v.get("previous").and_then(engagement))
    }
}

/// The engagement of an answer `{"engaged": true, "reason": …}` (`None`: off).
pub fn engagement(v: &Value) -> Option<Engagement> {
    if v.get("engaged").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    Some(Engagement::parse(v.to_string().as_bytes()))
}

/// A URL without any user or password in it.
fn shown(base: &url::Url) -> String {
    let mut u = base.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// A reqwest error without its URL (the message names the server already), with its
/// causes.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(&format!(": {cause}"));
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_engagements() {
        assert_eq!(engagement(&json!({"engaged": false})), None);
        assert_eq!(engagement(&json!({})), None);
        let e = engagement(&json!({"engaged": true, "reason": "stop", "by": "a@b", "org": "ops"}))
            .unwrap();
        assert_eq!(e.reason, "stop");
        assert_eq!(e.org.as_deref(), Some("ops"));
        assert_eq!(
            engagement(&json!({"engaged": true})).unwrap().reason,
            super::super::DEFAULT_REASON
        );
    }

    #[test]
    fn the_route_is_under_the_base_and_no_password_is_shown() {
        let base = url::Url::parse("http://u:secret@127.0.0.1:9/prefix/").unwrap();
        let r = RemoteSwitch::new(base, None, Duration::from_secs(1)).unwrap();
        assert_eq!(r.url().unwrap().path(), "/prefix/v1/kill");
        assert!(!r.server().contains("secret"), "{}", r.server());
    }
}
