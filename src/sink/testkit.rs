//! Test support: a real HTTP/1.1 server on 127.0.0.1 that records requests and
//! answers from a script (statuses, echoes, or never), plus sample records.

use super::Record;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const SPAN_ID: &str = "00f067aa0ba902b7";

/// A sample record; `i` is also the microsecond of its time.
pub fn record(i: usize) -> Record {
    Record {
        time: format!("2026-11-21T19:05:17.{i:06}+00:00"),
        level: "INFO",
        event: "activity.started",
        message: format!("message {i}"),
        run_id: "run-1".into(),
        trace_id: Some(TRACE_ID.into()),
        span_id: Some(SPAN_ID.into()),
        experiment: "demo".into(),
        fields: json!({"activity": format!("a{i}"), "phase": "method", "n": i,
                       "nested": {"k": true}, "none": null}),
    }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(
        format!(
            "faultline-sink-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        )
        .replace([' ', ':', '{', '}', ','], "_"),
    );
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// How the server answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status, the request's Authorization header echoed in the body.
    EchoAuth(u16),
    /// Read the request, never answer (the connection stays open).
    Never,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    script: Vec<Reply>,
    then: Reply,
    requests: Vec<Req>,
}

pub struct Server {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Server {
    /// Answers from `script` in order, then 200.
    pub async fn start(script: Vec<Reply>) -> Server {
        Server::start_then(script, Reply::Status(200)).await
    }

    /// Answers from `script` in order, then `then` forever.
    pub async fn start_then(script: Vec<Reply>, then: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script: script.into_iter().rev().collect(),
            then,
            requests: Vec::new(),
        }));
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, Arc::clone(&st)));
            }
        });
        Server { addr, state }
    }

    /// A server that accepts connections and never answers.
    pub async fn blackhole() -> Server {
        Server::start_then(vec![], Reply::Never).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// An address where nothing listens (connection refused).
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let path = first.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 65536];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let req = Req {
            method,
            path,
            headers,
            body,
        };
        let reply = {
            let mut st = state.lock().unwrap();
            st.requests.push(req.clone());
            let then = st.then;
            st.script.pop().unwrap_or(then)
        };
        let (status, text) = match reply {
            Reply::Status(s) => (s, String::new()),
            Reply::EchoAuth(s) => (
                s,
                format!(
                    "refused credentials: {}",
                    req.header("authorization").unwrap_or("")
                ),
            ),
            Reply::Never => {
                // Hold the connection until the client goes away.
                let mut sink = [0u8; 1024];
                while let Ok(n) = sock.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
